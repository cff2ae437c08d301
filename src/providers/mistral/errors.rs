//! How Mistral reports trouble beyond the OpenAI wire's shapes.

use http::{HeaderMap, StatusCode};

use crate::error::{FailureKind, UpstreamFailure};
use crate::providers::openai::{ErrorFields, classify_fields, failure_from};

/// Mistral's error bodies: the OpenAI shapes, plus spend caps and id refusals.
pub(super) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let fields = ErrorFields::parse(body);
    if status == StatusCode::TOO_MANY_REQUESTS && is_spend_cap(&fields) {
        return failure_from(FailureKind::Account, status, headers, fields);
    }
    if status == StatusCode::BAD_REQUEST
        && fields.is("invalid_function_call")
        && mentions_tool_call_id(&fields)
    {
        // The router rewrites every foreign id, so Mistral refusing one means the mapping
        // is broken, not the client's conversation (reference 7.4, "adapter bug"). The
        // upstream's words are left to the router, which redacts them before it logs the
        // failure: an adapter never sees the secrets.
        tracing::error!(
            "mistral refused a tool-call id the router sent: the id mapping is broken \
                 (the rejection itself is logged at debug level, redacted)"
        );
    }
    classify_fields(status, headers, fields)
}

/// Whether a 429 is a spent monthly budget or usage limit rather than a burst: not transient,
/// so it must not be retried after a short cooldown (reference section 4 and 7.4).
pub(super) fn is_spend_cap(fields: &ErrorFields) -> bool {
    let message = fields.message.as_deref().unwrap_or("").to_ascii_lowercase();
    [
        "month",
        "spend",
        "budget",
        "billing",
        "usage limit",
        "quota",
    ]
    .iter()
    .any(|word| message.contains(word))
}

/// Whether an `invalid_function_call` error is about a tool-call id's format.
pub(super) fn mentions_tool_call_id(fields: &ErrorFields) -> bool {
    fields
        .message
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().contains("tool call id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Adapter;
    use crate::providers::mistral::Mistral;

    fn classify(status: u16, body: &str) -> UpstreamFailure {
        Mistral.failure(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn failures_follow_mistrals_error_shapes() {
        let cases = [
            (
                429,
                r#"{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#,
                FailureKind::RateLimited,
            ),
            (
                429,
                r#"{"message":"Requests rate limit exceeded"}"#,
                FailureKind::RateLimited,
            ),
            (
                429,
                r#"{"object":"error","message":"Service tier capacity exceeded for this model.","type":"invalid_request_error","param":null,"code":null}"#,
                FailureKind::RateLimited,
            ),
            (
                429,
                r#"{"object":"error","message":"You have reached your monthly spending limit.","type":"rate_limited","param":null,"code":"1300"}"#,
                FailureKind::Account,
            ),
            (
                422,
                r#"{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted","input":{}}]}"#,
                FailureKind::Rejected,
            ),
            (
                422,
                r#"{"object":"error","message":{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required"}]},"type":"invalid_request_error","param":null,"code":"3001"}"#,
                FailureKind::Rejected,
            ),
            (
                400,
                r#"{"object":"error","message":"Tool call id was call_abc123 but must be a-z, A-Z, 0-9, with a length of 9.","type":"invalid_function_call","param":null,"code":"3280"}"#,
                FailureKind::Rejected,
            ),
            (
                401,
                r#"{"message":"Unauthorized","request_id":"r1"}"#,
                FailureKind::Account,
            ),
            (500, "{}", FailureKind::Unavailable),
            (503, "upstream connect error", FailureKind::Unavailable),
        ];
        for (status, body, kind) in cases {
            assert_eq!(classify(status, body).kind, kind, "{status} {body}");
        }
    }

    #[test]
    fn rejections_keep_mistrals_message_and_code() {
        let failure = classify(
            422,
            r#"{"object":"error","message":{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required"}]},"type":"invalid_request_error","param":null,"code":"3001"}"#,
        );
        assert!(failure.message.contains("Field required"));
        assert_eq!(failure.code.as_deref(), Some("3001"));
        assert_eq!(failure.status, Some(StatusCode::UNPROCESSABLE_ENTITY));
    }
}
