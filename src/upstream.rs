//! The HTTP client every provider shares: pooled, TLS through rustls, HTTP/2 where the
//! server offers it by ALPN, TCP_NODELAY on every socket. There is one connection pool per
//! worker thread ([`crate::workers`]), so a request and the upstream connection it uses are
//! served by the same thread. Mock providers are served in process through the same call, so
//! the rest of the router cannot tell them apart.

use std::error::Error as _;
use std::num::NonZeroUsize;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{Target, UpstreamSettings};
use crate::error::{FailureKind, UpstreamFailure};
use crate::providers::{UpstreamRequest, mock};
use crate::workers;

/// A response body from a provider (or from the built-in mock).
pub type UpstreamBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// One pooled client.
type PooledClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The shared upstream client.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// One per worker, indexed by [`workers::current`].
    clients: Box<[PooledClient]>,
}

impl Upstream {
    /// Builds a client with one connection pool for each of `workers` worker threads. Fails
    /// only if the TLS roots cannot be set up.
    pub fn new(settings: &UpstreamSettings, workers: NonZeroUsize) -> Result<Self, rustls::Error> {
        let clients = (0..workers.get())
            .map(|_| pooled_client(settings))
            .collect::<Result<_, _>>()?;
        Ok(Self { clients })
    }

    /// Sends one attempt and returns the response once its headers have arrived.
    pub async fn send(
        &self,
        target: &Target,
        request: UpstreamRequest,
    ) -> Result<Response<UpstreamBody>, UpstreamFailure> {
        if let Some(settings) = &target.provider.mock {
            return Ok(mock::respond(settings, &target.model, &request).await);
        }
        let base = &target.provider.base_url;
        let mut url = String::with_capacity(base.len() + request.path.len());
        url.push_str(base);
        url.push_str(&request.path);
        let uri: Uri = url.parse().map_err(|e| {
            UpstreamFailure::new(FailureKind::Connect, format!("invalid upstream URL: {e}"))
        })?;
        let mut outgoing = Request::new(Full::new(request.body));
        *outgoing.method_mut() = request.method;
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = request.headers;
        let client = &self.clients[workers::current() % self.clients.len()];
        let response = client.request(outgoing).await.map_err(transport_failure)?;
        Ok(response.map(BodyExt::boxed_unsync))
    }
}

/// A client whose connections are owned by the runtime that first opens them.
fn pooled_client(settings: &UpstreamSettings) -> Result<PooledClient, rustls::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let https = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

/// Describes a transport error without anything secret (it only knows hosts and causes).
fn transport_failure(error: hyper_util::client::legacy::Error) -> UpstreamFailure {
    let mut cause = String::new();
    let mut source = error.source();
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let what = if error.is_connect() {
        "could not connect to the provider"
    } else {
        "the connection to the provider failed"
    };
    let message = if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    };
    UpstreamFailure::new(FailureKind::Connect, message)
}
