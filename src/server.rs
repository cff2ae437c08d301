//! The listener: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, one task per connection
//! on one of the [`Workers`], and a graceful shutdown that lets in-flight requests, streams included, finish within the
//! configured grace period, and then writes out the usage log before it returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::app::AppState;
use crate::config::Snapshot;
use crate::upstream::Upstream;
use crate::usage_log::UsageLog;
use crate::workers::Workers;

/// The longest the usage log may take to write its queue at shutdown.
const USAGE_LOG_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// writes and syncs the usage log's queued lines (for at most ten seconds).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new());
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let graceful = GracefulShutdown::new();
        // Connection tasks are kept so the ones still open when the grace period ends can be
        // cut for real, also when the server runs inside a longer-lived process.
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
            }
            self.hand_over(stream, peer, &builder, &graceful, &mut connections);
        }
        self.state.begin_shutdown();
        drop(self.listener);
        let grace = self.state.config.load().server.shutdown_grace;
        tracing::info!(
            connections = graceful.count(),
            ?grace,
            "shutting down: letting in-flight requests finish"
        );
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => {
                tracing::warn!(
                    connections = connections.len(),
                    "shutdown grace period over; cutting the remaining connections"
                );
                connections.abort_all();
            }
        }
        while connections.join_next().await.is_some() {}
        // Every request is over and its line queued: write them all before returning.
        self.state.close_usage_log(USAGE_LOG_CLOSE_TIMEOUT).await;
    }

    /// Serves `stream` on the next worker. The socket moves to that worker's own reactor, so
    /// its wake-ups stay on the worker's thread.
    fn hand_over(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        builder: &Arc<ConnectionBuilder>,
        graceful: &GracefulShutdown,
        connections: &mut JoinSet<()>,
    ) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not hand the connection over");
                return;
            }
        };
        let (builder, state, watcher) = (builder.clone(), self.state.clone(), graceful.watcher());
        let served = async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(builder, watcher, state, stream, peer).await,
                Err(e) => tracing::debug!(%peer, error = %e, "could not take the connection"),
            }
        };
        connections.spawn_on(served, self.workers.next());
    }
}

/// Serves one connection until it closes or the graceful shutdown has finished it.
async fn serve(
    builder: Arc<ConnectionBuilder>,
    watcher: Watcher,
    state: Arc<AppState>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let service = service_fn(move |request| state.clone().handle(request));
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
