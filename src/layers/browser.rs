//! Browsers cannot spend the operator's money. A router on 127.0.0.1 with no keys is reachable
//! by any web page its operator visits, so a browser request is refused with 403
//! `cross_origin_forbidden` unless its `Origin` is one of `server.cors_allowed_origins`
//! (default: none); so is a request marked `Sec-Fetch-Site: cross-site` that names no allowed
//! origin (an `<img>` or a form aimed at the router). Requests from allowed origins get CORS
//! (tower-http's `CorsLayer`), preflights included. Requests without `Origin` (SDKs, curl,
//! servers) pass untouched: no CORS headers, no cost beyond two header lookups.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{Either, Ready, ready};
use http::header::ORIGIN;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use std::sync::Arc;

use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{AllowHeaders, AllowOrigin, Cors, CorsLayer, ExposeHeaders};

use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::layers::context::RequestContext;

/// The header browsers use to say where a request comes from, relative to its target.
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Guards the inner service against cross-site browser requests (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct BrowserLayer;

impl<S> Layer<S> for BrowserLayer {
    type Service = Browser<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Browser {
            cors: Arc::new(cors()),
            inner,
        }
    }
}

/// CORS for origins the guard already let through: whatever the allowed page asks for, it may
/// send (its origin is trusted) and read (the router's `x-switchboard-*`, rate-limit and
/// payment headers).
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(ExposeHeaders::any())
        .max_age(PREFLIGHT_MAX_AGE)
}

/// The service [`BrowserLayer`] makes: the inner service, with CORS for allowed origins.
/// The CORS settings sit behind an `Arc` and wrap the inner service only for browser
/// requests: the stack is cloned for every request, and a `CorsLayer` clone allocates.
#[derive(Clone, Debug)]
pub struct Browser<S> {
    cors: Arc<CorsLayer>,
    inner: S,
}

/// Refused at once, served with CORS, or served as is.
type BrowserFuture<S, B, F> = Either<
    Ready<Result<Response<ResponseBody>, Infallible>>,
    Either<Oneshot<Cors<S>, Request<B>>, F>,
>;

impl<S, B> Service<Request<B>> for Browser<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible> + Clone,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BrowserFuture<S, B, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let allowed = RequestContext::of(&request)
            .map(|context| context.snapshot.server.cors_allowed_origins.as_slice())
            .unwrap_or_default();
        match verdict(request.headers(), allowed) {
            Verdict::NotABrowser => Either::Right(Either::Right(self.inner.call(request))),
            Verdict::Allowed => {
                let cors = self.cors.layer(self.inner.clone());
                Either::Right(Either::Left(cors.oneshot(request)))
            }
            Verdict::Refused(error) => Either::Left(ready(Ok(error.into_response()))),
        }
    }
}

/// What to do with a request, by its browser headers.
#[derive(Debug)]
enum Verdict {
    /// No `Origin` and not marked cross-site: an SDK, curl, a server.
    NotABrowser,
    /// A browser on an allowed origin.
    Allowed,
    /// A cross-site browser request.
    Refused(ApiError),
}

fn verdict(headers: &HeaderMap, allowed: &[HeaderValue]) -> Verdict {
    if let Some(origin) = headers.get(ORIGIN) {
        let trusted = allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(origin.as_bytes()));
        return if trusted {
            Verdict::Allowed
        } else {
            Verdict::Refused(ApiError::CrossOriginForbidden {
                origin: printable(origin),
            })
        };
    }
    let cross_site = headers
        .get(SEC_FETCH_SITE)
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Verdict::Refused(ApiError::CrossOriginForbidden { origin: None });
    }
    Verdict::NotABrowser
}

/// The origin for the error message, when it is short visible ASCII (it is echoed to the
/// client, and may be logged).
fn printable(origin: &HeaderValue) -> Option<String> {
    let bytes = origin.as_bytes();
    (bytes.len() <= 256 && bytes.iter().all(u8::is_ascii_graphic))
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use http::header::{
        ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    };
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::layers::testing::{echo, error_json, snapshot};

    async fn send(
        server: &str,
        headers: &[(&str, &str)],
        method: Method,
    ) -> Response<ResponseBody> {
        let mut request = Request::builder()
            .method(method)
            .uri("/v1/chat/completions");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(String::from("{}")).unwrap();
        request
            .extensions_mut()
            .insert(RequestContext::now(snapshot(server)));
        BrowserLayer
            .layer(service_fn(echo::<String>))
            .oneshot(request)
            .await
            .unwrap()
    }

    const ALLOWED: &str = r#"cors_allowed_origins = ["https://app.example.com"]"#;

    #[tokio::test]
    async fn requests_without_browser_headers_pass_untouched() {
        let response = send("", &[], Method::POST).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().is_empty(), "{:?}", response.headers());
    }

    #[tokio::test]
    async fn a_foreign_origin_or_a_cross_site_fetch_is_403() {
        for headers in [
            &[("origin", "https://evil.example")][..],
            &[("origin", "null")][..],
            &[("sec-fetch-site", "cross-site")][..],
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ][..],
        ] {
            for server in ["", ALLOWED] {
                let response = send(server, headers, Method::POST).await;
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
                let error = error_json(response).await;
                assert_eq!(error["error"]["code"], "cross_origin_forbidden");
            }
        }
    }

    #[tokio::test]
    async fn an_allowed_origin_is_served_with_cors_and_its_preflight_answered() {
        let origin = ("origin", "https://app.example.com");
        let response = send(
            ALLOWED,
            &[origin, ("sec-fetch-site", "cross-site")],
            Method::POST,
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );

        let preflight = [
            origin,
            (ACCESS_CONTROL_REQUEST_METHOD.as_str(), "POST"),
            (
                ACCESS_CONTROL_REQUEST_HEADERS.as_str(),
                "authorization,content-type",
            ),
        ];
        let response = send(ALLOWED, &preflight, Method::OPTIONS).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(
            headers[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization,content-type"
        );
        assert!(
            headers["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(crate::layers::testing::body(response).await.is_empty());
    }
}
