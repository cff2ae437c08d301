//! Prometheus metrics: every collector registered in one place, names prefixed `switchboard_`.
//!
//! Label values come only from the configuration (provider, route, model and key names) or
//! from fixed enumerations ([`FailureKind::as_str`], [`Scope`], [`Endpoint::as_str`], HTTP
//! statuses, token kinds),
//! never from what a client sends, so the number of series stays bounded. A request whose
//! `model` names no route is labelled `route="unknown"`; one that no target served is labelled
//! `provider="none", model="none"`.
//!
//! Per-request counting goes through `RequestSeries`: label handles resolved once per
//! (endpoint, route, target) and kept, so a finished request costs a map lookup under a read lock and a
//! few atomic adds, with no allocation (see [`Metrics::request_done`]).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use foldhash::HashMap;
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Counter, CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use rust_decimal::prelude::ToPrimitive;

use crate::access_log::RequestRecord;
use crate::config::{Snapshot, WILDCARD_MODEL};
use crate::endpoint::Endpoint;
use crate::error::FailureKind;
use crate::router::health::Health;

/// The prefix of every metric name.
const NAMESPACE: &str = "switchboard";

/// Buckets of `request_duration_seconds`: a fast non-stream answer takes tens of milliseconds,
/// a long reasoning stream minutes, and `routing.request_timeout` defaults to 10 minutes.
pub const DURATION_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Buckets of `time_to_first_token_seconds`: finer below a second, where the first token of
/// a healthy provider lands, up to the default `routing.attempt_timeout` and beyond.
pub const TTFT_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// Buckets of `overhead_seconds`: the router's own time per request, from microseconds (a
/// pass-through) to the milliseconds that would mean something is wrong.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
];

/// The `route` label of a request whose `model` names no route (or that failed before its
/// body was read).
pub const UNKNOWN_ROUTE: &str = "unknown";

/// The `provider` and `model` labels of a request no target served.
pub const NO_TARGET: &str = "none";

/// The `model` label of requests served through a provider's wildcard (`models."*"`): the
/// model names are the clients', so they are counted together (the usage log keeps each).
pub const OTHER_MODEL: &str = "other";

/// What a rate limit applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A provider's `rpm`/`tpm`.
    Provider,
    /// A client key's `rpm`/`tpm`.
    Key,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Key => "key",
        }
    }
}

/// The router's collectors.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    /// Resolved per-request handles, one table per [`Endpoint`] (indexed, not hashed): route
    /// name → target label → series.
    series: [RwLock<HashMap<Arc<str>, SeriesByTarget>>; Endpoint::ALL.len()],
}

/// A route's series, by the label of the target that served (or [`NO_TARGET`]).
type SeriesByTarget = HashMap<Arc<str>, Arc<RequestSeries>>;

/// A `cost_total` handle with its client key and currency.
type CostHandle = (Arc<str>, Arc<str>, Counter);

/// The registered metric families.
#[derive(Debug)]
struct Families {
    requests: IntCounterVec,
    duration: HistogramVec,
    ttft: HistogramVec,
    upstream_attempts: IntCounterVec,
    failovers: IntCounterVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    transactions: IntCounterVec,
    rate_limited: IntCounterVec,
    provider_cooldown: GaugeVec,
    inflight: IntGauge,
    open_connections: IntGauge,
    connections_refused: IntCounter,
    config_reloads: IntCounterVec,
    usage_log_dropped: IntCounter,
    overhead: Histogram,
    payment_quotes: IntCounterVec,
    payments_completed: IntCounterVec,
    payment_proofs_rejected: IntCounterVec,
    payment_headers_malformed: IntCounterVec,
}

impl Families {
    /// Creates and registers every family.
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(counter.clone()))?;
            Ok::<_, prometheus::Error>(counter)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let histogram = HistogramVec::new(opts, &["route", "provider", "endpoint"])?;
            registry.register(Box::new(histogram.clone()))?;
            Ok::<_, prometheus::Error>(histogram)
        };
        let cost = CounterVec::new(
            Opts::new(
                "cost_total",
                "Money spent, by provider, model, client key and currency (never converted).",
            ),
            &["provider", "model", "key", "currency"],
        )?;
        registry.register(Box::new(cost.clone()))?;
        let provider_cooldown = GaugeVec::new(
            Opts::new(
                "provider_cooldown_seconds",
                "Seconds until a provider is usable again (0 when it is), or until the last of its \
                 cooled-down models is: the longest of its own and its targets' cooldowns.",
            ),
            &["provider"],
        )?;
        registry.register(Box::new(provider_cooldown.clone()))?;
        let inflight = IntGauge::new(
            "inflight_requests",
            "Requests being served (every endpoint), streams until their body ends.",
        )?;
        registry.register(Box::new(inflight.clone()))?;
        let open_connections = IntGauge::new("open_connections", "Client connections open now.")?;
        registry.register(Box::new(open_connections.clone()))?;
        let connections_refused = IntCounter::new(
            "connections_refused_total",
            "Client connections closed at accept because server.max_connections were open.",
        )?;
        registry.register(Box::new(connections_refused.clone()))?;
        let usage_log_dropped = IntCounter::new(
            "usage_log_dropped_total",
            "Usage-log lines lost: the writer's queue was full, or the write failed.",
        )?;
        registry.register(Box::new(usage_log_dropped.clone()))?;
        let overhead = Histogram::with_opts(
            HistogramOpts::new(
                "overhead_seconds",
                "Time a chat request spent in the router itself: until its response headers, \
                 minus the time spent waiting on providers (headers, complete bodies, a \
                 stream's first content); a stream's body is not counted.",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(overhead.clone()))?;
        Ok(Self {
            requests: counter(
                "requests_total",
                "Requests by endpoint (chat, embeddings), route, serving provider and model, and \
                 the status returned.",
                &["route", "provider", "model", "status", "endpoint"],
            )?,
            duration: histogram(
                "request_duration_seconds",
                "Request duration by route, provider and endpoint, until the last byte of a \
                 stream.",
                DURATION_BUCKETS,
            )?,
            ttft: histogram(
                "time_to_first_token_seconds",
                "Time until a stream's first content left for the client.",
                TTFT_BUCKETS,
            )?,
            upstream_attempts: counter(
                "upstream_attempts_total",
                "Upstream attempts by provider and outcome. A stream that breaks after its first \
                 content counts twice: ok when it started answering, then its failure.",
                &["provider", "outcome"],
            )?,
            failovers: counter(
                "failovers_total",
                "Times a route moved on from a provider, by the reason.",
                &["route", "from_provider", "reason"],
            )?,
            tokens: counter(
                "tokens_total",
                "Tokens by provider, model and kind (input: prompt tokens not read from the \
                 cache; cached_input: cache reads; output: completion, reasoning included).",
                &["provider", "model", "kind"],
            )?,
            cost,
            transactions: counter(
                "transactions_total",
                "Transactions charged their per-transaction fee.",
                &["provider", "model"],
            )?,
            rate_limited: counter(
                "rate_limited_total",
                "Requests or attempts refused by the router's own rate limits.",
                &["scope", "name"],
            )?,
            provider_cooldown,
            inflight,
            open_connections,
            connections_refused,
            config_reloads: counter(
                "config_reloads_total",
                "Configuration reloads by result.",
                &["result"],
            )?,
            usage_log_dropped,
            overhead,
            payment_quotes: counter(
                "payment_quotes_total",
                "Price quotes (402 with Payment-Needed) from pay-per-call providers.",
                &["provider"],
            )?,
            payments_completed: counter(
                "payments_completed_total",
                "Paid calls served (200 with Payment-Validation, validated = true).",
                &["provider"],
            )?,
            payment_proofs_rejected: counter(
                "payment_proofs_rejected_total",
                "Payment proofs the provider refused (400 INVALID_PAYMENT_PROOF).",
                &["provider"],
            )?,
            payment_headers_malformed: counter(
                "payment_headers_malformed_total",
                "Payment-Needed or Payment-Validation headers the router could not read.",
                &["provider"],
            )?,
        })
    }
}

/// A step of the pay-per-call exchange, counted per provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentEvent {
    /// A price quote came back.
    Quoted,
    /// A paid call was served and validated.
    Completed,
    /// The provider refused a payment proof.
    ProofRejected,
    /// A payment header could not be read.
    Malformed,
}

/// The handles one (endpoint, route, target) counts into, resolved when it is first seen.
///
/// Why a cache of our own rather than `with_label_values` per request: the `prometheus` crate
/// hashes every label value and takes its own lock for each call, and the `status` label would
/// need a string made from a number each time. Here a finished request finds its series with
/// two `&str` lookups under one read lock (no key is built, nothing is allocated) and then only
/// touches atomics; statuses and (key, currency) pairs, a handful per series, are short lists
/// scanned under their own read locks. The cache is keyed by names, not by snapshot, so the
/// series of a route survive a configuration reload, as Prometheus counters should.
#[derive(Debug)]
struct RequestSeries {
    provider: String,
    model: String,
    route: String,
    endpoint: &'static str,
    duration: Histogram,
    ttft: Histogram,
    input: IntCounter,
    cached_input: IntCounter,
    output: IntCounter,
    transactions: IntCounter,
    statuses: RwLock<Vec<(u16, IntCounter)>>,
    costs: RwLock<Vec<CostHandle>>,
}

impl RequestSeries {
    /// Resolves the handles of `endpoint`'s requests to `route` served by `target`
    /// (`provider/model`, or [`NO_TARGET`]).
    fn new(
        families: &Families,
        endpoint: Endpoint,
        route: &str,
        target: &str,
    ) -> Result<Self, prometheus::Error> {
        let endpoint = endpoint.as_str();
        let (provider, model) = target.split_once('/').unwrap_or((NO_TARGET, NO_TARGET));
        let model = if model == WILDCARD_MODEL {
            OTHER_MODEL
        } else {
            model
        };
        let tokens = |kind: &str| {
            families
                .tokens
                .get_metric_with_label_values(&[provider, model, kind])
        };
        Ok(Self {
            duration: families
                .duration
                .get_metric_with_label_values(&[route, provider, endpoint])?,
            ttft: families
                .ttft
                .get_metric_with_label_values(&[route, provider, endpoint])?,
            input: tokens("input")?,
            cached_input: tokens("cached_input")?,
            output: tokens("output")?,
            transactions: families
                .transactions
                .get_metric_with_label_values(&[provider, model])?,
            statuses: RwLock::new(Vec::new()),
            costs: RwLock::new(Vec::new()),
            provider: provider.to_owned(),
            model: model.to_owned(),
            route: route.to_owned(),
            endpoint,
        })
    }

    /// `requests_total` for `status`, resolved on first use.
    fn requests(&self, families: &Families, status: u16) -> Result<IntCounter, prometheus::Error> {
        let found = read(&self.statuses)
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, c)| c.clone());
        if let Some(counter) = found {
            return Ok(counter);
        }
        let status_label = status.to_string();
        let labels: [&str; 5] = [
            &self.route,
            &self.provider,
            &self.model,
            &status_label,
            self.endpoint,
        ];
        let counter = families.requests.get_metric_with_label_values(&labels)?;
        let mut statuses = write(&self.statuses);
        if !statuses.iter().any(|(s, _)| *s == status) {
            statuses.push((status, counter.clone()));
        }
        Ok(counter)
    }

    /// `cost_total` for a key and currency, resolved on first use.
    fn cost(
        &self,
        families: &Families,
        key: &Arc<str>,
        currency: &Arc<str>,
    ) -> Result<Counter, prometheus::Error> {
        let found = read(&self.costs)
            .iter()
            .find(|(k, c, _)| k == key && c == currency)
            .map(|(_, _, counter)| counter.clone());
        if let Some(counter) = found {
            return Ok(counter);
        }
        let labels: [&str; 4] = [&self.provider, &self.model, key, currency];
        let counter = families.cost.get_metric_with_label_values(&labels)?;
        let mut costs = write(&self.costs);
        if !costs.iter().any(|(k, c, _)| k == key && c == currency) {
            costs.push((key.clone(), currency.clone(), counter.clone()));
        }
        Ok(counter)
    }
}

/// The target a request is counted under. Served through a wildcard route (`provider/*`),
/// any model of that provider counts as the wildcard itself, so neither the series nor this
/// cache grows with the names clients send.
fn counted_target<'a>(route: &'a str, target: &'a str) -> &'a str {
    let through_wildcard = route
        .strip_suffix(WILDCARD_MODEL)
        .is_some_and(|provider| provider.ends_with('/') && target.starts_with(provider));
    if through_wildcard { route } else { target }
}

/// A read lock that survives a panic elsewhere: the data is only a cache of handles.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// A write lock that survives a panic elsewhere: the data is only a cache of handles.
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// One unit of a gauge (a chat request in flight, an open connection), given back when
/// dropped: a request's guard lives in its record, so a stream counts until its body ends or
/// the client goes away.
#[derive(Debug)]
pub struct GaugeGuard(IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Registers every collector; `config_reloads_total` starts with both results at 0 so the
    /// series exist before the first reload.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some(NAMESPACE.to_owned()), None)?;
        let families = Families::register(&registry)?;
        for result in ["ok", "error"] {
            families
                .config_reloads
                .get_metric_with_label_values(&[result])?;
        }
        Ok(Self {
            registry,
            families,
            series: Default::default(),
        })
    }

    /// Counts one upstream attempt; `outcome` is `None` for success.
    pub fn attempt(&self, provider: &str, outcome: Option<FailureKind>) {
        let outcome = outcome.map_or("ok", FailureKind::as_str);
        self.families
            .upstream_attempts
            .with_label_values(&[provider, outcome])
            .inc();
    }

    /// Counts a move from one provider to the route's next target.
    pub fn failover(&self, route: &str, from_provider: &str, reason: FailureKind) {
        self.families
            .failovers
            .with_label_values(&[route, from_provider, reason.as_str()])
            .inc();
    }

    /// Counts a step of the pay-per-call exchange; `provider` is a configured name.
    pub fn payment(&self, provider: &str, event: PaymentEvent) {
        let family = match event {
            PaymentEvent::Quoted => &self.families.payment_quotes,
            PaymentEvent::Completed => &self.families.payments_completed,
            PaymentEvent::ProofRejected => &self.families.payment_proofs_rejected,
            PaymentEvent::Malformed => &self.families.payment_headers_malformed,
        };
        family.with_label_values(&[provider]).inc();
    }

    /// Counts a refusal by the router's own limits.
    pub fn rate_limited(&self, scope: Scope, name: &str) {
        self.families
            .rate_limited
            .with_label_values(&[scope.as_str(), name])
            .inc();
    }

    /// Counts a configuration reload.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.families
            .config_reloads
            .with_label_values(&[result])
            .inc();
    }

    /// Drops the gauges of a provider that is no longer configured. Its counters stay: they
    /// are totals, and removing them would read as a reset to `rate()`.
    pub fn forget_provider(&self, name: &str) {
        // Absent when it was never scraped; nothing to remove then.
        let _ = self.families.provider_cooldown.remove_label_values(&[name]);
    }

    /// Records the router's own time for one answered chat request.
    pub fn overhead(&self, overhead: Duration) {
        self.families.overhead.observe(overhead.as_secs_f64());
    }

    /// Chat requests in flight now (the tests' view of the gauge).
    #[cfg(test)]
    pub(crate) fn inflight_now(&self) -> i64 {
        self.families.inflight.get()
    }

    /// Counts one more chat request in flight, until the guard is dropped.
    pub fn inflight(&self) -> GaugeGuard {
        self.families.inflight.inc();
        GaugeGuard(self.families.inflight.clone())
    }

    /// Counts one more open client connection, until the guard is dropped.
    pub fn connection_opened(&self) -> GaugeGuard {
        self.families.open_connections.inc();
        GaugeGuard(self.families.open_connections.clone())
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> i64 {
        self.families.open_connections.get()
    }

    /// Counts a connection closed at accept for `server.max_connections`.
    pub fn connection_refused(&self) {
        self.families.connections_refused.inc();
    }

    /// The counter of usage-log lines lost.
    pub fn usage_log_dropped(&self) -> IntCounter {
        self.families.usage_log_dropped.clone()
    }

    /// Counts a finished request: its status, duration, time to first token, tokens, cost and
    /// transaction fee, under the labels of its endpoint, route and serving target.
    pub fn request_done(&self, record: &RequestRecord, latency: Duration) {
        let route = record.route.as_deref().unwrap_or(UNKNOWN_ROUTE);
        let target = counted_target(route, record.target.as_deref().unwrap_or(NO_TARGET));
        let series = match self.series(record.endpoint, route, target) {
            Ok(series) => series,
            Err(e) => {
                tracing::warn!(error = %e, route, target, "cannot count the request");
                return;
            }
        };
        if let Err(e) = self.count(&series, record, latency) {
            tracing::warn!(error = %e, route, target, "cannot count the request");
        }
    }

    /// Adds one finished request to its series.
    fn count(
        &self,
        series: &RequestSeries,
        record: &RequestRecord,
        latency: Duration,
    ) -> Result<(), prometheus::Error> {
        series.requests(&self.families, record.status)?.inc();
        series.duration.observe(latency.as_secs_f64());
        if let Some(ttft) = record.time_to_first_token {
            series.ttft.observe(ttft.as_secs_f64());
        }
        if let Some(usage) = &record.usage {
            // The kinds are disjoint, so their sum is the whole prompt plus the output; cache
            // writes are input at the provider's (higher) write price.
            let cached = usage.cached_tokens.min(usage.prompt_tokens);
            series.input.inc_by(usage.prompt_tokens - cached);
            series.cached_input.inc_by(cached);
            series.output.inc_by(usage.completion_tokens);
        }
        if let Some(cost) = &record.cost {
            let amount = cost.amount.to_f64().unwrap_or(0.0);
            series
                .cost(&self.families, &record.key, &cost.currency)?
                .inc_by(amount.max(0.0));
        }
        if record.fee_charged {
            series.transactions.inc();
        }
        Ok(())
    }

    /// The series of `endpoint`'s requests to `route` served by `target`, resolved on first
    /// use.
    fn series(
        &self,
        endpoint: Endpoint,
        route: &str,
        target: &str,
    ) -> Result<Arc<RequestSeries>, prometheus::Error> {
        let table = &self.series[endpoint.index()];
        if let Some(found) = read(table).get(route).and_then(|t| t.get(target)) {
            return Ok(found.clone());
        }
        let created = Arc::new(RequestSeries::new(&self.families, endpoint, route, target)?);
        let mut series = write(table);
        let by_target = series.entry(Arc::from(route)).or_default();
        Ok(by_target
            .entry(Arc::from(target))
            .or_insert(created)
            .clone())
    }

    /// The text exposition, with cooldown gauges read at scrape time.
    pub fn render(&self, snapshot: &Snapshot, health: &Health) -> Vec<u8> {
        for name in snapshot.providers.keys() {
            self.families
                .provider_cooldown
                .with_label_values(&[name])
                .set(health.provider_cooldown_left(name).as_secs_f64());
        }
        let mut families = self.registry.gather();
        match target_cooldowns(snapshot, health) {
            Ok(targets) => {
                for family in targets {
                    let at = families.partition_point(|f| f.name() < family.name());
                    families.insert(at, family);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot expose the target cooldowns"),
        }
        let mut out = Vec::new();
        // Encoding into a Vec only fails on malformed metric families, which registration
        // (and the filter on empty families above) already rules out.
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }
}

/// `target_cooldown_seconds{provider, model}`: seconds until each configured target may be
/// tried again. Built afresh at each scrape from the routes of `snapshot` (direct
/// `provider/model` ones included), so its series are exactly the configured targets: one a
/// reload removed leaves nothing behind, and a client's model name never makes a series.
fn target_cooldowns(
    snapshot: &Snapshot,
    health: &Health,
) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let gauge = GaugeVec::new(
        Opts::new(
            "target_cooldown_seconds",
            "Seconds until a provider/model target is usable again (0 when it is): its own \
             cooldown (a per-model limit) or its provider's, whichever ends later.",
        )
        .namespace(NAMESPACE),
        &["provider", "model"],
    )?;
    for target in snapshot.routes.values().flat_map(|route| &route.targets) {
        let left = health.target_cooldown_left(&target.provider.name, &target.label);
        gauge
            .get_metric_with_label_values(&[&target.provider.name, &target.model])?
            .set(left.as_secs_f64());
    }
    // The text encoder refuses a family without series (no routes configured).
    Ok(gauge
        .collect()
        .into_iter()
        .filter(|family| !family.get_metric().is_empty())
        .collect())
}
