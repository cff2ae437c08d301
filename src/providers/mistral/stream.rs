//! Streams: the same edits per chunk, and usage moved to a chunk of its own.

use std::ops::Range;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::ids::IdMap;
use super::response::{Answer, Edit, apply, malformed, read_usage, rewrite, span_of};
use crate::error::{FailureKind, UpstreamFailure};
use crate::json_scan::{ERROR, Key, USAGE};
use crate::openai::{DONE, Usage};
use crate::providers::openai::{in_band_failure, require_end_marker, validate};
use crate::providers::{StreamTranslator, event_text};
use crate::sse::{SseEvent, data_frame};

/// Per-stream state: Mistral's chunks in, OpenAI's chunk layout out.
pub(super) struct Stream {
    /// Ids to map back in tool-call deltas.
    pub(super) ids: IdMap,
    /// Whether the client asked for OpenAI's separate usage chunk.
    pub(super) include_usage: bool,
    /// The usage Mistral reported on its last chunk.
    pub(super) usage: Option<Usage>,
    /// The OpenAI-style usage chunk, held until `[DONE]` so it is always the last one.
    pub(super) usage_chunk: Option<Vec<u8>>,
    /// `[DONE]` was seen; anything after it is ignored.
    pub(super) done: bool,
}

impl Stream {
    /// Whether a chunk may need more than forwarding. False positives only cost a parse.
    pub(super) fn worth_parsing(&self, data: &[u8]) -> bool {
        static MODEL_LENGTH: Key = Key::new(b"\"model_length\"");
        static CONTENT: Key = Key::new(b"\"content\"");
        static ARGUMENTS: Key = Key::new(b"\"arguments\"");
        MODEL_LENGTH.occurs_in(data)
            || ERROR.occurs_in(data)
            || USAGE.has_value_starting_with(data, b'{')
            || CONTENT.has_value_starting_with(data, b'[')
            || ARGUMENTS.has_value_starting_with(data, b'{')
            || self.ids.occurs_in(data)
    }

    /// Translates one chunk that needs a look; `None` when nothing of it is left to send.
    pub(super) fn translate(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, UpstreamFailure> {
        let kind = FailureKind::Stream;
        let chunk: Answer<'_> = serde_json::from_str(event_text(data)?)
            .map_err(|e| malformed(kind, "stream event", &e))?;
        if let Some(error) = chunk.error {
            return Err(in_band_failure(error.get().as_bytes()));
        }
        // Mistral's own error shape, `{"object":"error","message":...}`, sent in-band.
        if chunk.object.is_some_and(|o| o.get() == "\"error\"") {
            return Err(in_band_failure(data));
        }
        let mut edits = rewrite(data, &chunk, &self.ids, kind)?;
        if let Some(usage) = chunk.usage {
            self.usage = Some(read_usage(usage, kind)?);
            if self.include_usage {
                self.usage_chunk = Some(usage_chunk(&chunk, usage));
            }
            if chunk.choices.as_ref().is_some_and(Vec::is_empty) {
                return Ok(None);
            }
            edits.push(without_member(data, span_of(data, usage)));
        }
        Ok(Some(apply(data, edits)))
    }
}

impl StreamTranslator for Stream {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let data = &event.data[..];
        if self.done {
            return Ok(());
        }
        if data == DONE {
            self.done = true;
            if let Some(chunk) = self.usage_chunk.take() {
                out.push(data_frame(&chunk));
            }
            out.push(data_frame(DONE));
            return Ok(());
        }
        if !self.worth_parsing(data) {
            // Forwarded as it came, so it must be JSON (and UTF-8) first.
            validate(event_text(data)?)?;
            out.push(data_frame(data));
            return Ok(());
        }
        if let Some(chunk) = self.translate(data)? {
            out.push(data_frame(&chunk));
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        require_end_marker(self.done)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// OpenAI's separate usage chunk (reference 1.4 step 5), built from the chunk that carried it.
pub(super) fn usage_chunk(chunk: &Answer<'_>, usage: &RawValue) -> Vec<u8> {
    fn raw(value: Option<&RawValue>) -> &str {
        value.map_or("null", RawValue::get)
    }
    format!(
        r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{}}}"#,
        raw(chunk.id),
        raw(chunk.created),
        raw(chunk.model),
        usage.get()
    )
    .into_bytes()
}

/// The edit that removes the member whose value is at `value`, with one adjacent comma. When
/// the bytes around it are not the plain `"key": value` the scan expects, the value becomes
/// `null` instead, which OpenAI clients read the same way.
pub(super) fn without_member(data: &[u8], value: Range<usize>) -> Edit {
    match member_span(data, value.clone()) {
        Some(span) => Edit {
            span,
            with: Vec::new(),
        },
        None => Edit {
            span: value,
            with: b"null".to_vec(),
        },
    }
}

/// The span of `"key": value` plus the comma that separates it from a neighbour.
pub(super) fn member_span(data: &[u8], value: Range<usize>) -> Option<Range<usize>> {
    let last_non_space = |slice: &[u8]| slice.iter().rposition(|b| !b.is_ascii_whitespace());
    let colon = last_non_space(&data[..value.start])?;
    let key_end = last_non_space(&data[..colon])?;
    if data[colon] != b':' || data[key_end] != b'"' {
        return None;
    }
    let key_start = data[..key_end].iter().rposition(|&b| b == b'"')?;
    let before = last_non_space(&data[..key_start])?;
    match data[before] {
        b',' => Some(before..value.end),
        b'{' => {
            let after = data[value.end..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map(|offset| value.end + offset);
            match after {
                Some(comma) if data[comma] == b',' => Some(key_start..comma + 1),
                _ => Some(key_start..value.end),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Adapter;
    use crate::providers::mistral::Mistral;
    use crate::providers::mistral::fixtures::*;
    use crate::providers::mistral::ids::hashed_id;

    #[test]
    fn events_that_are_not_json_or_not_utf8_end_the_stream_unforwarded() {
        let latin1 = |text: &str| -> Vec<u8> {
            text.bytes()
                .map(|b| if b == b'~' { 0xe9 } else { b })
                .collect()
        };
        let cases = [
            b"{not json".to_vec(),
            // Forwarded untouched when sound, so validated without a parse into fields.
            latin1(r#"{"id":"c","choices":[{"index":0,"delta":{"content":"caf~"}}]}"#),
            // Parsed into fields (it has usage), with an unread member that is not UTF-8.
            latin1(
                r#"{"id":"~","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            ),
        ];
        for data in cases {
            let mut translator = Mistral.stream(&chat(STREAM_WITH_USAGE), &target());
            let mut out = Vec::new();
            let event = SseEvent {
                name: None,
                data: Bytes::from(data.clone()),
            };
            let failure = translator.event(&event, &mut out).unwrap_err();
            let shown = String::from_utf8_lossy(&data);
            assert_eq!(failure.kind, FailureKind::Stream, "{shown}");
            assert!(out.is_empty(), "{shown} was forwarded");
        }
    }

    const ROLE: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
    const TEXT: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"caf\u00e9 1000.00 error"},"finish_reason":null}]}"#;
    const LAST: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"total_tokens":10,"completion_tokens":2}}"#;
    const LAST_WITHOUT_USAGE: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}"#;

    #[test]
    fn usage_gets_its_own_chunk_when_the_client_asked() {
        let (frames, result, usage) = streamed(STREAM_WITH_USAGE, &[ROLE, TEXT, LAST, "[DONE]"]);
        result.unwrap();
        assert_eq!(
            frames,
            [
                ROLE,
                TEXT,
                LAST_WITHOUT_USAGE,
                r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[],"usage":{"prompt_tokens":8,"total_tokens":10,"completion_tokens":2}}"#,
                "[DONE]"
            ]
        );
        assert_eq!(usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn usage_is_removed_when_the_client_did_not_ask_but_still_recorded() {
        let (frames, result, usage) = streamed(STREAM_PLAIN, &[ROLE, LAST, "[DONE]"]);
        result.unwrap();
        assert_eq!(frames, [ROLE, LAST_WITHOUT_USAGE, "[DONE]"]);
        assert_eq!(usage.unwrap().prompt_tokens, 8);
    }

    #[test]
    fn usage_is_removed_wherever_it_sits_in_the_chunk() {
        let first = r#"{ "usage" : {"prompt_tokens":1,"completion_tokens":1,"total_tokens":2} , "id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let (frames, result, _) = streamed(STREAM_PLAIN, &[first, "[DONE]"]);
        result.unwrap();
        assert_eq!(
            frames[0],
            r#"{  "id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#
        );
        let only = r#"{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        assert_eq!(
            member_span(only.as_bytes(), 9..only.len() - 1),
            Some(1..only.len() - 1)
        );
    }

    #[test]
    fn an_openai_style_usage_chunk_is_not_sent_twice() {
        let usage_only = r#"{"id":"s1","created":17,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        let (frames, result, _) = streamed(
            STREAM_WITH_USAGE,
            &[LAST_WITHOUT_USAGE, usage_only, "[DONE]"],
        );
        result.unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames[1].contains(r#""choices":[],"usage":{"prompt_tokens":1"#));
    }

    #[test]
    fn stream_chunks_get_the_same_rewrites_as_bodies() {
        let mapped = hashed_id("call_abc123");
        let request = TOOL_HISTORY.replacen("{", r#"{"stream":true,"#, 1);
        let call = format!(
            r#"{{"id":"s1","choices":[{{"index":0,"delta":{{"tool_calls":[{{"id":"{mapped}","function":{{"name":"w","arguments":{{"a":1}}}},"index":0}}]}},"finish_reason":"model_length"}}]}}"#
        );
        let thinking = r#"{"id":"s1","choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]}]},"finish_reason":null}]}"#;
        let (frames, result, _) = streamed(&request, &[thinking, &call, "[DONE]"]);
        result.unwrap();
        assert_eq!(
            frames[0],
            r#"{"id":"s1","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"hmm"},"finish_reason":null}]}"#
        );
        assert_eq!(
            frames[1],
            r#"{"id":"s1","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_abc123","function":{"name":"w","arguments":"{\"a\":1}"},"index":0}]},"finish_reason":"length"}]}"#
        );
    }

    #[test]
    fn chunks_that_only_look_suspicious_are_forwarded_byte_for_byte() {
        let chunks = [
            r#"{"id":"s1","choices":[{"index":0,"delta":{"content":"error"},"finish_reason":null}],"usage":null}"#,
            r#"{"id":"s1","choices":[{"index":0,"delta":{"content":"\"usage\": {\"content\": [1]}"},"finish_reason":null}]}"#,
        ];
        let (frames, result, usage) =
            streamed(STREAM_WITH_USAGE, &[chunks[0], chunks[1], "[DONE]"]);
        result.unwrap();
        assert_eq!(frames, [chunks[0], chunks[1], "[DONE]"]);
        assert_eq!(usage, None);
    }

    #[test]
    fn events_that_are_not_json_end_the_stream_unforwarded() {
        for garbage in ["", "[DONE] ", "{\"choices\":[", "<html>"] {
            let (frames, result, _) = streamed(STREAM_PLAIN, &[ROLE, garbage]);
            assert_eq!(frames, [ROLE], "{garbage:?}");
            assert_eq!(result.unwrap_err().kind, FailureKind::Stream, "{garbage:?}");
        }
        let mut translator = Mistral.stream(&chat(STREAM_PLAIN), &target());
        let event = SseEvent {
            name: None,
            data: Bytes::from_static(b"{\"choices\":[{\"delta\":{\"content\":\"\xc3\"}}]}"),
        };
        let mut out = Vec::new();
        assert!(translator.event(&event, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn a_stream_without_done_is_cut_short() {
        let (frames, result, usage) = streamed(STREAM_WITH_USAGE, &[ROLE, LAST]);
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
        assert_eq!(frames, [ROLE, LAST_WITHOUT_USAGE]);
        assert_eq!(usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn error_events_and_error_finishes_end_the_stream() {
        let openai_style =
            r#"{"error":{"message":"overloaded","type":"server_error","code":"3000"}}"#;
        let (frames, result, _) = streamed(STREAM_PLAIN, &[ROLE, openai_style, "[DONE]"]);
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Stream);
        assert!(failure.message.contains("overloaded"));
        assert_eq!(frames, [ROLE]);

        let mistral_style = r#"{"object":"error","message":"Internal error","type":"internal","param":null,"code":"1000"}"#;
        let (_, result, _) = streamed(STREAM_PLAIN, &[mistral_style]);
        assert_eq!(result.unwrap_err().code.as_deref(), Some("1000"));

        let finish = r#"{"id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#;
        let (_, result, _) = streamed(STREAM_PLAIN, &[ROLE, finish, "[DONE]"]);
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
    }

    #[test]
    fn nothing_after_done_is_forwarded() {
        let (frames, result, _) = streamed(STREAM_PLAIN, &[ROLE, "[DONE]", TEXT]);
        result.unwrap();
        assert_eq!(frames, [ROLE, "[DONE]"]);
    }
}
