//! `GET /v1/models` and `GET /v1/models/{id}`: the routes and direct targets a client may use,
//! in OpenAI's list shape.

use std::time::UNIX_EPOCH;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use serde::Serialize;

use crate::body::ResponseBody;
use crate::config::{Route, Snapshot};
use crate::error::ApiError;
use crate::layers::context::RequestContext;

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

/// Answers a models request (the path was already checked to be under `/v1/models`).
pub(super) fn handle<B>(request: &Request<B>) -> Result<Response<ResponseBody>, ApiError> {
    let snapshot = &RequestContext::of(request)
        .ok_or_else(|| ApiError::Internal("request without context".into()))?
        .snapshot;
    let path = request.uri().path();
    let body = match path.strip_prefix("/v1/models/") {
        None => serde_json::to_vec(&ModelList {
            object: "list",
            data: listed(snapshot),
        }),
        Some(id) => {
            let id = percent_decode(id);
            let route = snapshot
                .route(&id)
                .filter(|r| is_listed(r))
                .ok_or_else(|| ApiError::ModelNotFound(id.clone()))?;
            // A wildcard serves the name asked for, which is the model's id.
            serde_json::to_vec(&Model {
                id: &id,
                ..model(snapshot, route)
            })
        }
    }
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = Response::new(ResponseBody::full(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Named routes always; direct targets only when their provider is enabled.
fn is_listed(route: &Route) -> bool {
    !route.direct || route.targets.iter().all(|t| t.provider.disabled.is_none())
}

fn listed(snapshot: &Snapshot) -> Vec<Model<'_>> {
    let mut models: Vec<Model<'_>> = snapshot
        .routes
        .values()
        .filter(|r| is_listed(r))
        .map(|r| model(snapshot, r))
        .collect();
    models.sort_by(|a, b| a.id.cmp(b.id));
    models
}

fn model<'a>(snapshot: &Snapshot, route: &'a Route) -> Model<'a> {
    let owned_by = match (route.direct, route.targets.first()) {
        (true, Some(target)) => &*target.provider.name,
        _ => "switchboard",
    };
    Model {
        id: &route.name,
        object: "model",
        created: snapshot
            .loaded_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        owned_by,
    }
}

/// Decodes `%XX` escapes (SDKs escape the `/` of `provider/model` ids).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_escaped_slashes_and_leaves_the_rest() {
        assert_eq!(percent_decode("qwen%2Fqwen-max"), "qwen/qwen-max");
        assert_eq!(percent_decode("demo"), "demo");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
