//! A small client for a running router's admin endpoint, used by `switchboard --check
//! --against URL` to fetch what the router runs (`GET /admin/config`).
//!
//! It speaks HTTP and HTTPS (webpki roots, like the upstream client) and gives up after
//! [`TIMEOUT`]: a deploy check must not hang on a router that does not answer.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::view::AdminConfig;

/// How long the whole fetch may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read: a configuration view is a few kilobytes.
const MAX_BODY: usize = 16 << 20;

/// Why the running configuration could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not an http(s) URL.
    #[error("`{0}` is not a router URL; write e.g. http://127.0.0.1:8080")]
    BadUrl(String),
    /// TLS roots could not be set up.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// No answer: connection refused, DNS, timeout.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The router answered with an error (401, 403, ...).
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// The URL asked.
        url: String,
        /// Its status.
        status: StatusCode,
        /// The router's error message, when it sent one.
        message: String,
    },
    /// The answer is not an `/admin/config` document.
    #[error("{url} did not answer with a switchboard configuration: {reason}")]
    NotAdminConfig {
        /// The URL asked.
        url: String,
        /// What could not be read.
        reason: String,
    },
}

/// `GET {base}/admin/config` with `key` as the bearer token.
pub async fn fetch_config(base: &str, key: Option<&str>) -> Result<AdminConfig, FetchError> {
    let url = format!("{}/admin/config", base.trim_end_matches('/'));
    let uri: Uri = url
        .parse()
        .ok()
        .filter(|uri: &Uri| matches!(uri.scheme_str(), Some("http" | "https")))
        .ok_or_else(|| FetchError::BadUrl(base.to_owned()))?;
    let unreachable = |reason: String| FetchError::Unreachable {
        url: url.clone(),
        reason,
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, get(uri, key))
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", TIMEOUT.as_secs())))??;
    if !status.is_success() {
        return Err(FetchError::Refused {
            url,
            status,
            message: error_message(&body),
        });
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::NotAdminConfig {
        url,
        reason: e.to_string(),
    })
}

/// Sends the request and reads the whole answer.
async fn get(uri: Uri, key: Option<&str>) -> Result<(StatusCode, Bytes), FetchError> {
    let url = uri.to_string();
    let https = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut request = Request::get(uri).header(ACCEPT, "application/json");
    if let Some(key) = key {
        request = request.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = request
        .body(Empty::new())
        .map_err(|_| FetchError::BadUrl(url.clone()))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| FetchError::Unreachable {
            url: url.clone(),
            reason: deepest_cause(&e),
        })?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| FetchError::Unreachable {
            url,
            reason: format!("the answer broke off: {e}"),
        })?
        .to_bytes();
    Ok((status, body))
}

/// The OpenAI-style `error.message` of an error answer, else its text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect())
}

/// The innermost cause of an error chain ("Connection refused" rather than "client error").
fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}
