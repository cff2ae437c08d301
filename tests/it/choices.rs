//! `n` on every provider kind: several choices reach providers that return them, a provider
//! that returns fewer refuses the request naming `n` and itself, and an absurd count is a 400
//! before any provider is asked. Nothing is silently dropped.
#![cfg(test)]

use crate::support::{MockUpstream, Reply, UP_ENV, chat, one_provider, spawn_router};

/// An OpenAI-wire answer with two choices (OpenAI, Qwen and Mistral all answer this shape).
const TWO_CHOICES: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"b"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

/// A Gemini answer with two candidates.
const TWO_CANDIDATES: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"a"}]},"finishReason":"STOP","index":0},{"content":{"role":"model","parts":[{"text":"b"}]},"finishReason":"STOP","index":1}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2,"totalTokenCount":5},"modelVersion":"m"}"#;

fn request(n: u64) -> String {
    format!(r#"{{"model":"r","n":{n},"messages":[{{"role":"user","content":"hi"}}]}}"#)
}

/// Sends `n` to a `kind` provider answering `reply`; returns the answer and what the upstream
/// received.
async fn ask(kind: &str, reply: Reply, n: u64) -> (crate::support::Answer, MockUpstream) {
    let upstream = MockUpstream::start(vec![reply]).await;
    let router = spawn_router(&one_provider(kind, &upstream, "r", "m"), UP_ENV).await;
    let answer = chat(&router, &request(n)).await;
    (answer, upstream)
}

/// The answer is a 400 naming `n`, and no upstream was asked.
fn assert_refused(answer: &crate::support::Answer, upstream: &MockUpstream, code: &str) {
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.error()["param"], "n", "{}", answer.text());
    assert_eq!(answer.error()["code"], code, "{}", answer.text());
    assert!(upstream.requests().is_empty(), "no provider is asked");
}

/// Two choices pass to an OpenAI-wire `kind` and both come back.
async fn two_choices_pass(kind: &str) {
    let (answer, upstream) = ask(kind, Reply::json(200, TWO_CHOICES), 2).await;
    assert_eq!(answer.status, 200, "{kind}: {}", answer.text());
    assert_eq!(upstream.requests()[0].json()["n"], 2, "{kind}");
    assert_eq!(answer.json()["choices"].as_array().unwrap().len(), 2);
}

/// A billion choices is refused on `kind` before the provider is asked.
async fn a_billion_is_refused(kind: &str, reply: Reply) {
    let (answer, upstream) = ask(kind, reply, 1_000_000_000).await;
    assert_refused(&answer, &upstream, "invalid_request_error");
}

#[tokio::test]
async fn openai_passes_two_choices_and_refuses_a_billion() {
    two_choices_pass("openai").await;
    a_billion_is_refused("openai", Reply::json(200, TWO_CHOICES)).await;
}

#[tokio::test]
async fn qwen_passes_two_choices_and_refuses_more_than_it_returns() {
    two_choices_pass("qwen").await;
    let (answer, upstream) = ask("qwen", Reply::json(200, TWO_CHOICES), 5).await;
    assert_refused(&answer, &upstream, "unsupported_parameter");
    assert!(answer.error()["message"].as_str().unwrap().contains("'up'"));
    a_billion_is_refused("qwen", Reply::json(200, TWO_CHOICES)).await;
}

#[tokio::test]
async fn mistral_passes_two_choices_and_refuses_a_billion() {
    two_choices_pass("mistral").await;
    a_billion_is_refused("mistral", Reply::json(200, TWO_CHOICES)).await;
}

#[tokio::test]
async fn gemini_asks_two_candidates_and_refuses_more_than_it_returns() {
    let (answer, upstream) = ask("gemini", Reply::json(200, TWO_CANDIDATES), 2).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = upstream.requests()[0].json();
    assert_eq!(sent["generationConfig"]["candidateCount"], 2);
    assert_eq!(answer.json()["choices"].as_array().unwrap().len(), 2);
    let (answer, upstream) = ask("gemini", Reply::json(200, TWO_CANDIDATES), 9).await;
    assert_refused(&answer, &upstream, "unsupported_parameter");
    a_billion_is_refused("gemini", Reply::json(200, TWO_CANDIDATES)).await;
}

#[tokio::test]
async fn anthropic_refuses_two_choices_naming_n_and_a_billion() {
    let reply = Reply::json(500, "{}");
    let (answer, upstream) = ask("anthropic", reply.clone(), 2).await;
    assert_refused(&answer, &upstream, "unsupported_parameter");
    a_billion_is_refused("anthropic", reply).await;
}

#[tokio::test]
async fn the_mock_refuses_two_choices_it_would_not_write() {
    let router = spawn_router(
        "[providers.m]\nkind = \"mock\"\n[routes.r]\ntargets = [\"m/echo\"]\n",
        &[],
    )
    .await;
    for n in [2, 1_000_000_000] {
        let answer = chat(&router, &request(n)).await;
        assert_eq!(answer.status, 400, "n = {n}: {}", answer.text());
        assert_eq!(answer.error()["param"], "n");
    }
    let answer = chat(&router, &request(1)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}
