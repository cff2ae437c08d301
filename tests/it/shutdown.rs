//! Graceful shutdown: a stream that is open when the signal comes finishes whole, new
//! connections are refused at once, and the server stops as soon as the last request is done.
//! What is still running when the grace period ends is cut, and recorded as cut by the server
//! (`server_shutdown`), never as a client's hang-up.
#![cfg(test)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::scrape;
use crate::support::{
    Gate, MockUpstream, Reply, TempDir, UP_ENV, eventually, one_provider, open_chat_stream,
    spawn_router, wait_until_refused,
};

const EVENTS: &[&str] = &[
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"content":"one "},"finish_reason":null}]}"#,
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"content":"two "},"finish_reason":null}]}"#,
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"content":"three"},"finish_reason":null}]}"#,
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    "[DONE]",
];

#[tokio::test]
async fn an_open_stream_finishes_whole_during_a_graceful_shutdown() {
    // The stream stops after its first content (its commit point) until the test has seen the
    // listener go away: it is in flight during the shutdown however slow the machine.
    let in_flight = Gate::new();
    let upstream = MockUpstream::start(vec![
        Reply::sse_data(EVENTS)
            .chunk_delay(Duration::from_millis(20))
            .pause_after(2, &in_flight),
    ])
    .await;
    let mut router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;
    let addr = router.addr;

    let mut stream = open_chat_stream(
        &router,
        r#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"count"}]}"#,
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    let first = stream.next_chunk().await.expect("a first chunk");
    let mut text = String::from_utf8(first.to_vec()).unwrap();

    let server = router.begin_shutdown();

    // The listener goes away at once, while the stream is still running.
    assert!(
        wait_until_refused(addr, Duration::from_secs(5)).await,
        "new connections must be refused once shutdown has begun"
    );
    assert!(!server.is_finished(), "the open stream holds the server up");

    in_flight.open();
    text.push_str(&stream.rest().await);
    assert_eq!(
        crate::support::sse_data(&text),
        EVENTS,
        "every event, then [DONE]: {text}"
    );

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once its last stream is done")
        .unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_a_shutdown() {
    let router = spawn_router(
        r#"
[server]
shutdown_grace = "30s"

[providers.local]
kind = "mock"

[routes.demo]
targets = ["local/echo"]
"#,
        &[],
    )
    .await;
    // A keep-alive connection that has been answered once and is now idle.
    let mut idle = TcpStream::connect(router.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: switchboard\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&received).contains(r#"{"status":"ok"}"#) {
        let n = idle.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "the connection stays open after a keep-alive answer");
        received.extend_from_slice(&buf[..n]);
    }
    assert!(received.starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();

    // Bounded far below the 30 s grace, far above what two busy cores need to stop.
    tokio::time::timeout(Duration::from_secs(10), router.shutdown())
        .await
        .expect("an idle connection must not make shutdown wait for the 30s grace");

    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The server closed the idle connection rather than leaving it dangling.
    let n = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf))
        .await
        .expect("closed, not left open")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn streams_still_open_when_the_grace_period_ends_are_cut() {
    use http_body_util::BodyExt;

    // 100 events 50 ms apart: five seconds of stream, far longer than the 200 ms grace plus
    // the bounds below, so a stream that is not cut is told apart on two busy cores too.
    let many: Vec<&str> = std::iter::repeat_n(EVENTS[1], 100)
        .chain(std::iter::once("[DONE]"))
        .collect();
    let upstream = MockUpstream::start(vec![
        Reply::sse_data(&many).chunk_delay(Duration::from_millis(50)),
    ])
    .await;
    let toml = format!(
        "[server]\nshutdown_grace = \"200ms\"\n{}",
        one_provider("openai", &upstream, "fast", "m1")
    );
    let mut router = spawn_router(&toml, UP_ENV).await;
    let mut stream = open_chat_stream(
        &router,
        r#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"count"}]}"#,
    )
    .await;
    assert!(stream.next_chunk().await.is_some());

    let server = router.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("run() returns once the grace period is over")
        .unwrap();
    let grace_over = Instant::now();

    // From here on the connection must be cut: the stream ends (with an error, as it is
    // incomplete) instead of running on to [DONE] for seconds more.
    let mut received = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(frame) = stream.body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        received.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream never ended");
    assert!(
        !received.contains("[DONE]"),
        "the stream ran to completion after the grace period"
    );
    assert!(
        grace_over.elapsed() < Duration::from_secs(1),
        "cut at the end of the grace period, not {:?} later",
        grace_over.elapsed()
    );
}

#[tokio::test]
async fn requests_and_streams_cut_at_the_end_of_the_grace_period_are_logged_as_server_shutdown() {
    let dir = TempDir::new("shutdown-cut");
    let log = dir.path().join("usage.jsonl");
    let words = vec!["word"; 200].join(" ");
    let toml = format!(
        r#"
[server]
shutdown_grace = "200ms"

[usage_log]
path = "{log}"

[providers.lazy]
kind = "mock"
latency = "30s"

[providers.slow]
kind = "mock"
chunk_delay = "50ms"
reply = "{words}"

[routes.lazy]
targets = ["lazy/late"]

[routes.slow]
targets = ["slow/words"]
"#,
        log = log.display()
    );
    let mut router = spawn_router(&toml, &[]).await;
    let mut stream = open_chat_stream(
        &router,
        r#"{"model":"slow","stream":true,"messages":[{"role":"user","content":"count"}]}"#,
    )
    .await;
    assert_eq!(stream.status, 200);
    assert!(stream.next_chunk().await.is_some());
    // A request whose answer is 30 s away, sent by hand so it stays in flight on its own.
    let body = r#"{"model":"lazy","messages":[{"role":"user","content":"wait"}]}"#;
    let mut unanswered = TcpStream::connect(router.addr).await.unwrap();
    unanswered
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: switchboard\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let handle = &router;
    eventually(
        Duration::from_secs(5),
        "both requests in flight",
        move || async move {
            scrape(handle)
                .await
                .get("switchboard_inflight_requests", &[])
                == Some(2.0)
        },
    )
    .await;

    let server = router.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("run() returns once the grace period is over")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(1), unanswered.read(&mut buf))
        .await
        .expect("the unanswered request's connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing was answered");

    // run() returned: every line is on disk.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let line = |route: &str| {
        lines
            .iter()
            .find(|line| line["route"] == route)
            .unwrap_or_else(|| panic!("no line for {route}: {text}"))
    };
    let unanswered = line("lazy");
    assert_eq!(unanswered["status"], 503, "{text}");
    assert_eq!(unanswered["error"], "server_shutdown", "{text}");
    let streamed = line("slow");
    assert_eq!(streamed["status"], 200, "its headers had gone out: {text}");
    assert_eq!(streamed["error"], "server_shutdown", "{text}");
}
