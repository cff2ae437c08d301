//! Poison at either end: a client body nested too deep or not valid Unicode, in members the
//! router never reads, is a 400 before any provider is called; an upstream stream event that
//! is not JSON or not UTF-8 is a stream failure, never forwarded (failover before the commit
//! point; the error event and no `[DONE]` after it, logged and counted as `stream_error`).
#![cfg(test)]

use std::time::Duration;

use crate::metrics::{ATTEMPTS, assert_moved, scrape};
use crate::support::{
    Answer, LAST_CHUNK, MockUpstream, RawUpstream, Reply, RouterHandle, SSE_HEAD, Step, TempDir,
    UP_ENV, chat, chunk, content_chunk, eventually, http_chunk, one_provider, openai_error,
    role_chunk, send, spawn_router,
};

/// 128 levels, the body's own object included, is the deepest a body may be.
const MAX_DEPTH: usize = 128;

/// A body whose `metadata` member makes it `levels` deep in all (the body's object is 1).
fn nested_metadata(levels: usize) -> String {
    let inner = levels - 2;
    format!(
        r#"{{"model":"r","messages":[{{"role":"user","content":"hi"}}],"metadata":{{"a":{}1{}}}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

/// A body whose first tool's JSON Schema makes it `levels` deep in all.
fn nested_parameters(levels: usize) -> String {
    // body > tools > tool > function > parameters: the schema object is level 5.
    let inner = levels - 5;
    format!(
        r#"{{"model":"r","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{{"type":"object","x":{}1{}}}}}}}]}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

fn completion() -> String {
    r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#.to_owned()
}

async fn openai_router(upstream: &MockUpstream) -> RouterHandle {
    spawn_router(&one_provider("openai", upstream, "r", "m"), UP_ENV).await
}

async fn post(router: &RouterHandle, body: Vec<u8>) -> Answer {
    send(
        "POST",
        &router.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// A 400 in OpenAI's shape naming `param`, whose message says `says`.
fn refused(answer: &Answer, param: &str, says: &str) {
    let error = openai_error(answer, 400, "invalid_request_error");
    assert_eq!(error["param"], param, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(says), "{error}");
}

#[tokio::test]
async fn nesting_deeper_than_128_anywhere_is_a_400_that_never_reaches_the_provider() {
    let upstream = MockUpstream::start(vec![Reply::json(200, &completion())]).await;
    let router = openai_router(&upstream).await;
    let says = "nested deeper than 128 levels";

    refused(
        &chat(&router, &nested_metadata(MAX_DEPTH + 1)).await,
        "metadata",
        says,
    );
    refused(
        &chat(&router, &nested_parameters(MAX_DEPTH + 1)).await,
        "tools",
        says,
    );
    // Far deeper than any stack could take, were it parsed recursively.
    refused(
        &chat(&router, &nested_metadata(100_000)).await,
        "metadata",
        says,
    );

    assert_eq!(upstream.calls(), 0, "a poison request reached the provider");
}

#[tokio::test]
async fn exactly_128_levels_is_accepted_and_passed_on_unchanged() {
    let upstream = MockUpstream::start(vec![Reply::json(200, &completion())]).await;
    let router = openai_router(&upstream).await;

    for body in [nested_metadata(MAX_DEPTH), nested_parameters(MAX_DEPTH)] {
        let answer = chat(&router, &body).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }

    let received = upstream.requests();
    assert_eq!(received.len(), 2);
    let expected = nested_metadata(MAX_DEPTH).replace(r#""model":"r""#, r#""model":"m""#);
    assert_eq!(received[0].body, expected.as_bytes());
}

#[tokio::test]
async fn invalid_utf8_in_a_member_the_router_skips_is_a_400_naming_the_offset() {
    let upstream = MockUpstream::start(vec![Reply::json(200, &completion())]).await;
    let router = openai_router(&upstream).await;
    let prefix =
        br#"{"model":"r","messages":[{"role":"user","content":"hi"}],"metadata":{"note":"caf"#;
    let cases: [(&[u8], &str); 3] = [
        // Latin-1 é, a lone continuation byte, and an overlong encoding of '/'.
        (b"\xe9\"}}", "metadata"),
        (b"\x80\"}}", "metadata"),
        (b"\xc0\xaf\"}}", "metadata"),
    ];
    for (tail, param) in cases {
        let body = [&prefix[..], tail].concat();
        let offset = prefix.len();
        refused(
            &post(&router, body).await,
            param,
            &format!("The request body is not valid UTF-8 (byte offset {offset})"),
        );
    }
    // Inside a raw member too: a tool's schema.
    let body = [
        &br#"{"model":"r","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"description":""#[..],
        b"\xff",
        br#""}}}]}"#,
    ]
    .concat();
    refused(&post(&router, body).await, "tools", "not valid UTF-8");

    assert_eq!(upstream.calls(), 0, "a poison request reached the provider");
}

#[tokio::test]
async fn a_lone_surrogate_escape_is_refused_wherever_it_is() {
    let upstream = MockUpstream::start(vec![Reply::json(200, &completion())]).await;
    let router = openai_router(&upstream).await;
    let cases = [
        (
            r#"{"model":"r","messages":[{"role":"user","content":"hi"}],"metadata":{"note":"\ud800"}}"#,
            "metadata",
        ),
        (
            r#"{"model":"r","messages":[{"role":"user","content":"hi \udc00"}]}"#,
            "messages",
        ),
        (
            r#"{"model":"r","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"\ud83d x"}}}"#,
            "response_format",
        ),
    ];
    for (body, param) in cases {
        refused(&chat(&router, body).await, param, "lone UTF-16 surrogate");
    }
    assert_eq!(upstream.calls(), 0, "a poison request reached the provider");

    // A proper pair is a character like any other.
    let pair = r#"{"model":"r","messages":[{"role":"user","content":"hi \ud83d\ude00"}],"metadata":{"note":"\ud83d\ude00"}}"#;
    assert_eq!(chat(&router, pair).await.status, 200);
    assert_eq!(upstream.calls(), 1);
}

// === Streams ===

const STREAM_CHAT: &str = r#"{"model":"r","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;

/// A complete stream from `who`.
fn stream_of(who: &str) -> Reply {
    Reply::sse_data(&[
        &role_chunk(who),
        &content_chunk(who, &format!("answer from {who}")),
        &chunk(who, "{}", r#""stop""#),
        &format!(
            r#"{{"id":"chatcmpl-{who}","object":"chat.completion.chunk","created":1700000000,"model":"m-{who}","choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}}}"#
        ),
        "[DONE]",
    ])
}

/// The poison events: not JSON, and JSON whose string holds bytes that are not UTF-8.
fn poisons(who: &str) -> [(&'static str, Vec<u8>); 2] {
    let mut not_utf8 = content_chunk(who, "caf").into_bytes();
    let at = not_utf8.windows(3).position(|w| w == b"caf").unwrap() + 3;
    not_utf8.insert(at, 0xe9);
    [("not json", b"{not json".to_vec()), ("not utf-8", not_utf8)]
}

/// An SSE body of these events, then more good content and `[DONE]` that must never be seen.
fn stream_with(events: &[Vec<u8>]) -> Reply {
    let mut chunks: Vec<Vec<u8>> = events
        .iter()
        .map(|e| [&b"data: "[..], e, b"\n\n"].concat())
        .collect();
    chunks.push(format!("data: {}\n\n", content_chunk("a", "after the poison")).into_bytes());
    chunks.push(b"data: [DONE]\n\n".to_vec());
    Reply::sse_bytes(chunks)
}

/// Two OpenAI-wire providers of `kind`, `a` first, and a usage log at `log`.
fn two_providers(kind: &str, a: &MockUpstream, b: &MockUpstream, log: &str) -> String {
    format!(
        r#"
[usage_log]
path = "{log}"

[providers.a]
kind = "{kind}"
base_url = "{a}"
api_key_env = "UP_KEY"

[providers.b]
kind = "{kind}"
base_url = "{b}"
api_key_env = "UP_KEY"

[routes.r]
targets = ["a/m", "b/m"]
"#,
        a = a.url("/v1"),
        b = b.url("/v1"),
    )
}

/// The one usage-log line, once it is written.
async fn usage_line(path: &std::path::Path) -> serde_json::Value {
    eventually(Duration::from_secs(5), "the usage-log line", || async {
        std::fs::read_to_string(path).is_ok_and(|text| text.lines().count() == 1)
    })
    .await;
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(text.trim_end()).unwrap()
}

#[tokio::test]
async fn a_poison_event_before_the_first_content_fails_over_unseen() {
    for kind in ["openai", "qwen", "mistral"] {
        for (what, poison) in poisons("a") {
            let a = MockUpstream::start(vec![stream_with(&[role_chunk("a").into_bytes(), poison])])
                .await;
            let b = MockUpstream::start(vec![stream_of("b")]).await;
            let dir = TempDir::new("poison-before");
            let log = dir.path().join("usage.jsonl");
            let config = two_providers(kind, &a, &b, &log.display().to_string());
            let router = spawn_router(&config, UP_ENV).await;
            let before = scrape(&router).await;

            let answer = chat(&router, STREAM_CHAT).await;

            let context = format!("{kind}, {what}: {}", answer.text());
            assert_eq!(answer.status, 200, "{context}");
            assert_eq!(answer.headers["x-switchboard-provider"], "b", "{context}");
            let data = answer.sse_data();
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{context}");
            for event in &data[..data.len() - 1] {
                let json: serde_json::Value = serde_json::from_str(event)
                    .unwrap_or_else(|e| panic!("{context}: forwarded {event} ({e})"));
                assert_eq!(json["model"], "m-b", "{context}");
            }
            assert!(answer.text().contains("answer from b"), "{context}");
            let after = scrape(&router).await;
            assert_moved(
                &before,
                &after,
                ATTEMPTS,
                &[
                    (&[("outcome", "stream_error"), ("provider", "a")], 1.0),
                    (&[("outcome", "ok"), ("provider", "b")], 1.0),
                ],
            );
            let line = usage_line(&log).await;
            assert_eq!(
                line["attempt_outcomes"],
                serde_json::json!([
                    {"target": "a/m", "outcome": "stream_error"},
                    {"target": "b/m", "outcome": "ok"},
                ]),
                "{context}: {line}"
            );
        }
    }
}

#[tokio::test]
async fn a_poison_event_after_the_first_content_ends_the_stream_with_an_error() {
    for kind in ["openai", "qwen", "mistral"] {
        for (what, poison) in poisons("a") {
            let a = MockUpstream::start(vec![stream_with(&[
                role_chunk("a").into_bytes(),
                content_chunk("a", "first words").into_bytes(),
                poison,
            ])])
            .await;
            let b = MockUpstream::start(vec![stream_of("b")]).await;
            let dir = TempDir::new("poison-after");
            let log = dir.path().join("usage.jsonl");
            let config = two_providers(kind, &a, &b, &log.display().to_string());
            let router = spawn_router(&config, UP_ENV).await;
            let before = scrape(&router).await;

            let answer = chat(&router, STREAM_CHAT).await;

            let context = format!("{kind}, {what}: {}", answer.text());
            assert_eq!(answer.status, 200, "{context}");
            assert_eq!(answer.headers["x-switchboard-provider"], "a", "{context}");
            let text = answer.text();
            assert!(text.contains("first words"), "{context}");
            assert!(!text.contains("[DONE]"), "{context}");
            assert!(!text.contains("after the poison"), "{context}");
            assert!(!text.contains("not json"), "{context}");
            let data = answer.sse_data();
            let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
            assert_eq!(last["error"]["type"], "server_error", "{context}");
            assert_eq!(last["error"]["code"], "stream_interrupted", "{context}");
            for event in &data {
                assert!(
                    serde_json::from_str::<serde_json::Value>(event).is_ok(),
                    "{context}: forwarded {event}"
                );
            }
            assert_eq!(b.calls(), 0, "{context}: committed, so no failover");
            let after = scrape(&router).await;
            assert_moved(
                &before,
                &after,
                ATTEMPTS,
                &[
                    // Served (its first content went out), then broken.
                    (&[("outcome", "ok"), ("provider", "a")], 1.0),
                    (&[("outcome", "stream_error"), ("provider", "a")], 1.0),
                ],
            );
            let line = usage_line(&log).await;
            assert_eq!(
                line["attempt_outcomes"],
                serde_json::json!([{"target": "a/m", "outcome": "stream_error"}]),
                "{context}: {line}"
            );
            assert_eq!(line["error"], "stream_interrupted", "{context}: {line}");
        }
    }
}

#[tokio::test]
async fn sound_events_that_arrive_with_a_poison_one_reach_the_client_in_order() {
    let event = |data: &str| http_chunk(&format!("data: {data}\n\n"));
    // One write: the router reads the stream after its commit point in one burst, and the
    // last HTTP chunk holds a sound event and then the poison.
    let burst = [
        SSE_HEAD.to_owned(),
        event(&role_chunk("a")),
        event(&content_chunk("a", "first words")),
        event(&content_chunk("a", "middle words")),
        http_chunk(&format!(
            "data: {}\n\ndata: {{not json\n\n",
            content_chunk("a", "last words")
        )),
        event("[DONE]"),
        LAST_CHUNK.to_owned(),
    ]
    .concat();
    let a = RawUpstream::start(vec![Step::send(burst)]).await;
    let config = format!(
        "[providers.a]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"UP_KEY\"\n\n[routes.r]\ntargets = [\"a/m\"]\n",
        a.url("/v1")
    );
    let router = spawn_router(&config, UP_ENV).await;

    let answer = chat(&router, STREAM_CHAT).await;

    let text = answer.text();
    assert_eq!(answer.status, 200, "{text}");
    let data = answer.sse_data();
    assert_eq!(data.len(), 5, "role, three contents, the error: {text}");
    for (event, words) in data[1..4].iter().zip(["first", "middle", "last"]) {
        assert!(event.contains(&format!("{words} words")), "{text}");
    }
    let last: serde_json::Value = serde_json::from_str(&data[4]).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
}
