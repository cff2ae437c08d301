//! `POST /v1/embeddings`, once the layers have authenticated the key and read the body: the
//! same limits, routing, failover, accounting and headers as chat (see [`super::chat`]), for
//! an answer that is always one body.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};

use super::chat::{
    ANSWER_HEADERS, account, forward_headers, overhead_header, reserve_key_tokens, router_headers,
    transaction_id,
};
use crate::access_log::RequestRecord;
use crate::app::AppState;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::headers::{COST, IDEMPOTENCY_KEY, PAYMENT_PROOF, TARGET};
use crate::layers::context::RequestContext;
use crate::layers::inflight::RecordSlot;
use crate::limits::Standing;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::router::{Answer, Call, Routed, Served};

/// Serves one embeddings request and finishes its record.
pub(super) async fn handle(state: &AppState, request: Request<Bytes>) -> Response<ResponseBody> {
    let (Some(context), Some(mut record)) = (
        RequestContext::of(&request).cloned(),
        RecordSlot::of(&request).and_then(RecordSlot::take),
    ) else {
        return super::error(ApiError::Internal("request outside the layer stack".into()));
    };
    let mut standing = None;
    let mut response = match serve(state, &context, request, &mut record, &mut standing).await {
        Ok(response) => {
            record.status = response.status().as_u16();
            record.emit();
            response
        }
        Err(error) => {
            record.status = error.status().as_u16();
            record.error_code = Some(error.code().to_owned());
            record.emit();
            super::error(error)
        }
    };
    if let Some(standing) = standing {
        standing.write_headers(response.headers_mut());
    }
    response
}

async fn serve(
    state: &AppState,
    context: &RequestContext,
    request: Request<Bytes>,
    record: &mut RequestRecord,
    standing: &mut Option<Standing>,
) -> Result<Response<ResponseBody>, ApiError> {
    let snapshot = &context.snapshot;
    record.transaction = transaction_id(request.headers(), &snapshot.accounting)?;
    let key_limiter = state.router.key_limiter(snapshot, &record.key);
    let headers = request.headers();
    let idempotency_key = headers.get(IDEMPOTENCY_KEY).cloned();
    let payment_proof = headers.get(PAYMENT_PROOF).cloned();
    let pinned = headers
        .get(TARGET)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    let body = request.into_body();
    if record.wants_bodies() {
        record.request_body = Some(body.clone());
    }
    let embeddings = EmbeddingsRequest::parse(&body)?;
    record.model = String::from(&*embeddings.model);
    record.route = snapshot
        .route(&embeddings.model)
        .map(|route| route.name.clone());
    // Embeddings have no output: the input is the whole estimate, settled on the usage.
    let estimated_tokens = u32::try_from(embeddings.estimated_tokens()).unwrap_or(u32::MAX);
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
    } = state.router.route(snapshot, &embeddings, &call).await;
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
    let Answer::Complete(translated) = answer else {
        return Err(ApiError::Internal(
            "an embeddings answer came back as a stream".into(),
        ));
    };
    record.usage = translated.usage;
    settlement.settle(record.usage);
    let account = account(state, snapshot, record, &target, &upstream_headers);
    let charge = account.charge(record.usage.as_ref(), true);
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.reserve(ANSWER_HEADERS);
    router_headers(headers, &target, attempts);
    overhead_header(
        &state.metrics,
        headers,
        context.started.elapsed().saturating_sub(upstream_wait),
    );
    forward_headers(headers, &upstream_headers, &target);
    if let Some(cost) = &charge.cost
        && let Ok(value) = HeaderValue::try_from(cost.header_value())
    {
        headers.insert(COST, value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    record.cost = charge.cost;
    record.fee_charged = charge.fee_charged;
    if record.wants_bodies() {
        record.response_body = Some(translated.body.clone());
    }
    Ok(response.map(|()| ResponseBody::full(translated.body)))
}
