//! OpenAI's rate-limit headers, built from where a client key's budgets stand: the same
//! function writes them on every answer of a limited key, 200s, streams and its 429 alike.
//!
//! `x-ratelimit-limit-*` is the per-minute limit, `-remaining-*` what fits now, and `-reset-*`
//! the time until the bucket is full again, written as OpenAI does (Go's duration text: `20ms`,
//! `1.5s`, `6m0s`), rounded up to the millisecond so a client never comes back too early.
//! These run on every request of a limited key, so the text is built by hand, not `format!`.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Standing;

/// The `limit`, `remaining` and `reset` header names of the requests budget.
const REQUESTS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];

/// The `limit`, `remaining` and `reset` header names of the tokens budget.
const TOKENS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

impl Standing {
    /// Writes one header trio per budget the key has (a key with only `rpm` gets only the
    /// requests trio).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        for (budget, [limit, remaining, reset]) in
            [(&self.requests, REQUESTS), (&self.tokens, TOKENS)]
        {
            let Some(budget) = budget else {
                continue;
            };
            headers.insert(limit, HeaderValue::from(budget.limit));
            headers.insert(remaining, HeaderValue::from(budget.remaining));
            if let Ok(value) = HeaderValue::from_bytes(DurationText::new(budget.reset).as_bytes()) {
                headers.insert(reset, value);
            }
        }
    }
}

/// A duration as Go writes it, on the stack (any `u64` of milliseconds fits in 40 bytes).
struct DurationText {
    bytes: [u8; 40],
    len: usize,
}

impl DurationText {
    fn new(duration: Duration) -> Self {
        let mut text = Self {
            bytes: [0; 40],
            len: 0,
        };
        let partial = !duration.subsec_nanos().is_multiple_of(1_000_000);
        let millis = u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(u64::from(partial));
        if millis == 0 {
            text.push(b"0s");
        } else if millis < 1000 {
            text.number(millis);
            text.push(b"ms");
        } else {
            text.clock(millis);
        }
        text
    }

    /// `[Hh][Mm]S[.fff]s`, hours only from an hour and minutes from a minute (or an hour).
    fn clock(&mut self, millis: u64) {
        let (secs, fraction) = (millis / 1000, millis % 1000);
        let (hours, minutes, secs) = (secs / 3600, secs / 60 % 60, secs % 60);
        if hours > 0 {
            self.number(hours);
            self.push(b"h");
        }
        if hours > 0 || minutes > 0 {
            self.number(minutes);
            self.push(b"m");
        }
        self.number(secs);
        if fraction > 0 {
            let digits =
                [fraction / 100, fraction / 10 % 10, fraction % 10].map(|d| b'0' + d as u8);
            // Trailing zeros dropped, as Go does: `1.5s`, not `1.500s`.
            let mut kept = digits.len();
            while digits[kept - 1] == b'0' {
                kept -= 1;
            }
            self.push(b".");
            self.push(&digits[..kept]);
        }
        self.push(b"s");
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(slot) = self.bytes.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Budget;

    fn text(duration: Duration) -> String {
        String::from_utf8(DurationText::new(duration).as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn resets_read_like_go_durations_rounded_up_to_the_millisecond() {
        assert_eq!(text(Duration::ZERO), "0s");
        assert_eq!(text(Duration::from_micros(60)), "1ms");
        assert_eq!(text(Duration::from_millis(20)), "20ms");
        assert_eq!(text(Duration::from_millis(999)), "999ms");
        assert_eq!(text(Duration::from_secs(1)), "1s");
        assert_eq!(text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(text(Duration::from_millis(1050)), "1.05s");
        assert_eq!(text(Duration::from_nanos(59_998_000_001)), "59.999s");
        assert_eq!(text(Duration::from_secs(60)), "1m0s");
        assert_eq!(text(Duration::from_secs(360)), "6m0s");
        assert_eq!(text(Duration::from_millis(3_723_004)), "1h2m3.004s");
        assert_eq!(text(Duration::MAX), "5124095576030h25m51.615s");
    }

    #[test]
    fn each_budget_the_key_has_gets_its_trio() {
        let budget = |remaining| Budget {
            limit: 3,
            remaining,
            reset: Duration::from_secs(20),
        };
        let mut headers = HeaderMap::new();
        Standing {
            requests: Some(budget(2)),
            tokens: None,
        }
        .write_headers(&mut headers);
        assert_eq!(headers.len(), 3);
        assert_eq!(headers["x-ratelimit-limit-requests"], "3");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "2");
        assert_eq!(headers["x-ratelimit-reset-requests"], "20s");

        Standing {
            requests: Some(budget(0)),
            tokens: Some(budget(1)),
        }
        .write_headers(&mut headers);
        assert_eq!(headers.len(), 6, "written again, not appended");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "1");
    }
}
