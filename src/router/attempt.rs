//! One upstream attempt: send, wait for the response headers, then read the whole answer or,
//! for a stream, read ahead to its commit point. Failures are redacted here, where upstream
//! text enters the router.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use tokio::time::Instant;

use super::{Answer, Call, Job, Router};
use crate::config::{Snapshot, Target};
use crate::error::{FailureKind, UpstreamFailure};
use crate::providers::{UpstreamRequest, adapter_for};
use crate::stream::{PrimedStream, StreamLimits};
use crate::upstream::UpstreamBody;

/// The largest non-stream answer the router will read from a provider.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// The largest error body the router will read to classify a failure.
const MAX_ERROR_BYTES: usize = 1 << 20;

/// The two deadlines an attempt runs under.
#[derive(Clone, Copy, Debug)]
pub(super) struct Deadlines {
    /// Response headers (a stream's first content) must arrive by this.
    attempt: Instant,
    /// The whole request must be over by this.
    request: Instant,
}

impl Deadlines {
    /// The deadlines of an attempt starting now.
    pub(super) fn for_attempt(call: &Call, snapshot: &Snapshot) -> Self {
        Self {
            attempt: call
                .deadline
                .min(Instant::now() + snapshot.routing.attempt_timeout),
            request: call.deadline,
        }
    }
}

impl Router {
    /// One attempt; the time spent waiting on the provider is added to `waited`. Whatever the
    /// failure, the router's secrets are out of it before anyone logs, stores or sends it.
    pub(super) async fn attempt<J: Job>(
        &self,
        snapshot: &Snapshot,
        job: &J,
        target: &Target,
        request: UpstreamRequest,
        deadlines: Deadlines,
        waited: &mut Duration,
    ) -> Result<(HeaderMap, Answer), UpstreamFailure> {
        self.exchange(snapshot, job, target, request, deadlines, waited)
            .await
            .map_err(|failure| failure.redacted(&snapshot.redactor))
    }

    /// The exchange of [`Router::attempt`], its failures as the upstream and the adapter
    /// describe them.
    async fn exchange<J: Job>(
        &self,
        snapshot: &Snapshot,
        job: &J,
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
            tokio::time::timeout_at(attempt_deadline, self.upstream.send(target, request)).await;
        *waited += sent.elapsed();
        let response = response.map_err(|_| {
            UpstreamFailure::new(
                FailureKind::Timeout,
                "no response headers within routing.attempt_timeout",
            )
        })??;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            // The error body belongs to the failed attempt: a provider that stalls it must not
            // hold up the failover.
            let error_body = read_body(body, MAX_ERROR_BYTES, attempt_deadline)
                .await
                .unwrap_or_default();
            return Err(adapter.failure(parts.status, &parts.headers, &error_body));
        }
        if let Some(translator) = job.stream(target) {
            let limits = StreamLimits {
                deadline,
                idle_timeout: snapshot.routing.stream_idle_timeout,
            };
            let reading = Instant::now();
            let primed = PrimedStream::open(
                body,
                translator,
                limits,
                snapshot.redactor.clone(),
                attempt_deadline,
            )
            .await;
            *waited += reading.elapsed();
            return Ok((parts.headers, Answer::Stream(primed?)));
        }
        let reading = Instant::now();
        let bytes = read_body(body, MAX_RESPONSE_BYTES, deadline).await;
        *waited += reading.elapsed();
        let translated = job.response(target, bytes?)?;
        Ok((parts.headers, Answer::Complete(translated)))
    }
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
