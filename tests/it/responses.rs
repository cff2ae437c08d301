//! `POST /v1/responses`: Responses requests served through the chat pipeline by real mock
//! upstreams (OpenAI wire and Anthropic), answered as `response` objects and typed events.
#![cfg(test)]

use serde_json::{Value, json};

use crate::sdk_async_openai::{TOOL_ARGUMENTS, tool_call_completion, tool_call_stream};
use crate::support::{
    Answer, MockUpstream, RawUpstream, Reply, RouterHandle, SSE_HEAD, Step, UP_ENV, chunk,
    content_chunk, http_chunk, ok, rate_limited, role_chunk, routed, send, spawn_router, stream_of,
};

/// qwen-max's list prices (USD per MTok).
const PRICES: &str =
    "input_per_mtok = 1.6\noutput_per_mtok = 6.4\ncached_input_per_mtok = 0.64\ncurrency = \"USD\"";

/// POSTs `body` to the router's Responses endpoint.
async fn responses(router: &RouterHandle, body: &Value) -> Answer {
    send(
        "POST",
        &router.url("/v1/responses"),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// A router with provider `up` of `kind` at `upstream` (model `m`, priced), routed as `r`.
async fn router(kind: &str, upstream: &MockUpstream) -> RouterHandle {
    let base = match kind {
        "anthropic" => upstream.url(""),
        _ => upstream.url("/v1"),
    };
    let toml = format!(
        r#"
[providers.up]
kind = "{kind}"
base_url = "{base}"
api_key_env = "UP_KEY"

[providers.up.models."m"]
{PRICES}

[routes.r]
targets = ["up/m"]
"#
    );
    spawn_router(&toml, UP_ENV).await
}

/// The events of a Responses stream: (`event:` name, `data` JSON), checking that every
/// `data` names its own event and that `sequence_number` counts up from 0.
fn events(answer: &Answer) -> Vec<(String, Value)> {
    let text = answer.text();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("no event name in {block:?}"));
        let data = block
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("no data in {block:?}"));
        let data: Value =
            serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data:?} in {text}"));
        assert_eq!(data["type"], name, "{block}");
        assert_eq!(data["sequence_number"], out.len(), "{text}");
        out.push((name.to_owned(), data));
    }
    out
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn a_string_input_is_served_as_chat_and_answered_as_a_response_with_its_cost() {
    let upstream = MockUpstream::start(vec![ok("up")]).await;
    let router = router("openai", &upstream).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "input": "Say hi", "instructions": "Be brief.",
                "max_output_tokens": 50, "temperature": 0.5, "store": true,
                "metadata": {"job": "42"}, "user": "u-1"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // 5 x 1.6 + 3 x 6.4 = 27.2 per MTok.
    assert_eq!(answer.headers["x-switchboard-cost"], "0.000027200 USD");
    let sent = upstream.requests()[0].json();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}])
    );
    assert_eq!(sent["max_completion_tokens"], 50);
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["user"], "u-1");
    assert!(
        sent.get("store").is_none() && sent.get("metadata").is_none(),
        "{sent}"
    );

    let body = answer.json();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "m-up");
    assert_eq!(
        body["store"], false,
        "nothing is stored, whatever was asked"
    );
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(body["metadata"], json!({"job": "42"}));
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["max_output_tokens"], 50);
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["tool_choice"], "auto");
    let message = &body["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["status"], "completed");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        message["content"],
        json!([{"type": "output_text", "text": "answer from up", "annotations": [], "logprobs": []}])
    );
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0},
               "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": 8, "cost": {"amount": "0.000027200", "currency": "USD"}})
    );
}

#[tokio::test]
async fn a_function_call_round_trip_goes_through_items() {
    let answer_after_tool = Reply::json(
        200,
        &json!({"id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "18°C in Paris"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46}})
        .to_string(),
    );
    let upstream = MockUpstream::start(vec![tool_call_completion(), answer_after_tool]).await;
    let router = router("openai", &upstream).await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                        "strict": true}]);
    let first = responses(
        &router,
        &json!({"model": "r", "tools": tools, "tool_choice": {"type": "function", "name": "get_weather"},
                "parallel_tool_calls": false,
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}]}),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text());
    let sent = upstream.requests()[0].json();
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                 "strict": true}}])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(sent["parallel_tool_calls"], false);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}])
    );
    let body = first.json();
    assert_eq!(body["tools"], tools, "tools are echoed as sent");
    let call = &body["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_abc");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], TOOL_ARGUMENTS);
    assert_eq!(call["status"], "completed");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));

    // The client sends the conversation back: its input, the call item as received, the output.
    let second = responses(
        &router,
        &json!({"model": "r", "tools": tools, "input": [
            {"role": "user", "content": "Weather in Paris?"},
            call,
            {"type": "function_call_output", "call_id": "call_abc", "output": "{\"temp\":18}"}
        ]}),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text());
    let sent = upstream.requests()[1].json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [{"id": "call_abc", "type": "function",
              "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp\":18}"}
        ])
    );
    assert_eq!(
        second.json()["output"][0]["content"][0]["text"],
        "18°C in Paris"
    );
}

#[tokio::test]
async fn assistant_and_reasoning_items_become_one_assistant_turn() {
    let upstream = MockUpstream::start(vec![ok("up")]).await;
    let router = router("openai", &upstream).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "input": [
            {"type": "message", "role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "greet"}],
             "encrypted_content": "opaque"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}]},
            {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "only-opaque"},
            {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}]}
        ]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        upstream.requests()[0].json()["messages"],
        json!([
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour", "reasoning_content": "greet"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}]}
        ])
    );
}

#[tokio::test]
async fn json_schema_text_format_becomes_the_chat_response_format() {
    let upstream = MockUpstream::start(vec![ok("up")]).await;
    let router = router("openai", &upstream).await;
    let text = json!({"format": {"type": "json_schema", "name": "city", "strict": true,
                                 "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}});
    let answer = responses(
        &router,
        &json!({"model": "r", "input": "A city", "text": text, "reasoning": {"effort": "low"}}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = upstream.requests()[0].json();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "city", "strict": true,
               "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}})
    );
    assert_eq!(sent["reasoning_effort"], "low");
    let body = answer.json();
    assert_eq!(body["text"], text);
    assert_eq!(body["reasoning"]["effort"], "low");
}

#[tokio::test]
async fn stored_state_is_refused_with_a_400_that_says_what_to_send_instead() {
    let upstream = MockUpstream::start(vec![ok("never")]).await;
    let router = router("openai", &upstream).await;
    for (param, extra) in [
        ("previous_response_id", json!("resp_123")),
        ("conversation", json!("conv_1")),
        ("background", json!(true)),
    ] {
        let mut body = json!({"model": "r", "input": "Go on"});
        body[param] = extra;
        let answer = responses(&router, &body).await;
        assert_eq!(answer.status, 400, "{param}: {}", answer.text());
        let error = answer.error();
        assert_eq!(error["code"], "stored_responses_not_supported", "{param}");
        assert_eq!(error["param"], param);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("does not store responses"), "{message}");
        assert!(message.contains("'input' items"), "{message}");
    }
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn unsupported_tools_and_parts_are_refused_by_name() {
    let upstream = MockUpstream::start(vec![ok("never")]).await;
    let router = router("openai", &upstream).await;
    let cases = [
        (
            json!({"model": "r", "input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
            "web_search",
        ),
        (
            json!({"model": "r", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "input[0].content[0]",
            "file_id",
        ),
        (
            json!({"model": "r", "input": [{"type": "web_search_call", "id": "ws_1"}]}),
            "input[0].type",
            "web_search_call",
        ),
        (json!({"model": "r"}), "input", "input"),
    ];
    for (body, param, named) in cases {
        let answer = responses(&router, &body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        let error = answer.error();
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], param, "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(named),
            "{body}: {error}"
        );
    }
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn a_429_fails_over_to_the_next_target() {
    let a = MockUpstream::start(vec![rate_limited()]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let toml = routed("", "", &[("a", a.url("/v1")), ("b", b.url("/v1"))]);
    let router = spawn_router(&toml, UP_ENV).await;
    let answer = responses(&router, &json!({"model": "r", "input": "hi"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-switchboard-provider"], "b");
    assert_eq!(answer.headers["x-switchboard-attempts"], "2");
    assert_eq!(
        answer.json()["output"][0]["content"][0]["text"],
        "answer from b"
    );
}

#[tokio::test]
async fn a_stream_sends_the_typed_events_in_order_with_usage_and_cost_at_the_end() {
    let usage = r#"{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"m-up","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#;
    let upstream = MockUpstream::start(vec![Reply::sse_data(&[
        &role_chunk("up"),
        &content_chunk("up", "answer "),
        &content_chunk("up", "from up"),
        &chunk("up", "{}", r#""stop""#),
        usage,
        "[DONE]",
    ])])
    .await;
    let router = router("openai", &upstream).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let sent = upstream.requests()[0].json();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let events = events(&answer);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let id = &events[0].1["response"]["id"];
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[4].1["delta"], "answer ");
    assert_eq!(events[6].1["text"], "answer from up");
    let item_id = &events[2].1["item"]["id"];
    assert_eq!(&events[8].1["item"]["id"], item_id);
    assert_eq!(events[8].1["item"]["content"][0]["text"], "answer from up");
    let completed = &events[9].1["response"];
    assert_eq!(&completed["id"], id);
    assert_eq!(completed["status"], "completed");
    assert_eq!(&completed["output"][0]["id"], item_id);
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        "answer from up"
    );
    assert_eq!(completed["usage"]["input_tokens"], 5);
    assert_eq!(completed["usage"]["output_tokens"], 3);
    assert_eq!(
        completed["usage"]["cost"],
        json!({"amount": "0.000027200", "currency": "USD"})
    );
    assert!(!answer.text().contains("[DONE]"));
}

#[tokio::test]
async fn a_streamed_tool_call_sends_argument_deltas_and_done() {
    let upstream = MockUpstream::start(vec![tool_call_stream()]).await;
    let router = router("openai", &upstream).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "input": "Weather?", "stream": true,
                "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let events = events(&answer);
    let names = names(&events);
    assert_eq!(names[2], "response.output_item.added");
    assert_eq!(events[2].1["item"]["type"], "function_call");
    assert_eq!(events[2].1["item"]["call_id"], "call_xyz");
    assert_eq!(events[2].1["item"]["name"], "get_weather");
    let deltas: String = events
        .iter()
        .filter(|(name, _)| name == "response.function_call_arguments.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, TOOL_ARGUMENTS);
    let tail = &names[names.len() - 3..];
    assert_eq!(
        tail,
        [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let done = &events[events.len() - 3].1;
    assert_eq!(done["arguments"], TOOL_ARGUMENTS);
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["output"][0]["arguments"], TOOL_ARGUMENTS);
    assert_eq!(completed["output"][0]["status"], "completed");
}

#[tokio::test]
async fn a_stream_broken_after_the_commit_point_ends_with_error_and_response_failed() {
    // At the TCP level: MockUpstream's abort() can lose its last chunk in hyper's buffer.
    let upstream = RawUpstream::start(vec![
        Step::send(SSE_HEAD),
        Step::send(http_chunk(&format!("data: {}\n\n", role_chunk("up")))),
        Step::send(http_chunk(&format!(
            "data: {}\n\n",
            content_chunk("up", "partial")
        ))),
        // The socket closes without the last chunk: the body breaks.
    ])
    .await;
    let toml = routed("", "", &[("up", upstream.url("/v1"))]);
    let router = spawn_router(&toml, UP_ENV).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "input": "hi", "stream": true}),
    )
    .await;
    let events = events(&answer);
    let names = names(&events);
    assert_eq!(
        &names[names.len() - 2..],
        ["error", "response.failed"],
        "{}",
        answer.text()
    );
    assert!(!names.contains(&"response.completed"));
    let failed = &events.last().unwrap().1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], events[names.len() - 2].1["code"]);
    assert_eq!(failed["output"][0]["content"][0]["text"], "partial");
}

/// Anthropic's answer: a thinking block, then text.
const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
  "content":[{"type":"thinking","thinking":"Two and two.","signature":"sig"},{"type":"text","text":"4"}],
  "stop_reason":"end_turn","stop_sequence":null,
  "usage":{"input_tokens":12,"cache_read_input_tokens":8,"output_tokens":5}}"#;

#[tokio::test]
async fn an_anthropic_target_answers_with_reasoning_and_message_items() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANTHROPIC_ANSWER)]).await;
    let router = router("anthropic", &upstream).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "instructions": "Be exact.", "input": "2+2?", "max_output_tokens": 300}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = upstream.requests()[0].json();
    assert_eq!(sent["system"], "Be exact.", "{sent}");
    assert_eq!(sent["max_tokens"], 300);
    let body = answer.json();
    assert_eq!(body["output"][0]["type"], "reasoning");
    assert_eq!(body["output"][0]["content"][0]["text"], "Two and two.");
    assert_eq!(body["output"][1]["type"], "message");
    assert_eq!(body["output"][1]["content"][0]["text"], "4");
    assert_eq!(body["usage"]["input_tokens"], 20);
    assert_eq!(body["usage"]["input_tokens_details"]["cached_tokens"], 8);
    assert_eq!(body["usage"]["output_tokens"], 5);
    assert!(body["usage"]["cost"]["amount"].is_string());
}

#[tokio::test]
async fn an_anthropic_stream_becomes_responses_events() {
    let stream = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&stream)]).await;
    let router = router("anthropic", &upstream).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let events = events(&answer);
    let last = events.last().unwrap();
    // A response cut by the output cap ends as OpenAI ends it: `response.incomplete`.
    assert_eq!(last.0, "response.incomplete", "{}", answer.text());
    let response = &last.1["response"];
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(response["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(response["output"][0]["status"], "incomplete");
    assert_eq!(response["usage"]["input_tokens"], 9);
    assert_eq!(response["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn chat_streams_are_unchanged_beside_responses() {
    let upstream = MockUpstream::start(vec![stream_of("up")]).await;
    let router = router("openai", &upstream).await;
    let answer = send(
        "POST",
        &router.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(answer.sse_data().last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn streamed_reasoning_is_its_own_item_before_the_message() {
    let upstream = MockUpstream::start(vec![Reply::sse_data(&[
        &role_chunk("up"),
        &chunk("up", r#"{"reasoning_content":"Two "}"#, "null"),
        &chunk("up", r#"{"reasoning_content":"and two."}"#, "null"),
        &content_chunk("up", "4"),
        &chunk("up", "{}", r#""stop""#),
        "[DONE]",
    ])])
    .await;
    let router = router("openai", &upstream).await;
    let answer = responses(
        &router,
        &json!({"model": "r", "input": "2+2?", "stream": true}),
    )
    .await;
    let events = events(&answer);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[2].1["item"]["type"], "reasoning");
    assert_eq!(events[6].1["text"], "Two and two.");
    assert_eq!(events[9].1["output_index"], 1);
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["output"][0]["content"][0]["text"], "Two and two.");
    assert_eq!(completed["output"][1]["content"][0]["text"], "4");
    // Without a usage chunk the response still completes, its usage unknown.
    assert!(completed["usage"].is_null());
}
