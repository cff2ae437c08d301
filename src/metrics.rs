//! Prometheus metrics: every collector registered in one place, names prefixed `switchboard_`.
//!
//! Label values come only from the configuration (provider, route and key names) or from
//! fixed enumerations ([`FailureKind::as_str`], [`Scope`]), never from what a client sends,
//! so the number of series stays bounded.

use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::config::Snapshot;
use crate::error::FailureKind;
use crate::router::health::Health;

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
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    upstream_attempts: IntCounterVec,
    failovers: IntCounterVec,
    rate_limited: IntCounterVec,
    provider_cooldown: GaugeVec,
    config_reloads: IntCounterVec,
}

impl Metrics {
    /// Registers every collector.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("switchboard".to_owned()), None)?;
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(counter.clone()))?;
                Ok(counter)
            };
        let upstream_attempts = counter(
            "upstream_attempts_total",
            "Upstream attempts by provider and outcome.",
            &["provider", "outcome"],
        )?;
        let failovers = counter(
            "failovers_total",
            "Times a route moved on from a provider, by the reason.",
            &["route", "from_provider", "reason"],
        )?;
        let rate_limited = counter(
            "rate_limited_total",
            "Requests or attempts refused by the router's own rate limits.",
            &["scope", "name"],
        )?;
        let provider_cooldown = GaugeVec::new(
            Opts::new(
                "provider_cooldown_seconds",
                "Seconds until a provider is usable again (0 when it is).",
            ),
            &["provider"],
        )?;
        registry.register(Box::new(provider_cooldown.clone()))?;
        let config_reloads = counter(
            "config_reloads_total",
            "Configuration reloads by result: ok (the file is running) or error (it was refused).",
            &["result"],
        )?;
        // Both series exist from the start, so an alert on `error` needs no `absent()`.
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        Ok(Self {
            registry,
            upstream_attempts,
            failovers,
            rate_limited,
            provider_cooldown,
            config_reloads,
        })
    }

    /// Counts one upstream attempt; `outcome` is `None` for success.
    pub fn attempt(&self, provider: &str, outcome: Option<FailureKind>) {
        let outcome = outcome.map_or("ok", FailureKind::as_str);
        self.upstream_attempts
            .with_label_values(&[provider, outcome])
            .inc();
    }

    /// Counts a move from one provider to the route's next target.
    pub fn failover(&self, route: &str, from_provider: &str, reason: FailureKind) {
        self.failovers
            .with_label_values(&[route, from_provider, reason.as_str()])
            .inc();
    }

    /// Counts a refusal by the router's own limits.
    pub fn rate_limited(&self, scope: Scope, name: &str) {
        self.rate_limited
            .with_label_values(&[scope.as_str(), name])
            .inc();
    }

    /// Counts one reload, applied (`ok`) or refused.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads.with_label_values(&[result]).inc();
    }

    /// Drops the gauges of a provider that is no longer configured. Its counters stay: they
    /// are totals, and removing them would read as a reset to `rate()`.
    pub fn forget_provider(&self, name: &str) {
        // Absent when it was never scraped; nothing to remove then.
        let _ = self.provider_cooldown.remove_label_values(&[name]);
    }

    /// The text exposition, with cooldown gauges read at scrape time.
    pub fn render(&self, snapshot: &Snapshot, health: &Health) -> Vec<u8> {
        for name in snapshot.providers.keys() {
            self.provider_cooldown
                .with_label_values(&[name])
                .set(health.cooldown_left(name).as_secs_f64());
        }
        let mut out = Vec::new();
        // Encoding into a Vec only fails on malformed metric families, which registration
        // already rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
