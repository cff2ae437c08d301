//! The request: the OpenAI chat rebuilt as a `GenerateContentRequest` (reference 3.2, 7.1),
//! and the endpoint and headers it goes to.

use std::borrow::Cow;
use std::collections::HashMap;

use http::{HeaderMap, HeaderName};
use serde::Serialize;
use serde_json::value::RawValue;

use super::call_id::CallId;
use super::schema;
use crate::config::Target;
use crate::error::ApiError;
use crate::openai::{
    ChatRequest, Content, ExtraContent, FilePart, MediaSource, Message, Part as OpenAiPart,
    ReasoningEffort, ResponseFormat, Role, Stop, ToolChoice,
};
use crate::providers::capabilities::unsupported_part;
use crate::providers::{add_api_key, json_headers};

/// `/v1beta/models/{model}:generateContent`, or the SSE stream variant.
///
/// A `base_url` that already ends in an API version (`.../v1beta`) is used as is, so both the
/// documented host-only form and a copied versioned URL work.
pub(super) fn path(target: &Target, stream: bool) -> String {
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
pub(super) fn model_resource(model: &str) -> String {
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
pub(super) fn headers(target: &Target, stream: bool) -> Result<HeaderMap, ApiError> {
    let mut headers = json_headers(stream);
    add_api_key(
        &mut headers,
        target,
        HeaderName::from_static("x-goog-api-key"),
        "",
    )?;
    Ok(headers)
}

/// `GenerateContentRequest`, the body of both endpoints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContent<'c> {
    /// System and developer messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) system_instruction: Option<Instruction<'c>>,
    /// The conversation, in `user`/`model` turns.
    pub(super) contents: Vec<Turn<'c>>,
    /// Function declarations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<ToolDecl<'c>>,
    /// How the model may call functions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_config: Option<ToolConfig<'c>>,
    /// Sampling and output settings.
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub(super) generation_config: GenerationConfig<'c>,
}

/// `systemInstruction`: a content without a role.
#[derive(Debug, Serialize)]
pub(super) struct Instruction<'c> {
    /// Text parts only.
    pub(super) parts: Vec<Part<'c>>,
}

/// One `contents[]` entry.
#[derive(Debug, Serialize)]
pub(super) struct Turn<'c> {
    /// `user` or `model`.
    pub(super) role: &'static str,
    /// Never empty: Gemini refuses empty turns.
    pub(super) parts: Vec<Part<'c>>,
}

/// The role of client text, images and function results.
pub(super) const USER: &str = "user";
/// The role of assistant text and function calls.
pub(super) const MODEL: &str = "model";

/// One part: its data plus the optional signature Gemini 3 wants echoed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part<'c> {
    /// What the part holds; serialised as its one camelCase key (`text`, `inlineData`, ...).
    #[serde(flatten)]
    pub(super) data: PartData<'c>,
    /// The opaque signature of the model's thinking that produced this part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thought_signature: Option<Cow<'c, str>>,
}

/// The data of a request part.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum PartData<'c> {
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
pub(super) struct Blob<'c> {
    /// E.g. `image/png`.
    pub(super) mime_type: &'c str,
    /// Standard base64, as the client sent it.
    pub(super) data: &'c str,
}

/// `fileData`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileData<'c> {
    /// A `https://generativelanguage.googleapis.com/.../files/...` URI.
    pub(super) file_uri: &'c str,
}

/// `functionCall` in a `model` turn.
#[derive(Debug, Serialize)]
pub(super) struct FunctionCallOut<'c> {
    /// The function name.
    pub(super) name: &'c str,
    /// The arguments: always a JSON object.
    pub(super) args: Box<RawValue>,
    /// Gemini's own call id, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'c str>,
}

/// `functionResponse` in a `user` turn.
#[derive(Debug, Serialize)]
pub(super) struct FunctionResponseOut<'c> {
    /// The function name, recovered from the assistant call the result answers.
    pub(super) name: &'c str,
    /// The result: always a JSON object.
    pub(super) response: ResponseValue<'c>,
    /// Gemini's call id, when the call had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'c str>,
    /// Gemini 3: images and PDFs the tool returned, inside the response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) parts: Vec<FunctionResponsePart<'c>>,
}

/// `functionResponse.parts[]`: media a tool returned (Gemini 3).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FunctionResponsePart<'c> {
    /// The bytes and their type.
    pub(super) inline_data: Blob<'c>,
}

/// A function result as Gemini wants it: an object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum ResponseValue<'c> {
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
pub(super) struct ToolDecl<'c> {
    /// Every function tool of the request.
    pub(super) function_declarations: Vec<FunctionDecl<'c>>,
}

/// One function declaration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FunctionDecl<'c> {
    /// The function name.
    pub(super) name: &'c str,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'c str>,
    /// The client's JSON Schema in the keywords Gemini accepts (see [`schema`]); the client's
    /// own bytes when it already fits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parameters_json_schema: Option<Cow<'c, RawValue>>,
}

/// `toolConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfig<'c> {
    /// The only setting the router uses.
    pub(super) function_calling_config: FunctionCallingConfig<'c>,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FunctionCallingConfig<'c> {
    /// `AUTO`, `NONE` or `ANY`.
    pub(super) mode: &'static str,
    /// With `ANY`: the one function a named `tool_choice` forces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_function_names: Vec<&'c str>,
}

/// `generationConfig`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerationConfig<'c> {
    /// 0 to 2, as OpenAI's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f64>,
    /// From `max_completion_tokens`, else `max_tokens`, else the model's configured default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_output_tokens: Option<u32>,
    /// At most five.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) stop_sequences: Vec<&'c str>,
    /// From `n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) candidate_count: Option<u32>,
    /// A 32-bit seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<i32>,
    /// -2 to 2, as OpenAI's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) presence_penalty: Option<f64>,
    /// -2 to 2, as OpenAI's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) frequency_penalty: Option<f64>,
    /// `application/json` for both JSON response formats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_mime_type: Option<&'static str>,
    /// The `json_schema` format's schema in the keywords Gemini accepts (see [`schema`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_json_schema: Option<Cow<'c, RawValue>>,
    /// From `reasoning_effort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    /// Whether nothing is set (the object is then left out).
    pub(super) fn is_empty(&self) -> bool {
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
pub(super) struct ThinkingConfig {
    /// Gemini 2.5: thinking tokens allowed (0 turns thinking off where the model allows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_budget: Option<u32>,
    /// Gemini 3: `minimal`, `low`, `medium` or `high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_level: Option<&'static str>,
    /// Whether thought summaries come back (as `reasoning_content`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) include_thoughts: Option<bool>,
}

/// `provider 'NAME' (Gemini)`, for the messages of 400s.
pub(super) fn provider(target: &Target) -> String {
    format!("provider '{}' (Gemini)", target.provider.name)
}

/// A 400 naming `param`.
pub(super) fn bad(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message, Some(param.into()))
}

/// The whole `GenerateContentRequest` for `chat`: a pure function of the request and target.
pub(super) fn build_request<'c>(
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
pub(super) struct Conversation<'c> {
    /// Parts of every system and developer message, in order.
    pub(super) system: Vec<Part<'c>>,
    /// The `user`/`model` turns, consecutive same-role messages merged.
    pub(super) turns: Vec<Turn<'c>>,
}

/// Translates the messages. Tool results get their function name from the assistant call with
/// the same id earlier in the conversation, since Gemini requires the name.
pub(super) fn conversation<'c>(
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
pub(super) fn push_turn<'c>(turns: &mut Vec<Turn<'c>>, role: &'static str, parts: Vec<Part<'c>>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => turns.push(Turn { role, parts }),
    }
}

/// A part without a signature.
pub(super) fn plain(data: PartData<'_>) -> Part<'_> {
    Part {
        data,
        thought_signature: None,
    }
}

/// Text-only content (system, developer and assistant messages). Empty text is left out:
/// Gemini refuses empty text parts.
pub(super) fn text_parts<'c>(
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
pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// A text part, unless the text is empty.
pub(super) fn text_part(text: &str) -> Option<Part<'_>> {
    (!text.is_empty()).then(|| plain(PartData::Text(Cow::Borrowed(text))))
}

/// A user message: text and images.
pub(super) fn user_parts<'c>(
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
pub(super) fn file_blob<'c>(
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
pub(super) fn image_part<'c>(
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
pub(super) fn is_gemini_file(url: &str) -> bool {
    url.strip_prefix("https://generativelanguage.googleapis.com/")
        .is_some_and(|rest| rest.contains("files/"))
}

/// An assistant message: its text, then one `functionCall` part per tool call.
pub(super) fn model_parts<'c>(
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
pub(super) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// A call's arguments as a JSON object; an empty string counts as `{}`.
pub(super) fn arguments(text: &str) -> Option<Box<RawValue>> {
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
pub(super) fn tool_result<'c>(
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
pub(super) fn tool_media<'c>(
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
pub(super) fn object(text: &str) -> Option<Box<RawValue>> {
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

/// The function declarations. Schemas go out as `parametersJsonSchema`, cut to what Gemini
/// accepts.
pub(super) fn tools<'c>(chat: &'c ChatRequest<'_>) -> Result<Vec<ToolDecl<'c>>, ApiError> {
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
pub(super) fn tool_config<'c>(
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
pub(super) const MAX_STOP_SEQUENCES: usize = 5;

/// `generationConfig` from the sampling, output and format fields.
pub(super) fn generation_config<'c>(
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
pub(super) fn stop_sequences<'c>(
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
pub(super) fn response_format<'c>(
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
pub(super) enum Family {
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
    pub(super) fn of(model: &str) -> Self {
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
    pub(super) fn can_turn_off(self) -> bool {
        self == Self::Budget
    }

    /// Whether the model is a Gemini 3 (which also reads media inside function responses).
    pub(super) fn is_gemini_3(self) -> bool {
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
pub(super) fn thinking_config(
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use http::Method;

    use crate::providers::Adapter;

    use http::header::CONTENT_TYPE;

    use crate::openai::ChatRequest;
    use crate::providers::gemini::Gemini;
    use crate::providers::gemini::fixtures::{
        chat_body, request, request_error, request_with, target, target_with, user, with_chat,
    };

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
}
