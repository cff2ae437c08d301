//! A `/v1/*` POST must declare its body as JSON: anything else is a 415 before the body is
//! read. This is what keeps a browser's "simple" cross-site POST (`text/plain`, which needs no
//! preflight) from ever reaching a provider, whatever the origin checks say.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use crate::body::ResponseBody;
use crate::error::ApiError;

/// Refuses bodies not declared as `application/json` (parameters such as `charset` allowed).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonBodyLayer;

impl<S> Layer<S> for JsonBodyLayer {
    type Service = JsonBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonBody { inner }
    }
}

/// The service [`JsonBodyLayer`] makes.
#[derive(Clone, Debug)]
pub struct JsonBody<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for JsonBody<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ResponseBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let declared = request.headers().get(CONTENT_TYPE);
        if declared.is_some_and(is_json) {
            return Either::Right(self.inner.call(request));
        }
        let got = declared.and_then(|v| v.to_str().ok()).map(|v| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        });
        Either::Left(ready(Ok(
            ApiError::UnsupportedMediaType { got }.into_response()
        )))
    }
}

/// Whether a `Content-Type` is `application/json`, whatever the case and parameters.
fn is_json(value: &HeaderValue) -> bool {
    let essence = value
        .as_bytes()
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    essence.eq_ignore_ascii_case(b"application/json")
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::layers::testing::{echo, error_json};

    async fn send(content_type: Option<&str>) -> Response<ResponseBody> {
        let mut request = Request::post("/v1/chat/completions");
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        JsonBodyLayer
            .layer(service_fn(echo::<String>))
            .oneshot(request.body(String::from("{}")).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn json_in_any_spelling_is_served() {
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            assert_eq!(send(Some(json)).await.status(), StatusCode::OK, "{json}");
        }
    }

    #[tokio::test]
    async fn anything_else_is_415_before_the_body_is_read() {
        for other in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonp"),
        ] {
            let response = send(other).await;
            assert_eq!(
                response.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{other:?}"
            );
            let error = error_json(response).await;
            assert_eq!(error["error"]["code"], "unsupported_media_type");
        }
    }
}
