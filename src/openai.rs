//! The OpenAI Chat Completions wire, as the router reads and writes it.
//!
//! [`ChatRequest::parse`] is the front door's validation: it type-checks the fields the router
//! and its adapters rely on, borrowing from the client's bytes instead of copying them, and
//! turns every problem into a 400 that names the offending `param`. Fields it does not know
//! are left in the raw body for OpenAI-wire upstreams, which receive the client's bytes with
//! only `model` replaced.
//!
//! The answer types at the end ([`Completion`], [`Chunk`] and their parts) are what the
//! adapters that rebuild answers (Anthropic, Gemini) serialise, so every such provider sends
//! clients the same JSON shape. Answers from OpenAI-wire upstreams are never re-serialised.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::json_guard::{self, Poison};

mod content;
pub mod embeddings;
mod options;
mod reasoning;

pub use content::{Content, FilePart, MediaSource, Part};
pub use options::{JsonSchema, LogitBias, ReasoningEffort, ResponseFormat, ToolChoice};
pub use reasoning::{ExtraContent, GoogleExtra, ThinkingBlock};

/// A validated chat completion request: the typed view plus the client's raw bytes.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    raw: &'a [u8],
    /// The typed view of the fields the router checks.
    pub body: ChatBody<'a>,
    /// The requested model (a route name or `provider/model`), unescaped.
    pub model: Cow<'a, str>,
    /// Unix seconds when the router received the request: the `created` of responses that
    /// adapters build themselves (adapters have no clock). Set by the front door.
    pub created: u64,
    model_span: Range<usize>,
    /// The typed `stream_options`; `None` when absent or `null`.
    stream_options: Option<StreamOptions>,
    /// Where the client's `stream_options` value is, `null` included, for the upstream body.
    stream_options_span: Option<Range<usize>>,
}

/// The fields of a chat request the router type-checks. Typing a field here *is* its
/// validation: a wrong type becomes a 400 naming it.
#[derive(Debug, Deserialize)]
pub struct ChatBody<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    /// The conversation.
    #[serde(borrow, default)]
    pub messages: Option<Vec<Message<'a>>>,
    /// Whether the client wants server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Stream options; only meaningful with `stream: true`. Kept raw, a JSON `null` included,
    /// so the upstream body can be edited in place; typed by [`ChatRequest::parse`].
    #[serde(borrow, default, deserialize_with = "raw_including_null")]
    stream_options: Option<&'a RawValue>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Number of choices, 1 to [`MAX_CHOICES`].
    #[serde(default)]
    pub n: Option<u32>,
    /// Legacy output cap.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Output cap including reasoning tokens; preferred over `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Best-effort determinism.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Whether token log probabilities are wanted.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// How many alternatives per token with their log probabilities, 0 to
    /// [`MAX_TOP_LOGPROBS`].
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    /// Penalty for tokens already present, -2 to 2.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Penalty by token frequency, -2 to 2.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Stop sequences: a string or an array of strings.
    #[serde(borrow, default)]
    pub stop: Option<Stop<'a>>,
    /// Function tools the model may call.
    #[serde(borrow, default)]
    pub tools: Option<Vec<Tool<'a>>>,
    /// Which tool the model must, may or must not call.
    #[serde(borrow, default)]
    pub tool_choice: Option<ToolChoice<'a>>,
    /// Whether several tool calls may come in one turn.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// `text`, `json_object` or `json_schema`.
    #[serde(borrow, default)]
    pub response_format: Option<ResponseFormat<'a>>,
    /// How much a reasoning model may think.
    #[serde(default)]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Whether the answer should carry the model's readable reasoning (`reasoning_content`),
    /// for providers that only write it on request. An extension other OpenAI-compatible
    /// gateways (OpenRouter) use; OpenAI itself has no such field.
    #[serde(default)]
    pub include_reasoning: Option<bool>,
    /// Token biases.
    #[serde(default)]
    pub logit_bias: Option<LogitBias>,
    /// Output modalities, e.g. `["text", "audio"]`.
    #[serde(borrow, default)]
    pub modalities: Option<Vec<Cow<'a, str>>>,
    /// Audio output settings; present only when audio output is wanted.
    #[serde(borrow, default)]
    pub audio: Option<&'a RawValue>,
    /// OpenAI's built-in web search; present only when it is wanted.
    #[serde(borrow, default)]
    pub web_search_options: Option<&'a RawValue>,
    /// The deprecated predecessor of `tools`.
    #[serde(borrow, default)]
    pub functions: Option<&'a RawValue>,
    /// The deprecated predecessor of `tool_choice`.
    #[serde(borrow, default)]
    pub function_call: Option<&'a RawValue>,
    /// An end-user identifier.
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    /// OpenAI's successor to `user`.
    #[serde(borrow, default)]
    pub safety_identifier: Option<Cow<'a, str>>,
}

/// `stream_options` of a streaming request.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Whether a final chunk with `usage` (and empty `choices`) is wanted.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `stop`: one sequence or several.
#[derive(Debug)]
pub enum Stop<'a> {
    /// A single stop sequence.
    One(Cow<'a, str>),
    /// Several stop sequences.
    Many(Vec<Cow<'a, str>>),
}

/// A message's author.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// Instructions from the developer (newer name for `system`).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// Who wrote it.
    pub role: Role,
    /// Text or content parts; may be null on an assistant turn that calls tools.
    #[serde(borrow, default)]
    pub content: Option<Content<'a>>,
    /// An optional participant name.
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// Tool calls made by an assistant turn.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// The call a `tool` message answers.
    #[serde(borrow, default)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// Readable reasoning of an earlier assistant turn (DeepSeek's and Qwen's name).
    #[serde(borrow, default)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// Claude's signed thinking of an earlier assistant turn, to send back unchanged.
    #[serde(borrow, default)]
    pub thinking_blocks: Option<Vec<ThinkingBlock<'a>>>,
    /// Provider extras of an earlier assistant turn (Gemini's thought signature).
    #[serde(borrow, default)]
    pub extra_content: Option<ExtraContent<'a>>,
}

/// A tool call in an assistant message.
#[derive(Debug, Deserialize)]
pub struct ToolCall<'a> {
    /// The call id that a later `tool` message answers.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// The function called.
    #[serde(borrow)]
    pub function: FunctionCall<'a>,
    /// Provider extras of the call (Gemini's thought signature).
    #[serde(borrow, default)]
    pub extra_content: Option<ExtraContent<'a>>,
}

/// The function part of a tool call.
#[derive(Debug, Deserialize)]
pub struct FunctionCall<'a> {
    /// Function name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Arguments as a JSON string.
    #[serde(borrow, default)]
    pub arguments: Cow<'a, str>,
}

/// A tool the model may call.
#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    /// Always `function` for chat completions.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The function definition.
    #[serde(borrow)]
    pub function: FunctionDef<'a>,
}

/// A function tool's definition.
#[derive(Debug, Deserialize)]
pub struct FunctionDef<'a> {
    /// Function name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// What the function does.
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    /// JSON Schema of the arguments.
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
}

impl<'a> ChatRequest<'a> {
    /// Parses and validates a client's request body.
    pub fn parse(raw: &'a [u8]) -> Result<Self, ApiError> {
        // The whole body, skipped members included, is checked first; the text it yields is
        // then parsed without serde validating each string's UTF-8 a second time.
        let text = json_guard::check(raw).map_err(|poison| poisoned(raw, poison))?;
        let body: ChatBody<'a> = match serde_json::from_str(text) {
            Ok(body) => body,
            // Tracking the path costs on every value, so it is paid only to name the
            // parameter of a body that failed.
            Err(_) => {
                let deserializer = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(deserializer).map_err(invalid_body)?
            }
        };
        let Some(model_raw) = body.model else {
            return Err(ApiError::bad_request(
                "You must provide a model parameter.",
                Some("model".into()),
            ));
        };
        let model = unescape_string(model_raw).ok_or_else(|| {
            ApiError::bad_request(
                "Invalid type for 'model': expected a string.",
                Some("model".into()),
            )
        })?;
        let model_span = span_of(raw, model_raw.get());
        let stream_options = parse_stream_options(body.stream_options)?;
        let stream_options_span = body.stream_options.map(|value| span_of(raw, value.get()));
        let request = Self {
            raw,
            body,
            model,
            created: 0,
            model_span,
            stream_options,
            stream_options_span,
        };
        request.validate()?;
        Ok(request)
    }

    /// The client's bytes as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.body.stream.unwrap_or(false)
    }

    /// Whether the client asked for the usage chunk at the end of its stream.
    pub fn include_usage(&self) -> bool {
        self.is_stream()
            && self
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false)
    }

    /// The conversation (validated to be present and non-empty).
    pub fn messages(&self) -> &[Message<'a>] {
        self.body.messages.as_deref().unwrap_or_default()
    }

    /// The client's body with `model` replaced, every other byte as the client sent it.
    pub fn body_with_model(&self, model: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(self.raw.len() + model.len());
        out.put_slice(&self.raw[..self.model_span.start]);
        write_json_string(&mut out, model);
        out.put_slice(&self.raw[self.model_span.end..]);
        out.freeze()
    }

    /// The body for an OpenAI-wire upstream: `model` replaced and, for a stream, the usage
    /// chunk asked for (`stream_options.include_usage: true`) whether or not the client asked,
    /// so that every stream can be accounted. Every other byte is the client's; only a
    /// `stream_options` object that lacked `include_usage: true` is rewritten, itself alone.
    pub fn body_with_model_and_usage(&self, model: &str) -> Bytes {
        if !self.is_stream() || self.include_usage() {
            return self.body_with_model(model);
        }
        let mut model_json = BytesMut::with_capacity(model.len() + 2);
        write_json_string(&mut model_json, model);
        let usage_edit = match &self.stream_options_span {
            Some(span) => (span.clone(), with_include_usage(&self.raw[span.clone()])),
            // No `stream_options` member: add one as the object's first member (the object
            // has a `model`, so a comma always follows).
            None => {
                let at = self
                    .raw
                    .iter()
                    .position(|&b| b == b'{')
                    .map_or(0, |p| p + 1);
                (
                    at..at,
                    br#""stream_options":{"include_usage":true},"#.to_vec(),
                )
            }
        };
        let mut edits = [(self.model_span.clone(), model_json.to_vec()), usage_edit];
        edits.sort_by_key(|(span, _)| span.start);
        let mut out = BytesMut::with_capacity(self.raw.len() + model.len() + 40);
        let mut copied = 0;
        for (span, with) in edits {
            out.put_slice(&self.raw[copied..span.start]);
            out.put_slice(&with);
            copied = span.end;
        }
        out.put_slice(&self.raw[copied..]);
        out.freeze()
    }

    fn validate(&self) -> Result<(), ApiError> {
        if self.model.is_empty() {
            return Err(ApiError::bad_request(
                "'model' must not be empty.",
                Some("model".into()),
            ));
        }
        let Some(messages) = &self.body.messages else {
            return Err(ApiError::bad_request(
                "Missing required parameter: 'messages'.",
                Some("messages".into()),
            ));
        };
        if messages.is_empty() {
            return Err(ApiError::bad_request(
                "'messages' must contain at least one message.",
                Some("messages".into()),
            ));
        }
        for (index, message) in messages.iter().enumerate() {
            message.validate(index)?;
        }
        let b = &self.body;
        check_range("temperature", b.temperature, 0.0, 2.0)?;
        check_range("top_p", b.top_p, 0.0, 1.0)?;
        check_range("presence_penalty", b.presence_penalty, -2.0, 2.0)?;
        check_range("frequency_penalty", b.frequency_penalty, -2.0, 2.0)?;
        check_count("n", b.n, 1, MAX_CHOICES)?;
        check_count("max_tokens", b.max_tokens, 1, MAX_OUTPUT_TOKENS)?;
        check_count(
            "max_completion_tokens",
            b.max_completion_tokens,
            1,
            MAX_OUTPUT_TOKENS,
        )?;
        check_count("top_logprobs", b.top_logprobs, 0, MAX_TOP_LOGPROBS)?;
        if self.stream_options.is_some() && !self.is_stream() {
            return Err(ApiError::bad_request(
                "'stream_options' is only allowed when 'stream' is true.",
                Some("stream_options".into()),
            ));
        }
        Ok(())
    }
}

impl Message<'_> {
    fn validate(&self, index: usize) -> Result<(), ApiError> {
        let param = |field: &str| Some(format!("messages[{index}].{field}"));
        match self.role {
            Role::System | Role::Developer | Role::User if self.content.is_none() => {
                Err(ApiError::bad_request(
                    format!("Missing required parameter: 'messages[{index}].content'."),
                    param("content"),
                ))
            }
            Role::Tool if self.tool_call_id.is_none() => Err(ApiError::bad_request(
                format!("Missing required parameter: 'messages[{index}].tool_call_id'."),
                param("tool_call_id"),
            )),
            Role::Assistant if self.content.is_none() && self.tool_calls.is_none() => {
                Err(ApiError::bad_request(
                    format!(
                        "'messages[{index}]': an assistant message needs 'content' or 'tool_calls'."
                    ),
                    param("content"),
                ))
            }
            Role::System | Role::Developer | Role::User | Role::Tool | Role::Assistant => Ok(()),
        }
    }

    /// The message's text: the string content, or its text parts joined.
    pub fn text(&self) -> Cow<'_, str> {
        match &self.content {
            None => Cow::Borrowed(""),
            Some(Content::Text(text)) => Cow::Borrowed(text),
            Some(Content::Parts(parts)) => {
                let texts: Vec<&str> = parts.iter().filter_map(Part::text).collect();
                Cow::Owned(texts.join("\n"))
            }
        }
    }
}

/// The most choices a request may ask for: OpenAI's own limit.
pub const MAX_CHOICES: u32 = 128;

/// The largest output cap a request may set. No model writes this much in one answer (the
/// largest caps are in the hundreds of thousands); a larger value is a client bug, and would
/// also reserve that many tokens of the rate limits.
pub const MAX_OUTPUT_TOKENS: u32 = 10_000_000;

/// The most alternatives per token `top_logprobs` may ask for: OpenAI's own limit.
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// A whole-number field that must be from `min` to `max` when present.
fn check_count(name: &str, value: Option<u32>, min: u32, max: u32) -> Result<(), ApiError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(ApiError::bad_request(
            format!("'{name}' must be from {min} to {max}, got {v}."),
            Some(name.into()),
        )),
        _ => Ok(()),
    }
}

fn check_range(name: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), ApiError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(ApiError::bad_request(
            format!("'{name}' must be between {min} and {max}, got {v}."),
            Some(name.into()),
        )),
        _ => Ok(()),
    }
}

/// The 400 for a body that is not fit to parse, naming the top-level member where the
/// problem is (`None` when it is outside any).
fn poisoned(raw: &[u8], poison: Poison) -> ApiError {
    ApiError::bad_request(
        poison.to_string(),
        json_guard::member_at(raw, poison.offset()),
    )
}

fn invalid_body(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::bad_request(
            format!(
                "We could not parse the JSON body of your request ({inner}). The body must be a \
                 JSON object."
            ),
            None,
        );
    }
    if path == "." {
        return ApiError::bad_request(format!("Invalid request body: {inner}."), None);
    }
    ApiError::bad_request(format!("Invalid value for '{path}': {inner}."), Some(path))
}

/// A JSON string value, borrowed when it has no escapes; `None` when it is not a string.
fn unescape_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if let Ok(plain) = serde_json::from_str::<&str>(raw.get()) {
        return Some(Cow::Borrowed(plain));
    }
    serde_json::from_str::<String>(raw.get())
        .ok()
        .map(Cow::Owned)
}

/// Captures a member's raw value, a JSON `null` included (an `Option` field alone reads
/// `null` as absent and loses where it was).
fn raw_including_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Types the raw `stream_options`; a problem is a 400 naming the member inside it.
fn parse_stream_options(raw: Option<&RawValue>) -> Result<Option<StreamOptions>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let deserializer = &mut serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let param = if path == "." {
            "stream_options".to_owned()
        } else {
            format!("stream_options.{path}")
        };
        ApiError::bad_request(
            format!("Invalid value for '{param}': {}.", error.inner()),
            Some(param),
        )
    })
}

/// A `stream_options` value (an object without `include_usage: true`, or `null`) re-written
/// with `include_usage: true` and its other members kept.
fn with_include_usage(raw: &[u8]) -> Vec<u8> {
    let mut options: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(raw).unwrap_or_default();
    options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
    serde_json::to_vec(&options).unwrap_or_else(|_| br#"{"include_usage":true}"#.to_vec())
}

/// The byte range of `part` inside `whole`; `part` must be a sub-slice of it.
fn span_of(whole: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// Appends `value` as a JSON string literal.
pub fn write_json_string(out: &mut BytesMut, value: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(out.writer(), value);
}

impl<'de: 'a, 'a> Deserialize<'de> for Stop<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StopVisitor;
        impl<'de> Visitor<'de> for StopVisitor {
            type Value = Stop<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Stop::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Stop::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                while let Some(StopItem(item)) = seq.next_element()? {
                    all.push(item);
                }
                Ok(Stop::Many(all))
            }
        }
        deserializer.deserialize_any(StopVisitor)
    }
}

/// A borrowed-when-possible string inside a `stop` array.
struct StopItem<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for StopItem<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(Cow::deserialize(deserializer)?))
    }
}

/// Token counts in OpenAI's meaning, whatever the provider reported: the figures the router
/// accounts with, normalised once by the adapter that read them (DESIGN "usage").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "UsageWire")]
pub struct Usage {
    /// The whole input, cache reads and writes included.
    pub prompt_tokens: u64,
    /// The whole output, reasoning tokens included.
    pub completion_tokens: u64,
    /// The sum of the two.
    pub total_tokens: u64,
    /// The part of the prompt read from the provider's cache.
    pub cached_tokens: u64,
    /// The part of the prompt written to the provider's cache (Anthropic's cache creation).
    pub cache_write_tokens: u64,
    /// The part of the output spent on reasoning (already counted in `completion_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// The prompt tokens billed at the full input price: neither read from nor written to
    /// the cache.
    pub fn uncached_prompt_tokens(&self) -> u64 {
        self.prompt_tokens
            .saturating_sub(self.cached_tokens)
            .saturating_sub(self.cache_write_tokens)
    }
}

/// `usage` as it arrives on the OpenAI wire, details nested.
#[derive(Default, Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetailsWire>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetailsWire>,
}

/// `usage.prompt_tokens_details` as OpenAI-wire providers send it.
#[derive(Default, Deserialize)]
struct PromptDetailsWire {
    #[serde(default)]
    cached_tokens: Option<u64>,
    /// The router's own name for cache writes (what its Anthropic translation sends);
    /// DashScope's explicit cache reports them as `cache_creation_input_tokens`.
    #[serde(default, alias = "cache_creation_input_tokens")]
    cache_write_tokens: Option<u64>,
}

/// `usage.completion_tokens_details` as OpenAI-wire providers send it.
#[derive(Default, Deserialize)]
struct CompletionDetailsWire {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(wire: UsageWire) -> Self {
        let prompt = wire.prompt_tokens.unwrap_or(0);
        let completion = wire.completion_tokens.unwrap_or(0);
        let prompt_details = wire.prompt_tokens_details.unwrap_or_default();
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: wire
                .total_tokens
                .unwrap_or_else(|| prompt.saturating_add(completion)),
            cached_tokens: prompt_details.cached_tokens.unwrap_or(0),
            cache_write_tokens: prompt_details.cache_write_tokens.unwrap_or(0),
            reasoning_tokens: wire
                .completion_tokens_details
                .unwrap_or_default()
                .reasoning_tokens
                .unwrap_or(0),
        }
    }
}

/// Just the `usage` of an OpenAI-wire response or chunk; everything else is skipped unparsed.
#[derive(Deserialize)]
pub struct UsageOnly {
    /// The usage, when present and not null.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The `data:` payload that ends an OpenAI stream.
pub const DONE: &[u8] = b"[DONE]";

// === Answers the translating adapters write ===
//
// Field order is the JSON key order clients see, and which members are left out rather than
// sent as `null` is part of the wire: both are kept exactly as the adapters have always sent
// them.

/// A `chat.completion` body.
#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<CompletionChoice<'a>>,
    /// `null` when the provider reported no usage.
    usage: Option<UsageOut>,
    /// No translated provider has one; OpenAI sends `null` then.
    system_fingerprint: Option<&'static str>,
}

impl<'a> Completion<'a> {
    /// A completion `id` answered by `model`, created at `created` (Unix seconds).
    pub fn new(
        id: &'a str,
        created: u64,
        model: &'a str,
        choices: Vec<CompletionChoice<'a>>,
        usage: Option<UsageOut>,
    ) -> Self {
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            choices,
            usage,
            system_fingerprint: None,
        }
    }
}

/// One choice of a `chat.completion`.
#[derive(Debug, Serialize)]
pub struct CompletionChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    /// Log probabilities are never offered by a translated provider.
    logprobs: Option<&'static str>,
    finish_reason: &'static str,
}

impl<'a> CompletionChoice<'a> {
    /// Choice `index`, ended for `finish_reason` (`stop`, `length`, `tool_calls`, ...).
    pub fn new(index: u32, message: AssistantMessage<'a>, finish_reason: &'static str) -> Self {
        Self {
            index,
            message,
            logprobs: None,
            finish_reason,
        }
    }

    /// The choice's position, by which choices are ordered.
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// The assistant message of a choice.
#[derive(Debug, Serialize)]
pub struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<String>,
    /// Not in OpenAI's schema, but the field DeepSeek and Qwen use for visible thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    /// Claude's signed thinking, which the client sends back on its next turn; left out when
    /// empty (see [`ThinkingBlock`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thinking_blocks: Vec<ThinkingBlock<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
    /// Translated providers have no refusal field (refusals show as `content_filter`).
    refusal: Option<&'static str>,
    /// Provider extras the client sends back on the next turn (Gemini's thought signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_content: Option<ExtraContent<'a>>,
}

impl<'a> AssistantMessage<'a> {
    /// The answer's text (`None` is `null`, for an answer that is only tool calls), its
    /// visible reasoning (left out when `None`) and its tool calls (left out when empty).
    pub fn new(
        content: Option<String>,
        reasoning_content: Option<String>,
        tool_calls: Vec<ToolCallOut<'a>>,
    ) -> Self {
        Self {
            role: "assistant",
            content,
            reasoning_content,
            thinking_blocks: Vec::new(),
            tool_calls,
            refusal: None,
            extra_content: None,
        }
    }

    /// The same message carrying provider extras (left out when `None`).
    pub fn with_extra_content(mut self, extra_content: Option<ExtraContent<'a>>) -> Self {
        self.extra_content = extra_content;
        self
    }

    /// The same message carrying the thinking blocks the answer came with, in their order.
    pub fn with_thinking_blocks(mut self, blocks: Vec<ThinkingBlock<'a>>) -> Self {
        self.thinking_blocks = blocks;
        self
    }
}

/// A whole tool call in an answer.
#[derive(Debug, Serialize)]
pub struct ToolCallOut<'a> {
    /// The call id a later `tool` message answers.
    pub id: Cow<'a, str>,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Name and arguments.
    pub function: FunctionOut<'a>,
    /// Provider extras the client sends back with the call (Gemini's thought signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<ExtraContent<'a>>,
}

/// The function of a tool call in an answer.
#[derive(Debug, Serialize)]
pub struct FunctionOut<'a> {
    /// The function name.
    pub name: &'a str,
    /// The arguments object as a compact JSON string.
    pub arguments: String,
}

/// OpenAI's `usage` object with its details.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct UsageOut {
    /// The whole input, cached tokens included.
    pub prompt_tokens: u64,
    /// The whole output, reasoning tokens included.
    pub completion_tokens: u64,
    /// The sum of the two.
    pub total_tokens: u64,
    /// How much of the prompt the provider's cache served.
    pub prompt_tokens_details: PromptTokensDetails,
    /// How much of the output was reasoning; left out when the provider does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

impl UsageOut {
    /// The figures the router accounts with, details included.
    pub fn totals(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            cached_tokens: self.prompt_tokens_details.cached_tokens,
            cache_write_tokens: self.prompt_tokens_details.cache_write_tokens.unwrap_or(0),
            reasoning_tokens: self
                .completion_tokens_details
                .map_or(0, |details| details.reasoning_tokens),
        }
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PromptTokensDetails {
    /// Tokens read from the provider's cache.
    pub cached_tokens: u64,
    /// Tokens written to the cache; not in OpenAI's schema, left out when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

/// `usage.completion_tokens_details`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CompletionTokensDetails {
    /// Thinking tokens, billed as output.
    pub reasoning_tokens: u64,
}

/// A `chat.completion.chunk`.
#[derive(Serialize)]
pub struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    /// `None` leaves the member out; `Some(None)` sends `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<Option<&'static str>>,
    choices: Vec<ChunkChoice<'a>>,
    /// Left out unless the client asked for usage; then `null` until the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

impl<'a> Chunk<'a> {
    /// A chunk of stream `id` (answered by `model`, created at `created`) with one choice.
    /// With `include_usage` (the client asked for the usage chunk) it carries `"usage": null`,
    /// as every OpenAI chunk before the usage chunk does.
    pub fn with_choice(
        id: &'a str,
        created: u64,
        model: &'a str,
        choice: ChunkChoice<'a>,
        include_usage: bool,
    ) -> Self {
        let usage = include_usage.then_some(None);
        Self::new(id, created, model, vec![choice], usage)
    }

    /// The usage chunk that ends a stream whose client asked for it: no choices, the final
    /// figures.
    pub fn with_usage(id: &'a str, created: u64, model: &'a str, usage: UsageOut) -> Self {
        Self::new(id, created, model, Vec::new(), Some(Some(usage)))
    }

    /// The fields every chunk of a stream shares, plus what this one carries.
    fn new(
        id: &'a str,
        created: u64,
        model: &'a str,
        choices: Vec<ChunkChoice<'a>>,
        usage: Option<Option<UsageOut>>,
    ) -> Self {
        Self {
            id,
            object: "chat.completion.chunk",
            created,
            model,
            system_fingerprint: None,
            choices,
            usage,
        }
    }

    /// The same chunk with `"system_fingerprint": null`, which Gemini's translation has always
    /// sent and Anthropic's has always left out.
    pub fn with_null_system_fingerprint(mut self) -> Self {
        self.system_fingerprint = Some(None);
        self
    }
}

/// One choice of a chunk.
#[derive(Serialize)]
pub struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    /// Log probabilities are never offered by a translated provider.
    logprobs: Option<&'static str>,
    finish_reason: Option<&'static str>,
}

impl<'a> ChunkChoice<'a> {
    /// What choice `index` gains; `finish_reason` is set on its last chunk only.
    pub fn new(index: u32, delta: Delta<'a>, finish_reason: Option<&'static str>) -> Self {
        Self {
            index,
            delta,
            logprobs: None,
            finish_reason,
        }
    }
}

/// What a chunk adds to a choice; every member left out when `None`. The default is the
/// empty delta of a finish chunk.
#[derive(Default, Serialize)]
pub struct Delta<'a> {
    /// `assistant`, on a choice's first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// New text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// New visible reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// One tool call fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
    /// Provider extras of the message (Gemini's thought signature of a text part).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<ExtraContent<'a>>,
    /// One whole thinking block, sent when it closes, for the client to send back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<[ThinkingBlock<'a>; 1]>,
}

impl<'a> Delta<'a> {
    /// A choice's first delta: the role, with empty content as OpenAI sends it.
    pub fn opening() -> Self {
        Self {
            role: Some("assistant"),
            content: Some(""),
            ..Self::default()
        }
    }

    /// New answer text.
    pub fn content(text: &'a str) -> Self {
        Self {
            content: Some(text),
            ..Self::default()
        }
    }

    /// New reasoning text.
    pub fn reasoning(text: &'a str) -> Self {
        Self {
            reasoning_content: Some(text),
            ..Self::default()
        }
    }

    /// A tool call fragment.
    pub fn tool_call(call: ToolCallDelta<'a>) -> Self {
        Self {
            tool_calls: Some([call]),
            ..Self::default()
        }
    }

    /// A whole thinking block.
    pub fn thinking_block(block: ThinkingBlock<'a>) -> Self {
        Self {
            thinking_blocks: Some([block]),
            ..Self::default()
        }
    }
}

/// One tool call fragment of a chunk: the first fragment of a call carries its id, type and
/// name, later ones only more of the arguments.
#[derive(Serialize)]
pub struct ToolCallDelta<'a> {
    /// The call's position among the choice's calls.
    pub index: usize,
    /// The call id, on the first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    /// `function`, on the first fragment.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The function's name and a piece of its arguments.
    pub function: FunctionDelta<'a>,
    /// Provider extras of the call, on the first fragment (Gemini's thought signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<ExtraContent<'a>>,
}

impl<'a> ToolCallDelta<'a> {
    /// A whole call sent as a single fragment, for providers that stream calls in one piece.
    pub fn whole(index: usize, call: ToolCallOut<'a>) -> Self {
        Self {
            index,
            id: Some(call.id),
            kind: Some(call.kind),
            function: FunctionDelta {
                name: Some(call.function.name),
                arguments: Cow::Owned(call.function.arguments),
            },
            extra_content: call.extra_content,
        }
    }
}

/// The function part of a tool call fragment.
#[derive(Serialize)]
pub struct FunctionDelta<'a> {
    /// The function name, on the first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// The next piece of the arguments' JSON text.
    pub arguments: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(body: &str) -> serde_json::Value {
        let error = ChatRequest::parse(body.as_bytes()).unwrap_err();
        serde_json::from_slice::<serde_json::Value>(&error.body()).unwrap()["error"].clone()
    }

    #[test]
    fn poison_in_members_serde_skips_is_refused_naming_the_member() {
        let deep = format!(
            r#"{{"model":"demo","messages":[{{"role":"user","content":"hi"}}],"metadata":{}{}}}"#,
            "[".repeat(128),
            "]".repeat(128)
        );
        let error = parse_err(&deep);
        assert_eq!(error["param"], "metadata", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("deeper than 128"),
            "{error}"
        );
        let error = parse_err(
            r#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"user_data":"\udfff"}"#,
        );
        assert_eq!(error["param"], "user_data", "{error}");
        let mut bytes =
            br#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"x":""#.to_vec();
        bytes.extend_from_slice(b"\xff\"}");
        let error = ChatRequest::parse(&bytes).unwrap_err();
        assert!(error.to_string().contains("not valid UTF-8"), "{error}");
        // 127 brackets in `metadata` plus the body's object: 128 levels, accepted.
        let limit = format!(
            r#"{{"model":"demo","messages":[{{"role":"user","content":"hi"}}],"metadata":{}{}}}"#,
            "[".repeat(127),
            "]".repeat(127)
        );
        assert!(ChatRequest::parse(limit.as_bytes()).is_ok());
    }

    #[test]
    fn parses_a_minimal_request_without_copying_strings() {
        let raw = br#"{"model":"demo","messages":[{"role":"user","content":"hi"}]}"#;
        let request = ChatRequest::parse(raw).unwrap();
        assert_eq!(request.model, "demo");
        assert!(matches!(request.model, Cow::Borrowed(_)));
        assert!(!request.is_stream());
        assert_eq!(request.messages()[0].text(), "hi");
    }

    #[test]
    fn replaces_model_and_keeps_every_other_byte() {
        let raw = br#"{ "messages":[{"role":"user","content":"caf\u00e9 1000.00"}], "model" : "demo", "x":1.0}"#;
        let request = ChatRequest::parse(raw).unwrap();
        let body = request.body_with_model("qwen-\"max\"");
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{ "messages":[{"role":"user","content":"caf\u00e9 1000.00"}], "model" : "qwen-\"max\"", "x":1.0}"#
        );
    }

    /// The upstream body for a client body, as text.
    fn upstream(raw: &str) -> String {
        let request = ChatRequest::parse(raw.as_bytes()).unwrap();
        String::from_utf8(request.body_with_model_and_usage("up").to_vec()).unwrap()
    }

    #[test]
    fn streams_ask_the_upstream_for_usage_even_when_the_client_did_not() {
        assert_eq!(
            upstream(
                r#" {"model":"demo","stream":true,"messages":[{"role":"user","content":"1.0"}]}"#
            ),
            r#" {"stream_options":{"include_usage":true},"model":"up","stream":true,"messages":[{"role":"user","content":"1.0"}]}"#
        );
        assert_eq!(
            upstream(
                r#"{"stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false},"model":"demo","messages":[{"role":"user","content":"x"}]}"#
            ),
            r#"{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true},"model":"up","messages":[{"role":"user","content":"x"}]}"#
        );
        assert_eq!(
            upstream(
                r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":null}"#
            ),
            r#"{"model":"up","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
        assert_eq!(
            upstream(
                r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{ }}"#
            ),
            r#"{"model":"up","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn bodies_that_need_no_usage_edit_keep_every_byte_but_the_model() {
        let asked = r#"{"model":"demo","stream":true,"stream_options": {"include_usage" : true},"messages":[{"role":"user","content":"x"}]}"#;
        assert_eq!(upstream(asked), asked.replace(r#""demo""#, r#""up""#));
        let plain = r#"{"model":"demo","messages":[{"role":"user","content":"x"}]}"#;
        assert_eq!(upstream(plain), plain.replace(r#""demo""#, r#""up""#));
        let not_stream =
            r#"{"model":"demo","stream":false,"messages":[{"role":"user","content":"x"}]}"#;
        assert_eq!(
            upstream(not_stream),
            not_stream.replace(r#""demo""#, r#""up""#)
        );
    }

    #[test]
    fn stream_options_of_the_wrong_type_name_their_param() {
        let error = parse_err(
            r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":"yes"}}"#,
        );
        assert_eq!(error["param"], "stream_options.include_usage");
        let error = parse_err(
            r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"x"}],"stream_options":5}"#,
        );
        assert_eq!(error["param"], "stream_options");
        // `null` is no options at all, also without a stream.
        let request = ChatRequest::parse(
            br#"{"model":"demo","messages":[{"role":"user","content":"x"}],"stream_options":null}"#,
        )
        .unwrap();
        assert!(!request.include_usage());
    }

    #[test]
    fn usage_details_are_read_from_the_openai_wire() {
        let usage: Usage = serde_json::from_str(
            r#"{"prompt_tokens":1234,"completion_tokens":56,"total_tokens":1290,
                "prompt_tokens_details":{"cached_tokens":100,"cache_creation_input_tokens":30},
                "completion_tokens_details":{"reasoning_tokens":20}}"#,
        )
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 1234,
                completion_tokens: 56,
                total_tokens: 1290,
                cached_tokens: 100,
                cache_write_tokens: 30,
                reasoning_tokens: 20,
            }
        );
        assert_eq!(usage.uncached_prompt_tokens(), 1104);
        let bare: Usage = serde_json::from_str(
            r#"{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":null}"#,
        )
        .unwrap();
        assert_eq!((bare.total_tokens, bare.cached_tokens), (7, 0));
    }

    #[test]
    fn malformed_json_is_a_400_without_param() {
        let error = parse_err(r#"{"model":"demo","messages":["#);
        assert_eq!(error["type"], "invalid_request_error");
        assert!(error["param"].is_null());
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("parse the JSON")
        );
    }

    #[test]
    fn missing_fields_name_their_param() {
        assert_eq!(parse_err(r#"{"messages":[]}"#)["param"], "model");
        assert_eq!(parse_err(r#"{"model":"demo"}"#)["param"], "messages");
        assert_eq!(
            parse_err(r#"{"model":"demo","messages":[]}"#)["param"],
            "messages"
        );
        assert_eq!(parse_err(r#"{"model":7,"messages":[]}"#)["param"], "model");
    }

    #[test]
    fn wrong_types_name_the_nested_param() {
        let error = parse_err(r#"{"model":"demo","messages":[{"role":"user","content":5}]}"#);
        assert_eq!(error["param"], "messages[0].content");
        let error = parse_err(r#"{"model":"demo","messages":[{"role":"robot","content":"x"}]}"#);
        assert_eq!(error["param"], "messages[0].role");
        let error = parse_err(
            r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
        );
        assert_eq!(error["param"], "temperature");
        let error = parse_err(r#"{"model":"demo","messages":[{"role":"tool","content":"x"}]}"#);
        assert_eq!(error["param"], "messages[0].tool_call_id");
    }

    /// One rule for every provider: the options adapters translate are read here, and an
    /// unreadable one is a 400 naming the member, before any provider is chosen.
    #[test]
    fn translated_options_are_typed_at_the_door() {
        let with = |extra: &str| {
            format!(r#"{{"model":"demo","messages":[{{"role":"user","content":"x"}}]{extra}}}"#)
        };
        for (extra, param) in [
            (r#","tool_choice":"any""#, "tool_choice"),
            (r#","tool_choice":{"type":"function"}"#, "tool_choice"),
            (
                r#","response_format":{"type":"grammar"}"#,
                "response_format.type",
            ),
            (
                r#","response_format":{"type":"json_schema","json_schema":{"name":"n","schema":[]}}"#,
                "response_format.json_schema.schema",
            ),
            (r#","reasoning_effort":"extreme""#, "reasoning_effort"),
            (r#","logit_bias":{"1":500}"#, "logit_bias"),
        ] {
            let error = parse_err(&with(extra));
            assert_eq!(error["param"], param, "{extra}");
        }
        let image = r#"{"model":"demo","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]}"#;
        assert_eq!(
            parse_err(image)["param"],
            "messages[0].content[0].image_url.url"
        );
        let raw = with(
            r#","tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}},"reasoning_effort":"low""#,
        );
        let chat = ChatRequest::parse(raw.as_bytes()).unwrap();
        assert_eq!(
            chat.body.tool_choice,
            Some(ToolChoice::Function("f".into()))
        );
        assert!(matches!(
            chat.body.response_format,
            Some(ResponseFormat::JsonSchema(JsonSchema { ref name, .. })) if name == "n"
        ));
        assert_eq!(chat.body.reasoning_effort, Some(ReasoningEffort::Low));
    }

    #[test]
    fn assistant_turns_carry_reasoning_back() {
        let raw = br#"{"model":"demo","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"reasoning_content":"hmm","thinking_blocks":[{"type":"thinking","thinking":"hmm","signature":"c2ln"}],"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"},"extra_content":{"google":{"thought_signature":"dHM="}}}]}]}"#;
        let chat = ChatRequest::parse(raw).unwrap();
        let turn = &chat.messages()[1];
        assert_eq!(turn.reasoning_content.as_deref(), Some("hmm"));
        assert!(matches!(
            turn.thinking_blocks.as_deref(),
            Some([ThinkingBlock::Thinking { signature, .. }]) if signature == "c2ln"
        ));
        let call = &turn.tool_calls.as_ref().unwrap()[0];
        assert_eq!(
            call.extra_content
                .as_ref()
                .and_then(ExtraContent::thought_signature),
            Some("dHM=")
        );
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let error = parse_err(
            r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
        );
        assert_eq!(error["param"], "temperature");
        let error = parse_err(
            r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
        );
        assert_eq!(error["param"], "stream_options");
    }

    #[test]
    fn counts_outside_what_any_provider_honours_are_refused() {
        let with = |field: &str| {
            format!(r#"{{"model":"demo","messages":[{{"role":"user","content":"x"}}],{field}}}"#)
        };
        for (field, param) in [
            (r#""n":0"#, "n"),
            (r#""n":129"#, "n"),
            (r#""n":1000000000"#, "n"),
            (r#""n":-1"#, "n"),
            (r#""max_tokens":0"#, "max_tokens"),
            (r#""max_tokens":1000000000"#, "max_tokens"),
            (r#""max_tokens":-5"#, "max_tokens"),
            (
                r#""max_completion_tokens":4000000000"#,
                "max_completion_tokens",
            ),
            (r#""top_logprobs":21"#, "top_logprobs"),
            (r#""logprobs":"yes""#, "logprobs"),
            (r#""top_p":1.5"#, "top_p"),
            (r#""presence_penalty":-2.5"#, "presence_penalty"),
            (r#""frequency_penalty":9"#, "frequency_penalty"),
        ] {
            let error = parse_err(&with(field));
            assert_eq!(error["param"], param, "{field}: {error}");
        }
        let error = parse_err(&with(r#""n":1000000000"#));
        assert_eq!(
            error["message"],
            "'n' must be from 1 to 128, got 1000000000."
        );
        for field in [
            r#""n":128"#,
            r#""max_tokens":1"#,
            r#""max_completion_tokens":128000"#,
            r#""top_logprobs":0"#,
            r#""top_logprobs":20,"logprobs":true"#,
        ] {
            assert!(
                ChatRequest::parse(with(field).as_bytes()).is_ok(),
                "{field}"
            );
        }
    }

    #[test]
    fn non_object_bodies_are_rejected() {
        assert!(parse_err("[1,2]")["message"].as_str().is_some());
        assert!(parse_err("\"x\"")["message"].as_str().is_some());
        assert!(parse_err("")["message"].as_str().is_some());
    }

    #[test]
    fn text_parts_are_joined() {
        let raw = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}"#;
        let request = ChatRequest::parse(raw).unwrap();
        assert_eq!(request.messages()[0].text(), "a\nb");
    }
}
