//! The usage log (`[usage_log]`): one JSON line per request (chat or embeddings, told apart
//! by `endpoint`), for finance and audits.
//!
//! A request never waits for the disk. Its finished record becomes a [`UsageEntry`] that is
//! handed to a bounded channel with `try_send`; when the channel is full the line is counted in
//! `usage_log_dropped_total` and the request goes on. A single writer task owns the file: it
//! serialises entries (off the request path), writes whatever has queued up in one go through
//! `tokio::fs` (whose file operations run on the blocking pool, never on the runtime's
//! threads), and flushes after every burst, so a line is in the operating system's hands
//! moments after its request ended. [`UsageLog::close`], called by the server once its
//! connections have drained, writes everything queued, syncs the file to disk and only then
//! returns, so a restart loses no acknowledged line.
//!
//! A line holds names, numbers and ids: the client key's name (never its secret), the route,
//! provider and model, the attempts and their outcomes, the status and error code, token
//! counts, the exact cost and its currency, the transaction id, latency and time to first
//! token. Message bodies are written only with `include_bodies = true`: the request body and,
//! for non-stream answers, the response body, each as a JSON string of the exact bytes.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use prometheus::IntCounter;
use serde::Serialize;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::accounting::{Cost, PaidCall};
use crate::config::UsageLogSettings;
use crate::endpoint::Endpoint;
use crate::openai::Usage;

/// How many bytes of queued lines the writer gathers before it writes them.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One upstream attempt and how it ended.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The `provider/model` tried.
    pub target: Arc<str>,
    /// `ok` or a failure kind (`rate_limited`, `unavailable`, … as in the metrics).
    pub outcome: &'static str,
}

/// Everything a usage-log line says about one request, moved out of its record.
#[derive(Debug)]
pub struct UsageEntry {
    /// When the request arrived.
    pub time: SystemTime,
    /// The `x-request-id` the client saw.
    pub request_id: String,
    /// The API the request came through.
    pub endpoint: Endpoint,
    /// The client key's name.
    pub key: Arc<str>,
    /// The `model` the client sent.
    pub requested_model: String,
    /// The route it resolved to, if any.
    pub route: Option<Arc<str>>,
    /// The `provider/model` that served it, if any.
    pub target: Option<Arc<str>>,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Each attempt's target and outcome, in order.
    pub attempt_log: Vec<Attempt>,
    /// The status returned to the client.
    pub status: u16,
    /// The error code returned, if any.
    pub error: Option<String>,
    /// Token usage reported by the provider.
    pub usage: Option<Usage>,
    /// The request's exact cost.
    pub cost: Option<Cost>,
    /// The transaction id the request named.
    pub transaction: Option<String>,
    /// Whether this request paid its transaction's fee.
    pub fee_charged: bool,
    /// The pay-per-call transaction it completed, if any.
    pub payment: Option<PaidCall>,
    /// From arrival to the last byte sent.
    pub latency: Duration,
    /// From arrival to the first content sent (streams).
    pub time_to_first_token: Option<Duration>,
    /// The request body, with `include_bodies`.
    pub request_body: Option<Bytes>,
    /// The response body of a non-stream answer, with `include_bodies`.
    pub response_body: Option<Bytes>,
}

/// What the writer task receives.
enum Message {
    /// A line to write.
    Line(Box<UsageEntry>),
    /// Write everything queued, sync, and say so.
    Close(oneshot::Sender<()>),
}

/// The sending side of the usage log; cheap to clone.
#[derive(Clone, Debug)]
pub struct UsageLog {
    sender: mpsc::Sender<Message>,
    dropped: IntCounter,
    include_bodies: bool,
}

impl UsageLog {
    /// Opens (creating or appending to) the log file and starts its writer task. Must run
    /// inside a Tokio runtime.
    pub async fn start(settings: &UsageLogSettings, dropped: IntCounter) -> io::Result<Self> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&settings.path)
            .await
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "[usage_log] path: cannot open {}: {e}",
                        settings.path.display()
                    ),
                )
            })?;
        let (sender, receiver) = mpsc::channel(settings.buffer);
        let writer = Writer {
            file,
            path: settings.path.display().to_string(),
            batch: Vec::new(),
            lines: 0,
            dropped: dropped.clone(),
        };
        tokio::spawn(writer.run(receiver));
        Ok(Self {
            sender,
            dropped,
            include_bodies: settings.include_bodies,
        })
    }

    /// Whether lines carry the request and response bodies.
    pub fn include_bodies(&self) -> bool {
        self.include_bodies
    }

    /// Queues a line without waiting; when the queue is full (or the log closed) the line is
    /// counted as dropped.
    pub fn send(&self, entry: UsageEntry) {
        if self
            .sender
            .try_send(Message::Line(Box::new(entry)))
            .is_err()
        {
            self.dropped.inc();
        }
    }

    /// Writes and syncs every line queued so far and stops the writer; later lines are
    /// counted as dropped. Returns once the lines are on disk (or the writer is gone).
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.sender.send(Message::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// The task that owns the file.
struct Writer {
    /// The log file, opened for appending.
    file: File,
    /// The file's path, for messages.
    path: String,
    /// Serialised lines waiting to be written.
    batch: Vec<u8>,
    /// How many lines `batch` holds.
    lines: u64,
    /// `usage_log_dropped_total`.
    dropped: IntCounter,
}

impl Writer {
    /// Writes lines until the log is closed (or every sender is gone), then syncs the file
    /// and acknowledges the close.
    async fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        let mut acks = Vec::new();
        while let Some(message) = receiver.recv().await {
            self.take(message, &mut acks, &mut receiver);
            // Whatever else has queued up joins this write: one write and flush per burst.
            while self.batch.len() < MAX_BATCH_BYTES {
                let Ok(message) = receiver.try_recv() else {
                    break;
                };
                self.take(message, &mut acks, &mut receiver);
            }
            self.write().await;
        }
        if let Err(e) = self.file.sync_all().await {
            tracing::warn!(path = %self.path, error = %e, "usage log: cannot sync the file");
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }

    /// Adds a line to the batch, or on a close stops new lines (those queued still come).
    fn take(
        &mut self,
        message: Message,
        acks: &mut Vec<oneshot::Sender<()>>,
        receiver: &mut mpsc::Receiver<Message>,
    ) {
        match message {
            Message::Line(entry) => self.serialise(&entry),
            Message::Close(ack) => {
                receiver.close();
                acks.push(ack);
            }
        }
    }

    /// Appends an entry's JSON line to the batch; one that cannot be serialised is dropped.
    fn serialise(&mut self, entry: &UsageEntry) {
        let start = self.batch.len();
        match serde_json::to_writer(&mut self.batch, &Line::from(entry)) {
            Ok(()) => {
                self.batch.push(b'\n');
                self.lines += 1;
            }
            Err(e) => {
                self.batch.truncate(start);
                self.dropped.inc();
                tracing::warn!(error = %e, "usage log: cannot serialise a line");
            }
        }
    }

    /// Writes and flushes the batch; lines that could not be written are counted as dropped.
    async fn write(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let written = match self.file.write_all(&self.batch).await {
            Ok(()) => self.file.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            self.dropped.inc_by(self.lines);
            tracing::warn!(path = %self.path, error = %e, lines = self.lines, "usage log: write failed");
        }
        self.batch.clear();
        self.lines = 0;
    }
}

/// The JSON shape of one line.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    endpoint: Endpoint,
    key: &'a str,
    requested_model: &'a str,
    route: Option<&'a str>,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    attempts: u32,
    attempt_outcomes: Vec<AttemptLine<'a>>,
    status: u16,
    error: Option<&'a str>,
    usage: Option<UsageLine>,
    cost: Option<String>,
    currency: Option<&'a str>,
    transaction: Option<&'a str>,
    fee_charged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<PaymentLine<'a>>,
    latency_ms: f64,
    time_to_first_token_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<std::borrow::Cow<'a, str>>,
}

/// A completed pay-per-call transaction in a line, for reconciliation with Alipay's bills.
#[derive(Serialize)]
struct PaymentLine<'a> {
    trade_no: &'a str,
    out_trade_no: &'a str,
    amount: String,
    currency: &'a str,
}

/// One attempt in a line.
#[derive(Serialize)]
struct AttemptLine<'a> {
    target: &'a str,
    outcome: &'a str,
}

/// Token counts in a line, in OpenAI's meaning.
#[derive(Serialize)]
struct UsageLine {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    cached_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
}

impl<'a> From<&'a UsageEntry> for Line<'a> {
    fn from(entry: &'a UsageEntry) -> Self {
        let (provider, model) = match entry.target.as_deref().and_then(|t| t.split_once('/')) {
            Some((provider, model)) => (Some(provider), Some(model)),
            None => (None, None),
        };
        let millis = |d: Duration| d.as_secs_f64() * 1000.0;
        let body = |b: &'a Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b));
        Self {
            time: humantime::format_rfc3339_millis(entry.time).to_string(),
            request_id: &entry.request_id,
            endpoint: entry.endpoint,
            key: &entry.key,
            requested_model: &entry.requested_model,
            route: entry.route.as_deref(),
            provider,
            model,
            attempts: entry.attempts,
            attempt_outcomes: entry
                .attempt_log
                .iter()
                .map(|a| AttemptLine {
                    target: &a.target,
                    outcome: a.outcome,
                })
                .collect(),
            status: entry.status,
            error: entry.error.as_deref(),
            usage: entry.usage.map(|u| UsageLine {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.total_tokens,
                cached_tokens: u.cached_tokens,
                cache_write_tokens: u.cache_write_tokens,
                reasoning_tokens: u.reasoning_tokens,
            }),
            cost: entry.cost.as_ref().map(Cost::amount_text),
            currency: entry.cost.as_ref().map(|c| &*c.currency),
            transaction: entry.transaction.as_deref(),
            fee_charged: entry.fee_charged,
            payment: entry.payment.as_ref().map(|paid| PaymentLine {
                trade_no: &paid.trade_no,
                out_trade_no: &paid.out_trade_no,
                amount: paid.cost.amount.to_string(),
                currency: &paid.cost.currency,
            }),
            latency_ms: millis(entry.latency),
            time_to_first_token_ms: entry.time_to_first_token.map(millis),
            request_body: body(&entry.request_body),
            response_body: body(&entry.response_body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> UsageEntry {
        UsageEntry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            request_id: "req_1".into(),
            endpoint: Endpoint::Chat,
            key: Arc::from("web"),
            requested_model: "chat".into(),
            route: Some(Arc::from("chat")),
            target: Some(Arc::from("qwen/qwen-max")),
            attempts: 2,
            attempt_log: vec![
                Attempt {
                    target: Arc::from("alipay/qwen-plus"),
                    outcome: "rate_limited",
                },
                Attempt {
                    target: Arc::from("qwen/qwen-max"),
                    outcome: "ok",
                },
            ],
            status: 200,
            error: None,
            usage: None,
            cost: Some(Cost {
                amount: rust_decimal::Decimal::new(431_250, 9),
                currency: Arc::from("USD"),
            }),
            transaction: Some("tx-9".into()),
            fee_charged: true,
            payment: None,
            latency: Duration::from_millis(1500),
            time_to_first_token: None,
            request_body: Some(Bytes::from_static(b"{\n \"a\": 1000.00\n}")),
            response_body: None,
        }
    }

    #[test]
    fn a_line_is_one_line_of_json_with_exact_amounts_and_bodies() {
        let entry = entry();
        let text = serde_json::to_string(&Line::from(&entry)).unwrap();
        assert!(!text.contains('\n'), "{text}");
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(line["provider"], "qwen");
        assert_eq!(line["model"], "qwen-max");
        assert_eq!(line["cost"], "0.000431250");
        assert_eq!(line["currency"], "USD");
        assert_eq!(line["attempt_outcomes"][0]["outcome"], "rate_limited");
        assert_eq!(line["latency_ms"], 1500.0);
        assert_eq!(line["request_body"], "{\n \"a\": 1000.00\n}", "exact bytes");
        assert!(line.get("response_body").is_none());
    }
}
