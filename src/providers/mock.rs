//! `kind = "mock"`: the built-in responder, for demos, failover drills and load tests.
//!
//! It speaks the OpenAI wire from inside the router, so a mock target goes through exactly
//! the same adapter, stream and error paths as a real one, minus the network hop. It echoes the
//! last user message (or a configured reply), reports token usage, streams word by word, and
//! can be told to be slow (`latency`, `chunk_delay`) or to fail (`error_rate`, `error_status`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use crate::config::MockSettings;
use crate::openai::embeddings::{EmbeddingsRequest, Input, ListWriter};
use crate::openai::{ChatRequest, DONE, Role};
use crate::sse::data_frame;
use crate::upstream::UpstreamBody;

use super::{Fnv1a, UpstreamRequest};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Answers `request` as an OpenAI-compatible provider would.
pub async fn respond(
    settings: &MockSettings,
    model: &str,
    request: &UpstreamRequest,
) -> Response<UpstreamBody> {
    if !settings.latency.is_zero() {
        tokio::time::sleep(settings.latency).await;
    }
    if settings.error_rate > 0.0 && fastrand::f64() < settings.error_rate {
        return simulated_failure(settings.error_status);
    }
    if request.path == EMBEDDINGS_PATH {
        return embeddings(model, &request.body);
    }
    // The body is the client's request, already validated at the front door.
    let Ok(chat) = ChatRequest::parse(&request.body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error":{"message":"mock provider could not read the request","type":"invalid_request_error","param":null,"code":null}}),
        );
    };
    let reply = settings
        .reply
        .clone()
        .unwrap_or_else(|| last_user_text(&chat));
    let usage = usage(&chat, &reply);
    let id = format!("chatcmpl-mock-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if chat.is_stream() {
        let chunks = stream_chunks(
            &id,
            created,
            model,
            &reply,
            chat.include_usage().then_some(usage),
        );
        return sse_response(chunks, settings);
    }
    json_response(
        StatusCode::OK,
        json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": usage, "system_fingerprint": null,
        }),
    )
}

/// The path of an embeddings request (see the OpenAI-wire embedder).
const EMBEDDINGS_PATH: &str = "/embeddings";

/// The length of a mock vector when the client names no `dimensions`.
const MOCK_DIMENSIONS: u32 = 8;

/// Deterministic vectors: each value comes from a hash of the input and its position, so the
/// same input always embeds the same, and different inputs differently. The answer is the
/// OpenAI list, in the asked `encoding_format`, with the router's token estimate as usage.
fn embeddings(model: &str, body: &[u8]) -> Response<UpstreamBody> {
    let Ok(request) = EmbeddingsRequest::parse(body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error":{"message":"mock provider could not read the request","type":"invalid_request_error","param":null,"code":null}}),
        );
    };
    let dimensions = request.dimensions.unwrap_or(MOCK_DIMENSIONS).min(4096);
    let mut list = ListWriter::new(request.encoding_format, 64 * request.input.len());
    let mut vector = Vec::with_capacity(dimensions as usize);
    for index in 0..request.input.len() {
        let seed = match &request.input {
            Input::Texts(texts) => texts
                .get(index)
                .map(String::as_bytes)
                .unwrap_or_default()
                .to_vec(),
            Input::Tokens(lists) => lists
                .get(index)
                .map(|tokens| tokens.iter().flat_map(|t| t.to_le_bytes()).collect())
                .unwrap_or_default(),
        };
        vector.clear();
        vector.extend((0..dimensions).map(|position| mock_value(&seed, position)));
        list.push_floats(&vector);
    }
    let body = list.finish(model, request.estimated_tokens());
    let mut response = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One value in [-1, 1), with no more than 16 significant bits so that its decimal form is
/// short.
pub fn mock_value(seed: &[u8], position: u32) -> f32 {
    let mut hash = Fnv1a::default();
    hash.write(seed);
    hash.write(&position.to_le_bytes());
    let bits = (hash.finish() >> 48) as u16;
    f32::from(bits) / 32768.0 - 1.0
}

fn last_user_text(chat: &ChatRequest<'_>) -> String {
    chat.messages()
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.text().into_owned())
        .unwrap_or_default()
}

/// Token counts estimated at four characters a token, as providers roughly do for English.
fn usage(chat: &ChatRequest<'_>, reply: &str) -> serde_json::Value {
    let tokens = |chars: usize| chars.div_ceil(4).max(1) as u64;
    let prompt_chars: usize = chat.messages().iter().map(|m| m.text().len()).sum();
    let prompt = tokens(prompt_chars);
    let completion = tokens(reply.len());
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
           "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}})
}

/// The OpenAI chunk sequence: role, one chunk per word, finish, optional usage, `[DONE]`.
fn stream_chunks(
    id: &str,
    created: u64,
    model: &str,
    reply: &str,
    usage: Option<serde_json::Value>,
) -> Vec<Bytes> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let body = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                          "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        data_frame(body.to_string().as_bytes())
    };
    let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    frames.extend(
        reply
            .split_inclusive(' ')
            .map(|word| chunk(json!({"content": word}), None)),
    );
    frames.push(chunk(json!({}), Some("stop")));
    if let Some(usage) = usage {
        let body = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                          "choices": [], "usage": usage});
        frames.push(data_frame(body.to_string().as_bytes()));
    }
    frames.push(data_frame(DONE));
    frames
}

fn sse_response(frames: Vec<Bytes>, settings: &MockSettings) -> Response<UpstreamBody> {
    let delay = settings.chunk_delay;
    let body = futures_util::stream::iter(frames).then(move |frame| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, hyper::Error>(Frame::data(frame))
    });
    let mut response = Response::new(StreamBody::new(body).boxed_unsync());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<UpstreamBody> {
    let bytes = Bytes::from(body.to_string());
    let mut response = Response::new(
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn simulated_failure(status: StatusCode) -> Response<UpstreamBody> {
    let (error_type, code) = match status {
        StatusCode::TOO_MANY_REQUESTS => ("requests", "rate_limit_exceeded"),
        s if s.is_server_error() => ("server_error", "mock_failure"),
        _ => ("invalid_request_error", "mock_failure"),
    };
    let mut response = json_response(
        status,
        json!({"error": {"message": "simulated failure from the mock provider (error_rate)",
                         "type": error_type, "param": null, "code": code}}),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> MockSettings {
        MockSettings {
            reply: None,
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            error_rate: 0.0,
            error_status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn request(body: &str) -> UpstreamRequest {
        UpstreamRequest {
            method: http::Method::POST,
            path: "/chat/completions".into(),
            headers: http::HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    async fn body_text(response: Response<UpstreamBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn echoes_the_last_user_message_with_usage() {
        let response = respond(
            &settings(),
            "echo",
            &request(r#"{"model":"echo","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":"hello there"}]}"#),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "hello there");
        assert_eq!(body["model"], "echo");
        assert_eq!(body["usage"]["completion_tokens"], 3);
    }

    #[tokio::test]
    async fn streams_word_by_word_and_ends_with_done() {
        let response = respond(
            &settings(),
            "echo",
            &request(r#"{"model":"echo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b c"}]}"#),
        )
        .await;
        let text = body_text(response).await;
        let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
        // role, three words, finish, usage, [DONE]
        assert_eq!(frames.len(), 7, "{text}");
        assert!(frames[1].contains(r#""content":"a ""#));
        assert!(frames[5].contains(r#""choices":[]"#));
        assert_eq!(frames[6], "data: [DONE]");
    }

    #[tokio::test]
    async fn fails_on_demand() {
        let mut failing = settings();
        failing.error_rate = 1.0;
        failing.error_status = StatusCode::TOO_MANY_REQUESTS;
        let response = respond(&failing, "echo", &request("{}")).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }
}
