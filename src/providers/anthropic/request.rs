//! The request: the OpenAI chat rebuilt as a Messages API body (reference 2.2, 7.1).

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    DEFAULT_MAX_TOKENS, JSON_OBJECT_INSTRUCTION, MAX_TEMPERATURE, MAX_THINKING_BUDGET,
    MIN_THINKING_BUDGET, MIN_THINKING_TOP_P,
};
use crate::config::Target;
use crate::error::ApiError;
use crate::openai::{
    ChatRequest, Content, FilePart, MediaSource, Message, Part, ReasoningEffort, ResponseFormat,
    Role, Stop, ThinkingBlock, ToolChoice as OpenAiToolChoice,
};
use crate::providers::Fnv1a;
use crate::providers::capabilities::unsupported_part;

/// The Messages API request body (reference 2.2).
#[derive(Debug, Serialize)]
pub(super) struct MessagesRequest<'b> {
    pub(super) model: &'b str,
    pub(super) max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) system: Option<String>,
    pub(super) messages: Vec<Turn<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) stop_sequences: Vec<&'b str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<ToolDef<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<ToolChoice<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) metadata: Option<Metadata<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output_config: Option<OutputConfig<'b>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking: Option<Thinking>,
}

/// `thinking`: extended thinking with a token budget (reference 2.2).
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(super) struct Thinking {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) budget_tokens: u32,
}

/// One conversation turn; Anthropic wants user and assistant turns alternating.
#[derive(Debug, Serialize)]
pub(super) struct Turn<'b> {
    pub(super) role: &'static str,
    pub(super) content: Vec<Block<'b>>,
}

/// A request content block (reference 2.2, "Content blocks").
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'b> {
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
pub(super) enum Source<'b> {
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
pub(super) struct ToolDef<'b> {
    pub(super) name: &'b str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'b str>,
    pub(super) input_schema: Schema<'b>,
}

/// A tool's `input_schema`: the client's `parameters` as sent, or the empty object schema.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum Schema<'b> {
    Given(&'b RawValue),
    Empty {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: serde_json::Map<String, serde_json::Value>,
    },
}

/// `tool_choice`: auto, any, tool (named) or none.
#[derive(Debug, PartialEq, Serialize)]
pub(super) struct ToolChoice<'b> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'b str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) disable_parallel_tool_use: Option<bool>,
}

/// `metadata`.
#[derive(Debug, Serialize)]
pub(super) struct Metadata<'b> {
    pub(super) user_id: &'b str,
}

/// `output_config`: structured output on recent models (reference 2.2).
#[derive(Debug, Serialize)]
pub(super) struct OutputConfig<'b> {
    pub(super) format: OutputFormat<'b>,
}

/// `output_config.format`.
#[derive(Debug, Serialize)]
pub(super) struct OutputFormat<'b> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) schema: &'b RawValue,
}

/// Builds the Messages API body. Pure: the same request and target give the same body.
pub(super) fn translate_request<'b>(
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
pub(super) fn invalid(param: &str, why: &str) -> ApiError {
    ApiError::bad_request(
        format!("Invalid '{param}' for provider kind 'anthropic': {why}"),
        Some(param.to_owned()),
    )
}

/// `metadata.user_id` from `user`, else from its successor `safety_identifier`.
pub(super) fn metadata<'b>(chat: &'b ChatRequest<'_>) -> Option<Metadata<'b>> {
    let body = &chat.body;
    let user_id = body.user.as_deref().or(body.safety_identifier.as_deref())?;
    Some(Metadata { user_id })
}

/// `max_completion_tokens`, else `max_tokens`, else the model's default from
/// `providers.toml`, else [`DEFAULT_MAX_TOKENS`]: Anthropic refuses a request without one.
pub(super) fn max_tokens(chat: &ChatRequest<'_>, target: &Target) -> u32 {
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
pub(super) fn output_budget(
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
pub(super) fn thinking_budget(effort: ReasoningEffort) -> Option<u32> {
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
pub(super) fn thinking_allows(
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
pub(super) fn sampling(temperature: Option<f64>, top_p: Option<f64>) -> (Option<f64>, Option<f64>) {
    match temperature {
        Some(t) => (Some(t.min(MAX_TEMPERATURE)), None),
        None => (None, top_p),
    }
}

/// `stop` as an array; empty sequences are dropped (they can never match).
pub(super) fn stop_sequences<'b>(stop: Option<&'b Stop<'_>>) -> Vec<&'b str> {
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
pub(super) fn append_paragraph(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(text);
}

/// All `system` and `developer` messages, in order, joined by blank lines.
pub(super) fn system_prompt(messages: &[Message<'_>], target: &Target) -> Result<String, ApiError> {
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
pub(super) fn turns<'b>(
    messages: &'b [Message<'_>],
    target: &Target,
) -> Result<Vec<Turn<'b>>, ApiError> {
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
pub(super) enum Place {
    /// The system prompt: text only.
    System,
    /// A user turn or a tool result: text, images and PDFs.
    User,
    /// An assistant turn: text only.
    Assistant,
}

impl Place {
    /// The place as a refusal names it.
    pub(super) fn name(self) -> &'static str {
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
pub(super) fn blocks<'b>(
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
pub(super) fn part_block<'b>(
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
pub(super) fn image<'b>(source: &'b MediaSource<'_>, param: &str) -> Result<Block<'b>, ApiError> {
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
pub(super) fn document<'b>(file: &'b FilePart<'_>, param: &str) -> Result<Block<'b>, ApiError> {
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
pub(super) fn is_http(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    scheme.is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
}

/// The media types Anthropic accepts for images (reference 2.2), in canonical spelling;
/// `mime` is lowercase already (the front door lowercases media types).
pub(super) fn image_media_type(mime: &str) -> Option<&'static str> {
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
pub(super) fn assistant_blocks<'b>(
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
pub(super) fn arguments(arguments: &str, param: &str) -> Result<Box<RawValue>, ApiError> {
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
pub(super) fn tool_result<'b>(
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
pub(super) fn tool_id(id: &str) -> Cow<'_, str> {
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
pub(super) fn tools<'b>(tools: &'b [crate::openai::Tool<'_>]) -> Vec<ToolDef<'b>> {
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
pub(super) fn tool_choice<'b>(
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

#[cfg(test)]
mod tests {
    use http::Method;
    use http::header::CONTENT_TYPE;
    use serde_json::{Value, json};

    use super::*;
    use crate::providers::Adapter;
    use crate::providers::anthropic::fixtures::{
        parse, refused, target, translate, translate_for, with,
    };
    use crate::providers::anthropic::{Anthropic, DEFAULT_MAX_TOKENS, JSON_OBJECT_INSTRUCTION};

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
}
