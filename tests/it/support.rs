//! Test support: scripted mock upstreams (real HTTP servers on 127.0.0.1:0), a router started
//! on port 0 from a TOML string or from a file it reloads, and a plain HTTP client.
#![cfg(test)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
pub(crate) struct Recorded {
    pub(crate) method: http::Method,
    /// Path and query.
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Recorded {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("upstream received JSON")
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    chunks: Vec<Bytes>,
    delay: Duration,
    chunk_delay: Duration,
    /// Break the connection after sending the chunks (no clean end of body).
    abort: bool,
    /// Hold the response headers until the test opens this gate.
    gate: Option<Gate>,
    /// After this many body chunks, hold the rest until the test opens the gate.
    pause: Option<(usize, Gate)>,
}

impl Reply {
    /// A JSON body with `status`.
    pub(crate) fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![Bytes::from(body.to_owned())],
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            abort: false,
            gate: None,
            pause: None,
        }
    }

    /// A 200 event stream; each item is sent as its own chunk, exactly as given.
    pub(crate) fn sse_raw(chunks: &[&str]) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: chunks.iter().map(|c| Bytes::from(c.to_string())).collect(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            abort: false,
            gate: None,
            pause: None,
        }
    }

    /// A 200 event stream of raw bytes (which need not be UTF-8), each item its own chunk.
    pub(crate) fn sse_bytes(chunks: Vec<Vec<u8>>) -> Self {
        Self {
            chunks: chunks.into_iter().map(Bytes::from).collect(),
            ..Self::sse_raw(&[])
        }
    }

    /// A 200 OpenAI-style stream: each payload is framed as `data: <payload>\n\n`.
    pub(crate) fn sse_data(payloads: &[&str]) -> Self {
        let framed: Vec<String> = payloads.iter().map(|p| format!("data: {p}\n\n")).collect();
        let refs: Vec<&str> = framed.iter().map(String::as_str).collect();
        Self::sse_raw(&refs)
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Wait this long before sending the response headers.
    pub(crate) fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Wait this long before each body chunk.
    pub(crate) fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Cut the connection after the chunks instead of ending the body.
    pub(crate) fn abort(mut self) -> Self {
        self.abort = true;
        self
    }

    /// Send the first `chunks` body chunks, then hold the rest until `gate` opens: "while this
    /// stream is open" then lasts exactly as long as the test needs.
    pub(crate) fn pause_after(mut self, chunks: usize, gate: &Gate) -> Self {
        self.pause = Some((chunks, gate.clone()));
        self
    }

    /// Hold the response headers until `gate` opens: "while this request is in flight" then
    /// lasts exactly as long as the test needs, however slow the machine.
    pub(crate) fn until(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }
}

/// A latch scripted replies wait on (see [`Reply::until`]); once open it stays open.
#[derive(Clone, Debug)]
pub(crate) struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub(crate) fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(false)))
    }

    /// Lets every reply waiting on this gate, and every later one, go.
    pub(crate) fn open(&self) {
        self.0.send_replace(true);
    }

    async fn passed(&self) {
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }
}

type MockBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A provider rule a mock upstream enforces: the reply to a request that breaks it (the
/// provider's 400), `None` for one that keeps it.
pub(crate) type Rule = fn(&Recorded) -> Option<Reply>;

/// A real HTTP/1.1 server on 127.0.0.1:0 answering from a script: the n-th request gets
/// `script[n]`, and the last reply repeats.
pub(crate) struct MockUpstream {
    pub(crate) addr: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    _task: JoinHandle<()>,
}

impl MockUpstream {
    pub(crate) async fn start(script: Vec<Reply>) -> Self {
        Self::enforcing(script, |_| None).await
    }

    /// Like [`MockUpstream::start`], but a request that breaks `rule` gets the rule's reply
    /// instead of its scripted one (it still uses up its place in the script).
    pub(crate) async fn enforcing(script: Vec<Reply>, rule: Rule) -> Self {
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
                        async move { Ok::<_, Infallible>(answer(request, &log, &script, rule).await) }
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
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    pub(crate) fn calls(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Waits (bounded) until this upstream has received `n` requests.
    pub(crate) async fn wait_for_calls(&self, n: usize) {
        eventually(
            PATIENCE,
            &format!("the upstream gets {n} calls"),
            || async { self.calls() >= n },
        )
        .await;
    }
}

async fn answer(
    request: Request<Incoming>,
    log: &Mutex<Vec<Recorded>>,
    script: &[Reply],
    rule: Rule,
) -> Response<MockBody> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let recorded = Recorded {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    let broken = rule(&recorded);
    let index = {
        let mut log = log.lock().unwrap();
        log.push(recorded);
        log.len() - 1
    };
    let reply = broken.unwrap_or_else(|| script[index.min(script.len() - 1)].clone());
    tokio::time::sleep(reply.delay).await;
    if let Some(gate) = &reply.gate {
        gate.passed().await;
    }
    let chunk_delay = reply.chunk_delay;
    let abort = reply.abort;
    let pause = reply.pause;
    let frames = futures_util::stream::iter(reply.chunks.into_iter().enumerate())
        .then(move |(sent, chunk)| {
            let pause = pause.clone();
            async move {
                if let Some((_, gate)) = pause.filter(|(after, _)| *after == sent) {
                    gate.passed().await;
                }
                tokio::time::sleep(chunk_delay).await;
                Ok::<_, std::io::Error>(Frame::data(chunk))
            }
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
pub(crate) struct RouterHandle {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The reload task's handle, for a router started from a file.
    pub(crate) reload: Option<switchboard::config::reload::ReloadHandle>,
    /// The directory holding its configuration file, removed with the router.
    _dir: Option<TempDir>,
}

impl RouterHandle {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends the shutdown signal and waits for the server to finish draining.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Sends the shutdown signal without waiting; returns the server task.
    pub(crate) fn begin_shutdown(&mut self) -> JoinHandle<()> {
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
pub(crate) async fn spawn_router(toml: &str, env: &[(&str, &str)]) -> RouterHandle {
    let lookup = env_lookup(env);
    let snapshot = switchboard::config::parse(toml, "test.toml", &*lookup)
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
    start(snapshot, None).await
}

/// Starts a router from the file at `path` (a symlink is fine) and its reload task, with
/// `env` as its whole environment.
pub(crate) async fn spawn_router_at(path: &Path, env: &[(&str, &str)]) -> RouterHandle {
    let lookup = env_lookup(env);
    let snapshot = switchboard::config::load(path, &*lookup)
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
    start(
        snapshot,
        Some(switchboard::config::reload::Source::new(path, lookup)),
    )
    .await
}

/// Writes `toml` to `providers.toml` in a fresh temporary directory and starts a router that
/// reloads it. Returns the router (which removes the directory when dropped) and the path.
pub(crate) async fn spawn_router_file(toml: &str, env: &[(&str, &str)]) -> (RouterHandle, PathBuf) {
    let dir = TempDir::new("router");
    let path = dir.path().join("providers.toml");
    std::fs::write(&path, toml).unwrap();
    let mut router = spawn_router_at(&path, env).await;
    router._dir = Some(dir);
    (router, path)
}

fn env_lookup(env: &[(&str, &str)]) -> switchboard::config::reload::SharedEnv {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(move |name: &str| env.get(name).cloned())
}

async fn start(
    snapshot: switchboard::config::Snapshot,
    source: Option<switchboard::config::reload::Source>,
) -> RouterHandle {
    // Served as the binary serves: by worker threads of its own, two as on the CI machine.
    let workers = std::num::NonZeroUsize::new(2).unwrap();
    let listen = "127.0.0.1:0".parse().unwrap();
    let server = switchboard::server::Server::bind(snapshot, listen, workers)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let reload = source.map(|source| switchboard::config::reload::spawn(&server.state(), source));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    RouterHandle {
        addr,
        stop: Some(stop),
        task: Some(task),
        reload,
        _dir: None,
    }
}

/// A directory under the system's temporary directory, unique to this test, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "switchboard-{tag}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long a bounded poll waits for what the router does on its own threads before the test
/// fails: far beyond what anything takes even on two busy cores, so only a real hang fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `condition` every 10 ms until it holds; panics with `what` after `within`.
pub(crate) async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for(within, what, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await;
}

/// Polls `probe` every 10 ms until it returns a value, and returns it; panics with `what`
/// after `within`. The router runs on worker threads of its own (each with its own runtime),
/// so a paused clock here cannot pause it: waits on it are bounded polls like this one.
pub(crate) async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A complete response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// The `data:` payloads of an SSE body, in order.
    pub(crate) fn sse_data(&self) -> Vec<String> {
        sse_data(&self.text())
    }

    /// The OpenAI error object of an error response.
    pub(crate) fn error(&self) -> serde_json::Value {
        self.json()["error"].clone()
    }
}

/// The `data:` payloads of an SSE text, in order.
pub(crate) fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and reads the whole answer.
pub(crate) async fn send(
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
pub(crate) async fn chat(router: &RouterHandle, body: &str) -> Answer {
    chat_with(router, &[], body).await
}

/// POSTs a JSON body to the router's chat endpoint with extra headers.
pub(crate) async fn chat_with(
    router: &RouterHandle,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
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
pub(crate) fn one_provider(
    kind: &str,
    upstream: &MockUpstream,
    route: &str,
    model: &str,
) -> String {
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
pub(crate) const UP_ENV: &[(&str, &str)] = &[("UP_KEY", "sk-upstream-secret")];

// ---------------------------------------------------------------------------------------------
// Helpers for the core proxy tests (chat, streaming, errors, auth, shutdown, fidelity, qwen,
// shipped_config). Kept in a `cfg(test)` module so clippy treats them as test code.

pub(crate) use core_helpers::*;

/// The official-SDK stand-in (async-openai) pointed at `router` with client key `key`.
pub(crate) fn sdk_client(
    router: &RouterHandle,
    key: &str,
) -> async_openai::Client<async_openai::config::OpenAIConfig> {
    async_openai::Client::with_config(
        async_openai::config::OpenAIConfig::new()
            .with_api_base(router.url("/v1"))
            .with_api_key(key),
    )
}

/// The SDK request of the tool-calling tests: a system prompt, "Weather in Paris?" and
/// `tools`, asking for the usage chunk when it is a stream.
pub(crate) fn sdk_weather_request(
    model: &str,
    tools: serde_json::Value,
    stream: bool,
) -> serde_json::Result<async_openai::types::chat::CreateChatCompletionRequest> {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in Paris?"}],
        "tools": tools
    });
    if stream {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    serde_json::from_value(body)
}

#[cfg(test)]
mod core_helpers {
    use std::time::Instant;

    use http::Version;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Asserts `answer` is an OpenAI error with `status` and `code`, in the exact OpenAI
    /// shape `{"error":{"message","type","param","code"}}`, and returns the error object.
    pub(crate) fn openai_error(answer: &Answer, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(
            answer.status.as_u16(),
            status,
            "status; body: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            answer.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..]),
            "errors are JSON"
        );
        let body = answer.json();
        let top = body.as_object().expect("error body is an object");
        assert_eq!(top.len(), 1, "only `error` at the top level: {body}");
        let error = top.get("error").expect("`error` object").clone();
        let fields = error.as_object().expect("`error` is an object");
        let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "message", "param", "type"], "{body}");
        assert!(error["message"].is_string(), "{body}");
        assert!(
            !error["message"].as_str().unwrap_or_default().is_empty(),
            "{body}"
        );
        assert!(error["type"].is_string(), "{body}");
        assert!(
            error["param"].is_null() || error["param"].is_string(),
            "{body}"
        );
        assert_eq!(error["code"], code, "{body}");
        error
    }

    /// Asserts that `needle` appears in no header (name or value) and nowhere in the body.
    pub(crate) fn assert_not_leaked(answer: &Answer, needle: &str) {
        assert!(
            !String::from_utf8_lossy(&answer.body).contains(needle),
            "`{needle}` leaked into the body: {}",
            String::from_utf8_lossy(&answer.body)
        );
        for (name, value) in &answer.headers {
            assert!(
                !name.as_str().contains(needle)
                    && !String::from_utf8_lossy(value.as_bytes()).contains(needle),
                "`{needle}` leaked into header {name}: {value:?}"
            );
        }
    }

    /// A port on 127.0.0.1 that was just bound and released: connecting to it is refused.
    pub(crate) async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// A response whose body is still arriving.
    pub(crate) struct OpenStream {
        pub(crate) status: StatusCode,
        pub(crate) headers: HeaderMap,
        pub(crate) body: Incoming,
    }

    impl OpenStream {
        /// The next data frame, or `None` at the end of the body. Panics on a body error.
        pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
            loop {
                let frame = self.body.frame().await?.expect("body frame");
                if let Ok(data) = frame.into_data() {
                    return Some(data);
                }
            }
        }

        /// Everything left in the body, as text.
        pub(crate) async fn rest(mut self) -> String {
            let mut text = Vec::new();
            while let Some(chunk) = self.next_chunk().await {
                text.extend_from_slice(&chunk);
            }
            String::from_utf8(text).unwrap()
        }
    }

    /// POSTs a chat request and returns as soon as the response headers are in.
    pub(crate) async fn open_chat_stream(router: &RouterHandle, body: &str) -> OpenStream {
        let request = Request::builder()
            .method("POST")
            .uri(router.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = client().request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        OpenStream {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends a request whose body goes out with `Transfer-Encoding: chunked` (no length known
    /// in advance), one chunk per item.
    pub(crate) async fn send_chunked(
        url: &str,
        headers: &[(&str, &str)],
        chunks: Vec<Bytes>,
    ) -> Answer {
        let mut request = Request::builder().method("POST").uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))),
        );
        let body = StreamBody::new(frames).boxed_unsync();
        let client: Client<HttpConnector, UnsyncBoxBody<Bytes, Infallible>> =
            Client::builder(TokioExecutor::new()).build_http();
        let response = client.request(request.body(body).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    /// POSTs a chat request over HTTP/2 with prior knowledge (no upgrade, no TLS).
    pub(crate) async fn chat_h2(router: &RouterHandle, body: &str) -> (Version, Answer) {
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let request = Request::builder()
            .method("POST")
            .uri(router.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let version = response.version();
        let (parts, body) = response.into_parts();
        let answer = Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        };
        (version, answer)
    }

    /// One step of a [`RawUpstream`] script.
    #[derive(Clone, Debug)]
    pub(crate) enum Step {
        /// Write these bytes to the socket as they are (one `write` + flush).
        Send(Bytes),
        /// Wait before the next step.
        Pause(Duration),
    }

    impl Step {
        pub(crate) fn send(bytes: impl Into<String>) -> Self {
            Self::Send(Bytes::from(bytes.into()))
        }
    }

    /// The head of a 200 chunked event-stream response.
    pub(crate) const SSE_HEAD: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

    /// One HTTP/1.1 chunk carrying `data`.
    pub(crate) fn http_chunk(data: &str) -> String {
        format!("{:x}\r\n{data}\r\n", data.len())
    }

    /// The chunk that ends a chunked body.
    pub(crate) const LAST_CHUNK: &str = "0\r\n\r\n";

    /// A scripted upstream at the TCP level: for each connection it reads one request, then
    /// writes and pauses exactly as scripted, then closes the socket. This controls where TCP
    /// segments split and how long the upstream stays silent between bytes.
    pub(crate) struct RawUpstream {
        pub(crate) addr: SocketAddr,
        requests: Arc<Mutex<Vec<Bytes>>>,
        /// Set when a client closed its side of a connection (the router went away).
        closed: Arc<tokio::sync::Notify>,
        _task: JoinHandle<()>,
    }

    impl RawUpstream {
        pub(crate) async fn start(script: Vec<Step>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let requests: Arc<Mutex<Vec<Bytes>>> = Arc::default();
            let closed = Arc::new(tokio::sync::Notify::new());
            let log = requests.clone();
            let on_close = closed.clone();
            let script = Arc::new(script);
            let task = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let log = log.clone();
                    let script = script.clone();
                    let on_close = on_close.clone();
                    tokio::spawn(async move {
                        let _ = stream.set_nodelay(true);
                        let Some(request) = read_request(&mut stream).await else {
                            return;
                        };
                        log.lock().unwrap().push(request);
                        let (mut reader, mut writer) = stream.into_split();
                        // Notices the router closing the connection while the script runs.
                        let watcher = tokio::spawn(async move {
                            let mut buf = [0u8; 64];
                            while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
                            on_close.notify_one();
                        });
                        for step in script.iter() {
                            match step {
                                Step::Send(bytes) => {
                                    if writer.write_all(bytes).await.is_err()
                                        || writer.flush().await.is_err()
                                    {
                                        return;
                                    }
                                }
                                Step::Pause(pause) => tokio::time::sleep(*pause).await,
                            }
                        }
                        let _ = writer.shutdown().await;
                        watcher.abort();
                    });
                }
            });
            Self {
                addr,
                requests,
                closed,
                _task: task,
            }
        }

        /// Whether the router closed a connection to this upstream within `within`.
        pub(crate) async fn closed_within(&self, within: Duration) -> bool {
            tokio::time::timeout(within, self.closed.notified())
                .await
                .is_ok()
        }

        pub(crate) fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        /// The raw requests received (head and body).
        pub(crate) fn requests(&self) -> Vec<Bytes> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// Reads one HTTP/1.1 request with a `content-length` body.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Bytes> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return Some(Bytes::from(buf));
                }
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits until connecting to `addr` is refused; `false` if it still accepts after `within`.
    pub(crate) async fn wait_until_refused(addr: SocketAddr, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
                _ if Instant::now() >= until => return false,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The OpenAI-wire scenario of the routing tests (failover, metrics, limits, poison...):
// `openai` providers NAME serving model `m-NAME`, answering as "answer from NAME".

/// An OpenAI chat completion from `who` (model `m-who`, text "answer from who", usage 5 + 3).
pub(crate) fn completion(who: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-{who}","object":"chat.completion","created":1700000000,"model":"m-{who}","choices":[{{"index":0,"message":{{"role":"assistant","content":"answer from {who}"}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}}}"#
    )
}

/// A 200 with [`completion`] from `who`.
pub(crate) fn ok(who: &str) -> Reply {
    Reply::json(200, &completion(who))
}

/// One OpenAI stream chunk from `who` with this `delta` and `finish_reason` (JSON text).
pub(crate) fn chunk(who: &str, delta: &str, finish: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-{who}","object":"chat.completion.chunk","created":1700000000,"model":"m-{who}","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
    )
}

/// The first chunk of a stream from `who`: the assistant role and empty content.
pub(crate) fn role_chunk(who: &str) -> String {
    chunk(who, r#"{"role":"assistant","content":""}"#, "null")
}

/// A content chunk from `who` carrying `text`.
pub(crate) fn content_chunk(who: &str, text: &str) -> String {
    chunk(who, &format!(r#"{{"content":"{text}"}}"#), "null")
}

/// A complete stream from `who`: role, "answer from who", finish `stop`, `[DONE]`.
pub(crate) fn stream_of(who: &str) -> Reply {
    Reply::sse_data(&[
        &role_chunk(who),
        &content_chunk(who, &format!("answer from {who}")),
        &chunk(who, "{}", r#""stop""#),
        "[DONE]",
    ])
}

/// An OpenAI error body.
pub(crate) fn error_body(kind: &str, code: &str, message: &str) -> String {
    format!(r#"{{"error":{{"message":"{message}","type":"{kind}","param":null,"code":"{code}"}}}}"#)
}

/// OpenAI's 429 for too many requests (add `retry-after` with [`Reply::header`]).
pub(crate) fn rate_limited() -> Reply {
    Reply::json(
        429,
        &error_body("requests", "rate_limit_exceeded", "Rate limit reached"),
    )
}

/// A server error with status `code`.
pub(crate) fn status(code: u16) -> Reply {
    Reply::json(code, &error_body("server_error", "server_error", "boom"))
}

/// `[routing]` lines, then `openai` providers `NAME` at their base URLs (key `UP_KEY`, see
/// [`UP_ENV`]) and route `r` over `NAME/m-NAME` in the given order, with `route_extra` lines in
/// its table.
pub(crate) fn routed(routing: &str, route_extra: &str, providers: &[(&str, String)]) -> String {
    let mut text = format!("[routing]\n{routing}\n\n");
    for (name, base) in providers {
        text += &format!(
            "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key_env = \"UP_KEY\"\n\n"
        );
    }
    let targets: Vec<String> = providers
        .iter()
        .map(|(name, _)| format!("\"{name}/m-{name}\""))
        .collect();
    text += "[routes.r]\n";
    if !route_extra.is_empty() {
        text += route_extra;
        text += "\n";
    }
    text += &format!("targets = [{}]\n", targets.join(", "));
    text
}

// ---------------------------------------------------------------------------------------------
// An SDK stream read to its end, as the SDK tests check it.

/// What an async-openai stream delivered: every chunk, and the text, the one tool call (index
/// 0: id, name and arguments joined from their fragments), the finish reasons and the usage
/// chunks folded from them.
#[derive(Debug, Default)]
pub(crate) struct SdkStream {
    pub(crate) chunks: Vec<async_openai::types::chat::CreateChatCompletionStreamResponse>,
    pub(crate) text: String,
    pub(crate) call_id: Option<String>,
    pub(crate) call_name: String,
    pub(crate) arguments: String,
    pub(crate) finishes: Vec<async_openai::types::chat::FinishReason>,
    pub(crate) usages: Vec<async_openai::types::chat::CompletionUsage>,
    /// Chunks that came after the first usage chunk (OpenAI sends it last).
    pub(crate) after_usage: usize,
}

impl SdkStream {
    /// Drains `stream` to its end; every item must parse, and a hang fails after
    /// [`PATIENCE`].
    pub(crate) async fn read(
        stream: async_openai::types::chat::ChatCompletionResponseStream,
    ) -> Self {
        let items: Vec<_> = tokio::time::timeout(PATIENCE, stream.collect::<Vec<_>>())
            .await
            .expect("the stream ends");
        let mut read = Self::default();
        for item in items {
            let chunk = item.unwrap_or_else(|e| panic!("stream item failed: {e}"));
            read.fold(&chunk);
            read.chunks.push(chunk);
        }
        read
    }

    fn fold(&mut self, chunk: &async_openai::types::chat::CreateChatCompletionStreamResponse) {
        if !self.usages.is_empty() {
            self.after_usage += 1;
        }
        if let Some(usage) = &chunk.usage {
            self.usages.push(usage.clone());
        }
        for choice in &chunk.choices {
            self.text
                .push_str(choice.delta.content.as_deref().unwrap_or_default());
            for call in choice.delta.tool_calls.iter().flatten() {
                assert_eq!(call.index, 0, "one tool call");
                if let Some(id) = &call.id {
                    self.call_id = Some(id.clone());
                }
                if let Some(function) = &call.function {
                    self.call_name
                        .push_str(function.name.as_deref().unwrap_or_default());
                    self.arguments
                        .push_str(function.arguments.as_deref().unwrap_or_default());
                }
            }
            self.finishes.extend(choice.finish_reason);
        }
    }

    /// The tool call's arguments, parsed.
    pub(crate) fn arguments_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.arguments)
            .unwrap_or_else(|e| panic!("joined arguments are not JSON ({e}): {}", self.arguments))
    }

    /// The one usage chunk, which must come last.
    pub(crate) fn usage(&self) -> &async_openai::types::chat::CompletionUsage {
        assert_eq!(self.usages.len(), 1, "one usage chunk: {:?}", self.usages);
        assert_eq!(self.after_usage, 0, "the usage chunk comes last");
        &self.usages[0]
    }
}
