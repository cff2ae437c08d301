//! `kind = "anthropic"` end to end: a mock Messages API on 127.0.0.1 that speaks Anthropic's
//! wire (named SSE events, pings, split tool input, error bodies), behind a real router.

use serde_json::{Value, json};

use crate::support::{self, MockUpstream, Reply, chat};

const KEY: &str = "sk-ant-router-secret";

/// A router with one Anthropic provider at `upstream`, route `claude` → `claude/claude-test`.
async fn router(upstream: &MockUpstream) -> support::RouterHandle {
    let toml = format!(
        r#"
[providers.claude]
kind = "anthropic"
base_url = "{base}"
api_key_env = "CLAUDE_KEY"

[providers.claude.models."claude-test"]
max_tokens = 2048

[routes.claude]
targets = ["claude/claude-test"]
"#,
        base = upstream.url("")
    );
    support::spawn_router(&toml, &[("CLAUDE_KEY", KEY)]).await
}

/// A tool-loop conversation: system prompt, a tool call and two results, a follow-up.
const CONVERSATION: &str = r#"{
  "model": "claude",
  "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
      {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
    {"role": "developer", "content": "Use Celsius."},
    {"role": "user", "content": "And tomorrow?"}
  ],
  "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
}"#;

const ANSWER: &str = r#"{"id":"msg_01XYZ","type":"message","role":"assistant","model":"claude-test-20260101",
  "content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_01","name":"weather","input":{"city":"Paris","day":"tomorrow"}}],
  "stop_reason":"tool_use","stop_sequence":null,
  "usage":{"input_tokens":40,"output_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":60}}"#;

#[tokio::test]
async fn request_shape_and_non_stream_answer() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let router = router(&upstream).await;
    let answer = chat(&router, CONVERSATION).await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    let sent = &upstream.requests()[0];
    assert_eq!(sent.method, http::Method::POST);
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], KEY);
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent.headers["content-type"], "application/json");
    assert!(sent.headers.get("authorization").is_none());
    let body = sent.json();
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 2048);
    assert_eq!(body["system"], "You are terse.\n\nUse Celsius.");
    assert!(body.get("stream").is_none());
    let turns = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        turns[1]["content"],
        json!([
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}
        ])
    );
    assert_eq!(
        turns[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18C"}]},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
            {"type": "text", "text": "And tomorrow?"}
        ])
    );
    assert_eq!(
        body["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));

    let json = answer.json();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["id"], "msg_01XYZ");
    assert_eq!(json["model"], "claude-test-20260101");
    assert!(json["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &json["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "day": "tomorrow"}));
    assert_eq!(
        json["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112,
               "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0}})
    );
}

/// Anthropic's stream for a text block then a tool call, as raw TCP chunks: events are split
/// mid-line and mid-JSON, pings are interleaved, and the tool input arrives in fragments
/// that cut a key, a string and a number in half.
const STREAM: &[&str] = &[
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_stream1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-test-20260101\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":30,\"output_tokens\":1,\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":0}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me ",
    "check.\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"ci\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ty\\\": \\\"Par\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\", \\\"days\\\": 1\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"2}\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":25}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

const STREAM_REQUEST: &str = r#"{"model":"claude","stream":true,"stream_options":{"include_usage":true},
  "messages":[{"role":"user","content":"Weather in Paris for 12 days?"}],
  "tools":[{"type":"function","function":{"name":"weather"}}],"parallel_tool_calls":false}"#;

#[tokio::test]
async fn stream_with_tool_call_fragments() {
    let upstream = MockUpstream::start(vec![Reply::sse_raw(STREAM)]).await;
    let router = router(&upstream).await;
    let answer = chat(&router, STREAM_REQUEST).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "text/event-stream");

    let sent = upstream.requests()[0].json();
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none());
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        upstream.requests()[0].headers["accept"],
        "text/event-stream"
    );

    let data = answer.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["id"], "msg_stream1");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "claude-test-20260101");
        assert_eq!(chunk["created"], chunks[0]["created"]);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    let mut text = String::new();
    let mut arguments = String::new();
    let mut finish = None;
    for chunk in &rest[1..] {
        let choice = &chunk["choices"][0];
        assert!(chunk["usage"].is_null());
        let delta = &choice["delta"];
        assert!(delta.get("role").is_none(), "role only on the first chunk");
        text.push_str(delta["content"].as_str().unwrap_or_default());
        if let Some(call) = delta["tool_calls"].get(0) {
            assert_eq!(call["index"], 0);
            if arguments.is_empty() && call.get("id").is_some() {
                assert_eq!(call["id"], "toolu_9");
                assert_eq!(call["type"], "function");
                assert_eq!(call["function"]["name"], "weather");
            } else {
                assert!(call.get("id").is_none() && call["function"].get("name").is_none());
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap());
        }
        if !choice["finish_reason"].is_null() {
            assert!(finish.is_none(), "one finish chunk");
            finish = Some(choice["finish_reason"].clone());
        }
    }
    assert_eq!(text, "Let me check.");
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Paris", "days": 12})
    );
    assert_eq!(finish.unwrap(), "tool_calls");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 40);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 25);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 65);
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens_details"]["cache_write_tokens"],
        10
    );
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let upstream = MockUpstream::start(vec![Reply::sse_raw(STREAM)]).await;
    let router = router(&upstream).await;
    let answer = chat(
        &router,
        r#"{"model":"claude","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    let data = answer.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert!(data.iter().all(|d| !d.contains("\"usage\"")));
}

#[tokio::test]
async fn error_event_mid_stream_ends_with_an_error_and_no_done() {
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&[
        STREAM[0],
        STREAM[1],
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    ])])
    .await;
    let router = router(&upstream).await;
    let answer = chat(&router, STREAM_REQUEST).await;
    assert_eq!(answer.status, 200);
    let data = answer.sse_data();
    assert!(data.iter().all(|d| d != "[DONE]"), "{data:?}");
    assert!(data[1].contains("\"Hel\""));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "overloaded_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded")
    );
}

#[tokio::test]
async fn stream_cut_short_is_an_error_not_a_clean_finish() {
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&STREAM[..5])]).await;
    let router = router(&upstream).await;
    let answer = chat(&router, STREAM_REQUEST).await;
    let data = answer.sse_data();
    assert!(data.iter().all(|d| d != "[DONE]"));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(last.get("error").is_some(), "{data:?}");
}

fn anthropic_error(kind: &str, message: &str) -> String {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011"})
        .to_string()
}

#[tokio::test]
async fn overloaded_is_503_all_targets_unavailable() {
    let upstream = MockUpstream::start(vec![Reply::json(
        529,
        &anthropic_error("overloaded_error", "Overloaded"),
    )])
    .await;
    let router = router(&upstream).await;
    let answer = chat(&router, CONVERSATION).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.error()["code"], "all_targets_unavailable");
}

#[tokio::test]
async fn rate_limit_is_429_with_retry_after() {
    let upstream = MockUpstream::start(vec![
        Reply::json(
            429,
            &anthropic_error(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            ),
        )
        .header("retry-after", "7"),
    ])
    .await;
    let router = router(&upstream).await;
    let answer = chat(&router, CONVERSATION).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.error()["code"], "all_targets_rate_limited");
    assert_eq!(answer.headers["retry-after"], "7");
}

#[tokio::test]
async fn bad_key_is_502_and_the_upstream_message_is_not_shown() {
    let upstream = MockUpstream::start(vec![Reply::json(
        401,
        &anthropic_error(
            "authentication_error",
            "invalid x-api-key sk-ant-router-se...",
        ),
    )])
    .await;
    let router = router(&upstream).await;
    let answer = chat(&router, CONVERSATION).await;
    assert_eq!(answer.status, 502);
    let text = answer.text();
    assert!(
        !text.contains("x-api-key") && !text.contains("sk-ant"),
        "{text}"
    );
}

#[tokio::test]
async fn invalid_request_is_400_with_the_upstream_message() {
    let upstream = MockUpstream::start(vec![Reply::json(
        400,
        &anthropic_error(
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
        ),
    )])
    .await;
    let router = router(&upstream).await;
    let answer = chat(&router, CONVERSATION).await;
    assert_eq!(answer.status, 400);
    let error = answer.error();
    assert_eq!(
        error["message"],
        "prompt is too long: 210000 tokens > 200000 maximum"
    );
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_request_error");
}

#[tokio::test]
async fn what_claude_cannot_do_is_refused_before_any_upstream_call() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let router = router(&upstream).await;
    let answer = chat(
        &router,
        r#"{"model":"claude","n":2,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 400);
    let error = answer.error();
    assert_eq!(error["param"], "n");
    assert!(error["message"].as_str().unwrap().contains("anthropic"));
    assert_eq!(upstream.calls(), 0);
}

/// The async-openai SDK, pointed at the router, reads Claude's answers as OpenAI ones.
mod sdk {
    use async_openai::Client;
    use async_openai::config::OpenAIConfig;
    use async_openai::types::chat::{
        ChatCompletionMessageToolCalls, CreateChatCompletionRequest, FinishReason,
    };
    use serde_json::{Value, json};

    use super::{ANSWER, STREAM, router};
    use crate::support::{MockUpstream, Reply, SdkStream};

    fn client(router: &crate::support::RouterHandle) -> Client<OpenAIConfig> {
        crate::support::sdk_client(router, "client-key")
    }

    fn request(stream: bool) -> serde_json::Result<CreateChatCompletionRequest> {
        let tools = json!([{"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
        crate::support::sdk_weather_request("claude", tools, stream)
    }

    #[tokio::test]
    async fn non_stream_tool_call_and_usage() {
        let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
        let router = router(&upstream).await;
        let response = client(&router)
            .chat()
            .create(request(false).unwrap())
            .await
            .unwrap();
        let choice = &response.choices[0];
        assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(choice.message.content.as_deref(), Some("Checking."));
        let Some(ChatCompletionMessageToolCalls::Function(call)) =
            choice.message.tool_calls.as_ref().and_then(|c| c.first())
        else {
            panic!("no function call: {choice:?}");
        };
        assert_eq!(call.id, "toolu_01");
        assert_eq!(call.function.name, "weather");
        let arguments: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert_eq!(arguments["city"], "Paris");
        let usage = response.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (100, 12, 112)
        );
        assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(60));
        assert_eq!(upstream.requests()[0].json()["system"], "Be brief.");
    }

    #[tokio::test]
    async fn stream_tool_call_fragments_and_usage() {
        let upstream = MockUpstream::start(vec![Reply::sse_raw(STREAM)]).await;
        let router = router(&upstream).await;
        let stream = client(&router)
            .chat()
            .create_stream(request(true).unwrap())
            .await
            .unwrap();
        let read = SdkStream::read(stream).await;
        assert_eq!(read.text, "Let me check.");
        assert_eq!(read.call_id.as_deref(), Some("toolu_9"));
        assert_eq!(read.arguments_json(), json!({"city": "Paris", "days": 12}));
        assert_eq!(read.finishes, [FinishReason::ToolCalls]);
        let usage = read.usage();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (40, 25));
    }
}
