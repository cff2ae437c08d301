//! The request body, read whole before the handler runs: at most `server.max_body` bytes, and
//! by the request's deadline. Inner services get `Request<Bytes>`.
//!
//! A body over the limit is a 413 that the client can actually read. A client that is still
//! uploading when the server answers and closes gets a connection reset instead, and the
//! official SDKs then retry, uploading the body again. So on HTTP/1 the rest of the body is
//! read and thrown away first, up to twice the limit and for at most two seconds, and the 413
//! says `connection: close`. A body declared too large by `content-length` is refused before
//! any of it is read; with `Expect: 100-continue` nothing is read at all (the client waits
//! for the answer). On HTTP/2 the answer ends only the stream, so nothing needs draining.
//! tower-http's `RequestBodyLimit` cannot do this, nor follow a reload of `max_body`.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT};
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::layers::Answer;
use crate::layers::context::RequestContext;

/// The longest the rest of a too-large body is read for before the 413 goes.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// How much of a too-large body is read, in multiples of the limit, before the 413 goes.
const DRAIN_FACTOR: usize = 2;

/// Reads request bodies whole, within the limit and the deadline.
#[derive(Clone, Copy, Debug, Default)]
pub struct BodyLayer;

impl<S> Layer<S> for BodyLayer {
    type Service = ReadBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadBody { inner }
    }
}

/// The service [`BodyLayer`] makes.
#[derive(Clone, Debug)]
pub struct ReadBody<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for ReadBody<S>
where
    S: Service<Request<Bytes>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display + Send,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is made ready when the body is in (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let Some(context) = RequestContext::of(&request) else {
                return Ok(ApiError::Internal("request without context".into()).into_response());
            };
            let limits = Limits {
                max: context.snapshot.server.max_body,
                deadline: context.deadline,
                timeout: context.snapshot.routing.request_timeout,
            };
            let (parts, body) = request.into_parts();
            match read(body, &parts.headers, parts.version, limits).await {
                Ok(bytes) => inner.oneshot(Request::from_parts(parts, bytes)).await,
                Err(error) => Ok(refusal(error, parts.version)),
            }
        })
    }
}

/// What bounds one body.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max: usize,
    deadline: Instant,
    timeout: Duration,
}

/// The error as an answer; on HTTP/1 a 413 also closes the connection, since what is left of
/// the body would otherwise be read as the next request.
fn refusal(error: ApiError, version: Version) -> Response<ResponseBody> {
    let too_large = matches!(error, ApiError::PayloadTooLarge { .. });
    let mut response = error.into_response::<ResponseBody>();
    if too_large && version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The whole body, or why not.
async fn read<B>(
    mut body: B,
    headers: &HeaderMap,
    version: Version,
    limits: Limits,
) -> Result<Bytes, ApiError>
where
    B: Body + Unpin,
    B::Error: std::fmt::Display + Send,
{
    let too_large = ApiError::PayloadTooLarge { limit: limits.max };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max as u64) {
        let waits_for_us = headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits_for_us {
            drain(&mut body, 0, version, limits).await;
        }
        return Err(too_large);
    }
    let mut collected = Collected::default();
    loop {
        let frame = tokio::time::timeout_at(limits.deadline, body.frame()).await;
        let frame = match frame {
            Err(_) => {
                return Err(ApiError::BodyTimeout {
                    timeout: limits.timeout,
                });
            }
            Ok(None) => return Ok(collected.into_bytes()),
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(
                    format!("Could not read the request body: {e}."),
                    None,
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers: nothing the router reads
        };
        let read = collected.len() + data.remaining();
        if read > limits.max {
            drain(&mut body, read, version, limits).await;
            return Err(too_large);
        }
        collected.push(data.copy_to_bytes(data.remaining()));
    }
}

/// A body's pieces: one piece is kept as it came (no copy, the usual case for a request
/// that fits one read); several are joined.
#[derive(Debug, Default)]
enum Collected {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(bytes) => bytes.len(),
            Self::Many(bytes) => bytes.len(),
        }
    }

    fn push(&mut self, piece: Bytes) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::One(piece),
            Self::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + piece.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&piece);
                Self::Many(joined)
            }
            Self::Many(mut joined) => {
                joined.extend_from_slice(&piece);
                Self::Many(joined)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(bytes) => bytes,
            Self::Many(bytes) => bytes.freeze(),
        }
    }
}

/// Reads and drops what is left of a too-large HTTP/1 body (`read` bytes are already in),
/// within the drain bounds, so the client finishes its upload and reads the 413.
async fn drain<B: Body + Unpin>(body: &mut B, mut read: usize, version: Version, limits: Limits) {
    if version >= Version::HTTP_2 {
        return;
    }
    let budget = limits.max.saturating_mul(DRAIN_FACTOR);
    let until = limits.deadline.min(Instant::now() + DRAIN_TIME);
    while read <= budget {
        match tokio::time::timeout_at(until, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                read += frame.data_ref().map_or(0, Buf::remaining);
            }
            Ok(None | Some(Err(_))) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;
    use tower::service_fn;

    use super::*;
    use crate::layers::testing::{error_json, snapshot};

    fn request<B>(server: &str, body: B, headers: &[(&str, &str)]) -> Request<B> {
        let mut request = Request::post("/v1/chat/completions");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(body).unwrap();
        request
            .extensions_mut()
            .insert(RequestContext::now(snapshot(server)));
        request
    }

    async fn send<B>(request: Request<B>) -> Response<ResponseBody>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: std::fmt::Display + Send,
    {
        BodyLayer
            .layer(service_fn(|request: Request<Bytes>| async move {
                Ok::<_, Infallible>(Response::new(ResponseBody::full(request.into_body())))
            }))
            .oneshot(request)
            .await
            .unwrap()
    }

    /// A chunked body of `pieces` pieces of `size` bytes, counting what was read of it.
    fn chunked(
        pieces: usize,
        size: usize,
        read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Unpin>
    {
        let stream = futures_util::stream::iter((0..pieces).map(move |_| {
            read.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            Ok(Frame::data(Bytes::from(vec![b'x'; size])))
        }));
        StreamBody::new(stream)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_reaches_the_service_whole() {
        let body = Full::new(Bytes::from_static(b"{\"model\":\"demo\"}"));
        let response = send(request("max_body = \"1KiB\"", body, &[])).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            crate::layers::testing::body(response).await,
            "{\"model\":\"demo\"}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_413_and_closes_the_connection() {
        let read = std::sync::Arc::default();
        let body = chunked(2, 1024, std::sync::Arc::clone(&read));
        let response = send(request(
            "max_body = \"1KiB\"",
            body,
            &[("content-length", "2048")],
        ))
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()["connection"], "close");
        assert_eq!(response.headers()["x-should-retry"], "false");
        // The upload was drained, so the client reads the answer instead of a reset.
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), 2048);
        assert_eq!(
            error_json(response).await["error"]["code"],
            "request_too_large"
        );
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_drained_up_to_twice_the_limit() {
        let read = std::sync::Arc::default();
        let body = chunked(100, 512, std::sync::Arc::clone(&read));
        let response = send(request("max_body = \"1KiB\"", body, &[])).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let drained = read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (2048..=2048 + 512).contains(&drained),
            "read {drained} bytes"
        );
    }

    #[tokio::test]
    async fn expect_continue_over_the_limit_reads_nothing() {
        let read = std::sync::Arc::default();
        let body = chunked(4, 1024, std::sync::Arc::clone(&read));
        let headers = [("content-length", "4096"), ("expect", "100-continue")];
        let response = send(request("max_body = \"1KiB\"", body, &headers)).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_by_the_deadline_is_408() {
        let never = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, Infallible>,
        >());
        let response = send(request("", never, &[])).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            error_json(response).await["error"]["code"],
            "request_timeout"
        );
    }
}
