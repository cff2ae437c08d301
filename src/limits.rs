//! Rate limits: requests and tokens per minute, per provider and per client key (governor).
//!
//! Limiters live outside the configuration snapshot, keyed by name *and* settings, so a
//! reload that leaves a provider's or key's `rpm`/`tpm` alone keeps its buckets, while a
//! changed limit starts a fresh bucket at once. Tokens are estimated before a call (prompt
//! size plus the requested output cap) and corrected by the real usage afterwards.
//!
//! Time comes from tokio's clock, so tests drive refills with a paused runtime clock.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foldhash::HashMap;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::LimitSettings;
use crate::openai::{ChatRequest, Usage};

/// A monotonic clock that follows tokio's (pausable) time.
#[derive(Clone, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// The buckets of one provider or key.
#[derive(Debug)]
pub struct Limiter {
    settings: LimitSettings,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    clock: TokioClock,
}

/// No room: which budget is exhausted and when there will be room again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhausted {
    /// `"requests"` or `"tokens"`, as in OpenAI's `x-ratelimit-*-requests` headers.
    pub budget: &'static str,
    /// The per-minute limit of that budget.
    pub limit: u32,
    /// How long until one more request (or the estimated tokens) fits.
    pub retry_after: Duration,
}

impl Limiter {
    fn new(settings: LimitSettings, clock: &TokioClock) -> Self {
        let bucket = |per_minute: NonZeroU32| {
            RateLimiter::direct_with_clock(Quota::per_minute(per_minute), clock.clone())
        };
        Self {
            settings,
            requests: settings.rpm.map(bucket),
            tokens: settings.tpm.map(bucket),
            clock: clock.clone(),
        }
    }

    /// Takes one request and `tokens` tokens, or says which budget has no room.
    ///
    /// The two buckets are checked one after the other, so a request refused for tokens has
    /// already used its request cell: the limiter errs towards sending less, never more.
    pub fn try_acquire(&self, tokens: u32) -> Result<(), Exhausted> {
        if let (Some(bucket), Some(limit)) = (&self.requests, self.settings.rpm) {
            bucket
                .check()
                .map_err(|not_until| self.exhausted("requests", limit, &not_until))?;
        }
        if let (Some(bucket), Some(limit), Some(n)) =
            (&self.tokens, self.settings.tpm, NonZeroU32::new(tokens))
        {
            // A request larger than a whole minute's budget waits for a full bucket.
            let n = n.min(limit);
            match bucket.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => return Err(self.exhausted("tokens", limit, &not_until)),
                Err(_) => {
                    return Err(Exhausted {
                        budget: "tokens",
                        limit: limit.get(),
                        retry_after: Duration::from_secs(60),
                    });
                }
            }
        }
        Ok(())
    }

    /// Charges tokens used beyond the estimate; refunds are not possible, so an over-estimate
    /// simply leaves the bucket a little emptier for the rest of the minute.
    pub fn charge(&self, extra_tokens: u32) {
        if let (Some(bucket), Some(n)) = (&self.tokens, NonZeroU32::new(extra_tokens)) {
            let n = self.settings.tpm.map_or(n, |limit| n.min(limit));
            let _ = bucket.check_n(n);
        }
    }

    /// The configured limits.
    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    fn exhausted(
        &self,
        budget: &'static str,
        limit: NonZeroU32,
        not_until: &governor::NotUntil<Nanos>,
    ) -> Exhausted {
        Exhausted {
            budget,
            limit: limit.get(),
            retry_after: not_until.wait_time_from(self.clock.now()),
        }
    }
}

/// Every limiter, kept across reloads.
#[derive(Debug, Default)]
pub struct Limits {
    clock: TokioClock,
    providers: Mutex<LimiterMap>,
    keys: Mutex<LimiterMap>,
}

/// Limiters by name, then by settings: looked up with a borrowed name, so the request path
/// allocates only when a limiter is first made.
type LimiterMap = HashMap<String, HashMap<LimitSettings, Arc<Limiter>>>;

impl Limits {
    /// The limiter of provider `name` with `settings`; `None` when it has no limits.
    pub fn provider(&self, name: &str, settings: LimitSettings) -> Option<Arc<Limiter>> {
        self.get(&self.providers, name, settings)
    }

    /// The limiter of client key `name` with `settings`; `None` when it has no limits.
    pub fn key(&self, name: &str, settings: LimitSettings) -> Option<Arc<Limiter>> {
        self.get(&self.keys, name, settings)
    }

    /// Keeps the provider and key limiters whose name and settings are still configured, so
    /// memory stays bounded by the configuration however often it changes.
    pub fn retain(
        &self,
        keep_provider: impl Fn(&str, LimitSettings) -> bool,
        keep_key: impl Fn(&str, LimitSettings) -> bool,
    ) {
        for (map, keep) in [
            (
                &self.providers,
                &keep_provider as &dyn Fn(&str, LimitSettings) -> bool,
            ),
            (&self.keys, &keep_key),
        ] {
            let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
            map.retain(|name, by_settings| {
                by_settings.retain(|settings, _| keep(name, *settings));
                !by_settings.is_empty()
            });
        }
    }

    fn get(
        &self,
        map: &Mutex<LimiterMap>,
        name: &str,
        settings: LimitSettings,
    ) -> Option<Arc<Limiter>> {
        if !settings.is_limited() {
            return None;
        }
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(limiter) = map.get(name).and_then(|by| by.get(&settings)) {
            return Some(limiter.clone());
        }
        let limiter = Arc::new(Limiter::new(settings, &self.clock));
        map.entry(name.to_owned())
            .or_default()
            .insert(settings, limiter.clone());
        Some(limiter)
    }
}

/// The token estimate of a request: its prompt (about four bytes a token) plus the output
/// cap it asked for.
pub fn estimate_tokens(chat: &ChatRequest<'_>) -> u32 {
    let prompt = chat.raw().len().div_ceil(4);
    let output = chat
        .body
        .max_completion_tokens
        .or(chat.body.max_tokens)
        .unwrap_or(0) as usize;
    u32::try_from(prompt + output).unwrap_or(u32::MAX)
}

/// Tokens taken on estimate, to be corrected once the real usage is known.
#[derive(Debug, Default)]
pub struct TokenSettlement {
    limiters: Vec<Arc<Limiter>>,
    estimated: u32,
}

impl TokenSettlement {
    /// A settlement for `estimated` tokens taken from `limiters`.
    pub fn new(limiters: Vec<Arc<Limiter>>, estimated: u32) -> Self {
        Self {
            limiters,
            estimated,
        }
    }

    /// Charges what the request used beyond the estimate.
    pub fn settle(self, usage: Option<Usage>) {
        let Some(usage) = usage else {
            return;
        };
        let used = u32::try_from(usage.total_tokens).unwrap_or(u32::MAX);
        let extra = used.saturating_sub(self.estimated);
        for limiter in &self.limiters {
            limiter.charge(extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rpm: Option<u32>, tpm: Option<u32>) -> LimitSettings {
        LimitSettings {
            rpm: rpm.and_then(NonZeroU32::new),
            tpm: tpm.and_then(NonZeroU32::new),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_refill_with_time() {
        let limits = Limits::default();
        let limiter = limits.provider("p", settings(Some(2), None)).unwrap();
        assert!(limiter.try_acquire(0).is_ok());
        assert!(limiter.try_acquire(0).is_ok());
        let refused = limiter.try_acquire(0).unwrap_err();
        assert_eq!(refused.budget, "requests");
        assert_eq!(refused.retry_after, Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(limiter.try_acquire(0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_minute_count_estimates_and_corrections() {
        let limits = Limits::default();
        let limiter = limits.key("k", settings(None, Some(1000))).unwrap();
        assert!(limiter.try_acquire(600).is_ok());
        limiter.charge(300);
        let refused = limiter.try_acquire(200).unwrap_err();
        assert_eq!(refused.budget, "tokens");
        // A request bigger than the whole budget still passes once the bucket is full.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(limiter.try_acquire(5000).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn unchanged_settings_share_a_bucket_and_changed_ones_start_fresh() {
        let limits = Limits::default();
        let first = limits.provider("p", settings(Some(1), None)).unwrap();
        assert!(first.try_acquire(0).is_ok());
        let same = limits.provider("p", settings(Some(1), None)).unwrap();
        assert!(same.try_acquire(0).is_err());
        let changed = limits.provider("p", settings(Some(5), None)).unwrap();
        assert!(changed.try_acquire(0).is_ok());
        assert!(limits.provider("p", settings(None, None)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn retain_drops_limiters_no_longer_configured() {
        let limits = Limits::default();
        let kept = limits.provider("p", settings(Some(1), None)).unwrap();
        assert!(kept.try_acquire(0).is_ok());
        let gone = limits.key("k", settings(Some(1), None)).unwrap();
        assert!(gone.try_acquire(0).is_ok());
        limits.retain(|name, _| name == "p", |_, _| false);
        let p = limits.provider("p", settings(Some(1), None)).unwrap();
        assert!(p.try_acquire(0).is_err(), "the kept bucket is the same");
        let k = limits.key("k", settings(Some(1), None)).unwrap();
        assert!(k.try_acquire(0).is_ok(), "a forgotten key starts afresh");
    }

    #[test]
    fn estimates_count_prompt_and_requested_output() {
        let raw = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#;
        let chat = ChatRequest::parse(raw).unwrap();
        assert_eq!(estimate_tokens(&chat) as usize, raw.len().div_ceil(4) + 100);
    }
}
