//! The checks of a whole JSON text that serde's lazy parse leaves out.
//!
//! [`crate::openai::ChatRequest::parse`] types only the members the router reads; the rest it
//! skips without decoding (unknown members) or borrows raw (`tools[].function.parameters`,
//! `response_format`, ...). serde_json skips such values without a depth limit, without
//! checking that their strings are UTF-8 and without looking at their `\u` escapes, so a body
//! nested ten thousand levels deep, or carrying invalid UTF-8 or a lone UTF-16 surrogate in a
//! member nobody reads, would reach a provider, whose parser may choke on it with a 500 that
//! cools the provider down for every client. [`check`] refuses such a body first.

use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use memchr::{memchr_iter, memchr2};

/// The deepest nesting of arrays and objects a body may have. The body's own object is level
/// 1, so `{"a":[{}]}` is 3 levels deep. 128 is serde_json's own recursion limit, which the
/// router's typed fields already live under.
pub const MAX_DEPTH: usize = 128;

/// What makes a JSON text unfit to pass on. Offsets are byte offsets into the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    /// A byte sequence that is not UTF-8.
    #[error("The request body is not valid UTF-8 (byte offset {offset}).")]
    InvalidUtf8 {
        /// Where the first invalid sequence starts.
        offset: usize,
    },
    /// An array or object nested deeper than [`MAX_DEPTH`].
    #[error("The request body is nested deeper than {MAX_DEPTH} levels (byte offset {offset}).")]
    TooDeep {
        /// Where the first array or object too deep opens.
        offset: usize,
    },
    /// A `\u` escape of half a UTF-16 surrogate pair, which no Unicode text can hold.
    #[error(
        "The request body contains a lone UTF-16 surrogate escape, which is not valid Unicode \
         (byte offset {offset})."
    )]
    LoneSurrogate {
        /// Where the escape's backslash is.
        offset: usize,
    },
}

impl Poison {
    /// Where in the text the problem is.
    pub fn offset(self) -> usize {
        match self {
            Self::InvalidUtf8 { offset }
            | Self::TooDeep { offset }
            | Self::LoneSurrogate { offset } => offset,
        }
    }
}

/// `raw` as text, once it is UTF-8, nested at most [`MAX_DEPTH`] levels deep and free of lone
/// surrogate escapes. Syntax is not checked: it is serde's business, and a text that is not
/// JSON cannot fool these checks into accepting a deep one.
///
/// Each check is a vectorised pass in the common case: a body with at most [`MAX_DEPTH`]
/// brackets cannot be too deep, so only a body with more is scanned for its nesting.
pub fn check(raw: &[u8]) -> Result<&str, Poison> {
    let text = std::str::from_utf8(raw).map_err(|e| Poison::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    if opening_brackets(raw) > MAX_DEPTH {
        nesting(raw)?;
    }
    surrogates(raw)?;
    Ok(text)
}

/// How many `[` and `{` the text holds, in strings or not: a bound on its depth.
fn opening_brackets(raw: &[u8]) -> usize {
    // `[` is `{` without bit 0x20, so one comparison finds both; counting each run of 255
    // bytes in a `u8` lets the compiler compare 32 bytes at a time (ten times faster than
    // `filter().count()`, measured).
    raw.chunks(usize::from(u8::MAX))
        .map(|run| {
            let count = run
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from((b | 0x20) == b'{')));
            usize::from(count)
        })
        .sum()
}

/// Counts nesting outside strings.
fn nesting(raw: &[u8]) -> Result<(), Poison> {
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = raw.get(at) {
        match byte {
            b'"' => {
                at = string_end(raw, at + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Poison::TooDeep { offset: at });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// The offset just past the string whose contents start at `from` (the end of the text for
/// a string left open).
fn string_end(raw: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(found) = raw.get(at..).and_then(|rest| memchr2(b'"', b'\\', rest)) {
        at += found;
        if raw[at] == b'"' {
            return at + 1;
        }
        at += 2;
    }
    raw.len()
}

/// Checks every `\u` escape: a high surrogate counts only when a low one follows it at once,
/// and a low one only there. Backslashes are visited in order, so an escaped backslash
/// (`\\u`) is never taken for the start of an escape.
fn surrogates(raw: &[u8]) -> Result<(), Poison> {
    // Most bodies have no `\u` at all: one vectorised search settles it (its searcher is
    // built once: building one costs more than searching a small body).
    static UNICODE_ESCAPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));
    let Some(first) = UNICODE_ESCAPE.find(raw) else {
        return Ok(());
    };
    // Start at the run of backslashes the first one belongs to: no backslash precedes it.
    let run = raw[..first]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    let start = first - run;
    let mut escaped_until = 0;
    for at in memchr_iter(b'\\', &raw[start..]).map(|at| start + at) {
        if at < escaped_until {
            continue;
        }
        escaped_until = at + 2;
        if raw.get(at + 1) != Some(&b'u') {
            continue;
        }
        match hex_escape(raw, at) {
            Some(0xD800..=0xDBFF) => match hex_escape(raw, at + 6) {
                Some(0xDC00..=0xDFFF) => escaped_until = at + 12,
                _ => return Err(Poison::LoneSurrogate { offset: at }),
            },
            Some(0xDC00..=0xDFFF) => return Err(Poison::LoneSurrogate { offset: at }),
            // Other escapes, and hex digits that are not hex (serde's business).
            _ => {}
        }
    }
    Ok(())
}

/// The code unit of a `\uXXXX` escape whose backslash is at `at`.
fn hex_escape(raw: &[u8], at: usize) -> Option<u16> {
    let escape = raw.get(at..at + 6)?;
    let digits = escape.strip_prefix(b"\\u")?;
    let digits = std::str::from_utf8(digits).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

/// The name of the body's top-level member whose key or value holds byte `offset`: the
/// `param` of the 400 for a poisoned body. Only run on a body already refused.
pub fn member_at(raw: &[u8], offset: usize) -> Option<String> {
    let mut depth = 0usize;
    let mut key: Option<Range<usize>> = None;
    let mut at = 0;
    while at <= offset {
        match raw.get(at)? {
            b'"' => {
                let end = string_end(raw, at + 1);
                if depth == 1 && followed_by_colon(raw, end) {
                    key = Some(at..end);
                }
                at = end;
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    let key = &raw[key?];
    serde_json::from_slice(key)
        .ok()
        .or_else(|| Some(String::from_utf8_lossy(key.get(1..key.len() - 1)?).into_owned()))
}

/// Whether the next byte after `at` that is not whitespace is a colon.
fn followed_by_colon(raw: &[u8], at: usize) -> bool {
    raw.get(at..)
        .and_then(|rest| rest.trim_ascii_start().first())
        .is_some_and(|&b| b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        // `levels` counts the body's own object.
        let inner = levels - 1;
        format!(
            r#"{{"model":"m","metadata":{}1{}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_one_more_level_does_not() {
        assert!(check(nested(MAX_DEPTH).as_bytes()).is_ok());
        let deep = nested(MAX_DEPTH + 1);
        let offset = deep.find('[').unwrap() + MAX_DEPTH - 1;
        assert_eq!(
            check(deep.as_bytes()),
            Err(Poison::TooDeep { offset }),
            "the first bracket past the limit is named"
        );
    }

    #[test]
    fn brackets_are_counted_across_runs() {
        let text = format!("{}{}{}", "[".repeat(300), "x".repeat(300), "{".repeat(700));
        assert_eq!(opening_brackets(text.as_bytes()), 1000);
        assert_eq!(opening_brackets(b"]}[{ {"), 3);
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!(
            r#"{{"a":"{}","b":"\"{}\\"}}"#,
            "[".repeat(1000),
            "{".repeat(1000)
        );
        assert!(check(text.as_bytes()).is_ok());
    }

    #[test]
    fn escaped_quotes_do_not_end_a_string() {
        // Were `\"` taken for the end, the brackets after it would count.
        let text = format!(r#"{{"a":"x\"{}"}}"#, "[".repeat(200));
        assert!(check(text.as_bytes()).is_ok());
        let text = format!(r#"{{"a":"x\\"{}}}"#, "[".repeat(200));
        assert!(matches!(
            check(text.as_bytes()),
            Err(Poison::TooDeep { .. })
        ));
    }

    #[test]
    fn invalid_utf8_is_found_anywhere() {
        let mut body = br#"{"model":"m","metadata":{"note":"caf"#.to_vec();
        let offset = body.len();
        body.extend_from_slice(b"\xe9\"}}");
        assert_eq!(check(&body), Err(Poison::InvalidUtf8 { offset }));
        assert_eq!(member_at(&body, offset).as_deref(), Some("metadata"));
    }

    #[test]
    fn lone_surrogates_are_refused_and_pairs_pass() {
        assert!(check(br#"{"a":"\ud83d\ude00 and \u00e9 and \\ud800"}"#).is_ok());
        for (text, offset) in [
            (&br#"{"a":"\ud800"}"#[..], 6),
            (br#"{"a":"\udc00"}"#, 6),
            (br#"{"a":"x\uD800\u0041"}"#, 7),
            (br#"{"a":"\ud800"#, 6),
            // Text that reads `\u0041`, then a real escape.
            (br#"{"a":"\\u0041 \udc00"}"#, 14),
            // An escaped backslash, then a real escape.
            (br#"{"a":"\\\udbff"}"#, 8),
        ] {
            assert_eq!(
                check(text),
                Err(Poison::LoneSurrogate { offset }),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn broken_json_does_not_trip_the_scan() {
        for text in [
            &b""[..],
            b"\"",
            b"\"\\",
            b"\"\\u12",
            b"]]]}}",
            b"{\"a\":\"\\u",
        ] {
            assert!(check(text).is_ok(), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn the_member_is_the_top_level_key_around_the_offset() {
        let body = nested(MAX_DEPTH + 1);
        let offset = check(body.as_bytes()).unwrap_err().offset();
        assert_eq!(
            member_at(body.as_bytes(), offset).as_deref(),
            Some("metadata")
        );
        let tools = br#"{"model":"m","tools":[{"function":{"parameters":{"x":1}}}]}"#;
        let at = tools.iter().position(|&b| b == b'x').unwrap();
        assert_eq!(member_at(tools, at).as_deref(), Some("tools"));
        let escaped = br#"{"meta\u0064ata":[1]}"#;
        assert_eq!(member_at(escaped, 17).as_deref(), Some("metadata"));
        assert_eq!(member_at(b"[[1]]", 3), None);
    }
}
