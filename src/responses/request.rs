//! A Responses request rewritten as a Chat Completions body, which the chat pipeline then
//! validates and serves. The rewrite is one parse and one write; every refusal is a 400 that
//! names the parameter.
//!
//! Input items become chat messages in order. An assistant turn in chat is one message, so
//! the assistant items of one turn are gathered into it: a `reasoning` item's readable text
//! (its `reasoning_text` content, else its summary) becomes the turn's `reasoning_content`,
//! an assistant `message` its content and each `function_call` one of its `tool_calls`. A
//! reasoning item with only `encrypted_content` is dropped: that blob is OpenAI's own and no
//! other provider can read it.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Echo;
use crate::error::ApiError;

/// A Responses request as a chat body, with what the answer echoes.
#[derive(Debug)]
pub struct Converted {
    /// The Chat Completions body the chat pipeline serves.
    pub body: Bytes,
    /// What the `response` object echoes back.
    pub echo: Echo,
}

/// The Chat Completions body of a Responses request body, or the 400 that says why not.
pub fn to_chat(raw: &[u8], created_at: u64) -> Result<Converted, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(raw);
    let request: Request<'_> = serde_path_to_error::deserialize(deserializer).map_err(invalid)?;
    request.refuse_stored_state()?;
    let messages = messages(&request)?;
    let text: Option<Text<'_>> = request
        .text_raw
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .map_err(|e| bad(format!("Invalid value for 'text': {e}"), "text"))?;
    let chat = ChatOut {
        model: request.model.as_deref(),
        messages,
        stream: request.stream,
        stream_options: request.stream.unwrap_or(false).then_some(StreamOptionsOut {
            include_usage: true,
        }),
        tools: request.tools.map(tools).transpose()?,
        tool_choice: request.tool_choice.map(tool_choice).transpose()?,
        parallel_tool_calls: request.parallel_tool_calls,
        max_completion_tokens: request.max_output_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        response_format: text
            .as_ref()
            .and_then(|text| text.format.as_ref())
            .map(response_format)
            .transpose()?,
        verbosity: text.as_ref().and_then(|text| text.verbosity),
        reasoning_effort: request.reasoning.as_ref().and_then(|r| r.effort),
        user: request.user.as_deref(),
        safety_identifier: request.safety_identifier.as_deref(),
    };
    let body = serde_json::to_vec(&chat)
        .map_err(|e| ApiError::Internal(format!("writing the chat body: {e}")))?;
    let mut echo = Echo {
        instructions: request.instructions.map(to_owned_raw),
        tools: request.tools.map(to_owned_raw),
        tool_choice: request.tool_choice.map(to_owned_raw),
        text: request.text_raw.map(to_owned_raw),
        metadata: request.metadata.map(to_owned_raw),
        temperature: request.temperature,
        top_p: request.top_p,
        max_output_tokens: request.max_output_tokens,
        parallel_tool_calls: request.parallel_tool_calls,
        reasoning_effort: request
            .reasoning
            .as_ref()
            .and_then(|r| r.effort)
            .map(str::to_owned),
        user: request.user.map(Cow::into_owned),
        model: request.model.map(Cow::into_owned).unwrap_or_default(),
        created_at,
        ..Echo::default()
    };
    echo.new_ids();
    Ok(Converted {
        body: Bytes::from(body),
        echo,
    })
}

fn to_owned_raw(raw: &RawValue) -> Box<RawValue> {
    raw.to_owned()
}

fn invalid(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::bad_request(
            format!("We could not parse the JSON body of your request: {inner}"),
            None,
        );
    }
    let param = (path != ".").then_some(path);
    ApiError::bad_request(
        format!(
            "Invalid value for '{}': {inner}",
            param.as_deref().unwrap_or("body")
        ),
        param,
    )
}

fn bad(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::bad_request(message, Some(param.to_owned()))
}

/// A stored-state feature, refused with its own code.
fn stateless(param: &str, what: &str) -> ApiError {
    ApiError::BadRequest {
        message: format!(
            "'{param}' is not supported: switchboard does not store responses ({what}). \
             Send the whole conversation as 'input' items instead: the earlier input, then the \
             earlier response's 'output' items, then the new input."
        ),
        param: Some(param.to_owned()),
        code: "stored_responses_not_supported",
    }
}

/// A Responses request, the members the router reads; the rest (`store` among them: nothing
/// is stored whatever it says) are ignored.
#[derive(Debug, Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<Input<'a>>,
    #[serde(borrow, default)]
    instructions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_choice: Option<&'a RawValue>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(borrow, default, rename = "text")]
    text_raw: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<Reasoning<'a>>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    safety_identifier: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    conversation: Option<&'a RawValue>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(borrow, default)]
    prompt: Option<&'a RawValue>,
}

/// `text`: the output format and verbosity.
#[derive(Debug, Deserialize)]
struct Text<'a> {
    #[serde(borrow, default)]
    format: Option<Format<'a>>,
    #[serde(borrow, default)]
    verbosity: Option<&'a str>,
}

/// `text.format`.
#[derive(Debug, Deserialize)]
struct Format<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

/// `reasoning`: only `effort` has a chat counterpart; `summary` is ignored.
#[derive(Debug, Deserialize)]
struct Reasoning<'a> {
    #[serde(borrow, default)]
    effort: Option<&'a str>,
}

/// `input`: a user's text, or items.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Items(#[serde(borrow)] Vec<Item<'a>>),
}

/// One input item; which members count depends on `type` (absent means a message).
#[derive(Debug, Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Contents<'a>>,
    #[serde(borrow, default)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    output: Option<Contents<'a>>,
    #[serde(borrow, default)]
    summary: Option<Vec<InputPart<'a>>>,
}

/// A message's content or a call's output: text, or parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Contents<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<InputPart<'a>>),
}

/// One content part of an input item.
#[derive(Debug, Deserialize)]
struct InputPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    image_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    file_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    file_data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    file_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    filename: Option<Cow<'a, str>>,
}

/// A function tool in Responses' flat shape.
#[derive(Debug, Deserialize)]
struct ToolIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

/// An object `tool_choice`.
#[derive(Debug, Deserialize)]
struct ToolChoiceIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

impl<'a> Request<'a> {
    /// The 400 for anything that needs a stored response or a background run.
    fn refuse_stored_state(&self) -> Result<(), ApiError> {
        if is_given(self.previous_response_id) {
            return Err(stateless(
                "previous_response_id",
                "there is no earlier response to continue",
            ));
        }
        if is_given(self.conversation) {
            return Err(stateless(
                "conversation",
                "there are no stored conversations",
            ));
        }
        if self.background == Some(true) {
            return Err(stateless(
                "background",
                "a background response could never be fetched; leave 'background' out",
            ));
        }
        if is_given(self.prompt) {
            return Err(stateless(
                "prompt",
                "there are no stored prompt templates; send the prompt's text",
            ));
        }
        Ok(())
    }
}

fn is_given(value: Option<&RawValue>) -> bool {
    value.is_some_and(|value| value.get() != "null")
}

// === The chat body ===

#[derive(Serialize)]
struct ChatOut<'r, 'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'r str>,
    messages: Vec<MessageOut<'r, 'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptionsOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<ToolOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormatOut<'r, 'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verbosity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_identifier: Option<&'r str>,
}

#[derive(Serialize)]
struct StreamOptionsOut {
    include_usage: bool,
}

#[derive(Serialize, Default)]
struct MessageOut<'r, 'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentOut<'r, 'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'r str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'r, 'a> {
    Text(Cow<'r, str>),
    Parts(Vec<PartOut<'r>>),
    Raw(&'a RawValue),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartOut<'r> {
    Text { text: &'r str },
    ImageUrl { image_url: ImageUrlOut<'r> },
    File { file: FileOut<'r> },
}

#[derive(Serialize)]
struct ImageUrlOut<'r> {
    url: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'r str>,
}

#[derive(Serialize)]
struct FileOut<'r> {
    file_data: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'r str>,
}

#[derive(Serialize)]
struct ToolCallOut<'r> {
    id: &'r str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'r>,
}

#[derive(Serialize)]
struct FunctionOut<'r> {
    name: &'r str,
    arguments: &'r str,
}

#[derive(Serialize)]
struct ToolOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDefOut<'a>,
}

#[derive(Serialize)]
struct FunctionDefOut<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolChoiceOut<'a> {
    Mode(Cow<'a, str>),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NameOut<'a>,
    },
}

#[derive(Serialize)]
struct NameOut<'a> {
    name: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormatOut<'r, 'a> {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaOut<'r, 'a> },
}

#[derive(Serialize)]
struct JsonSchemaOut<'r, 'a> {
    name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

// === Conversions ===

/// The chat messages: `instructions` as the system message, then the input.
fn messages<'r, 'a>(request: &'r Request<'a>) -> Result<Vec<MessageOut<'r, 'a>>, ApiError> {
    let mut out = Vec::new();
    if let Some(instructions) = request.instructions.filter(|raw| raw.get() != "null") {
        out.push(MessageOut {
            role: "system",
            content: Some(instructions_content(instructions)?),
            ..MessageOut::default()
        });
    }
    match &request.input {
        None => return Err(bad("Missing required parameter: 'input'.", "input")),
        Some(Input::Text(text)) => out.push(MessageOut {
            role: "user",
            content: Some(ContentOut::Text(Cow::Borrowed(text))),
            ..MessageOut::default()
        }),
        Some(Input::Items(items)) => {
            let mut turn = Turn::default();
            for (index, item) in items.iter().enumerate() {
                item_messages(item, index, &mut turn, &mut out)?;
            }
            turn.flush(&mut out);
        }
    }
    if out.iter().all(|message| message.role == "system") {
        return Err(bad("'input' must contain at least one item.", "input"));
    }
    Ok(out)
}

/// `instructions`: a string (a list of items is a stored-prompt feature, refused).
fn instructions_content<'r, 'a>(raw: &'a RawValue) -> Result<ContentOut<'r, 'a>, ApiError> {
    if raw.get().starts_with('"') {
        return Ok(ContentOut::Raw(raw));
    }
    Err(bad("'instructions' must be a string.", "instructions"))
}

/// The assistant turn being gathered from consecutive assistant items.
#[derive(Default)]
struct Turn<'r> {
    reasoning: Option<String>,
    text: Option<Cow<'r, str>>,
    calls: Vec<ToolCallOut<'r>>,
}

impl<'r> Turn<'r> {
    fn is_empty(&self) -> bool {
        self.text.is_none() && self.calls.is_empty()
    }

    /// Ends the turn: an assistant message, unless it holds only reasoning (which chat
    /// cannot carry alone) or nothing.
    fn flush<'a>(&mut self, out: &mut Vec<MessageOut<'r, 'a>>) {
        let turn = std::mem::take(self);
        if turn.is_empty() {
            return;
        }
        out.push(MessageOut {
            role: "assistant",
            content: turn.text.map(ContentOut::Text),
            reasoning_content: turn.reasoning,
            tool_calls: turn.calls,
            ..MessageOut::default()
        });
    }
}

/// Adds `item` (the `index`th) to the conversation: to the assistant `turn` being gathered,
/// or as its own message after the turn.
fn item_messages<'r, 'a>(
    item: &'r Item<'a>,
    index: usize,
    turn: &mut Turn<'r>,
    out: &mut Vec<MessageOut<'r, 'a>>,
) -> Result<(), ApiError> {
    let param = |field: &str| format!("input[{index}].{field}");
    let kind = item.kind.as_deref().unwrap_or("message");
    match kind {
        "message" => {
            let Some(role) = item.role.as_deref() else {
                return Err(bad(
                    format!("Missing required parameter: '{}'.", param("role")),
                    &param("role"),
                ));
            };
            let role = match role {
                "user" => "user",
                "system" => "system",
                "developer" => "developer",
                "assistant" => {
                    if !turn.is_empty() {
                        turn.flush(out);
                    }
                    turn.text = Some(assistant_text(item, index)?);
                    return Ok(());
                }
                other => {
                    return Err(bad(
                        format!(
                            "Invalid value for '{}': '{other}'. Supported values are 'user', \
                             'assistant', 'system' and 'developer'.",
                            param("role")
                        ),
                        &param("role"),
                    ));
                }
            };
            turn.flush(out);
            out.push(MessageOut {
                role,
                content: Some(user_content(item.content.as_ref(), index, "content")?),
                ..MessageOut::default()
            });
        }
        "function_call" => {
            let (Some(call_id), Some(name)) = (item.call_id.as_deref(), item.name.as_deref())
            else {
                return Err(bad(
                    format!("'input[{index}]': a function_call item needs 'call_id' and 'name'."),
                    &param("call_id"),
                ));
            };
            turn.calls.push(ToolCallOut {
                id: call_id,
                kind: "function",
                function: FunctionOut {
                    name,
                    arguments: item.arguments.as_deref().unwrap_or("{}"),
                },
            });
        }
        "function_call_output" => {
            let Some(call_id) = item.call_id.as_deref() else {
                return Err(bad(
                    format!("Missing required parameter: '{}'.", param("call_id")),
                    &param("call_id"),
                ));
            };
            turn.flush(out);
            out.push(MessageOut {
                role: "tool",
                content: Some(ContentOut::Text(call_output(item, index)?)),
                tool_call_id: Some(call_id),
                ..MessageOut::default()
            });
        }
        "reasoning" => {
            if !turn.is_empty() {
                turn.flush(out);
            }
            if let Some(text) = reasoning_text(item) {
                let reasoning = turn.reasoning.get_or_insert_with(String::new);
                if !reasoning.is_empty() {
                    reasoning.push('\n');
                }
                reasoning.push_str(&text);
            }
        }
        "item_reference" => {
            return Err(stateless(
                &format!("input[{index}]"),
                "an 'item_reference' points at a stored item; send the item itself",
            ));
        }
        other => {
            return Err(bad(
                format!(
                    "Input items of type '{other}' are not supported: switchboard serves \
                     'message', 'function_call', 'function_call_output' and 'reasoning' items."
                ),
                &param("type"),
            ));
        }
    }
    Ok(())
}

/// A user, system or developer message's content as chat content.
fn user_content<'r, 'a>(
    content: Option<&'r Contents<'a>>,
    index: usize,
    field: &str,
) -> Result<ContentOut<'r, 'a>, ApiError> {
    let parts = match content {
        None => {
            return Err(bad(
                format!("Missing required parameter: 'input[{index}].{field}'."),
                &format!("input[{index}].{field}"),
            ));
        }
        Some(Contents::Text(text)) => return Ok(ContentOut::Text(Cow::Borrowed(text))),
        Some(Contents::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (at, part) in parts.iter().enumerate() {
        out.push(input_part(part, &format!("input[{index}].{field}[{at}]"))?);
    }
    Ok(ContentOut::Parts(out))
}

/// One input content part as a chat part.
fn input_part<'r>(part: &'r InputPart<'_>, param: &str) -> Result<PartOut<'r>, ApiError> {
    match (&*part.kind, part) {
        (
            "input_text" | "output_text",
            InputPart {
                text: Some(text), ..
            },
        ) => Ok(PartOut::Text { text }),
        (
            "input_image",
            InputPart {
                image_url: Some(url),
                ..
            },
        ) => Ok(PartOut::ImageUrl {
            image_url: ImageUrlOut {
                url,
                detail: part.detail.as_deref(),
            },
        }),
        (
            "input_file",
            InputPart {
                file_data: Some(data),
                ..
            },
        ) => Ok(PartOut::File {
            file: FileOut {
                file_data: data,
                filename: part.filename.as_deref(),
            },
        }),
        ("input_image" | "input_file", _) if part.file_id.is_some() || part.file_url.is_some() => {
            Err(bad(
                format!(
                    "'{param}': files by 'file_id' or 'file_url' are not supported (switchboard \
                     has no Files API); send the image as 'image_url' (an https or data: URL) \
                     or the file as 'file_data' (a base64 data: URL)."
                ),
                param,
            ))
        }
        (kind, _) => Err(bad(
            format!(
                "'{param}': content parts of type '{kind}' (with these members) are not \
                 supported; use 'input_text', 'input_image' with 'image_url', or 'input_file' \
                 with 'file_data'."
            ),
            param,
        )),
    }
}

/// An assistant message's text: its `output_text` parts joined (refusals included).
fn assistant_text<'r>(item: &'r Item<'_>, index: usize) -> Result<Cow<'r, str>, ApiError> {
    match &item.content {
        None => Ok(Cow::Borrowed("")),
        Some(Contents::Text(text)) => Ok(Cow::Borrowed(text)),
        Some(Contents::Parts(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (at, part) in parts.iter().enumerate() {
                match (&*part.kind, &part.text, &part.refusal) {
                    ("output_text" | "input_text", Some(text), _) => texts.push(&**text),
                    ("refusal", _, Some(refusal)) => texts.push(&**refusal),
                    (kind, _, _) => {
                        let param = format!("input[{index}].content[{at}]");
                        return Err(bad(
                            format!(
                                "'{param}': an assistant message's parts must be \
                                 'output_text' or 'refusal', not '{kind}'."
                            ),
                            &param,
                        ));
                    }
                }
            }
            Ok(match texts.as_slice() {
                [one] => Cow::Borrowed(*one),
                many => Cow::Owned(many.concat()),
            })
        }
    }
}

/// A function call's output as the tool message's text: the string, or its text parts.
fn call_output<'r>(item: &'r Item<'_>, index: usize) -> Result<Cow<'r, str>, ApiError> {
    match &item.output {
        None => Err(bad(
            format!("Missing required parameter: 'input[{index}].output'."),
            &format!("input[{index}].output"),
        )),
        Some(Contents::Text(text)) => Ok(Cow::Borrowed(text)),
        Some(Contents::Parts(parts)) => {
            let mut text = String::new();
            for (at, part) in parts.iter().enumerate() {
                let Some(part_text) = part.text.as_deref().filter(|_| part.kind == "input_text")
                else {
                    let param = format!("input[{index}].output[{at}]");
                    return Err(bad(
                        format!(
                            "'{param}': a function call's output can only hold text \
                             ('input_text' parts) through switchboard."
                        ),
                        &param,
                    ));
                };
                text.push_str(part_text);
            }
            Ok(Cow::Owned(text))
        }
    }
}

/// A reasoning item's readable text: its `reasoning_text` content, else its summary.
fn reasoning_text(item: &Item<'_>) -> Option<String> {
    let texts = |parts: &[InputPart<'_>], kind: &str| -> String {
        parts
            .iter()
            .filter(|part| part.kind == kind)
            .filter_map(|part| part.text.as_deref())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let content = match &item.content {
        Some(Contents::Parts(parts)) => texts(parts, "reasoning_text"),
        Some(Contents::Text(text)) => text.to_string(),
        None => String::new(),
    };
    if !content.is_empty() {
        return Some(content);
    }
    let summary = texts(item.summary.as_deref().unwrap_or_default(), "summary_text");
    (!summary.is_empty()).then_some(summary)
}

/// `tools`: function tools in chat's nested shape; any other type is refused by name.
fn tools(raw: &RawValue) -> Result<Vec<ToolOut<'_>>, ApiError> {
    let tools: Vec<ToolIn<'_>> = serde_json::from_str(raw.get())
        .map_err(|e| bad(format!("Invalid value for 'tools': {e}"), "tools"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (index, tool) in tools.into_iter().enumerate() {
        if tool.kind != "function" {
            return Err(bad(
                format!(
                    "Tools of type '{}' are not supported: switchboard serves 'function' tools \
                     (the built-in tools run on OpenAI's servers only).",
                    tool.kind
                ),
                &format!("tools[{index}].type"),
            ));
        }
        let Some(name) = tool.name else {
            return Err(bad(
                format!("Missing required parameter: 'tools[{index}].name'."),
                &format!("tools[{index}].name"),
            ));
        };
        out.push(ToolOut {
            kind: "function",
            function: FunctionDefOut {
                name,
                description: tool.description,
                parameters: tool.parameters,
                strict: tool.strict,
            },
        });
    }
    Ok(out)
}

/// `tool_choice`: a mode, or `{"type":"function","name":...}`.
fn tool_choice(raw: &RawValue) -> Result<ToolChoiceOut<'_>, ApiError> {
    if let Ok(mode) = serde_json::from_str::<Cow<'_, str>>(raw.get()) {
        return match &*mode {
            "auto" | "none" | "required" => Ok(ToolChoiceOut::Mode(mode)),
            other => Err(bad(
                format!(
                    "Invalid value for 'tool_choice': '{other}'. Supported values are 'auto', \
                     'none', 'required' and a function."
                ),
                "tool_choice",
            )),
        };
    }
    let choice: ToolChoiceIn<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        bad(
            format!("Invalid value for 'tool_choice': {e}"),
            "tool_choice",
        )
    })?;
    match (&*choice.kind, choice.name) {
        ("function", Some(name)) => Ok(ToolChoiceOut::Function {
            kind: "function",
            function: NameOut { name },
        }),
        (kind, _) => Err(bad(
            format!(
                "'tool_choice' of type '{kind}' is not supported: use 'auto', 'none', \
                 'required' or {{\"type\": \"function\", \"name\": ...}}."
            ),
            "tool_choice",
        )),
    }
}

/// `text.format` as chat's `response_format`.
fn response_format<'r, 'a>(format: &'r Format<'a>) -> Result<ResponseFormatOut<'r, 'a>, ApiError> {
    match &*format.kind {
        "text" => Ok(ResponseFormatOut::Text),
        "json_object" => Ok(ResponseFormatOut::JsonObject),
        "json_schema" => {
            let Some(name) = format.name.as_deref() else {
                return Err(bad(
                    "Missing required parameter: 'text.format.name'.",
                    "text.format.name",
                ));
            };
            Ok(ResponseFormatOut::JsonSchema {
                json_schema: JsonSchemaOut {
                    name,
                    description: format.description.as_deref(),
                    schema: format.schema,
                    strict: format.strict,
                },
            })
        }
        other => Err(bad(
            format!(
                "Invalid value for 'text.format.type': '{other}'. Supported values are 'text', \
                 'json_object' and 'json_schema'."
            ),
            "text.format.type",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn chat(request: Value) -> Value {
        let converted = to_chat(request.to_string().as_bytes(), 1).unwrap();
        serde_json::from_slice(&converted.body).unwrap()
    }

    fn refused(request: Value) -> ApiError {
        to_chat(request.to_string().as_bytes(), 1).unwrap_err()
    }

    fn param(error: &ApiError) -> Value {
        let body: Value = serde_json::from_slice(&error.body()).unwrap();
        body["error"]["param"].clone()
    }

    #[test]
    fn a_message_and_its_calls_are_one_assistant_turn_with_the_reasoning_text() {
        let body = chat(json!({"model": "m", "input": [
            {"role": "user", "content": "go"},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "short"}],
             "content": [{"type": "reasoning_text", "text": "long"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "On it."}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "one"}]},
            {"type": "function_call_output", "call_id": "c2", "output": "two"}
        ]}));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "On it.", "reasoning_content": "long",
                 "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"x\":1}"}}]},
                {"role": "tool", "content": "one", "tool_call_id": "c1"},
                {"role": "tool", "content": "two", "tool_call_id": "c2"}
            ])
        );
    }

    #[test]
    fn a_stream_asks_for_usage_and_files_travel_as_data() {
        let body = chat(
            json!({"model": "m", "stream": true, "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}
            ]}]}),
        );
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}])
        );
    }

    #[test]
    fn tool_choice_modes_pass_and_other_shapes_are_refused() {
        for mode in ["auto", "none", "required"] {
            assert_eq!(
                chat(json!({"model": "m", "input": "x", "tool_choice": mode}))["tool_choice"],
                mode
            );
        }
        let error =
            refused(json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}));
        assert_eq!(param(&error), "tool_choice");
        assert!(error.to_string().contains("file_search"), "{error}");
    }

    #[test]
    fn stored_prompts_references_and_non_text_instructions_are_refused() {
        let error = refused(json!({"model": "m", "input": "x", "prompt": {"id": "pmpt_1"}}));
        assert_eq!(error.code(), "stored_responses_not_supported");
        let error =
            refused(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}));
        assert_eq!(error.code(), "stored_responses_not_supported");
        assert_eq!(param(&error), "input[0]");
        let error =
            refused(json!({"model": "m", "input": "x", "instructions": [{"role": "system"}]}));
        assert_eq!(param(&error), "instructions");
        // `null` is the same as leaving a member out; `background: false` asks for nothing.
        let body = chat(
            json!({"model": "m", "input": "x", "previous_response_id": null,
                               "background": false, "store": true}),
        );
        assert_eq!(body["messages"], json!([{"role": "user", "content": "x"}]));
    }
}
