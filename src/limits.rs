//! Rate limits: requests and tokens per minute, per provider and per client key (governor).
//!
//! Limiters live outside the configuration snapshot, keyed by name *and* settings, so a
//! reload that leaves a provider's or key's `rpm`/`tpm` alone keeps its buckets, while a
//! changed limit starts a fresh bucket at once. Tokens are estimated before a call (prompt
//! size plus the requested output cap) and corrected by the real usage afterwards.
//!
//! Time comes from tokio's clock, so tests drive refills with a paused runtime clock.
//!
//! Every acquire also reads where the buckets stand afterwards ([`Standing`]), which a client
//! key's answers carry as OpenAI's `x-ratelimit-*` headers ([`headers`]).

pub mod headers;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foldhash::HashMap;
use governor::clock::Clock;
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
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

/// A bucket whose successful checks say what is left: governor builds that snapshot anyway.
type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, StateInformationMiddleware>;

/// The buckets of one provider or key.
#[derive(Debug)]
pub struct Limiter {
    settings: LimitSettings,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    clock: TokioClock,
}

/// Where one budget stands: what OpenAI's `x-ratelimit-{limit,remaining,reset}-*` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The per-minute limit.
    pub limit: u32,
    /// How many requests (or tokens) fit right now.
    pub remaining: u32,
    /// How long until the bucket is full again, if nothing more is taken.
    pub reset: Duration,
}

/// Where a limiter's budgets stand after a request; `None` for a budget it does not have
/// (or, on a refusal for requests, did not consult).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// Requests per minute.
    pub requests: Option<Budget>,
    /// Tokens per minute.
    pub tokens: Option<Budget>,
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
    /// Where the budgets stand, the exhausted one at zero.
    pub standing: Standing,
}

impl Limiter {
    fn new(settings: LimitSettings, clock: &TokioClock) -> Self {
        let bucket = |per_minute: NonZeroU32| {
            RateLimiter::direct_with_clock(Quota::per_minute(per_minute), clock.clone())
                .with_middleware::<StateInformationMiddleware>()
        };
        Self {
            settings,
            requests: settings.rpm.map(bucket),
            tokens: settings.tpm.map(bucket),
            clock: clock.clone(),
        }
    }

    /// Takes one request and `tokens` tokens and says what is left, or says which budget has
    /// no room.
    ///
    /// The two buckets are checked one after the other, so a request refused for tokens has
    /// already used its request cell: the limiter errs towards sending less, never more.
    pub fn try_acquire(&self, tokens: u32) -> Result<Standing, Exhausted> {
        let mut standing = Standing::default();
        if let (Some(bucket), Some(limit)) = (&self.requests, self.settings.rpm) {
            match bucket.check() {
                Ok(snapshot) => standing.requests = Some(left(&snapshot, limit)),
                Err(not_until) => {
                    let (retry_after, zero) = self.refusal(limit, ONE, &not_until);
                    standing.requests = Some(zero);
                    return Err(Exhausted {
                        budget: "requests",
                        limit: limit.get(),
                        retry_after,
                        standing,
                    });
                }
            }
        }
        // Every request counts at least one token, so its answer can say where tokens stand.
        if let (Some(bucket), Some(limit)) = (&self.tokens, self.settings.tpm) {
            // A request larger than a whole minute's budget waits for a full bucket.
            let n = NonZeroU32::new(tokens).unwrap_or(ONE).min(limit);
            match bucket.check_n(n) {
                Ok(Ok(snapshot)) => standing.tokens = Some(left(&snapshot, limit)),
                Ok(Err(not_until)) => {
                    let (retry_after, zero) = self.refusal(limit, n, &not_until);
                    standing.tokens = Some(zero);
                    return Err(Exhausted {
                        budget: "tokens",
                        limit: limit.get(),
                        retry_after,
                        standing,
                    });
                }
                Err(_) => {
                    standing.tokens = Some(Budget {
                        limit: limit.get(),
                        remaining: 0,
                        reset: FULL_REFILL,
                    });
                    return Err(Exhausted {
                        budget: "tokens",
                        limit: limit.get(),
                        retry_after: FULL_REFILL,
                        standing,
                    });
                }
            }
        }
        Ok(standing)
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

    /// How long until `n` refused cells fit, and the budget at zero.
    fn refusal(
        &self,
        limit: NonZeroU32,
        n: NonZeroU32,
        not_until: &governor::NotUntil<Nanos>,
    ) -> (Duration, Budget) {
        let retry_after = not_until.wait_time_from(self.clock.now());
        // The `n` cells fit once the bucket is `n` short of full, so it is full that many
        // refill intervals later still.
        let interval = not_until.quota().replenish_interval();
        let zero = Budget {
            limit: limit.get(),
            remaining: 0,
            reset: retry_after + interval * (limit.get() - n.get()),
        };
        (retry_after, zero)
    }
}

const ONE: NonZeroU32 = NonZeroU32::MIN;

/// How long an empty per-minute bucket takes to fill.
const FULL_REFILL: Duration = Duration::from_secs(60);

/// A budget after a successful check. Governor says how many whole cells fit but not how far
/// into the next one the bucket is, so the reset is counted in whole refill intervals: at
/// most one interval late, never early, and exact right after a full bucket is used.
fn left(snapshot: &StateSnapshot, limit: NonZeroU32) -> Budget {
    let remaining = snapshot.remaining_burst_capacity().min(limit.get());
    let interval = snapshot.quota().replenish_interval();
    Budget {
        limit: limit.get(),
        remaining,
        reset: interval * (limit.get() - remaining),
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

    fn budget(limit: u32, remaining: u32, reset_millis: u64) -> Option<Budget> {
        Some(Budget {
            limit,
            remaining,
            reset: Duration::from_millis(reset_millis),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn each_acquire_says_what_is_left_and_when_the_bucket_is_full() {
        let limits = Limits::default();
        let limiter = limits.key("k", settings(Some(3), Some(1000))).unwrap();
        // Three requests a minute refill one per 20 s; 1000 tokens one per 60 ms.
        let first = limiter.try_acquire(100).unwrap();
        assert_eq!(first.requests, budget(3, 2, 20_000));
        assert_eq!(first.tokens, budget(1000, 900, 6_000));
        let second = limiter.try_acquire(100).unwrap();
        assert_eq!(second.requests, budget(3, 1, 40_000));
        assert_eq!(second.tokens, budget(1000, 800, 12_000));
        assert_eq!(
            limiter.try_acquire(100).unwrap().requests,
            budget(3, 0, 60_000)
        );

        let refused = limiter.try_acquire(100).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(refused.standing.requests, budget(3, 0, 60_000));
        assert_eq!(refused.standing.tokens, None, "not consulted");
        tokio::time::advance(Duration::from_secs(10)).await;
        let refused = limiter.try_acquire(100).unwrap_err();
        assert_eq!(refused.standing.requests, budget(3, 0, 50_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_for_tokens_says_where_both_budgets_stand() {
        let limits = Limits::default();
        let limiter = limits.key("k", settings(Some(10), Some(1000))).unwrap();
        assert!(limiter.try_acquire(900).is_ok());
        let refused = limiter.try_acquire(200).unwrap_err();
        assert_eq!(refused.budget, "tokens");
        // 200 tokens fit once 100 more are back (6 s); the bucket is full 54 s from now.
        assert_eq!(refused.retry_after, Duration::from_secs(6));
        assert_eq!(refused.standing.tokens, budget(1000, 0, 54_000));
        assert_eq!(refused.standing.requests, budget(10, 8, 12_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_part_way_through_an_interval_is_rounded_up_to_the_interval() {
        let limits = Limits::default();
        let limiter = limits.key("k", settings(Some(3), None)).unwrap();
        assert!(limiter.try_acquire(0).is_ok());
        tokio::time::advance(Duration::from_secs(10)).await;
        // Full again in 30 s; governor tells whole cells only, so the answer says 40 s.
        let standing = limiter.try_acquire(0).unwrap();
        assert_eq!(standing.requests, budget(3, 1, 40_000));
        assert_eq!(standing.tokens, None);
    }

    #[test]
    fn estimates_count_prompt_and_requested_output() {
        let raw = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#;
        let chat = ChatRequest::parse(raw).unwrap();
        assert_eq!(estimate_tokens(&chat) as usize, raw.len().div_ceil(4) + 100);
    }
}
