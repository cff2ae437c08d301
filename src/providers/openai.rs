//! `kind = "openai"`: any OpenAI-compatible upstream, and the wire the built-in mock speaks.
//!
//! Byte fidelity: the request is the client's body with only `model` replaced (and, for a
//! stream, `stream_options.include_usage` ensured, so every stream can be accounted), and
//! responses and stream events are forwarded as the upstream sent them. The router reads
//! `usage` (and in-band errors) out of them but never re-serialises them; the one exception,
//! the usage chunk, is [`crate::stream`]'s business.

use std::sync::Arc;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    Adapter, Embedder, Honours, StreamTranslator, Translated, UpstreamRequest, add_api_key,
    event_text, json_headers,
};
use crate::config::{ProviderKind, Target};
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::json_scan::{ERROR, USAGE};
use crate::json_syntax;
use crate::openai::embeddings::{EmbeddingsRequest, EncodingFormat, base64_in_place};
use crate::openai::{ChatRequest, DONE, Usage, UsageOnly};
use crate::payment::{PAYMENT_NEEDED, QuoteHeader};
use crate::retry_after;
use crate::sse::{SseEvent, data_frame};

/// The OpenAI-wire pass-through adapter.
pub(super) struct OpenAi;

/// What the built-in mock can do: everything an OpenAI-wire upstream can, in one choice.
const MOCK: Honours = Honours {
    max_choices: 1,
    ..Honours::OPENAI_WIRE
};

impl Adapter for OpenAi {
    fn honours(&self, target: &Target) -> &'static Honours {
        match target.provider.kind {
            ProviderKind::Mock => &MOCK,
            _ => &Honours::OPENAI_WIRE,
        }
    }

    fn translate(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        Ok(UpstreamRequest {
            method: Method::POST,
            path: "/chat/completions".to_owned(),
            headers: bearer_headers(target, chat.is_stream())?,
            body: chat.body_with_model_and_usage(&target.model),
        })
    }

    fn response(
        &self,
        _chat: &ChatRequest<'_>,
        _target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        let usage = read_usage(&body)?;
        Ok(Translated { body, usage })
    }

    fn stream(&self, _chat: &ChatRequest<'_>, _target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(PassThrough::default())
    }
}

/// The OpenAI embeddings wire, passed through like chat.
pub(super) const EMBEDDINGS: Embeddings = Embeddings { asks_floats: false };

/// `POST /embeddings` with the client's body, `model` replaced; the answer passes as the
/// upstream wrote it, except that floats are encoded when the client asked for `base64`.
pub(super) struct Embeddings {
    /// The upstream only sends floats: a `base64` request asks it for `float`, and the
    /// router encodes the answer.
    pub(super) asks_floats: bool,
}

impl Embedder for Embeddings {
    fn request(
        &self,
        embeddings: &EmbeddingsRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        let body = if self.asks_floats {
            embeddings.body_with_model_asking_floats(&target.model)
        } else {
            embeddings.body_with_model(&target.model)
        };
        Ok(UpstreamRequest {
            method: Method::POST,
            path: "/embeddings".to_owned(),
            headers: bearer_headers(target, false)?,
            body,
        })
    }

    fn response(
        &self,
        embeddings: &EmbeddingsRequest<'_>,
        _target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        embeddings_answer(embeddings, body)
    }
}

/// An OpenAI-shaped embeddings answer: its usage read, and its floats encoded when the
/// client asked for `base64` and the upstream sent floats anyway.
pub(super) fn embeddings_answer(
    embeddings: &EmbeddingsRequest<'_>,
    body: Bytes,
) -> Result<Translated, UpstreamFailure> {
    let usage = read_usage(&body)?;
    let body = match embeddings.encoding_format {
        EncodingFormat::Float => body,
        EncodingFormat::Base64 => base64_in_place(body).map_err(|e| {
            UpstreamFailure::new(
                FailureKind::Unavailable,
                format!("the provider sent a malformed embeddings answer ({e})"),
            )
        })?,
    };
    Ok(Translated { body, usage })
}

/// JSON headers plus `Authorization: Bearer` when the provider has a key.
pub(super) fn bearer_headers(target: &Target, stream: bool) -> Result<HeaderMap, ApiError> {
    let mut headers = json_headers(stream);
    add_api_key(&mut headers, target, AUTHORIZATION, "Bearer ")?;
    Ok(headers)
}

/// The `usage` of a complete OpenAI-wire body; an unreadable body is the upstream's fault.
pub(super) fn read_usage(body: &[u8]) -> Result<Option<Usage>, UpstreamFailure> {
    serde_json::from_slice::<UsageOnly>(body)
        .map(|parsed| parsed.usage)
        .map_err(|e| {
            UpstreamFailure::new(
                FailureKind::Unavailable,
                format!("the provider sent a malformed response body ({e})"),
            )
        })
}

/// Forwards OpenAI-wire events unchanged, noting usage, `[DONE]` and in-band errors.
#[derive(Default)]
pub(super) struct PassThrough {
    done: bool,
    usage: Option<Usage>,
}

impl PassThrough {
    /// Inspects one event without changing it. Returns whether it should be forwarded.
    pub(super) fn inspect(&mut self, data: &[u8]) -> Result<bool, UpstreamFailure> {
        if self.done {
            return Ok(false);
        }
        if data == DONE {
            self.done = true;
            return Ok(true);
        }
        let probe = probe(data)?;
        if let Some(error) = probe.error {
            return Err(in_band_failure(error.get().as_bytes()));
        }
        if probe.usage.is_some() {
            self.usage = probe.usage;
        }
        Ok(true)
    }
}

impl StreamTranslator for PassThrough {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        if self.inspect(&event.data)? {
            out.push(data_frame(&event.data));
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        require_end_marker(self.done)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// The failure for an upstream stream that ended without its end marker.
pub(super) fn cut_short() -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Stream,
        "the provider closed the stream before it finished",
    )
}

/// What [`StreamTranslator::finish`] answers for a provider whose stream has an end marker
/// (`[DONE]`, `message_stop`): fine once the marker was seen, otherwise the body was
/// [cut short](cut_short).
pub(super) fn require_end_marker(end_marker_seen: bool) -> Result<(), UpstreamFailure> {
    if end_marker_seen {
        Ok(())
    } else {
        Err(cut_short())
    }
}

/// The fields of a chunk the router looks at.
#[derive(Default, Deserialize)]
pub(super) struct Probe<'a> {
    #[serde(default)]
    pub(super) usage: Option<Usage>,
    #[serde(borrow, default)]
    pub(super) error: Option<&'a RawValue>,
}

/// Reads `usage` and `error` from a chunk that is JSON (a chunk that is not never reaches the
/// client). Only chunks that can carry them are read into fields; the others are only
/// validated, which costs less (with usage asked for, OpenAI puts `"usage":null` in every
/// chunk: that one needs no fields read).
pub(super) fn probe(data: &[u8]) -> Result<Probe<'_>, UpstreamFailure> {
    let text = event_text(data)?;
    if !USAGE.has_value_starting_with(data, b'{') && !ERROR.occurs_in(data) {
        validate(text)?;
        return Ok(Probe::default());
    }
    serde_json::from_str(text).map_err(|e| malformed_event(&e))
}

/// Checks that an event's text is one JSON value, reading nothing out of it (see
/// [`crate::json_syntax`] for why not serde).
pub(super) fn validate(text: &str) -> Result<(), UpstreamFailure> {
    json_syntax::check(text.as_bytes()).map_err(|e| {
        UpstreamFailure::new(
            FailureKind::Stream,
            format!(
                "the provider sent a malformed stream event (not JSON at byte {})",
                e.offset
            ),
        )
    })
}

/// The failure for a stream event that is not JSON.
fn malformed_event(error: &serde_json::Error) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Stream,
        format!("the provider sent a malformed stream event ({error})"),
    )
}

/// The error object of an OpenAI-style body, in any of the shapes providers use.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ErrorFields {
    pub(super) message: Option<String>,
    pub(super) error_type: Option<String>,
    pub(super) code: Option<String>,
    pub(super) param: Option<String>,
}

impl ErrorFields {
    /// Reads `{"error":{...}}`, a bare `{"message","type","code"}` (Mistral) or
    /// `{"detail":[...]}` (validation errors). Anything else yields empty fields.
    pub(super) fn parse(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let object = value
            .get("error")
            .filter(|e| e.is_object())
            .unwrap_or(&value);
        let text = |key: &str| -> Option<String> {
            match object.get(key)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        };
        Self {
            message: text("message").or_else(|| text("detail")),
            error_type: text("type"),
            code: text("code"),
            param: text("param"),
        }
    }

    /// Whether the type or code is `needle`, in any letter case.
    pub(super) fn is(&self, needle: &str) -> bool {
        [&self.code, &self.error_type]
            .into_iter()
            .flatten()
            .any(|v| v.eq_ignore_ascii_case(needle))
    }
}

/// Classifies a non-2xx answer from an OpenAI-style provider (DESIGN "errors", reference 7.4).
pub(super) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    classify_fields(status, headers, ErrorFields::parse(body))
}

/// Classifies by status and by what the error body says.
pub(super) fn classify_fields(
    status: StatusCode,
    headers: &HeaderMap,
    fields: ErrorFields,
) -> UpstreamFailure {
    // An Alipay price quote (reference/alipay-a2m.md), not a billing failure: the router
    // passes it to the client with its header untouched, without a cooldown.
    if status == StatusCode::PAYMENT_REQUIRED
        && let Some(raw) = headers.get(PAYMENT_NEEDED)
    {
        let mut failure = failure_from(FailureKind::PaymentRequired, status, headers, fields);
        failure.quote = Some(Arc::new(QuoteHeader::new(raw)));
        return failure;
    }
    let kind = match status.as_u16() {
        429 if fields.is("insufficient_quota") => FailureKind::Account,
        429 => FailureKind::RateLimited,
        401..=403 => FailureKind::Account,
        // 408: the provider gave up waiting for the request, so it never ran: safe to retry.
        404 | 408 => FailureKind::Unavailable,
        400..=499 => FailureKind::Rejected,
        _ => FailureKind::Unavailable,
    };
    failure_from(kind, status, headers, fields)
}

/// Builds the client-safe failure. Only the client's own mistakes carry the upstream's words;
/// credential and billing failures never do (their messages can quote the router's key).
pub(super) fn failure_from(
    kind: FailureKind,
    status: StatusCode,
    headers: &HeaderMap,
    fields: ErrorFields,
) -> UpstreamFailure {
    let upstream_said = fields
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let message = match kind {
        FailureKind::Account => format!(
            "the provider refused switchboard's own credentials or billing (HTTP {})",
            status.as_u16()
        ),
        FailureKind::Rejected | FailureKind::PaymentRequired => {
            fields.message.clone().unwrap_or_else(|| {
                format!(
                    "the provider rejected the request (HTTP {})",
                    status.as_u16()
                )
            })
        }
        FailureKind::RateLimited
        | FailureKind::Unavailable
        | FailureKind::Timeout
        | FailureKind::Connect
        | FailureKind::Stream => format!("HTTP {}{upstream_said}", status.as_u16()),
    };
    let mut failure = UpstreamFailure::new(kind, message).with_status(status);
    failure.retry_after = retry_after::from_headers(headers);
    if kind == FailureKind::Rejected {
        failure.error_type = fields.error_type;
        failure.code = fields.code;
        failure.param = fields.param.map(String::into_boxed_str);
    }
    failure
}

/// An `{"error":...}` event inside a 200 stream.
pub(super) fn in_band_failure(error_object: &[u8]) -> UpstreamFailure {
    let fields = ErrorFields::parse(error_object);
    let mut failure = UpstreamFailure::new(
        FailureKind::Stream,
        format!(
            "the provider reported an error mid-stream: {}",
            fields.message.as_deref().unwrap_or("no message")
        ),
    );
    failure.code = fields.code;
    failure
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn request(kind: &str, n: u32) -> Result<UpstreamRequest, ApiError> {
        let target = crate::config::test_target(kind, "p", "m");
        let raw =
            format!(r#"{{"model":"m","n":{n},"messages":[{{"role":"user","content":"hi"}}]}}"#);
        let chat = ChatRequest::parse(raw.as_bytes()).unwrap();
        OpenAi.request(&chat, &target)
    }

    #[test]
    fn the_mock_refuses_several_choices_and_openai_passes_them() {
        assert!(request("openai", 128).is_ok());
        assert!(request("mock", 1).is_ok());
        let error = request("mock", 2).unwrap_err();
        let body: serde_json::Value = serde_json::from_slice(&error.body()).unwrap();
        assert_eq!(body["error"]["param"], "n");
        assert_eq!(body["error"]["code"], "unsupported_parameter");
    }

    fn classify_json(status: u16, body: &str) -> UpstreamFailure {
        classify(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn statuses_map_to_failure_kinds() {
        let cases = [
            (
                429,
                r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
                FailureKind::RateLimited,
            ),
            (
                429,
                r#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                FailureKind::Account,
            ),
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-abc***"}}"#,
                FailureKind::Account,
            ),
            (402, "{}", FailureKind::Account),
            (403, "{}", FailureKind::Account),
            (404, "{}", FailureKind::Unavailable),
            (408, "{}", FailureKind::Unavailable),
            (
                400,
                r#"{"error":{"message":"bad","code":"context_length_exceeded","param":"messages"}}"#,
                FailureKind::Rejected,
            ),
            (413, "not json", FailureKind::Rejected),
            (422, "{}", FailureKind::Rejected),
            (500, "{}", FailureKind::Unavailable),
            (502, "", FailureKind::Unavailable),
            (503, "{}", FailureKind::Unavailable),
            (504, "{}", FailureKind::Unavailable),
            (529, "{}", FailureKind::Unavailable),
        ];
        for (status, body, kind) in cases {
            assert_eq!(classify_json(status, body).kind, kind, "{status} {body}");
        }
    }

    #[test]
    fn a_402_with_a_payment_quote_is_not_a_billing_failure() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "payment-needed",
            HeaderValue::from_static("eyJhbW91bnQiOiIwLjAxIn0"),
        );
        let quote = classify(
            StatusCode::PAYMENT_REQUIRED,
            &headers,
            br#"{"code":"Payment-Needed"}"#,
        );
        assert_eq!(quote.kind, FailureKind::PaymentRequired);
        assert_eq!(quote.status, Some(StatusCode::PAYMENT_REQUIRED));
        let header = quote.quote.unwrap();
        assert_eq!(header.raw, "eyJhbW91bnQiOiIwLjAxIn0");
        // Missing fields: the header is still passed on, only unread.
        assert!(header.quote.is_none());
        let billing = classify(StatusCode::PAYMENT_REQUIRED, &HeaderMap::new(), b"{}");
        assert_eq!(billing.kind, FailureKind::Account);
    }

    #[test]
    fn credential_failures_never_echo_the_upstream_message() {
        let failure = classify_json(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-abc123"}}"#,
        );
        assert!(!failure.message.contains("sk-abc123"));
    }

    #[test]
    fn rejected_requests_keep_type_code_and_param() {
        let failure = classify_json(
            400,
            r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded","param":"messages"}}"#,
        );
        assert_eq!(failure.message, "too long");
        assert_eq!(failure.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(failure.param.as_deref(), Some("messages"));
    }

    #[test]
    fn retry_after_is_read() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        let failure = classify(StatusCode::TOO_MANY_REQUESTS, &headers, b"{}");
        assert_eq!(failure.retry_after, Some(std::time::Duration::from_secs(7)));
    }

    #[test]
    fn pass_through_forwards_bytes_and_reads_usage() {
        let mut stream = PassThrough::default();
        let mut out = Vec::new();
        let chunk = br#"{"choices":[{"delta":{"content":"caf\u00e9 1000.00"}}]}"#;
        let usage =
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        for data in [&chunk[..], &usage[..], DONE] {
            let event = SseEvent {
                name: None,
                data: Bytes::copy_from_slice(data),
            };
            stream.event(&event, &mut out).unwrap();
        }
        stream.finish(&mut out).unwrap();
        assert_eq!(out[0], data_frame(chunk));
        assert_eq!(out[2], data_frame(DONE));
        assert_eq!(stream.usage().unwrap().total_tokens, 7);
    }

    #[test]
    fn cumulative_usage_in_every_chunk_is_taken_last_never_summed() {
        // DashScope may repeat running totals on every chunk: the last figures are the usage.
        let mut stream = PassThrough::default();
        let chunks = [
            r#"{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}}"#,
            r#"{"choices":[{"delta":{"content":"b"}}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        ];
        for chunk in chunks {
            let event = SseEvent {
                name: None,
                data: Bytes::from_static(chunk.as_bytes()),
            };
            stream.event(&event, &mut Vec::new()).unwrap();
        }
        let usage = stream.usage().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens
            ),
            (10, 3, 4)
        );
    }

    #[test]
    fn pass_through_reports_in_band_errors_and_truncation() {
        let mut stream = PassThrough::default();
        let event = SseEvent {
            name: None,
            data: Bytes::from_static(br#"{"error":{"message":"Output data may contain inappropriate content.","code":"data_inspection_failed"}}"#),
        };
        let failure = stream.event(&event, &mut Vec::new()).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Stream);
        assert_eq!(failure.code.as_deref(), Some("data_inspection_failed"));
        assert!(PassThrough::default().finish(&mut Vec::new()).is_err());
    }

    /// `text` with a Latin-1 `é` (not UTF-8) in place of each `~`.
    fn latin1(text: &str) -> Vec<u8> {
        text.bytes()
            .map(|b| if b == b'~' { 0xe9 } else { b })
            .collect()
    }

    #[test]
    fn pass_through_refuses_events_that_are_not_json_or_not_utf8() {
        let cases = [
            b"{not json".to_vec(),
            br#"{"choices":[{"delta":{"content":"cut"}}]"#.to_vec(),
            latin1(r#"{"choices":[{"delta":{"content":"caf~"}}]}"#),
            // A usage chunk whose unread members are not UTF-8.
            latin1(
                r#"{"id":"~","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            ),
        ];
        for data in cases {
            let mut stream = PassThrough::default();
            let mut out = Vec::new();
            let event = SseEvent {
                name: None,
                data: Bytes::from(data.clone()),
            };
            let failure = stream.event(&event, &mut out).unwrap_err();
            let shown = String::from_utf8_lossy(&data);
            assert_eq!(failure.kind, FailureKind::Stream, "{shown}");
            assert!(out.is_empty(), "{shown} was forwarded");
        }
    }

    #[test]
    fn pass_through_refuses_events_that_are_not_json_in_utf8() {
        let garbage: [&[u8]; 5] = [
            b"",
            b"1e400 x",
            b"[DONE] ",
            b"{\"choices\":[",
            b"{\"a\":\"\xc3\"}",
        ];
        for data in garbage {
            let mut stream = PassThrough::default();
            let mut out = Vec::new();
            let event = SseEvent {
                name: None,
                data: Bytes::copy_from_slice(data),
            };
            let failure = stream.event(&event, &mut out).unwrap_err();
            assert_eq!(failure.kind, FailureKind::Stream, "{data:?}");
            assert!(out.is_empty(), "{data:?} was forwarded");
        }
    }

    #[test]
    fn error_fields_read_every_provider_shape() {
        let mistral = ErrorFields::parse(br#"{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#);
        assert_eq!(mistral.code.as_deref(), Some("1300"));
        assert!(mistral.is("rate_limited"));
        let detail =
            ErrorFields::parse(br#"{"detail":[{"type":"extra_forbidden","loc":["body","x"]}]}"#);
        assert!(detail.message.unwrap().contains("extra_forbidden"));
        assert_eq!(ErrorFields::parse(b"<html>"), ErrorFields::default());
    }
}
