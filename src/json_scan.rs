//! Byte-level looks into JSON that decide whether a payload is worth parsing at all: most
//! stream chunks need nothing but forwarding, and a substring search is far cheaper than a
//! parse. A quoted key can only match a real key, because quotes inside JSON strings are
//! escaped. Searches use `memchr`'s vectorised substring finder.

use std::sync::OnceLock;

use memchr::memmem::{self, Finder};

/// `"usage"`, the key of a usage object.
pub static USAGE: Key = Key::new(b"\"usage\"");

/// `"error"`, the key of an in-band error.
pub static ERROR: Key = Key::new(b"\"error\"");

/// A JSON key, quotes included, whose searcher is built once, on first use: building one
/// costs more than searching a whole stream chunk with it.
#[derive(Debug)]
pub struct Key {
    quoted: &'static [u8],
    finder: OnceLock<Finder<'static>>,
}

impl Key {
    /// The key `quoted`, which must include its quotes (`b"\"usage\""`).
    pub const fn new(quoted: &'static [u8]) -> Self {
        Self {
            quoted,
            finder: OnceLock::new(),
        }
    }

    fn finder(&self) -> &Finder<'static> {
        self.finder.get_or_init(|| Finder::new(self.quoted))
    }

    /// Whether the key occurs in `data`.
    pub fn occurs_in(&self, data: &[u8]) -> bool {
        self.finder().find(data).is_some()
    }

    /// Whether some member with this key has a value starting with `first`, e.g. `b'{'` for
    /// an object: `"usage":null` does not count, `"usage": {` does.
    pub fn has_value_starting_with(&self, data: &[u8], first: u8) -> bool {
        let finder = self.finder();
        let mut from = 0;
        while let Some(offset) = finder.find(&data[from..]) {
            from += offset + self.quoted.len();
            let rest = data[from..].trim_ascii_start();
            if let Some(value) = rest.strip_prefix(b":")
                && value.trim_ascii_start().first() == Some(&first)
            {
                return true;
            }
        }
        false
    }
}

/// Whether `needle` occurs in `haystack` (for needles known only at run time).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_counts_only_with_the_wanted_value() {
        let usage = br#"{"choices":[],"usage" : {"prompt_tokens":1}}"#;
        assert!(USAGE.has_value_starting_with(usage, b'{'));
        let null = br#"{"choices":[{"delta":{"content":"usage"}}],"usage":null}"#;
        assert!(!USAGE.has_value_starting_with(null, b'{'));
        assert!(USAGE.occurs_in(null));
        // An escaped quote inside a string is not a key.
        let inside = br#"{"content":"say \"usage\": {x}"}"#;
        assert!(!USAGE.has_value_starting_with(inside, b'{'));
    }

    #[test]
    fn finds_substrings() {
        assert!(contains(b"abcabd", b"abd"));
        assert!(contains(b"data: [DONE]", b"[DONE]"));
        assert!(!contains(b"short", b"longer needle"));
    }
}
