//! Provider adapters: one stateless translator per wire format, behind one small trait.
//!
//! An adapter turns an OpenAI chat request into a provider request, and the provider's
//! answer (a body, an event stream or an error) back into the OpenAI wire. Adapters are pure:
//! no sockets, clocks, environment or globals; `upstream` owns the I/O. Adding a provider is
//! one file and one line in [`adapter_for`].

mod anthropic;
mod gemini;
mod mistral;
pub mod mock;
mod openai;
mod qwen;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::config::{ProviderKind, Target};
use crate::error::{ApiError, UpstreamFailure};
use crate::openai::{ChatRequest, Usage};
use crate::sse::SseEvent;

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
    /// Builds one attempt's request against `target`.
    fn request(&self, chat: &ChatRequest<'_>, target: &Target)
    -> Result<UpstreamRequest, ApiError>;

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
