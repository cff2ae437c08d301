//! The core proxy, non-stream: what the upstream receives, what the client gets back, the
//! router's headers, direct addressing, the built-in mock, `/v1/models`, health endpoints and
//! HTTP/2 on the same port.
#![cfg(test)]

use http::Version;

use crate::support::{
    MockUpstream, Reply, UP_ENV, chat, chat_h2, chat_with, one_provider, openai_error, send,
    spawn_router,
};

/// A realistic upstream completion, with odd spacing so any re-serialisation shows.
const COMPLETION: &str = r#"{"id":"chatcmpl-abc123","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18",
  "choices":[{"index":0,"message":{"role":"assistant","content":"Hi there","refusal":null},"logprobs":null,"finish_reason":"stop"}],
  "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11},"system_fingerprint":"fp_1"}"#;

#[tokio::test]
async fn non_stream_request_reaches_the_upstream_with_only_the_model_replaced() {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    let router = spawn_router(
        &one_provider("openai", &upstream, "fast", "gpt-4o-mini"),
        UP_ENV,
    )
    .await;
    // Unusual but valid JSON: spacing, key order, escapes, numbers and fields the router
    // does not know. Only the value of "model" may change on the way.
    let sent = "{ \"messages\" : [{\"role\":\"user\",\"content\":\"caf\\u00e9 \\/ 1000.00\"}],\n\t\"temperature\":1.0, \"model\":\"fast\",\"x_custom\":{\"k\":[1e2,2.50,-0.0]} , \"seed\":7}";
    let expected = "{ \"messages\" : [{\"role\":\"user\",\"content\":\"caf\\u00e9 \\/ 1000.00\"}],\n\t\"temperature\":1.0, \"model\":\"gpt-4o-mini\",\"x_custom\":{\"k\":[1e2,2.50,-0.0]} , \"seed\":7}";

    let answer = chat(&router, sent).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    let received = &requests[0];
    assert_eq!(received.method, "POST");
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(
        received.headers["authorization"], "Bearer sk-upstream-secret",
        "the provider's key from the environment"
    );
    assert_eq!(received.headers["content-type"], "application/json");
    assert_eq!(
        std::str::from_utf8(&received.body).unwrap(),
        expected,
        "every byte but the model is the client's"
    );
    // The client gets the upstream's bytes, untouched, plus the router's headers.
    assert_eq!(answer.body, COMPLETION.as_bytes());
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.headers["x-switchboard-provider"], "up");
    assert_eq!(answer.headers["x-switchboard-model"], "gpt-4o-mini");
    assert_eq!(answer.headers["x-switchboard-attempts"], "1");
    let id = answer.headers["x-request-id"].to_str().unwrap();
    assert!(!id.is_empty());
}

#[tokio::test]
async fn only_the_top_level_model_is_replaced_even_when_written_with_escapes() {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;
    // "model" also appears inside a message and in metadata, before the real one, and the
    // real one is written with a JSON escape.
    let sent = r#"{"messages":[{"role":"user","content":"\"model\":\"fast\""}],"metadata":{"model":"fast"},"model":"f\u0061st"}"#;
    let expected = r#"{"messages":[{"role":"user","content":"\"model\":\"fast\""}],"metadata":{"model":"fast"},"model":"m1"}"#;

    let answer = chat(&router, sent).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        std::str::from_utf8(&upstream.requests()[0].body).unwrap(),
        expected
    );
}

#[tokio::test]
async fn each_request_gets_its_own_request_id_and_a_client_id_is_echoed() {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m"), UP_ENV).await;
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;

    let first = chat(&router, body).await;
    let second = chat(&router, body).await;
    let mine = chat_with(&router, &[("x-request-id", "trace-42.checkout")], body).await;

    assert_eq!(first.status, 200);
    assert_ne!(
        first.headers["x-request-id"], second.headers["x-request-id"],
        "generated ids are unique"
    );
    assert_eq!(mine.headers["x-request-id"], "trace-42.checkout");
    // Errors carry it too: that is when an operator needs it most.
    let error = chat_with(&router, &[("x-request-id", "trace-43")], "{").await;
    assert_eq!(error.status, 400);
    assert_eq!(error.headers["x-request-id"], "trace-43");
}

#[tokio::test]
async fn upstream_headers_are_not_passed_to_the_client_by_default() {
    let upstream = MockUpstream::start(vec![
        Reply::json(200, COMPLETION)
            .header("set-cookie", "__cf_bm=abc; path=/")
            .header("openai-organization", "org-router")
            .header("x-ratelimit-remaining-requests", "99"),
    ])
    .await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m"), UP_ENV).await;

    let answer = chat(
        &router,
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200);
    for name in [
        "set-cookie",
        "openai-organization",
        "x-ratelimit-remaining-requests",
    ] {
        assert!(
            !answer.headers.contains_key(name),
            "{name} is the router's business"
        );
    }
}

#[tokio::test]
async fn provider_slash_model_addresses_a_target_directly() {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let answer = chat(
        &router,
        r#"{"model":"up/m1","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, COMPLETION.as_bytes());
    assert_eq!(answer.headers["x-switchboard-provider"], "up");
    assert_eq!(answer.headers["x-switchboard-model"], "m1");
    assert_eq!(upstream.requests()[0].json()["model"], "m1");
}

#[tokio::test]
async fn an_undeclared_provider_model_is_404_and_never_reaches_the_provider() {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    for model in ["up/unknown", "nobody/m1", "fast2"] {
        let answer = chat(
            &router,
            &format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#),
        )
        .await;
        let error = openai_error(&answer, 404, "model_not_found");
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], "model");
        assert!(
            error["message"].as_str().unwrap().contains(model),
            "{error}"
        );
    }
    assert_eq!(upstream.calls(), 0);
}

const MOCKS: &str = r#"
[providers.local]
kind = "mock"

[providers.fixed]
kind = "mock"
reply = "a fixed answer"

[routes.demo]
targets = ["local/echo"]

[routes.canned]
targets = ["fixed/canned"]
"#;

#[tokio::test]
async fn the_mock_route_echoes_the_last_user_message_with_usage() {
    let router = spawn_router(MOCKS, &[]).await;

    let answer = chat(
        &router,
        r#"{"model":"demo","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":"hello there"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-switchboard-provider"], "local");
    assert_eq!(answer.headers["x-switchboard-model"], "echo");
    assert_eq!(answer.headers["x-switchboard-attempts"], "1");
    let body = answer.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "echo");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "hello there");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!(prompt > 0 && completion > 0, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);
}

#[tokio::test]
async fn the_mock_route_streams_the_echo_word_by_word_with_usage() {
    let router = spawn_router(MOCKS, &[]).await;

    let answer = chat(
        &router,
        r#"{"model":"demo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let data = answer.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage_chunk = &chunks[chunks.len() - 1];
    assert_eq!(usage_chunk["choices"], serde_json::json!([]));
    assert!(usage_chunk["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // Without include_usage there is no usage chunk.
    let answer = chat(
        &router,
        r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"one two"}]}"#,
    )
    .await;
    assert!(
        !answer.text().contains("\"usage\""),
        "usage was not asked for: {}",
        answer.text()
    );
    assert_eq!(answer.sse_data().last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn a_configured_mock_reply_is_used_stream_and_non_stream() {
    let router = spawn_router(MOCKS, &[]).await;

    let answer = chat(
        &router,
        r#"{"model":"canned","messages":[{"role":"user","content":"anything"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "a fixed answer"
    );
    assert_eq!(answer.headers["x-switchboard-provider"], "fixed");

    let answer = chat(
        &router,
        r#"{"model":"canned","stream":true,"messages":[{"role":"user","content":"anything"}]}"#,
    )
    .await;
    let text: String = answer
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "a fixed answer");
}

#[tokio::test]
async fn a_provider_without_its_key_is_skipped_with_a_clear_503_and_no_call() {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    // UP_KEY is not in the router's environment.
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), &[]).await;

    let answer = chat(
        &router,
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(error["type"], "server_error");
    assert_eq!(answer.headers["x-should-retry"], "false");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("up/m1"), "names the target: {message}");
    assert!(message.contains("UP_KEY"), "names the variable: {message}");
    assert_eq!(upstream.calls(), 0, "a disabled provider is never called");
}

#[tokio::test]
async fn tool_calls_in_a_complete_answer_reach_the_client_unchanged() {
    let tool_answer = r#"{"id":"chatcmpl-t1","object":"chat.completion","created":1700000001,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_Xy12","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Z\u00fcrich\",\"unit\":\"c\"}"}},{"id":"call_Ab34","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}}"#;
    let upstream = MockUpstream::start(vec![Reply::json(200, tool_answer)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;
    let request = r#"{"model":"fast","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"get_time"}}],"tool_choice":"auto","parallel_tool_calls":true}"#;

    let answer = chat(&router, request).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, tool_answer.as_bytes());
    assert_eq!(
        upstream.requests()[0].body,
        request
            .replace(r#""model":"fast""#, r#""model":"m1""#)
            .as_bytes(),
        "tools and tool_choice reach the provider as sent"
    );
}

const MODELS: &str = r#"
[providers.local]
kind = "mock"

[providers.local.models.spare]

[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "UP_KEY"

[providers.off]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "OFF_KEY"

[providers.off.models.declared]

[routes.demo]
targets = ["local/echo"]

[routes.fast]
targets = ["up/m1"]

[routes.dark]
targets = ["off/x1"]
"#;

#[tokio::test]
async fn models_lists_routes_and_the_direct_targets_of_enabled_providers() {
    let router = spawn_router(MODELS, UP_ENV).await;

    let answer = send("GET", &router.url("/v1/models"), &[], "").await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "application/json");
    let body = answer.json();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["dark", "demo", "fast", "local/echo", "local/spare", "up/m1"],
        "named routes always; direct targets only of enabled providers"
    );
    for model in data {
        assert_eq!(model["object"], "model");
        assert!(
            model["created"].as_u64().unwrap() > 1_600_000_000,
            "{model}"
        );
        assert!(model["owned_by"].is_string(), "{model}");
    }
    let owner = |id: &str| data.iter().find(|m| m["id"] == id).unwrap()["owned_by"].clone();
    assert_eq!(owner("up/m1"), "up");
    assert_eq!(owner("demo"), "switchboard");
}

#[tokio::test]
async fn models_by_id_returns_one_model_or_404() {
    let router = spawn_router(MODELS, UP_ENV).await;

    let demo = send("GET", &router.url("/v1/models/demo"), &[], "").await;
    assert_eq!(demo.status, 200, "{}", demo.text());
    let model = demo.json();
    assert_eq!(model["id"], "demo");
    assert_eq!(model["object"], "model");
    assert!(model["created"].is_u64());
    assert!(model["owned_by"].is_string());

    // SDKs escape the slash of a direct target.
    let direct = send("GET", &router.url("/v1/models/up%2Fm1"), &[], "").await;
    assert_eq!(direct.status, 200, "{}", direct.text());
    assert_eq!(direct.json()["id"], "up/m1");

    for missing in ["nope", "off%2Fdeclared"] {
        let answer = send(
            "GET",
            &router.url(&format!("/v1/models/{missing}")),
            &[],
            "",
        )
        .await;
        let error = openai_error(&answer, 404, "model_not_found");
        assert_eq!(error["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let router = spawn_router(MOCKS, &[]).await;

    let health = send("GET", &router.url("/healthz"), &[], "").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let ready = send("GET", &router.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test]
async fn http2_with_prior_knowledge_works_on_the_same_port() {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let (version, answer) = chat_h2(
        &router,
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(version, Version::HTTP_2);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, COMPLETION.as_bytes());
    assert_eq!(answer.headers["x-switchboard-provider"], "up");
    assert!(answer.headers.contains_key("x-request-id"));

    // And a stream over HTTP/2, from the built-in mock of another router.
    let mocks = spawn_router(MOCKS, &[]).await;
    let (version, answer) = chat_h2(
        &mocks,
        r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"over h2"}]}"#,
    )
    .await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.sse_data().last().map(String::as_str), Some("[DONE]"));
}
