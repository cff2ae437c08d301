//! The official `openai` Python SDK's Responses API (tests/python/responses_compat.py) against
//! `/v1/responses`, once per wire format: an OpenAI-wire, an Anthropic and a Gemini target,
//! each a mock upstream scripted for the script's calls. Skipped like the other SDK tests
//! when there is no Python with `openai` (see [`crate::sdk_python`]).
#![cfg(test)]

use serde_json::json;

use crate::gemini::gemini_sse;
use crate::sdk_async_openai::{tool_call_completion, tool_call_stream};
use crate::sdk_python::{
    ANTHROPIC_TOOL_ANSWER, ANTHROPIC_TOOL_STREAM, GEMINI_MODEL, GEMINI_TOOL_ANSWER,
    GEMINI_TOOL_STREAM, python, run_script,
};
use crate::support::{
    MockUpstream, Reply, RouterHandle, content_chunk, ok, role_chunk, spawn_router,
};

const CLIENT_KEY: &str = "sk-switchboard-responses-sdk-test";

/// The checks the script must pass, none skipped.
const CHECKS: [&str; 6] = [
    "responses.create",
    "responses.create stream=True",
    "responses.stream get_final_response",
    "function call round trip",
    "function call stream",
    "previous_response_id refused",
];

/// Runs the script against `router`'s route `model`, whose every text answer is `text`.
async fn run_checks(python: &std::path::Path, router: &RouterHandle, model: &str, text: &str) {
    let args = [
        "--base-url",
        &router.url("/v1"),
        "--api-key",
        CLIENT_KEY,
        "--model",
        model,
        "--text",
        text,
    ]
    .map(str::to_owned);
    let run = run_script(python, "responses_compat.py", &args).await;
    let report = format!(
        "responses_compat.py --model {model} exited with {}\n--- stdout\n{}--- stderr\n{}",
        run.status, run.stdout, run.stderr
    );
    assert!(run.status.success(), "{report}");
    for check in CHECKS {
        assert!(
            run.stdout.contains(&format!("ok   {check}")),
            "check {check:?} did not pass\n{report}"
        );
    }
}

/// An OpenAI-wire text stream from `who` with its usage chunk.
fn openai_text_stream(who: &str) -> Reply {
    let usage = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                       "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
    .to_string();
    Reply::sse_data(&[
        &role_chunk(who),
        &content_chunk(who, "answer "),
        &content_chunk(who, &format!("from {who}")),
        &crate::support::chunk(who, "{}", r#""stop""#),
        &usage,
        "[DONE]",
    ])
}

/// Anthropic's text answer "answer from claude".
fn anthropic_text() -> Reply {
    Reply::json(
        200,
        r#"{"id":"msg_t","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"answer from claude"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":4}}"#,
    )
}

/// Anthropic's stream of the same text.
fn anthropic_text_stream() -> Reply {
    Reply::sse_raw(&[
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"answer from \"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"claude\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ])
}

/// Gemini's text answer "answer from gemini".
fn gemini_text() -> Reply {
    Reply::json(
        200,
        r#"{"candidates":[{"content":{"parts":[{"text":"answer from gemini"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4,"totalTokenCount":13},"modelVersion":"gemini-2.5-flash"}"#,
    )
}

/// Gemini's stream of the same text.
fn gemini_text_stream() -> Reply {
    gemini_sse(&[
        r#"{"candidates":[{"content":{"parts":[{"text":"answer from "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2,"totalTokenCount":11},"modelVersion":"gemini-2.5-flash"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"gemini"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4,"totalTokenCount":13},"modelVersion":"gemini-2.5-flash"}"#,
    ])
}

#[tokio::test]
async fn official_python_sdk_uses_the_responses_api_on_every_wire() {
    let Some(python) = python("official_python_sdk_uses_the_responses_api_on_every_wire").await
    else {
        return;
    };
    // In the script's order: text, text stream twice, the forced call, the answer after the
    // call's output, the call streamed.
    let openai = MockUpstream::start(vec![
        ok("up"),
        openai_text_stream("up"),
        openai_text_stream("up"),
        tool_call_completion(),
        ok("up"),
        tool_call_stream(),
    ])
    .await;
    let anthropic = MockUpstream::start(vec![
        anthropic_text(),
        anthropic_text_stream(),
        anthropic_text_stream(),
        Reply::json(200, ANTHROPIC_TOOL_ANSWER),
        anthropic_text(),
        Reply::sse_raw(ANTHROPIC_TOOL_STREAM),
    ])
    .await;
    let gemini = MockUpstream::start(vec![
        gemini_text(),
        gemini_text_stream(),
        gemini_text_stream(),
        Reply::json(200, GEMINI_TOOL_ANSWER),
        gemini_text(),
        gemini_sse(&GEMINI_TOOL_STREAM),
    ])
    .await;
    let toml = format!(
        r#"
[[keys]]
name = "python-sdk"
key_env = "PY_SDK_KEY"

[providers.up]
kind = "openai"
base_url = "{openai}"
api_key_env = "UP_KEY"

[providers.up.models."tool-model"]

[providers.claude]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "CLAUDE_KEY"

[providers.claude.models."claude-sonnet-4-5"]

[providers.g]
kind = "gemini"
base_url = "{gemini}"
api_key_env = "GEMINI_KEY"

[providers.g.models."{GEMINI_MODEL}"]

[routes.openai-wire]
targets = ["up/tool-model"]

[routes.claude]
targets = ["claude/claude-sonnet-4-5"]

[routes.gemini]
targets = ["g/{GEMINI_MODEL}"]
"#,
        openai = openai.url("/v1"),
        anthropic = anthropic.url(""),
        gemini = gemini.url(""),
    );
    let router = spawn_router(
        &toml,
        &[
            ("PY_SDK_KEY", CLIENT_KEY),
            ("UP_KEY", "sk-upstream-secret"),
            ("CLAUDE_KEY", "sk-ant-upstream-secret"),
            ("GEMINI_KEY", "gemini-upstream-secret"),
        ],
    )
    .await;

    run_checks(&python, &router, "openai-wire", "answer from up").await;
    assert_eq!(openai.calls(), 6);
    // The round trip's second request carried the call and its output as chat messages.
    let round_trip = openai.requests()[4].json();
    assert_eq!(round_trip["messages"][1]["tool_calls"][0]["id"], "call_abc");
    assert_eq!(round_trip["messages"][2]["role"], "tool");
    assert_eq!(round_trip["messages"][2]["tool_call_id"], "call_abc");

    run_checks(&python, &router, "claude", "answer from claude").await;
    assert_eq!(anthropic.calls(), 6);
    let round_trip = anthropic.requests()[4].json();
    assert_eq!(
        round_trip["messages"][1]["content"][0]["type"], "tool_use",
        "{round_trip}"
    );
    assert_eq!(
        round_trip["messages"][2]["content"][0]["type"], "tool_result",
        "{round_trip}"
    );

    run_checks(&python, &router, "gemini", "answer from gemini").await;
    assert_eq!(gemini.calls(), 6);
}
