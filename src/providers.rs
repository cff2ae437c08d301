//! Provider adapters: one stateless translator per wire format, behind one small trait.
//!
//! An adapter turns an OpenAI chat request into a provider request, and the provider's
//! answer (a body, an event stream or an error) back into the OpenAI wire. Adapters are pure:
//! no sockets, clocks, environment or globals; `upstream` owns the I/O. Adding a provider is
//! one file and one line in [`adapter_for`]. The few helpers at the end are shared by
//! adapters whose providers need the same thing (request headers, compact JSON, a stable hash).

mod anthropic;
mod capabilities;
mod chunks;
mod gemini;
mod mistral;
pub mod mock;
mod openai;
mod qwen;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::config::{ProviderKind, Target};
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::openai::embeddings::EmbeddingsRequest;
use crate::openai::{ChatRequest, Usage};
use crate::sse::SseEvent;

pub use capabilities::Honours;

/// One attempt's request, relative to the provider's `base_url`.
#[derive(Debug)]
pub struct UpstreamRequest {
    /// HTTP method (always POST for chat).
    pub method: Method,
    /// Appended to the provider's base URL, e.g. `/chat/completions`.
    pub path: String,
    /// Headers, authentication included (marked sensitive).
    pub headers: HeaderMap,
    /// The body to send.
    pub body: Bytes,
}

/// A complete non-stream answer in the OpenAI wire.
#[derive(Debug)]
pub struct Translated {
    /// The OpenAI `chat.completion` JSON.
    pub body: Bytes,
    /// The usage it reports, if any.
    pub usage: Option<Usage>,
}

/// A translator for one wire format.
pub trait Adapter: Send + Sync {
    /// The optional request fields `target`'s provider can honour.
    fn honours(&self, target: &Target) -> &'static Honours;

    /// Builds one attempt's request against `target`, once [`Honours::check`] has passed.
    fn translate(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError>;

    /// One attempt's request against `target`: refused by the provider's [`Honours`] table
    /// first, so every adapter words a refusal the same way, then translated.
    fn request(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        self.honours(target).check(chat, target)?;
        self.translate(chat, target)
    }

    /// Turns a complete 2xx body into OpenAI JSON plus the usage it reports.
    fn response(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure>;

    /// Fresh per-response state for translating the upstream event stream.
    fn stream(&self, chat: &ChatRequest<'_>, target: &Target) -> Box<dyn StreamTranslator>;

    /// Sorts a non-2xx answer into failover-or-not and builds the client-facing message.
    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        openai::classify(status, headers, body)
    }
}

/// A provider's embeddings wire: `POST /v1/embeddings` to it and its answer back into
/// OpenAI's list shape. Failures are sorted by the provider's [`Adapter::failure`].
pub trait Embedder: Sync {
    /// Builds one attempt's request against `target`; an `Err` is a field this provider
    /// cannot honour (another target of the route may).
    fn request(
        &self,
        embeddings: &EmbeddingsRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError>;

    /// Turns a complete 2xx body into OpenAI's list answer plus the usage it reports.
    fn response(
        &self,
        embeddings: &EmbeddingsRequest<'_>,
        target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure>;
}

/// Per-response state that turns upstream events into OpenAI `data:` frames.
pub trait StreamTranslator: Send {
    /// One upstream event in; zero or more complete SSE frames out. An `Err` ends the stream:
    /// the upstream reported an error in-band or sent something unreadable.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure>;

    /// The upstream closed its body. Flushes what is left; an `Err` means the stream was cut
    /// short before the provider's own end marker.
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure>;

    /// The usage seen so far (the provider's final figures once the stream has finished).
    fn usage(&self) -> Option<Usage>;

    /// Whether JSON the upstream writes without `data:` framing must reach [`Self::event`]
    /// (see [`crate::sse::SseDecoder::with_bare_json`]) instead of being ignored.
    fn reads_bare_json(&self) -> bool {
        false
    }
}

/// The adapter for a provider kind.
pub fn adapter_for(kind: ProviderKind) -> &'static dyn Adapter {
    match kind {
        ProviderKind::OpenAi | ProviderKind::Mock => &openai::OpenAi,
        ProviderKind::Qwen => &qwen::Qwen,
        ProviderKind::Mistral => &mistral::Mistral,
        ProviderKind::Anthropic => &anthropic::Anthropic,
        ProviderKind::Gemini => &gemini::Gemini,
    }
}

/// The embeddings wire of a provider kind; `None` for the kinds without one (Anthropic has
/// no embeddings API), which the configuration never lets serve embeddings.
pub fn embedder_for(kind: ProviderKind) -> Option<&'static dyn Embedder> {
    match kind {
        ProviderKind::OpenAi | ProviderKind::Mock => Some(&openai::EMBEDDINGS),
        ProviderKind::Qwen => Some(&qwen::EMBEDDINGS),
        ProviderKind::Mistral => Some(&mistral::embeddings::Embeddings),
        ProviderKind::Gemini => Some(&gemini::embeddings::Embeddings),
        ProviderKind::Anthropic => None,
    }
}

/// The headers of a JSON request: `content-type`, and an `accept` for either a JSON body or
/// an event stream. Adapters add their own authentication with [`add_api_key`].
fn json_headers(stream: bool) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    headers.insert(ACCEPT, HeaderValue::from_static(accept));
    headers
}

/// Adds the provider's API key, when it has one, as `name: {prefix}{key}`.
///
/// The value is marked sensitive so it never reaches logs or debug output. A key that cannot
/// be a header value is the operator's configuration problem, hence an internal error.
fn add_api_key(
    headers: &mut HeaderMap,
    target: &Target,
    name: HeaderName,
    prefix: &str,
) -> Result<(), ApiError> {
    let Some(secret) = &target.provider.secret else {
        return Ok(());
    };
    // Joined by hand: `format!` showed up in the per-request profile.
    let mut joined = String::with_capacity(prefix.len() + secret.expose().len());
    joined.push_str(prefix);
    joined.push_str(secret.expose());
    let mut value = HeaderValue::try_from(joined).map_err(|_| {
        ApiError::Internal(format!(
            "the API key of provider {} is not a valid header value",
            target.provider.name
        ))
    })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// Valid JSON without the whitespace between tokens (providers pretty-print tool arguments,
/// OpenAI sends them compact); key order and every string are kept byte for byte.
fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// 64-bit FNV-1a: tiny, dependency-free and the same across runs and platforms (unlike
/// `DefaultHasher`), for ids that must come out the same every time.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Mixes in `bytes`.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash of everything written so far.
    fn finish(&self) -> u64 {
        self.0
    }
}
/// An upstream event's `data` as text. JSON is UTF-8: an event that is not was corrupted on
/// its way or is hostile, and it ends the stream rather than reach a client.
fn event_text(data: &[u8]) -> Result<&str, UpstreamFailure> {
    std::str::from_utf8(data).map_err(|e| {
        UpstreamFailure::new(
            FailureKind::Stream,
            format!(
                "the provider sent a stream event that is not valid UTF-8 (byte offset {})",
                e.valid_up_to()
            ),
        )
    })
}
