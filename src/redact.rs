//! Secrets out of upstream-derived text: every configured secret (provider keys, client and
//! admin keys read from the environment) is replaced by `[redacted]` wherever it appears in
//! text that came from a provider, before that text is stored, logged or sent to a client.
//!
//! Providers echo keys partially ("Incorrect API key provided: sk-proj-abcdefghij...."), so a
//! secret counts as leaked when any run of [`WINDOW`] or more of its bytes appears. The
//! [`Redactor`] keeps every [`WINDOW`]-byte window of every secret in a hash set; redacting a
//! text looks each of the text's windows up once, so it is linear in the text whatever the
//! number of secrets. A secret shorter than a window is matched whole. It runs only on
//! failure paths.

use std::borrow::Cow;
use std::fmt;

use foldhash::{HashSet, HashSetExt as _};

/// The shortest run of a secret's bytes that counts as the secret.
pub const WINDOW: usize = 8;

/// What a secret is replaced by.
pub const REDACTED: &str = "[redacted]";

/// Replaces configured secrets in text; built once per configuration snapshot.
#[derive(Default)]
pub struct Redactor {
    /// Every `WINDOW`-byte window of every secret at least that long.
    windows: HashSet<u64>,
    /// Secrets shorter than a window, matched whole.
    short: Vec<Box<[u8]>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The windows are the secrets: only say how much is known.
        f.debug_struct("Redactor")
            .field("windows", &self.windows.len())
            .field("short", &self.short.len())
            .finish()
    }
}

/// A window's bytes as one hashable word.
fn word(window: &[u8]) -> u64 {
    let mut bytes = [0u8; WINDOW];
    bytes.copy_from_slice(window);
    u64::from_le_bytes(bytes)
}

impl Redactor {
    /// A redactor for `secrets`; empty ones are ignored.
    pub fn new<'s>(secrets: impl IntoIterator<Item = &'s str>) -> Self {
        let mut redactor = Self {
            windows: HashSet::new(),
            short: Vec::new(),
        };
        for secret in secrets.into_iter().map(str::as_bytes) {
            if secret.len() >= WINDOW {
                redactor.windows.extend(secret.windows(WINDOW).map(word));
            } else if !secret.is_empty() {
                redactor.short.push(secret.into());
            }
        }
        redactor
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.short.is_empty()
    }

    /// `text` with every run of a secret replaced by [`REDACTED`]; borrowed when it holds
    /// none.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        let runs = self.runs(text);
        if runs.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in runs {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// Redacts `text` in place; allocates only when it holds a secret.
    pub fn redact_string(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.redact(text) {
            *text = redacted;
        }
    }

    /// The byte ranges of `text` covered by secrets, merged where they overlap or touch,
    /// widened to character boundaries, in order.
    fn runs(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut covered: Vec<(usize, usize)> = Vec::new();
        if !self.windows.is_empty() {
            for (start, window) in bytes.windows(WINDOW).enumerate() {
                if !self.windows.contains(&word(window)) {
                    continue;
                }
                // Windows come in order: a hit extends the run it overlaps or touches.
                match covered.last_mut() {
                    Some((_, end)) if start <= *end => *end = start + WINDOW,
                    _ => covered.push((start, start + WINDOW)),
                }
            }
        }
        if !self.short.is_empty() {
            for start in 0..bytes.len() {
                for secret in &self.short {
                    if bytes[start..].starts_with(secret) {
                        covered.push((start, start + secret.len()));
                    }
                }
            }
            covered.sort_unstable();
        }
        merge_on_char_boundaries(text, covered)
    }
}

/// Sorted ranges widened to whole characters (a secret's bytes may match inside a
/// multibyte character) and merged where they then overlap or touch.
fn merge_on_char_boundaries(text: &str, ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (mut start, mut end) in ranges {
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        match merged.last_mut() {
            Some((_, last_end)) if start <= *last_end => *last_end = (*last_end).max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";

    fn redactor() -> Redactor {
        Redactor::new([KEY, "other-secret-XYZ", "", "short"])
    }

    #[test]
    fn a_whole_key_becomes_one_marker() {
        let text = format!("Incorrect API key provided: {KEY}. See the docs.");
        assert_eq!(
            redactor().redact(&text),
            "Incorrect API key provided: [redacted]. See the docs."
        );
    }

    #[test]
    fn a_prefix_the_provider_echoes_is_redacted() {
        let text = format!("Incorrect API key provided: {}...", &KEY[..20]);
        assert_eq!(
            redactor().redact(&text),
            "Incorrect API key provided: [redacted]..."
        );
    }

    #[test]
    fn a_run_from_the_middle_is_redacted() {
        let text = format!("key ending ...{}", &KEY[20..30]);
        assert_eq!(redactor().redact(&text), "key ending ...[redacted]");
    }

    #[test]
    fn seven_characters_are_not_a_secret() {
        let text = format!("sk-proj is the prefix, {} too", &KEY[10..17]);
        assert!(matches!(redactor().redact(&text), Cow::Borrowed(_)));
    }

    #[test]
    fn overlapping_and_adjacent_secrets_become_one_marker() {
        // The second secret starts inside the first, and a third follows with no gap.
        let redactor = Redactor::new(["AAAABBBBCCCC", "BBBBCCCCDDDD", "EEEEFFFFGGGG"]);
        assert_eq!(
            redactor.redact("<AAAABBBBCCCCDDDDEEEEFFFF>"),
            "<[redacted]>"
        );
    }

    #[test]
    fn every_occurrence_is_redacted() {
        let text = format!("{KEY} and again {KEY}");
        assert_eq!(redactor().redact(&text), "[redacted] and again [redacted]");
    }

    #[test]
    fn a_short_secret_is_matched_whole() {
        assert_eq!(redactor().redact("a short one"), "a [redacted] one");
        assert_eq!(redactor().redact("a shor one"), "a shor one");
    }

    #[test]
    fn runs_that_match_inside_a_character_take_the_whole_character() {
        let secret = "clé-secrète-ünïcödé-€€€";
        let redactor = Redactor::new([secret]);
        // `©` ends in the same byte as `é`, `₿` starts with the same two bytes as `€`: the
        // secret's bytes match from inside one character to inside another.
        let starts_inside = format!("a©{}b", &secret[4..]);
        assert_eq!(redactor.redact(&starts_inside), "a[redacted]b");
        let ends_inside = format!("a{}₿!", &secret[..secret.len() - 3]);
        assert_eq!(redactor.redact(&ends_inside), "a[redacted]!");
    }

    #[test]
    fn multibyte_text_stays_utf8_wherever_the_run_is_cut() {
        let secret = "clé-secrète-ünïcödé-€€€";
        let redactor = Redactor::new([secret]);
        for cut in 0..secret.len() {
            let text = format!("é{}ü", String::from_utf8_lossy(&secret.as_bytes()[cut..]));
            let out = redactor.redact(&text);
            assert!(std::str::from_utf8(out.as_bytes()).is_ok());
            assert!(out.starts_with('é') || out.starts_with(REDACTED), "{out}");
        }
    }

    #[test]
    fn text_of_every_shape_redacts_without_panicking() {
        let redactor = redactor();
        for text in ["", "é", "€€", "sk-proj", "short", "ab\u{1F600}cd", KEY] {
            let _ = redactor.redact(text);
        }
        assert!(Redactor::new([""]).is_empty());
    }

    #[test]
    fn redacting_in_place_leaves_clean_text_alone() {
        let mut clean = "nothing here".to_owned();
        redactor().redact_string(&mut clean);
        assert_eq!(clean, "nothing here");
        let mut leaky = format!("key {KEY}");
        redactor().redact_string(&mut leaky);
        assert_eq!(leaky, "key [redacted]");
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let text = format!("{:?}", redactor());
        assert!(!text.contains("sk-proj"), "{text}");
    }
}
