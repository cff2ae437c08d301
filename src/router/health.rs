//! Per-provider circuit breakers: cooldowns after failures, and one probe when they end.
//!
//! A failed attempt opens the provider's breaker for the time the provider asked for
//! (`Retry-After` and friends), else `default_cooldown` doubled on each consecutive failure up
//! to `max_cooldown`; billing and credential failures take `account_cooldown`. While open, the
//! provider is skipped without a network call. When the cooldown ends, exactly one request
//! goes through (half-open): success closes the breaker, failure opens it again for longer.
//!
//! Breakers are keyed by provider name, and by `provider/model` for limits the upstream says
//! are per model. State lives outside the config snapshot, so it survives reloads. Locks are
//! held only for a few field updates, never across an await.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use foldhash::HashMap;
use tokio::time::Instant;

use crate::config::RoutingSettings;
use crate::error::{FailureKind, UpstreamFailure};

/// Why a provider is not being asked right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cooling {
    /// When it may be asked again.
    pub until: Instant,
    /// The failure that opened the breaker.
    pub reason: FailureKind,
}

#[derive(Debug, Default)]
struct Breaker {
    open_until: Option<Instant>,
    reason: Option<FailureKind>,
    consecutive_failures: u32,
    probe_in_flight: bool,
    /// Bumped each time the breaker opens, so answers to requests sent before that cannot
    /// close or shorten it.
    generation: u64,
}

/// All providers' breakers.
#[derive(Debug, Default)]
pub struct Health {
    breakers: Mutex<HashMap<String, Breaker>>,
}

/// Permission to send one attempt. A probe that is dropped unsettled (the client went away)
/// lets the next request probe instead.
#[derive(Debug)]
pub struct Ticket<'h> {
    health: &'h Health,
    provider: &'h str,
    probe: bool,
    /// The breaker's generation when the attempt was admitted (`None`: it was closed).
    generation: Option<u64>,
}

/// Admission of one target: its provider's breaker and its own `provider/model` breaker.
#[derive(Debug)]
pub struct TargetTicket<'h> {
    provider: Ticket<'h>,
    model: Ticket<'h>,
}

impl TargetTicket<'_> {
    /// The target answered: both breakers may close.
    pub fn succeeded(self) {
        self.provider.succeeded();
        self.model.succeeded();
    }

    /// The attempt failed: a per-model limit opens only the model's breaker, anything else the
    /// provider's. The ticket left unsettled releases its probe, if it held one.
    pub fn failed(self, failure: &UpstreamFailure, settings: &RoutingSettings) -> Duration {
        if failure.kind == FailureKind::Rejected {
            self.model.failed(failure, settings);
            return self.provider.failed(failure, settings);
        }
        if failure.per_model {
            self.model.failed(failure, settings)
        } else {
            self.provider.failed(failure, settings)
        }
    }
}

/// How long a half-open provider is reported busy while its probe is in flight.
const PROBE_BUSY: Duration = Duration::from_secs(1);

impl Health {
    /// Asks whether `provider` may be tried now.
    pub fn admit<'h>(&'h self, provider: &'h str) -> Result<Ticket<'h>, Cooling> {
        let now = Instant::now();
        let mut breakers = self.lock();
        let mut ticket = Ticket {
            health: self,
            provider,
            probe: false,
            generation: None,
        };
        let Some(breaker) = breakers.get_mut(provider) else {
            return Ok(ticket);
        };
        let (Some(until), Some(reason)) = (breaker.open_until, breaker.reason) else {
            return Ok(ticket);
        };
        if until > now {
            return Err(Cooling { until, reason });
        }
        if breaker.probe_in_flight {
            return Err(Cooling {
                until: now + PROBE_BUSY,
                reason,
            });
        }
        breaker.probe_in_flight = true;
        ticket.probe = true;
        ticket.generation = Some(breaker.generation);
        Ok(ticket)
    }

    /// Asks whether the target `label` (`provider/model`) of `provider` may be tried now.
    pub fn admit_target<'h>(
        &'h self,
        provider: &'h str,
        label: &'h str,
    ) -> Result<TargetTicket<'h>, Cooling> {
        let provider = self.admit(provider)?;
        let model = self.admit(label)?;
        Ok(TargetTicket { provider, model })
    }

    /// Time until `provider`'s own breaker closes (0 when it is closed). Its per-model
    /// breakers are not looked at: see [`Self::provider_cooldown_left`].
    pub fn cooldown_left(&self, provider: &str) -> Duration {
        let now = Instant::now();
        left(self.lock().get(provider), now)
    }

    /// The longest cooldown among `provider`'s own breaker and its per-model ones: 0 only when
    /// none of its targets is being avoided, so a cooled model never hides behind a provider
    /// that reads healthy.
    pub fn provider_cooldown_left(&self, provider: &str) -> Duration {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(key, _)| provider_of(key) == provider)
            .map(|(_, breaker)| left(Some(breaker), now))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Time until the target `label` (`provider/model`) of `provider` may be tried again: the
    /// longer of its provider's cooldown and its own (0 when it is usable).
    pub fn target_cooldown_left(&self, provider: &str, label: &str) -> Duration {
        let now = Instant::now();
        let breakers = self.lock();
        left(breakers.get(provider), now).max(left(breakers.get(label), now))
    }

    /// Forgets `provider`'s breaker: it is usable at once (a reload pointed it elsewhere).
    pub fn reset(&self, provider: &str) {
        self.lock().retain(|key, _| provider_of(key) != provider);
    }

    /// Keeps only the breakers of providers for which `keep` is true (the configured ones),
    /// their per-model breakers included.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|key, _| keep(provider_of(key)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Time until `breaker` closes, seen at `now` (0 when there is none or it is closed).
fn left(breaker: Option<&Breaker>, now: Instant) -> Duration {
    breaker
        .and_then(|b| b.open_until)
        .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
}

/// The provider a breaker key belongs to: keys are `provider` or `provider/model`.
fn provider_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(provider, _)| provider)
}

impl Ticket<'_> {
    /// The provider answered. A probe closes the breaker; so does any answer when the breaker
    /// has not opened since this attempt was admitted. A late answer to a request sent before
    /// a newer failure leaves that failure's cooldown alone.
    pub fn succeeded(mut self) {
        self.settle_answered();
    }

    /// The attempt failed. A client mistake says nothing bad about the provider (it answered);
    /// anything else opens the breaker, never for less than it is already open. Returns the
    /// time until the provider is usable again.
    pub fn failed(mut self, failure: &UpstreamFailure, settings: &RoutingSettings) -> Duration {
        if failure.kind == FailureKind::Rejected {
            self.settle_answered();
            return Duration::ZERO;
        }
        self.probe = false;
        let now = Instant::now();
        let mut breakers = self.health.lock();
        let breaker = breakers.entry(self.provider.to_owned()).or_default();
        breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
        let until = now + cooldown_for(failure, breaker.consecutive_failures, settings);
        if breaker.open_until.is_none_or(|open| open < until) {
            breaker.open_until = Some(until);
            breaker.reason = Some(failure.kind);
            breaker.generation = breaker.generation.wrapping_add(1);
        }
        breaker.probe_in_flight = false;
        breaker
            .open_until
            .map_or(Duration::ZERO, |open| open.saturating_duration_since(now))
    }

    fn settle_answered(&mut self) {
        let mut breakers = self.health.lock();
        let unchanged = breakers
            .get(self.provider)
            .is_some_and(|b| self.probe || Some(b.generation) == self.generation);
        if unchanged {
            breakers.remove(self.provider);
        }
        self.probe = false;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe
            && let Some(breaker) = self.health.lock().get_mut(self.provider)
        {
            breaker.probe_in_flight = false;
        }
    }
}

/// The cooldown for the n-th consecutive failure.
fn cooldown_for(
    failure: &UpstreamFailure,
    consecutive: u32,
    settings: &RoutingSettings,
) -> Duration {
    if failure.kind == FailureKind::Account {
        return settings.account_cooldown;
    }
    if let Some(asked) = failure.retry_after {
        return asked.min(settings.max_cooldown);
    }
    let doublings = consecutive.saturating_sub(1).min(16);
    settings
        .default_cooldown
        .saturating_mul(1 << doublings)
        .min(settings.max_cooldown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RoutingSettings {
        RoutingSettings {
            max_attempts: 3,
            default_cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(60),
            account_cooldown: Duration::from_secs(600),
            attempt_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(60),
        }
    }

    fn failure(kind: FailureKind, retry_after: Option<u64>) -> UpstreamFailure {
        let mut failure = UpstreamFailure::new(kind, "x");
        failure.retry_after = retry_after.map(Duration::from_secs);
        failure
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_sets_the_cooldown_and_expiry_admits_one_probe() {
        let health = Health::default();
        let given = health
            .admit("p")
            .unwrap()
            .failed(&failure(FailureKind::RateLimited, Some(5)), &settings());
        assert_eq!(given, Duration::from_secs(5));
        let cooling = health.admit("p").unwrap_err();
        assert_eq!(cooling.reason, FailureKind::RateLimited);
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = health.admit("p").unwrap();
        assert!(health.admit("p").is_err(), "only one probe at a time");
        probe.succeeded();
        assert!(health.admit("p").is_ok());
        assert!(health.admit("p").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_back_off_exponentially_up_to_the_cap() {
        let health = Health::default();
        let mut given = Vec::new();
        for _ in 0..5 {
            let ticket = health.admit("p").unwrap();
            given.push(ticket.failed(&failure(FailureKind::Unavailable, None), &settings()));
            tokio::time::advance(Duration::from_secs(120)).await;
        }
        let secs: Vec<u64> = given.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![10, 20, 40, 60, 60]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_a_dropped_probe_frees_the_slot() {
        let health = Health::default();
        health
            .admit("p")
            .unwrap()
            .failed(&failure(FailureKind::Timeout, None), &settings());
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(health.admit("p").unwrap());
        let probe = health.admit("p").unwrap();
        probe.failed(&failure(FailureKind::Timeout, None), &settings());
        assert_eq!(health.cooldown_left("p"), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn account_failures_take_the_long_cooldown_and_client_errors_none() {
        let health = Health::default();
        let given = health
            .admit("p")
            .unwrap()
            .failed(&failure(FailureKind::Account, Some(1)), &settings());
        assert_eq!(given, Duration::from_secs(600));
        let other = health
            .admit("q")
            .unwrap()
            .failed(&failure(FailureKind::Rejected, None), &settings());
        assert_eq!(other, Duration::ZERO);
        assert!(health.admit("q").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_neither_close_nor_shorten_a_newer_cooldown() {
        let health = Health::default();
        let early = health.admit("p").unwrap();
        let late_failure = health.admit("p").unwrap();
        let late_error = health.admit("p").unwrap();
        health
            .admit("p")
            .unwrap()
            .failed(&failure(FailureKind::RateLimited, Some(30)), &settings());
        early.succeeded();
        late_error.failed(&failure(FailureKind::Rejected, None), &settings());
        late_failure.failed(&failure(FailureKind::Unavailable, None), &settings());
        assert_eq!(health.cooldown_left("p"), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn per_model_limits_cool_only_the_model() {
        let health = Health::default();
        let mut limit = failure(FailureKind::RateLimited, Some(20));
        limit.per_model = true;
        health
            .admit_target("p", "p/a")
            .unwrap()
            .failed(&limit, &settings());
        assert!(health.admit_target("p", "p/a").is_err());
        assert!(
            health.admit_target("p", "p/b").is_ok(),
            "other models still answer"
        );
        health
            .admit_target("p", "p/b")
            .unwrap()
            .failed(&failure(FailureKind::Unavailable, None), &settings());
        assert!(
            health.admit_target("p", "p/c").is_err(),
            "a provider failure cools all"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cooled_model_shows_in_its_target_and_provider_cooldowns_only() {
        let health = Health::default();
        let mut limit = failure(FailureKind::RateLimited, Some(20));
        limit.per_model = true;
        health
            .admit_target("p", "p/a")
            .unwrap()
            .failed(&limit, &settings());
        let secs = Duration::from_secs;
        assert_eq!(
            health.cooldown_left("p"),
            Duration::ZERO,
            "own breaker closed"
        );
        assert_eq!(health.provider_cooldown_left("p"), secs(20));
        assert_eq!(health.target_cooldown_left("p", "p/a"), secs(20));
        assert_eq!(health.target_cooldown_left("p", "p/b"), Duration::ZERO);
        assert_eq!(health.provider_cooldown_left("q"), Duration::ZERO);

        tokio::time::advance(secs(5)).await;
        health
            .admit("p")
            .unwrap()
            .failed(&failure(FailureKind::Unavailable, None), &settings());
        assert_eq!(health.provider_cooldown_left("p"), secs(15), "the longest");
        assert_eq!(
            health.target_cooldown_left("p", "p/b"),
            secs(10),
            "a provider cooldown holds every target"
        );
        assert_eq!(health.target_cooldown_left("p", "p/a"), secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_and_retain_forget_breakers() {
        let health = Health::default();
        for name in ["p", "q", "r", "p/m", "q/m", "r/m"] {
            health
                .admit(name)
                .unwrap()
                .failed(&failure(FailureKind::Unavailable, None), &settings());
        }
        health.reset("p");
        health.retain(|name| name != "q");
        for gone in ["p", "p/m", "q", "q/m"] {
            assert!(health.admit(gone).is_ok(), "{gone} forgotten");
        }
        assert!(health.admit("r").is_err(), "kept");
        assert!(health.admit("r/m").is_err(), "kept");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_capped() {
        let health = Health::default();
        let given = health
            .admit("p")
            .unwrap()
            .failed(&failure(FailureKind::RateLimited, Some(3600)), &settings());
        assert_eq!(given, Duration::from_secs(60));
    }
}
