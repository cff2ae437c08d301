//! `kind = "mistral"`: Mistral's chat completions (reference/provider-apis.md section 4).
//!
//! Mistral speaks nearly the OpenAI wire but validates with extra fields forbidden, so the
//! request is rebuilt from an allowlist: renamed where Mistral names a field differently,
//! silently dropped where the OpenAI field is harmless bookkeeping, and refused with a 400
//! where dropping it would change the answer. Foreign tool-call ids become Mistral's nine
//! alphanumerics on the way out and are mapped back on the way in.
//!
//! Answers are edited in place, never re-serialised: only the spans where Mistral departs from
//! the OpenAI wire change (`model_length`, mapped tool-call ids, object `arguments`, chunk-list
//! `content`, the position of stream usage); every other byte is the upstream's.

pub(super) mod embeddings;
mod errors;
#[cfg(test)]
mod fixtures;
mod ids;
mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use self::ids::IdMap;
use self::request::request_body;
use self::response::{Answer, apply, malformed, read_usage, rewrite};
use self::stream::Stream;
use super::openai::bearer_headers;
use super::{Adapter, Honours, StreamTranslator, Translated, UpstreamRequest};
use crate::config::Target;
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::openai::ChatRequest;

/// The Mistral adapter.
pub(super) struct Mistral;

/// Mistral has no log probabilities, token biasing, audio output, web search or deprecated
/// functions API; everything else it takes, under its own name where it differs.
const HONOURS: Honours = Honours {
    max_choices: crate::openai::MAX_CHOICES,
    penalties: true,
    logprobs: false,
    logit_bias: false,
    audio_output: false,
    web_search: false,
    legacy_functions: false,
    reasoning_effort: true,
    other_tool_types: false,
};

impl Adapter for Mistral {
    fn honours(&self, _target: &Target) -> &'static Honours {
        &HONOURS
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
            body: request_body(chat, target)?,
        })
    }

    fn response(
        &self,
        chat: &ChatRequest<'_>,
        _target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        let kind = FailureKind::Unavailable;
        let answer: Answer<'_> =
            serde_json::from_slice(&body).map_err(|e| malformed(kind, "response body", &e))?;
        let usage = answer.usage.map(|raw| read_usage(raw, kind)).transpose()?;
        let edits = rewrite(&body, &answer, &IdMap::of(chat), kind)?;
        let body = if edits.is_empty() {
            body
        } else {
            Bytes::from(apply(&body, edits))
        };
        Ok(Translated { body, usage })
    }

    fn stream(&self, chat: &ChatRequest<'_>, _target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(Stream {
            ids: IdMap::of(chat),
            include_usage: chat.include_usage(),
            usage: None,
            usage_chunk: None,
            done: false,
        })
    }

    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        errors::classify(status, headers, body)
    }
}
