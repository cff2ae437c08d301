//! `kind = "anthropic"`: Anthropic's Messages API (`POST {base_url}/v1/messages`).
//!
//! Unlike the OpenAI-wire providers, nothing passes through: the request is rebuilt from the
//! validated [`ChatRequest`] (system prompt hoisted, turns merged, tool calls and results as
//! content blocks), and the answer, the named-event stream and the error bodies are rebuilt
//! in the OpenAI wire (reference/provider-apis.md sections 2 and 7). What Claude cannot do is a
//! 400 naming the field, never a silent drop that would change the answer.
//!
//! This file holds the adapter and its capability table; the translation lives beside it:
//! `request.rs` (the Messages body), `response.rs` (a complete answer), `stream.rs` (the
//! named-event stream, through the shared chunk writer) and `errors.rs` (error bodies), each
//! with its tests; `fixtures.rs` is what those tests share.
//!
//! # Reasoning
//!
//! `reasoning_effort` turns on extended thinking, `thinking: {type: "enabled",
//! budget_tokens}`, which Claude 3.7 Sonnet and the Claude 4 family (Sonnet 4, 4.5 and 4.6,
//! Opus 4, 4.1, 4.5 and 4.6, Haiku 4.5) take; on the 4.6 models Anthropic deprecates it in
//! favour of adaptive thinking but still honours it. Older models (3.5 and before) have no
//! extended thinking, and Opus 4.7 and later only adaptive thinking (`thinking: {type:
//! "adaptive"}` with `output_config.effort`), which this adapter does not send: both answer
//! 400, which reaches the client as Anthropic's message. The budgets per effort are
//! `request::thinking_budget`'s, the output cap around them `request::output_budget`'s; what thinking rules
//! out (a temperature below 1, `top_p` below 0.95, a forced tool call, an assistant prefill)
//! is a 400 naming the field. `include_reasoning` changes nothing here: Claude's thinking is
//! readable whenever it is on, and it is only on when `reasoning_effort` asks for it.
//!
//! Answers carry the thinking as `reasoning_content` (the text) and `thinking_blocks` (each
//! block with its signature, redacted ones too, in order); streams send the text as
//! `delta.reasoning_content` as it comes and each block whole as `delta.thinking_blocks`
//! when it closes. A client that sends the assistant message back with its
//! `thinking_blocks` gets them to Claude unchanged at the front of that turn, which Claude
//! requires of a tool-use turn when thinking is on; none are made up. Anthropic counts
//! thinking in `output_tokens` without splitting it out, so `completion_tokens` includes it
//! and `completion_tokens_details` is left out rather than guessed.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock (`created` comes from
//! [`ChatRequest::created`], stamped by the front door), no environment. Stream translation
//! holds one event at a time plus a few counters, never the answer itself.

mod errors;
#[cfg(test)]
mod fixtures;
mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use self::errors::classify;
use self::request::translate_request;
use self::response::translate_response;
use self::stream::EventStream;
use super::{
    Adapter, Honours, StreamTranslator, Translated, UpstreamRequest, add_api_key, json_headers,
};
use crate::config::Target;
use crate::error::{ApiError, UpstreamFailure};
use crate::openai::ChatRequest;

/// The API version this adapter speaks (reference 2.1); required on every request.
const API_VERSION: &str = "2023-06-01";

/// The output cap sent when neither the client nor `providers.toml` gives one.
///
/// Anthropic requires `max_tokens` on every request, and a value above a model's own output
/// limit is a 400. 4096 is the largest figure every Claude model accepts (it is the output
/// limit of the smallest, Claude 3 Haiku), so this default can never make a request fail;
/// operators who want longer answers set `max_tokens` per model in `providers.toml`.
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Anthropic's temperature ceiling: its range is 0..1 where OpenAI's is 0..2. It is also the
/// only temperature extended thinking runs at.
const MAX_TEMPERATURE: f64 = 1.0;

/// Anthropic's smallest `thinking.budget_tokens` (reference 2.2).
const MIN_THINKING_BUDGET: u32 = 1_024;

/// The budget of `reasoning_effort: "max"`: 32 000 less [`DEFAULT_MAX_TOKENS`] for the answer.
const MAX_THINKING_BUDGET: u32 = 27_904;

/// The smallest `top_p` Anthropic accepts with extended thinking.
const MIN_THINKING_TOP_P: f64 = 0.95;

/// Appended to the system prompt for `response_format: {"type":"json_object"}`.
///
/// The Messages API has no JSON-mode switch (reference 7.1), and a 400 would break every
/// OpenAI client that turns JSON mode on by habit. OpenAI's own JSON mode is an instruction
/// plus constrained decoding and also requires the prompt to ask for JSON; Claude follows
/// this instruction reliably, but the API does not enforce it. Clients that need a guarantee
/// use `json_schema`, which maps to Anthropic's enforced structured output.
const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with a single valid JSON object and nothing else: no prose, no code fences.";

/// The Messages API adapter.
pub(super) struct Anthropic;

/// Claude returns one choice and has no repetition penalties, log probabilities, token
/// biasing, audio output, deprecated functions API or translated web search. `seed` is not
/// refused: OpenAI only promises best-effort determinism for it, so ignoring it leaves the
/// answer's distribution unchanged, and many clients and harnesses send it by default.
const HONOURS: Honours = Honours {
    max_choices: 1,
    penalties: false,
    logprobs: false,
    logit_bias: false,
    audio_output: false,
    web_search: false,
    legacy_functions: false,
    // Extended thinking, with its signed blocks carried across turns.
    reasoning_effort: true,
    other_tool_types: false,
};

impl Adapter for Anthropic {
    fn honours(&self, _target: &Target) -> &'static Honours {
        &HONOURS
    }

    /// `POST /v1/messages` with the rebuilt body.
    fn translate(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        let body = serde_json::to_vec(&translate_request(chat, target)?).map_err(|e| {
            ApiError::Internal(format!("could not serialise the Anthropic request: {e}"))
        })?;
        Ok(UpstreamRequest {
            method: Method::POST,
            path: "/v1/messages".to_owned(),
            headers: headers(target, chat.is_stream())?,
            body: Bytes::from(body),
        })
    }

    /// A Messages answer as a `chat.completion`.
    fn response(
        &self,
        chat: &ChatRequest<'_>,
        _target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        translate_response(&body, chat.created)
    }

    /// Per-response state for the named-event stream.
    fn stream(&self, chat: &ChatRequest<'_>, _target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(EventStream::new(chat.created, chat.include_usage()))
    }

    /// Anthropic's error bodies, classified by status and error type.
    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        classify(status, headers, body)
    }
}

/// `x-api-key` (sensitive), `anthropic-version` and the JSON content type.
fn headers(target: &Target, stream: bool) -> Result<HeaderMap, ApiError> {
    let mut headers = json_headers(stream);
    headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
    add_api_key(
        &mut headers,
        target,
        HeaderName::from_static("x-api-key"),
        "",
    )?;
    Ok(headers)
}
