//! Each request's context, fixed once at the door: the configuration snapshot it is served
//! with (a reload never changes a request in flight), when it arrived, and its deadline
//! (`routing.request_timeout` from arrival), which the body read, the router and the stream
//! all honour. Inner layers add what they learn: who is calling, and the request's record.
//! One extension for all of it: each extension is an allocation and a map insert per request.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use arc_swap::ArcSwap;
use http::Request;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::config::Snapshot;
use crate::layers::inflight::RecordSlot;

/// The running configuration, swapped whole by reloads.
pub type Config = Arc<ArcSwap<Snapshot>>;

/// What every inner layer and handler reads from the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestContext {
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
            snapshot,
            started,
            deadline,
            caller: None,
            record: None,
        }
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

/// Puts a [`RequestContext`] on every request.
#[derive(Clone, Debug)]
pub struct ContextLayer {
    config: Config,
}

impl ContextLayer {
    /// Reads the snapshot from `config` once per request.
    pub fn new(config: Config) -> Self {
        Self { config }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = WithContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithContext {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`ContextLayer`] makes.
#[derive(Clone, Debug)]
pub struct WithContext<S> {
    inner: S,
    config: Config,
}

impl<S, B> Service<Request<B>> for WithContext<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let context = RequestContext::now(self.config.load_full());
        request.extensions_mut().insert(context);
        self.inner.call(request)
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
        let seen = service_fn(|request: Request<()>| async move {
            let context = RequestContext::of(&request).cloned().unwrap();
            Ok::<_, Infallible>(Response::new(context))
        });
        let service = ContextLayer::new(config.clone()).layer(seen);
        let first = service.clone().oneshot(Request::new(())).await.unwrap();
        let first = first.into_body();
        assert_eq!(first.deadline - first.started, Duration::from_secs(600));

        config.store(snapshot(""));
        let second = service.oneshot(Request::new(())).await.unwrap().into_body();
        assert!(!Arc::ptr_eq(&first.snapshot, &second.snapshot));
        assert!(Arc::ptr_eq(&second.snapshot, &config.load_full()));
    }
}
