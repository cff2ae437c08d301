//! Server-sent events: an incremental decoder that is safe across chunk boundaries, and the
//! encoder of OpenAI `data:` frames.
//!
//! The decoder follows the WHATWG event-stream rules the providers rely on: LF, CRLF or CR line
//! ends, `data:` lines joined with `\n`, one optional space after the colon, `event:` names,
//! `:` comment lines (keep-alives) and `id:`/`retry:` ignored. A single-line `data:` payload is
//! handed out as a slice of the received bytes, without a copy.

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr2;

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, when the upstream sent one.
    pub name: Option<Bytes>,
    /// The `data:` payload.
    pub data: Bytes,
}

impl SseEvent {
    /// The event name as text (empty when absent or not UTF-8).
    pub fn name(&self) -> &str {
        self.name
            .as_deref()
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or("")
    }
}

/// The upstream sent an event larger than the decoder will hold.
#[derive(Debug, thiserror::Error)]
#[error("upstream event exceeds {limit} bytes")]
pub struct EventTooLarge {
    /// The limit that was exceeded.
    pub limit: usize,
}

/// Incremental event-stream decoder.
#[derive(Debug)]
pub struct SseDecoder {
    buf: BytesMut,
    /// Where the search for the end of the current event resumes.
    scanned: usize,
    max_event: usize,
    /// Whether a block of bare JSON is handed out as data (see [`Self::with_bare_json`]).
    bare_json: bool,
}

impl SseDecoder {
    /// A decoder that refuses events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            max_event,
            bare_json: false,
        }
    }

    /// With `bare_json`, a block of JSON written without any field (an object or array where
    /// `data:` lines belong), which the event-stream rules would ignore, is handed out as the
    /// data of an unnamed event: Gemini writes its error that way when a stream fails after
    /// it started, and dropping it would hide why the stream ended.
    pub fn with_bare_json(mut self, bare_json: bool) -> Self {
        self.bare_json = bare_json;
        self
    }

    /// Adds received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if one has arrived.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, EventTooLarge> {
        loop {
            let Some(end) = self.find_event_end() else {
                if self.buf.len() > self.max_event {
                    return Err(EventTooLarge {
                        limit: self.max_event,
                    });
                }
                return Ok(None);
            };
            let block = self.buf.split_to(end).freeze();
            self.scanned = 0;
            if let Some(event) = self.parse(&block) {
                return Ok(Some(event));
            }
        }
    }

    /// The event left when the stream ended without a final blank line, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buf).freeze();
        self.scanned = 0;
        self.parse(&rest)
    }

    /// The event of one block, bare JSON included when asked for.
    fn parse(&self, block: &Bytes) -> Option<SseEvent> {
        parse_block(block).or_else(|| self.bare_json.then(|| bare_json(block)).flatten())
    }

    /// Finds the end (past the blank line) of the first complete event in the buffer.
    fn find_event_end(&mut self) -> Option<usize> {
        let mut line_start = self.scanned;
        while let Some(offset) = memchr2(b'\n', b'\r', &self.buf[line_start..]) {
            let end = line_start + offset;
            let terminator_len = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                // A CR at the end of what we have may be the first half of a CRLF.
                (b'\r', None) => break,
                _ => 1,
            };
            let blank_line = end == line_start;
            line_start = end + terminator_len;
            if blank_line {
                return Some(line_start);
            }
        }
        self.scanned = line_start;
        None
    }
}

/// Parses one event block (lines up to and including the blank line). `None` when the block
/// carries no data (comments, ids, retry hints).
fn parse_block(block: &Bytes) -> Option<SseEvent> {
    let mut name = None;
    let mut data: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    for (start, end) in lines(block) {
        let line = &block[start..end];
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (field, value_start) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let skip = usize::from(line.get(colon + 1) == Some(&b' '));
                (&line[..colon], start + colon + 1 + skip)
            }
            None => (line, end),
        };
        let value = block.slice(value_start..end);
        match field {
            b"data" => match (&mut joined, data.take()) {
                (Some(buf), _) => {
                    buf.put_u8(b'\n');
                    buf.extend_from_slice(&value);
                }
                (None, Some(first)) => {
                    let mut buf = BytesMut::with_capacity(first.len() + value.len() + 1);
                    buf.extend_from_slice(&first);
                    buf.put_u8(b'\n');
                    buf.extend_from_slice(&value);
                    joined = Some(buf);
                }
                (None, None) => data = Some(value),
            },
            b"event" => name = Some(value),
            _ => {}
        }
    }
    let data = joined.map(BytesMut::freeze).or(data)?;
    Some(SseEvent { name, data })
}

/// A block that is nothing but a JSON object or array (surrounding whitespace aside) as an
/// unnamed event; `None` for anything else (comments, ids, stray text).
fn bare_json(block: &Bytes) -> Option<SseEvent> {
    let start = block.iter().position(|b| !b.is_ascii_whitespace())?;
    if !matches!(block[start], b'{' | b'[') {
        return None;
    }
    let end = block.iter().rposition(|b| !b.is_ascii_whitespace())? + 1;
    Some(SseEvent {
        name: None,
        data: block.slice(start..end),
    })
}

/// The (start, end) of each line in `block`, terminators excluded.
fn lines(block: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= block.len() {
            return None;
        }
        let start = pos;
        let end =
            memchr2(b'\n', b'\r', &block[start..]).map_or(block.len(), |offset| start + offset);
        pos = match block.get(end) {
            Some(b'\r') => end + 1 + usize::from(block.get(end + 1) == Some(&b'\n')),
            Some(_) => end + 1,
            None => end,
        };
        Some((start, end))
    })
}

/// One OpenAI SSE frame: `data: <payload>\n\n`. A payload of several lines (an upstream may
/// split one event over several `data:` lines) gets one `data: ` field per line, so the client
/// reassembles exactly the same payload.
pub fn data_frame(payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 8);
    if memchr::memchr(b'\n', payload).is_none() {
        // The usual case, without splitting byte by byte.
        frame.put_slice(b"data: ");
        frame.put_slice(payload);
        frame.put_slice(b"\n\n");
        return frame.freeze();
    }
    for line in payload.split(|&b| b == b'\n') {
        frame.put_slice(b"data: ");
        frame.put_slice(line);
        frame.put_u8(b'\n');
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

/// Whether `frame` is the `data: [DONE]` frame that ends an OpenAI stream.
pub fn is_done_frame(frame: &[u8]) -> bool {
    frame == b"data: [DONE]\n\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Vec<(String, String)> {
        decode_with(SseDecoder::new(1 << 20), input, step)
    }

    fn decode_with(mut decoder: SseDecoder, input: &[u8], step: usize) -> Vec<(String, String)> {
        let mut events = Vec::new();
        for chunk in input.chunks(step) {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event().unwrap() {
                events.push(event);
            }
        }
        events.extend(decoder.finish());
        events
            .into_iter()
            .map(|e| {
                (
                    e.name().to_owned(),
                    String::from_utf8(e.data.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    const ANTHROPIC_LIKE: &[u8] = b"event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: ping\r\ndata: {}\r\n\r\ndata: line1\ndata:line2\n\nid: 7\nretry: 10\n\ndata: [DONE]\n\n";

    #[test]
    fn decodes_names_multiline_data_comments_and_crlf() {
        let expected = vec![
            ("message_start".to_owned(), "{\"a\":1}".to_owned()),
            ("ping".to_owned(), "{}".to_owned()),
            (String::new(), "line1\nline2".to_owned()),
            (String::new(), "[DONE]".to_owned()),
        ];
        assert_eq!(decode_all(ANTHROPIC_LIKE, ANTHROPIC_LIKE.len()), expected);
    }

    /// Gemini's failure after the stream started: a data event, then its error object written
    /// bare and pretty-printed, once with a blank line after it, once cut off by the end.
    const BARE_ERROR: &[u8] = b"data: {\"a\":1}\r\n\r\n: comment\r\n\r\n{\r\n  \"error\": {\r\n    \"code\": 500,\r\n    \"status\": \"INTERNAL\"\r\n  }\r\n}\r\n\r\n[{\"error\": {\"code\": 503}}]\n";

    #[test]
    fn bare_json_blocks_are_events_only_when_asked_for() {
        let asked = || SseDecoder::new(1 << 20).with_bare_json(true);
        let expected = vec![
            (String::new(), "{\"a\":1}".to_owned()),
            (
                String::new(),
                "{\r\n  \"error\": {\r\n    \"code\": 500,\r\n    \"status\": \"INTERNAL\"\r\n  }\r\n}"
                    .to_owned(),
            ),
            (String::new(), "[{\"error\": {\"code\": 503}}]".to_owned()),
        ];
        for step in 1..=BARE_ERROR.len() {
            assert_eq!(
                decode_with(asked(), BARE_ERROR, step),
                expected,
                "step {step}"
            );
        }
        assert_eq!(decode_all(BARE_ERROR, BARE_ERROR.len()), expected[..1]);
        // Well-formed streams decode as before.
        assert_eq!(
            decode_with(asked(), ANTHROPIC_LIKE, 1),
            decode_all(ANTHROPIC_LIKE, 1)
        );
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let whole = decode_all(ANTHROPIC_LIKE, ANTHROPIC_LIKE.len());
        for step in 1..ANTHROPIC_LIKE.len() {
            assert_eq!(decode_all(ANTHROPIC_LIKE, step), whole, "step {step}");
        }
    }

    #[test]
    fn cr_only_line_ends_work() {
        let events = decode_all(b"data: a\r\rdata: b\r\r", 1);
        assert_eq!(
            events,
            vec![(String::new(), "a".into()), (String::new(), "b".into())]
        );
    }

    #[test]
    fn trailing_event_without_blank_line_is_returned_by_finish() {
        let events = decode_all(b"data: a\n\ndata: tail", 3);
        assert_eq!(events.last().unwrap().1, "tail");
    }

    #[test]
    fn single_line_data_is_not_copied() {
        let mut decoder = SseDecoder::new(1024);
        decoder.push(b"data: {\"x\":\"\\u00e9 1000.00\"}\n\n");
        let event = decoder.next_event().unwrap().unwrap();
        assert_eq!(&event.data[..], b"{\"x\":\"\\u00e9 1000.00\"}");
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut decoder = SseDecoder::new(16);
        decoder.push(b"data: 0123456789abcdefghij");
        assert!(decoder.next_event().is_err());
    }

    #[test]
    fn frames_are_openai_shaped() {
        assert_eq!(&data_frame(b"[DONE]")[..], b"data: [DONE]\n\n");
        assert!(is_done_frame(&data_frame(b"[DONE]")));
    }

    #[test]
    fn multi_line_payloads_round_trip() {
        let frame = data_frame(b"{\"a\":\n1}");
        assert_eq!(&frame[..], b"data: {\"a\":\ndata: 1}\n\n");
        let mut decoder = SseDecoder::new(1024);
        decoder.push(&frame);
        assert_eq!(
            &decoder.next_event().unwrap().unwrap().data[..],
            b"{\"a\":\n1}"
        );
    }
}
