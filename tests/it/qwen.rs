//! `kind = "qwen"` (DashScope compatible mode, Alipay endpoints included): Qwen-only fields
//! pass both ways, DashScope's own error reasons are sorted correctly (an unpaid account is the
//! router's problem, moderation is the client's), and only the configured upstream headers
//! reach the client. Its rate limits are per model: one cooled model shows on the dashboard
//! while the provider's other models go on answering.
#![cfg(test)]

use crate::metrics::{cooldown, scrape, target_cooldown};
use crate::support::{
    MockUpstream, Reply, RouterHandle, UP_ENV, assert_not_leaked, chat, openai_error, spawn_router,
};

/// A qwen provider at `upstream` under DashScope's compatible-mode path, routed as `intent`.
fn qwen_config(upstream: &MockUpstream, forward_headers: &str) -> String {
    format!(
        r#"
[providers.dashscope]
kind = "qwen"
base_url = "{}"
api_key_env = "UP_KEY"
{forward_headers}

[routes.intent]
targets = ["dashscope/qwen-plus"]
"#,
        upstream.url("/compatible-mode/v1")
    )
}

async fn qwen_router(reply: Reply, forward_headers: &str) -> (MockUpstream, RouterHandle) {
    let upstream = MockUpstream::start(vec![reply]).await;
    let router = spawn_router(&qwen_config(&upstream, forward_headers), UP_ENV).await;
    (upstream, router)
}

const THINKING_REQUEST: &str = r#"{"model":"intent","stream":true,"stream_options":{"include_usage":true},"enable_thinking":true,"thinking_budget":512,"messages":[{"role":"user","content":"Is 1000.00 CNY too much?"}]}"#;

/// A DashScope thinking stream: `reasoning_content` deltas, then content, then usage. Every
/// chunk carries `"usage":null`, as DashScope's do.
const THINKING_EVENTS: &[&str] = &[
    r#"{"choices":[{"delta":{"content":null,"role":"assistant","reasoning_content":""},"index":0,"logprobs":null,"finish_reason":null}],"object":"chat.completion.chunk","usage":null,"created":1735115040,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-q1"}"#,
    r#"{"choices":[{"delta":{"content":null,"reasoning_content":"The user asks"},"index":0,"logprobs":null,"finish_reason":null}],"object":"chat.completion.chunk","usage":null,"created":1735115040,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-q1"}"#,
    r#"{"choices":[{"delta":{"content":null,"reasoning_content":" about \u00a51000.00."},"index":0,"logprobs":null,"finish_reason":null}],"object":"chat.completion.chunk","usage":null,"created":1735115040,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-q1"}"#,
    r#"{"choices":[{"delta":{"content":"It depends.","reasoning_content":null},"index":0,"logprobs":null,"finish_reason":null}],"object":"chat.completion.chunk","usage":null,"created":1735115040,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-q1"}"#,
    r#"{"choices":[{"finish_reason":"stop","delta":{"content":""},"index":0,"logprobs":null}],"object":"chat.completion.chunk","usage":null,"created":1735115040,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-q1"}"#,
    r#"{"choices":[],"object":"chat.completion.chunk","usage":{"prompt_tokens":18,"completion_tokens":40,"total_tokens":58,"completion_tokens_details":{"reasoning_tokens":36}},"created":1735115040,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-q1"}"#,
    "[DONE]",
];

#[tokio::test]
async fn enable_thinking_reaches_the_upstream_and_reasoning_reaches_the_client() {
    let (upstream, router) = qwen_router(Reply::sse_data(THINKING_EVENTS), "").await;

    let answer = chat(&router, THINKING_REQUEST).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let received = &upstream.requests()[0];
    assert_eq!(received.path, "/compatible-mode/v1/chat/completions");
    assert_eq!(
        received.headers["authorization"],
        "Bearer sk-upstream-secret"
    );
    let json = received.json();
    assert_eq!(json["enable_thinking"], true);
    assert_eq!(json["thinking_budget"], 512);
    assert_eq!(json["model"], "qwen-plus");
    assert_eq!(
        received.body,
        THINKING_REQUEST.replace(r#""model":"intent""#, r#""model":"qwen-plus""#),
        "the client's bytes with only the model replaced"
    );
    assert_eq!(answer.sse_data(), THINKING_EVENTS);
    assert_eq!(answer.headers["x-switchboard-provider"], "dashscope");
    assert_eq!(answer.headers["x-switchboard-model"], "qwen-plus");
}

#[tokio::test]
async fn reasoning_content_of_a_complete_answer_reaches_the_client() {
    let completion = r#"{"choices":[{"message":{"content":"It depends.","reasoning_content":"The user asks about \u00a51000.00.","role":"assistant"},"finish_reason":"stop","index":0,"logprobs":null}],"object":"chat.completion","usage":{"prompt_tokens":18,"completion_tokens":40,"total_tokens":58,"completion_tokens_details":{"reasoning_tokens":36}},"created":1735115040,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-q2"}"#;
    let (_upstream, router) = qwen_router(Reply::json(200, completion), "").await;

    let answer = chat(
        &router,
        r#"{"model":"intent","enable_thinking":true,"messages":[{"role":"user","content":"?"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, completion.as_bytes());
}

#[tokio::test]
async fn an_unpaid_account_is_a_502_never_the_clients_fault() {
    let cases = [
        (
            400,
            r#"{"error":{"message":"Access denied, please make sure your account is in good standing. sk-leak-123","type":"Arrearage","param":null,"code":"Arrearage"},"id":"chatcmpl-x","request_id":"r-1"}"#,
        ),
        (
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-leak-123. ","type":"invalid_request_error","param":null,"code":"invalid_api_key"},"request_id":"r-2"}"#,
        ),
        (
            429,
            r#"{"error":{"message":"You exceeded your current quota, sk-leak-123","type":"insufficient_quota","param":null,"code":"insufficient_quota"},"request_id":"r-3"}"#,
        ),
    ];
    for (status, body) in cases {
        let (upstream, router) = qwen_router(Reply::json(status, body), "").await;

        let answer = chat(
            &router,
            r#"{"model":"intent","messages":[{"role":"user","content":"pay"}]}"#,
        )
        .await;

        let error = openai_error(&answer, 502, "all_targets_unavailable");
        assert_eq!(
            error["type"], "server_error",
            "{status}: not a client error"
        );
        assert!(error["param"].is_null());
        assert_eq!(answer.headers["x-should-retry"], "false");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("dashscope/qwen-plus"), "{message}");
        assert!(!message.contains("Access denied"), "{message}");
        assert_not_leaked(&answer, "sk-leak-123");
        assert_not_leaked(&answer, "sk-upstream-secret");
        assert_eq!(upstream.calls(), 1);
    }
}

#[tokio::test]
async fn moderation_is_a_400_content_filter() {
    let (upstream, router) = qwen_router(
        Reply::json(
            400,
            r#"{"error":{"message":"<400> InternalError.Algo.DataInspectionFailed: Input data may contain inappropriate content.","type":"data_inspection_failed","param":null,"code":"data_inspection_failed"},"id":"chatcmpl-m","request_id":"r-4"}"#,
        ),
        "",
    )
    .await;

    let answer = chat(
        &router,
        r#"{"model":"intent","messages":[{"role":"user","content":"something rude"}]}"#,
    )
    .await;

    let error = openai_error(&answer, 400, "content_filter");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Input data may contain inappropriate content."),
        "{error}"
    );
    assert!(!answer.headers.contains_key("x-should-retry"));
    assert_eq!(upstream.calls(), 1, "the client's content is not retried");
}

#[tokio::test]
async fn throttling_is_429_all_targets_rate_limited() {
    let (upstream, router) = qwen_router(
        Reply::json(
            429,
            r#"{"error":{"message":"Requests rate limit exceeded, please try again later.","type":"limit_requests","param":null,"code":"limit_requests"},"request_id":"r-5"}"#,
        )
        .header("retry-after", "3"),
        "",
    )
    .await;

    let answer = chat(
        &router,
        r#"{"model":"intent","messages":[{"role":"user","content":"pay"}]}"#,
    )
    .await;

    let error = openai_error(&answer, 429, "all_targets_rate_limited");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(answer.headers["retry-after"], "3");
    assert_eq!(answer.headers["x-should-retry"], "false");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn only_the_configured_upstream_headers_reach_the_client() {
    let completion = r#"{"choices":[{"message":{"content":"ok","role":"assistant"},"finish_reason":"stop","index":0}],"object":"chat.completion","created":1,"model":"qwen-plus","id":"chatcmpl-h"}"#;
    let headers = |reply: Reply| {
        reply
            .header("x-alipay-risk-score", "0.12")
            .header("X-Alipay-Trace", "t-9")
            .header("set-cookie", "acw_tc=abc; path=/")
            .header("x-ratelimit-remaining-requests", "99")
            .header("x-dashscope-call-gateway", "true")
    };
    let forward = r#"forward_headers = ["x-alipay-"]"#;

    for (reply, body) in [
        (
            headers(Reply::json(200, completion)),
            r#"{"model":"intent","messages":[{"role":"user","content":"pay"}]}"#,
        ),
        (
            headers(Reply::sse_data(THINKING_EVENTS)),
            r#"{"model":"intent","stream":true,"messages":[{"role":"user","content":"pay"}]}"#,
        ),
    ] {
        let (_upstream, router) = qwen_router(reply, forward).await;

        let answer = chat(&router, body).await;

        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.headers["x-alipay-risk-score"], "0.12");
        assert_eq!(answer.headers["x-alipay-trace"], "t-9");
        for name in [
            "set-cookie",
            "x-ratelimit-remaining-requests",
            "x-dashscope-call-gateway",
        ] {
            assert!(
                !answer.headers.contains_key(name),
                "{name} must not reach the client"
            );
        }
        assert_eq!(answer.headers["x-switchboard-provider"], "dashscope");
    }

    // Without forward_headers, nothing of the upstream's passes.
    let (_upstream, router) = qwen_router(headers(Reply::json(200, completion)), "").await;
    let answer = chat(
        &router,
        r#"{"model":"intent","messages":[{"role":"user","content":"pay"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(!answer.headers.contains_key("x-alipay-risk-score"));
}

#[tokio::test]
async fn a_per_model_limit_shows_in_the_target_and_provider_cooldowns() {
    let completion = r#"{"choices":[{"message":{"content":"ok","role":"assistant"},"finish_reason":"stop","index":0}],"object":"chat.completion","created":1,"model":"qwen-max","id":"chatcmpl-m"}"#;
    let upstream = MockUpstream::start(vec![
        Reply::json(
            429,
            r#"{"error":{"message":"Requests rate limit exceeded, please try again later.","type":"limit_requests","param":null,"code":"limit_requests"},"request_id":"r-6"}"#,
        )
        .header("retry-after", "30"),
        Reply::json(200, completion),
    ])
    .await;
    let toml = format!(
        r#"
[providers.dashscope]
kind = "qwen"
base_url = "{}"
api_key_env = "UP_KEY"

[routes.plus]
targets = ["dashscope/qwen-plus"]

[routes.max]
targets = ["dashscope/qwen-max"]
"#,
        upstream.url("/compatible-mode/v1")
    );
    let router = spawn_router(&toml, UP_ENV).await;

    let before = scrape(&router).await;
    assert_eq!(target_cooldown(&before, "dashscope", "qwen-plus"), 0.0);
    assert_eq!(cooldown(&before, "dashscope"), 0.0);

    let limited = chat(
        &router,
        r#"{"model":"plus","messages":[{"role":"user","content":"pay"}]}"#,
    )
    .await;
    openai_error(&limited, 429, "all_targets_rate_limited");

    let m = scrape(&router).await;
    let plus = target_cooldown(&m, "dashscope", "qwen-plus");
    assert!(plus > 25.0 && plus <= 30.0, "the model cools down: {plus}");
    let provider = cooldown(&m, "dashscope");
    assert!(
        (provider - plus).abs() < 1.0,
        "the provider shows its longest target cooldown: {provider}"
    );
    assert_eq!(
        target_cooldown(&m, "dashscope", "qwen-max"),
        0.0,
        "the other model is usable"
    );

    let other = chat(
        &router,
        r#"{"model":"max","messages":[{"role":"user","content":"pay"}]}"#,
    )
    .await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(upstream.calls(), 2);
}
