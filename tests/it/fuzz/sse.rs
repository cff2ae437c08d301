//! The SSE decoder: any bytes in any chunks never panic, and a well-formed event stream
//! decodes to the same events however it is split.

use proptest::collection::vec;
use proptest::prelude::*;
use switchboard::sse::SseDecoder;

use super::cases;

/// One event as the tests compare it: the name, when sent, and the data.
type Decoded = (Option<Vec<u8>>, Vec<u8>);

/// Feeds `input` in pieces cut at `cuts` (positions, any order, out of range ones clamped)
/// and collects every event, `finish` included. `None` when an event was too large.
fn decode(input: &[u8], cuts: &[usize], max_event: usize) -> Option<Vec<Decoded>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut decoder = SseDecoder::new(max_event);
    let mut events = Vec::new();
    let mut from = 0;
    for cut in cuts {
        decoder.push(&input[from..cut]);
        from = cut;
        while let Some(event) = decoder.next_event().ok()? {
            events.push(event);
        }
    }
    events.extend(decoder.finish());
    Some(
        events
            .into_iter()
            .map(|e| (e.name.map(|n| n.to_vec()), e.data.to_vec()))
            .collect(),
    )
}

/// A line of a well-formed stream, before its line end is chosen.
#[derive(Clone, Debug)]
enum Line {
    /// `data: <text>` (or `data:<text>` without the optional space).
    Data { text: String, space: bool },
    /// `data` alone: an empty data line.
    BareData,
    /// `event: <name>`.
    Event(String),
    /// `: comment` (a keep-alive).
    Comment(String),
    /// `id:` and `retry:`, ignored.
    Ignored(String),
}

/// Text of one line: anything but CR and LF, a leading space included.
fn line_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\r\n]{0,24}",
        Just(String::new()),
        Just(" leading space".to_owned()),
        Just(r#"{"choices":[{"delta":{"content":"caf\u00e9 1000.00"}}]}"#.to_owned()),
        Just("[DONE]".to_owned()),
    ]
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => (line_text(), any::<bool>()).prop_map(|(text, space)| Line::Data { text, space }),
        1 => Just(Line::BareData),
        1 => "[a-z_]{0,12}".prop_map(Line::Event),
        1 => line_text().prop_map(Line::Comment),
        1 => prop_oneof![Just("id: 7".to_owned()), Just("retry: 10".to_owned())].prop_map(Line::Ignored),
    ]
}

fn line_end() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
}

/// A well-formed stream: events of 1 to 5 lines, each line and each closing blank line with
/// its own line end (mixes included); the last blank line may be missing.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Decoded>)> {
    let event = (vec((line(), line_end()), 1..5), line_end());
    (vec(event, 0..8), any::<bool>()).prop_map(|(events, close_last)| {
        let mut text = String::new();
        let mut expected = Vec::new();
        let count = events.len();
        for (i, (lines, blank)) in events.into_iter().enumerate() {
            let mut name = None;
            let mut data: Option<Vec<u8>> = None;
            let mut last_end = "";
            for (line, end) in lines {
                let value = match line {
                    Line::Data { text: value, space } => {
                        let colon = if space { ": " } else { ":" };
                        // Without the space, a leading space of the text is the optional one.
                        let kept = if space {
                            value.as_str()
                        } else {
                            value.strip_prefix(' ').unwrap_or(&value)
                        };
                        text.push_str(&format!("data{colon}{value}"));
                        Some(kept.as_bytes().to_vec())
                    }
                    Line::BareData => {
                        text.push_str("data");
                        Some(Vec::new())
                    }
                    Line::Event(event) => {
                        text.push_str(&format!("event: {event}"));
                        name = Some(event.into_bytes());
                        None
                    }
                    Line::Comment(comment) => {
                        text.push_str(&format!(":{comment}"));
                        None
                    }
                    Line::Ignored(line) => {
                        text.push_str(&line);
                        None
                    }
                };
                text.push_str(end);
                last_end = end;
                if let Some(value) = value {
                    data = Some(match data {
                        Some(mut joined) => {
                            joined.push(b'\n');
                            joined.extend(value);
                            joined
                        }
                        None => value,
                    });
                }
            }
            if close_last || i + 1 < count {
                // A CR line end and an LF blank line would read as one CRLF.
                text.push_str(if last_end == "\r" && blank == "\n" {
                    "\r\n"
                } else {
                    blank
                });
            }
            if let Some(data) = data {
                expected.push((name, data));
            }
        }
        (text.into_bytes(), expected)
    })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn fuzz_sse_any_bytes_in_any_chunks_never_panic(
        input in vec(any::<u8>(), 0..2048),
        cuts in vec(any::<usize>(), 0..16),
        max_event in 1usize..4096,
    ) {
        let Some(events) = decode(&input, &cuts, max_event) else {
            return Ok(());
        };
        // The decoder only hands out what it received: names and data are the input's own
        // bytes, each data line end at most one `\n`.
        let out: usize = events.iter().map(|(n, d)| n.as_ref().map_or(0, Vec::len) + d.len()).sum();
        prop_assert!(out <= input.len());
    }

    #[test]
    fn fuzz_sse_an_endless_line_is_refused_at_the_limit(
        line in vec(any::<u8>().prop_filter("no line end", |b| !matches!(b, b'\r' | b'\n')), 1..512),
        chunk in 1usize..64,
        max_event in 0usize..256,
    ) {
        // Memory stays bounded: an event that never ends is refused once it passes the limit,
        // in whatever chunks it arrives.
        let mut decoder = SseDecoder::new(max_event);
        let mut held = 0;
        let mut refused = false;
        for piece in line.chunks(chunk) {
            decoder.push(piece);
            held += piece.len();
            match decoder.next_event() {
                Ok(event) => prop_assert!(event.is_none() && held <= max_event),
                Err(_) => {
                    refused = true;
                    break;
                }
            }
        }
        prop_assert_eq!(refused, line.len() > max_event);
    }

    #[test]
    fn fuzz_sse_well_formed_streams_decode_the_same_however_split(
        (input, expected) in stream(),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        prop_assert_eq!(decode(&input, &[], 1 << 20), Some(expected.clone()));
        prop_assert_eq!(decode(&input, &cuts, 1 << 20), Some(expected.clone()));
        let every_byte: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(decode(&input, &every_byte, 1 << 20), Some(expected));
    }
}
