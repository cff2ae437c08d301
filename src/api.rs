//! The front door's path table: which path and method go to which handler, and the layers
//! that only some paths need (see [`crate::layers`] for the whole stack). Unknown paths are
//! 404 and wrong methods 405, in the OpenAI error shape.

mod admin;
mod chat;
mod embeddings;
mod models;
mod responses;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{Method, Request, Response, StatusCode};
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use crate::app::AppState;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::layers::Answer;
use crate::layers::auth::{AuthLayer, Authenticated, Need};
use crate::layers::body::{BodyLayer, ReadBody};
use crate::layers::context::RequestContext;
use crate::layers::inflight::{Inflight, InflightLayer};
use crate::layers::json_body::{JsonBody, JsonBodyLayer};

/// The chat endpoint behind its own layers (6 to 9 of [`crate::layers`]).
pub type ChatStack = Inflight<JsonBody<Authenticated<ReadBody<ChatService>>>>;

/// The embeddings endpoint behind the same layers as chat.
pub type EmbeddingsStack = Inflight<JsonBody<Authenticated<ReadBody<EmbeddingsService>>>>;
/// The Responses endpoint behind the same layers as chat.
pub type ResponsesStack = Inflight<JsonBody<Authenticated<ReadBody<ResponsesService>>>>;

/// The endpoints, each behind the layers it needs. One `Arc` inside: the stack is cloned for
/// every request.
#[derive(Clone)]
pub struct Api(Arc<Endpoints>);

/// What every clone of [`Api`] shares.
struct Endpoints {
    state: Arc<AppState>,
    chat: ChatStack,
    embeddings: EmbeddingsStack,
    responses: ResponsesStack,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    /// The endpoints of `state`, chat requests counted and bounded by `inflight`.
    pub fn new(state: Arc<AppState>, inflight: InflightLayer) -> Self {
        let embeddings_inflight = inflight.for_endpoint(crate::endpoint::Endpoint::Embeddings);
        let responses_inflight = inflight.for_endpoint(crate::endpoint::Endpoint::Responses);
        let chat = ServiceBuilder::new()
            .layer(inflight.clone())
            .layer(JsonBodyLayer)
            .layer(AuthLayer::new(Need::Client))
            .layer(BodyLayer)
            .service(ChatService(state.clone()));
        let embeddings = ServiceBuilder::new()
            .layer(embeddings_inflight)
            .layer(JsonBodyLayer)
            .layer(AuthLayer::new(Need::Client))
            .layer(BodyLayer)
            .service(EmbeddingsService(state.clone()));
        let responses = ServiceBuilder::new()
            .layer(responses_inflight)
            .layer(JsonBodyLayer)
            .layer(AuthLayer::new(Need::Client))
            .layer(BodyLayer)
            .service(ResponsesService(state.clone()));
        Self(Arc::new(Endpoints {
            state,
            chat,
            embeddings,
            responses,
        }))
    }
}

/// `POST /v1/chat/completions` once the layers let it through.
#[derive(Clone)]
pub struct ChatService(Arc<AppState>);

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatService")
    }
}

impl Service<Request<Bytes>> for ChatService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move { Ok(chat::handle(&state, request, chat::Chat).await) })
    }
}

/// `POST /v1/responses` once the layers let it through.
#[derive(Clone)]
pub struct ResponsesService(Arc<AppState>);

impl std::fmt::Debug for ResponsesService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponsesService")
    }
}

impl Service<Request<Bytes>> for ResponsesService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        let front = responses::Responses::default();
        Box::pin(async move { Ok(chat::handle(&state, request, front).await) })
    }
}

/// `POST /v1/embeddings` once the layers let it through.
#[derive(Clone)]
pub struct EmbeddingsService(Arc<AppState>);

impl std::fmt::Debug for EmbeddingsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddingsService")
    }
}

impl Service<Request<Bytes>> for EmbeddingsService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move { Ok(embeddings::handle(&state, request).await) })
    }
}

/// Where a request goes: chat, the hot path, embeddings, or one of the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Embeddings,
    Responses,
    Other(Other),
}

/// The endpoints besides chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Other {
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
        "/v1/embeddings" => (Endpoint::Embeddings, Method::POST),
        "/v1/responses" => (Endpoint::Responses, Method::POST),
        "/admin/reload" => (Endpoint::Other(Other::AdminReload), Method::POST),
        "/admin/config" => (Endpoint::Other(Other::AdminConfig), Method::GET),
        "/v1/models" => (Endpoint::Other(Other::Models), Method::GET),
        "/healthz" => (Endpoint::Other(Other::Health), Method::GET),
        "/readyz" => (Endpoint::Other(Other::Ready), Method::GET),
        "/metrics" => (Endpoint::Other(Other::Metrics), Method::GET),
        p if p.starts_with("/v1/models/") => (Endpoint::Other(Other::Models), Method::GET),
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
    /// Chat, the hot path, without a box of its own; the other endpoints boxed.
    type Future = Either<Oneshot<ChatStack, Request<B>>, Answer>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every endpoint is ready at once; each call is served by its own stack.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match endpoint(request.method(), request.uri().path()) {
            Ok(Endpoint::Chat) => Either::Left(self.0.chat.clone().oneshot(request)),
            Ok(Endpoint::Embeddings) => {
                Either::Right(Box::pin(self.0.embeddings.clone().oneshot(request)))
            }
            Ok(Endpoint::Responses) => {
                Either::Right(Box::pin(self.0.responses.clone().oneshot(request)))
            }
            Ok(Endpoint::Other(endpoint)) => Either::Right(self.other(endpoint, request)),
            Err(error) => Either::Right(Box::pin(std::future::ready(Ok(error.into_response())))),
        }
    }
}

impl Api {
    /// Every endpoint but chat.
    fn other<B>(&self, endpoint: Other, request: Request<B>) -> Answer
    where
        B: Send + 'static,
    {
        let state = self.0.state.clone();
        match endpoint {
            Other::Models => {
                let models = tower::service_fn(|request: Request<B>| {
                    std::future::ready(Ok(models::handle(&request).unwrap_or_else(error)))
                });
                Box::pin(AuthLayer::new(Need::Client).layer(models).oneshot(request))
            }
            Other::AdminConfig | Other::AdminReload => {
                let admin = tower::service_fn(move |request: Request<B>| {
                    let state = state.clone();
                    async move {
                        let answer = if endpoint == Other::AdminReload {
                            let caller = RequestContext::of(&request)
                                .and_then(|context| context.caller.clone())
                                .unwrap_or_default();
                            admin::reload(&state.reloads, &caller).await
                        } else {
                            admin::config(&state.config.load(), &state.reloads)
                        };
                        Ok(answer.unwrap_or_else(error))
                    }
                });
                Box::pin(AuthLayer::new(Need::Admin).layer(admin).oneshot(request))
            }
            Other::Health => Box::pin(std::future::ready(Ok(json(
                StatusCode::OK,
                r#"{"status":"ok"}"#,
            )))),
            Other::Ready => Box::pin(std::future::ready(Ok(ready(&state)))),
            Other::Metrics => Box::pin(std::future::ready(Ok(metrics(&state)))),
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
    let body = state
        .metrics
        .render(&state.config.load(), state.router.health());
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
            Endpoint::Other(Other::Models)
        );
        assert_eq!(
            endpoint(&Method::POST, "/v1/embeddings").unwrap(),
            Endpoint::Embeddings
        );
        let wrong = endpoint(&Method::GET, "/v1/chat/completions").unwrap_err();
        assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
        let unknown = endpoint(&Method::GET, "/v2/anything").unwrap_err();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}
