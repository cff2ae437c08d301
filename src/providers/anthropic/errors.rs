//! Anthropic's error bodies, classified by status and error type (reference 2.5, 7.4).

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::error::{FailureKind, UpstreamFailure};
use crate::providers::openai::{self, ErrorFields};
use crate::retry_after;

/// Anthropic's error body: `{"type":"error","error":{"type","message","details"?}}`.
#[derive(Default, Deserialize)]
pub(super) struct ErrorEnvelope {
    #[serde(default)]
    pub(super) error: Option<ErrorIn>,
}

/// The inner error object.
#[derive(Default, Deserialize)]
pub(super) struct ErrorIn {
    #[serde(rename = "type", default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) details: Option<ErrorDetails>,
}

/// `error.details`, present on spend-limit 429s.
#[derive(Default, Deserialize)]
pub(super) struct ErrorDetails {
    #[serde(default)]
    pub(super) error_code: Option<String>,
}

impl ErrorIn {
    /// Whether the account's spend cap or credit, not load, is why the request failed.
    pub(super) fn is_spend_limit(&self) -> bool {
        let code = self.details.as_ref().and_then(|d| d.error_code.as_deref());
        if code == Some("enforced_spend_limit_reached") {
            return true;
        }
        let message = self
            .message
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        ["credit balance", "spend limit", "usage limits"]
            .iter()
            .any(|needle| message.contains(needle))
    }
}

/// Sorts an Anthropic error answer into a failover class (reference 2.5 and 7.4).
pub(super) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let error = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_default();
    let kind = failure_kind(status, &error);
    let fields = ErrorFields {
        message: error.message,
        // The client sees OpenAI's type; Anthropic's own type is kept as the code.
        error_type: Some("invalid_request_error".to_owned()),
        code: error.kind,
        param: None,
    };
    let mut failure = openai::failure_from(kind, status, headers, fields);
    if kind == FailureKind::RateLimited && failure.retry_after.is_none() {
        failure.retry_after = retry_after::from_anthropic_reset(headers);
    }
    failure
}

/// The failover class of a status and error body.
pub(super) fn failure_kind(status: StatusCode, error: &ErrorIn) -> FailureKind {
    match status.as_u16() {
        429 if error.is_spend_limit() => FailureKind::Account,
        429 => FailureKind::RateLimited,
        401..=403 => FailureKind::Account,
        // 408: Anthropic gave up waiting for the request, so it never ran: safe to retry.
        404 | 408 => FailureKind::Unavailable,
        400..=499 => match error.kind.as_deref() {
            Some("authentication_error" | "permission_error" | "billing_error") => {
                FailureKind::Account
            }
            Some("rate_limit_error") => FailureKind::RateLimited,
            Some("overloaded_error" | "api_error" | "not_found_error" | "timeout_error") => {
                FailureKind::Unavailable
            }
            _ if error.is_spend_limit() => FailureKind::Account,
            _ => FailureKind::Rejected,
        },
        _ => FailureKind::Unavailable,
    }
}

#[cfg(test)]
mod tests {

    use http::{HeaderMap, HeaderValue, StatusCode};

    use crate::error::FailureKind;
    use crate::providers::Adapter;
    use crate::providers::anthropic::Anthropic;

    #[test]
    fn failure_classification_table() {
        let spend = r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend cap","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        let error = |kind: &str| {
            format!(
                r#"{{"type":"error","error":{{"type":"{kind}","message":"m"}},"request_id":"req_1"}}"#
            )
        };
        let cases = [
            (400, error("invalid_request_error"), FailureKind::Rejected),
            (400, credit.to_owned(), FailureKind::Account),
            (400, error("billing_error"), FailureKind::Account),
            (401, error("authentication_error"), FailureKind::Account),
            (402, error("billing_error"), FailureKind::Account),
            (403, error("permission_error"), FailureKind::Account),
            (404, error("not_found_error"), FailureKind::Unavailable),
            (408, "{}".to_owned(), FailureKind::Unavailable),
            (413, error("request_too_large"), FailureKind::Rejected),
            (413, "<html>413</html>".to_owned(), FailureKind::Rejected),
            (422, error("invalid_request_error"), FailureKind::Rejected),
            (429, error("rate_limit_error"), FailureKind::RateLimited),
            (429, spend.to_owned(), FailureKind::Account),
            (500, error("api_error"), FailureKind::Unavailable),
            (502, String::new(), FailureKind::Unavailable),
            (503, "{}".to_owned(), FailureKind::Unavailable),
            (504, error("timeout_error"), FailureKind::Unavailable),
            (529, error("overloaded_error"), FailureKind::Unavailable),
        ];
        for (status, body, kind) in cases {
            let failure = Anthropic.failure(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                body.as_bytes(),
            );
            assert_eq!(failure.kind, kind, "{status} {body}");
            assert_eq!(failure.status, Some(StatusCode::from_u16(status).unwrap()));
        }
    }

    #[test]
    fn rejected_keeps_message_and_anthropic_type_as_code() {
        let failure = Anthropic.failure(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 100000 > 64000"}}"#,
        );
        assert_eq!(failure.message, "max_tokens: 100000 > 64000");
        assert_eq!(failure.code.as_deref(), Some("invalid_request_error"));
        assert_eq!(failure.error_type.as_deref(), Some("invalid_request_error"));
    }

    #[test]
    fn credential_failures_hide_the_upstream_message_and_rate_limits_keep_retry_after() {
        let failure = Anthropic.failure(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-123"}}"#,
        );
        assert!(!failure.message.contains("sk-ant-123"));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("12"));
        let failure = Anthropic.failure(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(
            failure.retry_after,
            Some(std::time::Duration::from_secs(12))
        );
    }
}
