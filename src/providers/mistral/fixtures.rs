//! What the Mistral tests share: a target, parsed requests and the adapter's outputs.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::Mistral;
use crate::config::Target;
use crate::error::UpstreamFailure;
use crate::openai::{ChatRequest, Usage};
use crate::providers::{Adapter, Translated};
use crate::sse::SseEvent;

pub(super) fn target() -> Target {
    crate::config::test_target("mistral", "eu", "mistral-small-latest")
}

pub(super) fn chat(raw: &str) -> ChatRequest<'_> {
    ChatRequest::parse(raw.as_bytes()).unwrap()
}

/// The body Mistral would receive for a client request.
pub(super) fn sent(raw: &str) -> Value {
    let request = Mistral.request(&chat(raw), &target()).unwrap();
    assert_eq!(request.path, "/chat/completions");
    serde_json::from_slice(&request.body).unwrap()
}

/// The router's 400 for a client request, as the client sees it.
pub(super) fn refused(raw: &str) -> Value {
    let error = Mistral.request(&chat(raw), &target()).unwrap_err();
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    serde_json::from_slice::<Value>(&error.body()).unwrap()["error"].clone()
}

/// What the client gets for a non-stream Mistral body.
pub(super) fn answered(request: &str, body: &str) -> Result<Translated, UpstreamFailure> {
    Mistral.response(
        &chat(request),
        &target(),
        Bytes::copy_from_slice(body.as_bytes()),
    )
}

/// The frames a stream produces, and how it ended.
pub(super) fn streamed(
    request: &str,
    events: &[&str],
) -> (Vec<String>, Result<(), UpstreamFailure>, Option<Usage>) {
    let mut translator = Mistral.stream(&chat(request), &target());
    let mut out = Vec::new();
    let mut result = Ok(());
    for data in events {
        let event = SseEvent {
            name: None,
            data: Bytes::copy_from_slice(data.as_bytes()),
        };
        result = translator.event(&event, &mut out);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = translator.finish(&mut out);
    }
    let frames = out
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let payload = text.strip_prefix("data: ").unwrap();
            payload.strip_suffix("\n\n").unwrap().to_owned()
        })
        .collect();
    (frames, result, translator.usage())
}

pub(super) const USER_HI: &str = r#"{"role":"user","content":"hi"}"#;
pub(super) const STREAM_WITH_USAGE: &str = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
pub(super) const STREAM_PLAIN: &str =
    r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

pub(super) const TOOL_HISTORY: &str = r#"{"model":"m","messages":[{"role":"user","content":"w?"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"w","arguments":"{}"}}]},
    {"role":"tool","tool_call_id":"call_abc123","content":"sunny"}]}"#;
