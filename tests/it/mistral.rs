//! `kind = "mistral"` end to end: a mock upstream that answers like Mistral, and a check of
//! every body the router sent against what Mistral's validator accepts.

use serde_json::{Value, json};

use crate::support::{self, MockUpstream, Reply};

/// Top-level fields Mistral's chat endpoint accepts; anything else is a 422 `extra_forbidden`.
const ACCEPTED: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "parallel_tool_calls",
    "safe_prompt",
    "prediction",
    "prompt_mode",
    "reasoning_effort",
    "prompt_cache_key",
    "guardrails",
    "metadata",
];

/// The fields Mistral accepts on a message of `role`.
fn message_fields(role: &str) -> Option<&'static [&'static str]> {
    match role {
        "system" | "user" => Some(&["role", "content"]),
        "assistant" => Some(&["role", "content", "tool_calls", "prefix"]),
        "tool" => Some(&["role", "content", "tool_call_id", "name"]),
        _ => None,
    }
}

/// The 422 body Mistral sends for a field it does not know.
fn extra_forbidden(loc: &[Value]) -> (u16, Value) {
    let mut full = vec![json!("body")];
    full.extend_from_slice(loc);
    (
        422,
        json!({"detail":[{"type":"extra_forbidden","loc":full,"msg":"Extra inputs are not permitted"}]}),
    )
}

fn is_mistral_id(id: &str) -> bool {
    id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What Mistral would answer instead of a completion, if anything: the same validation the
/// real endpoint runs on the points the adapter must get right.
fn mistral_refusal(body: &Value) -> Option<(u16, Value)> {
    let fields = body.as_object()?;
    if let Some(extra) = fields.keys().find(|k| !ACCEPTED.contains(&k.as_str())) {
        return Some(extra_forbidden(&[json!(extra)]));
    }
    if fields
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        return Some(extra_forbidden(&[json!("tools")]));
    }
    let messages = fields.get("messages")?.as_array()?;
    for (index, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        let Some(allowed) = message_fields(role) else {
            return Some(extra_forbidden(&[
                json!("messages"),
                json!(index),
                json!("role"),
            ]));
        };
        for key in message.as_object()?.keys() {
            if !allowed.contains(&key.as_str()) {
                return Some(extra_forbidden(&[
                    json!("messages"),
                    json!(index),
                    json!(key),
                ]));
            }
        }
        let call_ids = message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|call| &call["id"]);
        for id in call_ids.chain([&message["tool_call_id"]]) {
            if let Some(id) = id.as_str().filter(|id| !is_mistral_id(id)) {
                return Some((
                    400,
                    json!({"object":"error","message":format!("Tool call id was {id} but must be a-z, A-Z, 0-9, with a length of 9."),"type":"invalid_function_call","param":null,"code":"3280"}),
                ));
            }
        }
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            if !call["function"]["arguments"].is_string() {
                return Some(extra_forbidden(&[
                    json!("messages"),
                    json!(index),
                    json!("tool_calls"),
                ]));
            }
        }
    }
    None
}

/// Asserts that Mistral would have accepted every request the mock received, and returns them.
fn accepted_bodies(upstream: &MockUpstream) -> Vec<Value> {
    upstream
        .requests()
        .iter()
        .map(|request| {
            let body = request.json();
            assert_eq!(mistral_refusal(&body), None, "Mistral would refuse {body}");
            body
        })
        .collect()
}

async fn router_for(upstream: &MockUpstream) -> support::RouterHandle {
    let config = support::one_provider("mistral", upstream, "m", "mistral-small-latest");
    support::spawn_router(&config, support::UP_ENV).await
}

#[test]
fn the_schema_check_refuses_what_mistral_refuses() {
    let extra = json!({"model":"x","messages":[],"stream_options":{"include_usage":true}});
    assert_eq!(mistral_refusal(&extra).unwrap().0, 422);
    let named = json!({"model":"x","messages":[{"role":"user","name":"a","content":"hi"}]});
    assert_eq!(mistral_refusal(&named).unwrap().0, 422);
    let foreign = json!({"model":"x","messages":[{"role":"tool","tool_call_id":"call_abc123","content":"x"}]});
    assert_eq!(mistral_refusal(&foreign).unwrap().0, 400);
    let fine = json!({"model":"x","messages":[{"role":"user","content":"hi"}]});
    assert_eq!(mistral_refusal(&fine), None);
}

#[tokio::test]
async fn a_completion_reaches_mistral_clean_and_model_length_comes_back_as_length() {
    let upstream = MockUpstream::start(vec![Reply::json(
        200,
        r#"{"id":"cmpl-e5cc70bb28c444948073e77776eb30ef","object":"chat.completion","created":1760000000,"model":"mistral-small-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Il \u00e9tait une fois 1000.00","tool_calls":null,"prefix":false},"finish_reason":"model_length"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#,
    )])
    .await;
    let router = router_for(&upstream).await;
    let answer = support::chat(
        &router,
        r#"{"model":"m","messages":[{"role":"developer","content":"Be brief."},{"role":"user","name":"ana","content":"Tell me a story"}],"max_completion_tokens":5,"seed":7,"user":"u-1","store":false,"logprobs":false}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    assert_eq!(json["choices"][0]["finish_reason"], "length");
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "Il était une fois 1000.00"
    );
    assert!(
        answer
            .text()
            .contains(r#""content":"Il \u00e9tait une fois 1000.00""#)
    );
    assert_eq!(json["usage"]["total_tokens"], 17);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(
        requests[0].headers["authorization"],
        "Bearer sk-upstream-secret"
    );
    let sent = &accepted_bodies(&upstream)[0];
    assert_eq!(sent["model"], "mistral-small-latest");
    assert_eq!(sent["max_tokens"], 5);
    assert_eq!(sent["random_seed"], 7);
    assert_eq!(
        sent["messages"],
        json!([{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story"}])
    );
}

const CHUNK_ROLE: &str = r#"{"id":"b5e3c1","object":"chat.completion.chunk","created":1760000000,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
const CHUNK_TEXT: &str = r#"{"id":"b5e3c1","object":"chat.completion.chunk","created":1760000000,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"Bonjour"},"finish_reason":null}]}"#;
const CHUNK_LAST: &str = r#"{"id":"b5e3c1","object":"chat.completion.chunk","created":1760000000,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"total_tokens":10,"completion_tokens":2}}"#;

#[tokio::test]
async fn a_stream_gets_openais_separate_usage_chunk_when_asked() {
    let upstream = MockUpstream::start(vec![Reply::sse_data(&[
        CHUNK_ROLE, CHUNK_TEXT, CHUNK_LAST, "[DONE]",
    ])])
    .await;
    let router = router_for(&upstream).await;
    let answer = support::chat(
        &router,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let data = answer.sse_data();
    assert_eq!(data.len(), 5, "{data:#?}");
    assert_eq!(data[0], CHUNK_ROLE);
    assert_eq!(data[1], CHUNK_TEXT);
    let finish: Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish.get("usage").is_none(), "{finish}");
    let usage: Value = serde_json::from_str(&data[3]).unwrap();
    assert_eq!(
        usage,
        json!({"id":"b5e3c1","object":"chat.completion.chunk","created":1760000000,
               "model":"mistral-small-latest","choices":[],
               "usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10}})
    );
    assert_eq!(data[4], "[DONE]");

    let sent = &accepted_bodies(&upstream)[0];
    assert_eq!(sent["stream"], true);
}

#[tokio::test]
async fn a_stream_without_include_usage_shows_no_usage() {
    let upstream =
        MockUpstream::start(vec![Reply::sse_data(&[CHUNK_ROLE, CHUNK_LAST, "[DONE]"])]).await;
    let router = router_for(&upstream).await;
    let answer = support::chat(
        &router,
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    let data = answer.sse_data();
    assert_eq!(data.len(), 3, "{data:#?}");
    assert!(!data[1].contains("usage"), "{}", data[1]);
    assert_eq!(data[2], "[DONE]");
    accepted_bodies(&upstream);
}

#[tokio::test]
async fn foreign_tool_call_ids_reach_mistral_as_nine_alphanumerics() {
    let upstream = MockUpstream::start(vec![Reply::json(
        200,
        r#"{"id":"c2","object":"chat.completion","created":1760000000,"model":"mistral-small-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Sunny in Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":4,"total_tokens":34}}"#,
    )])
    .await;
    let router = router_for(&upstream).await;
    let answer = support::chat(
        &router,
        r#"{"model":"m","messages":[
            {"role":"user","content":"Weather in Paris?"},
            {"role":"assistant","content":null,"refusal":null,"reasoning_content":"Use the tool.","tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_abc123","content":"sunny"}],
          "tools":[{"type":"function","function":{"name":"weather","parameters":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"city":{"type":"string"}}}}}],
          "tool_choice":"required"}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = &accepted_bodies(&upstream)[0];
    let call_id = sent["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
    assert!(is_mistral_id(call_id), "{call_id}");
    assert_eq!(sent["messages"][2]["tool_call_id"], call_id);
    assert_eq!(sent["tool_choice"], "any");
    assert!(
        sent["tools"][0]["function"]["parameters"]
            .get("$schema")
            .is_none()
    );
}

#[tokio::test]
async fn mistral_rate_limits_are_a_429_for_the_client() {
    let upstream = MockUpstream::start(vec![
        Reply::json(
            429,
            r#"{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#,
        )
        .header("retry-after", "3"),
    ])
    .await;
    let router = router_for(&upstream).await;
    let answer = support::chat(
        &router,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 429, "{}", answer.text());
    assert_eq!(answer.error()["code"], "all_targets_rate_limited");
    assert_eq!(answer.headers["retry-after"], "3");
}

#[tokio::test]
async fn mistral_validation_errors_reach_the_client_as_422() {
    let upstream = MockUpstream::start(vec![Reply::json(
        422,
        r#"{"object":"error","message":{"detail":[{"type":"less_than_equal","loc":["body","temperature"],"msg":"Input should be less than or equal to 1.5","input":1.8}]},"type":"invalid_request_error","param":null,"code":"3001"}"#,
    )])
    .await;
    let router = router_for(&upstream).await;
    let answer = support::chat(
        &router,
        r#"{"model":"m","temperature":1.8,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 422, "{}", answer.text());
    let error = answer.error();
    assert_eq!(error["code"], "3001");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("less than or equal to 1.5")
    );
    assert_eq!(upstream.calls(), 1, "a client error is not retried");
}

#[tokio::test]
async fn a_field_mistral_cannot_honour_is_refused_before_any_upstream_call() {
    let upstream = MockUpstream::start(vec![Reply::json(200, "{}")]).await;
    let router = router_for(&upstream).await;
    let answer = support::chat(
        &router,
        r#"{"model":"m","logit_bias":{"50256":-100},"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 400, "{}", answer.text());
    let error = answer.error();
    assert_eq!(error["param"], "logit_bias");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("logit_bias") && message.contains("mistral") && message.contains("'up'")
    );
    assert_eq!(upstream.calls(), 0);
}
