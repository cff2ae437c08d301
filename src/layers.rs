//! The server's cross-cutting concerns as tower layers, each one concern, each testable alone.
//! What is specific to switchboard (routing, failover, translation, accounting) stays in the
//! inner services of [`crate::api`].
//!
//! The stack every request goes through, outermost first:
//!
//! 1. sensitive headers (tower-http): `authorization`, the provider key headers and
//!    `payment-proof` are marked sensitive, so no log or trace layer can print them;
//! 2. [`context`]: the request id ([`request_id`]: the client's printable id of at most 128
//!    characters, else a new one, on every answer), the configuration snapshot, arrival time
//!    and deadline, fixed once;
//! 3. [`browser`]: cross-site browser requests refused, CORS for the allowed origins;
//! 4. the path table ([`crate::api`]), and on `POST /v1/chat/completions` and `/v1/responses`:
//! 5. [`inflight`]: the request's record (metrics, usage log, in-flight gauge) and the
//!    `server.max_inflight` limit, shedding at once with a 503 `overloaded`;
//! 6. [`json_body`]: a body not declared as JSON is a 415;
//! 7. [`auth`]: the client key, or 401 (admin endpoints: an admin key, or 403);
//! 8. [`body`]: the whole body read within `server.max_body` and the deadline, or 413/408;
//! 9. the chat service.

pub mod auth;
pub mod body;
pub mod browser;
pub mod context;
pub mod inflight;
pub mod json_body;
pub mod request_id;

use std::convert::Infallible;

use http::HeaderName;
use http::Response;
use http::header::AUTHORIZATION;
use tower::ServiceBuilder;
use tower_http::sensitive_headers::{SetSensitiveRequestHeaders, SetSensitiveRequestHeadersLayer};

use crate::api::Api;
use crate::body::ResponseBody;
use crate::layers::browser::{Browser, BrowserLayer};
use crate::layers::context::{Config, ContextLayer, WithContext};
use crate::layers::request_id::MakeId;

/// A response future that never fails: errors are answers in the OpenAI shape.
pub type Answer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>,
>;

/// Request headers that carry secrets: the client key, the provider key headers a client might
/// send by mistake (Anthropic's `x-api-key`, Gemini's `x-goog-api-key`; the others use
/// `authorization`), and a payment proof. Each name costs a header-map lookup per request.
pub const SENSITIVE_HEADERS: [HeaderName; 4] = [
    AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-goog-api-key"),
    crate::headers::PAYMENT_PROOF,
];

/// The whole stack a connection serves: layers 1 to 3 around the path table.
pub type Stack = SetSensitiveRequestHeaders<WithContext<Browser<Api>>>;

/// Wraps `api` (the path table) in the layers every request goes through (1 to 3 above).
pub fn outer(api: Api, ids: MakeId, config: Config) -> Stack {
    ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS))
        .layer(ContextLayer::new(config, ids))
        .layer(BrowserLayer)
        .service(api)
}

/// Unit-test helpers shared by the layers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::convert::Infallible;
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::BodyExt;

    use crate::body::ResponseBody;
    use crate::config::Snapshot;

    /// A snapshot from a small configuration with `server` lines added.
    pub(crate) fn snapshot(server: &str) -> Arc<Snapshot> {
        snapshot_with(&format!("[server]\n{server}\n"), &|_| None)
    }

    /// A snapshot from a small configuration with `extra` tables, reading `env`.
    pub(crate) fn snapshot_with(
        extra: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Arc<Snapshot> {
        let toml = format!(
            "{extra}\n[providers.local]\nkind = \"mock\"\n[routes.demo]\ntargets = [\"local/echo\"]\n"
        );
        Arc::new(crate::config::parse(&toml, "test.toml", env).expect("valid config"))
    }

    /// An inner service that answers 200 with the request's body.
    pub(crate) async fn echo<B>(request: Request<B>) -> Result<Response<ResponseBody>, Infallible>
    where
        B: http_body::Body + Send,
        B::Data: Send,
    {
        let bytes = request
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Ok(Response::new(ResponseBody::full(bytes)))
    }

    /// The whole body of a response.
    pub(crate) async fn body(response: Response<ResponseBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    /// The parsed OpenAI error of a response.
    pub(crate) async fn error_json(response: Response<ResponseBody>) -> serde_json::Value {
        serde_json::from_slice(&body(response).await).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response};
    use tower::{ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn secret_headers_are_sensitive_before_anything_can_log_them() {
        let inner = service_fn(|request: Request<()>| async move {
            let marked: Vec<String> = request
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}={}", value.is_sensitive()))
                .collect();
            Ok::<_, Infallible>(Response::new(ResponseBody::full(marked.join(","))))
        });
        let service = ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS))
            .service(inner);
        let request = Request::builder()
            .header("authorization", "Bearer sk-client")
            .header("x-api-key", "sk-ant")
            .header("x-goog-api-key", "AIza")
            .header("payment-proof", "proof")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        let marked = testing::body(response).await;
        assert_eq!(
            marked,
            "authorization=true,x-api-key=true,x-goog-api-key=true,payment-proof=true,\
             content-type=false"
        );
    }
}
