//! Provider keys never leave the router. Mock upstreams of the OpenAI, Anthropic and Gemini
//! wires echo the router's own provider key, whole and as a 20-character prefix followed by
//! "...", in error bodies (400, 429, 500) and in stream error events before and after the
//! commit point. Neither the client nor the process log (captured by a process-wide
//! subscriber, since the router's workers run on threads of their own) nor the usage log may
//! carry the key or any 8-character run of it; they carry `[redacted]` instead.
#![cfg(test)]

use serde_json::json;

use crate::logging::{log_lines_with, process_log};
use crate::support::{Answer, MockUpstream, Reply, TempDir, chat, spawn_router};

const OPENAI_KEY: &str = "sk-proj-R3dactOpenAiK3y-abcdefghijklmnopqrstuvwxyz0123";
const ANTHROPIC_KEY: &str = "sk-ant-api03-R3dactClaudeK3y-ABCDEFGHIJKLMNOPQRSTU";
const GEMINI_KEY: &str = "AIzaSyR3dactGoogleK3y-0123456789abcdefghij";

/// Asserts that no 8-character run of `key` appears in `text`.
fn assert_no_run_of(key: &str, text: &str, place: &str) {
    for run in key.as_bytes().windows(8) {
        let run = std::str::from_utf8(run).unwrap();
        assert!(
            !text.contains(run),
            "`{run}` of the key leaked into {place}: {text}"
        );
    }
}

/// The two ways a provider echoes a key, each with a tag that finds its log lines.
fn echoes(key: &str, case: &str) -> [(String, String); 2] {
    ["whole", "prefix"].map(|form| {
        let tag = format!("case-{case}-{form}");
        let shown = match form {
            "whole" => key.to_owned(),
            _ => format!("{}...", &key[..20]),
        };
        (
            tag.clone(),
            format!("Incorrect API key provided: {shown} ({tag})"),
        )
    })
}

/// Asserts the client's answer and the log lines of `tag` are clean and show the redaction.
fn assert_redacted(key: &str, tag: &str, answer: &Answer) {
    let body = String::from_utf8_lossy(&answer.body);
    assert_no_run_of(key, &body, "the client's answer");
    for (name, value) in &answer.headers {
        assert_no_run_of(
            key,
            &String::from_utf8_lossy(value.as_bytes()),
            name.as_str(),
        );
    }
    assert!(body.contains("[redacted]"), "{tag}: {body}");
    let lines = log_lines_with(tag);
    assert!(
        !lines.is_empty(),
        "{tag}: the failure was not logged: {}",
        String::from_utf8_lossy(&process_log().lock().unwrap())
    );
    for line in &lines {
        assert_no_run_of(key, line, "the process log");
        assert!(line.contains("[redacted]"), "{tag}: {line}");
    }
}

/// The wires under test: how each configures a provider and shapes its errors and streams.
#[derive(Clone, Copy)]
enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Wire {
    fn key(self) -> &'static str {
        match self {
            Self::OpenAi => OPENAI_KEY,
            Self::Anthropic => ANTHROPIC_KEY,
            Self::Gemini => GEMINI_KEY,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }

    async fn router(self, upstream: &MockUpstream, extra: &str) -> crate::support::RouterHandle {
        let base = match self {
            Self::OpenAi => upstream.url("/v1"),
            Self::Anthropic | Self::Gemini => upstream.url(""),
        };
        let toml = format!(
            r#"
[providers.up]
kind = "{kind}"
base_url = "{base}"
api_key_env = "UP_KEY"

[providers.up.models."m"]
max_tokens = 100

[routes.r]
targets = ["up/m"]
{extra}"#,
            kind = self.name()
        );
        spawn_router(&toml, &[("UP_KEY", self.key())]).await
    }

    /// An error body with `message` (and, on the OpenAI wire, the key in `code` and `param`).
    fn error_body(self, status: u16, message: &str) -> String {
        let key = self.key();
        match self {
            Self::OpenAi => json!({"error": {"message": message, "type": "invalid_request_error",
                "param": format!("key {key}"), "code": format!("bad_key_{key}")}}),
            Self::Anthropic => json!({"type": "error",
                "error": {"type": "invalid_request_error", "message": message}}),
            Self::Gemini => json!({"error": {"code": status, "message": message,
                "status": "INVALID_ARGUMENT"}}),
        }
        .to_string()
    }

    /// A 200 stream that fails with `message`: at once, or after its first words.
    fn failing_stream(self, message: &str, after_commit: bool) -> Reply {
        match self {
            Self::OpenAi => {
                let error = json!({"error": {"message": message, "type": "server_error",
                    "code": format!("k_{}", self.key())}})
                .to_string();
                let words = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#;
                let events: &[&str] = if after_commit {
                    &[words, &error]
                } else {
                    &[&error]
                };
                Reply::sse_data(events)
            }
            Self::Anthropic => {
                let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n";
                let words = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n";
                let error = format!(
                    "event: error\ndata: {}\n\n",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": message}})
                );
                let events: Vec<&str> = if after_commit {
                    vec![start, words, &error]
                } else {
                    vec![start, &error]
                };
                Reply::sse_raw(&events)
            }
            Self::Gemini => {
                let words = r#"{"candidates": [{"content": {"parts": [{"text": "Hel"}],"role": "model"},"index": 0}],"modelVersion": "m","responseId": "r"}"#;
                let error = json!({"error": {"code": 503, "message": message,
                    "status": "UNAVAILABLE"}})
                .to_string();
                let events: Vec<String> = if after_commit {
                    vec![words.to_owned(), error]
                } else {
                    vec![error]
                };
                let framed: Vec<String> = events
                    .iter()
                    .map(|e| format!("data: {e}\r\n\r\n"))
                    .collect();
                let refs: Vec<&str> = framed.iter().map(String::as_str).collect();
                Reply::sse_raw(&refs)
            }
        }
    }
}

const REQUEST: &str = r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM_REQUEST: &str =
    r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// Every error status and stream failure of `wire`, each echoing the key both ways.
async fn keys_never_leave_the_router(wire: Wire) {
    process_log();
    let key = wire.key();
    for (status, expected) in [(400, 400), (429, 429), (500, 503)] {
        for (tag, message) in echoes(key, &format!("{}-{status}", wire.name())) {
            let upstream = MockUpstream::start(vec![Reply::json(
                status,
                &wire.error_body(status, &message),
            )])
            .await;
            let router = wire.router(&upstream, "").await;
            let answer = chat(&router, REQUEST).await;
            assert_eq!(answer.status.as_u16(), expected, "{tag}: {}", answer.text());
            assert_redacted(key, &tag, &answer);
        }
    }
    for (phase, after_commit) in [("before-commit", false), ("after-commit", true)] {
        for (tag, message) in echoes(key, &format!("{}-stream-{phase}", wire.name())) {
            let upstream =
                MockUpstream::start(vec![wire.failing_stream(&message, after_commit)]).await;
            let router = wire.router(&upstream, "").await;
            let answer = chat(&router, STREAM_REQUEST).await;
            let expected = if after_commit { 200 } else { 503 };
            assert_eq!(answer.status.as_u16(), expected, "{tag}: {}", answer.text());
            assert_redacted(key, &tag, &answer);
        }
    }
}

#[tokio::test]
async fn openai_wire_keys_never_leave_the_router() {
    keys_never_leave_the_router(Wire::OpenAi).await;
}

#[tokio::test]
async fn anthropic_wire_keys_never_leave_the_router() {
    keys_never_leave_the_router(Wire::Anthropic).await;
}

#[tokio::test]
async fn gemini_wire_keys_never_leave_the_router() {
    keys_never_leave_the_router(Wire::Gemini).await;
}

#[tokio::test]
async fn the_usage_log_error_field_carries_no_key() {
    let dir = TempDir::new("redaction");
    let path = dir.path().join("usage.jsonl");
    let usage_log = format!("\n[usage_log]\npath = \"{}\"\n", path.display());
    let [(_, message), _] = echoes(OPENAI_KEY, "usage-log");
    let upstream = MockUpstream::start(vec![Reply::json(
        400,
        &Wire::OpenAi.error_body(400, &message),
    )])
    .await;
    let router = Wire::OpenAi.router(&upstream, &usage_log).await;
    let answer = chat(&router, REQUEST).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.error()["code"]
            .as_str()
            .unwrap()
            .contains("[redacted]")
    );
    router.shutdown().await;
    let logged = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(logged.trim()).unwrap();
    let error = line["error"].as_str().unwrap();
    assert_eq!(error, "bad_key_[redacted]");
    assert_no_run_of(OPENAI_KEY, &logged, "the usage log");
}

#[tokio::test]
async fn client_keys_are_redacted_too() {
    // A provider that quotes the request's Authorization header back, say in a proxy error.
    let client_key = "sb-client-R3dactClientK3y-0123456789";
    process_log();
    let message = format!("upstream proxy saw Authorization: Bearer {client_key} (case-client)");
    let upstream = MockUpstream::start(vec![Reply::json(
        500,
        &json!({"error": {"message": message}}).to_string(),
    )])
    .await;
    let keys = "\n[[keys]]\nname = \"app\"\nkey_env = \"APP_KEY\"\n";
    let toml = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[routes.r]\ntargets = [\"up/m\"]\n{keys}",
        upstream.url("/v1")
    );
    let router = spawn_router(&toml, &[("APP_KEY", client_key)]).await;
    let auth = format!("Bearer {client_key}");
    let answer =
        crate::support::chat_with(&router, &[("authorization", auth.as_str())], REQUEST).await;
    assert_eq!(answer.status, 503);
    assert_redacted(client_key, "case-client", &answer);
}
