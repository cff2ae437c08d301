//! One record per chat request, finished exactly once when the request is really over: at once
//! for plain responses, at the end (or the client's disconnect) for streams, and, when the
//! request is abandoned before it answered (the client hung up), when the record is dropped.
//!
//! Finishing writes the access line (`switchboard::access` in the process log), counts the
//! request in the metrics and queues its usage-log line. The access line carries names and
//! numbers only: the client key's configured name, never its secret, and no message content.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::accounting::{Cost, PaidCall};
use crate::error::FailureKind;
use crate::metrics::{GaugeGuard, Metrics};
use crate::openai::Usage;
use crate::usage_log::{Attempt, UsageEntry, UsageLog};

/// The status recorded for a request whose client went away before it was answered (nginx's
/// "client closed request"): no status reached the client, and this one is never sent.
pub const CLIENT_CLOSED: u16 = 499;

/// What happened to one request, filled in as it goes.
#[derive(Debug)]
pub struct RequestRecord {
    /// The `x-request-id` the client saw.
    pub request_id: String,
    /// The client key's name (`anonymous` when the router is open).
    pub key: Arc<str>,
    /// The `model` the client asked for.
    pub model: String,
    /// The configured route that `model` resolved to (`None`: it names none).
    pub route: Option<Arc<str>>,
    /// The `provider/model` that served it.
    pub target: Option<Arc<str>>,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Each upstream attempt's target and outcome, in order (filled by the router).
    pub attempt_log: Vec<Attempt>,
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
    /// The pay-per-call transaction it completed, if any.
    pub payment: Option<PaidCall>,
    /// When the first byte of the answer left for the client (streams).
    pub time_to_first_token: Option<Duration>,
    /// When the request arrived.
    pub started: Instant,
    /// The request body, kept only when the usage log includes bodies.
    pub request_body: Option<Bytes>,
    /// The response body of a non-stream answer, kept only when the usage log includes bodies.
    pub response_body: Option<Bytes>,
    /// Where the finished record is counted and logged besides the access line.
    sinks: Option<Sinks>,
    /// Set once the record is finished, so it never counts twice.
    finished: bool,
}

/// The metrics and usage log a record reports to, and its place in `inflight_requests`.
#[derive(Debug)]
struct Sinks {
    metrics: Arc<Metrics>,
    usage_log: Option<UsageLog>,
    /// Dropped when the record is finished: the request is no longer in flight.
    _inflight: GaugeGuard,
    /// The request's place under `server.max_inflight`, given back when it is finished.
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestRecord {
    /// A record for a request that just arrived, reporting only to the process log.
    pub fn new(request_id: String, started: Instant) -> Self {
        Self {
            request_id,
            key: Arc::from("anonymous"),
            model: String::new(),
            route: None,
            target: None,
            attempts: 0,
            attempt_log: Vec::new(),
            status: 0,
            error_code: None,
            usage: None,
            cost: None,
            transaction: None,
            fee_charged: false,
            payment: None,
            time_to_first_token: None,
            started,
            request_body: None,
            response_body: None,
            sinks: None,
            finished: false,
        }
    }

    /// Also counts the request in `metrics` (in flight from now on) and logs it to `usage_log`.
    pub fn reporting(mut self, metrics: Arc<Metrics>, usage_log: Option<UsageLog>) -> Self {
        let inflight = metrics.inflight();
        self.sinks = Some(Sinks {
            metrics,
            usage_log,
            _inflight: inflight,
            _permit: None,
        });
        self
    }

    /// Keeps `permit` until the record is finished, so the request counts against
    /// `server.max_inflight` to its real end (a stream's last byte), like the in-flight gauge.
    pub fn hold(&mut self, permit: OwnedSemaphorePermit) {
        if let Some(sinks) = &mut self.sinks {
            sinks._permit = Some(permit);
        }
    }

    /// Whether the usage log wants the request and response bodies.
    pub fn wants_bodies(&self) -> bool {
        self.sinks
            .as_ref()
            .and_then(|s| s.usage_log.as_ref())
            .is_some_and(UsageLog::include_bodies)
    }

    /// The serving attempt's stream broke after its commit point (its first content had gone
    /// to the client): the attempt's outcome becomes `kind`'s, and the metrics count it as
    /// such (beside the `ok` counted when it started answering).
    pub fn stream_broke(&mut self, kind: FailureKind) {
        let Some(attempt) = self.attempt_log.last_mut() else {
            return;
        };
        attempt.outcome = kind.as_str();
        // Targets are `provider/model`; provider names hold no slash.
        let provider = attempt
            .target
            .split_once('/')
            .map_or(&*attempt.target, |(provider, _)| provider);
        if let Some(sinks) = &self.sinks {
            sinks.metrics.attempt(provider, Some(kind));
        }
    }

    /// Finishes the record: the access line, the metrics, the usage-log line.
    pub fn emit(mut self) {
        self.finish();
    }

    /// Writes the access line, counts the request and queues its usage-log line, once.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let latency = self.started.elapsed();
        let logged = u32::try_from(self.attempt_log.len()).unwrap_or(u32::MAX);
        self.attempts = self.attempts.max(logged);
        self.access_line(latency);
        // Taken, so the in-flight guard goes with it at the end of this function.
        let Some(sinks) = self.sinks.take() else {
            return;
        };
        sinks.metrics.request_done(self, latency);
        if let Some(log) = &sinks.usage_log {
            log.send(self.usage_entry(latency));
        }
    }

    /// The `switchboard::access` line in the process log.
    fn access_line(&self, latency: Duration) {
        let usage = self.usage.unwrap_or_default();
        tracing::info!(
            target: "switchboard::access",
            request_id = %self.request_id,
            key = %self.key,
            model = %self.model,
            route = self.route.as_deref().unwrap_or("-"),
            target = self.target.as_deref().unwrap_or("-"),
            attempts = self.attempts,
            status = self.status,
            error = self.error_code.as_deref().unwrap_or("-"),
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            ttft_ms = self.time_to_first_token.map(|d| d.as_secs_f64() * 1000.0),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request done"
        );
    }

    /// The usage-log line, with the record's strings and bodies moved out (the record is
    /// finished; nothing reads them after this).
    fn usage_entry(&mut self, latency: Duration) -> UsageEntry {
        let now = SystemTime::now();
        UsageEntry {
            time: now.checked_sub(latency).unwrap_or(now),
            request_id: std::mem::take(&mut self.request_id),
            key: self.key.clone(),
            requested_model: std::mem::take(&mut self.model),
            route: self.route.clone(),
            target: self.target.clone(),
            attempts: self.attempts,
            attempt_log: std::mem::take(&mut self.attempt_log),
            status: self.status,
            error: self.error_code.take(),
            usage: self.usage,
            cost: self.cost.take(),
            transaction: self.transaction.take(),
            fee_charged: self.fee_charged,
            payment: self.payment.take(),
            latency,
            time_to_first_token: self.time_to_first_token,
            request_body: self.request_body.take(),
            response_body: self.response_body.take(),
        }
    }
}

impl Drop for RequestRecord {
    /// A record dropped unfinished belongs to a request abandoned before it answered (its
    /// future was dropped when the client hung up): it is still logged and counted, once.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.status == 0 {
            self.status = CLIENT_CLOSED;
        }
        if self.error_code.is_none() {
            self.error_code = Some("client_disconnected".to_owned());
        }
        self.finish();
    }
}
