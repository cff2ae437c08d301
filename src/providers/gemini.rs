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
//!   field, preferred when the client echoes it) and inside the id (see [`CallId`]) for clients
//!   that echo only id, name and arguments; calls the router cannot vouch for get the
//!   documented `skip_thought_signature_validator` sentinel. A text part's signature rides on
//!   the message's `extra_content` and goes back on the turn's last text part.
//! - `reasoning_effort` becomes `thinkingLevel` on Gemini 3 and `thinkingBudget` on 2.5 and
//!   older (see [`thinking_config`]); `include_reasoning` asks for thought summaries, which
//!   come back as `reasoning_content`.
//! - `parallel_tool_calls: false` has no Gemini switch; the adapter honours it on the way
//!   back by keeping only the first function call of each choice.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::capabilities::unsupported_part;
use super::chunks::ChunkWriter;
use super::openai::{self, ErrorFields, cut_short};
use super::{
    Adapter, Fnv1a, Honours, StreamTranslator, Translated, UpstreamRequest, add_api_key,
    compact_json, event_text, json_headers,
};
use crate::config::Target;
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::openai::{
    AssistantMessage, ChatRequest, Completion, CompletionChoice, CompletionTokensDetails, Content,
    Delta, ExtraContent, FilePart, FunctionOut, MediaSource, Message, Part as OpenAiPart,
    PromptTokensDetails, ReasoningEffort, ResponseFormat, Role, Stop, ToolCallDelta, ToolCallOut,
    ToolChoice, Usage, UsageOut,
};
use crate::sse::SseEvent;

mod schema;

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

pub(super) mod embeddings;

// === Endpoint and headers ===

/// `/v1beta/models/{model}:generateContent`, or the SSE stream variant.
///
/// A `base_url` that already ends in an API version (`.../v1beta`) is used as is, so both the
/// documented host-only form and a copied versioned URL work.
fn path(target: &Target, stream: bool) -> String {
    let base = target.provider.base_url.trim_end_matches('/');
    let versioned = ["/v1", "/v1beta", "/v1alpha"]
        .iter()
        .any(|v| base.ends_with(v));
    let version = if versioned { "" } else { "/v1beta" };
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    format!("{version}/{}:{method}", model_resource(&target.model))
}

/// The model's resource name, percent-encoded: `models/NAME` or `tunedModels/NAME`.
fn model_resource(model: &str) -> String {
    let (collection, name) = match model.strip_prefix("tunedModels/") {
        Some(name) => ("tunedModels", name),
        None => ("models", model.strip_prefix("models/").unwrap_or(model)),
    };
    let mut out = String::with_capacity(collection.len() + 1 + name.len());
    out.push_str(collection);
    out.push('/');
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// JSON headers plus `x-goog-api-key` (marked sensitive) when the provider has a key.
fn headers(target: &Target, stream: bool) -> Result<HeaderMap, ApiError> {
    let mut headers = json_headers(stream);
    add_api_key(
        &mut headers,
        target,
        HeaderName::from_static("x-goog-api-key"),
        "",
    )?;
    Ok(headers)
}

// === Request: wire types ===

/// `GenerateContentRequest`, the body of both endpoints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContent<'c> {
    /// System and developer messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Instruction<'c>>,
    /// The conversation, in `user`/`model` turns.
    contents: Vec<Turn<'c>>,
    /// Function declarations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDecl<'c>>,
    /// How the model may call functions.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'c>>,
    /// Sampling and output settings.
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'c>,
}

/// `systemInstruction`: a content without a role.
#[derive(Debug, Serialize)]
struct Instruction<'c> {
    /// Text parts only.
    parts: Vec<Part<'c>>,
}

/// One `contents[]` entry.
#[derive(Debug, Serialize)]
struct Turn<'c> {
    /// `user` or `model`.
    role: &'static str,
    /// Never empty: Gemini refuses empty turns.
    parts: Vec<Part<'c>>,
}

/// The role of client text, images and function results.
const USER: &str = "user";
/// The role of assistant text and function calls.
const MODEL: &str = "model";

/// One part: its data plus the optional signature Gemini 3 wants echoed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Part<'c> {
    /// What the part holds; serialised as its one camelCase key (`text`, `inlineData`, ...).
    #[serde(flatten)]
    data: PartData<'c>,
    /// The opaque signature of the model's thinking that produced this part.
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<Cow<'c, str>>,
}

/// The data of a request part.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum PartData<'c> {
    /// Plain text.
    Text(Cow<'c, str>),
    /// Base64 bytes with their MIME type (images from `data:` URLs).
    InlineData(Blob<'c>),
    /// A file uploaded through Gemini's Files API.
    FileData(FileData<'c>),
    /// A call the model made earlier in the conversation.
    FunctionCall(FunctionCallOut<'c>),
    /// The result of such a call.
    FunctionResponse(FunctionResponseOut<'c>),
}

/// `inlineData`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'c> {
    /// E.g. `image/png`.
    mime_type: &'c str,
    /// Standard base64, as the client sent it.
    data: &'c str,
}

/// `fileData`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'c> {
    /// A `https://generativelanguage.googleapis.com/.../files/...` URI.
    file_uri: &'c str,
}

/// `functionCall` in a `model` turn.
#[derive(Debug, Serialize)]
struct FunctionCallOut<'c> {
    /// The function name.
    name: &'c str,
    /// The arguments: always a JSON object.
    args: Box<RawValue>,
    /// Gemini's own call id, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'c str>,
}

/// `functionResponse` in a `user` turn.
#[derive(Debug, Serialize)]
struct FunctionResponseOut<'c> {
    /// The function name, recovered from the assistant call the result answers.
    name: &'c str,
    /// The result: always a JSON object.
    response: ResponseValue<'c>,
    /// Gemini's call id, when the call had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'c str>,
    /// Gemini 3: images and PDFs the tool returned, inside the response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<FunctionResponsePart<'c>>,
}

/// `functionResponse.parts[]`: media a tool returned (Gemini 3).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionResponsePart<'c> {
    /// The bytes and their type.
    inline_data: Blob<'c>,
}

/// A function result as Gemini wants it: an object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ResponseValue<'c> {
    /// The tool's output was already a JSON object.
    Object(Box<RawValue>),
    /// Anything else, wrapped as `{"result": "<text>"}`.
    Wrapped {
        /// The tool's output as text.
        result: Cow<'c, str>,
    },
}

/// One `tools[]` entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolDecl<'c> {
    /// Every function tool of the request.
    function_declarations: Vec<FunctionDecl<'c>>,
}

/// One function declaration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDecl<'c> {
    /// The function name.
    name: &'c str,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'c str>,
    /// The client's JSON Schema in the keywords Gemini accepts (see [`schema`]); the client's
    /// own bytes when it already fits.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<Cow<'c, RawValue>>,
}

/// `toolConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'c> {
    /// The only setting the router uses.
    function_calling_config: FunctionCallingConfig<'c>,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'c> {
    /// `AUTO`, `NONE` or `ANY`.
    mode: &'static str,
    /// With `ANY`: the one function a named `tool_choice` forces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_function_names: Vec<&'c str>,
}

/// `generationConfig`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'c> {
    /// 0 to 2, as OpenAI's.
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    /// From `max_completion_tokens`, else `max_tokens`, else the model's configured default.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    /// At most five.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'c str>,
    /// From `n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u32>,
    /// A 32-bit seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    /// -2 to 2, as OpenAI's.
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    /// -2 to 2, as OpenAI's.
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    /// `application/json` for both JSON response formats.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    /// The `json_schema` format's schema in the keywords Gemini accepts (see [`schema`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<Cow<'c, RawValue>>,
    /// From `reasoning_effort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    /// Whether nothing is set (the object is then left out).
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.candidate_count.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
            && self.thinking_config.is_none()
    }
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    /// Gemini 2.5: thinking tokens allowed (0 turns thinking off where the model allows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<u32>,
    /// Gemini 3: `minimal`, `low`, `medium` or `high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
    /// Whether thought summaries come back (as `reasoning_content`).
    #[serde(skip_serializing_if = "Option::is_none")]
    include_thoughts: Option<bool>,
}

// === Request: translation ===

/// `provider 'NAME' (Gemini)`, for the messages of 400s.
fn provider(target: &Target) -> String {
    format!("provider '{}' (Gemini)", target.provider.name)
}

/// A 400 naming `param`.
fn bad(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message, Some(param.into()))
}

/// The whole `GenerateContentRequest` for `chat`: a pure function of the request and target.
fn build_request<'c>(
    chat: &'c ChatRequest<'_>,
    target: &Target,
) -> Result<GenerateContent<'c>, ApiError> {
    let conversation = conversation(chat.messages(), target)?;
    let tools = tools(chat)?;
    let tool_config = tool_config(chat, &tools)?;
    Ok(GenerateContent {
        system_instruction: (!conversation.system.is_empty()).then_some(Instruction {
            parts: conversation.system,
        }),
        contents: conversation.turns,
        tools,
        tool_config,
        generation_config: generation_config(chat, target)?,
    })
}

/// The conversation split into Gemini's system instruction and turns.
struct Conversation<'c> {
    /// Parts of every system and developer message, in order.
    system: Vec<Part<'c>>,
    /// The `user`/`model` turns, consecutive same-role messages merged.
    turns: Vec<Turn<'c>>,
}

/// Translates the messages. Tool results get their function name from the assistant call with
/// the same id earlier in the conversation, since Gemini requires the name.
fn conversation<'c>(
    messages: &'c [Message<'_>],
    target: &Target,
) -> Result<Conversation<'c>, ApiError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'c>> = Vec::new();
    let mut names: HashMap<&'c str, &'c str> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let (role, parts) = match message.role {
            Role::System | Role::Developer => {
                system.extend(text_parts(message, i, target)?);
                continue;
            }
            Role::User => (USER, user_parts(message, i, target)?),
            Role::Assistant => (MODEL, model_parts(message, i, target, &mut names)?),
            Role::Tool => (USER, tool_result(message, i, &names, target)?),
        };
        push_turn(&mut turns, role, parts);
    }
    if turns.is_empty() {
        return Err(bad(
            "messages",
            format!(
                "{} needs at least one non-empty user or assistant message besides the system \
                 messages.",
                provider(target)
            ),
        ));
    }
    Ok(Conversation { system, turns })
}

/// Appends parts as a turn, merged into the previous turn when it has the same role (Gemini
/// wants user and model turns to alternate). Empty part lists add nothing.
fn push_turn<'c>(turns: &mut Vec<Turn<'c>>, role: &'static str, parts: Vec<Part<'c>>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => turns.push(Turn { role, parts }),
    }
}

/// A part without a signature.
fn plain(data: PartData<'_>) -> Part<'_> {
    Part {
        data,
        thought_signature: None,
    }
}

/// Text-only content (system, developer and assistant messages). Empty text is left out:
/// Gemini refuses empty text parts.
fn text_parts<'c>(
    message: &'c Message<'_>,
    i: usize,
    target: &Target,
) -> Result<Vec<Part<'c>>, ApiError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(text_part(text).into_iter().collect()),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part {
                    OpenAiPart::Text(text) => out.extend(text_part(text)),
                    // An assistant's earlier refusal carries no text the model needs again.
                    OpenAiPart::Refusal(_) if message.role == Role::Assistant => {}
                    _ => {
                        let place = format!("{} messages", role_name(message.role));
                        let param = format!("messages[{i}].content[{j}]");
                        return Err(unsupported_part(&param, part, target, &place));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// A role as the client spelled it.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// A text part, unless the text is empty.
fn text_part(text: &str) -> Option<Part<'_>> {
    (!text.is_empty()).then(|| plain(PartData::Text(Cow::Borrowed(text))))
}

/// A user message: text and images.
fn user_parts<'c>(
    message: &'c Message<'_>,
    i: usize,
    target: &Target,
) -> Result<Vec<Part<'c>>, ApiError> {
    let Some(Content::Parts(parts)) = &message.content else {
        return text_parts(message, i, target);
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            OpenAiPart::Text(text) => out.extend(text_part(text)),
            OpenAiPart::Image { source, .. } => {
                let param = format!("messages[{i}].content[{j}].image_url.url");
                out.push(image_part(source, param, target)?);
            }
            OpenAiPart::File(file) => {
                let param = format!("messages[{i}].content[{j}].file");
                out.push(plain(PartData::InlineData(file_blob(
                    file, &param, target,
                )?)));
            }
            _ => {
                let param = format!("messages[{i}].content[{j}]");
                return Err(unsupported_part(&param, part, target, "user messages"));
            }
        }
    }
    Ok(out)
}

/// A `file` part's bytes: only inline `file_data` reaches Gemini; a `file_id` belongs to
/// OpenAI's Files API, which Gemini cannot read.
fn file_blob<'c>(
    file: &'c FilePart<'_>,
    param: &str,
    target: &Target,
) -> Result<Blob<'c>, ApiError> {
    match &file.data {
        Some(MediaSource::Inline { media_type, base64 }) => Ok(Blob {
            mime_type: media_type,
            data: base64,
        }),
        Some(MediaSource::Url(_)) | None => Err(bad(
            format!("{param}.file_data"),
            format!(
                "'{param}': {} reads files sent inline as 'file_data' \
                 ('data:<mime>;base64,<data>'); a 'file_id' names a file in OpenAI's Files API, \
                 which Gemini cannot read.",
                provider(target)
            ),
        )),
    }
}

/// An `image_url` part: `data:` URLs become `inlineData`, Gemini Files API URIs `fileData`;
/// other URLs are refused because the router downloads nothing.
fn image_part<'c>(
    source: &'c MediaSource<'_>,
    param: String,
    target: &Target,
) -> Result<Part<'c>, ApiError> {
    match source {
        MediaSource::Inline { media_type, base64 } => Ok(plain(PartData::InlineData(Blob {
            mime_type: media_type,
            data: base64,
        }))),
        MediaSource::Url(url) if is_gemini_file(url) => {
            Ok(plain(PartData::FileData(FileData { file_uri: url })))
        }
        MediaSource::Url(_) => Err(bad(
            param.clone(),
            format!(
                "'{param}': {} cannot fetch image URLs and switchboard does not download them. \
                 Send the image inline as 'data:<mime>;base64,<data>', or as a Gemini Files API \
                 URI (https://generativelanguage.googleapis.com/.../files/...).",
                provider(target)
            ),
        )),
    }
}

/// Whether `url` is a file uploaded through Gemini's Files API.
fn is_gemini_file(url: &str) -> bool {
    url.strip_prefix("https://generativelanguage.googleapis.com/")
        .is_some_and(|rest| rest.contains("files/"))
}

/// An assistant message: its text, then one `functionCall` part per tool call.
fn model_parts<'c>(
    message: &'c Message<'_>,
    i: usize,
    target: &Target,
    names: &mut HashMap<&'c str, &'c str>,
) -> Result<Vec<Part<'c>>, ApiError> {
    let mut parts = text_parts(message, i, target)?;
    // A text signature goes back on the part it came with: Gemini signs the last one.
    if let Some(signature) = message
        .extra_content
        .as_ref()
        .and_then(ExtraContent::thought_signature)
        && let Some(last) = parts.last_mut()
    {
        last.thought_signature = Some(Cow::Borrowed(signature));
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        names.insert(&call.id, &call.function.name);
        let param = || format!("messages[{i}].tool_calls[{j}].function.arguments");
        let args = arguments(&call.function.arguments).ok_or_else(|| {
            bad(
                param(),
                format!(
                    "'{}' must be a JSON object (as a string); {} passes function arguments \
                     as an object.",
                    param(),
                    provider(target)
                ),
            )
        })?;
        let decoded = CallId::decode(&call.id);
        // The signature the client echoed in `extra_content` wins; else the one inside the id.
        // The first call of a turn must carry a signature on Gemini 3; a call the router did
        // not get from Gemini cannot have one, so it gets the documented sentinel.
        let signature = call
            .extra_content
            .as_ref()
            .and_then(ExtraContent::thought_signature)
            .map(Cow::Borrowed)
            .or_else(|| decoded.as_ref().and_then(CallId::signature))
            .or_else(|| (j == 0 || decoded.is_none()).then_some(Cow::Borrowed(SKIP_SIGNATURE)));
        parts.push(Part {
            data: PartData::FunctionCall(FunctionCallOut {
                name: &call.function.name,
                args,
                id: decoded.and_then(|d| d.gemini_id),
            }),
            thought_signature: signature,
        });
    }
    Ok(parts)
}

/// The placeholder signature Gemini accepts for function calls it did not produce
/// (reference section 3.2, "thought signatures").
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// A call's arguments as a JSON object; an empty string counts as `{}`.
fn arguments(text: &str) -> Option<Box<RawValue>> {
    let trimmed = text.trim();
    let json = if trimmed.is_empty() { "{}" } else { trimmed };
    if !json.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Box<RawValue>>(json).ok()
}

/// A tool message as a `functionResponse` part. Images and PDFs the tool returned go inside
/// it on Gemini 3 (`functionResponse.parts`, multimodal function responses); older models
/// read them as `inlineData` parts right after it, in the same user turn.
fn tool_result<'c>(
    message: &'c Message<'_>,
    i: usize,
    names: &HashMap<&'c str, &'c str>,
    target: &Target,
) -> Result<Vec<Part<'c>>, ApiError> {
    let param = format!("messages[{i}].tool_call_id");
    let id: &'c str = message.tool_call_id.as_deref().ok_or_else(|| {
        bad(
            param.clone(),
            format!("Missing required parameter: '{param}'."),
        )
    })?;
    let Some(name) = names.get(id).copied() else {
        return Err(bad(
            param.clone(),
            format!(
                "'{param}' ({id:?}) does not match the id of any earlier assistant tool call; \
                 Gemini needs the function's name, which is taken from that call."
            ),
        ));
    };
    let media = tool_media(message, i, target)?;
    let text = message.text();
    let response = match object(&text) {
        Some(raw) => ResponseValue::Object(raw),
        None => ResponseValue::Wrapped { result: text },
    };
    let inside = Family::of(&target.model).is_gemini_3();
    let (parts, after) = if inside {
        let parts = media
            .into_iter()
            .map(|inline_data| FunctionResponsePart { inline_data })
            .collect();
        (parts, Vec::new())
    } else {
        (Vec::new(), media)
    };
    let mut out = Vec::with_capacity(1 + after.len());
    out.push(plain(PartData::FunctionResponse(FunctionResponseOut {
        name,
        response,
        id: CallId::decode(id).and_then(|d| d.gemini_id),
        parts,
    })));
    out.extend(
        after
            .into_iter()
            .map(|blob| plain(PartData::InlineData(blob))),
    );
    Ok(out)
}

/// The images (`data:` URLs) and inline files of a tool message; other non-text parts are
/// refused.
fn tool_media<'c>(
    message: &'c Message<'_>,
    i: usize,
    target: &Target,
) -> Result<Vec<Blob<'c>>, ApiError> {
    let Some(Content::Parts(parts)) = &message.content else {
        return Ok(Vec::new());
    };
    let mut media = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        match part {
            OpenAiPart::Text(_) => {}
            OpenAiPart::Image {
                source: MediaSource::Inline { media_type, base64 },
                ..
            } => media.push(Blob {
                mime_type: media_type,
                data: base64,
            }),
            OpenAiPart::Image { .. } => {
                let param = format!("messages[{i}].content[{j}].image_url.url");
                return Err(bad(
                    param.clone(),
                    format!(
                        "'{param}': images in tool results reach {} only inline, as \
                         'data:<mime>;base64,<data>'; switchboard downloads nothing.",
                        provider(target)
                    ),
                ));
            }
            OpenAiPart::File(file) => {
                let param = format!("messages[{i}].content[{j}].file");
                media.push(file_blob(file, &param, target)?);
            }
            _ => {
                let param = format!("messages[{i}].content[{j}]");
                return Err(unsupported_part(&param, part, target, "tool messages"));
            }
        }
    }
    Ok(media)
}

/// `text` as a JSON object, if it is one.
fn object(text: &str) -> Option<Box<RawValue>> {
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

/// The function declarations. Schemas go out as `parametersJsonSchema`, cut to what Gemini
/// accepts.
fn tools<'c>(chat: &'c ChatRequest<'_>) -> Result<Vec<ToolDecl<'c>>, ApiError> {
    let Some(tools) = chat.body.tools.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut declarations = Vec::with_capacity(tools.len());
    // Tools of other types were refused by the Honours check.
    for (i, tool) in tools.iter().enumerate() {
        let parameters = match tool.function.parameters {
            Some(parameters) => {
                let param = format!("tools[{i}].function.parameters");
                Some(schema::for_gemini(
                    parameters,
                    &param,
                    schema::Root::Object,
                )?)
            }
            None => None,
        };
        declarations.push(FunctionDecl {
            name: &tool.function.name,
            description: tool.function.description.as_deref(),
            parameters_json_schema: parameters,
        });
    }
    Ok(vec![ToolDecl {
        function_declarations: declarations,
    }])
}

/// `toolConfig` from `tool_choice` (mapping table 7.1).
fn tool_config<'c>(
    chat: &'c ChatRequest<'_>,
    tools: &[ToolDecl<'c>],
) -> Result<Option<ToolConfig<'c>>, ApiError> {
    let Some(choice) = &chat.body.tool_choice else {
        return Ok(None);
    };
    let declared: Vec<&'c str> = tools
        .iter()
        .flat_map(|t| t.function_declarations.iter().map(|d| d.name))
        .collect();
    let (mode, allowed) = match choice {
        ToolChoice::Auto | ToolChoice::None if declared.is_empty() => return Ok(None),
        ToolChoice::Auto => ("AUTO", Vec::new()),
        ToolChoice::None => ("NONE", Vec::new()),
        ToolChoice::Required | ToolChoice::Function(_) | ToolChoice::Other(_)
            if declared.is_empty() =>
        {
            return Err(bad(
                "tool_choice",
                "'tool_choice' asks for a tool call but the request declares no 'tools'.",
            ));
        }
        ToolChoice::Required => ("ANY", Vec::new()),
        // Refused by the Honours check before translation; kept total all the same.
        ToolChoice::Other(kind) => {
            return Err(bad(
                "tool_choice.type",
                format!("'tool_choice' of type {kind:?} is not translated for Gemini."),
            ));
        }
        ToolChoice::Function(name) => {
            let Some(found) = declared.iter().copied().find(|d| d == name) else {
                return Err(bad(
                    "tool_choice",
                    format!("'tool_choice' names function {name:?}, which is not in 'tools'."),
                ));
            };
            ("ANY", vec![found])
        }
    };
    Ok(Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: allowed,
        },
    }))
}

/// Gemini's stop-sequence limit.
const MAX_STOP_SEQUENCES: usize = 5;

/// `generationConfig` from the sampling, output and format fields.
fn generation_config<'c>(
    chat: &'c ChatRequest<'_>,
    target: &Target,
) -> Result<GenerationConfig<'c>, ApiError> {
    let body = &chat.body;
    let (response_mime_type, response_json_schema) = response_format(chat)?;
    let seed = body
        .seed
        .map(|seed| {
            i32::try_from(seed).map_err(|_| {
                bad(
                    "seed",
                    format!(
                        "'seed' must fit in 32 bits for {} (got {seed}).",
                        provider(target)
                    ),
                )
            })
        })
        .transpose()?;
    Ok(GenerationConfig {
        temperature: body.temperature,
        top_p: body.top_p,
        max_output_tokens: body
            .max_completion_tokens
            .or(body.max_tokens)
            .or(target.max_tokens),
        stop_sequences: stop_sequences(chat, target)?,
        candidate_count: body.n,
        seed,
        presence_penalty: body.presence_penalty,
        frequency_penalty: body.frequency_penalty,
        response_mime_type,
        response_json_schema,
        thinking_config: thinking_config(chat, target)?,
    })
}

/// `stop` as a list of non-empty sequences, at most [`MAX_STOP_SEQUENCES`] long.
fn stop_sequences<'c>(
    chat: &'c ChatRequest<'_>,
    target: &Target,
) -> Result<Vec<&'c str>, ApiError> {
    let sequences: Vec<&'c str> = match &chat.body.stop {
        None => Vec::new(),
        Some(Stop::One(one)) => vec![&**one],
        Some(Stop::Many(many)) => many.iter().map(|s| &**s).collect(),
    };
    // An empty sequence stops nothing; Gemini would refuse it instead of ignoring it.
    let sequences: Vec<&'c str> = sequences.into_iter().filter(|s| !s.is_empty()).collect();
    if sequences.len() > MAX_STOP_SEQUENCES {
        return Err(bad(
            "stop",
            format!(
                "{} accepts at most {MAX_STOP_SEQUENCES} stop sequences, got {}.",
                provider(target),
                sequences.len()
            ),
        ));
    }
    Ok(sequences)
}

/// `responseMimeType` and `responseJsonSchema` from `response_format`.
fn response_format<'c>(
    chat: &ChatRequest<'c>,
) -> Result<(Option<&'static str>, Option<Cow<'c, RawValue>>), ApiError> {
    Ok(match &chat.body.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema(format)) => {
            let schema = schema::for_gemini(
                format.schema,
                "response_format.json_schema.schema",
                schema::Root::Any,
            )?;
            (Some("application/json"), Some(schema))
        }
    })
}

/// A Gemini model family: how it takes `reasoning_effort`, and where tool media go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// Gemini 3 Pro: `thinkingLevel` `low` or `high` (3.1 Pro adds `medium`); never off.
    Pro3 {
        /// Whether `medium` is a level of its own (3.1 Pro and later).
        medium: bool,
    },
    /// Other Gemini 3 models: `thinkingLevel` `minimal` to `high`; never off.
    Flash3,
    /// Gemini 2.5 Pro: `thinkingBudget` from 128; never off.
    Pro25,
    /// Gemini 2.5 Flash and older or unknown models: `thinkingBudget`, 0 turns thinking off.
    Budget,
}

impl Family {
    /// The family of `model` (`models/` prefix allowed).
    fn of(model: &str) -> Self {
        let name = model.strip_prefix("models/").unwrap_or(model);
        if let Some(version) = name.strip_prefix("gemini-3") {
            return if name.contains("-pro") {
                Self::Pro3 {
                    medium: !version.starts_with("-pro"),
                }
            } else {
                Self::Flash3
            };
        }
        if name.starts_with("gemini-2.5-pro") {
            Self::Pro25
        } else {
            Self::Budget
        }
    }

    /// Whether the family can think not at all.
    fn can_turn_off(self) -> bool {
        self == Self::Budget
    }

    /// Whether the model is a Gemini 3 (which also reads media inside function responses).
    fn is_gemini_3(self) -> bool {
        matches!(self, Self::Pro3 { .. } | Self::Flash3)
    }
}

/// `thinkingConfig` from `reasoning_effort` and `include_reasoning`, per model family:
///
/// | effort | Gemini 3 Flash | Gemini 3 Pro | Gemini 2.5 and others |
/// | --- | --- | --- | --- |
/// | none | 400 | 400 | budget 0 (2.5 Pro: 400) |
/// | minimal | minimal | low | budget 512 |
/// | low | low | low | budget 1024 |
/// | medium | medium | medium (3.0 Pro: high) | budget 8192 |
/// | high, xhigh, max | high | high | budget 24576 |
///
/// Budgets follow Google's own OpenAI-compatible endpoint. Models that cannot stop thinking
/// refuse `none` rather than think anyway: the answer would not be what was asked for.
fn thinking_config(
    chat: &ChatRequest<'_>,
    target: &Target,
) -> Result<Option<ThinkingConfig>, ApiError> {
    let include_thoughts = chat.body.include_reasoning.filter(|&on| on);
    let Some(effort) = chat.body.reasoning_effort else {
        return Ok(include_thoughts.map(|on| ThinkingConfig {
            include_thoughts: Some(on),
            ..ThinkingConfig::default()
        }));
    };
    let family = Family::of(&target.model);
    if effort == ReasoningEffort::None && !family.can_turn_off() {
        return Err(bad(
            "reasoning_effort",
            format!(
                "'reasoning_effort' \"none\" asks for no thinking, but {} model '{}' cannot \
                 turn thinking off; ask for \"minimal\" or \"low\" instead.",
                provider(target),
                target.model
            ),
        ));
    }
    let mut config = match family {
        Family::Pro3 { medium } => ThinkingConfig {
            thinking_level: Some(match effort {
                ReasoningEffort::None | ReasoningEffort::Minimal | ReasoningEffort::Low => "low",
                ReasoningEffort::Medium if medium => "medium",
                _ => "high",
            }),
            ..ThinkingConfig::default()
        },
        Family::Flash3 => ThinkingConfig {
            thinking_level: Some(match effort {
                ReasoningEffort::None | ReasoningEffort::Minimal => "minimal",
                ReasoningEffort::Low => "low",
                ReasoningEffort::Medium => "medium",
                ReasoningEffort::High | ReasoningEffort::Xhigh | ReasoningEffort::Max => "high",
            }),
            ..ThinkingConfig::default()
        },
        Family::Pro25 | Family::Budget => ThinkingConfig {
            thinking_budget: Some(match effort {
                ReasoningEffort::None => 0,
                ReasoningEffort::Minimal => 512,
                ReasoningEffort::Low => 1024,
                ReasoningEffort::Medium => 8192,
                ReasoningEffort::High | ReasoningEffort::Xhigh | ReasoningEffort::Max => 24576,
            }),
            ..ThinkingConfig::default()
        },
    };
    config.include_thoughts = include_thoughts;
    Ok(Some(config))
}

// === Tool call ids that carry thought signatures ===

/// A tool call id handed to the client, decoded.
///
/// Gemini 3 rejects a conversation whose function calls lack the `thoughtSignature` it sent,
/// but OpenAI clients echo back only a call's id, name and arguments. So the id carries it:
///
/// `call_g{t}{len}_{core}[_{signature}]`
///
/// - `t` is `i` when `core` is Gemini's own `functionCall.id` (echoed back to it), `r` when
///   the router made `core` up because Gemini gave none (never sent back);
/// - `len` is the byte length of `core`, so the core may hold any character;
/// - `signature` is the base64 signature in the URL-safe alphabet without padding, so the id
///   stays within `[A-Za-z0-9_-]` (Anthropic's id pattern) when the core does.
///
/// Without a signature a made-up id is 26 characters. A signature can be a few kilobytes and
/// the id grows with it: that is the price of a router that keeps no conversation state.
#[derive(Debug, PartialEq, Eq)]
struct CallId<'a> {
    /// Gemini's own id of the call, when it gave one.
    gemini_id: Option<&'a str>,
    /// The encoded signature, when the call had one.
    signature: Option<&'a str>,
}

/// The start of every id this adapter hands out.
const CALL_ID_PREFIX: &str = "call_g";

impl<'a> CallId<'a> {
    /// Builds a client-facing id.
    fn encode(gemini_id: Option<&str>, generated: &str, signature: Option<&str>) -> String {
        let (tag, core) = match gemini_id.filter(|id| !id.is_empty()) {
            Some(id) => ('i', id),
            None => ('r', generated),
        };
        let mut id = format!("{CALL_ID_PREFIX}{tag}{}_{core}", core.len());
        if let Some(encoded) = signature.and_then(encode_signature) {
            id.push('_');
            id.push_str(&encoded);
        }
        id
    }

    /// Reads an id this adapter made; `None` for any other id.
    fn decode(id: &'a str) -> Option<Self> {
        let rest = id.strip_prefix(CALL_ID_PREFIX)?;
        let from_gemini = match rest.as_bytes().first()? {
            b'i' => true,
            b'r' => false,
            _ => return None,
        };
        let (digits, rest) = rest.get(1..)?.split_once('_')?;
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: usize = digits.parse().ok()?;
        let core = rest.get(..len).filter(|c| !c.is_empty())?;
        let signature = match rest.get(len..)? {
            "" => None,
            tail => Some(tail.strip_prefix('_').filter(|s| is_url_safe_base64(s))?),
        };
        Some(Self {
            gemini_id: from_gemini.then_some(core),
            signature,
        })
    }

    /// The signature in the standard base64 Gemini sent.
    fn signature(&self) -> Option<Cow<'static, str>> {
        self.signature.map(|s| Cow::Owned(decode_signature(s)))
    }
}

/// Whether `s` is non-empty URL-safe base64 without padding.
fn is_url_safe_base64(s: &str) -> bool {
    !s.is_empty()
        && s.len() % 4 != 1
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A base64 signature in the URL-safe alphabet without padding; `None` when it is not base64
/// (it then cannot travel in an id and the call will get the sentinel instead).
fn encode_signature(signature: &str) -> Option<String> {
    let body = signature.trim_end_matches('=');
    let valid = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    if body.is_empty() || !valid || body.len() % 4 == 1 {
        return None;
    }
    Some(
        body.chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect(),
    )
}

/// The reverse of [`encode_signature`]: standard alphabet, padded. Gemini reads the field as
/// bytes, so this is the same signature even if it was sent URL-safe or unpadded.
fn decode_signature(encoded: &str) -> String {
    let mut signature: String = encoded
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    signature
}

/// A stable made-up core for a call Gemini gave no id: a hash of the response id, the choice
/// and the call's position, so the same response always yields the same ids.
fn generated_core(response_id: &str, choice: u32, call: usize) -> String {
    let mut hash = Fnv1a::default();
    hash.write(response_id.as_bytes());
    hash.write(&[0xff]);
    hash.write(&choice.to_le_bytes());
    hash.write(&(call as u64).to_le_bytes());
    format!("{:016x}", hash.finish())
}

// === Response: wire types ===

/// `GenerateContentResponse`: a whole answer, or one stream chunk.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    /// One per requested choice.
    #[serde(borrow, default)]
    candidates: Option<Vec<Candidate<'a>>>,
    /// Why the prompt was blocked, if it was.
    #[serde(borrow, default)]
    prompt_feedback: Option<PromptFeedback<'a>>,
    /// Token counts (running totals in a stream).
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    /// The model that answered.
    #[serde(borrow, default)]
    model_version: Option<Cow<'a, str>>,
    /// The response's id, the same on every chunk of a stream.
    #[serde(borrow, default)]
    response_id: Option<Cow<'a, str>>,
    /// An error reported inside a 200 stream.
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// One candidate answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    /// Its parts (new parts only, in a stream).
    #[serde(borrow, default)]
    content: Option<CandidateContent<'a>>,
    /// Set on the last chunk of the candidate.
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    /// Its position among the candidates.
    #[serde(default)]
    index: Option<u32>,
}

/// A candidate's content.
#[derive(Debug, Deserialize)]
struct CandidateContent<'a> {
    /// Text, thoughts and function calls.
    #[serde(borrow, default)]
    parts: Option<Vec<ResponsePart<'a>>>,
}

/// One part of an answer. Other kinds (inline images, executable code) are not read: the
/// chat completion wire has no place for them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePart<'a> {
    /// Text, or a thought summary when `thought` is true.
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    /// Marks thought-summary text.
    #[serde(default)]
    thought: Option<bool>,
    /// The signature to echo with this part.
    #[serde(borrow, default)]
    thought_signature: Option<Cow<'a, str>>,
    /// A function call, always whole.
    #[serde(borrow, default)]
    function_call: Option<FunctionCallIn<'a>>,
}

/// `functionCall` in an answer.
#[derive(Debug, Deserialize)]
struct FunctionCallIn<'a> {
    /// The function name.
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    /// The arguments object.
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
    /// Gemini's id of the call, when it gives one.
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// `promptFeedback`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback<'a> {
    /// Set when the prompt itself was blocked.
    #[serde(borrow, default)]
    block_reason: Option<Cow<'a, str>>,
}

/// `usageMetadata`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    /// The prompt, cached part included.
    #[serde(default)]
    prompt_token_count: u64,
    /// The visible output.
    #[serde(default)]
    candidates_token_count: u64,
    /// Thinking, billed as output.
    #[serde(default)]
    thoughts_token_count: u64,
    /// The part of the prompt read from the cache.
    #[serde(default)]
    cached_content_token_count: u64,
    /// Tool results fed back by Gemini's own tools.
    #[serde(default)]
    tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// OpenAI's `usage` with its details (mapping table 7.3).
    fn to_openai(self) -> UsageOut {
        let prompt_tokens = self
            .prompt_token_count
            .saturating_add(self.tool_use_prompt_token_count);
        let completion_tokens = self
            .candidates_token_count
            .saturating_add(self.thoughts_token_count);
        UsageOut {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: self.cached_content_token_count,
                cache_write_tokens: None,
            },
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: self.thoughts_token_count,
            }),
        }
    }

    /// The router's own usage figures.
    fn usage(self) -> Usage {
        self.to_openai().totals()
    }
}

// === Response: translation ===

/// What answering needs from the request, copied so a stream can outlive it.
#[derive(Clone, Debug)]
struct Answering {
    /// The request's receive time, for `created`.
    created: u64,
    /// The configured model, when Gemini names no version.
    model: String,
    /// `parallel_tool_calls: false`: keep only the first call of each choice.
    single_call: bool,
    /// Whether the client asked for the usage chunk.
    include_usage: bool,
    /// How many choices may appear (the requested `n`, capped).
    max_choices: u32,
}

/// The most candidates Gemini returns (`candidateCount`, the client's `n`): a request for
/// more is refused before it is sent, so a stream keeps state for at most this many.
const MAX_CHOICES: u32 = 8;

impl Answering {
    /// Copies what it needs from the request and target.
    fn new(chat: &ChatRequest<'_>, target: &Target) -> Self {
        Self {
            created: chat.created,
            model: target.model.to_string(),
            single_call: chat.body.parallel_tool_calls == Some(false),
            include_usage: chat.include_usage(),
            max_choices: chat.body.n.unwrap_or(1).clamp(1, MAX_CHOICES),
        }
    }
}

/// The failure for an answer the router cannot read.
fn malformed(what: &str, error: &serde_json::Error) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Unavailable,
        format!("Gemini sent a malformed {what} ({error})"),
    )
}

/// A complete `generateContent` answer as a `chat.completion`.
fn translate_response(answering: &Answering, body: &[u8]) -> Result<Translated, UpstreamFailure> {
    if body.trim_ascii_start().first() == Some(&b'[') {
        return Err(array_body(body, FailureKind::Unavailable));
    }
    let response: GenerateResponse<'_> =
        serde_json::from_slice(body).map_err(|e| malformed("response body", &e))?;
    if response.error.is_some() {
        return Err(classify_in_band(body));
    }
    let response_id = response.response_id.as_deref().unwrap_or_default();
    let id = completion_id(response_id);
    let candidates = response.candidates.as_deref().unwrap_or_default();
    let choices = if candidates.is_empty() {
        vec![blocked_choice(&response)?]
    } else {
        let mut choices = candidates
            .iter()
            .zip(0u32..)
            .map(|(candidate, position)| choice(answering, response_id, candidate, position))
            .collect::<Result<Vec<_>, _>>()?;
        choices.sort_by_key(CompletionChoice::index);
        choices
    };
    let completion = Completion::new(
        &id,
        answering.created,
        response
            .model_version
            .as_deref()
            .unwrap_or(&answering.model),
        choices,
        response.usage_metadata.map(UsageMetadata::to_openai),
    );
    let body = serde_json::to_vec(&completion).map_err(|e| malformed("response", &e))?;
    Ok(Translated {
        body: Bytes::from(body),
        usage: response.usage_metadata.map(UsageMetadata::usage),
    })
}

/// `chatcmpl-` + Gemini's response id.
fn completion_id(response_id: &str) -> String {
    if response_id.is_empty() {
        "chatcmpl-gemini".to_owned()
    } else {
        format!("chatcmpl-{response_id}")
    }
}

/// The single empty `content_filter` choice of a blocked prompt; no candidates without a block
/// reason is a broken answer.
fn blocked_choice(
    response: &GenerateResponse<'_>,
) -> Result<CompletionChoice<'static>, UpstreamFailure> {
    let blocked = response
        .prompt_feedback
        .as_ref()
        .and_then(|f| f.block_reason.as_ref())
        .is_some();
    if !blocked {
        return Err(UpstreamFailure::new(
            FailureKind::Unavailable,
            "Gemini answered with no candidates and no block reason",
        ));
    }
    let empty = AssistantMessage::new(Some(String::new()), None, Vec::new());
    Ok(CompletionChoice::new(0, empty, "content_filter"))
}

/// One candidate as a choice.
fn choice<'a>(
    answering: &Answering,
    response_id: &str,
    candidate: &'a Candidate<'a>,
    position: u32,
) -> Result<CompletionChoice<'a>, UpstreamFailure> {
    let index = candidate.index.unwrap_or(position);
    let mut text = String::new();
    let mut thoughts = String::new();
    let mut calls = Vec::new();
    let mut signature = None;
    for part in parts(candidate) {
        if let Some(call) = &part.function_call {
            if !answering.single_call || calls.is_empty() {
                calls.push(tool_call(response_id, index, calls.len(), call, part));
            }
            continue;
        }
        // Gemini signs the last text part of a turn (or the first, in older models); one
        // signature per message is all the next turn can carry.
        if let Some(signed) = part.thought_signature.as_deref() {
            signature = Some(signed);
        }
        if let Some(piece) = &part.text {
            let sink = if part.thought == Some(true) {
                &mut thoughts
            } else {
                &mut text
            };
            sink.push_str(piece);
        }
    }
    let has_calls = !calls.is_empty();
    let finish_reason = finish_reason(
        candidate.finish_reason.as_deref(),
        has_calls,
        has_calls || !text.is_empty(),
    )?;
    let message = AssistantMessage::new(
        (!text.is_empty() || !has_calls).then_some(text),
        (!thoughts.is_empty()).then_some(thoughts),
        calls,
    )
    .with_extra_content(signature.map(|s| ExtraContent::thought_signature_of(Cow::Borrowed(s))));
    Ok(CompletionChoice::new(index, message, finish_reason))
}

/// A candidate's parts, none when it has no content.
fn parts<'c, 'a>(candidate: &'c Candidate<'a>) -> &'c [ResponsePart<'a>] {
    candidate
        .content
        .as_ref()
        .and_then(|c| c.parts.as_deref())
        .unwrap_or_default()
}

/// A function call, the `position`th of its choice, as an OpenAI tool call.
fn tool_call<'a>(
    response_id: &str,
    choice: u32,
    position: usize,
    call: &'a FunctionCallIn<'a>,
    part: &'a ResponsePart<'a>,
) -> ToolCallOut<'a> {
    let generated = generated_core(response_id, choice, position);
    ToolCallOut {
        id: Cow::Owned(CallId::encode(
            call.id.as_deref(),
            &generated,
            part.thought_signature.as_deref(),
        )),
        kind: "function",
        function: FunctionOut {
            name: &call.name,
            arguments: match call.args {
                Some(args) if args.get() != "null" => compact_json(args.get()),
                _ => "{}".to_owned(),
            },
        },
        extra_content: part
            .thought_signature
            .as_deref()
            .map(|s| ExtraContent::thought_signature_of(Cow::Borrowed(s))),
    }
}

/// Gemini's `finishReason` as OpenAI's `finish_reason` (mapping table 7.2). A function-call
/// failure that left nothing usable is an upstream failure, not an empty answer.
fn finish_reason(
    reason: Option<&str>,
    has_calls: bool,
    has_output: bool,
) -> Result<&'static str, UpstreamFailure> {
    let normal = if has_calls { "tool_calls" } else { "stop" };
    match reason.unwrap_or("STOP") {
        "MAX_TOKENS" => Ok("length"),
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER" => Ok("content_filter"),
        reason @ ("MALFORMED_FUNCTION_CALL"
        | "UNEXPECTED_TOOL_CALL"
        | "TOO_MANY_TOOL_CALLS"
        | "MISSING_THOUGHT_SIGNATURE")
            if !has_output =>
        {
            Err(UpstreamFailure::new(
                FailureKind::Unavailable,
                format!("Gemini ended its answer with {reason} and no usable output"),
            ))
        }
        // STOP, OTHER, FINISH_REASON_UNSPECIFIED, NO_IMAGE, the failures above when some output
        // survived, and reasons newer than this table.
        _ => Ok(normal),
    }
}

// === Stream ===

/// Per-response state of a `streamGenerateContent?alt=sse` stream. Memory is bounded: the
/// chunk writer's few counters per choice (at most [`MAX_CHOICES`]) and the last usage seen;
/// text is never kept.
struct GeminiStream {
    /// What the request asked for.
    answering: Answering,
    /// Created from the first chunk, which gives the id and model every chunk repeats.
    writer: Option<ChunkWriter>,
    /// Gemini's response id, for generated call ids.
    response_id: String,
    /// The last `usageMetadata` (running totals).
    usage: Option<UsageMetadata>,
}

impl GeminiStream {
    /// Fresh state for one response.
    fn new(answering: Answering) -> Self {
        Self {
            answering,
            writer: None,
            response_id: String::new(),
            usage: None,
        }
    }

    /// Reads one chunk and emits its OpenAI chunks.
    fn chunk(&mut self, data: &[u8], out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        if data.first() == Some(&b'[') {
            // Google's errors sometimes come wrapped in an array; nothing else does.
            return Err(array_body(data, FailureKind::Stream));
        }
        // UTF-8 is checked whole: serde checks it only in the strings it reads.
        let chunk: GenerateResponse<'_> =
            serde_json::from_str(event_text(data)?).map_err(|e| stream_malformed(&e))?;
        if chunk.error.is_some() {
            return Err(classify_in_band(data));
        }
        let answering = &self.answering;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                self.response_id = chunk.response_id.as_deref().unwrap_or_default().to_owned();
                let writer = ChunkWriter::new(
                    completion_id(&self.response_id),
                    chunk
                        .model_version
                        .as_deref()
                        .unwrap_or(&answering.model)
                        .to_owned(),
                    answering.created,
                    answering.include_usage,
                )
                .with_null_system_fingerprint();
                self.writer.insert(writer)
            }
        };
        let candidates = chunk.candidates.as_deref().unwrap_or_default();
        if candidates.is_empty() && blocked(&chunk) {
            writer.finish(0, "content_filter", out)?;
        }
        for (candidate, position) in candidates.iter().zip(0u32..) {
            let index = candidate.index.unwrap_or(position);
            if index >= answering.max_choices {
                // It would otherwise let the upstream grow our memory.
                return Err(UpstreamFailure::new(
                    FailureKind::Stream,
                    format!(
                        "Gemini sent candidate {index}, beyond the {} requested",
                        answering.max_choices
                    ),
                ));
            }
            emit_candidate(writer, answering, &self.response_id, index, candidate, out)?;
        }
        if chunk.usage_metadata.is_some() {
            self.usage = chunk.usage_metadata;
        }
        Ok(())
    }

    /// Whether `[DONE]` went out.
    fn is_done(&self) -> bool {
        self.writer.as_ref().is_some_and(ChunkWriter::is_done)
    }
}

/// Whether a chunk reports a blocked prompt.
fn blocked(chunk: &GenerateResponse<'_>) -> bool {
    chunk
        .prompt_feedback
        .as_ref()
        .is_some_and(|f| f.block_reason.is_some())
}

/// The failure for an unreadable stream event.
fn stream_malformed(error: &serde_json::Error) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Stream,
        format!("Gemini sent a malformed stream event ({error})"),
    )
}

/// The chunks for candidate `index` of one upstream chunk: the role on first sight, one delta
/// per non-empty text or thought part, one delta per function call (it arrives whole), and the
/// finish chunk when Gemini sets `finishReason`.
fn emit_candidate(
    writer: &mut ChunkWriter,
    answering: &Answering,
    response_id: &str,
    index: u32,
    candidate: &Candidate<'_>,
    out: &mut Vec<Bytes>,
) -> Result<(), UpstreamFailure> {
    writer.track(index);
    if writer.is_finished(index) {
        // Gemini does not send after the finish; if it did, the client already has its end.
        return Ok(());
    }
    let parts = parts(candidate);
    if !parts.is_empty() || candidate.finish_reason.is_some() {
        writer.open(index, out)?;
    }
    for part in parts {
        if let Some(call) = &part.function_call {
            if answering.single_call && writer.calls(index) > 0 {
                continue;
            }
            let position = writer.new_call(index, None);
            let call = tool_call(response_id, index, position, call, part);
            let delta = Delta::tool_call(ToolCallDelta::whole(position, call));
            writer.delta(index, delta, out)?;
        } else if let Some(delta) = part_delta(part) {
            writer.delta(index, delta, out)?;
        }
    }
    if let Some(reason) = candidate.finish_reason.as_deref() {
        let has_calls = writer.calls(index) > 0;
        let finish = finish_reason(Some(reason), has_calls, writer.has_output(index))?;
        writer.finish(index, finish, out)?;
    }
    Ok(())
}

/// The delta of a text or thought part: its text, and its signature as `extra_content` (a
/// signature may come on a part with no text at all). `None` when there is neither.
fn part_delta<'p>(part: &'p ResponsePart<'p>) -> Option<Delta<'p>> {
    let text = part.text.as_deref().filter(|t| !t.is_empty());
    let extra_content = part
        .thought_signature
        .as_deref()
        .map(|s| ExtraContent::thought_signature_of(Cow::Borrowed(s)));
    let mut delta = match text {
        Some(text) if part.thought == Some(true) => Delta::reasoning(text),
        Some(text) => Delta::content(text),
        None if extra_content.is_some() => Delta::default(),
        None => return None,
    };
    delta.extra_content = extra_content;
    Some(delta)
}

impl StreamTranslator for GeminiStream {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let data = event.data.trim_ascii();
        if data.is_empty() || self.is_done() {
            return Ok(());
        }
        self.chunk(data, out)
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let Some(writer) = &mut self.writer else {
            return Err(cut_short());
        };
        if writer.is_done() {
            return Ok(());
        }
        // Gemini sends no end marker: a finishReason is the only proof the answer is whole.
        if !writer.all_finished() {
            return Err(cut_short());
        }
        writer.end(self.usage.unwrap_or_default().to_openai(), out)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(UsageMetadata::usage)
    }

    /// Gemini writes its error object bare, without `data:`, when a stream fails after it
    /// started; it is read and classified like any other error chunk.
    fn reads_bare_json(&self) -> bool {
        true
    }
}

// === Errors ===

/// Google's error envelope: `{"error":{...}}`, sometimes inside a one-element array.
#[derive(Debug, Default, Deserialize)]
struct Envelope {
    /// The error.
    #[serde(default)]
    error: Option<GoogleError>,
}

/// A `google.rpc.Status`.
#[derive(Debug, Default, Deserialize)]
struct GoogleError {
    /// The HTTP status, as a number.
    #[serde(default)]
    code: Option<serde_json::Value>,
    /// For a person.
    #[serde(default)]
    message: Option<String>,
    /// The canonical code: `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...
    #[serde(default)]
    status: Option<String>,
    /// Typed details (`ErrorInfo`, `RetryInfo`, `QuotaFailure`, ...).
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl GoogleError {
    /// Reads either shape; anything else yields an empty error.
    fn parse(body: &[u8]) -> Self {
        // Decide by the first byte: serde would also read a struct from an array.
        if body.trim_ascii_start().first() == Some(&b'[') {
            return serde_json::from_slice::<Vec<Envelope>>(body)
                .ok()
                .and_then(|all| all.into_iter().find_map(|e| e.error))
                .unwrap_or_default();
        }
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .and_then(|one| one.error)
            .unwrap_or_default()
    }

    /// The details of one `@type` (matched by its suffix, e.g. `RetryInfo`).
    fn details_of<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = &'s serde_json::Value> {
        self.details.iter().filter(move |d| {
            d.get("@type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.ends_with(kind))
        })
    }

    /// Whether an `ErrorInfo` reason says the router's key or project is at fault.
    fn credential_reason(&self) -> bool {
        self.details.iter().any(|d| {
            d.get("reason").and_then(|r| r.as_str()).is_some_and(|r| {
                r.starts_with("API_KEY_")
                    || matches!(
                        r,
                        "SERVICE_DISABLED"
                            | "CONSUMER_SUSPENDED"
                            | "BILLING_DISABLED"
                            | "ACCESS_TOKEN_EXPIRED"
                    )
            })
        })
    }

    /// Whether a `QuotaFailure` names a per-day quota: the day's quota is gone.
    fn daily_quota(&self) -> bool {
        self.quota_ids().any(|q| q.contains("PerDay"))
    }

    /// Whether every violated quota is counted per model, so other models still answer.
    fn per_model_quota(&self) -> bool {
        let mut ids = self.quota_ids().peekable();
        ids.peek().is_some() && ids.all(|q| q.contains("PerModel"))
    }

    /// The `quotaId`s of the `QuotaFailure` violations.
    fn quota_ids(&self) -> impl Iterator<Item = &str> {
        self.details_of("QuotaFailure").flat_map(|d| {
            d.get("violations")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.get("quotaId").and_then(|q| q.as_str()))
        })
    }

    /// `RetryInfo.retryDelay`, e.g. `"37s"`.
    fn retry_delay(&self) -> Option<Duration> {
        self.details_of("RetryInfo")
            .find_map(|d| d.get("retryDelay").and_then(|r| r.as_str()))
            .and_then(parse_duration)
    }

    /// Whether the canonical code is `status`.
    fn status_is(&self, status: &str) -> bool {
        self.status.as_deref() == Some(status)
    }
}

/// A protobuf JSON duration: decimal seconds with an `s` suffix (`"37s"`, `"1.5s"`).
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Sorts a Gemini error by the reason in its body, then its status (reference 3.5 and 7.4).
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let error = GoogleError::parse(body);
    let kind = kind_of(status, &error);
    let retry_delay = error.retry_delay();
    let per_model = error.per_model_quota();
    let fields = ErrorFields {
        message: error.message,
        error_type: Some("invalid_request_error".to_owned()),
        code: error.status,
        param: None,
    };
    let mut failure = openai::failure_from(kind, status, headers, fields);
    if kind == FailureKind::RateLimited {
        failure.per_model = per_model;
        if failure.retry_after.is_none() {
            failure.retry_after = retry_delay;
        }
    }
    failure
}

/// The failover class of a Gemini error.
fn kind_of(status: StatusCode, error: &GoogleError) -> FailureKind {
    // A bad key is a 400 INVALID_ARGUMENT: only the reason tells it from a bad request.
    if error.credential_reason()
        || error.status_is("PERMISSION_DENIED")
        || error.status_is("UNAUTHENTICATED")
    {
        return FailureKind::Account;
    }
    match status.as_u16() {
        400 if error.status_is("FAILED_PRECONDITION") => FailureKind::Account,
        401..=403 => FailureKind::Account,
        // 408: Gemini gave up waiting for the request, so it never ran: safe to retry.
        404 | 408 => FailureKind::Unavailable,
        429 if error.daily_quota() => FailureKind::Account,
        429 => FailureKind::RateLimited,
        400..=499 => FailureKind::Rejected,
        _ => FailureKind::Unavailable,
    }
}

/// An array where a response object belongs: Google's array-wrapped error, or garbage.
fn array_body(data: &[u8], kind: FailureKind) -> UpstreamFailure {
    let error = GoogleError::parse(data);
    if error.status.is_some() || error.message.is_some() {
        return classify_in_band(data);
    }
    UpstreamFailure::new(kind, "Gemini sent a JSON array where a response belongs")
}

/// An error object inside a 200 answer or stream (`{"error":{...}}`, possibly in an array),
/// classified by the status it carries like any other Gemini error.
fn classify_in_band(data: &[u8]) -> UpstreamFailure {
    let status = GoogleError::parse(data)
        .code
        .and_then(|c| c.as_u64())
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut failure = classify(status, &HeaderMap::new(), data);
    failure.message = format!("Gemini reported an error mid-answer: {}", failure.message);
    failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseDecoder;
    use http::header::CONTENT_TYPE;
    use serde_json::{Value, json};

    /// The `created` every translated answer must carry.
    const CREATED: u64 = 1_760_000_000;

    /// A target parsed from real configuration text (the only way to make a `Secret`).
    fn target_with(base_url: &str, model: &str, max_tokens: Option<u32>) -> Target {
        let cap = max_tokens.map_or(String::new(), |m| format!("max_tokens = {m}"));
        let toml = format!(
            "[providers.g]\nkind = \"gemini\"\nbase_url = \"{base_url}\"\napi_key_env = \"GEMINI_KEY\"\n\
             [providers.g.models.\"{model}\"]\n{cap}\n"
        );
        let env = |name: &str| (name == "GEMINI_KEY").then(|| "g-secret-key".to_owned());
        let snapshot = crate::config::parse(&toml, "test.toml", &env).unwrap();
        snapshot.route(&format!("g/{model}")).unwrap().targets[0].clone()
    }

    /// The usual target: gemini-2.5-flash on the real host, no per-model cap.
    fn target() -> Target {
        target_with(
            "https://generativelanguage.googleapis.com",
            "gemini-2.5-flash",
            None,
        )
    }

    /// Parses `body` as the front door would (with `created` set) and hands it to `f`.
    fn with_chat<R>(body: &Value, f: impl FnOnce(&ChatRequest<'_>) -> R) -> R {
        let raw = serde_json::to_vec(body).unwrap();
        let mut chat = ChatRequest::parse(&raw).unwrap();
        chat.created = CREATED;
        f(&chat)
    }

    /// The Gemini body for `body`, or the client's error object (from the front door or
    /// from the adapter).
    fn request_with(body: Value, target: &Target) -> Result<Value, Value> {
        let error_json = |error: ApiError| {
            serde_json::from_slice::<Value>(&error.body()).unwrap()["error"].clone()
        };
        let raw = serde_json::to_vec(&body).unwrap();
        let mut chat = ChatRequest::parse(&raw).map_err(error_json)?;
        chat.created = CREATED;
        match Gemini.request(&chat, target) {
            Ok(request) => Ok(serde_json::from_slice(&request.body).unwrap()),
            Err(error) => Err(error_json(error)),
        }
    }

    /// The Gemini body for a request that must translate.
    fn request(body: Value) -> Value {
        request_with(body, &target()).unwrap()
    }

    /// The error object for a request that must be refused.
    fn request_error(body: Value) -> Value {
        request_with(body, &target()).unwrap_err()
    }

    /// A user message.
    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    /// A chat request with `messages` plus the fields of `extra`.
    fn chat_body(messages: Value, extra: Value) -> Value {
        let mut body = json!({"model": "gem", "messages": messages});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    }

    // --- request ---

    #[test]
    fn endpoint_path_and_key_header() {
        with_chat(&chat_body(json!([user("hi")]), json!({})), |chat| {
            let request = Gemini.request(chat, &target()).unwrap();
            assert_eq!(request.method, Method::POST);
            assert_eq!(
                request.path,
                "/v1beta/models/gemini-2.5-flash:generateContent"
            );
            let key = &request.headers["x-goog-api-key"];
            assert_eq!(key, "g-secret-key");
            assert!(key.is_sensitive());
            assert_eq!(request.headers[CONTENT_TYPE], "application/json");
            assert!(request.headers.get("authorization").is_none());
        });
        let stream = chat_body(json!([user("hi")]), json!({"stream": true}));
        with_chat(&stream, |chat| {
            let request = Gemini.request(chat, &target()).unwrap();
            assert_eq!(
                request.path,
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            );
        });
        let versioned = target_with(
            "https://generativelanguage.googleapis.com/v1beta",
            "models/gemini 3",
            None,
        );
        assert_eq!(
            path(&versioned, false),
            "/models/gemini%203:generateContent"
        );
        let tuned = target_with("https://x", "tunedModels/mine-1", None);
        assert_eq!(
            path(&tuned, false),
            "/v1beta/tunedModels/mine-1:generateContent"
        );
    }

    #[test]
    fn system_messages_and_roles() {
        let body = request(chat_body(
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "one"},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": ""}]},
                {"role": "assistant", "content": "un deux"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "three", "name": "bob"}
            ]),
            json!({}),
        ));
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use French."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
                    {"role": "model", "parts": [{"text": "un deux"}]},
                    {"role": "user", "parts": [{"text": "three"}]}
                ]
            })
        );
    }

    #[test]
    fn generation_config_fields() {
        let body = request(chat_body(
            json!([user("hi")]),
            json!({
                "temperature": 1.5, "top_p": 0.9, "max_tokens": 10, "max_completion_tokens": 20,
                "stop": ["a", "b"], "n": 2, "seed": -7, "presence_penalty": 0.5,
                "frequency_penalty": -0.5, "response_format": {"type": "json_object"},
                "reasoning_effort": "low", "user": "u-1", "parallel_tool_calls": true
            }),
        ));
        assert_eq!(
            body["generationConfig"],
            json!({
                "temperature": 1.5, "topP": 0.9, "maxOutputTokens": 20, "stopSequences": ["a", "b"],
                "candidateCount": 2, "seed": -7, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
                "responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 1024}
            })
        );
        let legacy = request(chat_body(
            json!([user("hi")]),
            json!({"max_tokens": 10, "stop": "END"}),
        ));
        assert_eq!(
            legacy["generationConfig"],
            json!({"maxOutputTokens": 10, "stopSequences": ["END"]})
        );
        let capped = target_with("https://x", "gemini-2.5-pro", Some(777));
        let default = request_with(chat_body(json!([user("hi")]), json!({})), &capped).unwrap();
        assert_eq!(default["generationConfig"], json!({"maxOutputTokens": 777}));
        let none = request(chat_body(
            json!([user("hi")]),
            json!({"response_format": {"type": "text"}}),
        ));
        assert!(none.get("generationConfig").is_none());
    }

    #[test]
    fn json_schema_that_fits_is_forwarded_byte_for_byte() {
        let raw = r##"{"model":"gem","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","strict":true,"schema":{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":["string","null"]}},"additionalProperties":false}}}}"##;
        let chat = ChatRequest::parse(raw.as_bytes()).unwrap();
        let request = Gemini.request(&chat, &target()).unwrap();
        let text = std::str::from_utf8(&request.body).unwrap();
        assert!(text.contains(r##""responseJsonSchema":{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":["string","null"]}},"additionalProperties":false}"##), "{text}");
        assert!(text.contains(r#""responseMimeType":"application/json""#));
    }

    #[test]
    fn json_schema_refs_are_inlined_and_refusals_name_the_path() {
        let raw = r##"{"model":"gem","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}},"$defs":{"x":{"type":"integer","exclusiveMinimum":0}}}}}}"##;
        let chat = ChatRequest::parse(raw.as_bytes()).unwrap();
        let request = Gemini.request(&chat, &target()).unwrap();
        let text = std::str::from_utf8(&request.body).unwrap();
        assert!(text.contains(r##""responseJsonSchema":{"type":"object","properties":{"a":{"type":"integer","minimum":1}}}"##), "{text}");

        let error = request_error(chat_body(
            json!([user("hi")]),
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters":
                {"type": "object", "properties": {"x": {"not": {"type": "string"}}}}}}]}),
        ));
        assert_eq!(
            error["param"],
            "tools[0].function.parameters.properties.x.not"
        );
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}},
            {"type": "function", "function": {"name": "noop"}}]);
        let body = request(chat_body(
            json!([user("hi")]),
            json!({"tools": tools, "tool_choice": "required"}),
        ));
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parametersJsonSchema": {"type": "object",
                    "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}},
                {"name": "noop"}
            ]}])
        );
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY"}})
        );
        let cases = [
            (
                json!("auto"),
                json!({"functionCallingConfig": {"mode": "AUTO"}}),
            ),
            (
                json!("none"),
                json!({"functionCallingConfig": {"mode": "NONE"}}),
            ),
            (
                json!({"type": "function", "function": {"name": "noop"}}),
                json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["noop"]}}),
            ),
        ];
        for (choice, expected) in cases {
            let body = request(chat_body(
                json!([user("hi")]),
                json!({"tools": tools, "tool_choice": choice}),
            ));
            assert_eq!(body["toolConfig"], expected, "{choice}");
        }
        let without_tools = request(chat_body(
            json!([user("hi")]),
            json!({"tool_choice": "none"}),
        ));
        assert!(without_tools.get("toolConfig").is_none());
        assert!(without_tools.get("tools").is_none());
    }

    #[test]
    fn tool_calls_and_results() {
        let body = request(chat_body(
            json!([
                user("weather in Paris and Rome?"),
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp\": 21}"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
                user("thanks")
            ]),
            json!({}),
        ));
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "weather in Paris and Rome?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SKIP_SIGNATURE},
                    {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": SKIP_SIGNATURE}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                    {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                    {"text": "thanks"}
                ]}
            ])
        );
    }

    #[test]
    fn images() {
        let body = request(chat_body(
            json!([{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "DATA:image/jpeg;name=a.jpg;base64,/9j/"}},
                {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}}
            ]}]),
            json!({}),
        ));
        assert_eq!(
            body["contents"][0]["parts"],
            json!([
                {"text": "what is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
                {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}}
            ])
        );
        let remote = request_error(chat_body(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]),
            json!({}),
        ));
        assert_eq!(remote["param"], "messages[0].content[0].image_url.url");
        let message = remote["message"].as_str().unwrap();
        assert!(
            message.contains("does not download") && message.contains("provider 'g'"),
            "{message}"
        );
        let not_base64 = request_error(chat_body(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}]}]),
            json!({}),
        ));
        assert_eq!(not_base64["param"], "messages[0].content[0].image_url.url");
    }

    #[test]
    fn what_gemini_cannot_do_is_a_400_naming_field_and_provider() {
        let hi = json!([user("hi")]);
        let weather = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        let cases = [
            (chat_body(hi.clone(), json!({"logprobs": true})), "logprobs"),
            (
                chat_body(hi.clone(), json!({"top_logprobs": 3})),
                "top_logprobs",
            ),
            (
                chat_body(hi.clone(), json!({"logit_bias": {"50256": -100}})),
                "logit_bias",
            ),
            (
                chat_body(hi.clone(), json!({"modalities": ["text", "audio"]})),
                "modalities",
            ),
            (
                chat_body(hi.clone(), json!({"functions": [{"name": "f"}]})),
                "functions",
            ),
            (
                chat_body(hi.clone(), json!({"stop": ["1", "2", "3", "4", "5", "6"]})),
                "stop",
            ),
            (
                chat_body(hi.clone(), json!({"seed": 5_000_000_000_i64})),
                "seed",
            ),
            (
                chat_body(hi.clone(), json!({"reasoning_effort": "extreme"})),
                "reasoning_effort",
            ),
            (
                chat_body(hi.clone(), json!({"response_format": {"type": "yaml"}})),
                "response_format.type",
            ),
            (
                chat_body(hi.clone(), json!({"tool_choice": "required"})),
                "tool_choice",
            ),
            (
                chat_body(
                    hi.clone(),
                    json!({"tools": weather, "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                ),
                "tool_choice",
            ),
            (
                chat_body(
                    hi.clone(),
                    json!({"tools": [{"type": "custom", "function": {"name": "f"}}]}),
                ),
                "tools[0].type",
            ),
            (
                chat_body(
                    hi.clone(),
                    json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}),
                ),
                "tools[0].function.parameters",
            ),
            (
                chat_body(
                    hi.clone(),
                    json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": ["x"]}}]}),
                ),
                "tools[0].function.parameters",
            ),
            (
                chat_body(
                    json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}]),
                    json!({}),
                ),
                "messages[0].content[0]",
            ),
            (
                chat_body(
                    json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}, user("hi")]),
                    json!({}),
                ),
                "messages[0].content[0]",
            ),
            (
                chat_body(
                    json!([user("hi"), {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]),
                    json!({}),
                ),
                "messages[1].tool_calls[0].function.arguments",
            ),
            (
                chat_body(
                    json!([user("hi"), {"role": "tool", "tool_call_id": "nowhere", "content": "x"}]),
                    json!({}),
                ),
                "messages[1].tool_call_id",
            ),
            (
                chat_body(
                    json!([{"role": "system", "content": "only rules"}]),
                    json!({}),
                ),
                "messages",
            ),
        ];
        for (body, param) in cases {
            let error = request_error(body.clone());
            assert_eq!(error["param"], param, "{body}");
            assert_eq!(error["type"], "invalid_request_error");
        }
        let logprobs = request_error(chat_body(hi.clone(), json!({"logprobs": true})));
        assert!(
            logprobs["message"]
                .as_str()
                .unwrap()
                .contains("provider 'g' (kind gemini)")
        );
        // Harmless or honoured fields pass.
        request(chat_body(
            hi.clone(),
            json!({"logprobs": false, "logit_bias": {}, "modalities": ["text"], "parallel_tool_calls": false}),
        ));
    }

    // --- response ---

    /// Translates a Gemini answer for the request `chat`: the OpenAI JSON and the usage.
    fn answer_with(chat: Value, gemini: Value) -> Result<(Value, Option<Usage>), UpstreamFailure> {
        with_chat(&chat, |chat| {
            let bytes = Bytes::from(serde_json::to_vec(&gemini).unwrap());
            Gemini
                .response(chat, &target(), bytes)
                .map(|t| (serde_json::from_slice(&t.body).unwrap(), t.usage))
        })
    }

    /// Translates a Gemini answer to a one-message request.
    fn answer(gemini: Value) -> Result<(Value, Option<Usage>), UpstreamFailure> {
        answer_with(chat_body(json!([user("hi")]), json!({})), gemini)
    }

    /// A one-text-part candidate ending with `reason`.
    fn text_candidate(text: &str, reason: &str) -> Value {
        json!({"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": reason, "index": 0})
    }

    #[test]
    fn text_answer_with_thinking_and_cache_usage() {
        let (body, usage) = answer(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me think", "thought": true},
                {"text": "Hello"}, {"text": ", world"}
            ]}, "finishReason": "STOP", "index": 0, "safetyRatings": []}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
                "cachedContentTokenCount": 4, "toolUsePromptTokenCount": 2, "totalTokenCount": 24},
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-1"
        }))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "id": "chatcmpl-resp-1", "object": "chat.completion", "created": CREATED,
                "model": "gemini-2.5-flash-001",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world",
                    "reasoning_content": "Let me think", "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24,
                    "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 7}},
                "system_fingerprint": null
            })
        );
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 12,
                total_tokens: 24,
                cached_tokens: 4,
                cache_write_tokens: 0,
                reasoning_tokens: 7,
            })
        );
    }

    #[test]
    fn function_call_with_stop_is_tool_calls() {
        let (body, _) = answer(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": [1, 2],
                    "note": "a  b\n"}}, "thoughtSignature": "c2lnbmF0dXJl+/A="},
                {"functionCall": {"name": "get_time", "args": {}, "id": "fc_9"}}
            ]}, "finishReason": "STOP"}],
            "responseId": "r-2"
        }))
        .unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert!(choice["message"]["content"].is_null());
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(
            calls[0]["function"]["arguments"],
            r#"{"city":"Paris","days":[1,2],"note":"a  b\n"}"#
        );
        let first = CallId::decode(calls[0]["id"].as_str().unwrap()).unwrap();
        assert_eq!(first.gemini_id, None);
        assert_eq!(first.signature().unwrap(), "c2lnbmF0dXJl+/A=");
        let second = CallId::decode(calls[1]["id"].as_str().unwrap()).unwrap();
        assert_eq!(second.gemini_id, Some("fc_9"));
        assert_eq!(second.signature, None);
        // Stable: the same response gives the same ids.
        let (again, _) = answer(json!({
            "candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {}}}]}, "finishReason": "STOP"}],
            "responseId": "r-2"
        }))
        .unwrap();
        assert_eq!(
            again["choices"][0]["message"]["tool_calls"][0]["id"],
            calls[0]["id"].as_str().unwrap().split_at(26).0
        );
    }

    #[test]
    fn finish_reason_families() {
        let cases = [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("IMAGE_OTHER", "content_filter"),
            ("OTHER", "stop"),
            ("FINISH_REASON_UNSPECIFIED", "stop"),
            ("SOMETHING_NEW", "stop"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
        ];
        for (reason, expected) in cases {
            let (body, _) = answer(json!({"candidates": [text_candidate("x", reason)]})).unwrap();
            assert_eq!(body["choices"][0]["finish_reason"], expected, "{reason}");
        }
        for reason in [
            "MALFORMED_FUNCTION_CALL",
            "UNEXPECTED_TOOL_CALL",
            "TOO_MANY_TOOL_CALLS",
        ] {
            let failure =
                answer(json!({"candidates": [{"content": {"parts": []}, "finishReason": reason}]}))
                    .unwrap_err();
            assert_eq!(failure.kind, FailureKind::Unavailable, "{reason}");
            assert!(failure.message.contains(reason));
        }
        let (empty_safety, _) =
            answer(json!({"candidates": [{"finishReason": "SAFETY", "index": 0}]})).unwrap();
        assert_eq!(empty_safety["choices"][0]["message"]["content"], "");
    }

    #[test]
    fn blocked_prompt_is_an_empty_content_filter_choice() {
        let (body, usage) = answer(json!({
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
            "responseId": "blk"
        }))
        .unwrap();
        assert_eq!(body["choices"].as_array().unwrap().len(), 1);
        assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(body["choices"][0]["message"]["content"], "");
        assert_eq!(usage.unwrap().total_tokens, 8);
        let nothing = answer(json!({"candidates": []})).unwrap_err();
        assert_eq!(nothing.kind, FailureKind::Unavailable);
        assert_eq!(
            answer(json!([1])).unwrap_err().kind,
            FailureKind::Unavailable
        );
    }

    #[test]
    fn more_candidates_than_gemini_returns_are_refused_naming_n() {
        let body = |n: u32| chat_body(json!([user("hi")]), json!({ "n": n }));
        assert_eq!(request(body(8))["generationConfig"]["candidateCount"], 8);
        let error = request_error(body(9));
        assert_eq!(error["param"], "n");
        assert_eq!(error["code"], "unsupported_parameter");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("provider 'g' (kind gemini)"), "{message}");
        assert!(message.contains("at most 8"), "{message}");
    }

    #[test]
    fn several_candidates_become_ordered_choices() {
        let (body, _) = answer_with(
            chat_body(json!([user("hi")]), json!({"n": 2})),
            json!({"candidates": [
                {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
                {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0}
            ]}),
        )
        .unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "a");
        assert_eq!(body["choices"][1]["index"], 1);
        assert_eq!(body["choices"][1]["finish_reason"], "length");
        assert!(body["usage"].is_null());
    }

    #[test]
    fn parallel_tool_calls_false_keeps_the_first_call() {
        let gemini = json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "a", "args": {}}}, {"functionCall": {"name": "b", "args": {}}}
        ]}, "finishReason": "STOP"}]});
        let (body, _) = answer_with(
            chat_body(json!([user("hi")]), json!({"parallel_tool_calls": false})),
            gemini.clone(),
        )
        .unwrap();
        let calls = body["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["function"]["name"], "a");
        let (both, _) = answer(gemini).unwrap();
        assert_eq!(
            both["choices"][0]["message"]["tool_calls"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    // --- stream ---

    /// Feeds `events` as `data:` payloads, then ends the body. Returns the frames' payloads
    /// and the first error, as `stream.rs` would see them.
    #[test]
    fn events_that_are_not_json_or_not_utf8_are_stream_failures() {
        let mut not_utf8 = br#"{"candidates":[],"modelVersion":"caf"#.to_vec();
        not_utf8.extend_from_slice(b"\xe9\"}");
        for data in [b"{not json".to_vec(), not_utf8] {
            let failure = with_chat(&stream_chat(json!({})), |chat| {
                let mut translator = Gemini.stream(chat, &target());
                let event = SseEvent {
                    name: None,
                    data: Bytes::from(data.clone()),
                };
                translator.event(&event, &mut Vec::new()).unwrap_err()
            });
            assert_eq!(failure.kind, FailureKind::Stream);
        }
    }

    fn run_stream(chat: Value, events: &[&str]) -> (Vec<String>, Result<(), UpstreamFailure>) {
        with_chat(&chat, |chat| {
            let mut translator = Gemini.stream(chat, &target());
            let mut out = Vec::new();
            let mut result = Ok(());
            for data in events {
                let event = SseEvent {
                    name: None,
                    data: Bytes::copy_from_slice(data.as_bytes()),
                };
                result = translator.event(&event, &mut out);
                if result.is_err() {
                    break;
                }
            }
            if result.is_ok() {
                result = translator.finish(&mut out);
            }
            let payloads = out
                .iter()
                .map(|frame| {
                    let text = std::str::from_utf8(frame).unwrap();
                    text.strip_prefix("data: ")
                        .unwrap()
                        .strip_suffix("\n\n")
                        .unwrap()
                        .to_owned()
                })
                .collect();
            (payloads, result)
        })
    }

    /// A streaming request with the fields of `extra`.
    fn stream_chat(extra: Value) -> Value {
        let mut extra = extra;
        extra["stream"] = json!(true);
        chat_body(json!([user("hi")]), extra)
    }

    /// The JSON chunks among the payloads (`[DONE]` left out).
    fn parsed(payloads: &[String]) -> Vec<Value> {
        payloads
            .iter()
            .filter(|p| *p != "[DONE]")
            .map(|p| serde_json::from_str(p).unwrap())
            .collect()
    }

    /// Three text chunks, the last one with the finish reason and the final usage.
    const TEXT_STREAM: [&str; 3] = [
        r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"totalTokenCount":6},"modelVersion":"gemini-2.5-flash","responseId":"s1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"totalTokenCount":7},"modelVersion":"gemini-2.5-flash","responseId":"s1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"!"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3,"thoughtsTokenCount":4,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash","responseId":"s1"}"#,
    ];

    #[test]
    fn text_stream_without_usage_chunk() {
        let (payloads, result) = run_stream(stream_chat(json!({})), &TEXT_STREAM);
        result.unwrap();
        assert_eq!(payloads.last().unwrap(), "[DONE]");
        let chunks = parsed(&payloads);
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(
            deltas,
            [
                &json!({"role": "assistant", "content": ""}),
                &json!({"content": "Hel"}),
                &json!({"content": "lo"}),
                &json!({"content": "!"}),
                &json!({})
            ]
        );
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
        for chunk in &chunks {
            assert_eq!(chunk["id"], "chatcmpl-s1");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], CREATED);
            assert_eq!(chunk["model"], "gemini-2.5-flash");
            assert!(chunk.get("usage").is_none());
        }
    }

    #[test]
    fn usage_chunk_takes_the_last_figures() {
        let (payloads, result) = run_stream(
            stream_chat(json!({"stream_options": {"include_usage": true}})),
            &TEXT_STREAM,
        );
        result.unwrap();
        let chunks = parsed(&payloads);
        let (usage_chunk, content) = chunks.split_last().unwrap();
        for chunk in content {
            assert!(chunk["usage"].is_null() && chunk.get("usage").is_some());
        }
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(
            usage_chunk["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 4}})
        );
        assert_eq!(payloads.last().unwrap(), "[DONE]");
        with_chat(&stream_chat(json!({})), |chat| {
            let mut translator = Gemini.stream(chat, &target());
            for data in TEXT_STREAM {
                let event = SseEvent {
                    name: None,
                    data: Bytes::from_static(data.as_bytes()),
                };
                translator.event(&event, &mut Vec::new()).unwrap();
            }
            assert_eq!(translator.usage().unwrap().total_tokens, 12);
        });
    }

    #[test]
    fn function_call_arrives_as_one_delta() {
        let events = [
            r#"{"candidates":[{"content":{"parts":[{"text":"Checking","thought":true}],"role":"model"},"index":0}],"responseId":"s2"}"#,
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"AbC/+d=="}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":6,"totalTokenCount":15},"responseId":"s2"}"#,
        ];
        let (payloads, result) = run_stream(stream_chat(json!({})), &events);
        result.unwrap();
        let chunks = parsed(&payloads);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            chunks[1]["choices"][0]["delta"],
            json!({"reasoning_content": "Checking"})
        );
        let call = &chunks[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["type"], "function");
        assert_eq!(
            call["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        let id = CallId::decode(call["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.signature().unwrap(), "AbC/+d==");
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(payloads.last().unwrap(), "[DONE]");
        assert_eq!(payloads.len(), 5);
    }

    /// The tool call fragments of `payloads`: (index, id, name, arguments).
    fn streamed_calls(payloads: &[String]) -> Vec<(u64, String, String, String)> {
        parsed(payloads)
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
            .map(|call| {
                let text = |v: &Value| v.as_str().unwrap().to_owned();
                (
                    call["index"].as_u64().unwrap(),
                    text(&call["id"]),
                    text(&call["function"]["name"]),
                    text(&call["function"]["arguments"]),
                )
            })
            .collect()
    }

    /// Three parallel calls in one chunk (one with Gemini's own id), a fourth in the next.
    const PARALLEL_CALLS: [&str; 2] = [
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"a","args":{"x":1}},"thoughtSignature":"AbC/+d=="},{"functionCall":{"name":"b","args":{"y":[2, 3]},"id":"gem-7"}},{"functionCall":{"name":"c","args":{}}}],"role":"model"},"index":0}],"responseId":"par"}"#,
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"d","args":{"z":"w"}}}],"role":"model"},"finishReason":"STOP","index":0}],"responseId":"par"}"#,
    ];

    #[test]
    fn parallel_calls_get_indexes_in_order_with_their_arguments() {
        let (payloads, result) = run_stream(stream_chat(json!({})), &PARALLEL_CALLS);
        result.unwrap();
        let calls = streamed_calls(&payloads);
        let summary: Vec<(u64, &str, &str)> = calls
            .iter()
            .map(|(i, _, name, args)| (*i, name.as_str(), args.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (0, "a", r#"{"x":1}"#),
                (1, "b", r#"{"y":[2,3]}"#),
                (2, "c", "{}"),
                (3, "d", r#"{"z":"w"}"#)
            ]
        );
        let ids: std::collections::HashSet<&str> =
            calls.iter().map(|(_, id, _, _)| id.as_str()).collect();
        assert_eq!(ids.len(), 4, "every call has its own id: {calls:?}");
        assert_eq!(
            CallId::decode(&calls[1].1).unwrap().gemini_id,
            Some("gem-7")
        );
        let finish = parsed(&payloads);
        assert_eq!(
            finish.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }

    #[test]
    fn generated_call_ids_are_the_same_for_the_same_answer() {
        let (first, _) = run_stream(stream_chat(json!({})), &PARALLEL_CALLS);
        let (again, _) = run_stream(stream_chat(json!({})), &PARALLEL_CALLS);
        assert_eq!(streamed_calls(&first), streamed_calls(&again));
        // Another answer (another response id) gets other ids.
        let other: Vec<String> = PARALLEL_CALLS
            .iter()
            .map(|e| e.replace(r#""par""#, r#""other""#))
            .collect();
        let other: Vec<&str> = other.iter().map(String::as_str).collect();
        let (other, _) = run_stream(stream_chat(json!({})), &other);
        let ids = |payloads: &[String]| -> Vec<String> {
            streamed_calls(payloads).into_iter().map(|c| c.1).collect()
        };
        let (first, other) = (ids(&first), ids(&other));
        assert_ne!(first[0], other[0]);
        // Gemini's own id is kept as it is.
        assert_eq!(first[1], other[1]);
    }

    #[test]
    fn a_stream_without_finish_reason_is_cut_short() {
        let (payloads, result) = run_stream(stream_chat(json!({})), &TEXT_STREAM[..2]);
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
        assert!(!payloads.contains(&"[DONE]".to_owned()));
        let (_, empty) = run_stream(stream_chat(json!({})), &[]);
        assert!(empty.is_err());
    }

    #[test]
    fn error_chunks_end_the_stream_classified() {
        let limited = r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        let (payloads, result) = run_stream(stream_chat(json!({})), &[TEXT_STREAM[0], limited]);
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::RateLimited);
        assert!(failure.message.contains("Resource has been exhausted"));
        assert_eq!(payloads.len(), 2);
        let wrapped = r#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
        let (_, result) = run_stream(stream_chat(json!({})), &[wrapped]);
        assert_eq!(result.unwrap_err().kind, FailureKind::Unavailable);
        let invalid = r#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}"#;
        let (_, result) = run_stream(stream_chat(json!({})), &[invalid]);
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Rejected);
        assert_eq!(failure.code.as_deref(), Some("INVALID_ARGUMENT"));
        let (_, garbage) = run_stream(stream_chat(json!({})), &["not json"]);
        assert_eq!(garbage.unwrap_err().kind, FailureKind::Stream);
    }

    /// What Gemini writes when a stream fails after it started: the error object, bare and
    /// pretty-printed, where a `data:` line belongs.
    const BARE_ERROR: &str = "{\r\n  \"error\": {\r\n    \"code\": 500,\r\n    \"message\": \"Internal error encountered.\",\r\n    \"status\": \"INTERNAL\"\r\n  }\r\n}\r\n";

    #[test]
    fn bare_error_objects_mid_stream_are_classified_failures() {
        let wire = format!("data: {}\r\n\r\n{BARE_ERROR}", TEXT_STREAM[0]);
        let bare = with_chat(&stream_chat(json!({})), |chat| {
            Gemini.stream(chat, &target()).reads_bare_json()
        });
        let mut decoder = SseDecoder::new(1 << 20).with_bare_json(bare);
        decoder.push(wire.as_bytes());
        let mut events = Vec::new();
        while let Some(event) = decoder.next_event().unwrap() {
            events.push(event);
        }
        events.extend(decoder.finish());
        let events: Vec<&str> = events
            .iter()
            .map(|e| std::str::from_utf8(&e.data).unwrap())
            .collect();
        let (payloads, result) = run_stream(stream_chat(json!({})), &events);
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Unavailable);
        assert!(
            failure
                .message
                .contains("mid-answer: HTTP 500: Internal error encountered."),
            "{}",
            failure.message
        );
        assert_eq!(
            payloads.len(),
            2,
            "the text before the error went out: {payloads:?}"
        );
        let quota = "{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"Resource exhausted.\",\n    \"status\": \"RESOURCE_EXHAUSTED\"\n  }\n}";
        let (_, result) = run_stream(stream_chat(json!({})), &[TEXT_STREAM[0], quota]);
        assert_eq!(result.unwrap_err().kind, FailureKind::RateLimited);
    }

    #[test]
    fn blocked_prompt_stream_finishes_with_content_filter() {
        let (payloads, result) = run_stream(
            stream_chat(json!({})),
            &[
                r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3,"totalTokenCount":3},"responseId":"b"}"#,
            ],
        );
        result.unwrap();
        let chunks = parsed(&payloads);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn stream_choices_follow_candidate_indexes_within_n() {
        let events = [
            r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"index":0},{"content":{"parts":[{"text":"b"}]},"index":1}],"responseId":"m"}"#,
            r#"{"candidates":[{"content":{"parts":[]},"finishReason":"STOP","index":0},{"finishReason":"MAX_TOKENS","index":1}],"responseId":"m"}"#,
        ];
        let (payloads, result) = run_stream(stream_chat(json!({"n": 2})), &events);
        result.unwrap();
        let finishes: Vec<(u64, String)> = parsed(&payloads)
            .iter()
            .filter(|c| !c["choices"][0]["finish_reason"].is_null())
            .map(|c| {
                (
                    c["choices"][0]["index"].as_u64().unwrap(),
                    c["choices"][0]["finish_reason"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        assert_eq!(finishes, [(0, "stop".to_owned()), (1, "length".to_owned())]);
        let (_, beyond) = run_stream(stream_chat(json!({})), &[events[0]]);
        assert_eq!(beyond.unwrap_err().kind, FailureKind::Stream);
    }

    // --- thought signatures ---

    #[test]
    fn thought_signatures_round_trip_through_tool_call_ids() {
        let signature = "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pk=";
        let (body, _) = answer(json!({
            "candidates": [{"content": {"parts": [
                {"functionCall": {"name": "a", "args": {"x": 1}, "id": "gem_id-1"}, "thoughtSignature": signature},
                {"functionCall": {"name": "b", "args": {}}}
            ]}, "finishReason": "STOP"}],
            "responseId": "turn-1"
        }))
        .unwrap();
        let calls = body["choices"][0]["message"]["tool_calls"].clone();
        for call in calls.as_array().unwrap() {
            let id = call["id"].as_str().unwrap();
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{id}"
            );
        }
        let history = json!([
            user("go"),
            {"role": "assistant", "content": null, "tool_calls": calls},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "1"},
            {"role": "tool", "tool_call_id": calls[1]["id"], "content": "2"}
        ]);
        let next = request(chat_body(history, json!({})));
        assert_eq!(
            next["contents"][1]["parts"],
            json!([
                {"functionCall": {"name": "a", "args": {"x": 1}, "id": "gem_id-1"}, "thoughtSignature": signature},
                {"functionCall": {"name": "b", "args": {}}}
            ])
        );
        assert_eq!(
            next["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "a", "response": {"result": "1"}, "id": "gem_id-1"}},
                {"functionResponse": {"name": "b", "response": {"result": "2"}}}
            ])
        );
    }

    #[test]
    fn signatures_ride_on_extra_content_and_come_back_from_it() {
        let (body, _) = answer(json!({
            "candidates": [{"content": {"parts": [
                {"text": "Checking.", "thoughtSignature": "dGV4dA=="},
                {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "Y2FsbA=="}
            ]}, "finishReason": "STOP"}],
            "responseId": "turn-2"
        }))
        .unwrap();
        let message = &body["choices"][0]["message"];
        assert_eq!(
            message["extra_content"],
            json!({"google": {"thought_signature": "dGV4dA=="}})
        );
        let call = &message["tool_calls"][0];
        assert_eq!(
            call["extra_content"],
            json!({"google": {"thought_signature": "Y2FsbA=="}})
        );

        // The client's extra_content wins over the id; the text signature goes on the text.
        let history = json!([
            user("go"),
            {"role": "assistant", "content": "Checking.",
                "extra_content": {"google": {"thought_signature": "dGV4dA=="}},
                "tool_calls": [{"id": call["id"], "type": "function", "function": call["function"],
                    "extra_content": {"google": {"thought_signature": "b3RoZXI="}}}]},
            {"role": "tool", "tool_call_id": call["id"], "content": "ok"}
        ]);
        let next = request(chat_body(history, json!({})));
        assert_eq!(
            next["contents"][1]["parts"],
            json!([
                {"text": "Checking.", "thoughtSignature": "dGV4dA=="},
                {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "b3RoZXI="}
            ])
        );
    }

    #[test]
    fn stream_signatures_arrive_as_extra_content() {
        let (payloads, result) = run_stream(
            stream_chat(json!({})),
            &[
                r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}},"thoughtSignature":"Y2FsbA=="}]}}],"responseId":"s"}"#,
                r#"{"candidates":[{"content":{"parts":[{"text":"","thoughtSignature":"dGV4dA=="}]},"finishReason":"STOP"}],"responseId":"s"}"#,
            ],
        );
        result.unwrap();
        let chunks = parsed(&payloads);
        let call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            call["extra_content"],
            json!({"google": {"thought_signature": "Y2FsbA=="}})
        );
        assert_eq!(
            chunks[2]["choices"][0]["delta"],
            json!({"extra_content": {"google": {"thought_signature": "dGV4dA=="}}})
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn thinking_per_model_family() {
        let config = |model: &str, extra: Value| {
            let target = target_with("https://x", model, None);
            request_with(chat_body(json!([user("hi")]), extra), &target)
                .map(|body| body["generationConfig"]["thinkingConfig"].clone())
        };
        let effort = |e: &str| json!({"reasoning_effort": e});
        let cases = [
            (
                "gemini-3-flash-preview",
                "minimal",
                json!({"thinkingLevel": "minimal"}),
            ),
            (
                "gemini-3-flash-preview",
                "medium",
                json!({"thinkingLevel": "medium"}),
            ),
            (
                "gemini-3-flash-preview",
                "xhigh",
                json!({"thinkingLevel": "high"}),
            ),
            (
                "gemini-3-pro-preview",
                "minimal",
                json!({"thinkingLevel": "low"}),
            ),
            (
                "gemini-3-pro-preview",
                "medium",
                json!({"thinkingLevel": "high"}),
            ),
            (
                "gemini-3.1-pro-preview",
                "medium",
                json!({"thinkingLevel": "medium"}),
            ),
            (
                "models/gemini-2.5-pro",
                "minimal",
                json!({"thinkingBudget": 512}),
            ),
            ("gemini-2.5-flash", "none", json!({"thinkingBudget": 0})),
            ("gemini-2.5-flash", "low", json!({"thinkingBudget": 1024})),
            ("gemini-2.5-flash", "high", json!({"thinkingBudget": 24576})),
        ];
        for (model, level, expected) in cases {
            assert_eq!(
                config(model, effort(level)).unwrap(),
                expected,
                "{model} {level}"
            );
        }
        for model in [
            "gemini-2.5-pro",
            "gemini-3-flash-preview",
            "gemini-3-pro-preview",
        ] {
            let error = config(model, effort("none")).unwrap_err();
            assert_eq!(error["param"], "reasoning_effort", "{model}");
        }
        assert_eq!(
            config(
                "gemini-3-flash-preview",
                json!({"reasoning_effort": "low", "include_reasoning": true})
            )
            .unwrap(),
            json!({"thinkingLevel": "low", "includeThoughts": true})
        );
        assert_eq!(
            config("gemini-2.5-flash", json!({"include_reasoning": true})).unwrap(),
            json!({"includeThoughts": true})
        );
        assert!(
            config("gemini-2.5-flash", json!({"include_reasoning": false}))
                .unwrap()
                .is_null()
        );
    }

    #[test]
    fn tool_result_media_and_user_files() {
        let history = |model_turn: Value| {
            json!([
                user("look"),
                model_turn,
                {"role": "tool", "tool_call_id": "c1", "content": [
                    {"type": "text", "text": "two files"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
                ]}
            ])
        };
        let call = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]});
        let older = request(chat_body(history(call.clone()), json!({})));
        assert_eq!(
            older["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "shot", "response": {"result": "two files"}}},
                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}
            ])
        );
        let three = target_with("https://x", "gemini-3-flash-preview", None);
        let newer = request_with(chat_body(history(call), json!({})), &three).unwrap();
        assert_eq!(
            newer["contents"][2]["parts"],
            json!([{"functionResponse": {"name": "shot", "response": {"result": "two files"}, "parts": [
                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}
            ]}}])
        );

        let file = request(chat_body(
            json!([{"role": "user", "content": [{"type": "text", "text": "sum up"},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}}]}]),
            json!({}),
        ));
        assert_eq!(
            file["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}})
        );
        let by_id = request_error(chat_body(
            json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]),
            json!({}),
        ));
        assert_eq!(by_id["param"], "messages[0].content[0].file.file_data");
        assert!(
            by_id["message"].as_str().unwrap().contains("file_id"),
            "{by_id}"
        );
    }

    #[test]
    fn call_ids_encode_and_decode() {
        let cases: [(Option<&str>, Option<&str>); 5] = [
            (None, None),
            (Some("abc"), None),
            (Some("with_underscore_9_x"), Some("AAAA")),
            (Some("üñí ©ode"), Some("a+b/cw==")),
            (None, Some("-_-_AB")),
        ];
        for (gemini_id, signature) in cases {
            let id = CallId::encode(gemini_id, "0123456789abcdef", signature);
            let decoded = CallId::decode(&id).unwrap();
            assert_eq!(decoded.gemini_id, gemini_id, "{id}");
            assert_eq!(decoded.signature.is_some(), signature.is_some(), "{id}");
        }
        assert_eq!(
            CallId::decode(&CallId::encode(None, "0123456789abcdef", Some("a+b/cw==")))
                .unwrap()
                .signature()
                .unwrap(),
            "a+b/cw=="
        );
        assert_eq!(CallId::encode(None, "0123456789abcdef", None).len(), 26);
        // A signature that is not base64 cannot travel; the id still works without it.
        let plain = CallId::encode(None, "0123456789abcdef", Some("not base64!"));
        assert_eq!(CallId::decode(&plain).unwrap().signature, None);
        for foreign in [
            "call_abc123",
            "toolu_01A",
            "call_gx3_abc",
            "call_gi99_short",
            "call_gi3_abc_",
            "call_gi3_abc_!!",
            "call_gi_x",
            "",
            "call_gr0_",
        ] {
            assert_eq!(CallId::decode(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn first_unsigned_call_of_a_turn_gets_the_sentinel() {
        let ours = CallId::encode(None, "0123456789abcdef", None);
        let body = request(chat_body(
            json!([user("go"), {"role": "assistant", "tool_calls": [
                {"id": ours, "type": "function", "function": {"name": "a", "arguments": "{}"}}
            ]}, {"role": "tool", "tool_call_id": ours, "content": "ok"}]),
            json!({}),
        ));
        assert_eq!(
            body["contents"][1]["parts"][0]["thoughtSignature"],
            SKIP_SIGNATURE
        );
        assert!(
            body["contents"][2]["parts"][0]["functionResponse"]
                .get("id")
                .is_none()
        );
    }

    // --- failures ---

    /// Classifies an error answer.
    fn failure(status: u16, headers: &[(&'static str, &str)], body: &str) -> UpstreamFailure {
        let headers: HeaderMap = headers
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect();
        Gemini.failure(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
        )
    }

    /// Gemini's answer to a bad key; the message quotes the key, which must never leak.
    const KEY_INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key. key=AIzaSyLEAK","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;

    /// A 429 with a QuotaFailure naming `quota_id` and a RetryInfo of `delay`.
    fn quota(quota_id: &str, delay: &str) -> String {
        format!(
            r#"{{"error":{{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"{quota_id}","quotaValue":"10"}}]}},{{"@type":"type.googleapis.com/google.rpc.Help","links":[]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
        )
    }

    #[test]
    fn failures_are_classified_by_reason() {
        let key = failure(400, &[], KEY_INVALID);
        assert_eq!(key.kind, FailureKind::Account);
        assert!(!key.message.contains("AIza"));
        let wrapped = failure(400, &[], &format!("[{KEY_INVALID}]"));
        assert_eq!(wrapped.kind, FailureKind::Account);
        let per_day = failure(
            429,
            &[],
            &quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "37s"),
        );
        assert_eq!(per_day.kind, FailureKind::Account);
        let per_minute = failure(
            429,
            &[],
            &quota(
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "37s",
            ),
        );
        assert_eq!(per_minute.kind, FailureKind::RateLimited);
        assert_eq!(per_minute.retry_after, Some(Duration::from_secs(37)));
        assert!(
            per_minute.per_model,
            "a PerModel quota cools only the model"
        );
        let per_project = failure(
            429,
            &[],
            &quota("GenerateRequestsPerMinutePerProject", "5s"),
        );
        assert!(!per_project.per_model);
        let fractional = failure(429, &[], &quota("PerMinute", "1.5s"));
        assert_eq!(fractional.retry_after, Some(Duration::from_millis(1500)));
        let header_wins = failure(429, &[("retry-after", "5")], &quota("PerMinute", "37s"));
        assert_eq!(header_wins.retry_after, Some(Duration::from_secs(5)));
        let cases = [
            (
                400,
                r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
                FailureKind::Account,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#,
                FailureKind::Account,
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"models/gemini-9 is not found","status":"NOT_FOUND"}}"#,
                FailureKind::Unavailable,
            ),
            (
                500,
                r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#,
                FailureKind::Unavailable,
            ),
            (
                503,
                r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
                FailureKind::Unavailable,
            ),
            (
                504,
                r#"{"error":{"code":504,"message":"Deadline expired.","status":"DEADLINE_EXCEEDED"}}"#,
                FailureKind::Unavailable,
            ),
            (
                429,
                r#"[{"error":{"code":429,"message":"slow","status":"RESOURCE_EXHAUSTED"}}]"#,
                FailureKind::RateLimited,
            ),
            (502, "<html>bad gateway</html>", FailureKind::Unavailable),
            (400, "", FailureKind::Rejected),
        ];
        for (status, body, kind) in cases {
            assert_eq!(failure(status, &[], body).kind, kind, "{status} {body}");
        }
        let rejected = failure(
            400,
            &[],
            r#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(rejected.kind, FailureKind::Rejected);
        assert_eq!(
            rejected.message,
            "* GenerateContentRequest.contents: contents is not specified"
        );
        assert_eq!(rejected.code.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(rejected.status, Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn durations_parse_like_protobuf() {
        assert_eq!(parse_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(parse_duration("0.25s"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("37"), None);
        assert_eq!(parse_duration("NaNs"), None);
    }

    #[test]
    fn compact_json_keeps_strings() {
        assert_eq!(
            compact_json("{ \"a\" : [1, 2],\n \"b\": \"x \\\" y\" }"),
            r#"{"a":[1,2],"b":"x \" y"}"#
        );
    }

    // --- never panic ---

    /// xorshift64*: a small deterministic generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        /// The next 64 pseudo-random bits.
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number in `0..n`.
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// True `percent` times in a hundred.
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        /// One of `items`.
        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize].clone()
        }

        /// A short string of awkward pieces (escapes, multi-byte, id look-alikes).
        fn text(&mut self) -> String {
            let pieces = [
                "",
                "a",
                "é",
                "\"",
                "\\",
                "\n",
                "{",
                "}",
                "😀",
                " ",
                "call_gi3_",
                "=",
                "+/",
            ];
            (0..self.below(6)).map(|_| self.pick(&pieces)).collect()
        }

        /// Any JSON value, nesting at most a few levels.
        fn value(&mut self, depth: u32) -> Value {
            match self.below(if depth > 2 { 5 } else { 7 }) {
                0 => Value::Null,
                1 => json!(self.chance(50)),
                2 => json!(self.next() as i64 % 1000),
                3 => json!(f64::from(self.below(500) as u32) / 7.0),
                4 => json!(self.text()),
                5 => Value::Array((0..self.below(3)).map(|_| self.value(depth + 1)).collect()),
                _ => {
                    let mut map = serde_json::Map::new();
                    for _ in 0..self.below(3) {
                        map.insert(self.text(), self.value(depth + 1));
                    }
                    Value::Object(map)
                }
            }
        }
    }

    /// Finish reasons the generator draws from, odd ones included.
    const REASONS: [&str; 9] = [
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "MALFORMED_FUNCTION_CALL",
        "OTHER",
        "RECITATION",
        "TOO_MANY_TOOL_CALLS",
        "",
        "WHATEVER",
    ];

    /// A response part of any kind, sometimes not a part at all.
    fn random_part(rng: &mut Rng) -> Value {
        let mut part = match rng.below(4) {
            0 | 1 => json!({"text": rng.text()}),
            2 => json!({"text": rng.text(), "thought": rng.chance(70)}),
            _ => {
                let mut call = json!({"name": rng.text(), "args": rng.value(0)});
                if rng.chance(40) {
                    call["id"] = json!(rng.text());
                }
                json!({"functionCall": call})
            }
        };
        if rng.chance(30) {
            part["thoughtSignature"] = json!(rng.pick(&["AbC+/d==", "x", "", "!!", "QUJD"]));
        }
        if rng.chance(5) {
            part = rng.value(0);
        }
        part
    }

    /// A stream chunk: mostly well-formed, sometimes garbage or cut in half.
    fn random_chunk(rng: &mut Rng) -> String {
        if rng.chance(8) {
            let garbage: Vec<u8> = (0..rng.below(40)).map(|_| rng.below(256) as u8).collect();
            return String::from_utf8_lossy(&garbage).into_owned();
        }
        let mut chunk = json!({});
        if rng.chance(90) {
            let candidates: Vec<Value> = (0..rng.below(3))
                .map(|_| {
                    let mut candidate = json!({"content": {"parts": (0..rng.below(4)).map(|_| random_part(rng)).collect::<Vec<_>>()}});
                    if rng.chance(70) {
                        candidate["index"] = json!(rng.below(3));
                    }
                    if rng.chance(45) {
                        candidate["finishReason"] = json!(rng.pick(&REASONS));
                    }
                    candidate
                })
                .collect();
            chunk["candidates"] = json!(candidates);
        }
        if rng.chance(40) {
            chunk["usageMetadata"] = json!({"promptTokenCount": rng.pick(&[0, 7, u64::MAX]),
                "candidatesTokenCount": rng.pick(&[1, u64::MAX]), "thoughtsTokenCount": rng.below(9)});
        }
        if rng.chance(5) {
            chunk["promptFeedback"] = json!({"blockReason": "SAFETY"});
        }
        if rng.chance(3) {
            chunk["error"] = json!({"code": rng.pick(&[json!(429), json!(400), json!("x"), json!(99999)]), "message": rng.text(), "status": "X"});
        }
        if rng.chance(80) {
            chunk["responseId"] = json!(rng.text());
        }
        let text = chunk.to_string();
        if rng.chance(5) {
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_owned();
        }
        text
    }

    #[test]
    fn random_event_sequences_never_panic_and_frames_stay_valid() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut clean = 0;
        for round in 0..3000 {
            let n = rng.below(4);
            let include_usage = rng.chance(50);
            let single = rng.chance(30);
            let chat = stream_chat(json!({"n": n.max(1), "parallel_tool_calls": !single,
                "stream_options": {"include_usage": include_usage}}));
            let events: Vec<String> = (0..rng.below(8)).map(|_| random_chunk(&mut rng)).collect();
            let refs: Vec<&str> = events.iter().map(String::as_str).collect();
            let (payloads, result) = run_stream(chat, &refs);
            // Per choice index: whether its role went out, and whether it finished.
            let mut seen: HashMap<u64, (bool, bool)> = HashMap::new();
            for payload in &payloads {
                if payload != "[DONE]" {
                    let chunk: Value = serde_json::from_str(payload)
                        .unwrap_or_else(|e| panic!("round {round}: {e}: {payload}"));
                    if let Some(choice) = chunk["choices"].get(0) {
                        let index = choice["index"].as_u64().unwrap();
                        let (started, finished) = seen.entry(index).or_default();
                        assert!(
                            !*finished,
                            "round {round}: a chunk after the finish: {payload}"
                        );
                        let role = !choice["delta"]["role"].is_null();
                        assert_eq!(role, !*started, "round {round}: role not first: {payload}");
                        *started = true;
                        *finished = !choice["finish_reason"].is_null();
                    }
                    for call in chunk["choices"][0]["delta"]["tool_calls"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let id = call["id"].as_str().unwrap();
                        assert!(CallId::decode(id).is_some(), "round {round}: {id}");
                        let arguments = call["function"]["arguments"].as_str().unwrap();
                        serde_json::from_str::<Value>(arguments).unwrap();
                    }
                }
            }
            let done = payloads.iter().filter(|p| *p == "[DONE]").count();
            assert_eq!(done, usize::from(result.is_ok()), "round {round}");
            if result.is_ok() {
                assert_eq!(payloads.last().unwrap(), "[DONE]");
                clean += 1;
            }
        }
        assert!(clean > 150, "only {clean} streams finished cleanly");
    }

    /// Message content; `hostile` also draws parts the adapter must refuse.
    fn random_content(rng: &mut Rng, hostile: bool) -> Value {
        if rng.chance(50) {
            return json!(rng.text());
        }
        let kinds = if hostile { 7 } else { 3 };
        let parts: Vec<Value> = (0..rng.below(4))
            .map(|_| match rng.below(kinds) {
                0 | 1 => json!({"type": "text", "text": rng.text()}),
                2 => json!({"type": "image_url", "image_url": {"url": rng.pick(&["data:image/png;base64,AAAA", "https://generativelanguage.googleapis.com/v1beta/files/f"])}}),
                3 => json!({"type": "image_url", "image_url": {"url": rng.pick(&["https://x/y.png", "data:,", "data:;base64,", ""])}}),
                4 => json!({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}),
                5 => json!({"type": "text"}),
                _ => json!({"type": "image_url"}),
            })
            .collect();
        json!(parts)
    }

    /// One message of `role`; tool results answer an earlier id unless `hostile`.
    fn random_message(rng: &mut Rng, ids: &mut Vec<String>, hostile: bool) -> Value {
        let roles = ["system", "developer", "user", "assistant", "tool"];
        let mut role = rng.pick(&roles);
        if role == "tool" && ids.is_empty() && !hostile {
            role = "user";
        }
        let mut message = json!({"role": role, "content": random_content(rng, hostile)});
        if role == "assistant" && rng.chance(60) {
            let calls: Vec<Value> = (0..rng.below(3))
                .map(|_| {
                    let random = format!("id{}", rng.text());
                    let ours = CallId::encode(Some("g1"), "0123456789abcdef", Some("AbC+"));
                    let id = rng.pick(&["call_x".to_owned(), ours, random]);
                    ids.push(id.clone());
                    let valid = ["{\"a\":1}", "", " {} "];
                    let all = ["{\"a\":1}", "", "[1]", "{", "null", " {} "];
                    let arguments = rng.pick(if hostile { &all[..] } else { &valid[..] });
                    json!({"id": id, "type": "function", "function": {"name": rng.text(), "arguments": arguments}})
                })
                .collect();
            message["tool_calls"] = json!(calls);
            if rng.chance(50) {
                message["content"] = Value::Null;
            }
        }
        if role == "tool" {
            let id = if ids.is_empty() || (hostile && rng.chance(30)) {
                rng.text()
            } else {
                rng.pick(ids)
            };
            message["tool_call_id"] = json!(id);
        }
        message
    }

    /// A chat request; 30% are hostile (types and values the adapter must refuse).
    fn random_request(rng: &mut Rng, ids: &mut Vec<String>) -> Value {
        let hostile = rng.chance(30);
        let mut messages = vec![json!({"role": "user", "content": "start"})];
        for _ in 0..rng.below(6) {
            messages.push(random_message(rng, ids, hostile));
        }
        let mut body = json!({"model": "m", "messages": messages});
        let schema = if hostile {
            rng.value(0)
        } else {
            json!({"type": "object", "properties": {"a": {"type": "string"}}})
        };
        let optional: [(&str, Value); 14] = [
            ("temperature", json!(rng.below(30) as f64 / 10.0)),
            ("stop", json!((0..rng.below(if hostile { 8 } else { 5 })).map(|_| rng.text()).collect::<Vec<_>>())),
            ("n", json!(rng.below(4))),
            ("seed", json!(if hostile { rng.next() as i64 } else { rng.below(1000) as i64 })),
            ("max_tokens", json!(rng.below(100))),
            ("tools", json!([{"type": if hostile { rng.pick(&["function", "custom"]) } else { "function" }, "function": {"name": "a", "parameters": schema}}])),
            ("tool_choice", rng.pick(&[json!("auto"), json!("required"), json!({"type": "function", "function": {"name": "a"}}), json!(5), json!({"type": "x"})])),
            ("response_format", rng.pick(&[json!({"type": "json_object"}), json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}), json!({"type": 1}), json!("text")])),
            ("logprobs", if hostile { rng.value(2) } else { json!(false) }),
            ("reasoning_effort", rng.pick(&[json!("low"), json!("max"), json!(3), json!("nope")])),
            ("logit_bias", if hostile { rng.value(2) } else { json!({}) }),
            ("parallel_tool_calls", json!(rng.chance(50))),
            ("modalities", if hostile { rng.value(2) } else { json!(["text"]) }),
            ("stream", json!(rng.chance(50))),
        ];
        let rate = if hostile { 25 } else { 10 };
        for (key, value) in optional {
            if rng.chance(rate) {
                body[key] = value;
            }
        }
        body
    }

    #[test]
    fn random_requests_never_panic() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let target = target();
        let mut translated = 0;
        for _ in 0..3000 {
            let mut ids = Vec::new();
            let body = random_request(&mut rng, &mut ids);
            let raw = serde_json::to_vec(&body).unwrap();
            let Ok(chat) = ChatRequest::parse(&raw) else {
                continue;
            };
            match Gemini.request(&chat, &target) {
                Ok(request) => {
                    let sent: Value = serde_json::from_slice(&request.body).unwrap();
                    assert!(!sent["contents"].as_array().unwrap().is_empty());
                    translated += 1;
                }
                Err(error) => {
                    let _: Value = serde_json::from_slice(&error.body()).unwrap();
                    assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
                }
            }
        }
        assert!(
            translated > 1000,
            "only {translated} requests were translated"
        );
    }

    #[test]
    fn random_bodies_never_panic_response_or_failure() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for _ in 0..2000 {
            let body = if rng.chance(50) {
                random_chunk(&mut rng)
            } else {
                rng.value(0).to_string()
            };
            let _ = answer_with(
                chat_body(json!([user("hi")]), json!({"n": 3})),
                serde_json::from_str(&body).unwrap_or(Value::Null),
            );
            with_chat(&chat_body(json!([user("hi")]), json!({})), |chat| {
                let _ = Gemini.response(chat, &target(), Bytes::from(body.clone()));
            });
            let status = rng.pick(&[400, 401, 403, 404, 408, 429, 500, 503, 504, 529]);
            let _ = failure(status, &[], &body);
        }
    }
}
