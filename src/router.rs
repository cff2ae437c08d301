//! From a client's `model` to an upstream answer: resolve the route, try its targets in order
//! under the request's budgets, fail over when a provider cannot answer, and say precisely why
//! when none can.
//!
//! Each target is skipped without a network call when its provider is disabled, cooling down
//! ([`health`]) or out of rate-limit room ([`crate::limits`]). At most `max_attempts` upstream
//! attempts are made, each bounded by `attempt_timeout` (for streams: until the first content),
//! the whole request by `request_timeout`. A wrong request (the provider's 400/413/422) is
//! returned at once; everything else fails over. A target whose adapter cannot honour a field
//! of the request is passed over for one that can; when none can, the client gets that 400.

mod balance;
pub mod health;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Limited};
use tokio::time::Instant;

pub use self::balance::Balancer;
use self::health::TargetTicket;
use crate::app::AppState;
use crate::config::{MAX_MODEL_NAME, OnPaymentRequired, Payment, Route, Snapshot, Target};
use crate::error::{ApiError, AttemptReport, FailureKind, UpstreamFailure};
use crate::limits::{Limiter, estimate_tokens};
use crate::metrics::{PaymentEvent, Scope};
use crate::openai::ChatRequest;
use crate::payment::{INVALID_PAYMENT_PROOF, PAYMENT_PROOF, QuoteKey, Quoted};
use crate::providers::{Translated, UpstreamRequest, adapter_for};
use crate::stream::{ChatStream, StreamLimits};
use crate::upstream::UpstreamBody;
use crate::usage_log::Attempt;

/// The largest non-stream answer the router will read from a provider.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// The largest error body the router will read to classify a failure.
const MAX_ERROR_BYTES: usize = 1 << 20;
/// The longest `Retry-After` passed on: the OpenAI SDK ignores longer ones anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

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
    /// The request body as the client sent it.
    pub body: Bytes,
}

impl Call {
    /// The key a quote for this request is remembered under. Hashing the body is left to
    /// the rare requests that meet a quote or carry a payment.
    fn quote_key(&self) -> QuoteKey {
        QuoteKey::new(&self.client_key, &self.body)
    }
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
    /// The provider's rate limiter, to correct its token estimate once usage is known.
    pub limiter: Option<Arc<Limiter>>,
    /// The token estimate taken from the limiters.
    pub estimated_tokens: u32,
    /// Time spent waiting on providers, every attempt included: until response headers,
    /// reading a complete body, reading a stream to its commit point. What the request took
    /// beyond this is the router's own overhead.
    pub upstream_wait: Duration,
}

/// The two deadlines an attempt runs under.
#[derive(Clone, Copy, Debug)]
struct Deadlines {
    /// Response headers (a stream's first content) must arrive by this.
    attempt: Instant,
    /// The whole request must be over by this.
    request: Instant,
}

impl Deadlines {
    /// The deadlines of an attempt starting now.
    fn for_attempt(call: &Call, snapshot: &Snapshot) -> Self {
        Self {
            attempt: call
                .deadline
                .min(Instant::now() + snapshot.routing.attempt_timeout),
            request: call.deadline,
        }
    }
}

/// What a successful attempt produced.
pub enum Answer {
    /// A complete, translated response.
    Complete(Translated),
    /// A stream past its commit point; the rest is translated as it comes.
    Stream(Box<ChatStream>),
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
}

impl Tally {
    fn new() -> Self {
        Self {
            all_rate_limited: true,
            all_account: true,
            ..Self::default()
        }
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

    /// Records a target left untried; it says nothing about why the others failed.
    fn untried(&mut self, target: &Target, what: &str) {
        self.reports.push(AttemptReport {
            target: target.label.to_string(),
            outcome: what.to_owned(),
        });
    }

    fn give_up(self) -> ApiError {
        let retry_after = self.retry_at.map(|at| {
            at.saturating_duration_since(Instant::now())
                .min(MAX_RETRY_AFTER)
        });
        let tried = self.noted > 0;
        ApiError::AllTargetsFailed {
            all_rate_limited: tried && self.all_rate_limited,
            all_account: tried && self.all_account,
            retry_after,
            attempts: self.reports,
        }
    }
}

/// Why a target was passed over without an attempt.
struct Skip {
    kind: Option<FailureKind>,
    usable_at: Option<Instant>,
    what: String,
}

/// Routes one chat request and returns the first good answer, or why there is none. Each
/// upstream attempt's target and outcome is appended to `trail`, whatever the result.
pub async fn route(
    state: &AppState,
    snapshot: &Snapshot,
    chat: &ChatRequest<'_>,
    call: &Call,
    trail: &mut Vec<Attempt>,
) -> Result<Served, ApiError> {
    let route = snapshot
        .route(&chat.model)
        .ok_or_else(|| ApiError::ModelNotFound(chat.model.to_string()))?;
    let served_by_wildcard;
    let route = if route.is_wildcard() {
        served_by_wildcard = route.serving(&chat.model).ok_or_else(|| {
            ApiError::bad_request(
                format!(
                    "'model' must name a model after the provider: 1 to {MAX_MODEL_NAME} bytes \
                     with no whitespace or control characters."
                ),
                Some("model".into()),
            )
        })?;
        &served_by_wildcard
    } else {
        route
    };
    if call.payment_proof.is_some() {
        return route_paid(state, snapshot, route, chat, call, trail).await;
    }
    let estimated_tokens = estimate_tokens(chat);
    let mut tally = Tally::new();
    let mut refusal_if_none: Option<ApiError> = None;
    let mut upstream_wait = Duration::ZERO;
    let order = state.balancer.order(route);
    for (position, &index) in order.iter().enumerate() {
        let target = &route.targets[index];
        let others_left = position + 1 < order.len();
        if tally.attempts >= snapshot.routing.max_attempts {
            tally.untried(target, "not tried, max_attempts reached");
            continue;
        }
        if let Some(skip) = unusable(target, call) {
            tally.note(target, skip.kind, skip.usable_at, skip.what);
            continue;
        }
        let mut request = match adapter_for(target.provider.kind).request(chat, target) {
            Ok(request) => request,
            Err(refusal) => {
                // This provider cannot honour the request (a field it lacks); another target
                // of the route may. The first refusal is the answer if none can.
                tally.untried(target, &format!("skipped, {refusal}"));
                refusal_if_none.get_or_insert(refusal);
                continue;
            }
        };
        let (ticket, limiter) = match reserve(state, target, estimated_tokens) {
            Ok(reserved) => reserved,
            Err(skip) => {
                tally.note(target, skip.kind, skip.usable_at, skip.what);
                continue;
            }
        };
        if let Some(key) = &call.idempotency_key {
            request.headers.insert("idempotency-key", key.clone());
        }
        tally.attempts += 1;
        let deadlines = Deadlines::for_attempt(call, snapshot);
        let outcome = attempt(
            state,
            snapshot,
            chat,
            target,
            request,
            deadlines,
            &mut upstream_wait,
        )
        .await;
        let failure = match outcome {
            Ok((headers, answer)) => {
                ticket.succeeded();
                state.metrics.attempt(&target.provider.name, None);
                trail.push(Attempt {
                    target: target.label.clone(),
                    outcome: "ok",
                });
                return Ok(Served {
                    target: target.clone(),
                    attempts: tally.attempts,
                    headers,
                    answer,
                    limiter,
                    estimated_tokens,
                    upstream_wait,
                });
            }
            Err(failure) => failure,
        };
        state
            .metrics
            .attempt(&target.provider.name, Some(failure.kind));
        trail.push(Attempt {
            target: target.label.clone(),
            outcome: failure.kind.as_str(),
        });
        if failure.kind == FailureKind::PaymentRequired {
            // A quote is a healthy seller naming its price: no cooldown.
            ticket.succeeded();
            let quoted = quoted(state, target, call, failure);
            if route.on_payment_required == OnPaymentRequired::Failover && others_left {
                state.metrics.failover(
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
            state
                .metrics
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

/// A price quote from `target`: counted, remembered for the paid retry, and turned into the
/// client's 402.
fn quoted(state: &AppState, target: &Target, call: &Call, failure: UpstreamFailure) -> ApiError {
    let provider = &target.provider.name;
    let Some(header) = failure.quote else {
        return ApiError::Rejected(failure);
    };
    state.metrics.payment(provider, PaymentEvent::Quoted);
    match &header.quote {
        Some(quote) => state.quotes.remember(
            call.quote_key(),
            Quoted {
                target: target.label.clone(),
                quote: quote.clone(),
            },
        ),
        None => {
            state.metrics.payment(provider, PaymentEvent::Malformed);
            tracing::warn!(
                target = %target.label,
                "the provider's Payment-Needed header is malformed; passed on unchanged"
            );
        }
    }
    ApiError::PaymentRequired {
        quote: header,
        provider: provider.clone(),
        model: target.model.clone(),
    }
}

/// The seller of a paid retry: the pinned target, else the one that quoted this request, else
/// the route's first pay-per-call target.
fn seller<'s>(
    state: &AppState,
    snapshot: &'s Snapshot,
    route: &'s Route,
    call: &Call,
) -> Result<&'s Target, ApiError> {
    let in_route = |label: &str| route.targets.iter().find(|t| &*t.label == label);
    if let Some(pinned) = &call.pinned {
        return in_route(pinned)
            .or_else(|| {
                // A wildcard's target stands for no model in particular: only a configured
                // one can be pinned from another route.
                snapshot
                    .route(pinned)
                    .filter(|r| !r.is_wildcard())
                    .and_then(|r| r.targets.first())
            })
            .ok_or_else(|| {
                ApiError::bad_request(
                    format!("x-switchboard-target names no configured target: {pinned}"),
                    None,
                )
            });
    }
    if let Some(target) = state
        .quotes
        .seller(&call.quote_key())
        .and_then(|label| in_route(&label))
    {
        return Ok(target);
    }
    route
        .targets
        .iter()
        .find(|t| t.provider.payment == Payment::A2m)
        .ok_or_else(|| {
            ApiError::bad_request(
                "This request carries Payment-Proof, but its route has no pay-per-call \
                 (payment = \"a2m\") target; name the seller with x-switchboard-target.",
                None,
            )
        })
}

/// A paid retry: one attempt at its seller, never a failover, so it cannot be served (and
/// charged) twice.
async fn route_paid(
    state: &AppState,
    snapshot: &Snapshot,
    route: &Route,
    chat: &ChatRequest<'_>,
    call: &Call,
    trail: &mut Vec<Attempt>,
) -> Result<Served, ApiError> {
    let target = seller(state, snapshot, route, call)?;
    let estimated_tokens = estimate_tokens(chat);
    let mut tally = Tally::new();
    if let Some(skip) = unusable(target, call) {
        tally.note(target, skip.kind, skip.usable_at, skip.what);
        return Err(tally.give_up());
    }
    let mut request = adapter_for(target.provider.kind).request(chat, target)?;
    let (ticket, limiter) = match reserve(state, target, estimated_tokens) {
        Ok(reserved) => reserved,
        Err(skip) => {
            tally.note(target, skip.kind, skip.usable_at, skip.what);
            return Err(tally.give_up());
        }
    };
    if let Some(proof) = &call.payment_proof {
        request.headers.insert(PAYMENT_PROOF, proof.clone());
    }
    if let Some(key) = &call.idempotency_key {
        request.headers.insert("idempotency-key", key.clone());
    }
    let mut upstream_wait = Duration::ZERO;
    let outcome = attempt(
        state,
        snapshot,
        chat,
        target,
        request,
        Deadlines::for_attempt(call, snapshot),
        &mut upstream_wait,
    )
    .await;
    let kind = outcome.as_ref().err().map(|failure| failure.kind);
    state.metrics.attempt(&target.provider.name, kind);
    trail.push(Attempt {
        target: target.label.clone(),
        outcome: kind.map_or("ok", FailureKind::as_str),
    });
    match outcome {
        Ok((headers, answer)) => {
            ticket.succeeded();
            Ok(Served {
                target: target.clone(),
                attempts: 1,
                headers,
                answer,
                limiter,
                estimated_tokens,
                upstream_wait,
            })
        }
        Err(failure) => Err(paid_failure(
            state, target, call, ticket, snapshot, failure, tally,
        )),
    }
}

/// What the client of a failed paid retry gets: a refused proof or a fresh quote as the seller
/// said it, anything else as the one failed attempt, with no other target tried.
fn paid_failure(
    state: &AppState,
    target: &Target,
    call: &Call,
    ticket: TargetTicket<'_>,
    snapshot: &Snapshot,
    failure: UpstreamFailure,
    mut tally: Tally,
) -> ApiError {
    if failure.kind == FailureKind::PaymentRequired {
        ticket.succeeded();
        return quoted(state, target, call, failure);
    }
    if failure.code.as_deref() == Some(INVALID_PAYMENT_PROOF) {
        state
            .metrics
            .payment(&target.provider.name, PaymentEvent::ProofRejected);
    }
    let cooldown = ticket.failed(&failure, &snapshot.routing);
    log_failure(target, &failure);
    if failure.kind == FailureKind::Rejected {
        return ApiError::Rejected(failure);
    }
    tally.attempts = 1;
    let usable_at = Some(Instant::now() + cooldown);
    tally.note(target, Some(failure.kind), usable_at, describe(&failure));
    tally.give_up()
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

/// Admission by the provider's breaker, then room in its rate limiter.
fn reserve<'s>(
    state: &'s AppState,
    target: &'s Target,
    estimated_tokens: u32,
) -> Result<(TargetTicket<'s>, Option<Arc<Limiter>>), Skip> {
    let provider = &target.provider;
    let admitted = state.health.admit_target(&provider.name, &target.declared);
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
    let limiter = state.limits.provider(&provider.name, provider.limits);
    if let Some(limiter) = &limiter
        && let Err(exhausted) = limiter.try_acquire(estimated_tokens)
    {
        state.metrics.rate_limited(Scope::Provider, &provider.name);
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

/// A route that must not send a request twice got a timeout after sending it: the request may
/// have been served, so no other target is asked.
fn no_retry_after_timeout<'r>(
    mut tally: Tally,
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

/// One attempt: send, wait for headers until `attempt_deadline`, then read the answer or, for
/// a stream, read ahead to its commit point. Whatever the failure, the router's secrets are out
/// of it before anyone logs, stores or sends it: this is where upstream text enters the router.
async fn attempt(
    state: &AppState,
    snapshot: &Snapshot,
    chat: &ChatRequest<'_>,
    target: &Target,
    request: UpstreamRequest,
    deadlines: Deadlines,
    waited: &mut Duration,
) -> Result<(HeaderMap, Answer), UpstreamFailure> {
    exchange(state, snapshot, chat, target, request, deadlines, waited)
        .await
        .map_err(|failure| failure.redacted(&snapshot.redactor))
}

/// The exchange of [`attempt`], its failures as the upstream and the adapter describe them.
async fn exchange(
    state: &AppState,
    snapshot: &Snapshot,
    chat: &ChatRequest<'_>,
    target: &Target,
    request: UpstreamRequest,
    deadlines: Deadlines,
    waited: &mut Duration,
) -> Result<(HeaderMap, Answer), UpstreamFailure> {
    let Deadlines {
        attempt: attempt_deadline,
        request: deadline,
    } = deadlines;
    let adapter = adapter_for(target.provider.kind);
    let sent = Instant::now();
    let response =
        tokio::time::timeout_at(attempt_deadline, state.upstream.send(target, request)).await;
    *waited += sent.elapsed();
    let response = response.map_err(|_| {
        UpstreamFailure::new(
            FailureKind::Timeout,
            "no response headers within routing.attempt_timeout",
        )
    })??;
    let (parts, body) = response.into_parts();
    if !parts.status.is_success() {
        // The error body belongs to the failed attempt: a provider that stalls it must not hold
        // up the failover.
        let error_body = read_body(body, MAX_ERROR_BYTES, attempt_deadline)
            .await
            .unwrap_or_default();
        return Err(adapter.failure(parts.status, &parts.headers, &error_body));
    }
    if chat.is_stream() {
        let limits = StreamLimits {
            deadline,
            idle_timeout: snapshot.routing.stream_idle_timeout,
        };
        let mut stream = ChatStream::new(
            body,
            adapter.stream(chat, target),
            limits,
            snapshot.redactor.clone(),
        );
        let reading = Instant::now();
        let primed = stream.prime(attempt_deadline).await;
        *waited += reading.elapsed();
        primed?;
        return Ok((parts.headers, Answer::Stream(Box::new(stream))));
    }
    let reading = Instant::now();
    let bytes = read_body(body, MAX_RESPONSE_BYTES, deadline).await;
    *waited += reading.elapsed();
    let bytes = bytes?;
    let translated = adapter.response(chat, target, bytes)?;
    Ok((parts.headers, Answer::Complete(translated)))
}

/// Reads a whole body, bounded in size and time.
async fn read_body(
    body: UpstreamBody,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, UpstreamFailure> {
    let collected = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await;
    match collected {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) => Err(UpstreamFailure::new(
            FailureKind::Unavailable,
            format!("could not read the provider's response: {e}"),
        )),
        Err(_) => Err(UpstreamFailure::new(
            FailureKind::Timeout,
            "the provider's response did not finish within routing.request_timeout",
        )),
    }
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
