//! The named-event stream rebuilt as OpenAI chunks through the shared chunk writer
//! (reference 2.4, 7.3).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use super::errors::ErrorIn;
use super::response::{BlockIn, UsageIn, finish_reason};
use crate::error::{FailureKind, UpstreamFailure};
use crate::openai::{Delta, FunctionDelta, ThinkingBlock, ToolCallDelta, Usage};
use crate::providers::chunks::ChunkWriter;
use crate::providers::openai::require_end_marker;
use crate::providers::{StreamTranslator, event_text};
use crate::sse::SseEvent;

/// One event of the Messages stream, flattened over every event type (reference 2.4).
#[derive(Deserialize)]
pub(super) struct EventIn<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) message: Option<StartIn<'a>>,
    #[serde(default)]
    pub(super) index: Option<u64>,
    #[serde(borrow, default)]
    pub(super) content_block: Option<BlockIn<'a>>,
    #[serde(borrow, default)]
    pub(super) delta: Option<DeltaIn<'a>>,
    #[serde(default)]
    pub(super) usage: Option<UsageIn>,
    #[serde(default)]
    pub(super) error: Option<ErrorIn>,
}

/// `message_start.message`.
#[derive(Deserialize)]
pub(super) struct StartIn<'a> {
    #[serde(borrow, default)]
    pub(super) id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) model: Cow<'a, str>,
    #[serde(default)]
    pub(super) usage: UsageIn,
}

/// A `content_block_delta` or `message_delta` delta.
#[derive(Deserialize)]
pub(super) struct DeltaIn<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) stop_reason: Option<Cow<'a, str>>,
}

/// Per-response state of a Messages stream: the chunk writer (from `message_start` on) and
/// the usage; never the text.
pub(super) struct EventStream {
    pub(super) created: u64,
    pub(super) include_usage: bool,
    /// Created by `message_start`, which names the message and model; `None` until then.
    pub(super) writer: Option<ChunkWriter>,
    /// The open `thinking` block, kept whole until it closes.
    pub(super) open_thinking: Option<OpenThinking>,
    pub(super) usage: UsageIn,
}

/// The one choice a Messages answer has.
pub(super) const CHOICE: u32 = 0;

impl EventStream {
    /// State for one response; `created` is the request's receive time.
    pub(super) fn new(created: u64, include_usage: bool) -> Self {
        Self {
            created,
            include_usage,
            writer: None,
            open_thinking: None,
            usage: UsageIn::default(),
        }
    }

    /// Dispatches one event by its `type` (the event name when the data has none).
    pub(super) fn handle(
        &mut self,
        name: &str,
        data: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        // UTF-8 is checked whole: serde checks it only in the strings it reads.
        let event: EventIn<'_> = serde_json::from_str(event_text(data)?)
            .map_err(|e| stream_malformed(&e.to_string()))?;
        let kind = event.kind.as_deref().unwrap_or(name);
        match kind {
            "message_start" => self.start(event, out),
            "content_block_start" => self.block_start(event, out),
            "content_block_delta" => self.block_delta(event, out),
            "content_block_stop" => {
                if let (Some(writer), Some(block)) = (self.writer.as_mut(), event.index) {
                    writer.close_call(CHOICE, block);
                }
                self.close_thinking(event.index, out)
            }
            "message_delta" => self.message_delta(event, out),
            "message_stop" => self.stop(out),
            "error" => Err(stream_error(event.error.unwrap_or_default())),
            // `ping` and event types newer than this adapter carry nothing to forward.
            _ => Ok(()),
        }
    }

    /// `message_start`: identity and input usage, and the role chunk.
    pub(super) fn start(
        &mut self,
        event: EventIn<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        if self.writer.is_some() {
            return Err(stream_malformed("a second message_start"));
        }
        let message = event
            .message
            .ok_or_else(|| stream_malformed("message_start without a message"))?;
        self.usage.update(message.usage);
        let writer = ChunkWriter::new(
            message.id.into_owned(),
            message.model.into_owned(),
            self.created,
            self.include_usage,
        );
        self.writer.insert(writer).open(CHOICE, out)
    }

    /// `content_block_start`: a tool call's head chunk (id, name, next index).
    pub(super) fn block_start(
        &mut self,
        event: EventIn<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let writer = self.writer()?;
        let Some(block) = event.content_block else {
            return Err(stream_malformed("content_block_start without a block"));
        };
        match block.kind.as_ref() {
            "tool_use" => {
                let (Some(id), Some(name), Some(index)) =
                    (block.id.as_deref(), block.name.as_deref(), event.index)
                else {
                    return Err(stream_malformed(
                        "a tool_use block without id, name or index",
                    ));
                };
                let call = writer.new_call(CHOICE, Some(index));
                writer.delta(CHOICE, tool_delta(call, Some((id, name)), ""), out)
            }
            // Text and thinking blocks start empty; anything they hold is sent like a delta.
            "text" => text(writer, block.text.as_deref(), Delta::content, out),
            "thinking" => {
                let Some(index) = event.index else {
                    return Err(stream_malformed("a thinking block without index"));
                };
                let thinking = block.thinking.as_deref().unwrap_or_default();
                text(writer, Some(thinking), Delta::reasoning, out)?;
                self.open_thinking = Some(OpenThinking {
                    index,
                    text: thinking.to_owned(),
                    signature: block.signature.as_deref().unwrap_or_default().to_owned(),
                });
                Ok(())
            }
            // Redacted thinking arrives whole in its start event and has no readable text.
            "redacted_thinking" => match block.thinking_block() {
                Some(whole) => writer.delta(CHOICE, Delta::thinking_block(whole), out),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// `content_block_stop` of the open thinking block: the whole block as `thinking_blocks`,
    /// so the client can send it back, signature included.
    pub(super) fn close_thinking(
        &mut self,
        index: Option<u64>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let Some(open) = self.open_thinking.take_if(|open| Some(open.index) == index) else {
            return Ok(());
        };
        let whole = ThinkingBlock::Thinking {
            thinking: Cow::Borrowed(&open.text),
            signature: Cow::Borrowed(&open.signature),
        };
        self.writer()?
            .delta(CHOICE, Delta::thinking_block(whole), out)
    }

    /// `content_block_delta`: text, reasoning or argument fragments.
    pub(super) fn block_delta(
        &mut self,
        event: EventIn<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        // The writer field alone, so the open thinking block can be kept up to date beside it.
        let writer = self.writer.as_mut().ok_or_else(before_start)?;
        let Some(delta) = event.delta else {
            return Err(stream_malformed("content_block_delta without a delta"));
        };
        match delta.kind.as_deref() {
            Some("text_delta") => text(writer, delta.text.as_deref(), Delta::content, out),
            Some("thinking_delta") => {
                let fragment = delta.thinking.as_deref();
                if let Some(open) = open_thinking_at(&mut self.open_thinking, event.index) {
                    open.text.push_str(fragment.unwrap_or_default());
                }
                text(writer, fragment, Delta::reasoning, out)
            }
            Some("signature_delta") => {
                if let Some(open) = open_thinking_at(&mut self.open_thinking, event.index) {
                    open.signature
                        .push_str(delta.signature.as_deref().unwrap_or_default());
                }
                Ok(())
            }
            Some("input_json_delta") => {
                // Blocks are told apart by their index, so fragments of calls that stream
                // side by side each reach their own call.
                let Some(call) = event
                    .index
                    .and_then(|block| writer.call_index(CHOICE, block))
                else {
                    return Err(stream_malformed(
                        "input_json_delta outside a tool_use block",
                    ));
                };
                match delta.partial_json.as_deref() {
                    None | Some("") => Ok(()),
                    Some(fragment) => writer.delta(CHOICE, tool_delta(call, None, fragment), out),
                }
            }
            // citations_delta has no OpenAI form.
            _ => Ok(()),
        }
    }

    /// `message_delta`: the final usage and the finish chunk.
    pub(super) fn message_delta(
        &mut self,
        event: EventIn<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(before_start());
        };
        if let Some(usage) = event.usage {
            self.usage.update(usage);
        }
        let stop_reason = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
        writer.finish(CHOICE, finish_reason(stop_reason), out)
    }

    /// `message_stop`: the usage chunk when asked for, then `[DONE]`.
    pub(super) fn stop(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(before_start());
        };
        // message_delta always comes first; if it did not, the message still ended.
        writer.finish(CHOICE, "stop", out)?;
        writer.end(self.usage.to_openai(), out)
    }

    /// The chunk writer: content may only follow `message_start`, which gives every chunk
    /// its id and model.
    pub(super) fn writer(&mut self) -> Result<&mut ChunkWriter, UpstreamFailure> {
        self.writer.as_mut().ok_or_else(before_start)
    }
}

/// A chunk of answer or thinking text (as `as_delta` makes it), unless the text is empty.
pub(super) fn text<'t>(
    writer: &mut ChunkWriter,
    text: Option<&'t str>,
    as_delta: fn(&'t str) -> Delta<'t>,
    out: &mut Vec<Bytes>,
) -> Result<(), UpstreamFailure> {
    match text {
        None | Some("") => Ok(()),
        Some(text) => writer.delta(CHOICE, as_delta(text), out),
    }
}

/// The open thinking block, when it is the one at `index`.
pub(super) fn open_thinking_at(
    open: &mut Option<OpenThinking>,
    index: Option<u64>,
) -> Option<&mut OpenThinking> {
    open.as_mut().filter(|open| Some(open.index) == index)
}

/// A `thinking` block between its start and stop events.
///
/// Its text is sent as `reasoning_content` as it comes, and kept as well: the signature that
/// closes the block vouches for the whole text, and the client can only send the block back
/// whole. This is the one piece of the answer the stream holds, for one block at a time.
pub(super) struct OpenThinking {
    /// Its content-block index.
    pub(super) index: u64,
    /// The thinking so far.
    pub(super) text: String,
    /// The signature so far (it comes in `signature_delta`s).
    pub(super) signature: String,
}

impl StreamTranslator for EventStream {
    /// Translates one event; nothing after `message_stop` is forwarded.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        if self.writer.as_ref().is_some_and(ChunkWriter::is_done) {
            return Ok(());
        }
        self.handle(event.name(), &event.data, out)
    }

    /// A body that ends before `message_stop` was cut short.
    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        require_end_marker(self.writer.as_ref().is_some_and(ChunkWriter::is_done))
    }

    /// The usage so far, once `message_start` has reported the input.
    fn usage(&self) -> Option<Usage> {
        self.writer
            .is_some()
            .then(|| self.usage.to_openai().totals())
    }
}

/// A tool call fragment; the first one of a call carries its id and name.
pub(super) fn tool_delta<'b>(
    index: usize,
    head: Option<(&'b str, &'b str)>,
    arguments: &'b str,
) -> Delta<'b> {
    Delta::tool_call(ToolCallDelta {
        index,
        id: head.map(|(id, _)| Cow::Borrowed(id)),
        kind: head.map(|_| "function"),
        function: FunctionDelta {
            name: head.map(|(_, name)| name),
            arguments: Cow::Borrowed(arguments),
        },
        extra_content: None,
    })
}

/// Content before `message_start`, which names the message every chunk carries.
pub(super) fn before_start() -> UpstreamFailure {
    stream_malformed("an event before message_start")
}

/// An event the translator cannot read: the stream ends with it.
pub(super) fn stream_malformed(what: &str) -> UpstreamFailure {
    UpstreamFailure::new(
        FailureKind::Stream,
        format!("the provider sent a malformed stream event ({what})"),
    )
}

/// An `event: error` after the 200 (reference 2.4): the stream ends with it.
pub(super) fn stream_error(error: ErrorIn) -> UpstreamFailure {
    let mut failure = UpstreamFailure::new(
        FailureKind::Stream,
        format!(
            "the provider reported an error mid-stream: {}: {}",
            error.kind.as_deref().unwrap_or("error"),
            error.message.as_deref().unwrap_or("no message")
        ),
    );
    failure.code = error.kind;
    failure
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use serde_json::{Value, json};

    use super::*;
    use crate::error::{FailureKind, UpstreamFailure};
    use crate::openai::DONE;
    use crate::openai::{ChatRequest, Usage};
    use crate::providers::anthropic::Anthropic;
    use crate::providers::anthropic::errors::classify;
    use crate::providers::anthropic::fixtures::{CREATED, target};
    use crate::providers::anthropic::response::translate_response;
    use crate::providers::{Adapter, StreamTranslator};
    use crate::sse::SseEvent;

    fn ev(name: &str, data: &str) -> SseEvent {
        SseEvent {
            name: Some(Bytes::copy_from_slice(name.as_bytes())),
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    #[test]
    fn events_that_are_not_json_or_not_utf8_are_stream_failures() {
        let mut not_utf8 = br#"{"type":"ping","note":"caf"#.to_vec();
        not_utf8.extend_from_slice(b"\xe9\"}");
        for data in [b"{not json".to_vec(), not_utf8] {
            let mut stream = EventStream::new(CREATED, false);
            let mut out = Vec::new();
            let start = stream.event(&ev("message_start", MESSAGE_START), &mut out);
            start.unwrap();
            let event = SseEvent {
                name: Some(Bytes::from_static(b"ping")),
                data: Bytes::from(data.clone()),
            };
            let failure = stream.event(&event, &mut out).unwrap_err();
            assert_eq!(failure.kind, FailureKind::Stream);
            assert!(
                failure.message.contains("UTF-8") || failure.message.contains("malformed"),
                "{}",
                failure.message
            );
        }
    }

    /// Feeds events (name, data) and returns the frames plus the first error, if any.
    fn run(
        events: &[(&str, &str)],
        include_usage: bool,
        finish: bool,
    ) -> (Vec<String>, Result<(), UpstreamFailure>, Option<Usage>) {
        let mut stream = EventStream::new(CREATED, include_usage);
        let mut out = Vec::new();
        let mut result = Ok(());
        for (name, data) in events {
            result = stream.event(&ev(name, data), &mut out);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() && finish {
            result = stream.finish(&mut out);
        }
        let frames = out
            .iter()
            .map(|frame| {
                let text = std::str::from_utf8(frame).unwrap();
                text.strip_prefix("data: ")
                    .and_then(|t| t.strip_suffix("\n\n"))
                    .unwrap()
                    .to_owned()
            })
            .collect();
        (frames, result, stream.usage())
    }

    const MESSAGE_START: &str = r#"{"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_creation_input_tokens":5,"cache_read_input_tokens":70}}}"#;

    /// A realistic sequence: thinking, text, a tool call whose arguments are split
    /// mid-token (inside a key, a string and a number, and a multi-byte character), pings.
    fn tool_stream() -> Vec<(&'static str, &'static str)> {
        vec![
            ("message_start", MESSAGE_START),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"User wants weather."}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking"}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" now."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_A","name":"get_weather","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"loc"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ation\": \"Z\u00fc"}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"rich\", \"days\": 1"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"0}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_B","name":"get_time","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":3}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":40}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]
    }

    /// Each call's argument fragments, joined in order, by OpenAI `index`; and the order
    /// the calls' head chunks (with their ids) came in.
    fn calls_by_index(frames: &[String]) -> (Vec<String>, Vec<(u64, String)>) {
        let mut arguments: Vec<String> = Vec::new();
        let mut heads = Vec::new();
        for frame in frames.iter().filter(|f| *f != DONE_TEXT) {
            let chunk: Value = serde_json::from_str(frame).unwrap();
            let Some(call) = chunk["choices"][0]["delta"]["tool_calls"].get(0) else {
                continue;
            };
            let index = call["index"].as_u64().unwrap();
            if let Some(id) = call["id"].as_str() {
                heads.push((index, id.to_owned()));
            }
            let slot = usize::try_from(index).unwrap();
            if arguments.len() <= slot {
                arguments.resize(slot + 1, String::new());
            }
            arguments[slot].push_str(call["function"]["arguments"].as_str().unwrap());
        }
        (arguments, heads)
    }

    const DONE_TEXT: &str = "[DONE]";

    #[test]
    fn interleaved_tool_use_blocks_each_get_their_own_index_with_arguments_intact() {
        let start = |block: u64, id: &str| {
            format!(
                r#"{{"type":"content_block_start","index":{block},"content_block":{{"type":"tool_use","id":"{id}","name":"f{block}","input":{{}}}}}}"#
            )
        };
        let part = |block: u64, json: &str| {
            let fragment = serde_json::to_string(json).unwrap();
            format!(
                r#"{{"type":"content_block_delta","index":{block},"delta":{{"type":"input_json_delta","partial_json":{fragment}}}}}"#
            )
        };
        let stop = |block: u64| format!(r#"{{"type":"content_block_stop","index":{block}}}"#);
        let owned: Vec<(&str, String)> = vec![
            ("message_start", MESSAGE_START.to_owned()),
            ("content_block_start", start(1, "toolu_1")),
            ("content_block_start", start(2, "toolu_2")),
            ("content_block_delta", part(2, r#"{"b":"#)),
            ("content_block_delta", part(1, r#"{"a":"x"#)),
            ("content_block_start", start(3, "toolu_3")),
            ("content_block_delta", part(3, r#"{"c":[1,"#)),
            ("content_block_delta", part(1, r#"y"}"#)),
            ("content_block_stop", stop(1)),
            ("content_block_delta", part(2, "2}")),
            ("content_block_delta", part(3, "2]}")),
            ("content_block_stop", stop(3)),
            ("content_block_stop", stop(2)),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#
                    .to_owned(),
            ),
            ("message_stop", r#"{"type":"message_stop"}"#.to_owned()),
        ];
        let events: Vec<(&str, &str)> = owned.iter().map(|(n, d)| (*n, d.as_str())).collect();
        let (frames, result, _) = run(&events, false, true);
        result.unwrap();
        let (arguments, heads) = calls_by_index(&frames);
        assert_eq!(
            heads,
            [
                (0, "toolu_1".to_owned()),
                (1, "toolu_2".to_owned()),
                (2, "toolu_3".to_owned())
            ]
        );
        assert_eq!(arguments, [r#"{"a":"xy"}"#, r#"{"b":2}"#, r#"{"c":[1,2]}"#]);
        // A fragment for a block that has stopped reaches no call.
        let mut late = events[..9].to_vec();
        let after_stop = part(1, "}");
        late.push(("content_block_delta", after_stop.as_str()));
        let (_, result, _) = run(&late, false, true);
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
    }

    #[test]
    fn stream_with_tool_calls_is_openai_shaped() {
        let (frames, result, usage) = run(&tool_stream(), true, true);
        result.unwrap();
        assert_eq!(frames.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        for chunk in &chunks {
            assert_eq!(chunk["id"], "msg_s1");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], CREATED);
            assert_eq!(chunk["model"], "claude-sonnet-4-5");
        }
        let deltas: Vec<&Value> = chunks[..chunks.len() - 1]
            .iter()
            .map(|c| &c["choices"][0]["delta"])
            .collect();
        assert_eq!(*deltas[0], json!({"role": "assistant", "content": ""}));
        assert_eq!(
            *deltas[1],
            json!({"reasoning_content": "User wants weather."})
        );
        // The thinking block closes whole, signature included, for the client to send back.
        assert_eq!(
            *deltas[2],
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "User wants weather.", "signature": "EqQB"}]})
        );
        assert_eq!(*deltas[3], json!({"content": "Checking"}));
        assert_eq!(*deltas[4], json!({"content": " now."}));
        assert_eq!(
            *deltas[5],
            json!({"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function",
                                    "function": {"name": "get_weather", "arguments": ""}}]})
        );
        assert_eq!(
            *deltas[6],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"loc"}}]})
        );
        // Fragments of the first call, joined, are its complete arguments.
        let joined: String = deltas[6..10]
            .iter()
            .map(|d| {
                assert_eq!(d["tool_calls"][0]["index"], 0);
                assert!(d["tool_calls"][0].get("id").is_none());
                d["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        let arguments: Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(arguments, json!({"location": "Zürich", "days": 10}));
        assert_eq!(deltas[10]["tool_calls"][0]["index"], 1);
        assert_eq!(deltas[10]["tool_calls"][0]["id"], "toolu_B");
        assert_eq!(deltas[11]["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(*deltas[12], json!({}));
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        // With include_usage, every chunk before the last says `"usage": null` explicitly.
        for chunk in &chunks[..chunks.len() - 1] {
            assert_eq!(chunk.get("usage"), Some(&Value::Null));
        }
        // Exactly one finish chunk, then the usage chunk with the last (cumulative) count.
        let finishes = chunks
            .iter()
            .filter(|c| !c["choices"][0]["finish_reason"].is_null() && c["choices"][0].is_object())
            .count();
        assert_eq!(finishes, 1);
        let usage_chunk = chunks.last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(
            usage_chunk["usage"],
            json!({"prompt_tokens": 100, "completion_tokens": 42, "total_tokens": 142,
                   "prompt_tokens_details": {"cached_tokens": 70, "cache_write_tokens": 5}})
        );
        assert_eq!(usage.unwrap().total_tokens, 142);
        assert_eq!(chunks.len(), 14);
    }

    #[test]
    fn usage_chunk_only_when_asked() {
        let (frames, result, usage) = run(&tool_stream(), false, true);
        result.unwrap();
        assert!(frames.iter().all(|f| !f.contains("\"usage\"")));
        assert_eq!(frames.len(), 14);
        assert_eq!(usage.unwrap().completion_tokens, 42);
    }

    #[test]
    fn thinking_blocks_stream_whole_when_they_close() {
        let events = [
            ("message_start", MESSAGE_START),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"Two \"parts\""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":", é."}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"+/=="}}"#,
            ),
            // Another block's stop does not close it.
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":7}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let (frames, result, _) = run(&events, false, true);
        result.unwrap();
        let deltas: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str::<Value>(f).unwrap()["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            deltas[1..5],
            [
                json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "EmwKAhgB"}]}),
                json!({"reasoning_content": "Two \"parts\""}),
                json!({"reasoning_content": ", é."}),
                json!({"thinking_blocks": [{"type": "thinking", "thinking": "Two \"parts\", é.",
                                            "signature": "EqQB+/=="}]}),
            ]
        );
        // Then only the finish chunk: the block was sent once.
        assert_eq!(deltas.len(), 6);
    }

    #[test]
    fn error_event_mid_stream_ends_it() {
        let events = [
            ("message_start", MESSAGE_START),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            ),
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        ];
        let (frames, result, _) = run(&events, true, true);
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Stream);
        assert_eq!(failure.code.as_deref(), Some("overloaded_error"));
        assert!(failure.message.contains("Overloaded"));
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f != "[DONE]"));
    }

    #[test]
    fn broken_streams_are_errors() {
        let text_start =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        // Cut short: no message_stop.
        let (frames, result, usage) = run(
            &[
                ("message_start", MESSAGE_START),
                ("content_block_start", text_start),
            ],
            false,
            true,
        );
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
        assert_eq!(frames.len(), 1);
        assert_eq!(usage.unwrap().prompt_tokens, 100);
        // Nothing at all.
        assert!(run(&[], false, true).1.is_err());
        // Malformed JSON.
        assert!(
            run(
                &[
                    ("message_start", MESSAGE_START),
                    ("content_block_delta", "{\"type\":")
                ],
                false,
                false
            )
            .1
            .is_err()
        );
        // Content before message_start.
        assert!(
            run(&[("content_block_start", text_start)], false, false)
                .1
                .is_err()
        );
        // Argument fragments for a block that is not an open tool call.
        let stray = r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert!(
            run(
                &[
                    ("message_start", MESSAGE_START),
                    ("content_block_start", text_start),
                    ("content_block_delta", stray)
                ],
                false,
                false
            )
            .1
            .is_err()
        );
    }

    #[test]
    fn events_after_message_stop_are_ignored() {
        let mut events = tool_stream();
        events.push(("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"late"}}"#));
        let (frames, result, _) = run(&events, false, true);
        result.unwrap();
        assert_eq!(frames.last().unwrap(), "[DONE]");
        assert!(frames.iter().all(|f| !f.contains("late")));
    }

    #[test]
    fn event_type_falls_back_to_the_event_name() {
        let (frames, result, _) = run(
            &[
                ("message_start", MESSAGE_START),
                ("ping", "{}"),
                (
                    "message_delta",
                    r#"{"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
                ),
                ("message_stop", "{}"),
            ],
            false,
            true,
        );
        result.unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames[1].contains("\"finish_reason\":\"stop\""));
    }

    // --- never panic ---

    /// xorshift64*: a deterministic generator, so failures reproduce from the seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        fn text(&mut self) -> String {
            let pieces = [
                "a", " ", "é", "\"", "\\", "{", "}", "日本", "\n", "0", "😀", "\u{0}",
            ];
            (0..self.below(6)).map(|_| self.pick(&pieces)).collect()
        }
    }

    /// One arbitrary upstream event: well-formed shapes with random values, or garbage.
    fn arbitrary_event(rng: &mut Rng) -> (String, Vec<u8>) {
        let index = rng.below(4);
        let s = |v: String| serde_json::to_string(&v).unwrap();
        let numbers = [
            "0",
            "1",
            "18446744073709551615",
            "-1",
            "null",
            "\"7\"",
            "1.5",
        ];
        let reasons = [
            "\"end_turn\"",
            "\"tool_use\"",
            "\"max_tokens\"",
            "\"refusal\"",
            "null",
            "3",
            "\"new\"",
        ];
        let block_kinds = [
            "text",
            "tool_use",
            "thinking",
            "redacted_thinking",
            "server_tool_use",
            "",
        ];
        let delta_kinds = [
            "text_delta",
            "input_json_delta",
            "thinking_delta",
            "signature_delta",
            "citations_delta",
            "x",
        ];
        let (name, data) = match rng.below(14) {
            0 => (
                "message_start",
                format!(
                    r#"{{"type":"message_start","message":{{"id":{},"model":{},"usage":{{"input_tokens":{},"cache_read_input_tokens":{}}}}}}}"#,
                    s(rng.text()),
                    s(rng.text()),
                    rng.pick(&numbers),
                    rng.pick(&numbers)
                ),
            ),
            1 => ("message_start", r#"{"type":"message_start"}"#.to_owned()),
            2 => (
                "content_block_start",
                format!(
                    r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"{}","id":{},"name":{},"text":{},"thinking":{}}}}}"#,
                    rng.pick(&block_kinds),
                    s(rng.text()),
                    s(rng.text()),
                    s(rng.text()),
                    s(rng.text())
                ),
            ),
            3 => (
                "content_block_start",
                format!(
                    r#"{{"type":"content_block_start","index":{}}}"#,
                    rng.pick(&numbers)
                ),
            ),
            4..=6 => (
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{}","text":{},"partial_json":{},"thinking":{}}}}}"#,
                    rng.pick(&delta_kinds),
                    s(rng.text()),
                    s(rng.text()),
                    s(rng.text())
                ),
            ),
            7 => (
                "content_block_stop",
                format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
            ),
            8 => (
                "message_delta",
                format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":{}}},"usage":{{"output_tokens":{}}}}}"#,
                    rng.pick(&reasons),
                    rng.pick(&numbers)
                ),
            ),
            9 => ("message_stop", r#"{"type":"message_stop"}"#.to_owned()),
            10 => ("ping", r#"{"type":"ping"}"#.to_owned()),
            11 => (
                "error",
                format!(
                    r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
                    s(rng.text()),
                    s(rng.text())
                ),
            ),
            12 => {
                let garbage: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
                return (rng.text(), garbage);
            }
            _ => (
                "?",
                rng.pick(&[
                    "[]",
                    "1",
                    "null",
                    "{\"type\":5}",
                    "{\"type\":\"message_start\",\"message\":[]}",
                    "",
                    "{",
                ])
                .to_owned(),
            ),
        };
        let mut data = data.into_bytes();
        if rng.below(20) == 0 {
            let cut = rng.below(data.len() + 1);
            data.truncate(cut);
        }
        (name.to_owned(), data)
    }

    #[test]
    fn arbitrary_event_sequences_never_panic_and_emit_only_valid_frames() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..3000 {
            let mut stream = EventStream::new(CREATED, rng.below(2) == 0);
            let mut out = Vec::new();
            for _ in 0..rng.below(30) {
                let (name, data) = arbitrary_event(&mut rng);
                let event = SseEvent {
                    name: Some(Bytes::from(name)),
                    data: Bytes::from(data),
                };
                // Keep feeding after an error: the translator must stay total either way.
                let _ = stream.event(&event, &mut out);
            }
            let _ = stream.finish(&mut out);
            let _ = stream.usage();
            for frame in &out {
                let payload = frame
                    .strip_prefix(b"data: ")
                    .and_then(|f| f.strip_suffix(b"\n\n"))
                    .unwrap();
                assert!(payload == DONE || serde_json::from_slice::<Value>(payload).is_ok());
            }
        }
    }

    #[test]
    fn well_formed_streams_round_trip_text_and_arguments() {
        let mut rng = Rng(42);
        for _ in 0..300 {
            let mut events = vec![("message_start".to_owned(), MESSAGE_START.to_owned())];
            let mut text = String::new();
            let mut calls: Vec<(String, Value)> = Vec::new();
            for block in 0..rng.below(5) {
                if rng.below(2) == 0 {
                    events.push(("content_block_start".into(), format!(r#"{{"type":"content_block_start","index":{block},"content_block":{{"type":"text","text":""}}}}"#)));
                    for _ in 0..rng.below(4) {
                        let piece = rng.text();
                        text.push_str(&piece);
                        events.push(("content_block_delta".into(), json!({"type":"content_block_delta","index":block,"delta":{"type":"text_delta","text":piece}}).to_string()));
                    }
                } else {
                    let id = format!("toolu_{block}");
                    let input = json!({"k": rng.text(), "n": rng.next() % 1000, "nested": {"list": [rng.text()]}});
                    let serialized = input.to_string();
                    events.push(("content_block_start".into(), json!({"type":"content_block_start","index":block,"content_block":{"type":"tool_use","id":id,"name":"f","input":{}}}).to_string()));
                    let chars: Vec<char> = serialized.chars().collect();
                    let mut at = 0;
                    while at < chars.len() {
                        let len = 1 + rng.below(6);
                        let fragment: String =
                            chars[at..(at + len).min(chars.len())].iter().collect();
                        at += len;
                        events.push(("content_block_delta".into(), json!({"type":"content_block_delta","index":block,"delta":{"type":"input_json_delta","partial_json":fragment}}).to_string()));
                        if rng.below(5) == 0 {
                            events.push(("ping".into(), r#"{"type":"ping"}"#.into()));
                        }
                    }
                    calls.push((id, input));
                }
                events.push((
                    "content_block_stop".into(),
                    format!(r#"{{"type":"content_block_stop","index":{block}}}"#),
                ));
            }
            events.push(("message_delta".into(), r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#.into()));
            events.push(("message_stop".into(), r#"{"type":"message_stop"}"#.into()));
            let borrowed: Vec<(&str, &str)> = events
                .iter()
                .map(|(n, d)| (n.as_str(), d.as_str()))
                .collect();
            let (frames, result, _) = run(&borrowed, false, true);
            result.unwrap();
            let mut got_text = String::new();
            let mut got_calls: Vec<(String, String)> = Vec::new();
            for frame in &frames[..frames.len() - 1] {
                let chunk: Value = serde_json::from_str(frame).unwrap();
                let delta = &chunk["choices"][0]["delta"];
                got_text.push_str(delta["content"].as_str().unwrap_or_default());
                if let Some(call) = delta["tool_calls"].get(0) {
                    let index = call["index"].as_u64().unwrap() as usize;
                    if let Some(id) = call["id"].as_str() {
                        assert_eq!(index, got_calls.len());
                        got_calls.push((id.to_owned(), String::new()));
                    }
                    got_calls[index]
                        .1
                        .push_str(call["function"]["arguments"].as_str().unwrap());
                }
            }
            assert_eq!(got_text, text);
            assert_eq!(got_calls.len(), calls.len());
            for ((id, arguments), (want_id, want)) in got_calls.iter().zip(&calls) {
                assert_eq!(id, want_id);
                assert_eq!(&serde_json::from_str::<Value>(arguments).unwrap(), want);
            }
        }
    }

    /// One arbitrary OpenAI request, mostly well-typed so it passes the front door.
    fn arbitrary_request(rng: &mut Rng) -> String {
        let roles = ["system", "developer", "user", "assistant", "tool"];
        let urls = [
            "data:image/png;base64,AA==",
            "data:image/bmp;base64,AA==",
            "data:,x",
            "data:image/png;base64",
            "https://x/y.png",
            "file:///etc",
            "",
            "data:",
        ];
        let kinds = ["text", "image_url", "input_audio", "file", "refusal", ""];
        let args = [
            "{}",
            "",
            "{\"a\":1}",
            "[1]",
            "{\"a\":",
            "null",
            " { } ",
            "\"x\"",
        ];
        let ids = ["call_1", "call.1", "", "é", "toolu_x"];
        let choices = [
            r#""auto""#,
            r#""none""#,
            r#""required""#,
            r#""x""#,
            r#"{"type":"function","function":{"name":"f"}}"#,
            r#"{"type":"function"}"#,
            "null",
            "3",
        ];
        let formats = [
            r#"{"type":"text"}"#,
            r#"{"type":"json_object"}"#,
            r#"{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}"#,
            r#"{"type":"json_schema"}"#,
            r#"{"type":"x"}"#,
            "null",
            "7",
        ];
        let mut messages = Vec::new();
        for _ in 0..rng.below(6) + 1 {
            let role = rng.pick(&roles);
            let content = match rng.below(4) {
                0 => Value::String(rng.text()),
                1 => Value::Null,
                _ => Value::Array(
                    (0..rng.below(3))
                        .map(|_| json!({"type": rng.pick(&kinds), "text": rng.text(), "image_url": {"url": rng.pick(&urls)}}))
                        .collect(),
                ),
            };
            let mut message = json!({"role": role, "content": content});
            if role == "tool" || rng.below(4) == 0 {
                message["tool_call_id"] = json!(rng.pick(&ids));
            }
            if role == "assistant" && rng.below(2) == 0 {
                message["tool_calls"] = json!([{"id": rng.pick(&ids), "type": "function", "function": {"name": "f", "arguments": rng.pick(&args)}}]);
            }
            messages.push(message);
        }
        let mut body = json!({"model": "m", "messages": messages});
        let optional: [(&str, Value); 14] = [
            ("temperature", json!(rng.below(3) as f64 * 0.9)),
            ("top_p", json!(0.5)),
            ("n", json!(rng.below(3))),
            ("max_tokens", json!(rng.below(5))),
            ("stop", json!(["", rng.text()])),
            (
                "tools",
                json!([{"type": rng.pick(&["function", "custom"]), "function": {"name": "f", "parameters": rng.pick(&["null", "{}"]).parse::<Value>().unwrap()}}]),
            ),
            ("tool_choice", rng.pick(&choices).parse::<Value>().unwrap()),
            ("parallel_tool_calls", json!(rng.below(2) == 0)),
            (
                "response_format",
                rng.pick(&formats).parse::<Value>().unwrap(),
            ),
            ("user", json!(rng.text())),
            ("stream", json!(rng.below(2) == 0)),
            ("logprobs", json!(rng.below(2) == 0)),
            ("logit_bias", json!({})),
            ("seed", json!(1)),
        ];
        for (key, value) in optional {
            if rng.below(3) == 0 {
                body[key] = value;
            }
        }
        body.to_string()
    }

    #[test]
    fn arbitrary_requests_never_panic_and_valid_ones_alternate() {
        let mut rng = Rng(7);
        let target = target("claude/claude-x");
        let mut translated = 0;
        for _ in 0..5000 {
            let body = arbitrary_request(&mut rng);
            let Ok(chat) = ChatRequest::parse(body.as_bytes()) else {
                continue;
            };
            let Ok(request) = Anthropic.request(&chat, &target) else {
                continue;
            };
            translated += 1;
            let json: Value = serde_json::from_slice(&request.body).unwrap();
            assert!(json["max_tokens"].as_u64().is_some());
            let turns = json["messages"].as_array().unwrap();
            assert!(!turns.is_empty());
            for pair in turns.windows(2) {
                assert_ne!(pair[0]["role"], pair[1]["role"], "{body}");
            }
            for turn in turns {
                let content = turn["content"].as_array().unwrap();
                assert!(!content.is_empty());
                for block in content {
                    assert_ne!(block["text"], "", "{body}");
                    if let Some(id) = block.get("id").or(block.get("tool_use_id")) {
                        let id = id.as_str().unwrap();
                        assert!(
                            !id.is_empty()
                                && id
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        );
                    }
                }
            }
        }
        assert!(
            translated > 100,
            "only {translated} requests were translatable"
        );
        // And arbitrary bytes as answers or error bodies.
        for _ in 0..2000 {
            let garbage: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = translate_response(&garbage, 0);
            let _ = classify(
                StatusCode::from_u16(400 + rng.below(200) as u16).unwrap(),
                &HeaderMap::new(),
                &garbage,
            );
        }
    }
}
