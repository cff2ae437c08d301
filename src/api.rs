//! The front door's routing table: which path and method go to which handler.

mod admin;
mod chat;
mod models;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::app::{AppState, ResponseBody};
use crate::error::ApiError;

/// Sends a request to its handler; unknown paths are 404 and wrong methods 405.
pub(crate) async fn dispatch(
    state: &AppState,
    request: Request<Incoming>,
    request_id: &str,
) -> Response<ResponseBody> {
    let path = request.uri().path();
    let method = request.method();
    let allowed = match path {
        "/v1/chat/completions" | "/admin/reload" => "POST",
        "/v1/models" | "/healthz" | "/readyz" | "/metrics" | "/admin/config" => "GET",
        p if p.starts_with("/v1/models/") => "GET",
        _ => {
            return error(ApiError::UnknownPath {
                method: method.to_string(),
                path: path.to_owned(),
            });
        }
    };
    let expected = if allowed == "POST" {
        Method::POST
    } else {
        Method::GET
    };
    if method != expected && !(expected == Method::GET && method == Method::HEAD) {
        return error(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_owned(),
            allowed,
        });
    }
    match path {
        "/v1/chat/completions" => chat::handle(state, request, request_id).await,
        "/admin/config" => admin::config(state, request.headers()).unwrap_or_else(error),
        "/admin/reload" => admin::reload(state, request.headers())
            .await
            .unwrap_or_else(error),
        "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#),
        "/metrics" => metrics(state),
        "/readyz" if state.is_shutting_down() => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"shutting_down"}"#,
        ),
        "/readyz" => json(StatusCode::OK, r#"{"status":"ready"}"#),
        _ => models::handle(state, &request).unwrap_or_else(error),
    }
}

/// The Prometheus text exposition.
fn metrics(state: &AppState) -> Response<ResponseBody> {
    let body = state.metrics.render(&state.config.load(), &state.health);
    let mut response = Response::new(Either::Left(Full::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// An error as a response.
pub(crate) fn error(error: ApiError) -> Response<ResponseBody> {
    error.into_response::<Full<_>>().map(Either::Left)
}

/// A small JSON response.
fn json(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
