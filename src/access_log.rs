//! One structured log line per request, written when the request is really over: at once for
//! plain responses, at the end (or the client's disconnect) for streams.
//!
//! It carries names and numbers only: the client key's configured name, never its secret, and
//! no message content.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::accounting::Cost;
use crate::openai::Usage;

/// What happened to one request, filled in as it goes.
#[derive(Debug)]
pub struct RequestRecord {
    /// The `x-request-id` the client saw.
    pub request_id: String,
    /// The client key's name (`anonymous` when the router is open).
    pub key: Arc<str>,
    /// The `model` the client asked for.
    pub model: String,
    /// The `provider/model` that served it.
    pub target: Option<Arc<str>>,
    /// Upstream attempts made.
    pub attempts: u32,
    /// The status returned to the client.
    pub status: u16,
    /// The error code returned, if any (also for errors inside a stream).
    pub error_code: Option<String>,
    /// Token usage reported by the provider.
    pub usage: Option<Usage>,
    /// What the request cost, when its target has prices (filled by accounting).
    pub cost: Option<Cost>,
    /// The transaction id the request named (`x-transaction-id` or the configured header).
    pub transaction: Option<String>,
    /// Whether this request paid its transaction's fee.
    pub fee_charged: bool,
    /// When the first byte of the answer left for the client (streams).
    pub time_to_first_token: Option<Duration>,
    /// When the request arrived.
    pub started: Instant,
}

impl RequestRecord {
    /// A record for a request that just arrived.
    pub fn new(request_id: String, started: Instant) -> Self {
        Self {
            request_id,
            key: Arc::from("anonymous"),
            model: String::new(),
            target: None,
            attempts: 0,
            status: 0,
            error_code: None,
            usage: None,
            cost: None,
            transaction: None,
            fee_charged: false,
            time_to_first_token: None,
            started,
        }
    }

    /// Writes the line.
    pub fn emit(&self) {
        let usage = self.usage.unwrap_or_default();
        tracing::info!(
            target: "switchboard::access",
            request_id = %self.request_id,
            key = %self.key,
            model = %self.model,
            target = self.target.as_deref().unwrap_or("-"),
            attempts = self.attempts,
            status = self.status,
            error = self.error_code.as_deref().unwrap_or("-"),
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            ttft_ms = self.time_to_first_token.map(|d| d.as_secs_f64() * 1000.0),
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "request done"
        );
    }
}
