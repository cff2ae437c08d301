//! The admin endpoints, for keys with `admin = true` only: `GET /admin/config` (the running
//! version, its load time, the last rejected reload, restart-only settings and a secret-free
//! view of the configuration) and `POST /admin/reload` (reload the file now and say how it
//! went).
//!
//! They read the snapshot like any request and talk to the reload task through its handle;
//! they never swap a configuration themselves.

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{Either, Full};
use serde::Serialize;

use crate::app::{AppState, ResponseBody};
use crate::auth;
use crate::config::reload::{Outcome, Trigger};
use crate::config::view::{self, AdminConfig, ConfigView, RestartOnly, RestartStatus};
use crate::error::ApiError;

/// `GET /admin/config`.
pub(super) fn config(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Response<ResponseBody>, ApiError> {
    authorize(state, headers)?;
    let snapshot = state.config.load_full();
    let running = state.reloads.baseline().clone();
    let pending = running.pending(&RestartOnly::of(&snapshot));
    json(&AdminConfig {
        source: state
            .reloads
            .source()
            .map(|path| path.display().to_string()),
        sha256: snapshot.sha256.clone(),
        loaded_at: view::timestamp(snapshot.loaded_at),
        last_error: state.reloads.last_error(),
        restart: RestartStatus { running, pending },
        config: ConfigView::of(&snapshot),
    })
}

/// `POST /admin/reload`: 200 with what changed, 422 when the file is invalid.
pub(super) async fn reload(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Response<ResponseBody>, ApiError> {
    let admin = authorize(state, headers)?;
    let handle = state.reloads.handle().ok_or(ApiError::ReloadUnavailable)?;
    tracing::info!(key = %admin, "reload asked through /admin/reload");
    match handle.reload(Trigger::Admin).await {
        Some(Outcome::Applied(applied)) => json(&applied),
        Some(Outcome::Rejected(rejected)) => {
            let problems: Vec<String> = rejected.errors.iter().map(ToString::to_string).collect();
            Err(ApiError::ConfigRejected(problems.join("; ")))
        }
        None => Err(ApiError::ReloadUnavailable),
    }
}

/// The admin key's name, or why not (reading the keys of the running snapshot, so a reload that
/// adds or removes an admin key applies to the next call).
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<std::sync::Arc<str>, ApiError> {
    auth::authorize_admin(&state.config.load().keys, headers)
}

fn json(value: &impl Serialize) -> Result<Response<ResponseBody>, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = Response::new(Either::Left(Full::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
