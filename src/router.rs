//! From a client's `model` to an upstream answer: resolve the route, try its targets in order
//! under the request's budgets, fail over when a provider cannot answer, and say precisely why
//! when none can.
//!
//! Everything routing keeps between requests is one [`Router`] value, owned by the app state:
//! the upstream client, the providers' breakers ([`health`]), the rate limiters
//! ([`crate::limits`]), the weighted routes' round-robin state and the A2M quotes (routed in
//! `router/a2m.rs`).
//! A reload hands it the new snapshot ([`Router::follow`]) so what belongs to gone providers,
//! keys and routes is dropped.
//!
//! Each target is skipped without a network call when its provider is disabled, cooling down
//! ([`health`]) or out of rate-limit room ([`crate::limits`]). At most `max_attempts` upstream
//! attempts are made, each bounded by `attempt_timeout` (for streams: until the first content),
//! the whole request by `request_timeout`. A wrong request (the provider's 400/413/422) is
//! returned at once; everything else fails over. A target whose adapter cannot honour a field
//! of the request is passed over for one that can; when none can, the client gets that 400.

mod a2m;
mod attempt;
mod balance;
pub mod health;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use self::attempt::Deadlines;
use self::balance::Balancer;
use self::health::{Health, TargetTicket};
use crate::config::{MAX_MODEL_NAME, OnPaymentRequired, Route, Snapshot, Target};
use crate::endpoint::Endpoint;
use crate::error::{ApiError, AttemptReport, FailureKind, UpstreamFailure};
use crate::headers::IDEMPOTENCY_KEY;
use crate::limits::{Limiter, Limits, TokenSettlement};
use crate::metrics::{Metrics, Scope};
use crate::openai::ChatRequest;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::payment::{QuoteKey, QuoteMemory, RecentQuotes};
use crate::providers::{StreamTranslator, Translated, UpstreamRequest, adapter_for, embedder_for};
use crate::stream::PrimedStream;
use crate::upstream::Upstream;
use crate::usage_log::Attempt;

/// The longest `Retry-After` passed on: the OpenAI SDK ignores longer ones anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// What routing keeps between requests, kept across reloads.
pub struct Router {
    /// The shared upstream client.
    upstream: Upstream,
    /// Provider (and `provider/model`) circuit breakers.
    health: Health,
    /// Provider and key rate limiters.
    limits: Limits,
    /// Weighted routes' round-robin state.
    balancer: Balancer,
    /// Recent price quotes, to route and charge paid retries.
    quotes: Arc<dyn QuoteMemory>,
    /// Where attempts, failovers, quotes and refusals are counted.
    metrics: Arc<Metrics>,
}

impl Router {
    /// A router sending through `upstream` and counting in `metrics`, with no history.
    pub fn new(upstream: Upstream, metrics: Arc<Metrics>) -> Self {
        Self {
            upstream,
            health: Health::default(),
            limits: Limits::default(),
            balancer: Balancer::default(),
            quotes: Arc::new(RecentQuotes::default()),
            metrics,
        }
    }

    /// The providers' breakers, for the metrics page.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The limiter of client key `name`, when the snapshot gives it limits.
    pub fn key_limiter(&self, snapshot: &Snapshot, name: &str) -> Option<Arc<Limiter>> {
        let key = snapshot.keys.iter().find(|k| &*k.name == name)?;
        self.limits.key(name, key.limits)
    }

    /// `new` replaced `old`: keeps what belongs to unchanged providers, keys and routes and
    /// forgets the rest.
    ///
    /// Cooldowns are keyed by provider name. A provider that keeps its name but now has another
    /// kind, base URL or key is another upstream: its cooldown would only keep a healthy
    /// upstream out of service, so it starts afresh. Rate-limit buckets are keyed by name and
    /// settings, so only the entries whose settings are still configured are kept; a changed
    /// `rpm` or `tpm` gets a fresh bucket with its next request. Requests still running on the
    /// old snapshot keep their own handles, so dropping an entry never disturbs them.
    pub fn follow(&self, old: &Snapshot, new: &Snapshot) {
        for (name, before) in &old.providers {
            if new
                .providers
                .get(name)
                .is_some_and(|after| !before.same_upstream(after))
            {
                self.health.reset(name);
            }
        }
        self.health.retain(|name| new.providers.contains_key(name));
        self.limits.retain(
            |name, settings| {
                new.providers
                    .get(name)
                    .is_some_and(|provider| provider.limits == settings)
            },
            |name, settings| {
                new.keys
                    .iter()
                    .any(|key| &*key.name == name && key.limits == settings)
            },
        );
        self.balancer.retain(|route| new.routes.contains_key(route));
    }
}

/// A request the router can route, whatever endpoint it came through: what it asks of each
/// target, and how an answer is read. Routing, failover, limits and breakers are the same for
/// every kind.
pub trait Job: Sync {
    /// The `model` the client asked for.
    fn model(&self) -> &str;

    /// The endpoint it came through; a route serves chat or embeddings, never both.
    fn endpoint(&self) -> Endpoint;

    /// One attempt's request against `target`; an `Err` passes the target over (another
    /// target of the route may honour the request).
    fn request(&self, target: &Target) -> Result<UpstreamRequest, ApiError>;

    /// A translator for a stream answer; `None` when the answer is one body.
    fn stream(&self, target: &Target) -> Option<Box<dyn StreamTranslator>>;

    /// Turns a complete 2xx body into the client's answer.
    fn response(&self, target: &Target, body: Bytes) -> Result<Translated, UpstreamFailure>;
}

impl Job for ChatRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Chat
    }

    fn request(&self, target: &Target) -> Result<UpstreamRequest, ApiError> {
        adapter_for(target.provider.kind).request(self, target)
    }

    fn stream(&self, target: &Target) -> Option<Box<dyn StreamTranslator>> {
        self.is_stream()
            .then(|| adapter_for(target.provider.kind).stream(self, target))
    }

    fn response(&self, target: &Target, body: Bytes) -> Result<Translated, UpstreamFailure> {
        adapter_for(target.provider.kind).response(self, target, body)
    }
}

impl Job for EmbeddingsRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Embeddings
    }

    fn request(&self, target: &Target) -> Result<UpstreamRequest, ApiError> {
        let kind = target.provider.kind;
        // The configuration keeps such targets out of embeddings routes; this is the answer
        // should one get through anyway.
        let embedder = embedder_for(kind).ok_or_else(|| {
            ApiError::bad_request(
                format!(
                    "Provider '{}' (kind {}) has no embeddings API.",
                    target.provider.name,
                    kind.as_str()
                ),
                Some("model".into()),
            )
        })?;
        embedder.request(self, target)
    }

    fn stream(&self, _target: &Target) -> Option<Box<dyn StreamTranslator>> {
        None
    }

    fn response(&self, target: &Target, body: Bytes) -> Result<Translated, UpstreamFailure> {
        match embedder_for(target.provider.kind) {
            Some(embedder) => embedder.response(self, target, body),
            None => Err(UpstreamFailure::new(
                FailureKind::Unavailable,
                "the provider has no embeddings API",
            )),
        }
    }
}

/// What the client's request brings to routing besides its body.
#[derive(Debug)]
pub struct Call {
    /// When the whole request must be over.
    pub deadline: Instant,
    /// The client's `Idempotency-Key`, passed to every attempt.
    pub idempotency_key: Option<HeaderValue>,
    /// The client's `Payment-Proof`: the request was paid for one seller.
    pub payment_proof: Option<HeaderValue>,
    /// The `provider/model` of `x-switchboard-target`, pinning a paid retry.
    pub pinned: Option<String>,
    /// The calling key's name, which with the body identifies a quoted request.
    pub client_key: Arc<str>,
    /// The calling key's limiter, settled with the provider's once usage is known.
    pub key_limiter: Option<Arc<Limiter>>,
    /// The request's token estimate, taken from every limiter.
    pub estimated_tokens: u32,
    /// The request body as the client sent it.
    pub body: Bytes,
}

impl Call {
    /// The key a quote for this request is remembered under. Hashing the body is left to
    /// the rare requests that meet a quote or carry a payment.
    fn quote_key(&self) -> QuoteKey {
        QuoteKey::new(&self.client_key, &self.body)
    }

    /// The settlement of the tokens taken on estimate from the provider's limiter (if it has
    /// one) and the key's.
    fn settlement(&self, provider: Option<Arc<Limiter>>) -> TokenSettlement {
        let limiters = provider.into_iter().chain(self.key_limiter.clone());
        TokenSettlement::new(limiters.collect(), self.estimated_tokens)
    }
}

/// What routing one request came to, and the attempts it took on the way.
pub struct Routed {
    /// The first good answer, or why there is none.
    pub outcome: Result<Served, ApiError>,
    /// Each upstream attempt's target and outcome, in order, whatever the result.
    pub attempt_log: Vec<Attempt>,
}

/// A successful attempt.
pub struct Served {
    /// The target that answered.
    pub target: Target,
    /// Upstream attempts made, this one included.
    pub attempts: u32,
    /// The provider's response headers (filtered by the caller before any reach the client).
    pub headers: HeaderMap,
    /// The answer itself.
    pub answer: Answer,
    /// The tokens taken on estimate, to correct once usage is known.
    pub settlement: TokenSettlement,
    /// Time spent waiting on providers, every attempt included: until response headers,
    /// reading a complete body, reading a stream to its commit point. What the request took
    /// beyond this is the router's own overhead.
    pub upstream_wait: Duration,
}

/// What a successful attempt produced.
pub enum Answer {
    /// A complete, translated response.
    Complete(Translated),
    /// A stream past its commit point; the rest is translated as it comes.
    Stream(PrimedStream),
}

/// The running account of a request's targets: what was tried, skipped, and why.
#[derive(Default)]
struct Tally {
    attempts: u32,
    reports: Vec<AttemptReport>,
    all_rate_limited: bool,
    all_account: bool,
    retry_at: Option<Instant>,
    noted: usize,
    /// Each upstream attempt's target and outcome, for the request's record.
    log: Vec<Attempt>,
}

impl Tally {
    fn new() -> Self {
        Self {
            all_rate_limited: true,
            all_account: true,
            ..Self::default()
        }
    }

    /// Logs an upstream attempt of `target` and how it ended (`None`: it answered).
    fn logged(&mut self, target: &Target, failure: Option<FailureKind>) {
        self.log.push(Attempt {
            target: target.label.clone(),
            outcome: failure.map_or("ok", FailureKind::as_str),
        });
    }

    /// Records a target that did not answer, and when it may again.
    fn note(
        &mut self,
        target: &Target,
        kind: Option<FailureKind>,
        usable_at: Option<Instant>,
        what: String,
    ) {
        self.noted += 1;
        self.all_rate_limited &= kind == Some(FailureKind::RateLimited);
        self.all_account &= kind == Some(FailureKind::Account);
        if let Some(at) = usable_at {
            self.retry_at = Some(self.retry_at.map_or(at, |earliest| earliest.min(at)));
        }
        self.reports.push(AttemptReport {
            target: target.label.to_string(),
            outcome: what,
        });
    }

    /// Records a target passed over; `skip` says why.
    fn skipped(&mut self, target: &Target, skip: Skip) {
        self.note(target, skip.kind, skip.usable_at, skip.what);
    }

    /// Records a target left untried; it says nothing about why the others failed.
    fn untried(&mut self, target: &Target, what: &str) {
        self.reports.push(AttemptReport {
            target: target.label.to_string(),
            outcome: what.to_owned(),
        });
    }

    /// The client's error when no target answered; the reports go into it.
    fn give_up(&mut self) -> ApiError {
        let retry_after = self.retry_at.map(|at| {
            at.saturating_duration_since(Instant::now())
                .min(MAX_RETRY_AFTER)
        });
        let tried = self.noted > 0;
        ApiError::AllTargetsFailed {
            all_rate_limited: tried && self.all_rate_limited,
            all_account: tried && self.all_account,
            retry_after,
            attempts: std::mem::take(&mut self.reports),
        }
    }
}

/// Why a target was passed over without an attempt.
struct Skip {
    kind: Option<FailureKind>,
    usable_at: Option<Instant>,
    what: String,
}

impl Router {
    /// Routes one request: the first good answer, or why there is none, with the log of the
    /// upstream attempts made either way.
    pub async fn route<J: Job>(&self, snapshot: &Snapshot, job: &J, call: &Call) -> Routed {
        let mut tally = Tally::new();
        let outcome = self.route_tallied(snapshot, job, call, &mut tally).await;
        Routed {
            outcome,
            attempt_log: tally.log,
        }
    }

    /// [`Router::route`], its attempts counted in `tally`.
    async fn route_tallied<J: Job>(
        &self,
        snapshot: &Snapshot,
        job: &J,
        call: &Call,
        tally: &mut Tally,
    ) -> Result<Served, ApiError> {
        let model = job.model();
        let route = snapshot
            .route(model)
            .ok_or_else(|| ApiError::ModelNotFound(model.to_owned()))?;
        serves(route, job.endpoint())?;
        let served_by_wildcard;
        let route = if route.is_wildcard() {
            served_by_wildcard = route.serving(model).ok_or_else(|| {
                ApiError::bad_request(
                    format!(
                        "'model' must name a model after the provider: 1 to {MAX_MODEL_NAME} \
                         bytes with no whitespace or control characters."
                    ),
                    Some("model".into()),
                )
            })?;
            &served_by_wildcard
        } else {
            route
        };
        if call.payment_proof.is_some() {
            return self.route_paid(snapshot, route, job, call, tally).await;
        }
        let mut refusal_if_none: Option<ApiError> = None;
        let mut upstream_wait = Duration::ZERO;
        let order = self.balancer.order(route);
        for (position, &index) in order.iter().enumerate() {
            let target = &route.targets[index];
            let others_left = position + 1 < order.len();
            if tally.attempts >= snapshot.routing.max_attempts {
                tally.untried(target, "not tried, max_attempts reached");
                continue;
            }
            if let Some(skip) = unusable(target, call) {
                tally.skipped(target, skip);
                continue;
            }
            let mut request = match job.request(target) {
                Ok(request) => request,
                Err(refusal) => {
                    // This provider cannot honour the request (a field it lacks); another
                    // target of the route may. The first refusal is the answer if none can.
                    tally.untried(target, &format!("skipped, {refusal}"));
                    refusal_if_none.get_or_insert(refusal);
                    continue;
                }
            };
            let (ticket, limiter) = match self.reserve(target, call.estimated_tokens) {
                Ok(reserved) => reserved,
                Err(skip) => {
                    tally.skipped(target, skip);
                    continue;
                }
            };
            if let Some(key) = &call.idempotency_key {
                request.headers.insert(IDEMPOTENCY_KEY, key.clone());
            }
            tally.attempts += 1;
            let deadlines = Deadlines::for_attempt(call, snapshot);
            let outcome = self
                .attempt(
                    snapshot,
                    job,
                    target,
                    request,
                    deadlines,
                    &mut upstream_wait,
                )
                .await;
            let failure = match outcome {
                Ok((headers, answer)) => {
                    ticket.succeeded();
                    self.metrics.attempt(&target.provider.name, None);
                    tally.logged(target, None);
                    return Ok(Served {
                        target: target.clone(),
                        attempts: tally.attempts,
                        headers,
                        answer,
                        settlement: call.settlement(limiter),
                        upstream_wait,
                    });
                }
                Err(failure) => failure,
            };
            self.metrics
                .attempt(&target.provider.name, Some(failure.kind));
            tally.logged(target, Some(failure.kind));
            if failure.kind == FailureKind::PaymentRequired {
                // A quote is a healthy seller naming its price: no cooldown.
                ticket.succeeded();
                let quoted = self.quoted(target, call, failure);
                if route.on_payment_required == OnPaymentRequired::Failover && others_left {
                    self.metrics.failover(
                        &route.name,
                        &target.provider.name,
                        FailureKind::PaymentRequired,
                    );
                    tally.note(
                        target,
                        None,
                        None,
                        "quoted a price, failing over".to_owned(),
                    );
                    continue;
                }
                return Err(quoted);
            }
            let cooldown = ticket.failed(&failure, &snapshot.routing);
            log_failure(target, &failure);
            if failure.kind == FailureKind::Rejected {
                return Err(ApiError::Rejected(failure));
            }
            if failure.kind == FailureKind::Timeout && !route.failover_on_timeout {
                tally.note(target, Some(failure.kind), None, describe(&failure));
                let untried = order[position + 1..].iter().map(|&i| &route.targets[i]);
                return Err(no_retry_after_timeout(tally, untried));
            }
            if others_left && tally.attempts < snapshot.routing.max_attempts {
                self.metrics
                    .failover(&route.name, &target.provider.name, failure.kind);
            }
            let usable_at = Some(Instant::now() + cooldown);
            tally.note(target, Some(failure.kind), usable_at, describe(&failure));
        }
        match refusal_if_none {
            Some(refusal) if tally.attempts == 0 => Err(refusal),
            _ => Err(tally.give_up()),
        }
    }

    /// Admission by the provider's breaker, then room in its rate limiter.
    fn reserve<'s>(
        &'s self,
        target: &'s Target,
        estimated_tokens: u32,
    ) -> Result<(TargetTicket<'s>, Option<Arc<Limiter>>), Skip> {
        let provider = &target.provider;
        let admitted = self.health.admit_target(&provider.name, &target.declared);
        let ticket = admitted.map_err(|cooling| {
            let left = cooling.until.saturating_duration_since(Instant::now());
            Skip {
                kind: Some(cooling.reason),
                usable_at: Some(cooling.until),
                what: format!(
                    "skipped, cooling down for {}s after {}",
                    left.as_secs().max(1),
                    cooling.reason.as_str()
                ),
            }
        })?;
        let limiter = self.limits.provider(&provider.name, provider.limits);
        if let Some(limiter) = &limiter
            && let Err(exhausted) = limiter.try_acquire(estimated_tokens)
        {
            self.metrics.rate_limited(Scope::Provider, &provider.name);
            return Err(Skip {
                kind: Some(FailureKind::RateLimited),
                usable_at: Some(Instant::now() + exhausted.retry_after),
                what: format!(
                    "skipped, switchboard's {} per minute limit for this provider ({}) is used up",
                    exhausted.budget, exhausted.limit
                ),
            });
        }
        Ok((ticket, limiter))
    }
}

/// Whether `route` serves `endpoint`: embeddings routes serve only embeddings, the others
/// only the other endpoints; the wrong one is the client's 400, naming `model`.
fn serves(route: &Route, endpoint: Endpoint) -> Result<(), ApiError> {
    let wants_embeddings = endpoint == Endpoint::Embeddings;
    if route.embeddings == wants_embeddings {
        return Ok(());
    }
    let message = if route.embeddings {
        format!(
            "'{}' is an embeddings model: send it to POST /v1/embeddings.",
            route.name
        )
    } else {
        format!(
            "'{}' is not an embeddings model: name a route or model configured with \
             embeddings = true.",
            route.name
        )
    };
    Err(ApiError::bad_request(message, Some("model".into())))
}

/// A target that cannot be tried at all: its provider is disabled or the request's time is up.
fn unusable(target: &Target, call: &Call) -> Option<Skip> {
    if let Some(reason) = &target.provider.disabled {
        return Some(Skip {
            kind: None,
            usable_at: None,
            what: format!("skipped, provider disabled ({reason})"),
        });
    }
    (Instant::now() >= call.deadline).then(|| Skip {
        kind: Some(FailureKind::Timeout),
        usable_at: None,
        what: "not tried, request_timeout reached".to_owned(),
    })
}

/// A route that must not send a request twice got a timeout after sending it: the request may
/// have been served, so no other target is asked.
fn no_retry_after_timeout<'r>(
    tally: &mut Tally,
    untried: impl Iterator<Item = &'r Target>,
) -> ApiError {
    tally.retry_at = None;
    for target in untried {
        tally.untried(
            target,
            "not tried: the route has failover_on_timeout = false and the request may already \
             have been served",
        );
    }
    tally.give_up()
}

fn describe(failure: &UpstreamFailure) -> String {
    format!("{} ({})", failure.kind.as_str(), failure.message)
}

fn log_failure(target: &Target, failure: &UpstreamFailure) {
    let status = failure.status.map(|s| s.as_u16());
    match failure.kind {
        FailureKind::Account => tracing::error!(
            target = %target.label, ?status, message = %failure.message,
            "provider refused switchboard's credentials or billing: check its key and account"
        ),
        FailureKind::Rejected | FailureKind::PaymentRequired => tracing::debug!(
            target = %target.label, ?status, message = %failure.message,
            "provider rejected the request"
        ),
        FailureKind::RateLimited
        | FailureKind::Unavailable
        | FailureKind::Timeout
        | FailureKind::Connect
        | FailureKind::Stream => tracing::warn!(
            target = %target.label, kind = failure.kind.as_str(), ?status,
            message = %failure.message, "upstream attempt failed"
        ),
    }
}
