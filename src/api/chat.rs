//! `POST /v1/chat/completions`, once the layers have authenticated the key and read the body:
//! apply the key's limits, validate, route, and shape the answer with the router's headers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::Full;

use crate::access_log::RequestRecord;
use crate::accounting::{Account, AccountingSettings, Prices};
use crate::app::AppState;
use crate::body::ResponseBody;
use crate::config::{Snapshot, Target};
use crate::error::ApiError;
use crate::headers::{ATTEMPTS, COST, IDEMPOTENCY_KEY, OVERHEAD_MS, PAYMENT_PROOF, TARGET};
use crate::layers::context::RequestContext;
use crate::layers::inflight::RecordSlot;
use crate::limits::{Limiter, Standing, TokenSettlement, estimate_tokens};
use crate::metrics::{Metrics, Scope};
use crate::openai::ChatRequest;
use crate::router::{Answer, Call, Routed, Served};
use crate::stream::{ChatStream, PrimedStream, StreamEnd};

/// The front door a request came through: how its client's body becomes a chat body, and a
/// chat answer the client's. Chat's own is the identity ([`Chat`]); each call is inlined, so
/// chat's path pays nothing for the seam. This is also where a front door would name itself
/// on the request's record.
pub(super) trait Front {
    /// The chat body of the client's `body`, or the 400 that says why there is none.
    fn chat_body(&mut self, body: Bytes) -> Result<Bytes, ApiError>;

    /// The client's body of a complete chat answer; `record` holds its usage and cost.
    fn complete(&self, chat: Bytes, record: &RequestRecord) -> Result<Bytes, ApiError>;

    /// The client's body of a chat stream.
    fn stream(self, stream: ChatStream) -> ResponseBody;
}

/// `POST /v1/chat/completions`: bodies pass as they are.
pub(super) struct Chat;

impl Front for Chat {
    #[inline]
    fn chat_body(&mut self, body: Bytes) -> Result<Bytes, ApiError> {
        Ok(body)
    }

    #[inline]
    fn complete(&self, chat: Bytes, _: &RequestRecord) -> Result<Bytes, ApiError> {
        Ok(chat)
    }

    #[inline]
    fn stream(self, stream: ChatStream) -> ResponseBody {
        ResponseBody::Stream(Box::new(stream))
    }
}

/// Serves one request (authenticated, its body read whole by the layers) through the chat
/// pipeline, as `front` reads and writes it, and finishes its record: at once, or at the
/// stream's end.
pub(super) async fn handle<F: Front>(
    state: &AppState,
    request: Request<Bytes>,
    mut front: F,
) -> Response<ResponseBody> {
    let (Some(context), Some(mut record)) = (
        RequestContext::of(&request).cloned(),
        RecordSlot::of(&request).and_then(RecordSlot::take),
    ) else {
        return super::error(ApiError::Internal("request outside the layer stack".into()));
    };
    let mut standing = None;
    let served = serve(
        state,
        &context,
        request,
        &mut front,
        &mut record,
        &mut standing,
    )
    .await;
    let mut response = match served {
        Ok(Reply::Complete(response, settlement)) => {
            record.status = response.status().as_u16();
            settlement.settle(record.usage);
            record.emit();
            response.map(ResponseBody::Complete)
        }
        Ok(Reply::Stream(parts, primed, end)) => {
            record.status = parts.status.as_u16();
            let stream = ChatStream::new(primed, record, end);
            Response::from_parts(parts, front.stream(stream))
        }
        Err(error) => {
            record.status = error.status().as_u16();
            record.error_code = Some(error.code().to_owned());
            record.emit();
            super::error(error)
        }
    };
    // Every answer of a limited key says where its budgets stand, so clients can slow down
    // before the 429 (which carries them itself).
    if let Some(standing) = standing {
        standing.write_headers(response.headers_mut());
    }
    response
}

/// A successful answer before the body type is settled, with the token estimate to correct.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once, from serve to handle; boxing the stream half would cost an \
              allocation per streamed request on top of the body's"
)]
enum Reply {
    Complete(Response<Full<Bytes>>, TokenSettlement),
    Stream(http::response::Parts, PrimedStream, StreamEnd),
}

async fn serve(
    state: &AppState,
    context: &RequestContext,
    request: Request<Bytes>,
    front: &mut impl Front,
    record: &mut RequestRecord,
    standing: &mut Option<Standing>,
) -> Result<Reply, ApiError> {
    let (snapshot, started) = (&context.snapshot, context.started);
    record.transaction = transaction_id(request.headers(), &snapshot.accounting)?;
    let key_limiter = state.router.key_limiter(snapshot, &record.key);
    let idempotency_key = request.headers().get(IDEMPOTENCY_KEY).cloned();
    let payment_proof = request.headers().get(PAYMENT_PROOF).cloned();
    let pinned = request
        .headers()
        .get(TARGET)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    let body = request.into_body();
    if record.wants_bodies() {
        record.request_body = Some(body.clone());
    }
    let body = front.chat_body(body)?;
    let mut chat = ChatRequest::parse(&body)?;
    chat.created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    record.model = String::from(&*chat.model);
    // Only a configured route becomes a metrics label, never the client's string.
    record.route = snapshot.route(&chat.model).map(|route| route.name.clone());
    let estimated_tokens = estimate_tokens(&chat);
    *standing = reserve_key_tokens(state, record, key_limiter.as_deref(), estimated_tokens)?;
    let call = Call {
        deadline: context.deadline,
        idempotency_key,
        payment_proof,
        pinned,
        client_key: record.key.clone(),
        key_limiter,
        estimated_tokens,
        body: body.clone(),
    };
    let Routed {
        outcome,
        attempt_log,
    } = state.router.route(snapshot, &chat, &call).await;
    record.attempt_log = attempt_log;
    let Served {
        target,
        attempts,
        headers: upstream_headers,
        answer,
        settlement,
        upstream_wait,
    } = outcome?;
    record.target = Some(target.label.clone());
    record.attempts = attempts;
    let account = account(state, snapshot, record, &target, &upstream_headers);
    let mut response = Response::new(());
    let headers = response.headers_mut();
    // Room for the router's headers, a limited key's six and the request id, so the map is
    // allocated once instead of growing (and rehashing) three times per answer.
    headers.reserve(ANSWER_HEADERS);
    router_headers(headers, &target, attempts);
    overhead_header(
        &state.metrics,
        headers,
        started.elapsed().saturating_sub(upstream_wait),
    );
    forward_headers(headers, &upstream_headers, &target);
    match answer {
        Answer::Complete(translated) => {
            record.usage = translated.usage;
            let charge = account.charge(record.usage.as_ref(), true);
            if let Some(cost) = &charge.cost
                && let Ok(value) = HeaderValue::try_from(cost.header_value())
            {
                headers.insert(COST, value);
            }
            record.cost = charge.cost;
            record.fee_charged = charge.fee_charged;
            let body = front.complete(translated.body, record)?;
            if record.wants_bodies() {
                record.response_body = Some(body.clone());
            }
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let response = response.map(|()| Full::new(body));
            Ok(Reply::Complete(response, settlement))
        }
        Answer::Stream(primed) => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            let (parts, ()) = response.into_parts();
            // The cost is known only at the end: it goes in the usage chunk.
            let end = StreamEnd {
                settlement,
                account,
                client_wants_usage: chat.include_usage(),
            };
            Ok(Reply::Stream(parts, primed, end))
        }
    }
}

/// The account a served request is charged to, its pay-per-call transaction (if the answer
/// validated one) noted in `record`.
pub(super) fn account(
    state: &AppState,
    snapshot: &Snapshot,
    record: &mut RequestRecord,
    target: &Target,
    upstream_headers: &HeaderMap,
) -> Account {
    record.payment = state.router.paid_call(target, upstream_headers);
    // A validated pay-per-call transaction costs its quote, whatever the model's prices say.
    // Its transaction is the seller's order, so a validation seen twice is charged once.
    let (prices, transaction) = match &record.payment {
        Some(paid) => (
            Some(Arc::new(Prices::quoted(&paid.cost))),
            Some(format!(
                "a2m\u{0}{}\u{0}{}",
                target.provider.name, paid.out_trade_no
            )),
        ),
        None => (target.prices.clone(), record.transaction.clone()),
    };
    Account::new(
        prices,
        state.transactions.clone(),
        &snapshot.accounting,
        &record.key,
        transaction.as_deref(),
    )
}

/// The longest transaction id accepted; ids are remembered, so they must stay small.
const MAX_TRANSACTION_ID: usize = 128;

/// The transaction the request names in the configured header, if any. An id that cannot be
/// one (empty, not visible ASCII, or longer than 128 bytes) is refused: charging a payment
/// flow's fee under a mangled id would be worse than telling the client.
/// Takes the request's estimated tokens from its key's rpm/tpm budgets, when the key has any:
/// where they stand afterwards, or the 429 that says which budget ran out.
pub(super) fn reserve_key_tokens(
    state: &AppState,
    record: &RequestRecord,
    limiter: Option<&Limiter>,
    estimated_tokens: u32,
) -> Result<Option<Standing>, ApiError> {
    let Some(limiter) = limiter else {
        return Ok(None);
    };
    limiter
        .try_acquire(estimated_tokens)
        .map(Some)
        .map_err(|exhausted| {
            state.metrics.rate_limited(Scope::Key, &record.key);
            ApiError::KeyRateLimited {
                budget: exhausted.budget,
                limit: exhausted.limit,
                retry_after: exhausted.retry_after,
                standing: exhausted.standing,
            }
        })
}

pub(super) fn transaction_id(
    headers: &HeaderMap,
    settings: &AccountingSettings,
) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&settings.transaction_header) else {
        return Ok(None);
    };
    let id = value.to_str().ok().map(str::trim).filter(|id| {
        !id.is_empty() && id.len() <= MAX_TRANSACTION_ID && id.bytes().all(|b| b.is_ascii_graphic())
    });
    match id {
        Some(id) => Ok(Some(id.to_owned())),
        None => Err(ApiError::bad_request(
            format!(
                "The '{}' header must be 1 to {MAX_TRANSACTION_ID} visible ASCII characters.",
                settings.transaction_header
            ),
            None,
        )),
    }
}

/// `x-switchboard-provider`, `-model` and `-attempts`: who answered, after how many tries.
pub(super) fn router_headers(headers: &mut HeaderMap, target: &Target, attempts: u32) {
    for (name, value) in target.answer_headers.iter() {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(ATTEMPTS, HeaderValue::from(attempts));
}

/// The headers a typical answer carries (see where the map is reserved).
pub(super) const ANSWER_HEADERS: usize = 20;

/// `x-switchboard-overhead-ms`: the router's own time so far (everything but waiting on
/// providers), so users can check the router's cost in production; also observed in
/// `switchboard_overhead_seconds`.
pub(super) fn overhead_header(metrics: &Metrics, headers: &mut HeaderMap, overhead: Duration) {
    metrics.overhead(overhead);
    if let Ok(value) = HeaderValue::from_bytes(&millis_text(overhead)) {
        headers.insert(OVERHEAD_MS, value);
    }
}

/// Milliseconds with three decimals (`12.345`), digit by digit: float formatting, then
/// `format!`, showed up in the per-request profile.
fn millis_text(duration: Duration) -> Vec<u8> {
    let micros = duration.as_micros();
    let mut text = Vec::with_capacity(24);
    let whole = micros / 1000;
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut rest = whole;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    text.extend_from_slice(&digits[at..]);
    let fraction = micros % 1000;
    text.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
    text
}

/// Passes the upstream headers the provider's `forward_headers` prefixes name; nothing else.
pub(super) fn forward_headers(headers: &mut HeaderMap, upstream: &HeaderMap, target: &Target) {
    let prefixes = &target.provider.forward_headers;
    if prefixes.is_empty() {
        return;
    }
    for (name, value) in upstream {
        if prefixes
            .iter()
            .any(|p| name.as_str().starts_with(p.as_str()))
        {
            headers.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_is_milliseconds_with_three_decimals() {
        let text = |micros| String::from_utf8(millis_text(Duration::from_micros(micros))).unwrap();
        assert_eq!(text(0), "0.000");
        assert_eq!(text(7), "0.007");
        assert_eq!(text(12_345), "12.345");
        assert_eq!(text(1_000_000), "1000.000");
    }
}
