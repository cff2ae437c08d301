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

#[tokio::test]
async fn images_and_pdfs_in_tool_results_reach_claude() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let router = router(&upstream).await;
    let body = r#"{"model":"claude","messages":[
      {"role":"user","content":[{"type":"text","text":"Read the scan."},
        {"type":"file","file":{"filename":"form.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQK"}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_scan","type":"function","function":{"name":"scan","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"call_scan","content":[{"type":"text","text":"Page 1:"},
        {"type":"image_url","image_url":{"url":"DATA:image/PNG;base64,iVBORw0KGgo="}},
        {"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0xLjcK"}}]}],
      "tools":[{"type":"function","function":{"name":"scan"}}]}"#;
    let answer = chat(&router, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = upstream.requests()[0].json();
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"type": "document", "title": "form.pdf",
               "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}})
    );
    assert_eq!(
        sent["messages"][2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "call_scan", "content": [
            {"type": "text", "text": "Page 1:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjcK"}}
        ]}])
    );

    // An OpenAI file id means nothing to Anthropic: refused before any call, naming it.
    let by_id = body.replace(
        r#""file_data":"data:application/pdf;base64,JVBERi0xLjcK""#,
        r#""file_id":"file-abc123""#,
    );
    let refused = chat(&router, &by_id).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(
        refused.error()["param"],
        "messages[2].content[2].file.file_id"
    );
    assert_eq!(upstream.calls(), 1);
}

/// Extended thinking in a tool loop, against a mock that enforces Anthropic's rule: with
/// thinking on, an assistant turn that calls tools must begin with the thinking that produced
/// it, signature intact.
#[cfg(test)] // Test-only helpers: lets clippy apply its test allowances (unwrap, panic).
pub(crate) mod thinking {
    use serde_json::{Value, json};

    use super::{anthropic_error, router};
    use crate::support::{MockUpstream, Recorded, Reply, chat};

    /// The thinking the mock signs and its signature, which the second turn must send back.
    pub(crate) const THINKING: &str = "The user wants \"Paris\" weather; call the tool.";
    pub(crate) const SIGNATURE: &str = "EqQBCkgIARABGAIiQH5h+/9s/ig==";
    /// The redacted thinking the mock sends after it.
    pub(crate) const REDACTED: &str = "EmwKAhgBEgy3va3pzix/LafPsn4a";

    /// The two blocks as the answer carries them and the next turn must send them back.
    pub(crate) fn blocks() -> Value {
        json!([
            {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": REDACTED}
        ])
    }

    /// Anthropic's rule, as a mock rule: the 400 it answers when an assistant turn with
    /// `tool_use` does not begin with the signed (or redacted) thinking the mock issued.
    pub(crate) fn signed_thinking_rule(request: &Recorded) -> Option<Reply> {
        let body = request.json();
        if body["thinking"]["type"] != "enabled" {
            return None;
        }
        let turns = body["messages"].as_array().cloned().unwrap_or_default();
        for (i, turn) in turns.iter().enumerate() {
            let content = turn["content"].as_array().cloned().unwrap_or_default();
            if turn["role"] != "assistant" || !content.iter().any(|b| b["type"] == "tool_use") {
                continue;
            }
            let blocks = blocks();
            if content[0] == blocks[0] || content[0] == blocks[1] {
                continue;
            }
            let message = match content[0]["type"].as_str() {
                Some("thinking") => {
                    format!("messages.{i}.content.0: Invalid `signature` in `thinking` block")
                }
                found => format!(
                    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, \
                     but found `{}`. When `thinking` is enabled, a final `assistant` message \
                     must start with a thinking block.",
                    found.unwrap_or("nothing")
                ),
            };
            return Some(Reply::json(
                400,
                &anthropic_error("invalid_request_error", &message),
            ));
        }
        None
    }

    /// Turn 1 as a Messages answer: thinking, redacted thinking, a weather call.
    pub(crate) fn first_answer() -> String {
        let mut content = blocks().as_array().cloned().unwrap_or_default();
        content.push(json!({"type": "tool_use", "id": "toolu_T1", "name": "weather", "input": {"city": "Paris"}}));
        json!({"id": "msg_think1", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-5-20250929", "content": content,
               "stop_reason": "tool_use", "stop_sequence": null,
               "usage": {"input_tokens": 50, "output_tokens": 80}})
        .to_string()
    }

    /// Turn 2 as a Messages answer.
    pub(crate) const FINAL_ANSWER: &str = r#"{"id":"msg_think2","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
      "content":[{"type":"text","text":"18C in Paris."}],"stop_reason":"end_turn","stop_sequence":null,
      "usage":{"input_tokens":120,"output_tokens":6}}"#;

    fn event(data: &Value) -> String {
        format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap()
        )
    }

    fn block_delta(index: u64, delta: Value) -> String {
        event(&json!({"type": "content_block_delta", "index": index, "delta": delta}))
    }

    /// Turn 1 as a Messages stream: the thinking in two deltas and its signature in two, the
    /// redacted block, then the call.
    pub(crate) fn first_stream() -> Vec<String> {
        let (head, tail) = THINKING.split_at(10);
        let (sig_head, sig_tail) = SIGNATURE.split_at(7);
        vec![
            event(
                &json!({"type": "message_start", "message": {"id": "msg_think1s", "type": "message",
                "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [],
                "stop_reason": null, "usage": {"input_tokens": 50, "output_tokens": 1}}}),
            ),
            event(&json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}})),
            block_delta(0, json!({"type": "thinking_delta", "thinking": head})),
            block_delta(0, json!({"type": "thinking_delta", "thinking": tail})),
            block_delta(0, json!({"type": "signature_delta", "signature": sig_head})),
            block_delta(0, json!({"type": "signature_delta", "signature": sig_tail})),
            event(&json!({"type": "content_block_stop", "index": 0})),
            event(&json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "redacted_thinking", "data": REDACTED}})),
            event(&json!({"type": "content_block_stop", "index": 1})),
            event(&json!({"type": "content_block_start", "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_T1", "name": "weather", "input": {}}})),
            block_delta(
                2,
                json!({"type": "input_json_delta", "partial_json": "{\"city\": \"Paris\"}"}),
            ),
            event(&json!({"type": "content_block_stop", "index": 2})),
            event(
                &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 80}}),
            ),
            event(&json!({"type": "message_stop"})),
        ]
    }

    /// Turn 2 as a Messages stream.
    pub(crate) fn final_stream() -> Vec<String> {
        vec![
            event(
                &json!({"type": "message_start", "message": {"id": "msg_think2s", "type": "message",
                "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [],
                "stop_reason": null, "usage": {"input_tokens": 120, "output_tokens": 1}}}),
            ),
            event(&json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}})),
            block_delta(0, json!({"type": "text_delta", "text": "18C in Paris."})),
            event(&json!({"type": "content_block_stop", "index": 0})),
            event(
                &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 6}}),
            ),
            event(&json!({"type": "message_stop"})),
        ]
    }

    /// A stream reply from [`first_stream`] or [`final_stream`].
    pub(crate) fn sse(events: &[String]) -> Reply {
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        Reply::sse_raw(&refs)
    }

    /// A client request with thinking at medium effort and the weather tool.
    fn request(stream: bool, messages: &[Value]) -> String {
        json!({"model": "claude", "stream": stream, "reasoning_effort": "medium",
               "messages": messages,
               "tools": [{"type": "function", "function": {"name": "weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]})
        .to_string()
    }

    const QUESTION: &str = r#"{"role": "user", "content": "Weather in Paris?"}"#;

    /// The conversation after turn 1: the question, `assistant` as the client got it, the
    /// tool's answer.
    fn second_turn(assistant: Value) -> Vec<Value> {
        let call = assistant["tool_calls"][0]["id"].clone();
        vec![
            serde_json::from_str(QUESTION).unwrap(),
            assistant,
            json!({"role": "tool", "tool_call_id": call, "content": "18C"}),
        ]
    }

    /// What the upstream got on the second turn: thinking on, the assistant turn beginning
    /// with the blocks byte for byte.
    fn check_second_request(sent: &Recorded) {
        let body = sent.json();
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 8192})
        );
        // The route's default cap (2048) is raised to the budget plus 4096 for the answer.
        assert_eq!(body["max_tokens"], 12288);
        let assistant = &body["messages"][1]["content"];
        assert_eq!(
            assistant.as_array().unwrap()[0..2],
            blocks().as_array().unwrap()[..],
            "{body}"
        );
        assert_eq!(assistant[2]["type"], "tool_use");
        let raw = String::from_utf8(sent.body.to_vec()).unwrap();
        assert!(
            raw.contains(&format!("\"signature\":\"{SIGNATURE}\"")),
            "{raw}"
        );
    }

    #[tokio::test]
    async fn tool_loop_keeps_signed_thinking_non_stream() {
        let upstream = MockUpstream::enforcing(
            vec![
                Reply::json(200, &first_answer()),
                Reply::json(200, FINAL_ANSWER),
            ],
            signed_thinking_rule,
        )
        .await;
        let router = router(&upstream).await;
        let question: Value = serde_json::from_str(QUESTION).unwrap();
        let first = chat(&router, &request(false, &[question])).await;
        assert_eq!(first.status, 200, "{}", first.text());
        let message = first.json()["choices"][0]["message"].clone();
        assert_eq!(message["reasoning_content"], THINKING);
        assert_eq!(message["thinking_blocks"], blocks());
        assert_eq!(message["tool_calls"][0]["id"], "toolu_T1");

        // The mock holds the client to Anthropic's rule: without the blocks, a 400.
        let mut stripped = message.clone();
        stripped.as_object_mut().unwrap().remove("thinking_blocks");
        let refused = chat(&router, &request(false, &second_turn(stripped))).await;
        assert_eq!(refused.status, 400, "{}", refused.text());
        let error = refused.error()["message"].as_str().unwrap().to_owned();
        assert!(error.contains("Expected `thinking`"), "{error}");

        // The message sent back as received is accepted.
        let second = chat(&router, &request(false, &second_turn(message))).await;
        assert_eq!(second.status, 200, "{}", second.text());
        assert_eq!(
            second.json()["choices"][0]["message"]["content"],
            "18C in Paris."
        );
        check_second_request(&upstream.requests()[2]);
    }

    /// Rebuilds the assistant message from a stream the way a client accumulates deltas.
    fn accumulate(data: &[String]) -> Value {
        let mut content = String::new();
        let mut reasoning = String::new();
        let mut thinking_blocks = Vec::new();
        let mut calls: Vec<Value> = Vec::new();
        for chunk in &data[..data.len() - 1] {
            let chunk: Value = serde_json::from_str(chunk).unwrap();
            let Some(delta) = chunk["choices"].get(0).map(|c| &c["delta"]) else {
                continue;
            };
            content.push_str(delta["content"].as_str().unwrap_or_default());
            reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or_default());
            if let Some(blocks) = delta["thinking_blocks"].as_array() {
                thinking_blocks.extend(blocks.iter().cloned());
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap() as usize;
                if index == calls.len() {
                    calls.push(json!({"id": call["id"], "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""}}));
                }
                let arguments = format!(
                    "{}{}",
                    calls[index]["function"]["arguments"].as_str().unwrap(),
                    call["function"]["arguments"].as_str().unwrap_or_default()
                );
                calls[index]["function"]["arguments"] = Value::String(arguments);
            }
        }
        json!({"role": "assistant", "content": (!content.is_empty()).then_some(content),
               "reasoning_content": reasoning, "thinking_blocks": thinking_blocks,
               "tool_calls": calls})
    }

    #[tokio::test]
    async fn tool_loop_keeps_signed_thinking_stream() {
        let upstream = MockUpstream::enforcing(
            vec![sse(&first_stream()), sse(&final_stream())],
            signed_thinking_rule,
        )
        .await;
        let router = router(&upstream).await;
        let question: Value = serde_json::from_str(QUESTION).unwrap();
        let first = chat(&router, &request(true, &[question])).await;
        assert_eq!(first.status, 200, "{}", first.text());
        let data = first.sse_data();
        assert_eq!(data.last().unwrap(), "[DONE]");
        let message = accumulate(&data);
        assert_eq!(message["reasoning_content"], THINKING);
        assert_eq!(message["thinking_blocks"], blocks());
        assert_eq!(message["tool_calls"][0]["id"], "toolu_T1");

        let second = chat(&router, &request(true, &second_turn(message))).await;
        assert_eq!(second.status, 200, "{}", second.text());
        assert_eq!(accumulate(&second.sse_data())["content"], "18C in Paris.");
        check_second_request(&upstream.requests()[1]);
    }
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
