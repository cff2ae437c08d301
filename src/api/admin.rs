//! The admin endpoints, for keys with `admin = true` only: `GET /admin/config` (the running
//! version, its load time, the last rejected reload, restart-only settings and a secret-free
//! view of the configuration) and `POST /admin/reload` (reload the file now and say how it
//! went).
//!
//! The admin key is checked by the auth layer before they run. They read the snapshot like
//! any request and talk to the reload task through its handle;
//! they never swap a configuration themselves.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use serde::Serialize;

use crate::body::ResponseBody;
use crate::config::Snapshot;
use crate::config::reload::{Outcome, Reloads, Trigger};
use crate::config::view::{self, AdminConfig, ConfigView, RestartOnly, RestartStatus};
use crate::error::ApiError;

/// `GET /admin/config`: `snapshot` is the running configuration.
pub(super) fn config(
    snapshot: &Snapshot,
    reloads: &Reloads,
) -> Result<Response<ResponseBody>, ApiError> {
    let running = reloads.baseline().clone();
    let pending = running.pending(&RestartOnly::of(snapshot));
    json(&AdminConfig {
        source: reloads.source().map(|path| path.display().to_string()),
        sha256: snapshot.sha256.clone(),
        loaded_at: view::timestamp(snapshot.loaded_at),
        last_error: reloads.last_error(),
        restart: RestartStatus { running, pending },
        config: ConfigView::of(snapshot),
    })
}

/// `POST /admin/reload`, asked by the admin key named `admin`: 200 with what changed, 422
/// when the file is invalid.
pub(super) async fn reload(
    reloads: &Reloads,
    admin: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let handle = reloads.handle().ok_or(ApiError::ReloadUnavailable)?;
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

fn json(value: &impl Serialize) -> Result<Response<ResponseBody>, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = Response::new(ResponseBody::full(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
