//! From a client's `model` to an upstream answer: resolve the route, pick a usable target,
//! make the attempt under its deadlines, and sort the outcome.
//!
//! A route is an ordered list of targets; a target whose provider is disabled (its key is not
//! set) is kept in the route but skipped here. When nothing can answer, the error lists per
//! target what happened, so an operator can read the reason straight from the client's log.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use tokio::time::Instant;

use crate::config::{Route, Snapshot, Target};
use crate::error::{ApiError, AttemptReport, FailureKind, UpstreamFailure};
use crate::openai::ChatRequest;
use crate::providers::{StreamTranslator, Translated, adapter_for};
use crate::upstream::{Upstream, UpstreamBody};

/// The largest non-stream answer the router will read from a provider.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// The largest error body the router will read to classify a failure.
const MAX_ERROR_BYTES: usize = 1 << 20;

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
}

/// What a successful attempt produced.
pub enum Answer {
    /// A complete, translated response.
    Complete(Translated),
    /// A stream whose headers arrived; its events are translated as they come.
    Stream(UpstreamBody, Box<dyn StreamTranslator>),
}

/// Routes one chat request and returns the first good answer, or why there is none.
pub async fn route(
    upstream: &Upstream,
    snapshot: &Snapshot,
    chat: &ChatRequest<'_>,
    deadline: Instant,
) -> Result<Served, ApiError> {
    let route = snapshot
        .route(&chat.model)
        .ok_or_else(|| ApiError::ModelNotFound(chat.model.to_string()))?;
    let mut reports = Vec::new();
    let Some(target) = first_usable(route, &mut reports) else {
        return Err(ApiError::AllTargetsFailed {
            all_rate_limited: false,
            all_account: false,
            retry_after: None,
            attempts: reports,
        });
    };
    let adapter = adapter_for(target.provider.kind);
    let request = adapter.request(chat, target)?;
    let attempt_deadline = deadline.min(Instant::now() + snapshot.routing.attempt_timeout);
    match attempt(upstream, chat, target, request, attempt_deadline, deadline).await {
        Ok((headers, answer)) => Ok(Served {
            target: target.clone(),
            attempts: 1,
            headers,
            answer,
        }),
        Err(failure) => Err(give_up(target, failure, reports)),
    }
}

/// The first target whose provider is enabled; the others are reported as skipped.
fn first_usable<'r>(route: &'r Route, reports: &mut Vec<AttemptReport>) -> Option<&'r Target> {
    for target in &route.targets {
        match &target.provider.disabled {
            None => return Some(target),
            Some(reason) => reports.push(AttemptReport {
                target: target.label.to_string(),
                outcome: format!("skipped, provider disabled ({reason})"),
            }),
        }
    }
    None
}

/// One attempt: send, wait for headers until `attempt_deadline`, then read or open the answer.
async fn attempt(
    upstream: &Upstream,
    chat: &ChatRequest<'_>,
    target: &Target,
    request: crate::providers::UpstreamRequest,
    attempt_deadline: Instant,
    deadline: Instant,
) -> Result<(HeaderMap, Answer), UpstreamFailure> {
    let adapter = adapter_for(target.provider.kind);
    let response = tokio::time::timeout_at(attempt_deadline, upstream.send(target, request))
        .await
        .map_err(|_| {
            UpstreamFailure::new(
                FailureKind::Timeout,
                "no response headers within routing.attempt_timeout",
            )
        })??;
    let (parts, body) = response.into_parts();
    if !parts.status.is_success() {
        let error_body = read_body(body, MAX_ERROR_BYTES, deadline)
            .await
            .unwrap_or_default();
        return Err(adapter.failure(parts.status, &parts.headers, &error_body));
    }
    if chat.is_stream() {
        let translator = adapter.stream(chat, target);
        return Ok((parts.headers, Answer::Stream(body, translator)));
    }
    let bytes = read_body(body, MAX_RESPONSE_BYTES, deadline).await?;
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

/// Turns the last failure into the client's error, with the per-target report.
fn give_up(target: &Target, failure: UpstreamFailure, mut reports: Vec<AttemptReport>) -> ApiError {
    log_failure(target, &failure);
    reports.push(AttemptReport {
        target: target.label.to_string(),
        outcome: format!("{} ({})", failure.kind.as_str(), failure.message),
    });
    match ApiError::from(failure) {
        ApiError::AllTargetsFailed {
            all_rate_limited,
            all_account,
            retry_after,
            attempts: _,
        } => ApiError::AllTargetsFailed {
            all_rate_limited,
            all_account,
            retry_after: retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
            attempts: reports,
        },
        other => other,
    }
}

/// The longest `Retry-After` passed on: the OpenAI SDK ignores longer ones anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

fn log_failure(target: &Target, failure: &UpstreamFailure) {
    let status = failure.status.map(|s| s.as_u16());
    match failure.kind {
        FailureKind::Account => tracing::error!(
            target = %target.label, ?status, message = %failure.message,
            "provider refused switchboard's credentials or billing: check its key and account"
        ),
        FailureKind::Rejected => tracing::debug!(
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
