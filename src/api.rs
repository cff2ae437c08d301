//! The front door's path table: which path and method go to which handler, and the layers
//! that only some paths need (see [`crate::layers`] for the whole stack). Unknown paths are
//! 404 and wrong methods 405, in the OpenAI error shape.

mod admin;
mod chat;
mod models;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use crate::app::AppState;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::layers::Answer;
use crate::layers::auth::{AuthLayer, Caller, Need};
use crate::layers::body::BodyLayer;
use crate::layers::inflight::InflightLayer;
use crate::layers::json_body::JsonBodyLayer;

/// The endpoints, each behind the layers it needs.
#[derive(Clone)]
pub struct Api {
    state: Arc<AppState>,
    inflight: InflightLayer,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    /// The endpoints of `state`, chat requests counted and bounded by `inflight`.
    pub fn new(state: Arc<AppState>, inflight: InflightLayer) -> Self {
        Self { state, inflight }
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Models,
    AdminConfig,
    AdminReload,
    Health,
    Ready,
    Metrics,
}

/// The endpoint of a path and method, or 404/405.
fn endpoint(method: &Method, path: &str) -> Result<Endpoint, ApiError> {
    let (endpoint, allowed) = match path {
        "/v1/chat/completions" => (Endpoint::Chat, Method::POST),
        "/admin/reload" => (Endpoint::AdminReload, Method::POST),
        "/admin/config" => (Endpoint::AdminConfig, Method::GET),
        "/v1/models" => (Endpoint::Models, Method::GET),
        "/healthz" => (Endpoint::Health, Method::GET),
        "/readyz" => (Endpoint::Ready, Method::GET),
        "/metrics" => (Endpoint::Metrics, Method::GET),
        p if p.starts_with("/v1/models/") => (Endpoint::Models, Method::GET),
        _ => {
            return Err(ApiError::UnknownPath {
                method: method.to_string(),
                path: path.to_owned(),
            });
        }
    };
    let head_for_get = allowed == Method::GET && method == Method::HEAD;
    if method != allowed && !head_for_get {
        return Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_owned(),
            allowed: if allowed == Method::POST {
                "POST"
            } else {
                "GET"
            },
        });
    }
    Ok(endpoint)
}

impl<B> Service<Request<B>> for Api
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display + Send,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every endpoint is ready at once; each call is served by its own stack.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = self.state.clone();
        let endpoint = match endpoint(request.method(), request.uri().path()) {
            Ok(endpoint) => endpoint,
            Err(error) => return Box::pin(std::future::ready(Ok(error.into_response()))),
        };
        match endpoint {
            Endpoint::Chat => {
                let chat = tower::service_fn(move |request: Request<Bytes>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(chat::handle(&state, request).await) }
                });
                let stack = ServiceBuilder::new()
                    .layer(self.inflight.clone())
                    .layer(JsonBodyLayer)
                    .layer(AuthLayer::new(Need::Client))
                    .layer(BodyLayer)
                    .service(chat);
                Box::pin(stack.oneshot(request))
            }
            Endpoint::Models => {
                let models = tower::service_fn(|request: Request<B>| {
                    std::future::ready(Ok(models::handle(&request).unwrap_or_else(error)))
                });
                Box::pin(AuthLayer::new(Need::Client).layer(models).oneshot(request))
            }
            Endpoint::AdminConfig | Endpoint::AdminReload => {
                let admin = tower::service_fn(move |request: Request<B>| {
                    let state = state.clone();
                    async move {
                        let answer = if endpoint == Endpoint::AdminReload {
                            let caller = Caller::of(&request).cloned().unwrap_or_default();
                            admin::reload(&state, &caller).await
                        } else {
                            admin::config(&state)
                        };
                        Ok(answer.unwrap_or_else(error))
                    }
                });
                Box::pin(AuthLayer::new(Need::Admin).layer(admin).oneshot(request))
            }
            Endpoint::Health => Box::pin(std::future::ready(Ok(json(
                StatusCode::OK,
                r#"{"status":"ok"}"#,
            )))),
            Endpoint::Ready => Box::pin(std::future::ready(Ok(ready(&state)))),
            Endpoint::Metrics => Box::pin(std::future::ready(Ok(metrics(&state)))),
        }
    }
}

/// `/readyz`: 503 once a shutdown has begun, so load balancers stop sending.
fn ready(state: &AppState) -> Response<ResponseBody> {
    if state.is_shutting_down() {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"shutting_down"}"#,
        )
    } else {
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    }
}

/// The Prometheus text exposition.
fn metrics(state: &AppState) -> Response<ResponseBody> {
    let body = state.metrics.render(&state.config.load(), &state.health);
    let mut response = Response::new(ResponseBody::full(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// An error as a response.
pub(crate) fn error(error: ApiError) -> Response<ResponseBody> {
    error.into_response()
}

/// A small JSON response.
fn json(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_pick_their_endpoint_or_404_405() {
        assert_eq!(
            endpoint(&Method::POST, "/v1/chat/completions").unwrap(),
            Endpoint::Chat
        );
        assert_eq!(
            endpoint(&Method::HEAD, "/v1/models/demo").unwrap(),
            Endpoint::Models
        );
        let wrong = endpoint(&Method::GET, "/v1/chat/completions").unwrap_err();
        assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
        let unknown = endpoint(&Method::GET, "/v2/anything").unwrap_err();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}
