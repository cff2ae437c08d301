//! Shared state and the per-request entry point: request id, dispatch, error rendering.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::access_log::RequestRecord;
use crate::accounting::{SeenTransactions, TransactionLedger};
use crate::api;
use crate::config::Snapshot;
use crate::config::reload::Reloads;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::payment::{QuoteMemory, RecentQuotes};
use crate::router::Balancer;
use crate::router::health::Health;
use crate::stream::ChatStream;
use crate::upstream::Upstream;
use crate::usage_log::UsageLog;

/// The body of every response: a complete buffer or a translated stream.
pub type ResponseBody = Either<Full<Bytes>, ChatStream>;

/// The request-id header, taken from the client when it sent a usable one.
pub const REQUEST_ID: &str = "x-request-id";

/// Everything a request needs, shared by all connections.
pub struct AppState {
    /// The running configuration; each request loads it once.
    pub config: ArcSwap<Snapshot>,
    /// The shared upstream client.
    pub upstream: Upstream,
    /// Provider circuit breakers (kept across reloads).
    pub health: Health,
    /// Provider and key rate limiters (kept across reloads).
    pub limits: Limits,
    /// Weighted routes' round-robin state.
    pub balancer: Balancer,
    /// Transactions that paid their fee (kept across reloads).
    pub transactions: Arc<dyn TransactionLedger>,
    /// Recent price quotes, to route and charge paid retries (kept across reloads).
    pub quotes: Arc<dyn QuoteMemory>,
    /// Prometheus collectors.
    pub metrics: Arc<Metrics>,
    /// The usage log's sending side, when `[usage_log]` is configured.
    pub usage_log: Option<UsageLog>,
    /// The reload task's handle and the last rejected reload, for the admin endpoints.
    pub reloads: Reloads,
    shutting_down: AtomicBool,
    id_prefix: u32,
    next_id: AtomicU64,
}

impl AppState {
    /// State for a loaded configuration.
    pub fn new(snapshot: Snapshot, upstream: Upstream) -> Result<Self, prometheus::Error> {
        Ok(Self {
            reloads: Reloads::new(&snapshot),
            config: ArcSwap::from_pointee(snapshot),
            upstream,
            health: Health::default(),
            limits: Limits::default(),
            balancer: Balancer::default(),
            transactions: Arc::new(SeenTransactions::default()),
            quotes: Arc::new(RecentQuotes::default()),
            metrics: Arc::new(Metrics::new()?),
            usage_log: None,
            shutting_down: AtomicBool::new(false),
            id_prefix: fastrand::u32(..),
            next_id: AtomicU64::new(0),
        })
    }

    /// Writes to `usage_log` from now on.
    pub fn with_usage_log(mut self, usage_log: UsageLog) -> Self {
        self.usage_log = Some(usage_log);
        self
    }

    /// The record of a chat request that just arrived: counted in flight, and reported to
    /// the metrics and the usage log when it is finished.
    pub fn chat_record(&self, request_id: String, started: std::time::Instant) -> RequestRecord {
        RequestRecord::new(request_id, started)
            .reporting(self.metrics.clone(), self.usage_log.clone())
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

    /// Serves one request. Never fails: errors become OpenAI-shaped responses.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let request_id = self.request_id(request.headers().get(REQUEST_ID));
        let mut response = api::dispatch(&self, request, &request_id).await;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
    }

    /// The client's request id when it is short printable ASCII, else a fresh one.
    fn request_id(&self, sent: Option<&HeaderValue>) -> String {
        let usable = sent
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
        match usable {
            Some(id) => id.to_owned(),
            None => {
                let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                generated_id(self.id_prefix, n)
            }
        }
    }
}

/// `req_` and 20 hex digits: the process's random prefix, then a counter. Written by hand:
/// `format!` with padded hex showed up in the per-request profile.
fn generated_id(prefix: u32, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(24);
    id.push_str("req_");
    let digits = (0..8)
        .rev()
        .map(|i| (u64::from(prefix) >> (i * 4)) & 0xf)
        .chain((0..12).rev().map(|i| (n >> (i * 4)) & 0xf));
    for digit in digits {
        id.push(char::from(HEX[digit as usize]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::generated_id;

    #[test]
    fn generated_ids_are_the_prefix_then_the_counter_in_fixed_width_hex() {
        assert_eq!(
            generated_id(0xdead_beef, 0x1234),
            "req_deadbeef000000001234"
        );
        assert_eq!(generated_id(0, 0), "req_00000000000000000000");
        assert_eq!(
            generated_id(u32::MAX, 0xffff_ffff_ffff),
            "req_ffffffffffffffffffff"
        );
    }
}
