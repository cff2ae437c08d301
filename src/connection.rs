//! One client connection's watchdog: connections cannot be held for free.
//!
//! - From accept until its first request head is complete, a connection has
//!   `server.header_read_timeout`: one that sends nothing, part of the HTTP/2 preface, or
//!   HTTP/1 headers a byte at a time is closed when it runs out.
//! - On HTTP/1, each later request has the same time from its first byte to its complete head.
//! - A connection with no request in flight (no answer still being sent, a stream included)
//!   is closed gracefully after `server.idle_timeout`.
//!
//! hyper's own HTTP/1 `header_read_timeout` is not used: it starts as soon as hyper waits for
//! a head, so it also closes idle keep-alive connections, and it does not cover the HTTP/2
//! preface or the protocol detection. The watchdog sees what it needs through the
//! connection's service (requests start, answers end: [`Tracked`]) and its socket (bytes
//! arrive: [`Watched`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tower::Service;

/// The timeouts a connection is watched with.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From accept (or an HTTP/1 request's first byte) to a complete request head.
    pub header_read: Duration,
    /// With no request in flight.
    pub idle: Duration,
}

/// "No time": the sentinel of [`Activity::head_since`].
const NEVER: u64 = u64::MAX;

/// What the watchdog knows of one connection, shared by its service, socket and watchdog.
/// Times are milliseconds since the connection opened, so they fit in atomics.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Requests whose answers are not over yet.
    in_flight: AtomicUsize,
    /// Whether a request head has ever been read.
    served_any: AtomicBool,
    /// The connection speaks HTTP/2 (its frames are not request heads).
    http2: AtomicBool,
    /// When the connection last had nothing in flight.
    idle_since: AtomicU64,
    /// When bytes of a new HTTP/1 request head began to arrive, or [`NEVER`].
    head_since: AtomicU64,
}

/// What the watchdog decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Look again at this instant.
    WakeAt(Instant),
    /// A request head is overdue: close now.
    HeadOverdue,
    /// Idle for too long: close gracefully.
    Idle,
}

impl Activity {
    /// A connection opened now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served_any: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NEVER),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    /// A request head was read: the request is in flight until its answer ends.
    fn request_started(self: &Arc<Self>, version: Version) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served_any.store(true, Ordering::Relaxed);
        self.head_since.store(NEVER, Ordering::Relaxed);
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        Busy(Some(self.clone()))
    }

    /// Bytes arrived on the socket: on an idle HTTP/1 connection, a new head has begun.
    fn bytes_arrived(&self) {
        let idle = self.in_flight.load(Ordering::Acquire) == 0;
        if idle && self.served_any.load(Ordering::Relaxed) && !self.http2.load(Ordering::Relaxed) {
            let _ = self.head_since.compare_exchange(
                NEVER,
                self.now(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// What to do with the connection now.
    pub fn verdict(&self, timeouts: Timeouts) -> Verdict {
        let header = u64::try_from(timeouts.header_read.as_millis()).unwrap_or(NEVER / 2);
        let idle = u64::try_from(timeouts.idle.as_millis()).unwrap_or(NEVER / 2);
        let now = self.now();
        if !self.served_any.load(Ordering::Relaxed) {
            return if now >= header {
                Verdict::HeadOverdue
            } else {
                Verdict::WakeAt(self.at(header))
            };
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::WakeAt(self.at(now + idle.min(header)));
        }
        let head_since = self.head_since.load(Ordering::Relaxed);
        if head_since != NEVER && now >= head_since + header {
            return Verdict::HeadOverdue;
        }
        let idle_until = self.idle_since.load(Ordering::Relaxed) + idle;
        if now >= idle_until {
            return Verdict::Idle;
        }
        let head_until = if head_since == NEVER {
            NEVER
        } else {
            head_since + header
        };
        Verdict::WakeAt(self.at(idle_until.min(head_until)))
    }
}

/// A request in flight on its connection; dropping it (the answer ended or was abandoned)
/// may leave the connection idle.
#[derive(Debug)]
pub struct Busy(Option<Arc<Activity>>);

impl Drop for Busy {
    fn drop(&mut self) {
        let Some(activity) = self.0.take() else {
            return;
        };
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.idle_since.store(activity.now(), Ordering::Relaxed);
        }
    }
}

/// The connection's service: tells the watchdog when requests start and answers end.
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// Tracks `inner`'s requests in `activity`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, B, ResBody> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Unpin,
{
    type Response = Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let busy = self.activity.request_started(request.version());
        TrackedFuture {
            inner: self.inner.call(request),
            busy: Some(busy),
        }
    }
}

/// The answer of [`Tracked`], whose body keeps the request in flight.
#[derive(Debug)]
pub struct TrackedFuture<F> {
    inner: F,
    busy: Option<Busy>,
}

impl<F, ResBody, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>> + Unpin,
{
    type Output = Result<Response<TrackedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = ready!(Pin::new(&mut this.inner).poll(cx))?;
        let busy = this.busy.take();
        Poll::Ready(Ok(response.map(|body| TrackedBody { body, busy })))
    }
}

/// A response body that keeps its request in flight until it ends or is dropped.
#[derive(Debug)]
pub struct TrackedBody<B> {
    body: B,
    busy: Option<Busy>,
}

impl<B> Body for TrackedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() {
            this.busy = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket: tells the watchdog when bytes arrive.
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// Watches reads from `io` for `activity`.
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(90),
    };

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_a_head_is_overdue_after_the_header_timeout() {
        let activity = Activity::new();
        assert_eq!(
            activity.verdict(TIMEOUTS),
            Verdict::WakeAt(activity.opened + TIMEOUTS.header_read)
        );
        tokio::time::advance(Duration::from_millis(9_999)).await;
        activity.bytes_arrived(); // part of a head: no extension
        assert!(matches!(activity.verdict(TIMEOUTS), Verdict::WakeAt(_)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(activity.verdict(TIMEOUTS), Verdict::HeadOverdue);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_before() {
        let activity = Activity::new();
        let busy = activity.request_started(Version::HTTP_11);
        tokio::time::advance(Duration::from_secs(300)).await;
        // A long answer (a stream) keeps the connection busy, however long it takes.
        assert!(matches!(activity.verdict(TIMEOUTS), Verdict::WakeAt(_)));
        drop(busy);
        tokio::time::advance(Duration::from_secs(89)).await;
        assert!(matches!(activity.verdict(TIMEOUTS), Verdict::WakeAt(_)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(activity.verdict(TIMEOUTS), Verdict::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_http1_head_trickled_in_is_overdue_from_its_first_byte() {
        let activity = Activity::new();
        drop(activity.request_started(Version::HTTP_11));
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.bytes_arrived();
        tokio::time::advance(Duration::from_secs(9)).await;
        activity.bytes_arrived();
        assert!(matches!(activity.verdict(TIMEOUTS), Verdict::WakeAt(_)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(activity.verdict(TIMEOUTS), Verdict::HeadOverdue);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_are_not_heads() {
        let activity = Activity::new();
        drop(activity.request_started(Version::HTTP_2));
        activity.bytes_arrived(); // a PING, a SETTINGS ack
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(matches!(activity.verdict(TIMEOUTS), Verdict::WakeAt(_)));
    }
}
