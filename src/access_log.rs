//! One record per chat request, finished exactly once when the request is really over: at once
//! for plain responses, at the end (or the client's disconnect) for streams, and, when the
//! request is abandoned before it answered (the client hung up), when the record is dropped.
//!
//! A record dropped unfinished says why: the client went away (`client_disconnected`, 499),
//! or the server cut the request at the end of `server.shutdown_grace` (`server_shutdown`, 503
//! when nothing had been answered yet). The server tells the two apart with a
//! [`ShutdownCut`] it sets before cutting, which every record reads through its [`Sinks`].
//!
//! Finishing writes the access line (`switchboard::access` in the process log), counts the
//! request in the metrics and queues its usage-log line. The access line carries names and
//! numbers only: the client key's configured name, never its secret, and no message content.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::accounting::{Cost, PaidCall};
use crate::endpoint::Endpoint;
use crate::error::FailureKind;
use crate::metrics::{GaugeGuard, Metrics};
use crate::openai::Usage;
use crate::usage_log::{Attempt, UsageEntry, UsageLog};

/// The status recorded for a request whose client went away before it was answered (nginx's
/// "client closed request"): no status reached the client, and this one is never sent.
pub const CLIENT_CLOSED: u16 = 499;

/// The error recorded for a request whose client went away before it was over.
pub const CLIENT_DISCONNECTED: &str = "client_disconnected";

/// The status recorded for a request the server cut at the end of its shutdown grace before
/// it was answered: the router could not serve it (no status reached the client either).
pub const SHUTDOWN_STATUS: u16 = 503;

/// The error recorded for a request or stream the server cut at the end of its shutdown grace.
pub const SERVER_SHUTDOWN: &str = "server_shutdown";

/// Set by the server once `server.shutdown_grace` is over, just before it cuts the requests
/// still running: a record dropped unfinished from then on was cut by the server, not
/// abandoned by its client. (Distinct from draining: during the grace period a hang-up is
/// still the client's.)
#[derive(Clone, Debug, Default)]
pub struct ShutdownCut(Arc<AtomicBool>);

impl ShutdownCut {
    /// Marks the requests still running as cut by the server.
    pub fn cut(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the server is cutting the requests still running.
    pub fn is_cut(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Where finished records are counted and logged: one for the server, shared by every record
/// (one reference count per request, nothing copied).
#[derive(Debug)]
pub struct Sinks {
    metrics: Arc<Metrics>,
    usage_log: Option<UsageLog>,
    cut: ShutdownCut,
}

impl Sinks {
    /// Counts records in `metrics`, logs them to `usage_log`, and reads `cut` to tell a
    /// shutdown from a hang-up.
    pub fn new(metrics: Arc<Metrics>, usage_log: Option<UsageLog>, cut: ShutdownCut) -> Self {
        Self {
            metrics,
            usage_log,
            cut,
        }
    }
}

/// What happened to one request, filled in as it goes.
#[derive(Debug)]
pub struct RequestRecord {
    /// The `x-request-id` the client saw.
    pub request_id: String,
    /// The API the request came through.
    pub endpoint: Endpoint,
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
    reporting: Option<Reporting>,
    /// Set once the record is finished, so it never counts twice.
    finished: bool,
}

/// The sinks a record reports to, and its place in `inflight_requests`.
#[derive(Debug)]
struct Reporting {
    sinks: Arc<Sinks>,
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
            endpoint: Endpoint::Chat,
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
            reporting: None,
            finished: false,
        }
    }

    /// Also reports the request to `sinks`: counted in the metrics (in flight from now on) and
    /// logged to the usage log.
    pub fn reporting(mut self, sinks: Arc<Sinks>) -> Self {
        let inflight = sinks.metrics.inflight();
        self.reporting = Some(Reporting {
            sinks,
            _inflight: inflight,
            _permit: None,
        });
        self
    }

    /// Keeps `permit` until the record is finished, so the request counts against
    /// `server.max_inflight` to its real end (a stream's last byte), like the in-flight gauge.
    pub fn hold(&mut self, permit: OwnedSemaphorePermit) {
        if let Some(reporting) = &mut self.reporting {
            reporting._permit = Some(permit);
        }
    }

    /// Whether the usage log wants the request and response bodies.
    pub fn wants_bodies(&self) -> bool {
        self.reporting
            .as_ref()
            .and_then(|r| r.sinks.usage_log.as_ref())
            .is_some_and(UsageLog::include_bodies)
    }

    /// Why a request dropped before it was over ended: [`SERVER_SHUTDOWN`] when the server is
    /// cutting it at the end of its shutdown grace, else [`CLIENT_DISCONNECTED`].
    pub fn abandoned_because(&self) -> &'static str {
        if self.cut_by_shutdown() {
            SERVER_SHUTDOWN
        } else {
            CLIENT_DISCONNECTED
        }
    }

    fn cut_by_shutdown(&self) -> bool {
        self.reporting
            .as_ref()
            .is_some_and(|r| r.sinks.cut.is_cut())
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
        if let Some(reporting) = &self.reporting {
            reporting.sinks.metrics.attempt(provider, Some(kind));
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
        let Some(reporting) = self.reporting.take() else {
            return;
        };
        let sinks = &reporting.sinks;
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
            endpoint = self.endpoint.as_str(),
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
            endpoint: self.endpoint,
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
    /// future was dropped when the client hung up, or when the server cut it at the end of
    /// its shutdown grace): it is still logged and counted, once, with the reason.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let cut = self.cut_by_shutdown();
        if self.status == 0 {
            self.status = if cut { SHUTDOWN_STATUS } else { CLIENT_CLOSED };
        }
        if self.error_code.is_none() {
            self.error_code = Some(self.abandoned_because().to_owned());
        }
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::health::Health;

    #[test]
    fn a_record_dropped_unfinished_is_a_hang_up_unless_the_server_is_cutting() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let cut = ShutdownCut::default();
        let sinks = Arc::new(Sinks::new(metrics.clone(), None, cut.clone()));
        let record = || RequestRecord::new("r".into(), Instant::now()).reporting(sinks.clone());

        let hung_up = record();
        assert_eq!(hung_up.abandoned_because(), CLIENT_DISCONNECTED);
        drop(hung_up);
        cut.cut();
        let unanswered = record();
        assert_eq!(unanswered.abandoned_because(), SERVER_SHUTDOWN);
        drop(unanswered);
        let mut streaming = record();
        streaming.status = 200;
        drop(streaming);

        let snapshot = crate::layers::testing::snapshot("");
        let text = String::from_utf8(metrics.render(&snapshot, &Health::default())).unwrap();
        for status in ["499", "503", "200"] {
            assert!(
                text.contains(&format!("status=\"{status}\"}} 1")),
                "one {status}: {text}"
            );
        }
        assert_eq!(metrics.inflight_now(), 0);
    }
}
