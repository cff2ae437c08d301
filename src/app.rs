//! The router's shared state: the running configuration and what outlives a request (the
//! [`Router`], the transaction ledger, metrics, the usage log). The layers in front of the
//! handlers get only the parts they need (see [`crate::layers`]); the reload task sees it
//! through [`Running`], so the configuration module never names the app.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::accounting::{SeenTransactions, TransactionLedger};
use crate::config::Snapshot;
use crate::config::reload::{Reloads, Running};
use crate::layers::context::Config;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::upstream::Upstream;
use crate::usage_log::UsageLog;

/// Everything a request needs, shared by all connections.
pub struct AppState {
    /// The running configuration; each request loads it once (see [`crate::layers::context`]).
    pub config: Config,
    /// The upstream client, breakers, limiters, balancer and quotes (kept across reloads).
    pub router: Router,
    /// Transactions that paid their fee (kept across reloads).
    pub transactions: Arc<dyn TransactionLedger>,
    /// Prometheus collectors.
    pub metrics: Arc<Metrics>,
    /// The usage log's sending side, when `[usage_log]` is configured.
    pub usage_log: Option<UsageLog>,
    /// The reload task's handle and the last rejected reload, for the admin endpoints.
    pub reloads: Reloads,
    shutting_down: AtomicBool,
}

impl AppState {
    /// State for a loaded configuration.
    pub fn new(snapshot: Snapshot, upstream: Upstream) -> Result<Self, prometheus::Error> {
        let metrics = Arc::new(Metrics::new()?);
        Ok(Self {
            reloads: Reloads::new(&snapshot),
            config: Arc::new(ArcSwap::from_pointee(snapshot)),
            router: Router::new(upstream, metrics.clone()),
            transactions: Arc::new(SeenTransactions::default()),
            metrics,
            usage_log: None,
            shutting_down: AtomicBool::new(false),
        })
    }

    /// Writes to `usage_log` from now on.
    pub fn with_usage_log(mut self, usage_log: UsageLog) -> Self {
        self.usage_log = Some(usage_log);
        self
    }

    /// Writes and syncs the usage log's queued lines and stops its writer, waiting at most
    /// `within` (a stuck disk must not hold the process up for ever).
    pub async fn close_usage_log(&self, within: std::time::Duration) {
        let Some(log) = &self.usage_log else {
            return;
        };
        if tokio::time::timeout(within, log.close()).await.is_err() {
            tracing::warn!(
                ?within,
                "usage log: the writer did not finish in time; lines may be lost"
            );
        }
    }

    /// Marks the router as draining: `/readyz` fails so load balancers stop sending.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Whether a shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

impl Running for AppState {
    fn config(&self) -> &ArcSwap<Snapshot> {
        &self.config
    }

    fn reloads(&self) -> &Reloads {
        &self.reloads
    }

    fn follow(&self, old: &Snapshot, new: &Snapshot) {
        for name in old.providers.keys() {
            if !new.providers.contains_key(name) {
                self.metrics.forget_provider(name);
            }
        }
        self.router.follow(old, new);
    }

    fn reloaded(&self, applied: bool) {
        self.metrics.config_reload(applied);
    }
}
