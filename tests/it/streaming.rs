//! Streams through an OpenAI-wire provider: event-for-event pass-through, framing that
//! survives any split, keep-alives, and every way a stream can break (no `[DONE]`, a cut
//! connection, an in-band error, a stall, slow headers).
#![cfg(test)]

use std::time::{Duration, Instant};

use crate::support::{
    LAST_CHUNK, MockUpstream, RawUpstream, Reply, SSE_HEAD, Step, UP_ENV, chat, http_chunk,
    one_provider, openai_error, spawn_router,
};

const STREAM_REQUEST: &str = r#"{"model":"fast","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#;

/// A complete OpenAI stream: role, content, a tool call (id and name, then argument
/// fragments), finish, usage, `[DONE]`.
const EVENTS: &[&str] = &[
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Let me "},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"check \u00e9t\u00e9."},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_9f","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\": \"Paris\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
    r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":61,"completion_tokens":18,"total_tokens":79,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
    "[DONE]",
];

/// What the client must receive for [`EVENTS`]: each payload in a `data: ...\n\n` frame.
fn expected_text(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// The upstream stream as one text, framed with `newline`.
fn upstream_text(events: &[&str], newline: &str) -> String {
    events
        .iter()
        .map(|e| format!("data: {e}{newline}{newline}"))
        .collect()
}

/// Asserts a stream ended with an OpenAI error event and no `[DONE]`, after exactly the
/// `before` payloads; returns the error object.
fn ends_with_error(text: &str, before: &[&str]) -> serde_json::Value {
    let data = crate::support::sse_data(text);
    assert_eq!(data.len(), before.len() + 1, "{text}");
    for (got, want) in data.iter().zip(before) {
        assert_eq!(got, want);
    }
    assert!(
        !text.contains("[DONE]"),
        "a broken stream must not look finished: {text}"
    );
    assert!(
        text.ends_with("\n\n"),
        "the error event is a complete frame: {text:?}"
    );
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    let error = last["error"].clone();
    assert!(error["message"].is_string(), "{last}");
    assert!(error["type"].is_string(), "{last}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{last}"
    );
    error
}

/// An `openai` provider `up` at a raw upstream, routed as `fast` to `m1`, with extra
/// `[routing]` lines.
fn raw_provider(upstream: &RawUpstream, routing: &str) -> String {
    format!(
        r#"
[routing]
{routing}

[providers.up]
kind = "openai"
base_url = "{}"
api_key_env = "UP_KEY"

[routes.fast]
targets = ["up/m1"]
"#,
        upstream.url("/v1")
    )
}

/// How long a stalled upstream stays silent: the 200 ms timeouts under test must end the
/// answer long before, so the bound on the answer ([`PROMPT`]) has seconds of margin on two
/// busy cores and still tells a timeout from the upstream's own pace.
const UPSTREAM_STALL: Duration = Duration::from_secs(10);
/// The bound on an answer a 200 ms timeout ends.
const PROMPT: Duration = Duration::from_millis(2500);

#[tokio::test]
async fn an_openai_stream_passes_through_event_for_event() {
    let upstream = MockUpstream::start(vec![Reply::sse_data(EVENTS)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    assert_eq!(answer.headers["cache-control"], "no-cache");
    assert_eq!(answer.headers["x-switchboard-provider"], "up");
    assert_eq!(answer.headers["x-switchboard-model"], "m1");
    assert_eq!(answer.headers["x-switchboard-attempts"], "1");
    assert!(answer.headers.contains_key("x-request-id"));
    assert_eq!(answer.text(), expected_text(EVENTS));
    assert_eq!(answer.sse_data(), EVENTS);

    let received = &upstream.requests()[0];
    assert_eq!(received.headers["accept"], "text/event-stream");
    assert_eq!(
        received.headers["authorization"],
        "Bearer sk-upstream-secret"
    );
    assert_eq!(
        received.body,
        STREAM_REQUEST
            .replace(r#""model":"fast""#, r#""model":"m1""#)
            .as_bytes()
    );
}

#[tokio::test]
async fn events_split_at_every_byte_still_arrive_whole() {
    // Each byte of the upstream body is its own HTTP chunk, so every event is split
    // mid-JSON, mid-`data:`, and between the two newlines of its end.
    for newline in ["\n", "\r\n"] {
        let text = upstream_text(EVENTS, newline);
        let mut steps = vec![Step::send(SSE_HEAD)];
        steps.extend(
            text.char_indices()
                .map(|(i, c)| Step::send(http_chunk(&text[i..i + c.len_utf8()]))),
        );
        steps.push(Step::send(LAST_CHUNK));
        let upstream = RawUpstream::start(steps).await;
        let router = spawn_router(&raw_provider(&upstream, ""), UP_ENV).await;

        let answer = chat(&router, STREAM_REQUEST).await;

        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), expected_text(EVENTS), "newline {newline:?}");
    }
}

#[tokio::test]
async fn crlf_events_split_between_cr_and_lf_across_tcp_segments() {
    let text = upstream_text(EVENTS, "\r\n");
    // Awkward cut points: inside a JSON string, right after `data`, right after a `\r` whose
    // `\n` comes in the next segment, and between the two line ends of an event.
    let first_cr = text.find('\r').unwrap();
    let cuts = [
        text.find("Let me").unwrap() + 3,
        text.find("check").unwrap() - 15,
        first_cr + 1,
        text[first_cr + 2..].find('\r').unwrap() + first_cr + 3,
        text.find("\"ci").unwrap() + 2,
        text.find("[DONE]").unwrap() - 4,
        text.len() - 1,
    ];
    let mut sorted = cuts.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut steps = vec![Step::send(SSE_HEAD)];
    let mut start = 0;
    for cut in sorted.into_iter().chain([text.len()]) {
        steps.push(Step::send(http_chunk(&text[start..cut])));
        // Long enough for the router to read each piece on its own.
        steps.push(Step::Pause(Duration::from_millis(3)));
        start = cut;
    }
    steps.push(Step::send(LAST_CHUNK));
    let upstream = RawUpstream::start(steps).await;
    let router = spawn_router(&raw_provider(&upstream, ""), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), expected_text(EVENTS));
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn keep_alive_comments_are_not_forwarded_as_data() {
    let mut chunks = vec![": keep-alive\n\n".to_owned()];
    for event in EVENTS {
        chunks.push(format!("data: {event}\n\n"));
        chunks.push(": keep-alive\n\n".to_owned());
    }
    chunks.insert(3, ": OPENROUTER PROCESSING\r\n\r\n".to_owned());
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&refs)]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), expected_text(EVENTS));
    assert!(!answer.text().contains("keep-alive"));
}

#[tokio::test]
async fn a_stream_that_ends_without_done_ends_with_an_error_event() {
    let upstream = MockUpstream::start(vec![Reply::sse_data(&EVENTS[..3])]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200, "headers had left before the failure");
    let error = ends_with_error(&answer.text(), &EVENTS[..3]);
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], "stream_interrupted");
}

#[tokio::test]
async fn a_connection_broken_mid_stream_ends_with_an_error_event() {
    // Three whole events, half of a fourth, then the socket closes without the chunked
    // body's terminating chunk.
    let mut steps = vec![Step::send(SSE_HEAD)];
    for event in &EVENTS[..3] {
        steps.push(Step::send(http_chunk(&format!("data: {event}\n\n"))));
    }
    steps.push(Step::send(http_chunk(&format!(
        "data: {}",
        &EVENTS[3][..40]
    ))));
    steps.push(Step::Pause(Duration::from_millis(20)));
    let upstream = RawUpstream::start(steps).await;
    let router = spawn_router(&raw_provider(&upstream, ""), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200);
    let error = ends_with_error(&answer.text(), &EVENTS[..3]);
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], "stream_interrupted");
    assert!(
        !error["message"]
            .as_str()
            .unwrap()
            .contains("sk-upstream-secret"),
        "{error}"
    );
}

#[tokio::test]
async fn a_scripted_abort_ends_with_an_error_event_and_no_done() {
    let upstream = MockUpstream::start(vec![Reply::sse_data(EVENTS).abort()]).await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200);
    // The mock server may drop the tail it had buffered when it breaks the connection, so
    // only a prefix of the events is certain; the ending is what matters.
    let text = answer.text();
    let data = answer.sse_data();
    let (last, before) = data.split_last().unwrap();
    assert!(before.len() <= EVENTS.len());
    for (got, want) in before.iter().zip(EVENTS) {
        assert_eq!(got, want);
    }
    assert!(!text.contains("[DONE]"), "{text}");
    let last: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{text}");
}

#[tokio::test]
async fn an_in_band_error_event_ends_the_stream_with_an_error_and_no_done() {
    let upstream_error = r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":"server_overloaded"}}"#;
    let upstream = MockUpstream::start(vec![Reply::sse_data(&[
        EVENTS[0],
        EVENTS[1],
        upstream_error,
        EVENTS[2],
        "[DONE]",
    ])])
    .await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200);
    let error = ends_with_error(&answer.text(), &EVENTS[..2]);
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], "server_overloaded");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("The server had an error while processing your request."),
        "{error}"
    );
}

#[tokio::test]
async fn a_stalled_stream_ends_with_an_error_after_the_idle_timeout() {
    let upstream = RawUpstream::start(vec![
        Step::send(SSE_HEAD),
        Step::send(http_chunk(&format!("data: {}\n\n", EVENTS[0]))),
        Step::send(http_chunk(&format!("data: {}\n\n", EVENTS[1]))),
        Step::Pause(UPSTREAM_STALL),
        Step::send(http_chunk(&format!("data: {}\n\n", EVENTS[2]))),
        Step::send(http_chunk("data: [DONE]\n\n")),
        Step::send(LAST_CHUNK),
    ])
    .await;
    let router = spawn_router(
        &raw_provider(&upstream, "stream_idle_timeout = \"200ms\""),
        UP_ENV,
    )
    .await;
    let started = Instant::now();

    let answer = chat(&router, STREAM_REQUEST).await;

    let elapsed = started.elapsed();
    assert_eq!(answer.status, 200);
    let error = ends_with_error(&answer.text(), &EVENTS[..2]);
    assert_eq!(error["type"], "server_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("stream_idle_timeout"),
        "{error}"
    );
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < PROMPT,
        "ended by the 200ms idle timeout, not by the upstream: {elapsed:?}"
    );
}

#[tokio::test]
async fn slow_response_headers_hit_the_attempt_timeout_fast() {
    let upstream = MockUpstream::start(vec![Reply::sse_data(EVENTS).delay(UPSTREAM_STALL)]).await;
    let toml = format!(
        "[routing]\nattempt_timeout = \"200ms\"\n{}",
        one_provider("openai", &upstream, "fast", "m1")
    );
    let router = spawn_router(&toml, UP_ENV).await;
    let started = Instant::now();

    let answer = chat(&router, STREAM_REQUEST).await;

    let elapsed = started.elapsed();
    let error = openai_error(&answer, 503, "all_targets_unavailable");
    assert_eq!(answer.headers["x-should-retry"], "false");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("timeout"), "{message}");
    assert!(message.contains("up/m1"), "{message}");
    assert_eq!(upstream.calls(), 1);
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < PROMPT,
        "{elapsed:?}"
    );
}

/// The `data` of each event in an SSE text, decoded as a browser or SDK would (WHATWG
/// rules: several `data:` lines of one event are joined with `\n`; other fields ignored).
fn decode_sse(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|block| {
            let lines: Vec<&str> = block
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|value| value.strip_prefix(' ').unwrap_or(value))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn a_multi_line_data_event_reaches_the_client_as_the_same_event() {
    // One event whose JSON spans two `data:` lines (valid SSE; its data is the two lines
    // joined by `\n`, which is valid JSON).
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&[
        &format!("data: {}\n\n", EVENTS[0]),
        "data: {\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\n",
        "data: \"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        "data: [DONE]\n\n",
    ])])
    .await;
    let router = spawn_router(&one_provider("openai", &upstream, "fast", "m1"), UP_ENV).await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200);
    let events = decode_sse(&answer.text());
    assert_eq!(events.len(), 3, "{}", answer.text());
    assert_eq!(events[0], EVENTS[0]);
    let second: serde_json::Value = serde_json::from_str(&events[1])
        .unwrap_or_else(|e| panic!("the client cannot parse {:?}: {e}", events[1]));
    assert_eq!(second["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(events[2], "[DONE]");
}

#[tokio::test]
async fn nothing_follows_done_even_if_the_upstream_lingers() {
    // The provider sends [DONE] but keeps the body open past the idle timeout.
    let mut steps = vec![Step::send(SSE_HEAD)];
    for event in EVENTS {
        steps.push(Step::send(http_chunk(&format!("data: {event}\n\n"))));
    }
    steps.push(Step::Pause(Duration::from_millis(800)));
    steps.push(Step::send(LAST_CHUNK));
    let upstream = RawUpstream::start(steps).await;
    let router = spawn_router(
        &raw_provider(&upstream, "stream_idle_timeout = \"200ms\""),
        UP_ENV,
    )
    .await;

    let answer = chat(&router, STREAM_REQUEST).await;

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.text(),
        expected_text(EVENTS),
        "[DONE] is the last event of a stream"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_closes_the_upstream_connection() {
    // A long, slow stream: the provider would keep generating (and billing) for seconds.
    let mut steps = vec![Step::send(SSE_HEAD)];
    steps.push(Step::send(http_chunk(&format!("data: {}\n\n", EVENTS[0]))));
    for _ in 0..100 {
        steps.push(Step::Pause(Duration::from_millis(20)));
        steps.push(Step::send(http_chunk(&format!("data: {}\n\n", EVENTS[1]))));
    }
    steps.push(Step::send(http_chunk("data: [DONE]\n\n")));
    steps.push(Step::send(LAST_CHUNK));
    let upstream = RawUpstream::start(steps).await;
    let router = spawn_router(&raw_provider(&upstream, ""), UP_ENV).await;

    let mut stream = crate::support::open_chat_stream(&router, STREAM_REQUEST).await;
    assert_eq!(stream.status, 200);
    let first = stream.next_chunk().await.unwrap();
    assert!(first.starts_with(b"data: "));
    drop(stream);

    assert!(
        upstream.closed_within(Duration::from_millis(500)).await,
        "the router must hang up on the provider once its client is gone"
    );
}
