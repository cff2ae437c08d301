//! Google's error bodies, classified by the reason they carry (reference 3.5, 7.4).

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::error::{FailureKind, UpstreamFailure};
use crate::providers::openai::{self, ErrorFields};

/// Google's error envelope: `{"error":{...}}`, sometimes inside a one-element array.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Envelope {
    /// The error.
    #[serde(default)]
    pub(super) error: Option<GoogleError>,
}

/// A `google.rpc.Status`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct GoogleError {
    /// The HTTP status, as a number.
    #[serde(default)]
    pub(super) code: Option<serde_json::Value>,
    /// For a person.
    #[serde(default)]
    pub(super) message: Option<String>,
    /// The canonical code: `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...
    #[serde(default)]
    pub(super) status: Option<String>,
    /// Typed details (`ErrorInfo`, `RetryInfo`, `QuotaFailure`, ...).
    #[serde(default)]
    pub(super) details: Vec<serde_json::Value>,
}

impl GoogleError {
    /// Reads either shape; anything else yields an empty error.
    pub(super) fn parse(body: &[u8]) -> Self {
        // Decide by the first byte: serde would also read a struct from an array.
        if body.trim_ascii_start().first() == Some(&b'[') {
            return serde_json::from_slice::<Vec<Envelope>>(body)
                .ok()
                .and_then(|all| all.into_iter().find_map(|e| e.error))
                .unwrap_or_default();
        }
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .and_then(|one| one.error)
            .unwrap_or_default()
    }

    /// The details of one `@type` (matched by its suffix, e.g. `RetryInfo`).
    pub(super) fn details_of<'s>(
        &'s self,
        kind: &'s str,
    ) -> impl Iterator<Item = &'s serde_json::Value> {
        self.details.iter().filter(move |d| {
            d.get("@type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.ends_with(kind))
        })
    }

    /// Whether an `ErrorInfo` reason says the router's key or project is at fault.
    pub(super) fn credential_reason(&self) -> bool {
        self.details.iter().any(|d| {
            d.get("reason").and_then(|r| r.as_str()).is_some_and(|r| {
                r.starts_with("API_KEY_")
                    || matches!(
                        r,
                        "SERVICE_DISABLED"
                            | "CONSUMER_SUSPENDED"
                            | "BILLING_DISABLED"
                            | "ACCESS_TOKEN_EXPIRED"
                    )
            })
        })
    }

    /// Whether a `QuotaFailure` names a per-day quota: the day's quota is gone.
    pub(super) fn daily_quota(&self) -> bool {
        self.quota_ids().any(|q| q.contains("PerDay"))
    }

    /// Whether every violated quota is counted per model, so other models still answer.
    pub(super) fn per_model_quota(&self) -> bool {
        let mut ids = self.quota_ids().peekable();
        ids.peek().is_some() && ids.all(|q| q.contains("PerModel"))
    }

    /// The `quotaId`s of the `QuotaFailure` violations.
    pub(super) fn quota_ids(&self) -> impl Iterator<Item = &str> {
        self.details_of("QuotaFailure").flat_map(|d| {
            d.get("violations")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.get("quotaId").and_then(|q| q.as_str()))
        })
    }

    /// `RetryInfo.retryDelay`, e.g. `"37s"`.
    pub(super) fn retry_delay(&self) -> Option<Duration> {
        self.details_of("RetryInfo")
            .find_map(|d| d.get("retryDelay").and_then(|r| r.as_str()))
            .and_then(parse_duration)
    }

    /// Whether the canonical code is `status`.
    pub(super) fn status_is(&self, status: &str) -> bool {
        self.status.as_deref() == Some(status)
    }
}

/// A protobuf JSON duration: decimal seconds with an `s` suffix (`"37s"`, `"1.5s"`).
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Sorts a Gemini error by the reason in its body, then its status (reference 3.5 and 7.4).
pub(super) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let error = GoogleError::parse(body);
    let kind = kind_of(status, &error);
    let retry_delay = error.retry_delay();
    let per_model = error.per_model_quota();
    let fields = ErrorFields {
        message: error.message,
        error_type: Some("invalid_request_error".to_owned()),
        code: error.status,
        param: None,
    };
    let mut failure = openai::failure_from(kind, status, headers, fields);
    if kind == FailureKind::RateLimited {
        failure.per_model = per_model;
        if failure.retry_after.is_none() {
            failure.retry_after = retry_delay;
        }
    }
    failure
}

/// The failover class of a Gemini error.
pub(super) fn kind_of(status: StatusCode, error: &GoogleError) -> FailureKind {
    // A bad key is a 400 INVALID_ARGUMENT: only the reason tells it from a bad request.
    if error.credential_reason()
        || error.status_is("PERMISSION_DENIED")
        || error.status_is("UNAUTHENTICATED")
    {
        return FailureKind::Account;
    }
    match status.as_u16() {
        400 if error.status_is("FAILED_PRECONDITION") => FailureKind::Account,
        401..=403 => FailureKind::Account,
        // 408: Gemini gave up waiting for the request, so it never ran: safe to retry.
        404 | 408 => FailureKind::Unavailable,
        429 if error.daily_quota() => FailureKind::Account,
        429 => FailureKind::RateLimited,
        400..=499 => FailureKind::Rejected,
        _ => FailureKind::Unavailable,
    }
}

/// An array where a response object belongs: Google's array-wrapped error, or garbage.
pub(super) fn array_body(data: &[u8], kind: FailureKind) -> UpstreamFailure {
    let error = GoogleError::parse(data);
    if error.status.is_some() || error.message.is_some() {
        return classify_in_band(data);
    }
    UpstreamFailure::new(kind, "Gemini sent a JSON array where a response belongs")
}

/// An error object inside a 200 answer or stream (`{"error":{...}}`, possibly in an array),
/// classified by the status it carries like any other Gemini error.
pub(super) fn classify_in_band(data: &[u8]) -> UpstreamFailure {
    let status = GoogleError::parse(data)
        .code
        .and_then(|c| c.as_u64())
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut failure = classify(status, &HeaderMap::new(), data);
    failure.message = format!("Gemini reported an error mid-answer: {}", failure.message);
    failure
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::providers::gemini::fixtures::failure;

    use std::time::Duration;

    use http::StatusCode;

    use crate::error::FailureKind;
    use crate::providers::compact_json;

    /// Gemini's answer to a bad key; the message quotes the key, which must never leak.
    const KEY_INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key. key=AIzaSyLEAK","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;

    /// A 429 with a QuotaFailure naming `quota_id` and a RetryInfo of `delay`.
    fn quota(quota_id: &str, delay: &str) -> String {
        format!(
            r#"{{"error":{{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"{quota_id}","quotaValue":"10"}}]}},{{"@type":"type.googleapis.com/google.rpc.Help","links":[]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
        )
    }

    #[test]
    fn failures_are_classified_by_reason() {
        let key = failure(400, &[], KEY_INVALID);
        assert_eq!(key.kind, FailureKind::Account);
        assert!(!key.message.contains("AIza"));
        let wrapped = failure(400, &[], &format!("[{KEY_INVALID}]"));
        assert_eq!(wrapped.kind, FailureKind::Account);
        let per_day = failure(
            429,
            &[],
            &quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "37s"),
        );
        assert_eq!(per_day.kind, FailureKind::Account);
        let per_minute = failure(
            429,
            &[],
            &quota(
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "37s",
            ),
        );
        assert_eq!(per_minute.kind, FailureKind::RateLimited);
        assert_eq!(per_minute.retry_after, Some(Duration::from_secs(37)));
        assert!(
            per_minute.per_model,
            "a PerModel quota cools only the model"
        );
        let per_project = failure(
            429,
            &[],
            &quota("GenerateRequestsPerMinutePerProject", "5s"),
        );
        assert!(!per_project.per_model);
        let fractional = failure(429, &[], &quota("PerMinute", "1.5s"));
        assert_eq!(fractional.retry_after, Some(Duration::from_millis(1500)));
        let header_wins = failure(429, &[("retry-after", "5")], &quota("PerMinute", "37s"));
        assert_eq!(header_wins.retry_after, Some(Duration::from_secs(5)));
        let cases = [
            (
                400,
                r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
                FailureKind::Account,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#,
                FailureKind::Account,
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"models/gemini-9 is not found","status":"NOT_FOUND"}}"#,
                FailureKind::Unavailable,
            ),
            (
                500,
                r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#,
                FailureKind::Unavailable,
            ),
            (
                503,
                r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
                FailureKind::Unavailable,
            ),
            (
                504,
                r#"{"error":{"code":504,"message":"Deadline expired.","status":"DEADLINE_EXCEEDED"}}"#,
                FailureKind::Unavailable,
            ),
            (
                429,
                r#"[{"error":{"code":429,"message":"slow","status":"RESOURCE_EXHAUSTED"}}]"#,
                FailureKind::RateLimited,
            ),
            (502, "<html>bad gateway</html>", FailureKind::Unavailable),
            (400, "", FailureKind::Rejected),
        ];
        for (status, body, kind) in cases {
            assert_eq!(failure(status, &[], body).kind, kind, "{status} {body}");
        }
        let rejected = failure(
            400,
            &[],
            r#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(rejected.kind, FailureKind::Rejected);
        assert_eq!(
            rejected.message,
            "* GenerateContentRequest.contents: contents is not specified"
        );
        assert_eq!(rejected.code.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(rejected.status, Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn durations_parse_like_protobuf() {
        assert_eq!(parse_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(parse_duration("0.25s"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("37"), None);
        assert_eq!(parse_duration("NaNs"), None);
    }

    #[test]
    fn compact_json_keeps_strings() {
        assert_eq!(
            compact_json("{ \"a\" : [1, 2],\n \"b\": \"x \\\" y\" }"),
            r#"{"a":[1,2],"b":"x \" y"}"#
        );
    }
}
