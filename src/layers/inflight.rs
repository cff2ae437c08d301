//! Chat requests in flight: each gets its [`RequestRecord`] (the access line, metrics, the
//! usage-log line and the `inflight_requests` gauge) and a place under `server.max_inflight`.
//! When every place is taken the request is refused at once with a 503 `overloaded`,
//! `Retry-After` and `x-should-retry: false`, never queued: a queue that grows only turns an
//! overload into a timeout for everyone.
//!
//! Why not tower's `ConcurrencyLimit` + `LoadShed`: `ConcurrencyLimit` gives its permit back
//! when the response *headers* are ready, so a ten-minute stream would count as finished
//! after its first byte. Here the permit rides in the record, which lives as long as the
//! request (a stream's record ends with its last byte), so the limit and the gauge count the
//! same thing.
//!
//! The record travels down the stack in a [`RecordSlot`]: whoever answers takes it (the chat
//! service, which fills it and, for a stream, hands it to the stream). When a layer below
//! refuses the request first (401, 413, 415), the record is still in the slot and is finished
//! here from the answer's status and error code, so every chat request is recorded once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::access_log::{RequestRecord, Sinks};
use crate::body::ResponseBody;
use crate::endpoint::Endpoint;
use crate::error::{ApiError, ErrorCode};
use crate::layers::context::RequestContext;

/// A request's record on its way down the stack, until something takes it.
#[derive(Clone, Debug)]
pub struct RecordSlot(Arc<Mutex<Option<RequestRecord>>>);

impl RecordSlot {
    fn new(record: RequestRecord) -> Self {
        Self(Arc::new(Mutex::new(Some(record))))
    }

    /// Takes the record, to fill and finish it; `None` once taken.
    pub fn take(&self) -> Option<RequestRecord> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Changes the record while it waits in the slot (e.g. the client key's name, once known).
    pub fn update(&self, change: impl FnOnce(&mut RequestRecord)) {
        if let Some(record) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            change(record);
        }
    }

    /// The slot on `request`, when the stack put one there.
    pub fn of<B>(request: &Request<B>) -> Option<&Self> {
        RequestContext::of(request)?.record.as_ref()
    }
}

/// Records requests and bounds how many are in flight. One `Arc` inside: the stack is cloned
/// for every request. Every endpoint's layer shares the same places (see
/// [`InflightLayer::for_endpoint`]), so `server.max_inflight` bounds them all together.
#[derive(Clone, Debug)]
pub struct InflightLayer {
    shared: Arc<Shared>,
    /// The endpoint its records are for.
    endpoint: Endpoint,
}

/// What every clone of an [`InflightLayer`] shares.
#[derive(Debug)]
struct Shared {
    sinks: Arc<Sinks>,
    places: Arc<Semaphore>,
    max: usize,
}

impl InflightLayer {
    /// At most `max` requests in flight, reported to `sinks`.
    pub fn new(sinks: Arc<Sinks>, max: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                sinks,
                places: Arc::new(Semaphore::new(max)),
                max,
            }),
            endpoint: Endpoint::Chat,
        }
    }

    /// The same places and sinks, recording requests as `endpoint`'s.
    pub fn for_endpoint(&self, endpoint: Endpoint) -> Self {
        Self {
            shared: self.shared.clone(),
            endpoint,
        }
    }
}

impl<S> Layer<S> for InflightLayer {
    type Service = Inflight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Inflight {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`InflightLayer`] makes.
#[derive(Clone, Debug)]
pub struct Inflight<S> {
    inner: S,
    layer: InflightLayer,
}

impl<S, B> Service<Request<B>> for Inflight<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(context) = RequestContext::of_mut(&mut request) else {
            let error = ApiError::Internal("request without context".into());
            return Recorded::Refused(Some(Box::new(error.into_response())));
        };
        let id = context.request_id().to_owned();
        let mut record = RequestRecord::new(id, context.started.into_std())
            .reporting(self.layer.shared.sinks.clone());
        record.endpoint = self.layer.endpoint;
        let Ok(permit) = self.layer.shared.places.clone().try_acquire_owned() else {
            let error = ApiError::Overloaded {
                limit: self.layer.shared.max,
            };
            return Recorded::Refused(Some(Box::new(finish(record, error.into_response()))));
        };
        record.hold(permit);
        let slot = RecordSlot::new(record);
        context.record = Some(slot.clone());
        Recorded::Serving {
            inner: self.inner.call(request),
            slot,
        }
    }
}

/// Finishes `record` with what `response` says, and hands the response on.
fn finish(mut record: RequestRecord, response: Response<ResponseBody>) -> Response<ResponseBody> {
    record.status = response.status().as_u16();
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        record.error_code = Some(code.to_string());
    }
    record.emit();
    response
}

/// The answer of [`Inflight`]: a refusal, or the inner answer with the record finished if
/// nothing below took it.
#[derive(Debug)]
pub enum Recorded<F> {
    /// Overloaded: answered at once.
    Refused(Option<Box<Response<ResponseBody>>>),
    /// Served by the inner stack.
    Serving {
        /// The inner answer.
        inner: F,
        /// The record, unless the inner stack took it.
        slot: RecordSlot,
    },
}

impl<F> Future for Recorded<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Infallible>> + Unpin,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Refused(response) => match response.take() {
                Some(response) => Poll::Ready(Ok(*response)),
                None => Poll::Pending,
            },
            Self::Serving { inner, slot } => {
                let Ok(response) = ready!(Pin::new(inner).poll(cx));
                Poll::Ready(Ok(match slot.take() {
                    Some(record) => finish(record, response),
                    None => response,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::access_log::ShutdownCut;
    use crate::layers::testing::error_json;
    use crate::metrics::Metrics;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new().unwrap())
    }

    /// At most `max` in flight, counted in `metrics`, without a usage log.
    fn inflight(metrics: &Arc<Metrics>, max: usize) -> InflightLayer {
        let sinks = Sinks::new(metrics.clone(), None, ShutdownCut::default());
        InflightLayer::new(Arc::new(sinks), max)
    }

    /// A request as the outer layers hand it on: with its context.
    fn request() -> Request<()> {
        let mut request = Request::new(());
        let snapshot = crate::layers::testing::snapshot("");
        request
            .extensions_mut()
            .insert(RequestContext::now(snapshot));
        request
    }

    /// An inner service that takes the record and answers once `gate` lets it.
    fn held(
        gate: Arc<Semaphore>,
    ) -> impl Service<
        Request<()>,
        Response = Response<ResponseBody>,
        Error = Infallible,
        Future = crate::layers::Answer,
    > + Clone {
        service_fn(move |request: Request<()>| {
            let gate = gate.clone();
            let answer: crate::layers::Answer = Box::pin(async move {
                let record = RecordSlot::of(&request).and_then(RecordSlot::take);
                let _pass = gate.acquire().await;
                drop(record);
                Ok(Response::new(ResponseBody::default()))
            });
            answer
        })
    }

    /// Waits, at most five seconds, until `metrics` counts `n` requests in flight.
    async fn until_inflight(metrics: &Metrics, n: i64) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while metrics.inflight_now() != n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("in-flight count reached");
    }

    #[tokio::test]
    async fn beyond_max_inflight_the_answer_is_an_immediate_503_overloaded() {
        let metrics = metrics();
        let gate = Arc::new(Semaphore::new(0));
        let service = inflight(&metrics, 2).layer(held(gate.clone()));
        let running: Vec<_> = (0..2)
            .map(|_| tokio::spawn(service.clone().oneshot(request())))
            .collect();
        until_inflight(&metrics, 2).await;

        let refused = service.clone().oneshot(request()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()["retry-after"], "1");
        assert_eq!(refused.headers()["x-should-retry"], "false");
        assert_eq!(error_json(refused).await["error"]["code"], "overloaded");

        gate.add_permits(3);
        for done in running {
            assert_eq!(done.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        until_inflight(&metrics, 0).await;
        // The places came back with the records: the next request is served.
        let next = service.oneshot(request()).await.unwrap();
        assert_eq!(next.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_refusal_below_is_recorded_with_its_status_and_code() {
        let metrics = metrics();
        let refuse = service_fn(|_: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(
                ApiError::Unauthorized.into_response::<ResponseBody>(),
            ))
        });
        let service = inflight(&metrics, 8).layer(refuse);
        let response = service.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(metrics.inflight_now(), 0);
        let snapshot = crate::layers::testing::snapshot("");
        let text = String::from_utf8(metrics.render(&snapshot, &Default::default())).unwrap();
        assert!(
            text.contains(r#"status="401""#),
            "the refusal is counted: {text}"
        );
    }
}
