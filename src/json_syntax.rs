//! A strict JSON syntax check that builds nothing, for upstream stream events the router
//! forwards as they came: each must be one JSON value, or the client's reader breaks in the
//! middle of an answer.
//!
//! serde_json can check syntax too (into `IgnoredAny`), but it decodes every string it skips
//! into a scratch buffer; on the pass-through path that doubled the router's work per stream.
//! This is one pass over the bytes with a table lookup per string byte, no allocation, and a
//! nesting limit of [`MAX_DEPTH`] kept in a bit set. It accepts exactly RFC 8259's grammar:
//! numbers are checked for form, not range (`1e400` is JSON). UTF-8 is the caller's check
//! (`str::from_utf8` is faster at it): bytes above 0x7f inside strings pass here.

/// The deepest nesting of arrays and objects accepted, serde_json's own limit.
pub const MAX_DEPTH: u32 = 128;

/// Where `text` stops being JSON: the byte offset of the first byte that does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotJson {
    /// The offending byte's offset (the text's length when it ends too early).
    pub offset: usize,
}

/// Checks that `text` is exactly one JSON value, with whitespace around it allowed.
pub fn check(text: &[u8]) -> Result<(), NotJson> {
    let mut nesting = Nesting::default();
    let mut at = 0;
    'value: loop {
        at = skip_whitespace(text, at);
        match text.get(at) {
            Some(b'{') => {
                nesting.open(Open::Object, at)?;
                at = skip_whitespace(text, at + 1);
                if text.get(at) == Some(&b'}') {
                    nesting.close();
                    at += 1;
                } else {
                    at = key(text, at)?;
                    continue 'value;
                }
            }
            Some(b'[') => {
                nesting.open(Open::Array, at)?;
                at = skip_whitespace(text, at + 1);
                if text.get(at) == Some(&b']') {
                    nesting.close();
                    at += 1;
                } else {
                    continue 'value;
                }
            }
            Some(b'"') => at = string(text, at)?,
            Some(b't') => at = literal(text, at, b"true")?,
            Some(b'f') => at = literal(text, at, b"false")?,
            Some(b'n') => at = literal(text, at, b"null")?,
            Some(b'-' | b'0'..=b'9') => at = number(text, at)?,
            _ => return Err(NotJson { offset: at }),
        }
        // A value is complete: close what it completes, or go on to the next one.
        loop {
            at = skip_whitespace(text, at);
            let Some(open) = nesting.innermost() else {
                return if at == text.len() {
                    Ok(())
                } else {
                    Err(NotJson { offset: at })
                };
            };
            match (text.get(at), open) {
                (Some(b','), Open::Object) => {
                    at = key(text, skip_whitespace(text, at + 1))?;
                    continue 'value;
                }
                (Some(b','), Open::Array) => {
                    at += 1;
                    continue 'value;
                }
                (Some(b'}'), Open::Object) | (Some(b']'), Open::Array) => {
                    nesting.close();
                    at += 1;
                }
                _ => return Err(NotJson { offset: at }),
            }
        }
    }
}

/// What an open bracket opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Object,
    Array,
}

/// The open arrays and objects, innermost last: one bit each (1 = object).
#[derive(Debug, Default)]
struct Nesting {
    objects: u128,
    depth: u32,
}

impl Nesting {
    fn open(&mut self, open: Open, at: usize) -> Result<(), NotJson> {
        if self.depth == MAX_DEPTH {
            return Err(NotJson { offset: at });
        }
        let bit = 1u128 << self.depth;
        match open {
            Open::Object => self.objects |= bit,
            Open::Array => self.objects &= !bit,
        }
        self.depth += 1;
        Ok(())
    }

    fn close(&mut self) {
        self.depth -= 1;
    }

    fn innermost(&self) -> Option<Open> {
        let top = self.depth.checked_sub(1)?;
        Some(if self.objects >> top & 1 == 1 {
            Open::Object
        } else {
            Open::Array
        })
    }
}

fn skip_whitespace(text: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = text.get(at) {
        at += 1;
    }
    at
}

/// An object member's key and its colon; returns where its value starts.
fn key(text: &[u8], at: usize) -> Result<usize, NotJson> {
    if text.get(at) != Some(&b'"') {
        return Err(NotJson { offset: at });
    }
    let at = skip_whitespace(text, string(text, at)?);
    if text.get(at) != Some(&b':') {
        return Err(NotJson { offset: at });
    }
    Ok(at + 1)
}

/// Bytes that end a run of plain string content: the quote, a backslash, control characters.
static STRING_STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        stops[byte] = true;
        byte += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops
};

/// The string starting at the quote at `at`; returns the offset after its closing quote.
/// Most of an event's bytes are string content, and most strings are short (keys, ids, a
/// word of content), so this is a plain loop over the slice with one table lookup per byte:
/// cheaper here than a SIMD search whose set-up each short string would pay.
fn string(text: &[u8], at: usize) -> Result<usize, NotJson> {
    let mut at = at + 1;
    loop {
        let rest = text.get(at..).unwrap_or_default();
        let Some(stop) = rest.iter().position(|&b| STRING_STOPS[usize::from(b)]) else {
            return Err(NotJson { offset: text.len() });
        };
        at += stop;
        match rest[stop] {
            b'"' => return Ok(at + 1),
            b'\\' => at = escape(text, at)?,
            _ => return Err(NotJson { offset: at }),
        }
    }
}

/// The escape whose backslash is at `at`; returns the offset after it.
fn escape(text: &[u8], at: usize) -> Result<usize, NotJson> {
    match text.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
        Some(b'u') => {
            let digits = text.get(at + 2..at + 6).ok_or(NotJson { offset: at })?;
            if digits.iter().all(u8::is_ascii_hexdigit) {
                Ok(at + 6)
            } else {
                Err(NotJson { offset: at })
            }
        }
        _ => Err(NotJson { offset: at }),
    }
}

fn literal(text: &[u8], at: usize, word: &[u8]) -> Result<usize, NotJson> {
    if text.get(at..at + word.len()) == Some(word) {
        Ok(at + word.len())
    } else {
        Err(NotJson { offset: at })
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; returns the offset after it.
fn number(text: &[u8], at: usize) -> Result<usize, NotJson> {
    let mut at = at;
    if text.get(at) == Some(&b'-') {
        at += 1;
    }
    match text.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at = digits(text, at),
        _ => return Err(NotJson { offset: at }),
    }
    if text.get(at) == Some(&b'.') {
        at = at_least_one_digit(text, at + 1)?;
    }
    if let Some(b'e' | b'E') = text.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = text.get(at) {
            at += 1;
        }
        at = at_least_one_digit(text, at)?;
    }
    Ok(at)
}

fn digits(text: &[u8], mut at: usize) -> usize {
    while text.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

fn at_least_one_digit(text: &[u8], at: usize) -> Result<usize, NotJson> {
    let end = digits(text, at);
    if end == at {
        Err(NotJson { offset: at })
    } else {
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn serde_says(text: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn json_values_pass() {
        for text in [
            r#"{"id":"chatcmpl-1","choices":[{"delta":{"content":"caf\u00e9 \"q\" \\ \/"},"index":0}],"usage":null}"#,
            "  [1, -0, 0.5, 1e400, -2.5E-3, true, false, null, {}, [], \"\"]\n",
            "0",
            "\"only a string\"",
            "{\"a\" : {\"b\" : [ {\"c\" : 1} ] } }",
        ] {
            assert_eq!(check(text.as_bytes()), Ok(()), "{text}");
            assert!(serde_says(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_where_it_goes_wrong() {
        for (text, offset) in [
            ("", 0),
            ("{not json", 1),
            ("{\"a\":1,}", 7),
            ("[1,]", 3),
            ("[1 2]", 3),
            ("01", 1),
            ("1.", 2),
            ("1e", 2),
            ("-", 1),
            ("\"tab\there\"", 4),
            ("\"bad \\x escape\"", 5),
            ("\"\\u12g4\"", 1),
            ("\"open", 5),
            ("{\"a\" 1}", 5),
            ("tru", 0),
            ("{} {}", 3),
            ("[}", 1),
            ("{]", 1),
            ("[DONE] ", 1),
        ] {
            assert_eq!(check(text.as_bytes()), Err(NotJson { offset }), "{text}");
            assert!(!serde_says(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn nesting_stops_at_the_limit() {
        let depth = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check(depth(128).as_bytes()), Ok(()));
        assert_eq!(check(depth(129).as_bytes()), Err(NotJson { offset: 128 }));
        let objects = format!("{}1{}", "{\"k\":".repeat(128), "}".repeat(128));
        assert_eq!(check(objects.as_bytes()), Ok(()));
    }

    /// JSON-ish text: real values, pieces of them and stray bytes, so both answers come up.
    fn jsonish() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just(" ".to_owned()),
            Just("\"k\"".to_owned()),
            Just("\"a\\\"b\\u00e9\"".to_owned()),
            Just("\\".to_owned()),
            Just("\"".to_owned()),
            Just("true".to_owned()),
            Just("nul".to_owned()),
            Just("-1.5e3".to_owned()),
            Just("0".to_owned()),
            Just("01".to_owned()),
            "[ -~]{0,3}",
        ];
        proptest::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
    }

    proptest! {
        /// Whatever the text, the check agrees with serde_json's (below the nesting limit).
        #[test]
        fn agrees_with_serde_json(text in jsonish()) {
            prop_assert_eq!(check(text.as_bytes()).is_ok(), serde_says(text.as_bytes()), "{}", text);
        }

        /// Every generated JSON value passes.
        #[test]
        fn generated_values_pass(value in any_json()) {
            let text = serde_json::to_string(&value).unwrap();
            prop_assert_eq!(check(text.as_bytes()), Ok(()), "{}", text);
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            prop_assert_eq!(check(pretty.as_bytes()), Ok(()), "{}", pretty);
        }
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }
}
