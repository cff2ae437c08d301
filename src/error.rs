//! The router's error model, and the one place where an error becomes HTTP.
//!
//! Two types live here. [`UpstreamFailure`] is what an attempt against a provider produced,
//! already sorted into a [`FailureKind`] so the router decides by data, never by matching
//! strings. [`ApiError`] is what the client gets; only [`ApiError::status`], [`ApiError::code`]
//! and [`ApiError::into_response`] choose statuses, codes and headers. Rendering has no side
//! effects: logging happens once, at the edge, from the rendered response.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::headers::{MODEL, PAYMENT_NEEDED, PROVIDER, SHOULD_RETRY};
use crate::limits::Standing;
use crate::payment::QuoteHeader;
use crate::redact::Redactor;

/// Why an upstream attempt failed, as far as routing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Transient capacity: 429 rate limits. The provider may answer again after a cooldown.
    RateLimited,
    /// The provider is overloaded or broken (500, 502, 503, 504, 529, an unknown model, a
    /// malformed answer).
    Unavailable,
    /// No response headers (or, for streams, no first event) within the attempt timeout.
    Timeout,
    /// The connection could not be made or was reset before a response.
    Connect,
    /// Billing or credential trouble on the router's side (the router's own provider key):
    /// never the client's fault.
    Account,
    /// The upstream failed after it had started a stream (an in-band error event, a stall, a
    /// malformed event, a stream cut short).
    Stream,
    /// The client's request is wrong; the upstream said so (400, 413, 422, content policy).
    Rejected,
    /// A price quote: a 402 with `Payment-Needed` (Alipay A2M). Not an outage: no cooldown.
    PaymentRequired,
}

impl FailureKind {
    /// The `outcome` label of `upstream_attempts_total` and the `reason` of a failover.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Connect => "connect_error",
            Self::Account => "account",
            Self::Stream => "stream_error",
            Self::Rejected => "client_error",
            Self::PaymentRequired => "payment_required",
        }
    }
}

/// One failed upstream attempt, cleaned for the client: no secrets, no raw upstream body.
#[derive(Clone, Debug)]
pub struct UpstreamFailure {
    /// How routing treats it.
    pub kind: FailureKind,
    /// The upstream's HTTP status, when there was one.
    pub status: Option<StatusCode>,
    /// When the upstream says it can be asked again.
    pub retry_after: Option<Duration>,
    /// A human-readable explanation, safe to show the client.
    pub message: String,
    /// The upstream's error `type`, kept for [`FailureKind::Rejected`] errors.
    pub error_type: Option<String>,
    /// The upstream's error `param`, kept for [`FailureKind::Rejected`] errors.
    pub param: Option<Box<str>>,
    /// The upstream's error `code`, kept for [`FailureKind::Rejected`] errors.
    pub code: Option<String>,
    /// The upstream said the limit applies to this model only, not the whole provider (Qwen's
    /// per-model rate limits, Gemini's `PerModel` quotas): only the model cools down.
    pub per_model: bool,
    /// The `Payment-Needed` header of a [`FailureKind::PaymentRequired`] answer.
    pub quote: Option<Arc<QuoteHeader>>,
}

impl UpstreamFailure {
    /// A failure of `kind` with only a message.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            retry_after: None,
            message: message.into(),
            error_type: None,
            param: None,
            code: None,
            per_model: false,
            quote: None,
        }
    }

    /// Records the upstream status that produced this failure.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// This failure with the configured secrets taken out of every text the upstream had a
    /// hand in (message, type, param, code), before it is logged, stored or sent.
    pub fn redacted(mut self, redactor: &Redactor) -> Self {
        if redactor.is_empty() {
            return self;
        }
        redactor.redact_string(&mut self.message);
        for text in [&mut self.error_type, &mut self.code].into_iter().flatten() {
            redactor.redact_string(text);
        }
        if let Some(param) = &mut self.param
            && let Cow::Owned(clean) = redactor.redact(param)
        {
            *param = clean.into_boxed_str();
        }
        self
    }
}

/// One line of the "why nothing answered" report: a target and what happened to it.
#[derive(Clone, Debug)]
pub struct AttemptReport {
    /// The target, as `provider/model`.
    pub target: String,
    /// What happened: skipped (and why), or the failure's kind and message.
    pub outcome: String,
}

/// Everything a client can be told, each variant with one status and one code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or invalid; `param` names the offending field.
    #[error("{message}")]
    BadRequest {
        /// What is wrong, for a person.
        message: String,
        /// The request field at fault, in OpenAI's dotted form (`messages[0].content`).
        param: Option<String>,
        /// A machine-readable code.
        code: &'static str,
    },
    /// No valid client key was presented.
    #[error(
        "Incorrect API key provided. Send a valid switchboard key as 'Authorization: Bearer <key>'."
    )]
    Unauthorized,
    /// The `model` is neither a route nor a known `provider/model` target.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// No endpoint at this path.
    #[error("Unknown request URL: {method} {path}.")]
    UnknownPath {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The path exists but not with this method.
    #[error("Method {method} is not allowed on {path}; use {allowed}.")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
        /// The methods the path accepts.
        allowed: &'static str,
    },
    /// The request body is larger than `server.max_body`.
    #[error("Request body is larger than the limit of {limit} bytes.")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The client key used up its own `rpm` or `tpm`.
    #[error("Rate limit reached for this key: {limit} {budget} per minute. Try again in {}s.", .retry_after.as_secs().max(1))]
    KeyRateLimited {
        /// `requests` or `tokens`.
        budget: &'static str,
        /// The per-minute limit.
        limit: u32,
        /// When there will be room again.
        retry_after: Duration,
        /// Where the key's budgets stand, for the `x-ratelimit-*` headers.
        standing: Standing,
    },
    /// The upstream refused the request as the client's mistake; its status is kept.
    #[error("{}", .0.message)]
    Rejected(UpstreamFailure),
    /// A seller quoted a price (Alipay A2M): the client pays and retries with `Payment-Proof`.
    #[error("{}", payment_message(.quote))]
    PaymentRequired {
        /// The `Payment-Needed` header as the seller sent it, and what it says.
        quote: Arc<QuoteHeader>,
        /// The quoting provider, for `x-switchboard-provider`.
        provider: Arc<str>,
        /// The quoting model, for `x-switchboard-model`.
        model: Arc<str>,
    },
    /// Every target of the route failed or was skipped.
    #[error("{}", all_targets_message(.attempts))]
    AllTargetsFailed {
        /// True when every target failed or was skipped for rate limits.
        all_rate_limited: bool,
        /// True when every failure was the router's own billing or credential trouble.
        all_account: bool,
        /// When the first target is expected to be usable again.
        retry_after: Option<Duration>,
        /// Per target, what happened.
        attempts: Vec<AttemptReport>,
    },
    /// The provider failed after the stream had started; sent as the stream's last event.
    #[error("The stream was interrupted: {}", .0.message)]
    StreamInterrupted(UpstreamFailure),
    /// The key may not use this endpoint (admin endpoints need an `admin = true` key).
    #[error("{message}")]
    Forbidden {
        /// What is missing, for a person.
        message: String,
        /// A machine-readable code.
        code: &'static str,
    },
    /// `POST /admin/reload` on a router that was not started from a file.
    #[error(
        "This router was not started from a configuration file, so there is nothing to reload."
    )]
    ReloadUnavailable,
    /// `POST /admin/reload` read a file that is not valid; the running configuration stays.
    #[error("The configuration was not reloaded; the running one keeps serving. {0}")]
    ConfigRejected(String),
    /// The router is shutting down and takes no new requests.
    #[error("The router is shutting down; send the request again to another instance.")]
    ShuttingDown,
    /// `server.max_inflight` requests are already being served: refused at once, never queued.
    #[error(
        "The router is serving as many requests as it is configured to ({limit}); try again in a moment."
    )]
    Overloaded {
        /// The configured `server.max_inflight`.
        limit: usize,
    },
    /// A browser request from an origin the router does not trust.
    #[error(
        "Cross-origin browser requests are refused{}; an operator can allow a web app's origin in `server.cors_allowed_origins`.", .origin.as_deref().map(|o| format!(" (origin `{o}`)")).unwrap_or_default()
    )]
    CrossOriginForbidden {
        /// The request's `Origin`, when it sent one that is printable.
        origin: Option<String>,
    },
    /// A `/v1/*` POST whose body is not declared as JSON.
    #[error("Send the request body as JSON with 'Content-Type: application/json'{}.", .got.as_deref().map(|t| format!(" (got `{t}`)")).unwrap_or_default())]
    UnsupportedMediaType {
        /// The `Content-Type` the request sent, when printable.
        got: Option<String>,
    },
    /// The request body did not arrive before the request's deadline.
    #[error("The request body did not arrive within the request timeout of {}s.", .timeout.as_secs())]
    BodyTimeout {
        /// `routing.request_timeout`.
        timeout: Duration,
    },
    /// A bug or an impossible state in the router itself.
    #[error("Internal router error: {0}")]
    Internal(String),
}

/// What a client reads about a quote: everything needed to pay it.
fn payment_message(header: &QuoteHeader) -> String {
    match &header.quote {
        Some(quote) => format!(
            "Payment required: {} {} for order {}, to be paid before {}. Pay it and send the \
             same request again with the Payment-Proof header (see the Payment-Needed header).",
            quote.amount, quote.currency, quote.out_trade_no, quote.pay_before
        ),
        None => "Payment required: the provider's Payment-Needed header (passed on unchanged) \
                 could not be read by the router."
            .to_owned(),
    }
}

fn all_targets_message(attempts: &[AttemptReport]) -> String {
    let mut message = String::from("No provider could answer this request.");
    for attempt in attempts {
        let _ = write!(message, " {}: {}.", attempt.target, attempt.outcome);
    }
    message
}

/// How long an overloaded router asks clients to wait.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The `code` of an error answer, riding in the response's extensions so the request record
/// can log it without parsing the body.
#[derive(Clone, Debug)]
pub struct ErrorCode(pub Arc<str>);

/// The OpenAI error envelope: `{"error":{"message","type","param","code"}}`.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    /// The error object.
    pub error: ErrorObject<'a>,
}

/// The inner OpenAI error object.
#[derive(Serialize)]
pub struct ErrorObject<'a> {
    /// For a person.
    pub message: &'a str,
    /// The OpenAI error type (`invalid_request_error`, `server_error`, ...).
    #[serde(rename = "type")]
    pub error_type: &'a str,
    /// The request field at fault.
    pub param: Option<&'a str>,
    /// A machine-readable code.
    pub code: Option<&'a str>,
}

impl ErrorBody<'_> {
    /// Serialises the envelope; it holds only strings, so this cannot fail.
    pub fn to_bytes(&self) -> Bytes {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .unwrap_or_default()
    }
}

impl ApiError {
    /// A 400 naming the request field at fault.
    pub fn bad_request(message: impl Into<String>, param: Option<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param,
            code: "invalid_request_error",
        }
    }

    /// A 400 for a request field the chosen provider cannot honour, with OpenAI's own code for
    /// it, so every adapter refuses in the same words.
    pub fn unsupported(message: impl Into<String>, param: &str) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: Some(param.to_owned()),
            code: "unsupported_parameter",
        }
    }

    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ModelNotFound(_) | Self::UnknownPath { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::ReloadUnavailable => StatusCode::CONFLICT,
            Self::ConfigRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Rejected(failure) => failure
                .status
                .filter(|s| s.is_client_error())
                .unwrap_or(StatusCode::BAD_REQUEST),
            Self::KeyRateLimited { .. }
            | Self::AllTargetsFailed {
                all_rate_limited: true,
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            Self::AllTargetsFailed {
                all_account: true, ..
            } => StatusCode::BAD_GATEWAY,
            Self::AllTargetsFailed { .. } | Self::ShuttingDown | Self::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::CrossOriginForbidden { .. } => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::StreamInterrupted(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
        }
    }

    /// The OpenAI error `type`.
    fn error_type(&self) -> &str {
        match self {
            Self::BadRequest { .. }
            | Self::ModelNotFound(_)
            | Self::UnknownPath { .. }
            | Self::MethodNotAllowed { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::BodyTimeout { .. }
            | Self::PayloadTooLarge { .. } => "invalid_request_error",
            Self::Unauthorized | Self::ReloadUnavailable | Self::ConfigRejected(_) => {
                "invalid_request_error"
            }
            Self::Forbidden { .. } | Self::CrossOriginForbidden { .. } => "permission_error",
            Self::PaymentRequired { .. } => "payment_required",
            Self::KeyRateLimited { budget, .. } => budget,
            Self::Rejected(failure) => failure
                .error_type
                .as_deref()
                .unwrap_or("invalid_request_error"),
            Self::AllTargetsFailed {
                all_rate_limited: true,
                ..
            } => "rate_limit_error",
            Self::AllTargetsFailed { .. }
            | Self::StreamInterrupted(_)
            | Self::ShuttingDown
            | Self::Overloaded { .. }
            | Self::Internal(_) => "server_error",
        }
    }

    /// The machine-readable `code` clients branch on.
    pub fn code(&self) -> &str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Unauthorized => "invalid_api_key",
            Self::Forbidden { code, .. } => code,
            Self::ReloadUnavailable => "reload_unavailable",
            Self::ConfigRejected(_) => "config_invalid",
            Self::ModelNotFound(_) => "model_not_found",
            Self::UnknownPath { .. } => "unknown_url",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::KeyRateLimited { .. } => "rate_limit_exceeded",
            Self::PayloadTooLarge { .. } => "request_too_large",
            Self::Rejected(failure) => failure.code.as_deref().unwrap_or("upstream_rejected"),
            Self::AllTargetsFailed {
                all_rate_limited: true,
                ..
            } => "all_targets_rate_limited",
            Self::AllTargetsFailed { .. } => "all_targets_unavailable",
            Self::StreamInterrupted(failure) => {
                failure.code.as_deref().unwrap_or("stream_interrupted")
            }
            Self::ShuttingDown => "shutting_down",
            Self::Overloaded { .. } => "overloaded",
            Self::CrossOriginForbidden { .. } => "cross_origin_forbidden",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::BodyTimeout { .. } => "request_timeout",
            Self::Internal(_) => "internal_error",
            Self::PaymentRequired { .. } => "payment_required",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::BadRequest { param, .. } => param.as_deref(),
            Self::Rejected(failure) => failure.param.as_deref(),
            Self::ModelNotFound(_) => Some("model"),
            Self::Unauthorized
            | Self::Forbidden { .. }
            | Self::ReloadUnavailable
            | Self::ConfigRejected(_)
            | Self::KeyRateLimited { .. }
            | Self::UnknownPath { .. }
            | Self::MethodNotAllowed { .. }
            | Self::PayloadTooLarge { .. }
            | Self::AllTargetsFailed { .. }
            | Self::StreamInterrupted(_)
            | Self::PaymentRequired { .. }
            | Self::ShuttingDown
            | Self::Overloaded { .. }
            | Self::CrossOriginForbidden { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::BodyTimeout { .. }
            | Self::Internal(_) => None,
        }
    }

    /// When the client may try again, for `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::AllTargetsFailed { retry_after, .. } => *retry_after,
            Self::KeyRateLimited { retry_after, .. } => Some(*retry_after),
            Self::Overloaded { .. } => Some(OVERLOADED_RETRY_AFTER),
            Self::BadRequest { .. }
            | Self::CrossOriginForbidden { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::BodyTimeout { .. }
            | Self::Unauthorized
            | Self::Forbidden { .. }
            | Self::ReloadUnavailable
            | Self::ConfigRejected(_)
            | Self::ModelNotFound(_)
            | Self::UnknownPath { .. }
            | Self::MethodNotAllowed { .. }
            | Self::PayloadTooLarge { .. }
            | Self::Rejected(_)
            | Self::PaymentRequired { .. }
            | Self::StreamInterrupted(_)
            | Self::ShuttingDown
            | Self::Internal(_) => None,
        }
    }

    /// The OpenAI-shaped body, for a response or an in-band stream error event.
    pub fn body(&self) -> Bytes {
        let message = self.to_string();
        ErrorBody {
            error: ErrorObject {
                message: &message,
                error_type: self.error_type(),
                param: self.param(),
                code: Some(self.code()),
            },
        }
        .to_bytes()
    }

    /// The complete HTTP response: status, OpenAI error body and the retry headers.
    pub fn into_response<B: From<Bytes>>(self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.body()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(retry_after) = self.retry_after() {
            // Whole seconds, rounded up, so a client never comes back too early.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Self::MethodNotAllowed { allowed, .. } = self {
            headers.insert(ALLOW, HeaderValue::from_static(allowed));
        }
        if let Self::KeyRateLimited { standing, .. } = &self {
            // The same headers as the key's other answers, the exhausted budget at zero.
            standing.write_headers(headers);
        }
        if let Self::PaymentRequired {
            quote,
            provider,
            model,
        } = &self
        {
            payment_headers(headers, quote, provider, model);
        }
        if let Self::AllTargetsFailed { .. }
        | Self::ShuttingDown
        | Self::Overloaded { .. }
        | Self::PayloadTooLarge { .. } = self
        {
            // The router already failed over (or the answer cannot change: a body too large);
            // an SDK retry on top would only add latency, and load, to a payment flow that
            // should drop to its fallback now.
            headers.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
        }
        response
            .extensions_mut()
            .insert(ErrorCode(self.code().into()));
        response
    }
}

/// The headers of a quote's 402: the seller's `Payment-Needed` byte for byte, and who quoted,
/// so that the client can pin its paid retry with `x-switchboard-target`.
fn payment_headers(
    headers: &mut http::HeaderMap,
    quote: &QuoteHeader,
    provider: &str,
    model: &str,
) {
    headers.insert(PAYMENT_NEEDED, quote.raw.clone());
    // A paid retry must not be sent twice by an SDK; the client decides after paying.
    headers.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
    for (name, value) in [(PROVIDER, provider), (MODEL, model)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

impl From<UpstreamFailure> for ApiError {
    /// A failure that ends the request: returned as is when it is the client's fault, else
    /// reported as "nothing could answer" with the one attempt it took.
    fn from(failure: UpstreamFailure) -> Self {
        match failure.kind {
            FailureKind::Rejected | FailureKind::PaymentRequired => Self::Rejected(failure),
            kind @ (FailureKind::RateLimited
            | FailureKind::Unavailable
            | FailureKind::Timeout
            | FailureKind::Connect
            | FailureKind::Account
            | FailureKind::Stream) => Self::AllTargetsFailed {
                all_rate_limited: kind == FailureKind::RateLimited,
                all_account: kind == FailureKind::Account,
                retry_after: failure.retry_after,
                attempts: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(error: &ApiError) -> serde_json::Value {
        serde_json::from_slice(&error.body()).unwrap()
    }

    #[test]
    fn bad_request_names_the_param() {
        let error = ApiError::bad_request("messages must not be empty", Some("messages".into()));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let body = json(&error);
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["message"], "messages must not be empty");
    }

    #[test]
    fn all_targets_rate_limited_is_429_with_retry_after_and_no_sdk_retry() {
        let error = ApiError::AllTargetsFailed {
            all_rate_limited: true,
            all_account: false,
            retry_after: Some(Duration::from_millis(1500)),
            attempts: vec![AttemptReport {
                target: "qwen/qwen-max".into(),
                outcome: "rate_limited".into(),
            }],
        };
        let response: http::Response<Bytes> = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()["x-should-retry"], "false");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"]["code"], "all_targets_rate_limited");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("qwen/qwen-max: rate_limited")
        );
    }

    #[test]
    fn credential_failures_are_a_bad_gateway_not_the_clients_key() {
        let error = ApiError::from(UpstreamFailure::new(FailureKind::Account, "key refused"));
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(error.code(), "all_targets_unavailable");
    }

    #[test]
    fn rejected_keeps_the_upstream_client_status() {
        let mut failure = UpstreamFailure::new(FailureKind::Rejected, "context too long")
            .with_status(StatusCode::UNPROCESSABLE_ENTITY);
        failure.code = Some("context_length_exceeded".into());
        let error = ApiError::from(failure);
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(&error)["error"]["code"], "context_length_exceeded");
    }
}
