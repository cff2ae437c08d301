//! Every error a client can get, in OpenAI's shape with a status the SDKs understand: bad
//! input at the front door, wrong paths and methods, oversized bodies, and each way an
//! upstream can fail. The router keeps serving after each, and never shows its own key.
#![cfg(test)]

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::support::{
    Answer, MockUpstream, Reply, RouterHandle, UP_ENV, assert_not_leaked, chat, closed_port,
    one_provider, openai_error, send, send_chunked, spawn_router,
};

const MOCK: &str = r#"
[server]
max_body = "1KiB"

[providers.local]
kind = "mock"

[routes.demo]
targets = ["local/echo"]
"#;

const GOOD: &str = r#"{"model":"demo","messages":[{"role":"user","content":"still here?"}]}"#;

/// The router still answers a good request normally.
async fn still_serves(router: &RouterHandle) {
    let answer = chat(router, GOOD).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "still here?"
    );
}

/// A 400 `invalid_request_error` naming `param` (`None` for a null param).
fn bad_request(answer: &Answer, param: Option<&str>) -> serde_json::Value {
    let error = openai_error(answer, 400, "invalid_request_error");
    assert_eq!(error["type"], "invalid_request_error");
    match param {
        Some(param) => assert_eq!(error["param"], param, "{error}"),
        None => assert!(error["param"].is_null(), "{error}"),
    }
    error
}

#[tokio::test]
async fn malformed_json_is_a_400_with_a_null_param() {
    let router = spawn_router(MOCK, &[]).await;
    for body in [
        r#"{"model":"demo","messages":["#,
        "not json",
        r#"{"model":"demo",}"#,
        "",
    ] {
        let error = bad_request(&chat(&router, body).await, None);
        assert!(!error["message"].as_str().unwrap().is_empty());
        still_serves(&router).await;
    }
}

#[tokio::test]
async fn missing_or_empty_required_fields_name_their_param() {
    let router = spawn_router(MOCK, &[]).await;
    let cases = [
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, "model"),
        (r#"{"model":"demo"}"#, "messages"),
        (r#"{"model":"demo","messages":[]}"#, "messages"),
        (r#"{"model":"demo","messages":null}"#, "messages"),
    ];
    for (body, param) in cases {
        let error = bad_request(&chat(&router, body).await, Some(param));
        assert!(
            error["message"].as_str().unwrap().contains(param),
            "{body}: {error}"
        );
        still_serves(&router).await;
    }
}

#[tokio::test]
async fn wrong_types_and_values_name_the_nested_param() {
    let router = spawn_router(MOCK, &[]).await;
    let cases = [
        (
            r#"{"model":"demo","messages":[{"role":"user","content":5}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            "temperature",
        ),
        (
            r#"{"model":"demo","messages":[{"role":"robot","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
            "temperature",
        ),
        (
            r#"{"model":"demo","messages":[{"role":"user","content":"x"},{"role":"user","content":{"a":1}}]}"#,
            "messages[1].content",
        ),
        (
            r#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
            "model",
        ),
    ];
    for (body, param) in cases {
        bad_request(&chat(&router, body).await, Some(param));
        still_serves(&router).await;
    }
}

#[tokio::test]
async fn an_unknown_model_is_404_model_not_found() {
    let router = spawn_router(MOCK, &[]).await;
    let answer = chat(
        &router,
        r#"{"model":"gpt-5","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    let error = openai_error(&answer, 404, "model_not_found");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "model");
    assert!(error["message"].as_str().unwrap().contains("gpt-5"));
    still_serves(&router).await;
}

#[tokio::test]
async fn an_unknown_path_is_404_in_openai_shape() {
    let router = spawn_router(MOCK, &[]).await;
    for (method, path) in [
        ("POST", "/v1/completions"),
        ("GET", "/v1/images/generations"),
        ("GET", "/"),
        ("POST", "/v1/chat/completions/extra"),
    ] {
        let answer = send(method, &router.url(path), &[], "").await;
        let error = openai_error(&answer, 404, "unknown_url");
        assert_eq!(error["type"], "invalid_request_error");
        assert!(error["message"].as_str().unwrap().contains(path), "{error}");
        assert!(answer.headers.contains_key("x-request-id"));
    }
    still_serves(&router).await;
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let router = spawn_router(MOCK, &[]).await;
    for method in ["GET", "PUT", "DELETE"] {
        let answer = send(method, &router.url("/v1/chat/completions"), &[], "").await;
        let error = openai_error(&answer, 405, "method_not_allowed");
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(answer.headers["allow"], "POST");
    }
    let answer = send("POST", &router.url("/v1/models"), &[], "{}").await;
    openai_error(&answer, 405, "method_not_allowed");
    assert_eq!(answer.headers["allow"], "GET");
    still_serves(&router).await;
}

/// A valid chat request of at least `size` bytes.
fn big_request(size: usize) -> String {
    let filler = "x".repeat(size);
    format!(r#"{{"model":"demo","messages":[{{"role":"user","content":"{filler}"}}]}}"#)
}

#[tokio::test]
async fn a_body_over_max_body_is_413_with_content_length() {
    let router = spawn_router(MOCK, &[]).await;
    let body = big_request(1100);
    assert!(body.len() > 1024);

    let answer = send(
        "POST",
        &router.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        body,
    )
    .await;

    let error = openai_error(&answer, 413, "request_too_large");
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"].as_str().unwrap().contains("1024"),
        "{error}"
    );
    // Just under the limit is fine.
    let fits = big_request(900);
    assert!(fits.len() <= 1024);
    let answer = chat(&router, &fits).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    still_serves(&router).await;
}

#[tokio::test]
async fn a_chunked_body_over_max_body_is_413() {
    let router = spawn_router(MOCK, &[]).await;
    let body = big_request(1500);
    let chunks: Vec<Bytes> = body
        .as_bytes()
        .chunks(300)
        .map(Bytes::copy_from_slice)
        .collect();

    let answer = send_chunked(
        &router.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        chunks,
    )
    .await;

    openai_error(&answer, 413, "request_too_large");
    // A chunked body under the limit is read whole.
    let small: Vec<Bytes> = GOOD
        .as_bytes()
        .chunks(10)
        .map(Bytes::copy_from_slice)
        .collect();
    let answer = send_chunked(
        &router.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        small,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    still_serves(&router).await;
}

// ---- upstream failures -------------------------------------------------------------------

const REQUEST: &str = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;
const SECRET: &str = "sk-upstream-secret";

async fn through_one_upstream(reply: Reply) -> (MockUpstream, RouterHandle, Answer) {
    let upstream = MockUpstream::start(vec![reply]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;
    let answer = chat(&router, REQUEST).await;
    assert_not_leaked(&answer, SECRET);
    (upstream, router, answer)
}

#[tokio::test]
async fn an_upstream_400_is_returned_with_its_message_code_and_param() {
    let (upstream, _router, answer) = through_one_upstream(Reply::json(
        400,
        r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    ))
    .await;

    let error = openai_error(&answer, 400, "context_length_exceeded");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "messages");
    assert_eq!(
        error["message"],
        "This model's maximum context length is 8192 tokens."
    );
    assert_eq!(upstream.calls(), 1, "the client's mistake is not retried");
    assert!(!answer.headers.contains_key("x-should-retry"));
}

#[tokio::test]
async fn an_upstream_401_is_the_routers_problem_a_502_that_quotes_nothing() {
    let upstream_message = "Incorrect API key provided: sk-leak-123 (you sent sk-upstream-secret). You can find your API key at https://platform.openai.com/account/api-keys.";
    let body = format!(
        r#"{{"error":{{"message":"{upstream_message}","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    let (upstream, _router, answer) = through_one_upstream(Reply::json(401, &body)).await;

    assert_ne!(answer.status, 401, "the client's key is fine");
    let error = openai_error(&answer, 502, "all_targets_unavailable");
    assert_eq!(error["type"], "server_error");
    let message = error["message"].as_str().unwrap();
    assert!(!message.contains("sk-leak-123"), "{message}");
    assert!(!message.contains("Incorrect API key"), "{message}");
    assert!(message.contains("up/m1"), "{message}");
    assert_not_leaked(&answer, "sk-leak-123");
    assert_eq!(answer.headers["x-should-retry"], "false");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn an_upstream_429_is_429_all_targets_rate_limited_with_its_retry_after() {
    let (upstream, _router, answer) = through_one_upstream(
        Reply::json(
            429,
            r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        )
        .header("retry-after", "7"),
    )
    .await;

    let error = openai_error(&answer, 429, "all_targets_rate_limited");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(answer.headers["retry-after"], "7");
    assert_eq!(answer.headers["x-should-retry"], "false");
    assert!(error["message"].as_str().unwrap().contains("up/m1"));
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn a_long_retry_after_is_capped_at_120_seconds() {
    let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
    for retry_after in ["3600", later.as_str()] {
        let (_upstream, _router, answer) = through_one_upstream(
            Reply::json(
                429,
                r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
            )
            .header("retry-after", retry_after),
        )
        .await;

        openai_error(&answer, 429, "all_targets_rate_limited");
        assert_eq!(answer.headers["retry-after"], "120", "{retry_after}");
    }
}

#[tokio::test]
async fn an_upstream_503_is_503_all_targets_unavailable() {
    let (upstream, _router, answer) = through_one_upstream(Reply::json(
        503,
        r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
    ))
    .await;

    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(error["type"], "server_error");
    assert_eq!(answer.headers["x-should-retry"], "false");
    assert!(error["message"].as_str().unwrap().contains("up/m1"));
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn upstream_server_errors_and_garbage_are_503_never_passed_through() {
    for (status, body) in [
        (500, r#"{"error":{"message":"boom"}}"#),
        (502, "<html><body>Bad Gateway</body></html>"),
        (504, ""),
        // A 200 whose body is not JSON is the provider's failure, not an answer.
        (200, "<html>maintenance</html>"),
    ] {
        let (_upstream, _router, answer) = through_one_upstream(Reply::json(status, body)).await;
        openai_error(&answer, 503, "all_targets_unavailable");
        assert!(!answer.text().contains("<html>"), "{}", answer.text());
    }
}

#[tokio::test]
async fn a_refused_connection_is_503_fast() {
    let port = closed_port().await;
    let toml = format!(
        r#"
[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
api_key_env = "UP_KEY"

[routes.fast]
targets = ["up/m1"]
"#
    );
    let router = spawn_router(&toml, UP_ENV).await;
    let started = Instant::now();

    let answer = chat(&router, REQUEST).await;

    // No retry, no backoff: far below any timeout, with margin for two busy cores.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(answer.headers["x-should-retry"], "false");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("up/m1"), "{message}");
    assert!(message.contains("connect"), "{message}");
    assert_not_leaked(&answer, SECRET);
}

#[tokio::test]
async fn the_upstream_key_never_reaches_the_client_on_success_either() {
    let (_upstream, _router, answer) = through_one_upstream(Reply::json(
        200,
        r#"{"id":"c","object":"chat.completion","created":1,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#,
    ))
    .await;
    assert_eq!(answer.status, 200);
}
