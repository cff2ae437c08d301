//! A complete `generateContent` answer rebuilt as a `chat.completion` (reference 3.3, 7.2).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::call_id::{CallId, generated_core};
use super::errors::{array_body, classify_in_band};
use crate::config::Target;
use crate::error::{FailureKind, UpstreamFailure};
use crate::openai::{
    AssistantMessage, ChatRequest, Completion, CompletionChoice, CompletionTokensDetails,
    ExtraContent, FunctionOut, PromptTokensDetails, ToolCallOut, Usage, UsageOut,
};
use crate::providers::{Translated, compact_json};

/// `GenerateContentResponse`: a whole answer, or one stream chunk.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateResponse<'a> {
    /// One per requested choice.
    #[serde(borrow, default)]
    pub(super) candidates: Option<Vec<Candidate<'a>>>,
    /// Why the prompt was blocked, if it was.
    #[serde(borrow, default)]
    pub(super) prompt_feedback: Option<PromptFeedback<'a>>,
    /// Token counts (running totals in a stream).
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageMetadata>,
    /// The model that answered.
    #[serde(borrow, default)]
    pub(super) model_version: Option<Cow<'a, str>>,
    /// The response's id, the same on every chunk of a stream.
    #[serde(borrow, default)]
    pub(super) response_id: Option<Cow<'a, str>>,
    /// An error reported inside a 200 stream.
    #[serde(borrow, default)]
    pub(super) error: Option<&'a RawValue>,
}

/// One candidate answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    /// Its parts (new parts only, in a stream).
    #[serde(borrow, default)]
    pub(super) content: Option<CandidateContent<'a>>,
    /// Set on the last chunk of the candidate.
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Cow<'a, str>>,
    /// Its position among the candidates.
    #[serde(default)]
    pub(super) index: Option<u32>,
}

/// A candidate's content.
#[derive(Debug, Deserialize)]
pub(super) struct CandidateContent<'a> {
    /// Text, thoughts and function calls.
    #[serde(borrow, default)]
    pub(super) parts: Option<Vec<ResponsePart<'a>>>,
}

/// One part of an answer. Other kinds (inline images, executable code) are not read: the
/// chat completion wire has no place for them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponsePart<'a> {
    /// Text, or a thought summary when `thought` is true.
    #[serde(borrow, default)]
    pub(super) text: Option<Cow<'a, str>>,
    /// Marks thought-summary text.
    #[serde(default)]
    pub(super) thought: Option<bool>,
    /// The signature to echo with this part.
    #[serde(borrow, default)]
    pub(super) thought_signature: Option<Cow<'a, str>>,
    /// A function call, always whole.
    #[serde(borrow, default)]
    pub(super) function_call: Option<FunctionCallIn<'a>>,
}

/// `functionCall` in an answer.
#[derive(Debug, Deserialize)]
pub(super) struct FunctionCallIn<'a> {
    /// The function name.
    #[serde(borrow, default)]
    pub(super) name: Cow<'a, str>,
    /// The arguments object.
    #[serde(borrow, default)]
    pub(super) args: Option<&'a RawValue>,
    /// Gemini's id of the call, when it gives one.
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
}

/// `promptFeedback`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback<'a> {
    /// Set when the prompt itself was blocked.
    #[serde(borrow, default)]
    pub(super) block_reason: Option<Cow<'a, str>>,
}

/// `usageMetadata`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    /// The prompt, cached part included.
    #[serde(default)]
    pub(super) prompt_token_count: u64,
    /// The visible output.
    #[serde(default)]
    pub(super) candidates_token_count: u64,
    /// Thinking, billed as output.
    #[serde(default)]
    pub(super) thoughts_token_count: u64,
    /// The part of the prompt read from the cache.
    #[serde(default)]
    pub(super) cached_content_token_count: u64,
    /// Tool results fed back by Gemini's own tools.
    #[serde(default)]
    pub(super) tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// OpenAI's `usage` with its details (mapping table 7.3).
    pub(super) fn to_openai(self) -> UsageOut {
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
    pub(super) fn usage(self) -> Usage {
        self.to_openai().totals()
    }
}

/// What answering needs from the request, copied so a stream can outlive it.
#[derive(Clone, Debug)]
pub(super) struct Answering {
    /// The request's receive time, for `created`.
    pub(super) created: u64,
    /// The configured model, when Gemini names no version.
    pub(super) model: String,
    /// `parallel_tool_calls: false`: keep only the first call of each choice.
    pub(super) single_call: bool,
    /// Whether the client asked for the usage chunk.
    pub(super) include_usage: bool,
    /// How many choices may appear (the requested `n`, capped).
    pub(super) max_choices: u32,
}

/// The most candidates Gemini returns (`candidateCount`, the client's `n`): a request for
/// more is refused before it is sent, so a stream keeps state for at most this many.
pub(super) const MAX_CHOICES: u32 = 8;

impl Answering {
    /// Copies what it needs from the request and target.
    pub(super) fn new(chat: &ChatRequest<'_>, target: &Target) -> Self {
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
pub(super) fn malformed(what: &str, error: &serde_json::Error) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Unavailable,
        format!("Gemini sent a malformed {what} ({error})"),
    )
}

/// A complete `generateContent` answer as a `chat.completion`.
pub(super) fn translate_response(
    answering: &Answering,
    body: &[u8],
) -> Result<Translated, UpstreamFailure> {
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
pub(super) fn completion_id(response_id: &str) -> String {
    if response_id.is_empty() {
        "chatcmpl-gemini".to_owned()
    } else {
        format!("chatcmpl-{response_id}")
    }
}

/// The single empty `content_filter` choice of a blocked prompt; no candidates without a block
/// reason is a broken answer.
pub(super) fn blocked_choice(
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
pub(super) fn choice<'a>(
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
pub(super) fn parts<'c, 'a>(candidate: &'c Candidate<'a>) -> &'c [ResponsePart<'a>] {
    candidate
        .content
        .as_ref()
        .and_then(|c| c.parts.as_deref())
        .unwrap_or_default()
}

/// A function call, the `position`th of its choice, as an OpenAI tool call.
pub(super) fn tool_call<'a>(
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
pub(super) fn finish_reason(
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::providers::gemini::fixtures::{answer, answer_with};

    use crate::error::FailureKind;
    use crate::openai::Usage;

    use crate::providers::gemini::call_id::CallId;
    use crate::providers::gemini::fixtures::{CREATED, chat_body, request, request_error, user};

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
}
