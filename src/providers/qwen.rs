//! `kind = "qwen"`: Alibaba Model Studio (DashScope) compatible mode, Alipay endpoints included.
//!
//! The wire is OpenAI's, so requests and responses pass through byte for byte (Qwen-only
//! fields such as `enable_thinking` reach the upstream, `reasoning_content` reaches the
//! client). What differs is how DashScope reports trouble: an unpaid account is a 400
//! `Arrearage`, and content moderation is a 400 `data_inspection_failed`
//! (reference/provider-apis.md section 5.1).

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::openai::{self, ErrorFields, OpenAi};
use super::{Adapter, Honours, StreamTranslator, Translated, UpstreamRequest};
use crate::config::Target;
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::openai::ChatRequest;

/// DashScope's embeddings (`text-embedding-v3`/`v4`) speak the OpenAI wire but return only
/// floats, so `base64` is encoded by the router.
pub(super) const EMBEDDINGS: openai::Embeddings = openai::Embeddings { asks_floats: true };

/// The DashScope compatible-mode adapter.
pub(super) struct Qwen;

/// The OpenAI wire, with at most four choices: the most DashScope returns (`n`, on the
/// models that take it at all).
const HONOURS: Honours = Honours {
    max_choices: 4,
    ..Honours::OPENAI_WIRE
};

impl Adapter for Qwen {
    fn honours(&self, _target: &Target) -> &'static Honours {
        &HONOURS
    }

    fn translate(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        OpenAi.translate(chat, target)
    }

    fn response(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        OpenAi.response(chat, target, body)
    }

    fn stream(&self, chat: &ChatRequest<'_>, target: &Target) -> Box<dyn StreamTranslator> {
        OpenAi.stream(chat, target)
    }

    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        let fields = ErrorFields::parse(body);
        if fields.is("Arrearage") {
            return openai::failure_from(FailureKind::Account, status, headers, fields);
        }
        if fields.is("data_inspection_failed") {
            let mut failure = openai::failure_from(FailureKind::Rejected, status, headers, fields);
            failure.code = Some("content_filter".to_owned());
            return failure;
        }
        let mut failure = openai::classify_fields(status, headers, fields);
        // DashScope rate limits are per model and root account (reference 5.1): the
        // provider's other models can still answer.
        failure.per_model = failure.kind == FailureKind::RateLimited;
        failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> UpstreamFailure {
        Qwen.failure(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn more_choices_than_dashscope_returns_are_refused_naming_n() {
        let target = crate::config::test_target("qwen", "dashscope", "qwen-plus");
        let request = |n: u32| {
            let raw =
                format!(r#"{{"model":"m","n":{n},"messages":[{{"role":"user","content":"hi"}}]}}"#);
            let chat = ChatRequest::parse(raw.as_bytes()).unwrap();
            Qwen.request(&chat, &target).map(|r| r.body)
        };
        let sent = request(4).unwrap();
        assert!(String::from_utf8_lossy(&sent).contains(r#""n":4"#));
        let error = request(5).unwrap_err();
        let body: serde_json::Value = serde_json::from_slice(&error.body()).unwrap();
        assert_eq!(body["error"]["param"], "n");
        assert_eq!(body["error"]["code"], "unsupported_parameter");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("provider 'dashscope' (kind qwen)")
        );
    }

    #[test]
    fn arrearage_is_an_account_problem_despite_the_400() {
        let failure = classify(
            400,
            r#"{"error":{"message":"Access denied, please make sure your account is in good standing.","type":"Arrearage","param":null,"code":"Arrearage"},"id":"chatcmpl-1","request_id":"r1"}"#,
        );
        assert_eq!(failure.kind, FailureKind::Account);
    }

    #[test]
    fn moderation_is_the_clients_content_filter() {
        let failure = classify(
            400,
            r#"{"error":{"message":"<400> InternalError.Algo.DataInspectionFailed: Input data may contain inappropriate content.","type":"data_inspection_failed","param":null,"code":"data_inspection_failed"}}"#,
        );
        assert_eq!(failure.kind, FailureKind::Rejected);
        assert_eq!(failure.code.as_deref(), Some("content_filter"));
    }

    #[test]
    fn throttling_and_quota_follow_the_openai_rules() {
        let limit = classify(
            429,
            r#"{"error":{"message":"Requests rate limit exceeded","type":"limit_requests","code":"limit_requests"}}"#,
        );
        assert_eq!(limit.kind, FailureKind::RateLimited);
        assert!(limit.per_model, "DashScope limits are per model");
        let quota = classify(
            429,
            r#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        assert_eq!(quota.kind, FailureKind::Account);
        let key = classify(
            401,
            r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        );
        assert_eq!(key.kind, FailureKind::Account);
    }
}
