//! Graceful shutdown: a stream that is open when the signal comes finishes whole, new
//! connections are refused at once, and the server stops as soon as the last request is done.
#![cfg(test)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    Gate, MockUpstream, Reply, UP_ENV, one_provider, open_chat_stream, spawn_router,
    wait_until_refused,
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
