//! Each request's context, fixed once at the door: its id (answered as `x-request-id`, see
//! [`crate::layers::request_id`]), the configuration snapshot it is served with (a reload
//! never changes a request in flight), when it arrived, and its deadline
//! (`routing.request_timeout` from arrival), which the body read, the router and the stream
//! all honour. Inner layers add what they learn: who is calling, and the request's record.
//!
//! One extension for all of it: each extension is an allocation and a map insert per request.
//! That is also why the id lives here rather than in tower-http's `SetRequestId` and
//! `PropagateRequestId`, which keep it in extensions of their own on the request *and* the
//! response: six more allocations per request, measured (README, "Benchmark").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::config::Snapshot;
use crate::layers::inflight::RecordSlot;
use crate::layers::request_id::{self, MakeId, REQUEST_ID};

/// The running configuration, swapped whole by reloads.
pub type Config = Arc<ArcSwap<Snapshot>>;

/// What every inner layer and handler reads from the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The request's id: the client's usable one, else a new one.
    pub request_id: HeaderValue,
    /// The configuration this request is served with, to its end.
    pub snapshot: Arc<Snapshot>,
    /// When the request arrived (its head was read).
    pub started: Instant,
    /// When the whole request, a stream included, must be over.
    pub deadline: Instant,
    /// The calling key's configured name, once the auth layer has checked it.
    pub caller: Option<Arc<str>>,
    /// The chat request's record, on its way to whoever answers (see the in-flight layer).
    pub record: Option<RecordSlot>,
}

impl RequestContext {
    /// The context of a request arriving now under `snapshot`.
    pub fn now(snapshot: Arc<Snapshot>) -> Self {
        let started = Instant::now();
        let deadline = started + snapshot.routing.request_timeout;
        Self {
            request_id: HeaderValue::from_static(""),
            snapshot,
            started,
            deadline,
            caller: None,
            record: None,
        }
    }

    /// The same context, for the request with id `request_id`.
    pub fn with_request_id(mut self, request_id: HeaderValue) -> Self {
        self.request_id = request_id;
        self
    }

    /// The request's id as text (ids are visible ASCII by construction).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// The context the stack put on `request` (`None` outside the stack).
    pub fn of<B>(request: &Request<B>) -> Option<&Self> {
        request.extensions().get::<Self>()
    }

    /// The context of `request`, to add to it.
    pub fn of_mut<B>(request: &mut Request<B>) -> Option<&mut Self> {
        request.extensions_mut().get_mut::<Self>()
    }
}

/// Puts a [`RequestContext`] on every request and its id on every answer.
#[derive(Clone, Debug)]
pub struct ContextLayer {
    config: Config,
    ids: MakeId,
}

impl ContextLayer {
    /// Reads the snapshot from `config` once per request; makes ids with `ids`.
    pub fn new(config: Config, ids: MakeId) -> Self {
        Self { config, ids }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = WithContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ContextLayer`] makes.
#[derive(Clone, Debug)]
pub struct WithContext<S> {
    inner: S,
    layer: ContextLayer,
}

impl<S, B, ResBody> Service<Request<B>> for WithContext<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Unpin,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Identified<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = request_id::of_request(request.headers(), &self.layer.ids);
        let context =
            RequestContext::now(self.layer.config.load_full()).with_request_id(id.clone());
        request.extensions_mut().insert(context);
        Identified {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

/// An answer that leaves with its request's `x-request-id`.
#[derive(Debug)]
pub struct Identified<F> {
    inner: F,
    id: Option<HeaderValue>,
}

impl<F, ResBody, E> Future for Identified<F>
where
    F: Future<Output = Result<Response<ResBody>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut response = ready!(Pin::new(&mut this.inner).poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use http::Response;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::layers::testing::snapshot;

    #[tokio::test(start_paused = true)]
    async fn a_request_keeps_the_snapshot_it_arrived_with_and_its_deadline() {
        let config: Config = Arc::new(ArcSwap::new(snapshot("")));
        let seen = service_fn(|request: Request<()>| {
            let context = RequestContext::of(&request).cloned().unwrap();
            std::future::ready(Ok::<_, Infallible>(Response::new(context)))
        });
        let service = ContextLayer::new(config.clone(), MakeId::new()).layer(seen);
        let first = service.clone().oneshot(Request::new(())).await.unwrap();
        assert!(
            first.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
        let first = first.into_body();
        assert_eq!(first.deadline - first.started, Duration::from_secs(600));

        config.store(snapshot(""));
        let second = service.oneshot(Request::new(())).await.unwrap().into_body();
        assert!(!Arc::ptr_eq(&first.snapshot, &second.snapshot));
        assert!(Arc::ptr_eq(&second.snapshot, &config.load_full()));
    }
}
