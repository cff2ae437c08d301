//! A complete Messages answer rebuilt as a `chat.completion` (reference 2.3, 7.2).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{FailureKind, UpstreamFailure};
use crate::openai::{
    AssistantMessage, Completion, CompletionChoice, FunctionOut, PromptTokensDetails,
    ThinkingBlock, ToolCallOut, UsageOut,
};
use crate::providers::{Translated, compact_json};

/// The parts of a Messages API answer the translation reads (reference 2.3).
#[derive(Deserialize)]
pub(super) struct MessageIn<'a> {
    #[serde(borrow)]
    pub(super) id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) model: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) content: Vec<BlockIn<'a>>,
    #[serde(borrow, default)]
    pub(super) stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) usage: UsageIn,
}

/// A response content block, flattened over the kinds the translation reads.
#[derive(Deserialize)]
pub(super) struct BlockIn<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) signature: Option<Cow<'a, str>>,
    /// A `redacted_thinking` block's encrypted thinking.
    #[serde(borrow, default)]
    pub(super) data: Option<Cow<'a, str>>,
}

impl<'a> BlockIn<'a> {
    /// A `thinking` or `redacted_thinking` block as the client will send it back.
    pub(super) fn thinking_block(&self) -> Option<ThinkingBlock<'_>> {
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
pub(super) struct UsageIn {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl UsageIn {
    /// Takes every figure `later` reports; stream usage is cumulative, so the last one wins.
    pub(super) fn update(&mut self, later: Self) {
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
    pub(super) fn to_openai(self) -> UsageOut {
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
pub(super) fn malformed(what: &str, error: impl std::fmt::Display) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Unavailable,
        format!("the provider sent a malformed {what} ({error})"),
    )
}

/// A complete Messages API answer as an OpenAI `chat.completion`.
pub(super) fn translate_response(body: &[u8], created: u64) -> Result<Translated, UpstreamFailure> {
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
pub(super) fn tool_call_out<'b>(
    block: &'b BlockIn<'_>,
) -> Result<ToolCallOut<'b>, UpstreamFailure> {
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
pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use crate::error::FailureKind;
    use crate::openai::Usage;
    use crate::providers::anthropic::Anthropic;
    use crate::providers::anthropic::fixtures::{CREATED, parse, target, with};
    use crate::providers::{Adapter, compact_json};

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
}
