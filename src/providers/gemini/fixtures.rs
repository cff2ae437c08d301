//! What the gemini tests share.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::Gemini;
use crate::config::Target;
use crate::error::{ApiError, UpstreamFailure};
use crate::openai::{ChatRequest, Usage};
use crate::providers::Adapter;
use crate::sse::SseEvent;

/// The `created` every translated answer must carry.
pub(super) const CREATED: u64 = 1_760_000_000;

/// A target parsed from real configuration text (the only way to make a `Secret`).
pub(super) fn target_with(base_url: &str, model: &str, max_tokens: Option<u32>) -> Target {
    let cap = max_tokens.map_or(String::new(), |m| format!("max_tokens = {m}"));
    let toml = format!(
        "[providers.g]\nkind = \"gemini\"\nbase_url = \"{base_url}\"\napi_key_env = \"GEMINI_KEY\"\n\
         [providers.g.models.\"{model}\"]\n{cap}\n"
    );
    let env = |name: &str| (name == "GEMINI_KEY").then(|| "g-secret-key".to_owned());
    let snapshot = crate::config::parse(&toml, "test.toml", &env).unwrap();
    snapshot.route(&format!("g/{model}")).unwrap().targets[0].clone()
}

/// The usual target: gemini-2.5-flash on the real host, no per-model cap.
pub(super) fn target() -> Target {
    target_with(
        "https://generativelanguage.googleapis.com",
        "gemini-2.5-flash",
        None,
    )
}

/// Parses `body` as the front door would (with `created` set) and hands it to `f`.
pub(super) fn with_chat<R>(body: &Value, f: impl FnOnce(&ChatRequest<'_>) -> R) -> R {
    let raw = serde_json::to_vec(body).unwrap();
    let mut chat = ChatRequest::parse(&raw).unwrap();
    chat.created = CREATED;
    f(&chat)
}

/// The Gemini body for `body`, or the client's error object (from the front door or
/// from the adapter).
pub(super) fn request_with(body: Value, target: &Target) -> Result<Value, Value> {
    let error_json =
        |error: ApiError| serde_json::from_slice::<Value>(&error.body()).unwrap()["error"].clone();
    let raw = serde_json::to_vec(&body).unwrap();
    let mut chat = ChatRequest::parse(&raw).map_err(error_json)?;
    chat.created = CREATED;
    match Gemini.request(&chat, target) {
        Ok(request) => Ok(serde_json::from_slice(&request.body).unwrap()),
        Err(error) => Err(error_json(error)),
    }
}

/// The Gemini body for a request that must translate.
pub(super) fn request(body: Value) -> Value {
    request_with(body, &target()).unwrap()
}

/// The error object for a request that must be refused.
pub(super) fn request_error(body: Value) -> Value {
    request_with(body, &target()).unwrap_err()
}

/// A user message.
pub(super) fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// A chat request with `messages` plus the fields of `extra`.
pub(super) fn chat_body(messages: Value, extra: Value) -> Value {
    let mut body = json!({"model": "gem", "messages": messages});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// Classifies an error answer.
pub(super) fn failure(
    status: u16,
    headers: &[(&'static str, &str)],
    body: &str,
) -> UpstreamFailure {
    let headers: HeaderMap = headers
        .iter()
        .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
        .collect();
    Gemini.failure(
        StatusCode::from_u16(status).unwrap(),
        &headers,
        body.as_bytes(),
    )
}

/// Translates a Gemini answer for the request `chat`: the OpenAI JSON and the usage.
pub(super) fn answer_with(
    chat: Value,
    gemini: Value,
) -> Result<(Value, Option<Usage>), UpstreamFailure> {
    with_chat(&chat, |chat| {
        let bytes = Bytes::from(serde_json::to_vec(&gemini).unwrap());
        Gemini
            .response(chat, &target(), bytes)
            .map(|t| (serde_json::from_slice(&t.body).unwrap(), t.usage))
    })
}

/// Translates a Gemini answer to a one-message request.
pub(super) fn answer(gemini: Value) -> Result<(Value, Option<Usage>), UpstreamFailure> {
    answer_with(chat_body(json!([user("hi")]), json!({})), gemini)
}

pub(super) fn run_stream(
    chat: Value,
    events: &[&str],
) -> (Vec<String>, Result<(), UpstreamFailure>) {
    with_chat(&chat, |chat| {
        let mut translator = Gemini.stream(chat, &target());
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
        let payloads = out
            .iter()
            .map(|frame| {
                let text = std::str::from_utf8(frame).unwrap();
                text.strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap()
                    .to_owned()
            })
            .collect();
        (payloads, result)
    })
}

/// A streaming request with the fields of `extra`.
pub(super) fn stream_chat(extra: Value) -> Value {
    let mut extra = extra;
    extra["stream"] = json!(true);
    chat_body(json!([user("hi")]), extra)
}

/// The JSON chunks among the payloads (`[DONE]` left out).
pub(super) fn parsed(payloads: &[String]) -> Vec<Value> {
    payloads
        .iter()
        .filter(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}
