//! The listener: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, one task per connection
//! on one of the [`Workers`], each connection served by the tower stack of [`crate::layers`]
//! and watched by [`crate::connection`]. It bounds open connections (`server.max_connections`:
//! beyond it a new connection is closed at once and counted), backs off when `accept` fails
//! (out of file descriptors) instead of spinning, and shuts down gracefully: in-flight
//! requests, streams included, may finish within the grace period, then the usage log is
//! written out before [`Server::run`] returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::access_log::{ShutdownCut, Sinks};
use crate::api::Api;
use crate::app::AppState;
use crate::config::Snapshot;
use crate::connection::{Activity, Timeouts, Tracked, Verdict, Watched};
use crate::layers::inflight::InflightLayer;
use crate::layers::request_id::MakeId;
use crate::metrics::GaugeGuard;
use crate::upstream::Upstream;
use crate::usage_log::UsageLog;
use crate::workers::Workers;

/// The longest the usage log may take to write its queue at shutdown.
const USAGE_LOG_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP server settings every connection is served with.
type ConnectionBuilder = auto::Builder<TokioExecutor>;

/// A bound, not yet running, router.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    workers: Workers,
}

impl Server {
    /// Binds `listen`, prepares the shared state for `snapshot`, opens its usage log (a log
    /// file that cannot be opened stops the start, naming `[usage_log] path`) and starts the
    /// `workers` threads that will serve the connections.
    pub async fn bind(
        snapshot: Snapshot,
        listen: SocketAddr,
        workers: NonZeroUsize,
    ) -> io::Result<Self> {
        let upstream = Upstream::new(&snapshot.upstream, workers).map_err(io::Error::other)?;
        let listener = TcpListener::bind(listen).await?;
        let usage_log = snapshot.usage_log.clone();
        let mut state = AppState::new(snapshot, upstream).map_err(io::Error::other)?;
        if let Some(settings) = &usage_log {
            let log = UsageLog::start(settings, state.metrics.usage_log_dropped()).await?;
            state = state.with_usage_log(log);
        }
        let workers = Workers::start(workers)?;
        Ok(Self {
            listener,
            state: Arc::new(state),
            workers,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state, e.g. to swap in a new configuration.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then drains for up to `server.shutdown_grace`, then
    /// cuts what is still running (recorded as `server_shutdown`, not as hang-ups), then
    /// writes and syncs the usage log's queued lines (for at most ten seconds).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let startup = self.state.config.load_full();
        let cut = ShutdownCut::default();
        let served = Served::new(&self.state, &startup, cut.clone());
        let (stop, stopping) = watch::channel(false);
        // Connection tasks are kept so the ones still open when the grace period ends can be
        // cut for real, also when the server runs inside a longer-lived process.
        let mut connections = JoinSet::new();
        let mut backoff = AcceptBackoff::default();
        tokio::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tokio::select! {
                        () = backoff.failed(&e) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            backoff.succeeded();
            let metrics = &self.state.metrics;
            if usize::try_from(metrics.open_connections()).unwrap_or(0) >= served.max_connections {
                metrics.connection_refused();
                drop(stream);
                continue;
            }
            let open = metrics.connection_opened();
            self.hand_over(stream, peer, &served, &stopping, open, &mut connections);
        }
        self.state.begin_shutdown();
        drop(self.listener);
        let _ = stop.send(true);
        let grace = self.state.config.load().server.shutdown_grace;
        tracing::info!(
            connections = connections.len(),
            ?grace,
            "shutting down: letting in-flight requests finish"
        );
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "shutdown grace period over; cutting the remaining connections"
            );
            // Before the abort drops the requests' futures and stream bodies, so their
            // records say the server cut them.
            cut.cut();
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        } else {
            tracing::info!("all connections closed");
        }
        // Every request is over and its line queued: write them all before returning.
        self.state.close_usage_log(USAGE_LOG_CLOSE_TIMEOUT).await;
    }

    /// Serves `stream` on the next worker. The socket moves to that worker's own reactor, so
    /// its wake-ups stay on the worker's thread.
    fn hand_over(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        served: &Served,
        stopping: &watch::Receiver<bool>,
        open: GaugeGuard,
        connections: &mut JoinSet<()>,
    ) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
        }
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not hand the connection over");
                return;
            }
        };
        let (served, stopping) = (served.clone(), stopping.clone());
        let connection = async move {
            let _open = open;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(served, stopping, stream, peer).await,
                Err(e) => tracing::debug!(%peer, error = %e, "could not take the connection"),
            }
        };
        connections.spawn_on(connection, self.workers.next());
    }
}

/// What every connection is served with, fixed at start-up.
#[derive(Clone)]
struct Served {
    builder: Arc<ConnectionBuilder>,
    service: crate::layers::Stack,
    timeouts: Timeouts,
    max_connections: usize,
}

impl Served {
    fn new(state: &Arc<AppState>, startup: &Snapshot, cut: ShutdownCut) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The connection watchdog times request heads; hyper's own HTTP/1 header timeout
        // would also close idle keep-alive connections (see `crate::connection`).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        builder.http2().timer(TokioTimer::new());
        let sinks = Sinks::new(state.metrics.clone(), state.usage_log.clone(), cut);
        let inflight = InflightLayer::new(Arc::new(sinks), startup.server.max_inflight);
        let api = Api::new(state.clone(), inflight);
        Self {
            builder: Arc::new(builder),
            service: crate::layers::outer(api, MakeId::new(), state.config.clone()),
            timeouts: Timeouts {
                header_read: startup.server.header_read_timeout,
                idle: startup.server.idle_timeout,
            },
            max_connections: startup.server.max_connections,
        }
    }
}

/// Serves one connection until it closes, the watchdog closes it, or the graceful shutdown
/// has finished it.
async fn serve(
    served: Served,
    mut stopping: watch::Receiver<bool>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let activity = Activity::new();
    let service = TowerToHyperService::new(Tracked::new(served.service, activity.clone()));
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let connection = served.builder.serve_connection(io, service);
    tokio::pin!(connection);
    let watchdog = tokio::time::sleep_until(Instant::now() + served.timeouts.header_read);
    tokio::pin!(watchdog);
    let mut closing = false;
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            changed = stopping.changed(), if !closing => {
                // A closed channel means the server is gone: close as for a shutdown.
                let _ = changed;
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = &mut watchdog, if !closing => match activity.verdict(served.timeouts) {
                Verdict::WakeAt(at) => watchdog.as_mut().reset(at),
                Verdict::HeadOverdue => {
                    tracing::debug!(%peer, "closing a connection: no complete request head in time");
                    return;
                }
                Verdict::Idle => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            },
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// When `accept` fails (out of file descriptors, mostly), wait before the next try, 10 ms
/// doubling to 1 s, and log at most one line a second: a loop that retried at once would spin
/// a core and flood the log while the connections already open keep being served.
#[derive(Debug, Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
    failures_since_log: u64,
    logged_at: Option<Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    /// Notes a failure and waits the current delay.
    async fn failed(&mut self, error: &io::Error) {
        self.failures_since_log += 1;
        let now = Instant::now();
        if self.logged_at.is_none_or(|at| now >= at + Self::LOG_EVERY) {
            tracing::warn!(
                error = %error,
                failures = self.failures_since_log,
                "accept failed; backing off (connections already open are still served)"
            );
            self.failures_since_log = 0;
            self.logged_at = Some(now);
        }
        let delay = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }

    /// A connection was accepted: the next failure starts from the shortest delay again.
    fn succeeded(&mut self) {
        self.delay = None;
    }
}
