//! Failover across a route's targets: every failure class of the first target hands the
//! request to the next one invisibly; a wrong request is returned as it is; cooldowns keep a
//! failed provider out without calling it; and when nothing can answer the client gets a fast,
//! machine-readable 429 or 503 that tells the SDK not to retry. Streams fail over until their
//! commit point and end with an error event after it. Weighted routes spread deterministically.
#![cfg(test)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::{
    ATTEMPTS, FAILOVERS, assert_moved, attempts, cooldown, cooled_down, failovers, scrape,
};
use crate::support::{
    Answer, Gate, MockUpstream, RawUpstream, Reply, RouterHandle, SSE_HEAD, Step, chat, chat_with,
    closed_port, completion, content_chunk, error_body, http_chunk, ok, openai_error, rate_limited,
    role_chunk, routed, spawn_router, status, stream_of,
};

const CHAT: &str = r#"{"model":"r","messages":[{"role":"user","content":"pay 10.00 EUR"}]}"#;
const STREAM_CHAT: &str =
    r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"pay 10.00 EUR"}]}"#;
const ENV: &[(&str, &str)] = &[("UP_KEY", "sk-upstream-secret")];
/// Long enough that a provider which is not supposed to answer in time never does.
const SLOW: Duration = Duration::from_secs(5);
/// The bound on an answer that must not wait for a [`SLOW`] provider: far below `SLOW`, and far
/// above what the router needs even on two busy cores, so only the behaviour under test decides.
const PROMPT: Duration = Duration::from_millis(2500);

/// A router over route `r` = a then b.
async fn a_then_b(routing: &str, a: String, b: &MockUpstream) -> RouterHandle {
    spawn_router(&routed(routing, "", &[("a", a), ("b", b.url("/v1"))]), ENV).await
}

/// Asserts that b answered after one failed attempt at a, and that the client saw only b.
fn answered_by_b(answer: &Answer, stream: bool, case: &str) {
    assert_eq!(answer.status, 200, "{case}: {}", answer.text());
    assert_eq!(answer.headers["x-switchboard-provider"], "b", "{case}");
    assert_eq!(answer.headers["x-switchboard-model"], "m-b", "{case}");
    assert_eq!(answer.headers["x-switchboard-attempts"], "2", "{case}");
    assert!(
        !answer.text().contains("chatcmpl-a"),
        "{case}: nothing of a reaches the client: {}",
        answer.text()
    );
    if stream {
        assert_eq!(
            answer.headers["content-type"], "text/event-stream",
            "{case}"
        );
        let data = answer.sse_data();
        assert_eq!(data.len(), 4, "{case}: {}", answer.text());
        assert_eq!(data[0], role_chunk("b"), "{case}");
        assert_eq!(data[1], content_chunk("b", "answer from b"), "{case}");
        assert_eq!(data[3], "[DONE]", "{case}");
    } else {
        assert_eq!(
            answer.json()["choices"][0]["message"]["content"],
            "answer from b",
            "{case}"
        );
    }
}

/// a fails once with `reply`; b answers; a was called once, b once.
async fn fails_over(case: &str, a_reply: Reply, stream: bool) {
    let a = MockUpstream::start(vec![a_reply]).await;
    let b = MockUpstream::start(vec![if stream { stream_of("b") } else { ok("b") }]).await;
    let router = a_then_b("attempt_timeout = \"200ms\"", a.url("/v1"), &b).await;
    let started = Instant::now();

    let answer = chat(&router, if stream { STREAM_CHAT } else { CHAT }).await;

    answered_by_b(&answer, stream, case);
    assert_eq!(a.calls(), 1, "{case}: a is called exactly once");
    assert_eq!(b.calls(), 1, "{case}");
    assert!(
        started.elapsed() < PROMPT,
        "{case}: took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_429_with_retry_after_fails_over() {
    fails_over(
        "429 retry-after",
        rate_limited().header("retry-after", "1"),
        false,
    )
    .await;
}

#[tokio::test]
async fn a_429_without_retry_after_fails_over() {
    fails_over("429", rate_limited(), false).await;
}

#[tokio::test]
async fn a_429_with_an_http_date_retry_after_fails_over() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
    fails_over(
        "429 http-date",
        rate_limited().header("retry-after", &at),
        false,
    )
    .await;
}

#[tokio::test]
async fn a_503_fails_over() {
    fails_over("503", status(503), false).await;
}

#[tokio::test]
async fn a_529_fails_over() {
    fails_over(
        "529",
        Reply::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        false,
    )
    .await;
}

#[tokio::test]
async fn a_500_fails_over() {
    fails_over("500", status(500), false).await;
}

#[tokio::test]
async fn a_502_fails_over() {
    fails_over("502", Reply::json(502, "<html>bad gateway</html>"), false).await;
}

#[tokio::test]
async fn a_504_fails_over() {
    fails_over("504", status(504), false).await;
}

#[tokio::test]
async fn a_refused_connection_fails_over() {
    let b = MockUpstream::start(vec![ok("b")]).await;
    let refused = format!("http://127.0.0.1:{}/v1", closed_port().await);
    let router = a_then_b("", refused, &b).await;

    let answer = chat(&router, CHAT).await;

    answered_by_b(&answer, false, "connection refused");
    assert_eq!(b.calls(), 1);
}

#[tokio::test]
async fn a_tls_failure_fails_over() {
    // https:// to a plain-HTTP server: the handshake fails before any request is sent.
    let plain = MockUpstream::start(vec![ok("a")]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b(
        "attempt_timeout = \"2s\"",
        format!("https://127.0.0.1:{}/v1", plain.addr.port()),
        &b,
    )
    .await;

    answered_by_b(&chat(&router, CHAT).await, false, "tls failure");
    assert_eq!(plain.calls(), 0);
}

#[tokio::test]
async fn a_connection_closed_before_the_response_fails_over() {
    // Reads the request, then closes without a byte of response.
    let hangs_up = RawUpstream::start(vec![]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b("", hangs_up.url("/v1"), &b).await;

    answered_by_b(&chat(&router, CHAT).await, false, "closed before response");
    assert_eq!(hangs_up.requests().len(), 1);
}

#[tokio::test]
async fn a_malformed_200_body_fails_over() {
    fails_over(
        "malformed 200",
        Reply::json(200, "<html>oops</html>"),
        false,
    )
    .await;
}

#[tokio::test]
async fn slow_headers_past_attempt_timeout_fail_over() {
    fails_over("slow headers", ok("a").delay(SLOW), false).await;
}

#[tokio::test]
async fn a_stream_whose_first_event_stalls_fails_over() {
    // Headers at once, then nothing within attempt_timeout.
    fails_over(
        "stream stall",
        Reply::sse_data(&[&role_chunk("a"), &content_chunk("a", "late")]).chunk_delay(SLOW),
        true,
    )
    .await;
}

#[tokio::test]
async fn a_stream_stalling_after_its_role_chunk_fails_over() {
    // The role-only preamble is no commitment: a stall after it still fails over.
    let preamble_then_stall = RawUpstream::start(vec![
        Step::send(SSE_HEAD),
        Step::send(http_chunk(&format!("data: {}\n\n", role_chunk("a")))),
        Step::Pause(SLOW),
    ])
    .await;
    let b = MockUpstream::start(vec![stream_of("b")]).await;
    let router = a_then_b(
        "attempt_timeout = \"200ms\"",
        preamble_then_stall.url("/v1"),
        &b,
    )
    .await;

    let answer = chat(&router, STREAM_CHAT).await;

    answered_by_b(&answer, true, "preamble then stall");
    assert_eq!(preamble_then_stall.requests().len(), 1);
}

#[tokio::test]
async fn an_in_band_error_before_content_fails_over() {
    fails_over(
        "in-band error",
        Reply::sse_data(&[
            &role_chunk("a"),
            &error_body("server_error", "overloaded", "The server is overloaded"),
        ]),
        true,
    )
    .await;
}

#[tokio::test]
async fn a_stream_broken_before_content_fails_over() {
    // The role chunk arrives, then the socket closes mid-body (no last chunk). At the TCP
    // level, since MockUpstream's abort() can lose its last chunk in hyper's buffer.
    let broken = RawUpstream::start(vec![
        Step::send(SSE_HEAD),
        Step::send(http_chunk(&format!("data: {}\n\n", role_chunk("a")))),
    ])
    .await;
    let b = MockUpstream::start(vec![stream_of("b")]).await;
    let router = a_then_b("", broken.url("/v1"), &b).await;

    answered_by_b(
        &chat(&router, STREAM_CHAT).await,
        true,
        "broken before content",
    );
    assert_eq!(broken.requests().len(), 1);
    assert_eq!(b.calls(), 1);
}

#[tokio::test]
async fn a_malformed_event_before_content_fails_over() {
    fails_over(
        "malformed event",
        Reply::sse_data(&[
            &role_chunk("a"),
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"#,
        ]),
        true,
    )
    .await;
}

#[tokio::test]
async fn a_stream_of_a_503_fails_over() {
    fails_over("stream 503", status(503), true).await;
}

/// a answers `code`; the client gets that status with a's error, and b is never called.
async fn returned_as_is(code: u16) {
    let a = MockUpstream::start(vec![Reply::json(
        code,
        r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    )])
    .await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    let answer = chat(&router, CHAT).await;

    let error = openai_error(&answer, code, "context_length_exceeded");
    assert_eq!(error["param"], "messages");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length")
    );
    assert_eq!(a.calls(), 1);
    assert_eq!(b.calls(), 0, "a wrong request is not failed over");

    // A wrong request says nothing about a's health: the next request goes to a again.
    chat(&router, CHAT).await;
    assert_eq!(a.calls(), 2);
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn a_400_is_returned_and_never_failed_over() {
    returned_as_is(400).await;
}

#[tokio::test]
async fn a_422_is_returned_and_never_failed_over() {
    returned_as_is(422).await;
}

#[tokio::test]
async fn a_413_is_returned_and_never_failed_over() {
    returned_as_is(413).await;
}

/// Route `r` = a qwen provider at `a`, then the openai provider b.
fn qwen_then_b(a: &MockUpstream, b: &MockUpstream) -> String {
    routed("", "", &[("a", a.url("/v1")), ("b", b.url("/v1"))]).replacen(
        "[providers.a]\nkind = \"openai\"",
        "[providers.a]\nkind = \"qwen\"",
        1,
    )
}

#[tokio::test]
async fn a_qwen_arrearage_400_fails_over_as_an_account_problem() {
    let a = MockUpstream::start(vec![Reply::json(
        400,
        r#"{"error":{"message":"Access denied, please make sure your account is in good standing.","type":"Arrearage","param":null,"code":"Arrearage"},"request_id":"r1"}"#,
    )])
    .await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = spawn_router(&qwen_then_b(&a, &b), ENV).await;

    answered_by_b(&chat(&router, CHAT).await, false, "Arrearage");
    let metrics = scrape(&router).await;
    assert_eq!(attempts(&metrics, "a", "account"), 1.0);
    assert!(cooldown(&metrics, "a") > 500.0, "the long account cooldown");
}

#[tokio::test]
async fn a_qwen_content_refusal_is_returned_not_failed_over() {
    let a = MockUpstream::start(vec![Reply::json(
        400,
        r#"{"error":{"message":"Input data may contain inappropriate content.","type":"data_inspection_failed","param":null,"code":"data_inspection_failed"}}"#,
    )])
    .await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = spawn_router(&qwen_then_b(&a, &b), ENV).await;

    let answer = chat(&router, CHAT).await;

    openai_error(&answer, 400, "content_filter");
    assert_eq!(b.calls(), 0);
}

fn key_refused() -> Reply {
    Reply::json(
        401,
        &error_body(
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided: sk-up***cret",
        ),
    )
}

#[tokio::test]
async fn an_upstream_401_fails_over_and_takes_the_provider_out() {
    let a = MockUpstream::start(vec![key_refused(), ok("a")]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    answered_by_b(&chat(&router, CHAT).await, false, "401");

    // The long account cooldown: a is not asked again.
    let answer = chat(&router, CHAT).await;
    assert_eq!(answer.headers["x-switchboard-provider"], "b");
    assert_eq!(a.calls(), 1);
    assert!(cooldown(&scrape(&router).await, "a") > 60.0);
}

#[tokio::test]
async fn billing_failures_fail_over() {
    for (case, reply) in [
        (
            "403",
            Reply::json(403, &error_body("permission_error", "forbidden", "no")),
        ),
        (
            "402",
            Reply::json(402, &error_body("billing_error", "billing_error", "pay up")),
        ),
        (
            "insufficient_quota",
            Reply::json(
                429,
                &error_body(
                    "insufficient_quota",
                    "insufficient_quota",
                    "You exceeded your current quota",
                ),
            ),
        ),
    ] {
        fails_over(case, reply, false).await;
    }
}

#[tokio::test]
async fn when_every_provider_refuses_its_key_the_client_gets_502_never_401() {
    let a = MockUpstream::start(vec![key_refused()]).await;
    let b = MockUpstream::start(vec![Reply::json(
        403,
        &error_body(
            "permission_error",
            "forbidden",
            "key sk-b-secret has no access",
        ),
    )])
    .await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    let answer = chat(&router, CHAT).await;

    let error = openai_error(&answer, 502, "all_targets_unavailable");
    assert_eq!(answer.headers["x-should-retry"], "false");
    let message = error["message"].as_str().unwrap();
    assert!(!message.contains("Incorrect API key"), "{message}");
    assert!(!message.contains("sk-b-secret"), "{message}");
    assert!(
        message.contains("a/m-a") && message.contains("b/m-b"),
        "{message}"
    );
}

#[tokio::test]
async fn a_401_then_an_outage_is_a_server_error_never_401() {
    // DESIGN: credential failures are "never blamed on the client's key (a 502 when nothing
    // else can answer)". With b merely unavailable the implementation answers 503; either
    // server status is acceptable here, a 401/403 never is.
    let a = MockUpstream::start(vec![key_refused()]).await;
    let b = MockUpstream::start(vec![status(503)]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    let answer = chat(&router, CHAT).await;

    assert!(
        matches!(answer.status.as_u16(), 502 | 503),
        "{} {}",
        answer.status,
        answer.text()
    );
    let error = answer.error();
    assert_eq!(error["code"], "all_targets_unavailable");
    assert_ne!(error["code"], "invalid_api_key");
    assert_eq!(answer.headers["x-should-retry"], "false");
}

#[tokio::test]
async fn after_a_429_with_retry_after_the_next_request_skips_a() {
    let a = MockUpstream::start(vec![rate_limited().header("retry-after", "30"), ok("a")]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    answered_by_b(&chat(&router, CHAT).await, false, "first");
    let second = chat(&router, CHAT).await;

    assert_eq!(second.status, 200);
    assert_eq!(second.headers["x-switchboard-provider"], "b");
    assert_eq!(second.headers["x-switchboard-attempts"], "1");
    assert_eq!(a.calls(), 1, "a is cooling down and not called");
    let metrics = scrape(&router).await;
    let left = cooldown(&metrics, "a");
    assert!(left > 25.0 && left <= 30.0, "{left}");
    assert_eq!(cooldown(&metrics, "b"), 0.0);
}

#[tokio::test]
async fn the_cooldown_follows_each_retry_after_form_else_the_default() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(40));
    let cases: [(&str, Reply, f64, f64); 5] = [
        (
            "seconds",
            rate_limited().header("retry-after", "7"),
            6.0,
            7.0,
        ),
        (
            "fractional",
            rate_limited().header("retry-after", "7.5"),
            6.5,
            7.5,
        ),
        (
            "milliseconds first",
            rate_limited()
                .header("retry-after-ms", "12000")
                .header("retry-after", "90"),
            11.0,
            12.0,
        ),
        (
            "http date",
            rate_limited().header("retry-after", &at),
            37.0,
            40.0,
        ),
        ("default", rate_limited(), 19.0, 20.0),
    ];
    for (case, reply, low, high) in cases {
        let a = MockUpstream::start(vec![reply]).await;
        let b = MockUpstream::start(vec![ok("b")]).await;
        let router = a_then_b("default_cooldown = \"20s\"", a.url("/v1"), &b).await;
        answered_by_b(&chat(&router, CHAT).await, false, case);
        let left = cooldown(&scrape(&router).await, "a");
        assert!(left > low && left <= high, "{case}: {left}");
    }
}

#[tokio::test]
async fn a_failed_probe_doubles_the_default_cooldown() {
    let a = MockUpstream::start(vec![status(503), status(503), ok("a")]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    // A second, so that the scrape after the probe has a second to tell 2 s from 1 s.
    let router = a_then_b("default_cooldown = \"1s\"", a.url("/v1"), &b).await;

    answered_by_b(&chat(&router, CHAT).await, false, "first 503");
    let first = cooldown(&scrape(&router).await, "a");
    cooled_down(&router, "a").await;
    answered_by_b(&chat(&router, CHAT).await, false, "probe 503");
    let second = cooldown(&scrape(&router).await, "a");

    assert!(first > 0.0 && first <= 1.0, "{first}");
    assert!(second > 1.0 && second <= 2.0, "backoff doubles: {second}");
    assert_eq!(a.calls(), 2);
}

#[tokio::test]
async fn retry_after_passed_to_the_client_is_capped_at_120_seconds() {
    let a = MockUpstream::start(vec![rate_limited().header("retry-after", "3600")]).await;
    let router = spawn_router(&routed("", "", &[("a", a.url("/v1"))]), ENV).await;

    let answer = chat(&router, CHAT).await;

    openai_error(&answer, 429, "all_targets_rate_limited");
    assert_eq!(answer.headers["retry-after"], "120");
    // The provider's own cooldown is capped by max_cooldown (default 5 min).
    let left = cooldown(&scrape(&router).await, "a");
    assert!(left > 290.0 && left <= 300.0, "{left}");
}

#[tokio::test]
async fn a_cooldown_ends_with_exactly_one_probe() {
    // 150 ms cooldown; then one probe request (held at a until the test lets it go) while
    // another request skips a.
    let probe_held = Gate::new();
    let a = MockUpstream::start(vec![
        rate_limited().header("retry-after-ms", "150"),
        ok("a").until(&probe_held),
        ok("a"),
    ])
    .await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = Arc::new(a_then_b("", a.url("/v1"), &b).await);

    answered_by_b(&chat(&router, CHAT).await, false, "429");
    cooled_down(&router, "a").await;
    let probe = tokio::spawn({
        let router = router.clone();
        async move { chat(&router, CHAT).await }
    });
    a.wait_for_calls(2).await;
    let during = chat(&router, CHAT).await;
    assert_eq!(
        during.headers["x-switchboard-provider"], "b",
        "only one probe at a time"
    );
    probe_held.open();
    let probe = probe.await.unwrap();
    assert_eq!(probe.headers["x-switchboard-provider"], "a");
    let closed = chat(&router, CHAT).await;
    assert_eq!(
        closed.headers["x-switchboard-provider"], "a",
        "probe closed the breaker"
    );
    assert_eq!(a.calls(), 3);
}

/// r1 reaches a first and is held there; r2 gets a 429 with Retry-After: 30 meanwhile and is
/// answered by b; then r1 gets `late` from a. Asserts that a's 30 s cooldown survived r1's
/// late answer (`what`) and that a third request goes to b without calling a; returns r1's
/// answer.
async fn late_answer_after_a_newer_cooldown(routing: &str, late: Reply, what: &str) -> Answer {
    let r1_held = Gate::new();
    let a = MockUpstream::start(vec![
        late.until(&r1_held),
        rate_limited().header("retry-after", "30"),
        ok("a"),
    ])
    .await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = Arc::new(a_then_b(routing, a.url("/v1"), &b).await);
    let r1 = tokio::spawn({
        let router = router.clone();
        async move { chat(&router, CHAT).await }
    });
    a.wait_for_calls(1).await;
    let r2 = chat(&router, CHAT).await;
    assert_eq!(r2.headers["x-switchboard-provider"], "b");
    r1_held.open();
    let r1 = r1.await.unwrap();

    let left = cooldown(&scrape(&router).await, "a");
    let r3 = chat(&router, CHAT).await;

    assert!(
        left > 25.0,
        "a asked for 30 s; {left} s left after r1's late {what}"
    );
    assert_eq!(r3.headers["x-switchboard-provider"], "b");
    assert_eq!(
        a.calls(),
        2,
        "a was called while it had asked for 30 s of quiet"
    );
    r1
}

#[tokio::test]
async fn a_late_success_does_not_erase_a_newer_cooldown() {
    let r1 = late_answer_after_a_newer_cooldown("", ok("a"), "success").await;
    assert_eq!(r1.headers["x-switchboard-provider"], "a");
}

#[tokio::test]
async fn a_late_failure_does_not_shorten_a_longer_cooldown() {
    let routing = "default_cooldown = \"50ms\"";
    let r1 = late_answer_after_a_newer_cooldown(routing, status(503), "503").await;
    assert_eq!(r1.headers["x-switchboard-provider"], "b", "r1 failed over");
}

#[tokio::test]
async fn a_late_client_error_does_not_erase_a_cooldown() {
    // A wrong request says nothing about the provider, so it must not close its breaker
    // either.
    let bad = Reply::json(
        400,
        &error_body("invalid_request_error", "bad", "bad request"),
    );
    let r1 = late_answer_after_a_newer_cooldown("", bad, "400").await;
    assert_eq!(r1.status, 400);
}

#[tokio::test]
async fn when_every_target_is_down_the_answer_is_a_fast_503() {
    let a = MockUpstream::start(vec![status(503)]).await;
    let b = MockUpstream::start(vec![status(500)]).await;
    let router = a_then_b("default_cooldown = \"20s\"", a.url("/v1"), &b).await;
    let started = Instant::now();

    let answer = chat(&router, CHAT).await;

    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(error["type"], "server_error");
    assert_eq!(answer.headers["x-should-retry"], "false");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("a/m-a"), "{message}");
    assert!(message.contains("b/m-b"), "{message}");
    assert!(
        message.contains("503") && message.contains("500"),
        "{message}"
    );
    let retry_after: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((19..=20).contains(&retry_after), "{retry_after}");
    assert_eq!((a.calls(), b.calls()), (1, 1));

    // Both cooling: the next answer comes without any upstream call, listing why.
    let again = chat(&router, CHAT).await;
    let error = openai_error(&again, 503, "all_targets_unavailable");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("cooling down"), "{message}");
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test]
async fn when_every_target_is_rate_limited_the_answer_is_429_with_the_earliest_retry() {
    let a = MockUpstream::start(vec![rate_limited().header("retry-after", "7")]).await;
    let b = MockUpstream::start(vec![rate_limited().header("retry-after", "3")]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    let answer = chat(&router, CHAT).await;

    let error = openai_error(&answer, 429, "all_targets_rate_limited");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(answer.headers["retry-after"], "3");
    assert_eq!(answer.headers["x-should-retry"], "false");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("a/m-a") && message.contains("b/m-b"),
        "{message}"
    );

    // Still all rate limited while both cool down, with the wait shrinking.
    let again = chat(&router, CHAT).await;
    openai_error(&again, 429, "all_targets_rate_limited");
    let retry: u64 = again.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test]
async fn a_mix_of_rate_limits_and_outages_is_503() {
    let a = MockUpstream::start(vec![rate_limited().header("retry-after", "9")]).await;
    let b = MockUpstream::start(vec![status(503)]).await;
    let router = a_then_b("default_cooldown = \"4s\"", a.url("/v1"), &b).await;

    let answer = chat(&router, CHAT).await;

    openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(
        answer.headers["retry-after"], "4",
        "when the first becomes usable"
    );
}

#[tokio::test]
async fn max_attempts_bounds_the_upstream_calls() {
    let a = MockUpstream::start(vec![status(503)]).await;
    let b = MockUpstream::start(vec![status(502)]).await;
    let c = MockUpstream::start(vec![ok("c")]).await;
    let router = spawn_router(
        &routed(
            "max_attempts = 2",
            "",
            &[
                ("a", a.url("/v1")),
                ("b", b.url("/v1")),
                ("c", c.url("/v1")),
            ],
        ),
        ENV,
    )
    .await;

    let answer = chat(&router, CHAT).await;

    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!((a.calls(), b.calls(), c.calls()), (1, 1, 0));
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("c/m-c: not tried"), "{message}");
    assert!(message.contains("max_attempts"), "{message}");
}

#[tokio::test]
async fn a_committed_stream_that_breaks_ends_with_an_error_event_and_no_done() {
    // At the TCP level: MockUpstream's abort() can lose its last chunk in hyper's buffer.
    let a = RawUpstream::start(vec![
        Step::send(SSE_HEAD),
        Step::send(http_chunk(&format!("data: {}\n\n", role_chunk("a")))),
        Step::send(http_chunk(&format!(
            "data: {}\n\n",
            content_chunk("a", "Your total is ")
        ))),
        Step::send(http_chunk(&format!(
            "data: {}\n\n",
            content_chunk("a", "10.00")
        ))),
        // The socket closes without the last chunk: the body breaks.
    ])
    .await;
    let b = MockUpstream::start(vec![stream_of("b")]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    let answer = chat(&router, STREAM_CHAT).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-switchboard-provider"], "a");
    let data = answer.sse_data();
    assert_eq!(data.len(), 4, "{}", answer.text());
    assert_eq!(data[0], role_chunk("a"));
    assert_eq!(data[1], content_chunk("a", "Your total is "));
    assert_eq!(data[2], content_chunk("a", "10.00"));
    let last: serde_json::Value = serde_json::from_str(&data[3]).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(last["error"]["type"].is_string(), "{last}");
    assert!(!answer.text().contains("[DONE]"), "{}", answer.text());
    assert_eq!(b.calls(), 0, "a committed stream is never failed over");
}

#[tokio::test]
async fn a_weighted_route_spreads_3_to_1_deterministically() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let text = format!(
        "[providers.a]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"UP_KEY\"\n\n\
         [providers.b]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"UP_KEY\"\n\n\
         [routes.r]\nstrategy = \"weighted\"\n\
         targets = [{{ target = \"a/m-a\", weight = 3 }}, {{ target = \"b/m-b\", weight = 1 }}]\n",
        a.url("/v1"),
        b.url("/v1")
    );
    let router = spawn_router(&text, ENV).await;

    let mut order = String::new();
    for _ in 0..8 {
        let answer = chat(&router, CHAT).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["x-switchboard-attempts"], "1");
        order += answer.headers["x-switchboard-provider"].to_str().unwrap();
    }

    assert_eq!((a.calls(), b.calls()), (6, 2));
    assert_eq!(order, "aabaaaba", "smooth weighted round-robin, no bursts");
}

#[tokio::test]
async fn a_weighted_route_fails_over_when_its_pick_fails() {
    let a = MockUpstream::start(vec![status(503)]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let text = format!(
        "[providers.a]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"UP_KEY\"\n\n\
         [providers.b]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"UP_KEY\"\n\n\
         [routes.r]\nstrategy = \"weighted\"\n\
         targets = [{{ target = \"a/m-a\", weight = 3 }}, {{ target = \"b/m-b\", weight = 1 }}]\n",
        a.url("/v1"),
        b.url("/v1")
    );
    let router = spawn_router(&text, ENV).await;

    let first = chat(&router, CHAT).await;
    answered_by_b(&first, false, "weighted failover");
    for _ in 0..3 {
        let answer = chat(&router, CHAT).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["x-switchboard-provider"], "b");
    }
    assert_eq!(a.calls(), 1, "a is cooling after its 503");
    assert_eq!(b.calls(), 4);
}

#[tokio::test]
async fn a_direct_target_bypasses_the_route() {
    let a = MockUpstream::start(vec![status(503)]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    let direct = chat(
        &router,
        r#"{"model":"b/m-b","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(direct.status, 200, "{}", direct.text());
    assert_eq!(direct.headers["x-switchboard-provider"], "b");
    assert_eq!(direct.headers["x-switchboard-attempts"], "1");

    // A direct target has nothing to fail over to.
    let down = chat(
        &router,
        r#"{"model":"a/m-a","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    openai_error(&down, 503, "all_targets_unavailable");
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test]
async fn without_failover_on_timeout_a_timeout_is_returned_fast_and_not_retried() {
    let a = MockUpstream::start(vec![ok("a").delay(SLOW)]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = spawn_router(
        &routed(
            "attempt_timeout = \"200ms\"",
            "failover_on_timeout = false",
            &[("a", a.url("/v1")), ("b", b.url("/v1"))],
        ),
        ENV,
    )
    .await;
    let started = Instant::now();

    let answer = chat(&router, CHAT).await;

    let elapsed = started.elapsed();
    assert!(elapsed < PROMPT, "{elapsed:?}");
    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(answer.headers["x-should-retry"], "false");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("failover_on_timeout"),
        "{error}"
    );
    assert_eq!(a.calls(), 1);
    assert_eq!(
        b.calls(),
        0,
        "the request may have run at a: never sent twice"
    );
}

#[tokio::test]
async fn without_failover_on_timeout_a_refused_connection_still_fails_over() {
    // Nothing was sent, so nothing can run twice.
    let b = MockUpstream::start(vec![ok("b")]).await;
    let refused = format!("http://127.0.0.1:{}/v1", closed_port().await);
    let router = spawn_router(
        &routed(
            "attempt_timeout = \"200ms\"",
            "failover_on_timeout = false",
            &[("a", refused), ("b", b.url("/v1"))],
        ),
        ENV,
    )
    .await;

    answered_by_b(
        &chat(&router, CHAT).await,
        false,
        "refused, no timeout failover",
    );
}

#[tokio::test]
async fn the_idempotency_key_reaches_every_attempt() {
    let a = MockUpstream::start(vec![status(503)]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b("", a.url("/v1"), &b).await;

    let answer = chat_with(&router, &[("idempotency-key", "pay-7f3a-0001")], CHAT).await;

    answered_by_b(&answer, false, "idempotency");
    for (who, upstream) in [("a", &a), ("b", &b)] {
        let request = &upstream.requests()[0];
        assert_eq!(
            request.headers.get("idempotency-key").map(|v| v.as_bytes()),
            Some(&b"pay-7f3a-0001"[..]),
            "{who}"
        );
    }

    // Without one, none is invented.
    let b2 = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b("", a.url("/v1"), &b2).await;
    chat(&router, CHAT).await;
    assert!(!b2.requests()[0].headers.contains_key("idempotency-key"));
}

#[tokio::test]
async fn the_request_timeout_bounds_the_answer_when_every_target_is_slow() {
    // attempt_timeout is larger than the whole budget: the request deadline must win.
    let a = MockUpstream::start(vec![ok("a").delay(SLOW)]).await;
    let b = MockUpstream::start(vec![ok("b").delay(SLOW)]).await;
    let router = a_then_b(
        "attempt_timeout = \"10s\"\nrequest_timeout = \"400ms\"",
        a.url("/v1"),
        &b,
    )
    .await;
    let started = Instant::now();

    let answer = chat(&router, CHAT).await;

    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < PROMPT,
        "{elapsed:?}"
    );
    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(answer.headers["x-should-retry"], "false");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("b/m-b: not tried"), "{message}");
}

#[tokio::test]
async fn the_request_timeout_bounds_attempts_spread_over_targets() {
    // a times out after 250 ms; b gets what is left of the 400 ms budget.
    let a = MockUpstream::start(vec![ok("a").delay(SLOW)]).await;
    let b = MockUpstream::start(vec![stream_of("b").delay(SLOW)]).await;
    let router = a_then_b(
        "attempt_timeout = \"250ms\"\nrequest_timeout = \"400ms\"",
        a.url("/v1"),
        &b,
    )
    .await;
    let started = Instant::now();

    let answer = chat(&router, STREAM_CHAT).await;

    let elapsed = started.elapsed();
    assert!(elapsed < PROMPT, "{elapsed:?}");
    openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test]
async fn an_error_whose_body_stalls_still_fails_over_in_time() {
    let a = MockUpstream::start(vec![status(503).chunk_delay(SLOW)]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = a_then_b(
        "attempt_timeout = \"200ms\"\nrequest_timeout = \"3s\"",
        a.url("/v1"),
        &b,
    )
    .await;
    let started = Instant::now();

    let answer = chat(&router, CHAT).await;

    answered_by_b(&answer, false, "503 with a stalled body");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Concurrency: 200 requests at once against a -> b, a alternating 429 (Retry-After: 1) and 200.

/// One request as the timestamped upstream saw it.
#[derive(Clone, Debug)]
struct Hit {
    arrived: Instant,
    status: u16,
    /// The client's Idempotency-Key, which names the request.
    key: String,
}

/// An upstream that answers its n-th request 429 (`Retry-After: 1`) at once when n is even and
/// 200 after 100 ms when odd, recording when each request arrived and which it was.
struct Alternating {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Alternating {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let log = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let arrived = Instant::now();
                            let key = request
                                .headers()
                                .get("idempotency-key")
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            let _ = request.into_body().collect().await;
                            let status = {
                                let mut log = log.lock().unwrap();
                                let status = if log.len().is_multiple_of(2) {
                                    429
                                } else {
                                    200
                                };
                                log.push(Hit {
                                    arrived,
                                    status,
                                    key,
                                });
                                status
                            };
                            if status == 200 {
                                // A completion takes longer than a quick rejection.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            let body = if status == 200 {
                                completion("a")
                            } else {
                                error_body("requests", "rate_limit_exceeded", "slow down")
                            };
                            let mut response = Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            let headers = response.headers_mut();
                            headers.insert("content-type", "application/json".parse().unwrap());
                            if status == 429 {
                                headers.insert("retry-after", "1".parse().unwrap());
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            hits,
            _task: task,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// One client request: when it left, when its answer was in, and who answered.
struct Sent {
    key: String,
    sent: Instant,
    answered: Instant,
    provider: String,
}

/// What a burst against a (alternating) -> b produced.
struct Burst {
    sent: Vec<Sent>,
    hits: Vec<Hit>,
    b_calls: usize,
}

/// Sends `n` requests from `n` tasks spawned at once; task i waits `(i % waves) * gap` first.
/// Asserts every request got a 200 and that the answers, the upstreams' logs and the router's
/// metrics all add up.
async fn burst(n: usize, waves: usize, gap: Duration) -> Burst {
    let a = Alternating::start().await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = Arc::new(a_then_b("", format!("http://{}/v1", a.addr), &b).await);
    let before = scrape(&router).await;

    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let router = router.clone();
            tokio::spawn(async move {
                let wave = u32::try_from(i % waves).unwrap();
                tokio::time::sleep(gap * wave).await;
                let key = format!("req-{i}");
                let sent = Instant::now();
                let answer = chat_with(&router, &[("idempotency-key", &key)], CHAT).await;
                let answered = Instant::now();
                assert_eq!(answer.status, 200, "{key}: {}", answer.text());
                let provider = answer.headers["x-switchboard-provider"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                Sent {
                    key,
                    sent,
                    answered,
                    provider,
                }
            })
        })
        .collect();
    let mut sent = Vec::new();
    for task in tasks {
        sent.push(task.await.unwrap());
    }

    let hits = a.hits();
    let a_ok = hits.iter().filter(|h| h.status == 200).count();
    let a_429 = hits.len() - a_ok;
    let by_a = sent.iter().filter(|s| s.provider == "a").count();
    let by_b = sent.iter().filter(|s| s.provider == "b").count();
    assert_eq!(by_a, a_ok, "every 200 from a reached its client");
    assert_eq!(by_b, b.calls(), "every answer of b reached its client");
    assert_eq!(a_ok + b.calls(), n, "every request answered exactly once");
    assert!(a_429 >= 1);
    let mut keys: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), hits.len(), "no request reached a twice");

    // The router's own account agrees with what the upstreams saw.
    let after = scrape(&router).await;
    assert_moved(
        &before,
        &after,
        ATTEMPTS,
        &[
            (&[("outcome", "ok"), ("provider", "a")], a_ok as f64),
            (
                &[("outcome", "rate_limited"), ("provider", "a")],
                a_429 as f64,
            ),
            (&[("outcome", "ok"), ("provider", "b")], b.calls() as f64),
        ],
    );
    assert_moved(
        &before,
        &after,
        FAILOVERS,
        &[(
            &[
                ("from_provider", "a"),
                ("reason", "rate_limited"),
                ("route", "r"),
            ],
            a_429 as f64,
        )],
    );
    assert_eq!(attempts(&after, "a", "rate_limited"), a_429 as f64);
    assert_eq!(failovers(&after, "r", "a", "rate_limited"), a_429 as f64);
    Burst {
        sent,
        hits,
        b_calls: b.calls(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_requests_all_succeed_and_add_up() {
    let burst = burst(200, 1, Duration::ZERO).await;
    assert!(burst.b_calls > 0);
    assert_eq!(burst.sent.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_concurrency_no_request_reaches_a_while_it_cools() {
    // 200 tasks at once, firing in ten waves 80 ms apart, so that later waves leave after
    // answers to earlier ones came back, all within a's 1 s cooldown.
    let burst = burst(200, 10, Duration::from_millis(80)).await;

    // No grace period needed: when request k's answer is back, the router has processed k's
    // 429 and a is closed until at least 1 s after that 429 reached a. A request j that left
    // the client after that and still reached a before then was admitted while a was cooling.
    let by_key: HashMap<&str, &Sent> = burst.sent.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut violations = Vec::new();
    for k in burst.hits.iter().filter(|h| h.status == 429) {
        let answered_k = by_key[k.key.as_str()].answered;
        for j in &burst.hits {
            let sent_j = by_key[j.key.as_str()].sent;
            if sent_j > answered_k
                && j.arrived < k.arrived + Duration::from_secs(1)
                && !violations.iter().any(|(key, _)| key == &j.key)
            {
                let what = format!(
                    "{} reached a {:?} after {}'s 429, {:?} after that answer was back",
                    j.key,
                    j.arrived - k.arrived,
                    k.key,
                    sent_j - answered_k
                );
                violations.push((j.key.clone(), what));
            }
        }
    }
    let violations: Vec<String> = violations.into_iter().map(|(_, what)| what).collect();
    assert!(
        violations.is_empty(),
        "a was called {} times while cooling ({} calls in all): {violations:#?}",
        violations.len(),
        burst.hits.len()
    );
}

/// A route over a vendor-native provider `a` (at `a_base`) then openai-wire `b`.
fn native_then_b(kind: &str, a_base: &str, model: &str, b: &MockUpstream) -> String {
    format!(
        "[providers.a]\nkind = \"{kind}\"\nbase_url = \"{a_base}\"\napi_key_env = \"UP_KEY\"\n\n\
         [providers.b]\nkind = \"openai\"\nbase_url = \"{b_base}\"\napi_key_env = \"UP_KEY\"\n\n\
         [routes.r]\ntargets = [\"a/{model}\", \"b/m-b\"]\n",
        b_base = b.url("/v1")
    )
}

#[tokio::test]
async fn gemini_retry_delay_in_the_body_sets_the_cooldown() {
    let a = MockUpstream::start(vec![Reply::json(
        429,
        r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProject"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#,
    )])
    .await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = spawn_router(
        &native_then_b("gemini", &a.url(""), "gemini-2.5-flash", &b),
        ENV,
    )
    .await;

    answered_by_b(&chat(&router, CHAT).await, false, "gemini 429");
    let left = cooldown(&scrape(&router).await, "a");
    assert!(
        (35.0..=37.0).contains(&left),
        "cooldown from retryDelay: {left}"
    );
    let second = chat(&router, CHAT).await;
    assert_eq!(second.headers["x-switchboard-provider"], "b");
    assert_eq!(second.headers["x-switchboard-attempts"], "1");
    assert_eq!(a.calls(), 1, "a is not called while it cools down");
}

#[tokio::test]
async fn anthropic_reset_headers_set_the_cooldown_when_no_retry_after_is_sent() {
    let reset = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(45));
    let a = MockUpstream::start(vec![
        Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
        )
        .header("anthropic-ratelimit-tokens-remaining", "0")
        .header("anthropic-ratelimit-tokens-reset", &reset.to_string())
        .header("anthropic-ratelimit-requests-remaining", "49"),
    ])
    .await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = spawn_router(
        &native_then_b("anthropic", &a.url(""), "claude-haiku-4-5", &b),
        ENV,
    )
    .await;

    answered_by_b(&chat(&router, CHAT).await, false, "anthropic 429");
    let left = cooldown(&scrape(&router).await, "a");
    assert!(
        (40.0..=45.0).contains(&left),
        "cooldown from the reset header: {left}"
    );
}

#[tokio::test]
async fn a_per_model_limit_cools_only_that_model() {
    let limit = Reply::json(
        429,
        r#"{"error":{"message":"Requests rate limit exceeded","type":"limit_requests","param":null,"code":"limit_requests"}}"#,
    )
    .header("retry-after", "30");
    let qwen = MockUpstream::start(vec![limit, ok("a"), ok("a")]).await;
    let config = format!(
        "[providers.a]\nkind = \"qwen\"\nbase_url = \"{}\"\napi_key_env = \"UP_KEY\"\n\n\
         [routes.r]\ntargets = [\"a/qwen-max\", \"a/qwen-plus\"]\n",
        qwen.url("/v1")
    );
    let router = spawn_router(&config, ENV).await;

    let first = chat(&router, CHAT).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.headers["x-switchboard-model"], "qwen-plus");
    assert_eq!(first.headers["x-switchboard-attempts"], "2");
    let second = chat(&router, CHAT).await;
    assert_eq!(second.headers["x-switchboard-model"], "qwen-plus");
    assert_eq!(
        second.headers["x-switchboard-attempts"], "1",
        "qwen-max is cooling"
    );
    let models: Vec<String> = qwen
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(models, ["qwen-max", "qwen-plus", "qwen-plus"]);
    assert!(
        cooldown(&scrape(&router).await, "a") > 0.0,
        "the provider's gauge shows its cooling model (its other model still answers)"
    );
}
