//! The `response` object: written from a chat completion the router served, and, while a
//! stream runs, from what it has said so far ([`super::stream`]).
//!
//! Output items come in the order the model produced them: the reasoning (when the chat
//! answer carries `reasoning_content`), the message (text or refusal), then one
//! `function_call` item per tool call, whose `call_id` is the chat tool call's id.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Echo, ResponseUsage};
use crate::accounting::Cost;
use crate::error::ApiError;
use crate::openai::Usage;

/// A `response` object.
#[derive(Debug, Serialize)]
pub struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    background: bool,
    error: Option<ErrorOut<'a>>,
    incomplete_details: Option<IncompleteDetails>,
    instructions: Option<&'a RawValue>,
    max_output_tokens: Option<u32>,
    model: &'a str,
    output: &'a [OutputItem<'a>],
    parallel_tool_calls: bool,
    previous_response_id: Option<()>,
    reasoning: ReasoningOut<'a>,
    /// Always false: nothing is stored, whatever the request said.
    store: bool,
    temperature: Option<f64>,
    text: Echoed<'a, TextDefault>,
    tool_choice: Echoed<'a, &'static str>,
    tools: Echoed<'a, [(); 0]>,
    top_p: Option<f64>,
    truncation: &'static str,
    usage: Option<&'a ResponseUsage>,
    user: Option<&'a str>,
    metadata: Echoed<'a, EmptyObject>,
}

/// An echoed member: the client's JSON, or the default OpenAI answers with.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Echoed<'a, D> {
    Given(&'a RawValue),
    Default(D),
}

fn echoed<D>(given: Option<&RawValue>, default: D) -> Echoed<'_, D> {
    match given.filter(|raw| raw.get() != "null") {
        Some(raw) => Echoed::Given(raw),
        None => Echoed::Default(default),
    }
}

/// `text` when the client sent none: `{"format":{"type":"text"}}`.
#[derive(Debug, Serialize)]
struct TextDefault {
    format: KindOnly,
}

/// An object with only a `type`.
#[derive(Debug, Serialize)]
struct KindOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `{}`.
#[derive(Debug, Serialize)]
struct EmptyObject {}

/// `error` of a failed response.
#[derive(Debug, Serialize)]
pub struct ErrorOut<'a> {
    /// A machine-readable code.
    pub code: &'a str,
    /// What went wrong, for a person.
    pub message: &'a str,
}

/// `incomplete_details`.
#[derive(Debug, Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

/// `reasoning`, echoed.
#[derive(Debug, Serialize)]
struct ReasoningOut<'a> {
    effort: Option<&'a str>,
    summary: Option<()>,
}

/// One `output` item.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem<'a> {
    /// The model's readable reasoning.
    Reasoning {
        /// `rs_…`.
        id: &'a str,
        /// Always empty: chat answers carry the reasoning itself, not a summary.
        summary: [(); 0],
        /// The reasoning text, in one part.
        content: Vec<ReasoningPart<'a>>,
        /// `in_progress` or `completed`.
        status: &'static str,
    },
    /// The assistant's message.
    Message {
        /// `msg_…`.
        id: &'a str,
        /// Always `assistant`.
        role: &'static str,
        /// `in_progress`, `completed` or `incomplete`.
        status: &'static str,
        /// The text (or refusal), in one part once there is any.
        content: Vec<ContentPart<'a>>,
    },
    /// A call of a function tool.
    FunctionCall {
        /// `fc_…`.
        id: &'a str,
        /// The id the client's `function_call_output` answers.
        call_id: &'a str,
        /// The function.
        name: &'a str,
        /// Its arguments, a JSON string.
        arguments: &'a str,
        /// `in_progress` or `completed`.
        status: &'static str,
    },
}

/// A reasoning item's content part.
#[derive(Debug, Serialize)]
pub struct ReasoningPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> ReasoningPart<'a> {
    /// A `reasoning_text` part.
    pub fn new(text: &'a str) -> Self {
        Self {
            kind: "reasoning_text",
            text,
        }
    }
}

/// A message's content part.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart<'a> {
    /// Text, without annotations or log probabilities.
    OutputText {
        /// The text.
        text: &'a str,
        /// Always empty.
        annotations: [(); 0],
        /// Always empty.
        logprobs: [(); 0],
    },
    /// The model declined.
    Refusal {
        /// Why.
        refusal: &'a str,
    },
}

impl<'a> ContentPart<'a> {
    /// An `output_text` part.
    pub fn text(text: &'a str) -> Self {
        Self::OutputText {
            text,
            annotations: [],
            logprobs: [],
        }
    }
}

/// How a response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Still streaming.
    InProgress,
    /// Finished.
    Completed,
    /// Cut short by the output cap.
    MaxOutputTokens,
    /// Cut short by the provider's content filter.
    ContentFilter,
    /// Broken by a failure.
    Failed,
}

impl Status {
    /// The status of a chat `finish_reason`.
    pub fn of_finish(finish_reason: Option<&str>) -> Self {
        match finish_reason {
            Some("length") => Self::MaxOutputTokens,
            Some("content_filter") => Self::ContentFilter,
            _ => Self::Completed,
        }
    }

    /// The `status` member.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::MaxOutputTokens | Self::ContentFilter => "incomplete",
            Self::Failed => "failed",
        }
    }

    /// The status of the items of a response that ended so.
    pub fn item_status(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::MaxOutputTokens | Self::ContentFilter | Self::Failed => "incomplete",
        }
    }

    fn incomplete_details(self) -> Option<IncompleteDetails> {
        let reason = match self {
            Self::MaxOutputTokens => "max_output_tokens",
            Self::ContentFilter => "content_filter",
            Self::InProgress | Self::Completed | Self::Failed => return None,
        };
        Some(IncompleteDetails { reason })
    }
}

impl<'a> ResponseObject<'a> {
    /// The `response` of `echo`, in `status`, with `output` so far and `usage` once known.
    pub fn new(
        echo: &'a Echo,
        model: &'a str,
        status: Status,
        output: &'a [OutputItem<'a>],
        usage: Option<&'a ResponseUsage>,
        error: Option<ErrorOut<'a>>,
    ) -> Self {
        Self {
            id: &echo.id,
            object: "response",
            created_at: echo.created_at,
            status: status.as_str(),
            background: false,
            error,
            incomplete_details: status.incomplete_details(),
            instructions: echo.instructions.as_deref(),
            max_output_tokens: echo.max_output_tokens,
            model,
            output,
            parallel_tool_calls: echo.parallel_tool_calls.unwrap_or(true),
            previous_response_id: None,
            reasoning: ReasoningOut {
                effort: echo.reasoning_effort.as_deref(),
                summary: None,
            },
            store: false,
            temperature: echo.temperature,
            text: echoed(
                echo.text.as_deref(),
                TextDefault {
                    format: KindOnly { kind: "text" },
                },
            ),
            tool_choice: echoed(echo.tool_choice.as_deref(), "auto"),
            tools: echoed(echo.tools.as_deref(), []),
            top_p: echo.top_p,
            truncation: "disabled",
            usage,
            user: echo.user.as_deref(),
            metadata: echoed(echo.metadata.as_deref(), EmptyObject {}),
        }
    }
}

/// A chat completion, the members a `response` is made of.
#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    message: AnswerMessage<'a>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnswerMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<AnswerCall<'a>>>,
}

#[derive(Deserialize)]
struct AnswerCall<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    function: AnswerFunction<'a>,
}

#[derive(Deserialize)]
struct AnswerFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Cow<'a, str>,
}

/// The `response` body of a chat completion the router served for `echo`, with the usage
/// and cost the router accounted.
pub fn from_chat(
    chat: &[u8],
    echo: &Echo,
    usage: Option<&Usage>,
    cost: Option<&Cost>,
) -> Result<Bytes, ApiError> {
    let completion: Completion<'_> = serde_json::from_slice(chat)
        .map_err(|e| ApiError::Internal(format!("reading the chat answer: {e}")))?;
    let choice = completion.choices.first();
    let message = choice.map(|choice| &choice.message);
    let status = Status::of_finish(choice.and_then(|c| c.finish_reason.as_deref()));
    let (reasoning_id, message_id) = (echo.reasoning_id(), echo.message_id());
    let calls = message
        .and_then(|m| m.tool_calls.as_deref())
        .unwrap_or_default();
    let call_ids: Vec<String> = (0..calls.len()).map(|i| echo.call_item_id(i)).collect();
    let mut output = Vec::new();
    if let Some(text) = message
        .and_then(|m| m.reasoning_content.as_deref())
        .filter(|text| !text.is_empty())
    {
        output.push(OutputItem::Reasoning {
            id: &reasoning_id,
            summary: [],
            content: vec![ReasoningPart::new(text)],
            status: "completed",
        });
    }
    let part = match message {
        Some(AnswerMessage {
            refusal: Some(refusal),
            ..
        }) if !refusal.is_empty() => Some(ContentPart::Refusal { refusal }),
        Some(AnswerMessage {
            content: Some(text),
            ..
        }) if !text.is_empty() => Some(ContentPart::text(text)),
        _ => None,
    };
    if let Some(part) = part {
        output.push(OutputItem::Message {
            id: &message_id,
            role: "assistant",
            status: status.item_status(),
            content: vec![part],
        });
    }
    for (call, id) in calls.iter().zip(&call_ids) {
        output.push(OutputItem::FunctionCall {
            id,
            call_id: &call.id,
            name: &call.function.name,
            arguments: &call.function.arguments,
            status: "completed",
        });
    }
    let usage = usage.map(|usage| ResponseUsage::new(usage, cost));
    let model = completion.model.as_deref().unwrap_or(&echo.model);
    let response = ResponseObject::new(echo, model, status, &output, usage.as_ref(), None);
    serde_json::to_vec(&response)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("writing the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Echo {
        let mut echo = Echo {
            model: "route".into(),
            created_at: 7,
            ..Echo::default()
        };
        echo.new_ids();
        echo
    }

    #[test]
    fn a_tool_calling_answer_becomes_reasoning_then_function_call_items() {
        let chat = br#"{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"reasoning_content":"think","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}]}"#;
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            total_tokens: 15,
            cached_tokens: 2,
            reasoning_tokens: 3,
            ..Usage::default()
        };
        let echo = echo();
        let body = from_chat(chat, &echo, Some(&usage), None).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["id"], echo.id);
        assert_eq!(json["status"], "completed");
        assert_eq!(json["model"], "m");
        assert_eq!(json["store"], false);
        assert_eq!(json["tool_choice"], "auto");
        assert_eq!(json["text"]["format"]["type"], "text");
        assert_eq!(json["output"][0]["type"], "reasoning");
        assert_eq!(json["output"][0]["content"][0]["text"], "think");
        assert_eq!(json["output"][1]["type"], "function_call");
        assert_eq!(json["output"][1]["call_id"], "call_1");
        assert_eq!(json["output"][1]["arguments"], r#"{"a":1}"#);
        assert_eq!(json["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(
            json["usage"]["output_tokens_details"]["reasoning_tokens"],
            3
        );
        assert!(json["usage"].get("cost").is_none());
    }

    #[test]
    fn a_cut_answer_is_incomplete_with_its_reason() {
        let chat =
            br#"{"model":"m","choices":[{"message":{"content":"par"},"finish_reason":"length"}]}"#;
        let body = from_chat(chat, &echo(), None, None).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], "incomplete");
        assert_eq!(json["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(json["output"][0]["status"], "incomplete");
        assert_eq!(json["output"][0]["content"][0]["text"], "par");
    }
}
