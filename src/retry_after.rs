//! When an upstream says it can be asked again, from its response headers.
//!
//! Order follows the official SDKs: `retry-after-ms` (float milliseconds), then `retry-after`
//! as seconds (floats allowed), then `retry-after` as an HTTP date.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// The delay the upstream asked for, if it asked for one that makes sense.
pub fn from_headers(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Anthropic's rate-limit hint: the `anthropic-ratelimit-*-reset` time (RFC 3339) of a budget
/// whose `-remaining` count is 0. Used when a 429 carries no `retry-after`.
pub fn from_anthropic_reset(headers: &HeaderMap) -> Option<Duration> {
    const BUDGETS: [&str; 4] = ["requests", "tokens", "input-tokens", "output-tokens"];
    let header = |name: String| headers.get(name).and_then(|v| v.to_str().ok());
    BUDGETS
        .iter()
        .filter(|budget| header(format!("anthropic-ratelimit-{budget}-remaining")) == Some("0"))
        .filter_map(|budget| header(format!("anthropic-ratelimit-{budget}-reset")))
        .filter_map(|reset| humantime::parse_rfc3339_weak(reset.trim()).ok())
        .map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn milliseconds_win_over_seconds() {
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(from_headers(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn seconds_may_be_fractional() {
        let h = headers(&[("retry-after", "2.5")]);
        assert_eq!(from_headers(&h), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn http_dates_are_relative_to_now() {
        let later = SystemTime::now() + Duration::from_secs(120);
        let h = headers(&[("retry-after", &httpdate::fmt_http_date(later))]);
        let delay = from_headers(&h).unwrap();
        assert!(delay > Duration::from_secs(100) && delay <= Duration::from_secs(120));
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(from_headers(&past), Some(Duration::ZERO));
    }

    #[test]
    fn anthropic_reset_counts_only_exhausted_budgets() {
        let later = |secs| {
            humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(secs))
                .to_string()
        };
        let h = headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", &later(20)),
            ("anthropic-ratelimit-tokens-remaining", "5000"),
            ("anthropic-ratelimit-tokens-reset", &later(50)),
        ]);
        let delay = from_anthropic_reset(&h).unwrap();
        assert!(
            delay > Duration::from_secs(17) && delay <= Duration::from_secs(20),
            "{delay:?}"
        );
        let none_exhausted = headers(&[
            ("anthropic-ratelimit-requests-remaining", "3"),
            ("anthropic-ratelimit-requests-reset", &later(20)),
        ]);
        assert_eq!(from_anthropic_reset(&none_exhausted), None);
    }

    #[test]
    fn nonsense_is_ignored() {
        assert_eq!(from_headers(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(from_headers(&headers(&[("retry-after", "-3")])), None);
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }
}
