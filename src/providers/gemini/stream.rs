//! The SSE stream of `streamGenerateContent` rebuilt as OpenAI chunks through the shared
//! chunk writer (reference 3.4, 7.3).

use std::borrow::Cow;

use bytes::Bytes;

use super::errors::{array_body, classify_in_band};
use super::response::{
    Answering, Candidate, GenerateResponse, ResponsePart, UsageMetadata, completion_id,
    finish_reason, parts, tool_call,
};
use crate::error::{FailureKind, UpstreamFailure};
use crate::openai::{Delta, ExtraContent, ToolCallDelta, Usage};
use crate::providers::chunks::ChunkWriter;
use crate::providers::openai::cut_short;
use crate::providers::{StreamTranslator, event_text};
use crate::sse::SseEvent;

/// Per-response state of a `streamGenerateContent?alt=sse` stream. Memory is bounded: the
/// chunk writer's few counters per choice (at most [`MAX_CHOICES`]) and the last usage seen;
/// text is never kept.
pub(super) struct GeminiStream {
    /// What the request asked for.
    pub(super) answering: Answering,
    /// Created from the first chunk, which gives the id and model every chunk repeats.
    pub(super) writer: Option<ChunkWriter>,
    /// Gemini's response id, for generated call ids.
    pub(super) response_id: String,
    /// The last `usageMetadata` (running totals).
    pub(super) usage: Option<UsageMetadata>,
}

impl GeminiStream {
    /// Fresh state for one response.
    pub(super) fn new(answering: Answering) -> Self {
        Self {
            answering,
            writer: None,
            response_id: String::new(),
            usage: None,
        }
    }

    /// Reads one chunk and emits its OpenAI chunks.
    pub(super) fn chunk(
        &mut self,
        data: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
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
    pub(super) fn is_done(&self) -> bool {
        self.writer.as_ref().is_some_and(ChunkWriter::is_done)
    }
}

/// Whether a chunk reports a blocked prompt.
pub(super) fn blocked(chunk: &GenerateResponse<'_>) -> bool {
    chunk
        .prompt_feedback
        .as_ref()
        .is_some_and(|f| f.block_reason.is_some())
}

/// The failure for an unreadable stream event.
pub(super) fn stream_malformed(error: &serde_json::Error) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Stream,
        format!("Gemini sent a malformed stream event ({error})"),
    )
}

/// The chunks for candidate `index` of one upstream chunk: the role on first sight, one delta
/// per non-empty text or thought part, one delta per function call (it arrives whole), and the
/// finish chunk when Gemini sets `finishReason`.
pub(super) fn emit_candidate(
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
pub(super) fn part_delta<'p>(part: &'p ResponsePart<'p>) -> Option<Delta<'p>> {
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use std::collections::HashMap;

    use bytes::Bytes;
    use http::StatusCode;

    use crate::providers::gemini::fixtures::{
        answer_with, failure, parsed, run_stream, stream_chat,
    };

    use crate::error::FailureKind;
    use crate::openai::ChatRequest;
    use crate::providers::Adapter;
    use crate::providers::gemini::Gemini;
    use crate::providers::gemini::call_id::CallId;
    use crate::providers::gemini::fixtures::{CREATED, chat_body, target, user, with_chat};
    use crate::sse::SseDecoder;
    use crate::sse::SseEvent;

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
