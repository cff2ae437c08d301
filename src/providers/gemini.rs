//! `kind = "gemini"`: Google's Gemini API (`generativelanguage`, v1beta, `generateContent`).
//!
//! The OpenAI request is rebuilt as a `GenerateContentRequest` (reference/provider-apis.md
//! section 3.2, mapping table 7.1), the answer and its SSE chunks are rebuilt as OpenAI
//! `chat.completion` / `chat.completion.chunk` JSON (3.3, 3.4, 7.2, 7.3), and Google's error
//! bodies are classified by the reason they carry, not by the status alone (3.5, 7.4).
//!
//! Everything here is a pure function of the client's request, the target and the upstream's
//! bytes: no I/O, no clock (`created` comes from [`ChatRequest::created`]), no randomness (tool
//! call ids are derived from the response id), no globals. What Gemini cannot do is a 400 that
//! names the field and the provider, never a silent drop that changes the answer.
//!
//! Decisions a reader would otherwise have to rediscover:
//! - Tool schemas go out as `parametersJsonSchema` and `json_schema` response formats as
//!   `responseJsonSchema` (JSON Schema, with `anyOf`, `"null"` types and `prefixItems`, which
//!   the OpenAPI `parameters`/`responseSchema` cannot say), cut to the keywords Gemini
//!   documents for them by [`schema`]; a schema that already fits goes byte for byte.
//! - Remote image URLs are refused with a 400: the router downloads nothing, and Gemini only
//!   fetches its own Files API URIs (those become `fileData`).
//! - Gemini 3 wants each function call's `thoughtSignature` back. It goes out twice: on the
//!   tool call as `extra_content.google.thought_signature` (Google's own OpenAI-compatible
//!   field, preferred when the client echoes it) and inside the id (see `call_id.rs`) for clients
//!   that echo only id, name and arguments; calls the router cannot vouch for get the
//!   documented `skip_thought_signature_validator` sentinel. A text part's signature rides on
//!   the message's `extra_content` and goes back on the turn's last text part.
//! - `reasoning_effort` becomes `thinkingLevel` on Gemini 3 and `thinkingBudget` on 2.5 and
//!   older (see `request::thinking_config`); `include_reasoning` asks for thought summaries, which
//!   come back as `reasoning_content`.
//! - `parallel_tool_calls: false` has no Gemini switch; the adapter honours it on the way
//!   back by keeping only the first function call of each choice.
//!
//! This file holds the adapter and its capability table; beside it are `request.rs` (the
//! endpoint, headers and `GenerateContentRequest`), `schema.rs` (schemas cut to what Gemini
//! accepts), `call_id.rs` (ids that carry signatures), `response.rs` (a complete answer),
//! `stream.rs` (the SSE stream, through the shared chunk writer), `errors.rs` (error bodies)
//! and `embeddings.rs` (`batchEmbedContents`), each with its tests; `fixtures.rs` is what the
//! tests share.

mod call_id;
pub(super) mod embeddings;
mod errors;
#[cfg(test)]
mod fixtures;
mod request;
mod response;
mod schema;
mod stream;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use self::errors::classify;
use self::request::{bad, build_request, headers, model_resource, path};
use self::response::{Answering, MAX_CHOICES, translate_response};
use self::stream::GeminiStream;
use super::{Adapter, Honours, StreamTranslator, Translated, UpstreamRequest};
use crate::config::Target;
use crate::error::{ApiError, UpstreamFailure};
use crate::openai::ChatRequest;

/// The Gemini `generateContent` adapter.
pub(super) struct Gemini;

/// Gemini returns up to eight candidates and takes penalties and a thinking budget; it has no
/// log probabilities through this adapter, no token biasing, no audio output, no translated
/// web search and no deprecated functions API.
const HONOURS: Honours = Honours {
    max_choices: MAX_CHOICES,
    penalties: true,
    logprobs: false,
    logit_bias: false,
    audio_output: false,
    web_search: false,
    legacy_functions: false,
    reasoning_effort: true,
    other_tool_types: false,
};

impl Adapter for Gemini {
    fn honours(&self, _target: &Target) -> &'static Honours {
        &HONOURS
    }

    fn translate(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        let body = build_request(chat, target)?;
        let body = serde_json::to_vec(&body).map_err(|e| {
            ApiError::Internal(format!("could not serialise the Gemini request: {e}"))
        })?;
        Ok(UpstreamRequest {
            method: Method::POST,
            path: path(target, chat.is_stream()),
            headers: headers(target, chat.is_stream())?,
            body: Bytes::from(body),
        })
    }

    fn response(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        translate_response(&Answering::new(chat, target), &body)
    }

    fn stream(&self, chat: &ChatRequest<'_>, target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(GeminiStream::new(Answering::new(chat, target)))
    }

    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        classify(status, headers, body)
    }
}
