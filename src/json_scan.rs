//! Byte-level looks into JSON that decide whether a payload is worth parsing at all: most
//! stream chunks need nothing but forwarding, and a substring search is far cheaper than a
//! parse. A quoted key can only match a real key, because quotes inside JSON strings are
//! escaped. Searches use `memchr`'s vectorised substring finder.

use memchr::memmem;

/// The position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memmem::find(haystack, needle)
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// Whether some member named `quoted_key` (quotes included) has a value starting with
/// `first`, e.g. `b'{'` for an object: `"usage":null` does not count, `"usage": {` does.
pub fn has_member_starting_with(data: &[u8], quoted_key: &[u8], first: u8) -> bool {
    let mut from = 0;
    while let Some(offset) = find(&data[from..], quoted_key) {
        from += offset + quoted_key.len();
        let rest = data[from..].trim_ascii_start();
        if let Some(value) = rest.strip_prefix(b":")
            && value.trim_ascii_start().first() == Some(&first)
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_counts_only_with_the_wanted_value() {
        let usage = br#"{"choices":[],"usage" : {"prompt_tokens":1}}"#;
        assert!(has_member_starting_with(usage, b"\"usage\"", b'{'));
        let null = br#"{"choices":[{"delta":{"content":"usage"}}],"usage":null}"#;
        assert!(!has_member_starting_with(null, b"\"usage\"", b'{'));
        // An escaped quote inside a string is not a key.
        let inside = br#"{"content":"say \"usage\": {x}"}"#;
        assert!(!has_member_starting_with(inside, b"\"usage\"", b'{'));
    }

    #[test]
    fn finds_substrings() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert!(contains(b"data: [DONE]", b"[DONE]"));
        assert!(!contains(b"short", b"longer needle"));
    }
}
