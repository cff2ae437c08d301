//! Hostile clients, tried from outside over real sockets: connections held for free, a router
//! filled past `max_connections` or `max_inflight`, cross-site browser requests, bodies that
//! are not JSON or too large for an async uploader.
#![cfg(test)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::*;

/// A mock-served router with `server` settings.
fn router_toml(server: &str) -> String {
    format!(
        "[server]\n{server}\n\n[providers.local]\nkind = \"mock\"\nchunk_delay = \"300ms\"\n\n[routes.demo]\ntargets = [\"local/echo\"]\n"
    )
}

const GOOD: &str = r#"{"model":"demo","messages":[{"role":"user","content":"hello"}]}"#;
const STREAM: &str =
    r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"one two three"}]}"#;

/// Reads (and drops) what the router sends until it closes the connection; how long after
/// `since` that was, or `None` when it is still open after `within`.
async fn closed_after(
    stream: &mut TcpStream,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.ok()
}

/// One keep-alive `GET /healthz` on `stream`, its answer read.
async fn health_over(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: router\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while !got.ends_with(br#"{"status":"ok"}"#) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn connections_that_never_complete_a_head_are_closed_after_header_read_timeout() {
    let router = spawn_router(&router_toml("header_read_timeout = \"300ms\""), &[]).await;
    let attacks: [&[u8]; 3] = [
        b"",                                              // nothing at all
        b"PRI * HTTP/2.0\r\n",                            // part of the HTTP/2 preface
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: r", // a head that never ends
    ];
    for sent in attacks {
        let mut stream = TcpStream::connect(router.addr).await.unwrap();
        let since = Instant::now();
        stream.write_all(sent).await.unwrap();
        let closed = closed_after(&mut stream, since, Duration::from_secs(10)).await;
        let closed = closed.unwrap_or_else(|| panic!("{sent:?}: still open after 10 s"));
        assert!(
            closed >= Duration::from_millis(250),
            "{sent:?}: closed after {closed:?}"
        );
    }
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_do_not_keep_a_connection() {
    let router = spawn_router(&router_toml("header_read_timeout = \"300ms\""), &[]).await;
    let mut stream = TcpStream::connect(router.addr).await.unwrap();
    let since = Instant::now();
    let (mut reader, mut writer) = stream.split();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: router\r\nx-pad: {}\r\n\r\n",
        "a".repeat(200)
    );
    let trickle = async {
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let mut buf = [0u8; 256];
    let closed = async {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => since.elapsed(),
            Ok(_) => panic!("the trickled request was answered"),
        }
    };
    tokio::select! {
        closed = closed => assert!(closed < Duration::from_secs(4), "closed after {closed:?}"),
        () = trickle => panic!("the whole head went through: the connection was not closed"),
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_lives_until_idle_timeout() {
    let toml = router_toml("header_read_timeout = \"200ms\"\nidle_timeout = \"3s\"");
    let router = spawn_router(&toml, &[]).await;
    let mut stream = TcpStream::connect(router.addr).await.unwrap();
    health_over(&mut stream).await;
    // Idle for longer than the header timeout: still usable (it is not a slow head). This
    // sleep is the behaviour under test (idleness itself), not a wait for the router.
    tokio::time::sleep(Duration::from_millis(600)).await;
    health_over(&mut stream).await;
    let since = Instant::now();
    let closed = closed_after(&mut stream, since, Duration::from_secs(15))
        .await
        .expect("an idle connection is closed");
    assert!(
        closed >= Duration::from_millis(2500),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn beyond_max_connections_new_connections_are_closed_and_counted() {
    let router = spawn_router(&router_toml("max_connections = 2"), &[]).await;
    let mut first = TcpStream::connect(router.addr).await.unwrap();
    health_over(&mut first).await;
    let mut second = TcpStream::connect(router.addr).await.unwrap();
    health_over(&mut second).await;

    let mut third = TcpStream::connect(router.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: r\r\n\r\n")
        .await;
    let closed = closed_after(&mut third, Instant::now(), Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the third connection was served");
    // The open ones keep working.
    health_over(&mut first).await;

    drop(second);
    // Until the router has seen the close, a new connection may still be refused.
    eventually(Duration::from_secs(5), "a place frees up", || async {
        let Ok(mut stream) = TcpStream::connect(router.addr).await else {
            return false;
        };
        let get = b"GET /metrics HTTP/1.1\r\nhost: r\r\nconnection: close\r\n\r\n";
        let mut text = Vec::new();
        if stream.write_all(get).await.is_err() || stream.read_to_end(&mut text).await.is_err() {
            return false;
        }
        // At least the third one (refused tries of this loop count too).
        String::from_utf8_lossy(&text)
            .lines()
            .find_map(|line| line.strip_prefix("switchboard_connections_refused_total "))
            .and_then(|count| count.parse::<u64>().ok())
            .is_some_and(|count| count >= 1)
    })
    .await;
}

#[tokio::test]
async fn beyond_max_inflight_a_request_is_refused_at_once_with_503_overloaded() {
    let router = spawn_router(&router_toml("max_inflight = 1"), &[]).await;
    // A stream holds its place until its last byte.
    let mut stream = open_chat_stream(&router, STREAM).await;
    assert_eq!(stream.status, 200);

    let started = Instant::now();
    let refused = chat(&router, GOOD).await;
    let error = openai_error(&refused, 503, "overloaded");
    assert_eq!(error["type"], "server_error");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["x-should-retry"], "false");
    assert!(refused.headers.contains_key("x-request-id"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not queued"
    );

    while stream.next_chunk().await.is_some() {}
    eventually(
        Duration::from_secs(5),
        "the place is given back",
        || async { chat(&router, GOOD).await.status == 200 },
    )
    .await;
    let metrics = send("GET", &router.url("/metrics"), &[], "").await.text();
    assert!(
        metrics.contains(r#"switchboard_requests_total{endpoint="chat",model="none",provider="none",route="unknown",status="503"} 1"#),
        "the refusal is counted:\n{metrics}"
    );
}

const OPENAI_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

const BROWSER: &str = r#"
[server]
cors_allowed_origins = ["https://app.example.com"]
"#;

#[tokio::test]
async fn cross_site_browser_requests_never_reach_a_provider() {
    let upstream = MockUpstream::start(vec![Reply::json(200, OPENAI_ANSWER)]).await;
    let toml = format!(
        "{BROWSER}\n{}",
        one_provider("openai", &upstream, "demo", "gpt-x")
    );
    let router = spawn_router(&toml, UP_ENV).await;
    let url = router.url("/v1/chat/completions");
    let json = ("content-type", "application/json");

    for headers in [
        vec![json, ("origin", "https://evil.example")],
        vec![json, ("sec-fetch-site", "cross-site")],
    ] {
        let answer = send("POST", &url, &headers, GOOD).await;
        openai_error(&answer, 403, "cross_origin_forbidden");
    }
    // A browser's "simple" POST needs no preflight: text/plain is refused before reading.
    let simple = send("POST", &url, &[("content-type", "text/plain")], GOOD).await;
    openai_error(&simple, 415, "unsupported_media_type");
    // Nor does a GET that a page can embed.
    let embedded = send(
        "GET",
        &router.url("/v1/models"),
        &[("sec-fetch-site", "cross-site")],
        "",
    )
    .await;
    openai_error(&embedded, 403, "cross_origin_forbidden");
    assert_eq!(
        upstream.calls(),
        0,
        "a refused request reached the provider"
    );
}

#[tokio::test]
async fn a_trusted_origin_gets_its_preflight_and_cors_headers() {
    let upstream = MockUpstream::start(vec![Reply::json(200, OPENAI_ANSWER)]).await;
    let toml = format!(
        "{BROWSER}\n{}",
        one_provider("openai", &upstream, "demo", "gpt-x")
    );
    let router = spawn_router(&toml, UP_ENV).await;
    let url = router.url("/v1/chat/completions");
    let origin = ("origin", "https://app.example.com");

    let preflight = send(
        "OPTIONS",
        &url,
        &[
            origin,
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type, x-stainless-os",
            ),
        ],
        "",
    )
    .await;
    assert_eq!(preflight.status, 200);
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        preflight.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        preflight.headers["access-control-allow-headers"],
        "authorization, content-type, x-stainless-os"
    );

    let answer = send(
        "POST",
        &url,
        &[
            origin,
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        r#"{"model":"demo","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(answer.headers["access-control-expose-headers"], "*");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn a_body_too_large_is_a_413_the_uploader_reads_with_connection_close() {
    let router = spawn_router(&router_toml("max_body = \"1KiB\""), &[]).await;
    // A raw HTTP/1 uploader that sends its whole (chunked) body before it reads, as async
    // clients do: it must get the 413, not a reset.
    let mut stream = TcpStream::connect(router.addr).await.unwrap();
    let mut request = Vec::from(
        &b"POST /v1/chat/completions HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"[..],
    );
    for _ in 0..3 {
        request.extend_from_slice(format!("258\r\n{}\r\n", "x".repeat(600)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the router answers and closes")
        .expect("no reset: the body was drained before the answer");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("x-should-retry: false"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
}

#[tokio::test]
async fn a_client_request_id_with_spaces_or_non_ascii_is_replaced() {
    let router = spawn_router(&router_toml(""), &[]).await;
    let mut stream = TcpStream::connect(router.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: r\r\nx-request-id: forged id\xff\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let id = answer
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no id in {answer}"));
    assert!(id.starts_with("req_"), "{id}");
}

/// The user and system CPU time of process `pid` so far, from `/proc`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) end with `)`.
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Linux reports in clock ticks of 1/100 s on every platform it supports here.
    Duration::from_millis(ticks * 10)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn out_of_file_descriptors_the_accept_loop_backs_off_and_open_connections_are_served() {
    use std::process::{Command, Stdio};

    let dir = TempDir::new("emfile");
    let config = dir.path().join("providers.toml");
    std::fs::write(
        &config,
        router_toml("header_read_timeout = \"60s\"\nreload_interval = \"0s\""),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("switchboard.log");
    // The real binary under a small descriptor limit, as a loaded production box would be.
    let mut child = Command::new("prlimit")
        .args(["--nofile=48:48", "--"])
        .arg(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", config.to_str().unwrap(), "--workers", "1"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("prlimit (util-linux) runs the router");
    let pid = child.id();
    eventually(
        Duration::from_secs(10),
        "the router listens",
        || async move { TcpStream::connect(("127.0.0.1", port)).await.is_ok() },
    )
    .await;
    let mut kept = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    health_over(&mut kept).await;

    // Idle connections until the router cannot accept any more.
    let mut idle = Vec::new();
    for _ in 0..80 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            idle.push(stream);
        }
    }
    eventually(Duration::from_secs(5), "accept fails", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("accept failed")
        }
    })
    .await;

    // Out of descriptors for two seconds: no spinning, at most a line a second. The sleep is
    // the window measured (CPU and lines per second of it), not a wait for the router.
    let (cpu_before, lines_before) = (cpu_time(pid), accept_lines(&log));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_time(pid) - cpu_before;
    let lines = accept_lines(&log) - lines_before;
    assert!(
        cpu < Duration::from_millis(500),
        "the accept loop spun: {cpu:?} of CPU in 2 s"
    );
    assert!(lines <= 3, "{lines} 'accept failed' lines in 2 s");
    // The connection that was already open is still served.
    health_over(&mut kept).await;

    // Descriptors come back: new connections are served again.
    drop(idle);
    eventually(
        Duration::from_secs(10),
        "a new connection is served",
        || async move {
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
                return false;
            };
            let get = b"GET /healthz HTTP/1.1\r\nhost: r\r\nconnection: close\r\n\r\n";
            let mut text = Vec::new();
            stream.write_all(get).await.is_ok()
                && stream.read_to_end(&mut text).await.is_ok()
                && text.starts_with(b"HTTP/1.1 200")
        },
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
}

/// How many "accept failed" lines the log at `path` has.
fn accept_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches("accept failed")
        .count()
}

#[tokio::test]
async fn over_http2_a_body_too_large_ends_only_its_stream() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let router = spawn_router(&router_toml("max_body = \"1KiB\""), &[]).await;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let post = |body: String| {
        http::Request::post(router.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::from(body))
            .unwrap()
    };
    let big = format!(
        r#"{{"model":"demo","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(4096)
    );
    let refused = client.request(post(big)).await.unwrap();
    assert_eq!(refused.version(), http::Version::HTTP_2);
    assert_eq!(refused.status(), 413);
    assert!(!refused.headers().contains_key("connection"));
    assert_eq!(refused.headers()["x-should-retry"], "false");
    // The same connection goes on serving.
    let served = client.request(post(GOOD.to_owned())).await.unwrap();
    assert_eq!(served.status(), 200);
    let body = served.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("hello"));
}
