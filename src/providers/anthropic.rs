//! `kind = "anthropic"`: Anthropic's Messages API (`POST {base_url}/v1/messages`).
//!
//! Unlike the OpenAI-wire providers, nothing passes through: the request is rebuilt from the
//! validated [`ChatRequest`] (system prompt hoisted, turns merged, tool calls and results as
//! content blocks), and the answer, the named-event stream and the error bodies are rebuilt
//! in the OpenAI wire (reference/provider-apis.md sections 2 and 7). What Claude cannot do is a
//! 400 naming the field, never a silent drop that would change the answer.
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
//! [`thinking_budget`]'s, the output cap around them [`output_budget`]'s; what thinking rules
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

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::capabilities::unsupported_part;
use super::chunks::ChunkWriter;
use super::openai::{self, ErrorFields, require_end_marker};
use super::{
    Adapter, Fnv1a, Honours, StreamTranslator, Translated, UpstreamRequest, add_api_key,
    compact_json, event_text, json_headers,
};
use crate::config::Target;
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::openai::{
    AssistantMessage, ChatRequest, Completion, CompletionChoice, Content, Delta, FilePart,
    FunctionDelta, FunctionOut, MediaSource, Message, Part, PromptTokensDetails, ReasoningEffort,
    ResponseFormat, Role, Stop, ThinkingBlock, ToolCallDelta, ToolCallOut,
    ToolChoice as OpenAiToolChoice, Usage, UsageOut,
};
use crate::retry_after;
use crate::sse::SseEvent;

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

// === request ===

/// The Messages API request body (reference 2.2).
#[derive(Debug, Serialize)]
struct MessagesRequest<'b> {
    model: &'b str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'b str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDef<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
}

/// `thinking`: extended thinking with a token budget (reference 2.2).
#[derive(Debug, PartialEq, Eq, Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

/// One conversation turn; Anthropic wants user and assistant turns alternating.
#[derive(Debug, Serialize)]
struct Turn<'b> {
    role: &'static str,
    content: Vec<Block<'b>>,
}

/// A request content block (reference 2.2, "Content blocks").
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'b> {
    /// Non-empty text (Anthropic answers 400 to an empty text block).
    Text { text: &'b str },
    /// An inline or linked image.
    Image { source: Source<'b> },
    /// A PDF, inline.
    Document {
        source: Source<'b>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'b str>,
    },
    /// Signed thinking of an earlier assistant turn, sent back as Claude wrote it.
    Thinking {
        thinking: &'b str,
        signature: &'b str,
    },
    /// Encrypted thinking of an earlier assistant turn, sent back as Claude wrote it.
    RedactedThinking { data: &'b str },
    /// A tool call the assistant made earlier.
    ToolUse {
        id: Cow<'b, str>,
        name: &'b str,
        input: Box<RawValue>,
    },
    /// The answer to a tool call; always at the front of a user turn.
    ToolResult {
        tool_use_id: Cow<'b, str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block<'b>>,
    },
}

/// Where an image's or a document's bytes come from.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'b> {
    /// A `data:` URL's payload.
    Base64 {
        media_type: &'static str,
        data: &'b str,
    },
    /// An `http(s)` URL Anthropic fetches itself.
    Url { url: &'b str },
}

/// A tool definition.
#[derive(Debug, Serialize)]
struct ToolDef<'b> {
    name: &'b str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'b str>,
    input_schema: Schema<'b>,
}

/// A tool's `input_schema`: the client's `parameters` as sent, or the empty object schema.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Schema<'b> {
    Given(&'b RawValue),
    Empty {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: serde_json::Map<String, serde_json::Value>,
    },
}

/// `tool_choice`: auto, any, tool (named) or none.
#[derive(Debug, PartialEq, Serialize)]
struct ToolChoice<'b> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'b str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

/// `metadata`.
#[derive(Debug, Serialize)]
struct Metadata<'b> {
    user_id: &'b str,
}

/// `output_config`: structured output on recent models (reference 2.2).
#[derive(Debug, Serialize)]
struct OutputConfig<'b> {
    format: OutputFormat<'b>,
}

/// `output_config.format`.
#[derive(Debug, Serialize)]
struct OutputFormat<'b> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'b RawValue,
}

/// Builds the Messages API body. Pure: the same request and target give the same body.
fn translate_request<'b>(
    chat: &'b ChatRequest<'_>,
    target: &'b Target,
) -> Result<MessagesRequest<'b>, ApiError> {
    let body = &chat.body;
    let format = body.response_format.as_ref();
    let mut system = system_prompt(chat.messages(), target)?;
    if matches!(format, Some(ResponseFormat::JsonObject)) {
        append_paragraph(&mut system, JSON_OBJECT_INSTRUCTION);
    }
    let tools = tools(body.tools.as_deref().unwrap_or_default());
    let tool_choice = tool_choice(chat, !tools.is_empty())?;
    let (temperature, top_p) = sampling(body.temperature, body.top_p);
    let (max_tokens, thinking) = output_budget(chat, target)?;
    let messages = turns(chat.messages(), target)?;
    if thinking.is_some() {
        thinking_allows(temperature, top_p, tool_choice.as_ref(), &messages)?;
    }
    Ok(MessagesRequest {
        model: &target.model,
        max_tokens,
        system: (!system.is_empty()).then_some(system),
        messages,
        temperature,
        top_p,
        stop_sequences: stop_sequences(body.stop.as_ref()),
        stream: chat.is_stream(),
        tools,
        tool_choice,
        metadata: metadata(chat),
        output_config: match format {
            Some(ResponseFormat::JsonSchema(format)) => Some(OutputConfig {
                format: OutputFormat {
                    kind: "json_schema",
                    schema: format.schema,
                },
            }),
            Some(ResponseFormat::Text | ResponseFormat::JsonObject) | None => None,
        },
        thinking,
    })
}

/// A 400 for a value that cannot be translated, naming the field and the provider kind.
fn invalid(param: &str, why: &str) -> ApiError {
    ApiError::bad_request(
        format!("Invalid '{param}' for provider kind 'anthropic': {why}"),
        Some(param.to_owned()),
    )
}

/// `metadata.user_id` from `user`, else from its successor `safety_identifier`.
fn metadata<'b>(chat: &'b ChatRequest<'_>) -> Option<Metadata<'b>> {
    let body = &chat.body;
    let user_id = body.user.as_deref().or(body.safety_identifier.as_deref())?;
    Some(Metadata { user_id })
}

/// `max_completion_tokens`, else `max_tokens`, else the model's default from
/// `providers.toml`, else [`DEFAULT_MAX_TOKENS`]: Anthropic refuses a request without one.
fn max_tokens(chat: &ChatRequest<'_>, target: &Target) -> u32 {
    chat.body
        .max_completion_tokens
        .or(chat.body.max_tokens)
        .or(target.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS)
}

/// `max_tokens` and `thinking` together, since the thinking budget counts against the cap.
///
/// Without `reasoning_effort` (or with `"none"`) there is no thinking and the cap is
/// [`max_tokens`]'s. With it, the budget is [`thinking_budget`]'s, and Anthropic wants it
/// below `max_tokens`:
/// - a client cap (`max_completion_tokens`, else `max_tokens`) is kept, as OpenAI's also
///   counts reasoning, and the budget shrinks to fit under it, down to Anthropic's minimum of
///   [`MIN_THINKING_BUDGET`]; a cap too small for that is a 400 naming the field;
/// - without one, the cap is raised to the budget plus [`DEFAULT_MAX_TOKENS`] for the answer
///   when the model's default is smaller.
fn output_budget(
    chat: &ChatRequest<'_>,
    target: &Target,
) -> Result<(u32, Option<Thinking>), ApiError> {
    let body = &chat.body;
    let Some(wanted) = body.reasoning_effort.and_then(thinking_budget) else {
        return Ok((max_tokens(chat, target), None));
    };
    let client_cap = match (body.max_completion_tokens, body.max_tokens) {
        (Some(cap), _) => Some(("max_completion_tokens", cap)),
        (None, Some(cap)) => Some(("max_tokens", cap)),
        (None, None) => None,
    };
    let (max_tokens, budget) = match client_cap {
        Some((param, cap)) if cap <= MIN_THINKING_BUDGET => {
            return Err(invalid(
                param,
                &format!(
                    "with 'reasoning_effort' it must be above {MIN_THINKING_BUDGET}: Claude's \
                     smallest thinking budget is {MIN_THINKING_BUDGET} tokens and must be less \
                     than the output cap"
                ),
            ));
        }
        Some((_, cap)) => (cap, wanted.min(cap - 1)),
        None => {
            let default = target.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
            (default.max(wanted + DEFAULT_MAX_TOKENS), wanted)
        }
    };
    Ok((
        max_tokens,
        Some(Thinking {
            kind: "enabled",
            budget_tokens: budget,
        }),
    ))
}

/// The thinking budget for a `reasoning_effort`; `None` for `"none"` (no thinking).
///
/// Each step roughly doubles the last, from Anthropic's minimum up to the most that leaves
/// [`DEFAULT_MAX_TOKENS`] answer tokens inside 32 000, the smallest output limit among the
/// Claude models that think (Opus 4 and 4.1), so no effort makes a request too big for them.
fn thinking_budget(effort: ReasoningEffort) -> Option<u32> {
    match effort {
        ReasoningEffort::None => None,
        ReasoningEffort::Minimal => Some(MIN_THINKING_BUDGET),
        ReasoningEffort::Low => Some(2_048),
        ReasoningEffort::Medium => Some(8_192),
        ReasoningEffort::High => Some(16_384),
        ReasoningEffort::Xhigh => Some(24_576),
        ReasoningEffort::Max => Some(MAX_THINKING_BUDGET),
    }
}

/// What extended thinking rules out (reference 2.2), refused naming the field rather than
/// dropped, since each would change the answer: a temperature other than 1, `top_p` below
/// 0.95, a forced tool call, and an assistant prefill as the last turn.
fn thinking_allows(
    temperature: Option<f64>,
    top_p: Option<f64>,
    tool_choice: Option<&ToolChoice<'_>>,
    turns: &[Turn<'_>],
) -> Result<(), ApiError> {
    if temperature.is_some_and(|t| t < MAX_TEMPERATURE) {
        return Err(invalid(
            "temperature",
            "Claude thinks (from 'reasoning_effort') only at temperature 1; leave it out or send 1",
        ));
    }
    if top_p.is_some_and(|p| p < MIN_THINKING_TOP_P) {
        return Err(invalid(
            "top_p",
            "with 'reasoning_effort' Claude takes top_p from 0.95 to 1 only",
        ));
    }
    if tool_choice.is_some_and(|choice| matches!(choice.kind, "any" | "tool")) {
        return Err(invalid(
            "tool_choice",
            "Claude cannot be forced to call a tool while it thinks (from 'reasoning_effort'); \
             send \"auto\" or \"none\"",
        ));
    }
    if turns.last().is_some_and(|turn| turn.role == "assistant") {
        return Err(invalid(
            "messages",
            "with 'reasoning_effort' the last message cannot be an assistant turn (a prefill)",
        ));
    }
    Ok(())
}

/// `temperature` and `top_p` as Claude accepts them.
///
/// Temperature is clamped to 1.0 rather than halved: both APIs apply it as a softmax
/// temperature, so the common values (0 to 1) mean the same on both sides, and only OpenAI's
/// extra-random range above 1 has no equivalent; Claude's most random setting is the closest.
/// Newer Claude models answer 400 when `temperature` and `top_p` come together (reference
/// 2.2), so when a client sends both, only `temperature` goes: it is the knob both vendors
/// document as primary, and OpenAI advises changing one or the other, not both.
fn sampling(temperature: Option<f64>, top_p: Option<f64>) -> (Option<f64>, Option<f64>) {
    match temperature {
        Some(t) => (Some(t.min(MAX_TEMPERATURE)), None),
        None => (None, top_p),
    }
}

/// `stop` as an array; empty sequences are dropped (they can never match).
fn stop_sequences<'b>(stop: Option<&'b Stop<'_>>) -> Vec<&'b str> {
    match stop {
        None => Vec::new(),
        Some(Stop::One(one)) => [one.as_ref()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Stop::Many(many)) => many
            .iter()
            .map(AsRef::as_ref)
            .filter(|s: &&str| !s.is_empty())
            .collect(),
    }
}

/// Adds `text` to `out` as a new paragraph.
fn append_paragraph(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(text);
}

/// All `system` and `developer` messages, in order, joined by blank lines.
fn system_prompt(messages: &[Message<'_>], target: &Target) -> Result<String, ApiError> {
    let mut system = String::new();
    for (i, message) in messages.iter().enumerate() {
        if !matches!(message.role, Role::System | Role::Developer) {
            continue;
        }
        for block in blocks(message, i, Place::System, target)? {
            if let Block::Text { text } = block {
                append_paragraph(&mut system, text);
            }
        }
    }
    Ok(system)
}

/// The conversation as alternating user/assistant turns.
///
/// `tool` messages become `tool_result` blocks in a user turn; consecutive messages of one
/// role share a turn; messages left without content (empty text) are dropped, since
/// Anthropic refuses empty turns and empty text blocks.
fn turns<'b>(messages: &'b [Message<'_>], target: &Target) -> Result<Vec<Turn<'b>>, ApiError> {
    let mut turns: Vec<Turn<'b>> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let (role, content) = match message.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", blocks(message, i, Place::User, target)?),
            Role::Assistant => ("assistant", assistant_blocks(message, i, target)?),
            Role::Tool => ("user", vec![tool_result(message, i, target)?]),
        };
        if content.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(content),
            _ => turns.push(Turn { role, content }),
        }
    }
    for turn in &mut turns {
        // Every tool_result must come first in its user turn (reference 2.2); the sort is
        // stable, so results keep their order and so does the user's text.
        turn.content
            .sort_by_key(|block| !matches!(block, Block::ToolResult { .. }));
    }
    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "at least one user or assistant message with content is required",
        ));
    }
    Ok(turns)
}

/// Where a message's content goes, which decides what it may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The system prompt: text only.
    System,
    /// A user turn or a tool result: text, images and PDFs.
    User,
    /// An assistant turn: text only.
    Assistant,
}

impl Place {
    /// The place as a refusal names it.
    fn name(self) -> &'static str {
        match self {
            Place::System => "system messages",
            Place::User => "user messages",
            Place::Assistant => "assistant messages",
        }
    }
}

/// A message's content as blocks: text and, where allowed, images and PDFs. Empty or
/// whitespace-only text is dropped: Anthropic refuses such blocks (reference 2.2) and they say
/// nothing.
fn blocks<'b>(
    message: &'b Message<'_>,
    index: usize,
    place: Place,
    target: &Target,
) -> Result<Vec<Block<'b>>, ApiError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) if text.trim().is_empty() => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(vec![Block::Text { text }]),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let param = format!("messages[{index}].content[{j}]");
                out.extend(part_block(part, &param, place, target)?);
            }
            Ok(out)
        }
    }
}

/// One content part as a block; `None` when there is nothing to send.
fn part_block<'b>(
    part: &'b Part<'_>,
    param: &str,
    place: Place,
    target: &Target,
) -> Result<Option<Block<'b>>, ApiError> {
    match part {
        Part::Text(text) if text.trim().is_empty() => Ok(None),
        Part::Text(text) => Ok(Some(Block::Text { text })),
        // An assistant's earlier refusal carries no text the model needs to see again.
        Part::Refusal(_) => Ok(None),
        Part::Image { source, .. } if place == Place::User => {
            image(source, &format!("{param}.image_url.url")).map(Some)
        }
        Part::File(file) if place == Place::User => document(file, param).map(Some),
        _ => Err(unsupported_part(param, part, target, place.name())),
    }
}

/// An image block from a `data:` URL (inline, base64) or an `http(s)` URL (fetched by
/// Anthropic).
fn image<'b>(source: &'b MediaSource<'_>, param: &str) -> Result<Block<'b>, ApiError> {
    let source = match source {
        MediaSource::Inline { media_type, base64 } => {
            let media_type = image_media_type(media_type).ok_or_else(|| {
                invalid(
                    param,
                    &format!(
                        "image type '{media_type}' is not accepted; use image/jpeg, image/png, image/gif or image/webp"
                    ),
                )
            })?;
            Source::Base64 {
                media_type,
                data: base64,
            }
        }
        MediaSource::Url(url) if is_http(url) => Source::Url { url },
        MediaSource::Url(_) => {
            return Err(invalid(
                param,
                "an image URL must be https://, http:// or a base64 data URL",
            ));
        }
    };
    Ok(Block::Image { source })
}

/// A document block from a `file` part: an inline PDF.
///
/// A `file_id` is refused: it names a file in OpenAI's Files API, which Claude cannot read.
fn document<'b>(file: &'b FilePart<'_>, param: &str) -> Result<Block<'b>, ApiError> {
    match &file.data {
        Some(MediaSource::Inline { media_type, base64 }) if media_type == "application/pdf" => {
            Ok(Block::Document {
                source: Source::Base64 {
                    media_type: "application/pdf",
                    data: base64,
                },
                title: file.filename.as_deref(),
            })
        }
        Some(MediaSource::Inline { media_type, .. }) => Err(invalid(
            &format!("{param}.file.file_data"),
            &format!("file type '{media_type}' is not accepted; send a PDF (application/pdf)"),
        )),
        // The front door only lets data URLs through as file data.
        Some(MediaSource::Url(_)) => Err(invalid(
            &format!("{param}.file.file_data"),
            "file data must be a base64 data URL",
        )),
        None => Err(invalid(
            &format!("{param}.file.file_id"),
            "file ids name files in OpenAI's Files API, which Claude cannot read; send the \
             file inline as 'file_data' (a base64 PDF data URL)",
        )),
    }
}

/// Whether `url` is `http://` or `https://`, scheme in any case.
fn is_http(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    scheme.is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
}

/// The media types Anthropic accepts for images (reference 2.2), in canonical spelling;
/// `mime` is lowercase already (the front door lowercases media types).
fn image_media_type(mime: &str) -> Option<&'static str> {
    match mime {
        "image/jpeg" | "image/jpg" => Some("image/jpeg"),
        "image/png" => Some("image/png"),
        "image/gif" => Some("image/gif"),
        "image/webp" => Some("image/webp"),
        _ => None,
    }
}

/// An assistant message: its thinking blocks as the client sent them back, its text, then a
/// `tool_use` block per tool call.
///
/// Thinking goes first and unchanged (signatures byte for byte): with thinking on, Anthropic
/// refuses a tool-use turn that does not begin with the thinking that produced it. None is
/// made up when the client sent none; `reasoning_content` alone carries no signature and is
/// not sent back.
fn assistant_blocks<'b>(
    message: &'b Message<'_>,
    i: usize,
    target: &Target,
) -> Result<Vec<Block<'b>>, ApiError> {
    let mut out = blocks(message, i, Place::Assistant, target)?;
    if let Some(thinking) = &message.thinking_blocks {
        let thinking = thinking.iter().map(|block| match block {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => Block::Thinking {
                thinking,
                signature,
            },
            ThinkingBlock::RedactedThinking { data } => Block::RedactedThinking { data },
        });
        out.splice(0..0, thinking);
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let param = format!("messages[{i}].tool_calls[{j}].function.arguments");
        out.push(Block::ToolUse {
            id: tool_id(&call.id),
            name: &call.function.name,
            input: arguments(&call.function.arguments, &param)?,
        });
    }
    Ok(out)
}

/// A call's `arguments` string as the JSON object Anthropic wants as `input`.
fn arguments(arguments: &str, param: &str) -> Result<Box<RawValue>, ApiError> {
    // Some clients send "" for a call without arguments; it means the empty object.
    let text = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    let value = serde_json::from_str::<Box<RawValue>>(text)
        .map_err(|e| invalid(param, &format!("the arguments are not valid JSON ({e})")))?;
    if !value.get().starts_with('{') {
        return Err(invalid(param, "the arguments must be a JSON object"));
    }
    Ok(value)
}

/// A `tool` message as a `tool_result` block.
fn tool_result<'b>(
    message: &'b Message<'_>,
    i: usize,
    target: &Target,
) -> Result<Block<'b>, ApiError> {
    let id = message.tool_call_id.as_deref().unwrap_or_default();
    Ok(Block::ToolResult {
        tool_use_id: tool_id(id),
        content: blocks(message, i, Place::User, target)?,
    })
}

/// A tool call id that matches Anthropic's `^[a-zA-Z0-9_-]+$` (reference 2.2).
///
/// Valid ids pass unchanged. Others have each foreign character replaced by `_` and a hash
/// of the whole original appended, so the mapping is the same wherever the id appears (the
/// call and its result) and two ids that differ only in foreign characters stay distinct.
fn tool_id(id: &str) -> Cow<'_, str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(allowed) {
        return Cow::Borrowed(id);
    }
    let mut clean: String = id
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .collect();
    let mut hash = Fnv1a::default();
    hash.write(id.as_bytes());
    let _ = write!(clean, "_{:016x}", hash.finish());
    Cow::Owned(clean)
}

/// `tools[].function` as Anthropic tool definitions (the front door's [`Honours`] check has
/// refused tools of other types).
fn tools<'b>(tools: &'b [crate::openai::Tool<'_>]) -> Vec<ToolDef<'b>> {
    tools
        .iter()
        .map(|tool| {
            let function = &tool.function;
            let input_schema = match function.parameters {
                Some(schema) if schema.get() != "null" => Schema::Given(schema),
                _ => Schema::Empty {
                    kind: "object",
                    properties: serde_json::Map::new(),
                },
            };
            ToolDef {
                name: &function.name,
                description: function.description.as_deref(),
                input_schema,
            }
        })
        .collect()
}

/// `tool_choice` plus `parallel_tool_calls`, when there are tools to choose from.
///
/// With tools, a choice is always sent (`auto` when the client named none, as OpenAI's
/// default is): it is where `parallel_tool_calls: false` goes, as `disable_parallel_tool_use`.
fn tool_choice<'b>(
    chat: &'b ChatRequest<'_>,
    has_tools: bool,
) -> Result<Option<ToolChoice<'b>>, ApiError> {
    let (kind, name) = match &chat.body.tool_choice {
        None | Some(OpenAiToolChoice::Auto) => ("auto", None),
        Some(OpenAiToolChoice::None) => ("none", None),
        Some(OpenAiToolChoice::Required) => ("any", None),
        Some(OpenAiToolChoice::Function(name)) => ("tool", Some(&**name)),
        // Refused by the Honours check before translation; kept total all the same.
        Some(OpenAiToolChoice::Other(kind)) => {
            return Err(invalid(
                "tool_choice.type",
                &format!("tool choices of type '{kind}' are not translated"),
            ));
        }
    };
    if !has_tools {
        // Without tools "auto" and "none" mean the same thing as saying nothing.
        return match kind {
            "auto" | "none" => Ok(None),
            _ => Err(invalid(
                "tool_choice",
                "a tool is required but 'tools' is empty",
            )),
        };
    }
    // `none` takes no parallelism flag (reference 2.2); the others do.
    let disable_parallel =
        (chat.body.parallel_tool_calls == Some(false) && kind != "none").then_some(true);
    Ok(Some(ToolChoice {
        kind,
        name,
        disable_parallel_tool_use: disable_parallel,
    }))
}

// === response ===

/// The parts of a Messages API answer the translation reads (reference 2.3).
#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Vec<BlockIn<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: UsageIn,
}

/// A response content block, flattened over the kinds the translation reads.
#[derive(Deserialize)]
struct BlockIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    /// A `redacted_thinking` block's encrypted thinking.
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

impl<'a> BlockIn<'a> {
    /// A `thinking` or `redacted_thinking` block as the client will send it back.
    fn thinking_block(&self) -> Option<ThinkingBlock<'_>> {
        match self.kind.as_ref() {
            "thinking" => Some(ThinkingBlock::Thinking {
                thinking: Cow::Borrowed(self.thinking.as_deref().unwrap_or_default()),
                signature: Cow::Borrowed(self.signature.as_deref().unwrap_or_default()),
            }),
            "redacted_thinking" => Some(ThinkingBlock::RedactedThinking {
                data: Cow::Borrowed(self.data.as_deref().unwrap_or_default()),
            }),
            _ => None,
        }
    }
}

/// Anthropic's usage; `input_tokens` leaves out cache reads and writes (reference 2.3).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct UsageIn {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl UsageIn {
    /// Takes every figure `later` reports; stream usage is cumulative, so the last one wins.
    fn update(&mut self, later: Self) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// In OpenAI's meaning (reference 7.3): the prompt includes cached tokens.
    fn to_openai(self) -> UsageOut {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cached)
            .saturating_add(written);
        let completion = self.output_tokens.unwrap_or(0);
        UsageOut {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
                cache_write_tokens: Some(written),
            },
            completion_tokens_details: None,
        }
    }
}

/// A malformed answer is the provider's fault: it fails over like an outage.
fn malformed(what: &str, error: impl std::fmt::Display) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Unavailable,
        format!("the provider sent a malformed {what} ({error})"),
    )
}

/// A complete Messages API answer as an OpenAI `chat.completion`.
fn translate_response(body: &[u8], created: u64) -> Result<Translated, UpstreamFailure> {
    let message: MessageIn<'_> =
        serde_json::from_slice(body).map_err(|e| malformed("response body", e))?;
    let mut text: Option<String> = None;
    let mut thinking: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block.kind.as_ref() {
            "text" => text
                .get_or_insert_default()
                .push_str(block.text.as_deref().unwrap_or_default()),
            "thinking" => thinking
                .get_or_insert_default()
                .push_str(block.thinking.as_deref().unwrap_or_default()),
            "tool_use" => tool_calls.push(tool_call_out(block)?),
            // Redacted thinking is encrypted: it only travels in `thinking_blocks`. Server
            // tools' blocks have no OpenAI form.
            _ => {}
        }
        thinking_blocks.extend(block.thinking_block());
    }
    let content = match text {
        None if !tool_calls.is_empty() => None,
        other => Some(other.unwrap_or_default()),
    };
    let usage = message.usage.to_openai();
    let choice = CompletionChoice::new(
        0,
        AssistantMessage::new(content, thinking, tool_calls).with_thinking_blocks(thinking_blocks),
        finish_reason(message.stop_reason.as_deref()),
    );
    let completion = Completion::new(
        &message.id,
        created,
        &message.model,
        vec![choice],
        Some(usage),
    );
    let body = serde_json::to_vec(&completion).map_err(|e| malformed("response body", e))?;
    Ok(Translated {
        body: Bytes::from(body),
        usage: Some(usage.totals()),
    })
}

/// A `tool_use` block as an OpenAI tool call.
fn tool_call_out<'b>(block: &'b BlockIn<'_>) -> Result<ToolCallOut<'b>, UpstreamFailure> {
    let (Some(id), Some(name)) = (block.id.as_deref(), block.name.as_deref()) else {
        return Err(malformed("tool_use block", "no id or name"));
    };
    Ok(ToolCallOut {
        id: Cow::Borrowed(id),
        kind: "function",
        function: FunctionOut {
            name,
            arguments: block
                .input
                .map_or_else(|| "{}".to_owned(), |i| compact_json(i.get())),
        },
        extra_content: None,
    })
}

/// Anthropic `stop_reason` → OpenAI `finish_reason` (reference 7.2). Unknown or missing
/// reasons are a normal stop: the message did end.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

// === stream ===

/// One event of the Messages stream, flattened over every event type (reference 2.4).
#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<StartIn<'a>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    content_block: Option<BlockIn<'a>>,
    #[serde(borrow, default)]
    delta: Option<DeltaIn<'a>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<ErrorIn>,
}

/// `message_start.message`.
#[derive(Deserialize)]
struct StartIn<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(default)]
    usage: UsageIn,
}

/// A `content_block_delta` or `message_delta` delta.
#[derive(Deserialize)]
struct DeltaIn<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

/// Per-response state of a Messages stream: the chunk writer (from `message_start` on) and
/// the usage; never the text.
struct EventStream {
    created: u64,
    include_usage: bool,
    /// Created by `message_start`, which names the message and model; `None` until then.
    writer: Option<ChunkWriter>,
    /// The open `thinking` block, kept whole until it closes.
    open_thinking: Option<OpenThinking>,
    usage: UsageIn,
}

/// The one choice a Messages answer has.
const CHOICE: u32 = 0;

impl EventStream {
    /// State for one response; `created` is the request's receive time.
    fn new(created: u64, include_usage: bool) -> Self {
        Self {
            created,
            include_usage,
            writer: None,
            open_thinking: None,
            usage: UsageIn::default(),
        }
    }

    /// Dispatches one event by its `type` (the event name when the data has none).
    fn handle(
        &mut self,
        name: &str,
        data: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        // UTF-8 is checked whole: serde checks it only in the strings it reads.
        let event: EventIn<'_> = serde_json::from_str(event_text(data)?)
            .map_err(|e| stream_malformed(&e.to_string()))?;
        let kind = event.kind.as_deref().unwrap_or(name);
        match kind {
            "message_start" => self.start(event, out),
            "content_block_start" => self.block_start(event, out),
            "content_block_delta" => self.block_delta(event, out),
            "content_block_stop" => {
                if let (Some(writer), Some(block)) = (self.writer.as_mut(), event.index) {
                    writer.close_call(CHOICE, block);
                }
                self.close_thinking(event.index, out)
            }
            "message_delta" => self.message_delta(event, out),
            "message_stop" => self.stop(out),
            "error" => Err(stream_error(event.error.unwrap_or_default())),
            // `ping` and event types newer than this adapter carry nothing to forward.
            _ => Ok(()),
        }
    }

    /// `message_start`: identity and input usage, and the role chunk.
    fn start(&mut self, event: EventIn<'_>, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        if self.writer.is_some() {
            return Err(stream_malformed("a second message_start"));
        }
        let message = event
            .message
            .ok_or_else(|| stream_malformed("message_start without a message"))?;
        self.usage.update(message.usage);
        let writer = ChunkWriter::new(
            message.id.into_owned(),
            message.model.into_owned(),
            self.created,
            self.include_usage,
        );
        self.writer.insert(writer).open(CHOICE, out)
    }

    /// `content_block_start`: a tool call's head chunk (id, name, next index).
    fn block_start(
        &mut self,
        event: EventIn<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let writer = self.writer()?;
        let Some(block) = event.content_block else {
            return Err(stream_malformed("content_block_start without a block"));
        };
        match block.kind.as_ref() {
            "tool_use" => {
                let (Some(id), Some(name), Some(index)) =
                    (block.id.as_deref(), block.name.as_deref(), event.index)
                else {
                    return Err(stream_malformed(
                        "a tool_use block without id, name or index",
                    ));
                };
                let call = writer.new_call(CHOICE, Some(index));
                writer.delta(CHOICE, tool_delta(call, Some((id, name)), ""), out)
            }
            // Text and thinking blocks start empty; anything they hold is sent like a delta.
            "text" => text(writer, block.text.as_deref(), Delta::content, out),
            "thinking" => {
                let Some(index) = event.index else {
                    return Err(stream_malformed("a thinking block without index"));
                };
                let thinking = block.thinking.as_deref().unwrap_or_default();
                text(writer, Some(thinking), Delta::reasoning, out)?;
                self.open_thinking = Some(OpenThinking {
                    index,
                    text: thinking.to_owned(),
                    signature: block.signature.as_deref().unwrap_or_default().to_owned(),
                });
                Ok(())
            }
            // Redacted thinking arrives whole in its start event and has no readable text.
            "redacted_thinking" => match block.thinking_block() {
                Some(whole) => writer.delta(CHOICE, Delta::thinking_block(whole), out),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// `content_block_stop` of the open thinking block: the whole block as `thinking_blocks`,
    /// so the client can send it back, signature included.
    fn close_thinking(
        &mut self,
        index: Option<u64>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let Some(open) = self.open_thinking.take_if(|open| Some(open.index) == index) else {
            return Ok(());
        };
        let whole = ThinkingBlock::Thinking {
            thinking: Cow::Borrowed(&open.text),
            signature: Cow::Borrowed(&open.signature),
        };
        self.writer()?
            .delta(CHOICE, Delta::thinking_block(whole), out)
    }

    /// `content_block_delta`: text, reasoning or argument fragments.
    fn block_delta(
        &mut self,
        event: EventIn<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        // The writer field alone, so the open thinking block can be kept up to date beside it.
        let writer = self.writer.as_mut().ok_or_else(before_start)?;
        let Some(delta) = event.delta else {
            return Err(stream_malformed("content_block_delta without a delta"));
        };
        match delta.kind.as_deref() {
            Some("text_delta") => text(writer, delta.text.as_deref(), Delta::content, out),
            Some("thinking_delta") => {
                let fragment = delta.thinking.as_deref();
                if let Some(open) = open_thinking_at(&mut self.open_thinking, event.index) {
                    open.text.push_str(fragment.unwrap_or_default());
                }
                text(writer, fragment, Delta::reasoning, out)
            }
            Some("signature_delta") => {
                if let Some(open) = open_thinking_at(&mut self.open_thinking, event.index) {
                    open.signature
                        .push_str(delta.signature.as_deref().unwrap_or_default());
                }
                Ok(())
            }
            Some("input_json_delta") => {
                // Blocks are told apart by their index, so fragments of calls that stream
                // side by side each reach their own call.
                let Some(call) = event
                    .index
                    .and_then(|block| writer.call_index(CHOICE, block))
                else {
                    return Err(stream_malformed(
                        "input_json_delta outside a tool_use block",
                    ));
                };
                match delta.partial_json.as_deref() {
                    None | Some("") => Ok(()),
                    Some(fragment) => writer.delta(CHOICE, tool_delta(call, None, fragment), out),
                }
            }
            // citations_delta has no OpenAI form.
            _ => Ok(()),
        }
    }

    /// `message_delta`: the final usage and the finish chunk.
    fn message_delta(
        &mut self,
        event: EventIn<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(before_start());
        };
        if let Some(usage) = event.usage {
            self.usage.update(usage);
        }
        let stop_reason = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
        writer.finish(CHOICE, finish_reason(stop_reason), out)
    }

    /// `message_stop`: the usage chunk when asked for, then `[DONE]`.
    fn stop(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(before_start());
        };
        // message_delta always comes first; if it did not, the message still ended.
        writer.finish(CHOICE, "stop", out)?;
        writer.end(self.usage.to_openai(), out)
    }

    /// The chunk writer: content may only follow `message_start`, which gives every chunk
    /// its id and model.
    fn writer(&mut self) -> Result<&mut ChunkWriter, UpstreamFailure> {
        self.writer.as_mut().ok_or_else(before_start)
    }
}

/// A chunk of answer or thinking text (as `as_delta` makes it), unless the text is empty.
fn text<'t>(
    writer: &mut ChunkWriter,
    text: Option<&'t str>,
    as_delta: fn(&'t str) -> Delta<'t>,
    out: &mut Vec<Bytes>,
) -> Result<(), UpstreamFailure> {
    match text {
        None | Some("") => Ok(()),
        Some(text) => writer.delta(CHOICE, as_delta(text), out),
    }
}

/// The open thinking block, when it is the one at `index`.
fn open_thinking_at(
    open: &mut Option<OpenThinking>,
    index: Option<u64>,
) -> Option<&mut OpenThinking> {
    open.as_mut().filter(|open| Some(open.index) == index)
}

/// A `thinking` block between its start and stop events.
///
/// Its text is sent as `reasoning_content` as it comes, and kept as well: the signature that
/// closes the block vouches for the whole text, and the client can only send the block back
/// whole. This is the one piece of the answer the stream holds, for one block at a time.
struct OpenThinking {
    /// Its content-block index.
    index: u64,
    /// The thinking so far.
    text: String,
    /// The signature so far (it comes in `signature_delta`s).
    signature: String,
}

impl StreamTranslator for EventStream {
    /// Translates one event; nothing after `message_stop` is forwarded.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        if self.writer.as_ref().is_some_and(ChunkWriter::is_done) {
            return Ok(());
        }
        self.handle(event.name(), &event.data, out)
    }

    /// A body that ends before `message_stop` was cut short.
    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        require_end_marker(self.writer.as_ref().is_some_and(ChunkWriter::is_done))
    }

    /// The usage so far, once `message_start` has reported the input.
    fn usage(&self) -> Option<Usage> {
        self.writer
            .is_some()
            .then(|| self.usage.to_openai().totals())
    }
}

/// A tool call fragment; the first one of a call carries its id and name.
fn tool_delta<'b>(index: usize, head: Option<(&'b str, &'b str)>, arguments: &'b str) -> Delta<'b> {
    Delta::tool_call(ToolCallDelta {
        index,
        id: head.map(|(id, _)| Cow::Borrowed(id)),
        kind: head.map(|_| "function"),
        function: FunctionDelta {
            name: head.map(|(_, name)| name),
            arguments: Cow::Borrowed(arguments),
        },
        extra_content: None,
    })
}

/// Content before `message_start`, which names the message every chunk carries.
fn before_start() -> UpstreamFailure {
    stream_malformed("an event before message_start")
}

/// An event the translator cannot read: the stream ends with it.
fn stream_malformed(what: &str) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Stream,
        format!("the provider sent a malformed stream event ({what})"),
    )
}

/// An `event: error` after the 200 (reference 2.4): the stream ends with it.
fn stream_error(error: ErrorIn) -> UpstreamFailure {
    let mut failure = UpstreamFailure::new(
        FailureKind::Stream,
        format!(
            "the provider reported an error mid-stream: {}: {}",
            error.kind.as_deref().unwrap_or("error"),
            error.message.as_deref().unwrap_or("no message")
        ),
    );
    failure.code = error.kind;
    failure
}

// === errors ===

/// Anthropic's error body: `{"type":"error","error":{"type","message","details"?}}`.
#[derive(Default, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    error: Option<ErrorIn>,
}

/// The inner error object.
#[derive(Default, Deserialize)]
struct ErrorIn {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<ErrorDetails>,
}

/// `error.details`, present on spend-limit 429s.
#[derive(Default, Deserialize)]
struct ErrorDetails {
    #[serde(default)]
    error_code: Option<String>,
}

impl ErrorIn {
    /// Whether the account's spend cap or credit, not load, is why the request failed.
    fn is_spend_limit(&self) -> bool {
        let code = self.details.as_ref().and_then(|d| d.error_code.as_deref());
        if code == Some("enforced_spend_limit_reached") {
            return true;
        }
        let message = self
            .message
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        ["credit balance", "spend limit", "usage limits"]
            .iter()
            .any(|needle| message.contains(needle))
    }
}

/// Sorts an Anthropic error answer into a failover class (reference 2.5 and 7.4).
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let error = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_default();
    let kind = failure_kind(status, &error);
    let fields = ErrorFields {
        message: error.message,
        // The client sees OpenAI's type; Anthropic's own type is kept as the code.
        error_type: Some("invalid_request_error".to_owned()),
        code: error.kind,
        param: None,
    };
    let mut failure = openai::failure_from(kind, status, headers, fields);
    if kind == FailureKind::RateLimited && failure.retry_after.is_none() {
        failure.retry_after = retry_after::from_anthropic_reset(headers);
    }
    failure
}

/// The failover class of a status and error body.
fn failure_kind(status: StatusCode, error: &ErrorIn) -> FailureKind {
    match status.as_u16() {
        429 if error.is_spend_limit() => FailureKind::Account,
        429 => FailureKind::RateLimited,
        401..=403 => FailureKind::Account,
        // 408: Anthropic gave up waiting for the request, so it never ran: safe to retry.
        404 | 408 => FailureKind::Unavailable,
        400..=499 => match error.kind.as_deref() {
            Some("authentication_error" | "permission_error" | "billing_error") => {
                FailureKind::Account
            }
            Some("rate_limit_error") => FailureKind::RateLimited,
            Some("overloaded_error" | "api_error" | "not_found_error" | "timeout_error") => {
                FailureKind::Unavailable
            }
            _ if error.is_spend_limit() => FailureKind::Account,
            _ => FailureKind::Rejected,
        },
        _ => FailureKind::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use http::header::CONTENT_TYPE;
    use serde_json::{Value, json};

    use crate::openai::DONE;

    use super::*;

    const CREATED: u64 = 1_760_000_000;

    /// A target from a real config: `claude/claude-x` (no default cap) and
    /// `claude/claude-capped` (max_tokens = 1000).
    fn target(model: &str) -> Target {
        let toml = r#"
[providers.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "CLAUDE_KEY"

[providers.claude.models."claude-x"]
[providers.claude.models."claude-capped"]
max_tokens = 1000
"#;
        let env = |name: &str| (name == "CLAUDE_KEY").then(|| "sk-ant-test".to_owned());
        let snapshot = crate::config::parse(toml, "test.toml", &env).unwrap();
        snapshot.route(model).unwrap().targets[0].clone()
    }

    fn parse(body: &str) -> ChatRequest<'_> {
        let mut chat = ChatRequest::parse(body.as_bytes()).unwrap();
        chat.created = CREATED;
        chat
    }

    /// The upstream body for a client body, as JSON.
    fn translate(body: &str) -> Value {
        translate_for(body, "claude/claude-x")
    }

    fn translate_for(body: &str, model: &str) -> Value {
        let request = Anthropic.request(&parse(body), &target(model)).unwrap();
        serde_json::from_slice(&request.body).unwrap()
    }

    /// The 400 for a client body: (param, message).
    /// The param and message of the 400 a client body gets, at the front door or here.
    fn refused(body: &str) -> (String, String) {
        let error = match ChatRequest::parse(body.as_bytes()) {
            Ok(chat) => Anthropic
                .request(&chat, &target("claude/claude-x"))
                .unwrap_err(),
            Err(error) => error,
        };
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
        let json: Value = serde_json::from_slice(&error.body()).unwrap();
        (
            json["error"]["param"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            json["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    fn with(extra: &str) -> String {
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
    }

    // --- request ---

    #[test]
    fn full_request_golden() {
        let body = r#"{
          "model": "claude",
          "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
              {"type": "text", "text": "What is in these?"},
              {"type": "text", "text": ""},
              {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
              {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
              {"id": "call.1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"cat\"}"}},
              {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call.1", "content": "a cat"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"}
          ],
          "tools": [
            {"type": "function", "function": {"name": "lookup", "description": "Search", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}},
            {"type": "function", "function": {"name": "now"}}
          ],
          "tool_choice": "required",
          "parallel_tool_calls": false,
          "stop": ["END", ""],
          "temperature": 1.7,
          "top_p": 0.5,
          "seed": 7,
          "user": "user-42",
          "stream": true,
          "stream_options": {"include_usage": true},
          "max_completion_tokens": 300,
          "max_tokens": 100,
          "response_format": {"type": "json_schema", "json_schema": {"name": "out", "strict": true, "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}
        }"#;
        let sanitized = tool_id("call.1").into_owned();
        assert_ne!(sanitized, "call.1");
        let expected = json!({
            "model": "claude-x",
            "max_tokens": 300,
            "system": "Be brief.\n\nAnswer in French.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": sanitized, "name": "lookup", "input": {"q": "cat"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": sanitized, "content": [{"type": "text", "text": "a cat"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
                    {"type": "text", "text": "Thanks"}
                ]}
            ],
            "temperature": 1.0,
            "stop_sequences": ["END"],
            "stream": true,
            "tools": [
                {"name": "lookup", "description": "Search", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "metadata": {"user_id": "user-42"},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}
        });
        assert_eq!(translate(body), expected);
    }

    #[test]
    fn minimal_request_sends_only_what_is_needed() {
        let body = translate(&with(""));
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": DEFAULT_MAX_TOKENS,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
        );
    }

    #[test]
    fn request_line_and_headers() {
        let request = Anthropic
            .request(&parse(&with("")), &target("claude/claude-x"))
            .unwrap();
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/v1/messages");
        let key = &request.headers["x-api-key"];
        assert_eq!(key, "sk-ant-test");
        assert!(key.is_sensitive());
        assert_eq!(request.headers["anthropic-version"], "2023-06-01");
        assert_eq!(request.headers[CONTENT_TYPE], "application/json");
        assert!(request.headers.get("authorization").is_none());
    }

    #[test]
    fn max_tokens_precedence() {
        let cases = [
            (
                r#","max_completion_tokens":5,"max_tokens":9"#,
                "claude/claude-capped",
                5,
            ),
            (r#","max_tokens":9"#, "claude/claude-capped", 9),
            ("", "claude/claude-capped", 1000),
            ("", "claude/claude-x", DEFAULT_MAX_TOKENS),
        ];
        for (extra, model, expected) in cases {
            assert_eq!(
                translate_for(&with(extra), model)["max_tokens"],
                expected,
                "{extra} {model}"
            );
        }
    }

    #[test]
    fn sampling_parameters() {
        let body = translate(&with(r#","temperature":0.3"#));
        assert_eq!(body["temperature"], 0.3);
        let body = translate(&with(r#","top_p":0.8"#));
        assert_eq!(body["top_p"], 0.8);
        assert!(body.get("temperature").is_none());
        let body = translate(&with(r#","temperature":2,"top_p":0.8"#));
        assert_eq!(body["temperature"], 1.0);
        assert!(body.get("top_p").is_none());
        let body = translate(&with(r#","safety_identifier":"hash-1""#));
        assert_eq!(body["metadata"], json!({"user_id": "hash-1"}));
        let body = translate(&with(r#","user":"u","safety_identifier":"hash-1""#));
        assert_eq!(body["metadata"], json!({"user_id": "u"}));
        let body = translate(&with(r#","stop":"@@""#));
        assert_eq!(body["stop_sequences"], json!(["@@"]));
    }

    #[test]
    fn same_role_messages_merge_and_empty_ones_vanish() {
        let body = translate(
            r#"{"model":"m","messages":[
                {"role":"user","content":"a"},
                {"role":"user","content":[{"type":"text","text":"b"}]},
                {"role":"assistant","content":" \n "},
                {"role":"user","content":"c"},
                {"role":"assistant","content":"d"},
                {"role":"assistant","content":[{"type":"text","text":"e"}]}
            ]}"#,
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"text","text":"c"}]},
                {"role": "assistant", "content": [{"type":"text","text":"d"},{"type":"text","text":"e"}]}
            ])
        );
    }

    #[test]
    fn tool_results_go_first_in_their_user_turn() {
        let body = translate(
            r#"{"model":"m","messages":[
                {"role":"user","content":"go"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"user","content":"also this"},
                {"role":"tool","tool_call_id":"a","content":""}
            ]}"#,
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a"},
                {"type": "text", "text": "also this"}
            ]})
        );
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type":"tool_use","id":"a","name":"f","input":{}}])
        );
    }

    #[test]
    fn tool_ids_are_sanitized_deterministically() {
        assert_eq!(tool_id("toolu_01-AbC"), "toolu_01-AbC");
        let a = tool_id("call:1/x");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(a, tool_id("call:1/x"));
        assert_ne!(tool_id("call:1"), tool_id("call.1"));
        assert_ne!(tool_id("call:1"), "call_1");
        assert!(!tool_id("").is_empty());
        assert!(!tool_id("é").contains('é'));
    }

    #[test]
    fn tool_choice_variants() {
        let tools = r#","tools":[{"type":"function","function":{"name":"f"}}]"#;
        let cases = [
            ("", json!({"type": "auto"})),
            (r#","tool_choice":"auto""#, json!({"type": "auto"})),
            (r#","tool_choice":"none""#, json!({"type": "none"})),
            (r#","tool_choice":"required""#, json!({"type": "any"})),
            (
                r#","tool_choice":{"type":"function","function":{"name":"f"}}"#,
                json!({"type": "tool", "name": "f"}),
            ),
            (
                r#","parallel_tool_calls":false"#,
                json!({"type": "auto", "disable_parallel_tool_use": true}),
            ),
            (
                r#","tool_choice":"none","parallel_tool_calls":false"#,
                json!({"type": "none"}),
            ),
            (r#","parallel_tool_calls":true"#, json!({"type": "auto"})),
        ];
        for (extra, expected) in cases {
            let body = translate(&with(&format!("{tools}{extra}")));
            assert_eq!(body["tool_choice"], expected, "{extra}");
        }
        // Without tools, auto/none say nothing and required/named cannot be honoured.
        assert!(
            translate(&with(r#","tool_choice":"none""#))
                .get("tool_choice")
                .is_none()
        );
        assert!(
            translate(&with(r#","parallel_tool_calls":false"#))
                .get("tool_choice")
                .is_none()
        );
        assert_eq!(
            refused(&with(r#","tool_choice":"required""#)).0,
            "tool_choice"
        );
        assert_eq!(
            refused(&with(&format!(r#"{tools},"tool_choice":"maybe""#))).0,
            "tool_choice"
        );
        assert_eq!(
            refused(&with(&format!(r#"{tools},"tool_choice":7"#))).0,
            "tool_choice"
        );
    }

    #[test]
    fn response_formats() {
        let body = translate(&with(r#","response_format":{"type":"text"}"#));
        assert!(body.get("output_config").is_none() && body.get("system").is_none());
        let body = translate(
            r#"{"model":"m","messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"JSON please"}],"response_format":{"type":"json_object"}}"#,
        );
        assert_eq!(
            body["system"],
            format!("Be kind.\n\n{JSON_OBJECT_INSTRUCTION}")
        );
        assert!(body.get("output_config").is_none());
        let (param, _) = refused(&with(
            r#","response_format":{"type":"json_schema","json_schema":{"name":"x"}}"#,
        ));
        assert_eq!(param, "response_format.json_schema");
        assert_eq!(
            refused(&with(r#","response_format":{"type":"grammar"}"#)).0,
            "response_format.type"
        );
        assert_eq!(
            refused(&with(r#","response_format":"json""#)).0,
            "response_format"
        );
    }

    #[test]
    fn what_claude_cannot_do_is_a_400_naming_field_and_provider() {
        let user = |content: &str| {
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":{content}}}]}}"#)
        };
        let cases = [
            (with(r#","n":2"#), "n"),
            (with(r#","logprobs":true"#), "logprobs"),
            (with(r#","top_logprobs":3"#), "top_logprobs"),
            (with(r#","logit_bias":{"50256":-100}"#), "logit_bias"),
            (with(r#","presence_penalty":0.5"#), "presence_penalty"),
            (with(r#","frequency_penalty":-1"#), "frequency_penalty"),
            (with(r#","audio":{"voice":"alloy","format":"wav"}"#), "audio"),
            (with(r#","modalities":["text","audio"]"#), "modalities"),
            (with(r#","functions":[{"name":"f"}]"#), "functions"),
            (with(r#","tools":[{"type":"custom","function":{"name":"f"}}]"#), "tools[0].type"),
            (
                user(r#"[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]"#),
                "messages[0].content[0]",
            ),
            (
                user(r#"[{"type":"text","text":"x"},{"type":"file","file":{"file_id":"f"}}]"#),
                "messages[0].content[1].file.file_id",
            ),
            (
                user(r#"[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AA=="}}]"#),
                "messages[0].content[0].image_url.url",
            ),
            (
                user(r#"[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]"#),
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"x"}]}"#.to_owned(),
                "messages[0].content[0]",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}]}"#.to_owned(),
                "messages[1].tool_calls[0].function.arguments",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}"#.to_owned(),
                "messages[1].tool_calls[0].function.arguments",
            ),
            (
                r#"{"model":"m","messages":[{"role":"system","content":"only a system prompt"}]}"#.to_owned(),
                "messages",
            ),
        ];
        for (body, param) in cases {
            let (got, message) = refused(&body);
            assert_eq!(got, param, "{body}");
            assert!(message.contains("anthropic"), "{message}");
            assert!(
                message.contains(param.split('[').next().unwrap()),
                "{message}"
            );
        }
    }

    #[test]
    fn web_search_is_refused_not_dropped() {
        let (refused_param, message) = refused(&with(r#","web_search_options":{}"#));
        assert_eq!(refused_param, "web_search_options");
        assert!(message.contains("anthropic"), "{message}");
    }

    /// (max_tokens, thinking) sent for a client body, on `claude-x` (no default cap).
    fn thinking_of(extra: &str, model: &str) -> (Value, Value) {
        let body = translate_for(&with(extra), model);
        (body["max_tokens"].clone(), body["thinking"].clone())
    }

    #[test]
    fn reasoning_effort_maps_to_thinking_budgets() {
        // Without a client cap the cap is raised to the budget plus 4096 for the answer.
        for (effort, budget) in [
            ("minimal", 1024),
            ("low", 2048),
            ("medium", 8192),
            ("high", 16384),
            ("xhigh", 24576),
            ("max", 27904),
        ] {
            let extra = format!(r#","reasoning_effort":"{effort}""#);
            for model in ["claude/claude-x", "claude/claude-capped"] {
                assert_eq!(
                    thinking_of(&extra, model),
                    (
                        json!(budget + 4096),
                        json!({"type": "enabled", "budget_tokens": budget})
                    ),
                    "{effort} {model}"
                );
            }
        }
        assert_eq!(
            thinking_of(r#","reasoning_effort":"none""#, "claude/claude-x"),
            (json!(4096), Value::Null)
        );
        // The client's cap counts thinking too: it is kept, and the budget fits under it.
        for (extra, max_tokens, budget) in [
            (
                r#","reasoning_effort":"high","max_completion_tokens":20000"#,
                20000,
                16384,
            ),
            (
                r#","reasoning_effort":"high","max_completion_tokens":5000"#,
                5000,
                4999,
            ),
            (r#","reasoning_effort":"low","max_tokens":1025"#, 1025, 1024),
            (
                r#","reasoning_effort":"low","max_tokens":9,"max_completion_tokens":3000"#,
                3000,
                2048,
            ),
        ] {
            assert_eq!(
                thinking_of(extra, "claude/claude-x"),
                (
                    json!(max_tokens),
                    json!({"type": "enabled", "budget_tokens": budget})
                ),
                "{extra}"
            );
        }
        for (extra, param) in [
            (
                r#","reasoning_effort":"low","max_completion_tokens":1024"#,
                "max_completion_tokens",
            ),
            (
                r#","reasoning_effort":"minimal","max_tokens":500"#,
                "max_tokens",
            ),
        ] {
            let (got, message) = refused(&with(extra));
            assert_eq!(got, param, "{extra}");
            assert!(message.contains("1024"), "{message}");
        }
    }

    #[test]
    fn what_thinking_rules_out_is_refused_naming_the_field() {
        let thinking = r#","reasoning_effort":"medium""#;
        for (extra, param) in [
            (r#","temperature":0.7"#, "temperature"),
            (r#","temperature":0"#, "temperature"),
            (r#","top_p":0.9"#, "top_p"),
            (
                r#","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required""#,
                "tool_choice",
            ),
            (
                r#","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}"#,
                "tool_choice",
            ),
        ] {
            let (got, message) = refused(&with(&format!("{thinking}{extra}")));
            assert_eq!(got, param, "{extra}");
            assert!(message.contains("reasoning_effort"), "{message}");
            // The same field without thinking is fine.
            translate(&with(extra));
        }
        let prefill = r#"{"model":"m","reasoning_effort":"low","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Sure"}]}"#;
        assert_eq!(refused(prefill).0, "messages");
        // What thinking allows passes: temperature 1 (or above, clamped to 1), top_p from
        // 0.95, auto and none tool choices.
        for extra in [
            r#","temperature":1"#,
            r#","temperature":1.6"#,
            r#","top_p":0.95"#,
            r#","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto""#,
            r#","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none""#,
        ] {
            let body = translate(&with(&format!("{thinking}{extra}")));
            assert_eq!(body["thinking"]["type"], "enabled", "{extra}");
        }
    }

    #[test]
    fn thinking_blocks_go_back_first_and_unchanged() {
        let body = translate(
            r#"{"model":"m","reasoning_effort":"low","messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":"Checking.","reasoning_content":"ignored",
               "thinking_blocks":[
                 {"type":"thinking","thinking":"Need \"weather\" \u00e9\n","signature":"EqQB+/=="},
                 {"type":"redacted_thinking","data":"EmwKAhgB"}],
               "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"w","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"toolu_1","content":"18C"}]}"#,
        );
        assert_eq!(
            body["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "Need \"weather\" é\n", "signature": "EqQB+/=="},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}
            ])
        );
        // Without thinking blocks nothing is made up, whatever `reasoning_content` says.
        let body = translate(
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y","reasoning_content":"hmm"},{"role":"user","content":"z"}]}"#,
        );
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type": "text", "text": "y"}])
        );
    }

    #[test]
    fn pdfs_become_documents_in_user_turns_and_tool_results() {
        let body = translate(
            r#"{"model":"m","messages":[
              {"role":"user","content":[{"type":"text","text":"Summarise"},
                {"type":"file","file":{"filename":"a.pdf","file_data":"data:Application/PDF;base64,JVBERi0="}}]},
              {"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"scan","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"t1","content":[{"type":"text","text":"page"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},
                {"type":"file","file":{"file_data":"data:application/pdf;base64,JVBE"}}]}]}"#,
        );
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"type": "document", "title": "a.pdf",
                   "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "page"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
            ]}])
        );
        let tool_file = |file: &str| {
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"x"}},{{"role":"assistant","tool_calls":[{{"id":"t1","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}]}},{{"role":"tool","tool_call_id":"t1","content":[{{"type":"file","file":{file}}}]}}]}}"#
            )
        };
        for (file, param, says) in [
            (
                r#"{"file_id":"file-abc"}"#,
                "messages[2].content[0].file.file_id",
                "Files API",
            ),
            (
                r#"{"file_data":"data:text/csv;base64,YSxi"}"#,
                "messages[2].content[0].file.file_data",
                "text/csv",
            ),
        ] {
            let (got, message) = refused(&tool_file(file));
            assert_eq!(got, param, "{file}");
            assert!(message.contains(says), "{message}");
        }
    }

    #[test]
    fn harmless_values_of_unsupported_fields_pass() {
        let body = with(
            r#","n":1,"seed":42,"logprobs":false,"top_logprobs":0,"logit_bias":{},"presence_penalty":0,"frequency_penalty":0.0,"modalities":["text"],"reasoning_effort":"none","web_search_options":null"#,
        );
        let translated = translate(&body);
        assert!(translated.get("seed").is_none());
    }

    #[test]
    fn image_types_are_normalised() {
        let body = translate(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/JPG;base64,/9j/"}},{"type":"image_url","image_url":{"url":"HTTPS://x.test/a.webp"}}]}]}"#,
        );
        let content = &body["messages"][0]["content"];
        assert_eq!(content[0]["source"]["media_type"], "image/jpeg");
        assert_eq!(
            content[1]["source"],
            json!({"type":"url","url":"HTTPS://x.test/a.webp"})
        );
    }

    // --- response ---

    fn respond(body: &str) -> (Value, Usage) {
        let translated = Anthropic
            .response(
                &parse(&with("")),
                &target("claude/claude-x"),
                Bytes::from(body.to_owned()),
            )
            .unwrap();
        (
            serde_json::from_slice(&translated.body).unwrap(),
            translated.usage.unwrap(),
        )
    }

    #[test]
    fn response_with_text_tool_use_thinking_and_cache_usage() {
        let (body, usage) = respond(
            r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",
                "content":[
                  {"type":"thinking","thinking":"Let me think.","signature":"sig"},
                  {"type":"redacted_thinking","data":"xyz"},
                  {"type":"text","text":"Looking "},
                  {"type":"text","text":"it up."},
                  {"type":"tool_use","id":"toolu_1","name":"lookup","input":{ "q" : "a b",  "n": [1, 2] }}
                ],
                "stop_reason":"tool_use","stop_sequence":null,
                "usage":{"input_tokens":12,"output_tokens":30,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"service_tier":"standard"}}"#,
        );
        assert_eq!(
            body,
            json!({
                "id": "msg_01", "object": "chat.completion", "created": CREATED, "model": "claude-sonnet-4-5",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": "Looking it up.", "refusal": null,
                        "reasoning_content": "Let me think.",
                        "thinking_blocks": [
                            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                            {"type": "redacted_thinking", "data": "xyz"}
                        ],
                        "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "lookup", "arguments": "{\"q\":\"a b\",\"n\":[1,2]}"}}]}}],
                "usage": {"prompt_tokens": 1112, "completion_tokens": 30, "total_tokens": 1142,
                          "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 100}},
                "system_fingerprint": null
            })
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 1112,
                completion_tokens: 30,
                total_tokens: 1142,
                cached_tokens: 1000,
                cache_write_tokens: 100,
                reasoning_tokens: 0,
            }
        );
    }

    #[test]
    fn content_is_null_only_when_there_are_tool_calls_and_no_text() {
        let (body, _) = respond(
            r#"{"id":"msg_2","model":"c","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}}"#,
        );
        let message = &body["choices"][0]["message"];
        assert!(message["content"].is_null());
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{}");
        assert!(message.get("reasoning_content").is_none());
        let (body, usage) = respond(
            r#"{"id":"msg_3","model":"c","content":[],"stop_reason":"max_tokens","usage":{"input_tokens":1,"output_tokens":0,"cache_read_input_tokens":null}}"#,
        );
        assert_eq!(body["choices"][0]["message"]["content"], "");
        assert!(body["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(usage.total_tokens, 1);
    }

    #[test]
    fn every_stop_reason_maps() {
        let cases = [
            ("\"end_turn\"", "stop"),
            ("\"stop_sequence\"", "stop"),
            ("\"pause_turn\"", "stop"),
            ("\"max_tokens\"", "length"),
            ("\"model_context_window_exceeded\"", "length"),
            ("\"tool_use\"", "tool_calls"),
            ("\"refusal\"", "content_filter"),
            ("\"something_new\"", "stop"),
            ("null", "stop"),
        ];
        for (reason, expected) in cases {
            let (body, _) = respond(&format!(
                r#"{{"id":"msg","model":"c","content":[{{"type":"text","text":"x"}}],"stop_reason":{reason},"usage":{{"input_tokens":1,"output_tokens":1}}}}"#
            ));
            assert_eq!(body["choices"][0]["finish_reason"], expected, "{reason}");
        }
    }

    #[test]
    fn malformed_responses_are_the_providers_fault() {
        for body in [
            "",
            "<html>",
            r#"{"content":[]}"#,
            r#"{"id":"m","content":[{"type":"tool_use"}]}"#,
        ] {
            let failure = Anthropic
                .response(
                    &parse(&with("")),
                    &target("claude/claude-x"),
                    Bytes::from(body),
                )
                .unwrap_err();
            assert_eq!(failure.kind, FailureKind::Unavailable, "{body}");
        }
    }

    #[test]
    fn compact_keeps_strings_intact() {
        assert_eq!(
            compact_json("{ \"a b\" : \"x \\\" y\\\\\" ,\n \"c\": [ 1 , {} ] }"),
            r#"{"a b":"x \" y\\","c":[1,{}]}"#
        );
    }

    // --- stream ---

    fn ev(name: &str, data: &str) -> SseEvent {
        SseEvent {
            name: Some(Bytes::copy_from_slice(name.as_bytes())),
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    #[test]
    fn events_that_are_not_json_or_not_utf8_are_stream_failures() {
        let mut not_utf8 = br#"{"type":"ping","note":"caf"#.to_vec();
        not_utf8.extend_from_slice(b"\xe9\"}");
        for data in [b"{not json".to_vec(), not_utf8] {
            let mut stream = EventStream::new(CREATED, false);
            let mut out = Vec::new();
            let start = stream.event(&ev("message_start", MESSAGE_START), &mut out);
            start.unwrap();
            let event = SseEvent {
                name: Some(Bytes::from_static(b"ping")),
                data: Bytes::from(data.clone()),
            };
            let failure = stream.event(&event, &mut out).unwrap_err();
            assert_eq!(failure.kind, FailureKind::Stream);
            assert!(
                failure.message.contains("UTF-8") || failure.message.contains("malformed"),
                "{}",
                failure.message
            );
        }
    }

    /// Feeds events (name, data) and returns the frames plus the first error, if any.
    fn run(
        events: &[(&str, &str)],
        include_usage: bool,
        finish: bool,
    ) -> (Vec<String>, Result<(), UpstreamFailure>, Option<Usage>) {
        let mut stream = EventStream::new(CREATED, include_usage);
        let mut out = Vec::new();
        let mut result = Ok(());
        for (name, data) in events {
            result = stream.event(&ev(name, data), &mut out);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() && finish {
            result = stream.finish(&mut out);
        }
        let frames = out
            .iter()
            .map(|frame| {
                let text = std::str::from_utf8(frame).unwrap();
                text.strip_prefix("data: ")
                    .and_then(|t| t.strip_suffix("\n\n"))
                    .unwrap()
                    .to_owned()
            })
            .collect();
        (frames, result, stream.usage())
    }

    const MESSAGE_START: &str = r#"{"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_creation_input_tokens":5,"cache_read_input_tokens":70}}}"#;

    /// A realistic sequence: thinking, text, a tool call whose arguments are split
    /// mid-token (inside a key, a string and a number, and a multi-byte character), pings.
    fn tool_stream() -> Vec<(&'static str, &'static str)> {
        vec![
            ("message_start", MESSAGE_START),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"User wants weather."}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking"}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" now."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_A","name":"get_weather","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"loc"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ation\": \"Z\u00fc"}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"rich\", \"days\": 1"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"0}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_B","name":"get_time","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":3}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":40}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]
    }

    /// Each call's argument fragments, joined in order, by OpenAI `index`; and the order
    /// the calls' head chunks (with their ids) came in.
    fn calls_by_index(frames: &[String]) -> (Vec<String>, Vec<(u64, String)>) {
        let mut arguments: Vec<String> = Vec::new();
        let mut heads = Vec::new();
        for frame in frames.iter().filter(|f| *f != DONE_TEXT) {
            let chunk: Value = serde_json::from_str(frame).unwrap();
            let Some(call) = chunk["choices"][0]["delta"]["tool_calls"].get(0) else {
                continue;
            };
            let index = call["index"].as_u64().unwrap();
            if let Some(id) = call["id"].as_str() {
                heads.push((index, id.to_owned()));
            }
            let slot = usize::try_from(index).unwrap();
            if arguments.len() <= slot {
                arguments.resize(slot + 1, String::new());
            }
            arguments[slot].push_str(call["function"]["arguments"].as_str().unwrap());
        }
        (arguments, heads)
    }

    const DONE_TEXT: &str = "[DONE]";

    #[test]
    fn interleaved_tool_use_blocks_each_get_their_own_index_with_arguments_intact() {
        let start = |block: u64, id: &str| {
            format!(
                r#"{{"type":"content_block_start","index":{block},"content_block":{{"type":"tool_use","id":"{id}","name":"f{block}","input":{{}}}}}}"#
            )
        };
        let part = |block: u64, json: &str| {
            let fragment = serde_json::to_string(json).unwrap();
            format!(
                r#"{{"type":"content_block_delta","index":{block},"delta":{{"type":"input_json_delta","partial_json":{fragment}}}}}"#
            )
        };
        let stop = |block: u64| format!(r#"{{"type":"content_block_stop","index":{block}}}"#);
        let owned: Vec<(&str, String)> = vec![
            ("message_start", MESSAGE_START.to_owned()),
            ("content_block_start", start(1, "toolu_1")),
            ("content_block_start", start(2, "toolu_2")),
            ("content_block_delta", part(2, r#"{"b":"#)),
            ("content_block_delta", part(1, r#"{"a":"x"#)),
            ("content_block_start", start(3, "toolu_3")),
            ("content_block_delta", part(3, r#"{"c":[1,"#)),
            ("content_block_delta", part(1, r#"y"}"#)),
            ("content_block_stop", stop(1)),
            ("content_block_delta", part(2, "2}")),
            ("content_block_delta", part(3, "2]}")),
            ("content_block_stop", stop(3)),
            ("content_block_stop", stop(2)),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#
                    .to_owned(),
            ),
            ("message_stop", r#"{"type":"message_stop"}"#.to_owned()),
        ];
        let events: Vec<(&str, &str)> = owned.iter().map(|(n, d)| (*n, d.as_str())).collect();
        let (frames, result, _) = run(&events, false, true);
        result.unwrap();
        let (arguments, heads) = calls_by_index(&frames);
        assert_eq!(
            heads,
            [
                (0, "toolu_1".to_owned()),
                (1, "toolu_2".to_owned()),
                (2, "toolu_3".to_owned())
            ]
        );
        assert_eq!(arguments, [r#"{"a":"xy"}"#, r#"{"b":2}"#, r#"{"c":[1,2]}"#]);
        // A fragment for a block that has stopped reaches no call.
        let mut late = events[..9].to_vec();
        let after_stop = part(1, "}");
        late.push(("content_block_delta", after_stop.as_str()));
        let (_, result, _) = run(&late, false, true);
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
    }

    #[test]
    fn stream_with_tool_calls_is_openai_shaped() {
        let (frames, result, usage) = run(&tool_stream(), true, true);
        result.unwrap();
        assert_eq!(frames.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        for chunk in &chunks {
            assert_eq!(chunk["id"], "msg_s1");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], CREATED);
            assert_eq!(chunk["model"], "claude-sonnet-4-5");
        }
        let deltas: Vec<&Value> = chunks[..chunks.len() - 1]
            .iter()
            .map(|c| &c["choices"][0]["delta"])
            .collect();
        assert_eq!(*deltas[0], json!({"role": "assistant", "content": ""}));
        assert_eq!(
            *deltas[1],
            json!({"reasoning_content": "User wants weather."})
        );
        // The thinking block closes whole, signature included, for the client to send back.
        assert_eq!(
            *deltas[2],
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "User wants weather.", "signature": "EqQB"}]})
        );
        assert_eq!(*deltas[3], json!({"content": "Checking"}));
        assert_eq!(*deltas[4], json!({"content": " now."}));
        assert_eq!(
            *deltas[5],
            json!({"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function",
                                    "function": {"name": "get_weather", "arguments": ""}}]})
        );
        assert_eq!(
            *deltas[6],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"loc"}}]})
        );
        // Fragments of the first call, joined, are its complete arguments.
        let joined: String = deltas[6..10]
            .iter()
            .map(|d| {
                assert_eq!(d["tool_calls"][0]["index"], 0);
                assert!(d["tool_calls"][0].get("id").is_none());
                d["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        let arguments: Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(arguments, json!({"location": "Zürich", "days": 10}));
        assert_eq!(deltas[10]["tool_calls"][0]["index"], 1);
        assert_eq!(deltas[10]["tool_calls"][0]["id"], "toolu_B");
        assert_eq!(deltas[11]["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(*deltas[12], json!({}));
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        // With include_usage, every chunk before the last says `"usage": null` explicitly.
        for chunk in &chunks[..chunks.len() - 1] {
            assert_eq!(chunk.get("usage"), Some(&Value::Null));
        }
        // Exactly one finish chunk, then the usage chunk with the last (cumulative) count.
        let finishes = chunks
            .iter()
            .filter(|c| !c["choices"][0]["finish_reason"].is_null() && c["choices"][0].is_object())
            .count();
        assert_eq!(finishes, 1);
        let usage_chunk = chunks.last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(
            usage_chunk["usage"],
            json!({"prompt_tokens": 100, "completion_tokens": 42, "total_tokens": 142,
                   "prompt_tokens_details": {"cached_tokens": 70, "cache_write_tokens": 5}})
        );
        assert_eq!(usage.unwrap().total_tokens, 142);
        assert_eq!(chunks.len(), 14);
    }

    #[test]
    fn usage_chunk_only_when_asked() {
        let (frames, result, usage) = run(&tool_stream(), false, true);
        result.unwrap();
        assert!(frames.iter().all(|f| !f.contains("\"usage\"")));
        assert_eq!(frames.len(), 14);
        assert_eq!(usage.unwrap().completion_tokens, 42);
    }

    #[test]
    fn thinking_blocks_stream_whole_when_they_close() {
        let events = [
            ("message_start", MESSAGE_START),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"Two \"parts\""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":", é."}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"+/=="}}"#,
            ),
            // Another block's stop does not close it.
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":7}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let (frames, result, _) = run(&events, false, true);
        result.unwrap();
        let deltas: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str::<Value>(f).unwrap()["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            deltas[1..5],
            [
                json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "EmwKAhgB"}]}),
                json!({"reasoning_content": "Two \"parts\""}),
                json!({"reasoning_content": ", é."}),
                json!({"thinking_blocks": [{"type": "thinking", "thinking": "Two \"parts\", é.",
                                            "signature": "EqQB+/=="}]}),
            ]
        );
        // Then only the finish chunk: the block was sent once.
        assert_eq!(deltas.len(), 6);
    }

    #[test]
    fn error_event_mid_stream_ends_it() {
        let events = [
            ("message_start", MESSAGE_START),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            ),
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        ];
        let (frames, result, _) = run(&events, true, true);
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Stream);
        assert_eq!(failure.code.as_deref(), Some("overloaded_error"));
        assert!(failure.message.contains("Overloaded"));
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f != "[DONE]"));
    }

    #[test]
    fn broken_streams_are_errors() {
        let text_start =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        // Cut short: no message_stop.
        let (frames, result, usage) = run(
            &[
                ("message_start", MESSAGE_START),
                ("content_block_start", text_start),
            ],
            false,
            true,
        );
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
        assert_eq!(frames.len(), 1);
        assert_eq!(usage.unwrap().prompt_tokens, 100);
        // Nothing at all.
        assert!(run(&[], false, true).1.is_err());
        // Malformed JSON.
        assert!(
            run(
                &[
                    ("message_start", MESSAGE_START),
                    ("content_block_delta", "{\"type\":")
                ],
                false,
                false
            )
            .1
            .is_err()
        );
        // Content before message_start.
        assert!(
            run(&[("content_block_start", text_start)], false, false)
                .1
                .is_err()
        );
        // Argument fragments for a block that is not an open tool call.
        let stray = r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert!(
            run(
                &[
                    ("message_start", MESSAGE_START),
                    ("content_block_start", text_start),
                    ("content_block_delta", stray)
                ],
                false,
                false
            )
            .1
            .is_err()
        );
    }

    #[test]
    fn events_after_message_stop_are_ignored() {
        let mut events = tool_stream();
        events.push(("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"late"}}"#));
        let (frames, result, _) = run(&events, false, true);
        result.unwrap();
        assert_eq!(frames.last().unwrap(), "[DONE]");
        assert!(frames.iter().all(|f| !f.contains("late")));
    }

    #[test]
    fn event_type_falls_back_to_the_event_name() {
        let (frames, result, _) = run(
            &[
                ("message_start", MESSAGE_START),
                ("ping", "{}"),
                (
                    "message_delta",
                    r#"{"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
                ),
                ("message_stop", "{}"),
            ],
            false,
            true,
        );
        result.unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames[1].contains("\"finish_reason\":\"stop\""));
    }

    // --- errors ---

    #[test]
    fn failure_classification_table() {
        let spend = r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend cap","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        let error = |kind: &str| {
            format!(
                r#"{{"type":"error","error":{{"type":"{kind}","message":"m"}},"request_id":"req_1"}}"#
            )
        };
        let cases = [
            (400, error("invalid_request_error"), FailureKind::Rejected),
            (400, credit.to_owned(), FailureKind::Account),
            (400, error("billing_error"), FailureKind::Account),
            (401, error("authentication_error"), FailureKind::Account),
            (402, error("billing_error"), FailureKind::Account),
            (403, error("permission_error"), FailureKind::Account),
            (404, error("not_found_error"), FailureKind::Unavailable),
            (408, "{}".to_owned(), FailureKind::Unavailable),
            (413, error("request_too_large"), FailureKind::Rejected),
            (413, "<html>413</html>".to_owned(), FailureKind::Rejected),
            (422, error("invalid_request_error"), FailureKind::Rejected),
            (429, error("rate_limit_error"), FailureKind::RateLimited),
            (429, spend.to_owned(), FailureKind::Account),
            (500, error("api_error"), FailureKind::Unavailable),
            (502, String::new(), FailureKind::Unavailable),
            (503, "{}".to_owned(), FailureKind::Unavailable),
            (504, error("timeout_error"), FailureKind::Unavailable),
            (529, error("overloaded_error"), FailureKind::Unavailable),
        ];
        for (status, body, kind) in cases {
            let failure = Anthropic.failure(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                body.as_bytes(),
            );
            assert_eq!(failure.kind, kind, "{status} {body}");
            assert_eq!(failure.status, Some(StatusCode::from_u16(status).unwrap()));
        }
    }

    #[test]
    fn rejected_keeps_message_and_anthropic_type_as_code() {
        let failure = Anthropic.failure(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 100000 > 64000"}}"#,
        );
        assert_eq!(failure.message, "max_tokens: 100000 > 64000");
        assert_eq!(failure.code.as_deref(), Some("invalid_request_error"));
        assert_eq!(failure.error_type.as_deref(), Some("invalid_request_error"));
    }

    #[test]
    fn credential_failures_hide_the_upstream_message_and_rate_limits_keep_retry_after() {
        let failure = Anthropic.failure(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-123"}}"#,
        );
        assert!(!failure.message.contains("sk-ant-123"));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("12"));
        let failure = Anthropic.failure(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(
            failure.retry_after,
            Some(std::time::Duration::from_secs(12))
        );
    }

    // --- never panic ---

    /// xorshift64*: a deterministic generator, so failures reproduce from the seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        fn text(&mut self) -> String {
            let pieces = [
                "a", " ", "é", "\"", "\\", "{", "}", "日本", "\n", "0", "😀", "\u{0}",
            ];
            (0..self.below(6)).map(|_| self.pick(&pieces)).collect()
        }
    }

    /// One arbitrary upstream event: well-formed shapes with random values, or garbage.
    fn arbitrary_event(rng: &mut Rng) -> (String, Vec<u8>) {
        let index = rng.below(4);
        let s = |v: String| serde_json::to_string(&v).unwrap();
        let numbers = [
            "0",
            "1",
            "18446744073709551615",
            "-1",
            "null",
            "\"7\"",
            "1.5",
        ];
        let reasons = [
            "\"end_turn\"",
            "\"tool_use\"",
            "\"max_tokens\"",
            "\"refusal\"",
            "null",
            "3",
            "\"new\"",
        ];
        let block_kinds = [
            "text",
            "tool_use",
            "thinking",
            "redacted_thinking",
            "server_tool_use",
            "",
        ];
        let delta_kinds = [
            "text_delta",
            "input_json_delta",
            "thinking_delta",
            "signature_delta",
            "citations_delta",
            "x",
        ];
        let (name, data) = match rng.below(14) {
            0 => (
                "message_start",
                format!(
                    r#"{{"type":"message_start","message":{{"id":{},"model":{},"usage":{{"input_tokens":{},"cache_read_input_tokens":{}}}}}}}"#,
                    s(rng.text()),
                    s(rng.text()),
                    rng.pick(&numbers),
                    rng.pick(&numbers)
                ),
            ),
            1 => ("message_start", r#"{"type":"message_start"}"#.to_owned()),
            2 => (
                "content_block_start",
                format!(
                    r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"{}","id":{},"name":{},"text":{},"thinking":{}}}}}"#,
                    rng.pick(&block_kinds),
                    s(rng.text()),
                    s(rng.text()),
                    s(rng.text()),
                    s(rng.text())
                ),
            ),
            3 => (
                "content_block_start",
                format!(
                    r#"{{"type":"content_block_start","index":{}}}"#,
                    rng.pick(&numbers)
                ),
            ),
            4..=6 => (
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{}","text":{},"partial_json":{},"thinking":{}}}}}"#,
                    rng.pick(&delta_kinds),
                    s(rng.text()),
                    s(rng.text()),
                    s(rng.text())
                ),
            ),
            7 => (
                "content_block_stop",
                format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
            ),
            8 => (
                "message_delta",
                format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":{}}},"usage":{{"output_tokens":{}}}}}"#,
                    rng.pick(&reasons),
                    rng.pick(&numbers)
                ),
            ),
            9 => ("message_stop", r#"{"type":"message_stop"}"#.to_owned()),
            10 => ("ping", r#"{"type":"ping"}"#.to_owned()),
            11 => (
                "error",
                format!(
                    r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
                    s(rng.text()),
                    s(rng.text())
                ),
            ),
            12 => {
                let garbage: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
                return (rng.text(), garbage);
            }
            _ => (
                "?",
                rng.pick(&[
                    "[]",
                    "1",
                    "null",
                    "{\"type\":5}",
                    "{\"type\":\"message_start\",\"message\":[]}",
                    "",
                    "{",
                ])
                .to_owned(),
            ),
        };
        let mut data = data.into_bytes();
        if rng.below(20) == 0 {
            let cut = rng.below(data.len() + 1);
            data.truncate(cut);
        }
        (name.to_owned(), data)
    }

    #[test]
    fn arbitrary_event_sequences_never_panic_and_emit_only_valid_frames() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..3000 {
            let mut stream = EventStream::new(CREATED, rng.below(2) == 0);
            let mut out = Vec::new();
            for _ in 0..rng.below(30) {
                let (name, data) = arbitrary_event(&mut rng);
                let event = SseEvent {
                    name: Some(Bytes::from(name)),
                    data: Bytes::from(data),
                };
                // Keep feeding after an error: the translator must stay total either way.
                let _ = stream.event(&event, &mut out);
            }
            let _ = stream.finish(&mut out);
            let _ = stream.usage();
            for frame in &out {
                let payload = frame
                    .strip_prefix(b"data: ")
                    .and_then(|f| f.strip_suffix(b"\n\n"))
                    .unwrap();
                assert!(payload == DONE || serde_json::from_slice::<Value>(payload).is_ok());
            }
        }
    }

    #[test]
    fn well_formed_streams_round_trip_text_and_arguments() {
        let mut rng = Rng(42);
        for _ in 0..300 {
            let mut events = vec![("message_start".to_owned(), MESSAGE_START.to_owned())];
            let mut text = String::new();
            let mut calls: Vec<(String, Value)> = Vec::new();
            for block in 0..rng.below(5) {
                if rng.below(2) == 0 {
                    events.push(("content_block_start".into(), format!(r#"{{"type":"content_block_start","index":{block},"content_block":{{"type":"text","text":""}}}}"#)));
                    for _ in 0..rng.below(4) {
                        let piece = rng.text();
                        text.push_str(&piece);
                        events.push(("content_block_delta".into(), json!({"type":"content_block_delta","index":block,"delta":{"type":"text_delta","text":piece}}).to_string()));
                    }
                } else {
                    let id = format!("toolu_{block}");
                    let input = json!({"k": rng.text(), "n": rng.next() % 1000, "nested": {"list": [rng.text()]}});
                    let serialized = input.to_string();
                    events.push(("content_block_start".into(), json!({"type":"content_block_start","index":block,"content_block":{"type":"tool_use","id":id,"name":"f","input":{}}}).to_string()));
                    let chars: Vec<char> = serialized.chars().collect();
                    let mut at = 0;
                    while at < chars.len() {
                        let len = 1 + rng.below(6);
                        let fragment: String =
                            chars[at..(at + len).min(chars.len())].iter().collect();
                        at += len;
                        events.push(("content_block_delta".into(), json!({"type":"content_block_delta","index":block,"delta":{"type":"input_json_delta","partial_json":fragment}}).to_string()));
                        if rng.below(5) == 0 {
                            events.push(("ping".into(), r#"{"type":"ping"}"#.into()));
                        }
                    }
                    calls.push((id, input));
                }
                events.push((
                    "content_block_stop".into(),
                    format!(r#"{{"type":"content_block_stop","index":{block}}}"#),
                ));
            }
            events.push(("message_delta".into(), r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#.into()));
            events.push(("message_stop".into(), r#"{"type":"message_stop"}"#.into()));
            let borrowed: Vec<(&str, &str)> = events
                .iter()
                .map(|(n, d)| (n.as_str(), d.as_str()))
                .collect();
            let (frames, result, _) = run(&borrowed, false, true);
            result.unwrap();
            let mut got_text = String::new();
            let mut got_calls: Vec<(String, String)> = Vec::new();
            for frame in &frames[..frames.len() - 1] {
                let chunk: Value = serde_json::from_str(frame).unwrap();
                let delta = &chunk["choices"][0]["delta"];
                got_text.push_str(delta["content"].as_str().unwrap_or_default());
                if let Some(call) = delta["tool_calls"].get(0) {
                    let index = call["index"].as_u64().unwrap() as usize;
                    if let Some(id) = call["id"].as_str() {
                        assert_eq!(index, got_calls.len());
                        got_calls.push((id.to_owned(), String::new()));
                    }
                    got_calls[index]
                        .1
                        .push_str(call["function"]["arguments"].as_str().unwrap());
                }
            }
            assert_eq!(got_text, text);
            assert_eq!(got_calls.len(), calls.len());
            for ((id, arguments), (want_id, want)) in got_calls.iter().zip(&calls) {
                assert_eq!(id, want_id);
                assert_eq!(&serde_json::from_str::<Value>(arguments).unwrap(), want);
            }
        }
    }

    /// One arbitrary OpenAI request, mostly well-typed so it passes the front door.
    fn arbitrary_request(rng: &mut Rng) -> String {
        let roles = ["system", "developer", "user", "assistant", "tool"];
        let urls = [
            "data:image/png;base64,AA==",
            "data:image/bmp;base64,AA==",
            "data:,x",
            "data:image/png;base64",
            "https://x/y.png",
            "file:///etc",
            "",
            "data:",
        ];
        let kinds = ["text", "image_url", "input_audio", "file", "refusal", ""];
        let args = [
            "{}",
            "",
            "{\"a\":1}",
            "[1]",
            "{\"a\":",
            "null",
            " { } ",
            "\"x\"",
        ];
        let ids = ["call_1", "call.1", "", "é", "toolu_x"];
        let choices = [
            r#""auto""#,
            r#""none""#,
            r#""required""#,
            r#""x""#,
            r#"{"type":"function","function":{"name":"f"}}"#,
            r#"{"type":"function"}"#,
            "null",
            "3",
        ];
        let formats = [
            r#"{"type":"text"}"#,
            r#"{"type":"json_object"}"#,
            r#"{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}"#,
            r#"{"type":"json_schema"}"#,
            r#"{"type":"x"}"#,
            "null",
            "7",
        ];
        let mut messages = Vec::new();
        for _ in 0..rng.below(6) + 1 {
            let role = rng.pick(&roles);
            let content = match rng.below(4) {
                0 => Value::String(rng.text()),
                1 => Value::Null,
                _ => Value::Array(
                    (0..rng.below(3))
                        .map(|_| json!({"type": rng.pick(&kinds), "text": rng.text(), "image_url": {"url": rng.pick(&urls)}}))
                        .collect(),
                ),
            };
            let mut message = json!({"role": role, "content": content});
            if role == "tool" || rng.below(4) == 0 {
                message["tool_call_id"] = json!(rng.pick(&ids));
            }
            if role == "assistant" && rng.below(2) == 0 {
                message["tool_calls"] = json!([{"id": rng.pick(&ids), "type": "function", "function": {"name": "f", "arguments": rng.pick(&args)}}]);
            }
            messages.push(message);
        }
        let mut body = json!({"model": "m", "messages": messages});
        let optional: [(&str, Value); 14] = [
            ("temperature", json!(rng.below(3) as f64 * 0.9)),
            ("top_p", json!(0.5)),
            ("n", json!(rng.below(3))),
            ("max_tokens", json!(rng.below(5))),
            ("stop", json!(["", rng.text()])),
            (
                "tools",
                json!([{"type": rng.pick(&["function", "custom"]), "function": {"name": "f", "parameters": rng.pick(&["null", "{}"]).parse::<Value>().unwrap()}}]),
            ),
            ("tool_choice", rng.pick(&choices).parse::<Value>().unwrap()),
            ("parallel_tool_calls", json!(rng.below(2) == 0)),
            (
                "response_format",
                rng.pick(&formats).parse::<Value>().unwrap(),
            ),
            ("user", json!(rng.text())),
            ("stream", json!(rng.below(2) == 0)),
            ("logprobs", json!(rng.below(2) == 0)),
            ("logit_bias", json!({})),
            ("seed", json!(1)),
        ];
        for (key, value) in optional {
            if rng.below(3) == 0 {
                body[key] = value;
            }
        }
        body.to_string()
    }

    #[test]
    fn arbitrary_requests_never_panic_and_valid_ones_alternate() {
        let mut rng = Rng(7);
        let target = target("claude/claude-x");
        let mut translated = 0;
        for _ in 0..5000 {
            let body = arbitrary_request(&mut rng);
            let Ok(chat) = ChatRequest::parse(body.as_bytes()) else {
                continue;
            };
            let Ok(request) = Anthropic.request(&chat, &target) else {
                continue;
            };
            translated += 1;
            let json: Value = serde_json::from_slice(&request.body).unwrap();
            assert!(json["max_tokens"].as_u64().is_some());
            let turns = json["messages"].as_array().unwrap();
            assert!(!turns.is_empty());
            for pair in turns.windows(2) {
                assert_ne!(pair[0]["role"], pair[1]["role"], "{body}");
            }
            for turn in turns {
                let content = turn["content"].as_array().unwrap();
                assert!(!content.is_empty());
                for block in content {
                    assert_ne!(block["text"], "", "{body}");
                    if let Some(id) = block.get("id").or(block.get("tool_use_id")) {
                        let id = id.as_str().unwrap();
                        assert!(
                            !id.is_empty()
                                && id
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        );
                    }
                }
            }
        }
        assert!(
            translated > 100,
            "only {translated} requests were translatable"
        );
        // And arbitrary bytes as answers or error bodies.
        for _ in 0..2000 {
            let garbage: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = translate_response(&garbage, 0);
            let _ = classify(
                StatusCode::from_u16(400 + rng.below(200) as u16).unwrap(),
                &HeaderMap::new(),
                &garbage,
            );
        }
    }
}
