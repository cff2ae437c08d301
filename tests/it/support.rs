//! Test support: scripted mock upstreams (real HTTP servers on 127.0.0.1:0), a router started
//! on port 0 from a TOML string, and a plain HTTP client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One request a mock upstream received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("upstream received JSON")
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    chunks: Vec<Bytes>,
    delay: Duration,
    chunk_delay: Duration,
    /// Break the connection after sending the chunks (no clean end of body).
    abort: bool,
}

impl Reply {
    /// A JSON body with `status`.
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![Bytes::from(body.to_owned())],
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            abort: false,
        }
    }

    /// A 200 event stream; each item is sent as its own chunk, exactly as given.
    pub fn sse_raw(chunks: &[&str]) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: chunks.iter().map(|c| Bytes::from(c.to_string())).collect(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            abort: false,
        }
    }

    /// A 200 OpenAI-style stream: each payload is framed as `data: <payload>\n\n`.
    pub fn sse_data(payloads: &[&str]) -> Self {
        let framed: Vec<String> = payloads.iter().map(|p| format!("data: {p}\n\n")).collect();
        let refs: Vec<&str> = framed.iter().map(String::as_str).collect();
        Self::sse_raw(&refs)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Wait this long before sending the response headers.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Wait this long before each body chunk.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Cut the connection after the chunks instead of ending the body.
    pub fn abort(mut self) -> Self {
        self.abort = true;
        self
    }
}

type MockBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A real HTTP/1.1 server on 127.0.0.1:0 answering from a script: the n-th request gets
/// `script[n]`, and the last reply repeats.
pub struct MockUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    _task: JoinHandle<()>,
}

impl MockUpstream {
    pub async fn start(script: Vec<Reply>) -> Self {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let script = Arc::new(script);
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let log = log.clone();
                        let script = script.clone();
                        async move { Ok::<_, Infallible>(answer(request, &log, &script).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            _task: task,
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn answer(
    request: Request<Incoming>,
    log: &Mutex<Vec<Recorded>>,
    script: &[Reply],
) -> Response<MockBody> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let index = {
        let mut log = log.lock().unwrap();
        log.push(Recorded {
            method: parts.method,
            path: parts
                .uri
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default(),
            headers: parts.headers,
            body,
        });
        log.len() - 1
    };
    let reply = script[index.min(script.len() - 1)].clone();
    tokio::time::sleep(reply.delay).await;
    let chunk_delay = reply.chunk_delay;
    let abort = reply.abort;
    let frames = futures_util::stream::iter(reply.chunks)
        .then(move |chunk| async move {
            tokio::time::sleep(chunk_delay).await;
            Ok::<_, std::io::Error>(Frame::data(chunk))
        })
        .chain(futures_util::stream::iter(abort.then(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "scripted abort",
            ))
        })));
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// A router running on 127.0.0.1:0.
pub struct RouterHandle {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RouterHandle {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends the shutdown signal and waits for the server to finish draining.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Sends the shutdown signal without waiting; returns the server task.
    pub fn begin_shutdown(&mut self) -> JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("running")
    }
}

impl Drop for RouterHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Starts a router from TOML text, with `env` as its whole environment.
pub async fn spawn_router(toml: &str, env: &[(&str, &str)]) -> RouterHandle {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| env.get(name).cloned();
    let snapshot = switchboard::config::parse(toml, "test.toml", &lookup)
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
    let server = switchboard::server::Server::bind(snapshot, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    RouterHandle {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        sse_data(&self.text())
    }

    /// The OpenAI error object of an error response.
    pub fn error(&self) -> serde_json::Value {
        self.json()["error"].clone()
    }
}

/// The `data:` payloads of an SSE text, in order.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and reads the whole answer.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client()
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// POSTs a JSON body to the router's chat endpoint.
pub async fn chat(router: &RouterHandle, body: &str) -> Answer {
    chat_with(router, &[], body).await
}

/// POSTs a JSON body to the router's chat endpoint with extra headers.
pub async fn chat_with(router: &RouterHandle, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(
        "POST",
        &router.url("/v1/chat/completions"),
        &all,
        body.to_owned(),
    )
    .await
}

/// A providers.toml with one provider of `kind` at `upstream`, routed as `route`.
pub fn one_provider(kind: &str, upstream: &MockUpstream, route: &str, model: &str) -> String {
    format!(
        r#"
[providers.up]
kind = "{kind}"
base_url = "{base}"
api_key_env = "UP_KEY"

[routes.{route}]
targets = ["up/{model}"]
"#,
        base = upstream.url("/v1")
    )
}

/// The environment that goes with [`one_provider`].
pub const UP_ENV: &[(&str, &str)] = &[("UP_KEY", "sk-upstream-secret")];
