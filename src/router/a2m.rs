//! Routing of Alipay's agent-to-merchant pay-per-call exchange (HTTP 402, see
//! [`crate::payment`]): a seller's quote is remembered and becomes the client's 402, the paid
//! retry goes to its seller alone, and the seller's `Payment-Validation` prices the call.
//!
//! A paid retry is never failed over: another target would serve (and charge) the call a
//! second time.

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use super::attempt::Deadlines;
use super::health::TargetTicket;
use super::{Call, Job, Router, Served, Tally, describe, log_failure, unusable};
use crate::accounting::{Cost, PaidCall};
use crate::config::{Payment, Route, Snapshot, Target};
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::headers::{IDEMPOTENCY_KEY, PAYMENT_PROOF, PAYMENT_VALIDATION};
use crate::metrics::PaymentEvent;
use crate::payment::{INVALID_PAYMENT_PROOF, Quoted, decode_validation};

impl Router {
    /// A price quote from `target`: counted, remembered for the paid retry, and turned into
    /// the client's 402.
    pub(super) fn quoted(
        &self,
        target: &Target,
        call: &Call,
        failure: UpstreamFailure,
    ) -> ApiError {
        let provider = &target.provider.name;
        let Some(header) = failure.quote else {
            return ApiError::Rejected(failure);
        };
        self.metrics.payment(provider, PaymentEvent::Quoted);
        match &header.quote {
            Some(quote) => self.quotes.remember(
                call.quote_key(),
                Quoted {
                    target: target.label.clone(),
                    quote: quote.clone(),
                },
            ),
            None => {
                self.metrics.payment(provider, PaymentEvent::Malformed);
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

    /// The transaction a 200 with `Payment-Validation` completed, priced by the quote the
    /// router saw for its order. `None` (and the configured prices apply) when there is no
    /// such header, it is malformed or not validated, or no quote was seen.
    pub fn paid_call(&self, target: &Target, headers: &HeaderMap) -> Option<PaidCall> {
        let raw = headers.get(PAYMENT_VALIDATION)?;
        let provider = &target.provider.name;
        let Some(validation) = decode_validation(raw.as_bytes()) else {
            self.metrics.payment(provider, PaymentEvent::Malformed);
            tracing::warn!(target = %target.label, "the provider's Payment-Validation header is malformed");
            return None;
        };
        if !validation.validated {
            return None;
        }
        self.metrics.payment(provider, PaymentEvent::Completed);
        let quote = self.quotes.order(provider, &validation.out_trade_no)?;
        Some(PaidCall {
            trade_no: validation.trade_no,
            out_trade_no: validation.out_trade_no,
            cost: Cost {
                amount: quote.amount,
                currency: quote.currency,
            },
        })
    }

    /// The seller of a paid retry: the pinned target, else the one that quoted this request,
    /// else the route's first pay-per-call target.
    fn seller<'s>(
        &self,
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
        if let Some(target) = self
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
    pub(super) async fn route_paid<J: Job>(
        &self,
        snapshot: &Snapshot,
        route: &Route,
        job: &J,
        call: &Call,
        tally: &mut Tally,
    ) -> Result<Served, ApiError> {
        let target = self.seller(snapshot, route, call)?;
        if let Some(skip) = unusable(target, call) {
            tally.skipped(target, skip);
            return Err(tally.give_up());
        }
        let mut request = job.request(target)?;
        let (ticket, limiter) = match self.reserve(target, call.estimated_tokens) {
            Ok(reserved) => reserved,
            Err(skip) => {
                tally.skipped(target, skip);
                return Err(tally.give_up());
            }
        };
        if let Some(proof) = &call.payment_proof {
            request.headers.insert(PAYMENT_PROOF, proof.clone());
        }
        if let Some(key) = &call.idempotency_key {
            request.headers.insert(IDEMPOTENCY_KEY, key.clone());
        }
        let mut upstream_wait = Duration::ZERO;
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
        let kind = outcome.as_ref().err().map(|failure| failure.kind);
        self.metrics.attempt(&target.provider.name, kind);
        tally.logged(target, kind);
        match outcome {
            Ok((headers, answer)) => {
                ticket.succeeded();
                Ok(Served {
                    target: target.clone(),
                    attempts: 1,
                    headers,
                    answer,
                    settlement: call.settlement(limiter),
                    upstream_wait,
                })
            }
            Err(failure) => Err(self.paid_failure(target, call, ticket, snapshot, failure, tally)),
        }
    }

    /// What the client of a failed paid retry gets: a refused proof or a fresh quote as the
    /// seller said it, anything else as the one failed attempt, with no other target tried.
    fn paid_failure(
        &self,
        target: &Target,
        call: &Call,
        ticket: TargetTicket<'_>,
        snapshot: &Snapshot,
        failure: UpstreamFailure,
        tally: &mut Tally,
    ) -> ApiError {
        if failure.kind == FailureKind::PaymentRequired {
            ticket.succeeded();
            return self.quoted(target, call, failure);
        }
        if failure.code.as_deref() == Some(INVALID_PAYMENT_PROOF) {
            self.metrics
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
}
