//! The router's own rate limits. A provider's `rpm`/`tpm` is respected without waiting for
//! its 429: a provider with no room is skipped without a call. A client key's `rpm`/`tpm` ends
//! the request with 429 `rate_limit_exceeded`, `Retry-After` and OpenAI's `x-ratelimit-*`
//! headers, touching no provider and no other key; its other answers (200s and streams) carry
//! the same headers, counting down. (Refill over time is unit-tested with a paused clock in
//! `src/limits.rs`.)
#![cfg(test)]

use std::time::Duration;

use http::HeaderMap;

use crate::metrics::{RATE_LIMITED, scrape};
use crate::support::{
    Answer, MockUpstream, Reply, chat, chat_with, ok, openai_error, spawn_router,
};

const CHAT: &str = r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#;

/// `openai` providers (`name`, base URL, extra lines) and route `r` over them in order, after
/// `head` (keys and the like).
fn config(head: &str, providers: &[(&str, String, &str)]) -> String {
    let mut text = format!("{head}\n");
    for (name, base, extra) in providers {
        text += &format!(
            "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key_env = \"UP_KEY\"\n{extra}\n\n"
        );
    }
    let targets: Vec<String> = providers
        .iter()
        .map(|(name, _, _)| format!("\"{name}/m-{name}\""))
        .collect();
    text += &format!("[routes.r]\ntargets = [{}]\n", targets.join(", "));
    text
}

const ENV: &[(&str, &str)] = &[
    ("UP_KEY", "sk-upstream-secret"),
    ("KEY_WEB", "sk-sb-web"),
    ("KEY_BATCH", "sk-sb-batch"),
];
const WEB: &[(&str, &str)] = &[("authorization", "Bearer sk-sb-web")];
const BATCH: &[(&str, &str)] = &[("authorization", "Bearer sk-sb-batch")];

fn provider_of(answer: &Answer) -> &str {
    answer.headers["x-switchboard-provider"].to_str().unwrap()
}

#[tokio::test]
async fn a_provider_out_of_requests_is_skipped_without_a_call() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = spawn_router(
        &config(
            "",
            &[("a", a.url("/v1"), "rpm = 2"), ("b", b.url("/v1"), "")],
        ),
        ENV,
    )
    .await;

    let first = chat(&router, CHAT).await;
    let second = chat(&router, CHAT).await;
    let third = chat(&router, CHAT).await;

    assert_eq!(provider_of(&first), "a");
    assert_eq!(provider_of(&second), "a");
    assert_eq!(third.status, 200, "{}", third.text());
    assert_eq!(provider_of(&third), "b");
    assert_eq!(
        third.headers["x-switchboard-attempts"], "1",
        "a skip is not an attempt"
    );
    assert_eq!((a.calls(), b.calls()), (2, 1));
    let metrics = scrape(&router).await;
    assert_eq!(
        metrics.value(RATE_LIMITED, &[("name", "a"), ("scope", "provider")]),
        1.0
    );
}

#[tokio::test]
async fn a_lone_provider_out_of_requests_is_429_all_targets_rate_limited() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let router = spawn_router(&config("", &[("a", a.url("/v1"), "rpm = 2")]), ENV).await;

    assert_eq!(chat(&router, CHAT).await.status, 200);
    assert_eq!(chat(&router, CHAT).await.status, 200);
    let third = chat(&router, CHAT).await;

    let error = openai_error(&third, 429, "all_targets_rate_limited");
    assert_eq!(third.headers["x-should-retry"], "false");
    // Two requests a minute: the next one fits in 30 s.
    let retry: u64 = third.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("a/m-a"), "{message}");
    assert!(message.contains("limit"), "{message}");
    assert_eq!(a.calls(), 2, "the third request never reached a");
}

#[tokio::test]
async fn a_provider_out_of_tokens_is_skipped_without_a_call() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let b = MockUpstream::start(vec![ok("b")]).await;
    let router = spawn_router(
        &config(
            "",
            &[("a", a.url("/v1"), "tpm = 100"), ("b", b.url("/v1"), "")],
        ),
        ENV,
    )
    .await;
    // About 80 tokens estimated (prompt bytes / 4 + max_tokens): one fits, two do not.
    let body = r#"{"model":"r","max_tokens":60,"messages":[{"role":"user","content":"hi"}]}"#;

    let first = chat(&router, body).await;
    let second = chat(&router, body).await;

    assert_eq!(provider_of(&first), "a");
    assert_eq!(provider_of(&second), "b");
    assert_eq!(a.calls(), 1);
}

fn keyed(web: &str) -> String {
    format!(
        "[[keys]]\nname = \"web\"\nkey_env = \"KEY_WEB\"\n{web}\n\n\
         [[keys]]\nname = \"batch\"\nkey_env = \"KEY_BATCH\"\nrpm = 5\n"
    )
}

#[tokio::test]
async fn a_key_over_its_rpm_gets_429_with_ratelimit_headers() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let router = spawn_router(&config(&keyed("rpm = 1"), &[("a", a.url("/v1"), "")]), ENV).await;

    let first = chat_with(&router, WEB, CHAT).await;
    let second = chat_with(&router, WEB, CHAT).await;

    assert_eq!(first.status, 200);
    let error = openai_error(&second, 429, "rate_limit_exceeded");
    assert_eq!(error["type"], "requests");
    assert!(
        error["message"].as_str().unwrap().contains("1 requests"),
        "{error}"
    );
    let headers = &second.headers;
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(headers["x-ratelimit-limit-requests"], "1");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    let reset = reset_of(headers, "requests");
    assert!(
        reset > Duration::from_secs(59) && reset <= Duration::from_secs(60),
        "{reset:?}"
    );
    assert!(
        !headers.contains_key("x-ratelimit-limit-tokens"),
        "only the exhausted budget"
    );
    assert_eq!(a.calls(), 1, "a key-limited request reaches no provider");

    // Another key has its own budget.
    let other = chat_with(&router, BATCH, CHAT).await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(a.calls(), 2);
    assert_eq!(
        scrape(&router)
            .await
            .value(RATE_LIMITED, &[("name", "web"), ("scope", "key")]),
        1.0
    );
}

#[tokio::test]
async fn a_key_over_its_tpm_gets_429_with_token_headers() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let router = spawn_router(&config(&keyed("tpm = 50"), &[("a", a.url("/v1"), "")]), ENV).await;
    let prompt = "lorem ipsum ".repeat(40);
    let body = format!(r#"{{"model":"r","messages":[{{"role":"user","content":"{prompt}"}}]}}"#);

    // A request bigger than the whole budget passes on a full bucket, then the key is dry.
    let first = chat_with(&router, WEB, &body).await;
    let second = chat_with(&router, WEB, &body).await;

    assert_eq!(first.status, 200, "{}", first.text());
    let error = openai_error(&second, 429, "rate_limit_exceeded");
    assert_eq!(error["type"], "tokens");
    let headers = &second.headers;
    assert_eq!(headers["x-ratelimit-limit-tokens"], "50");
    assert_eq!(headers["x-ratelimit-remaining-tokens"], "0");
    assert!(headers.contains_key("x-ratelimit-reset-tokens"));
    assert!(headers.contains_key("retry-after"));
    assert_eq!(a.calls(), 1);

    // A small request from another key is unaffected.
    assert_eq!(chat_with(&router, BATCH, CHAT).await.status, 200);
}

#[tokio::test]
async fn a_rejected_body_does_not_use_the_keys_budget() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let router = spawn_router(&config(&keyed("rpm = 1"), &[("a", a.url("/v1"), "")]), ENV).await;

    let bad = chat_with(&router, WEB, r#"{"model":"r","messages":[]}"#).await;
    assert_eq!(bad.status, 400);
    let good = chat_with(&router, WEB, CHAT).await;

    assert_eq!(good.status, 200, "{}", good.text());
}

/// `x-ratelimit-reset-{budget}`, read as the Go duration text OpenAI writes (`20ms`, `1.5s`,
/// `6m0s`, `1h2m3s`).
fn reset_of(headers: &HeaderMap, budget: &str) -> Duration {
    let text = headers[format!("x-ratelimit-reset-{budget}").as_str()]
        .to_str()
        .unwrap();
    if let Some(millis) = text.strip_suffix("ms") {
        return Duration::from_millis(millis.parse().unwrap());
    }
    let mut rest = text.strip_suffix('s').unwrap_or_else(|| panic!("{text}"));
    let mut total = Duration::ZERO;
    for (unit, secs) in [('h', 3600), ('m', 60)] {
        if let Some((n, tail)) = rest.split_once(unit) {
            total += Duration::from_secs(n.parse::<u64>().unwrap() * secs);
            rest = tail;
        }
    }
    total + Duration::from_secs_f64(rest.parse().unwrap_or_else(|_| panic!("{text}")))
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer.headers[name].to_str().unwrap()
}

#[tokio::test]
async fn every_answer_of_a_limited_key_counts_its_requests_down() {
    let a = MockUpstream::start(vec![ok("a")]).await;
    let head = "[[keys]]\nname = \"web\"\nkey_env = \"KEY_WEB\"\nrpm = 3\n\n\
                [[keys]]\nname = \"batch\"\nkey_env = \"KEY_BATCH\"\n";
    let router = spawn_router(&config(head, &[("a", a.url("/v1"), "")]), ENV).await;

    // Three a minute refill one per 20 s: the bucket is full again one interval per use later.
    for (remaining, reset) in [("2", "20s"), ("1", "40s"), ("0", "1m0s")] {
        let answer = chat_with(&router, WEB, CHAT).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(header(&answer, "x-ratelimit-limit-requests"), "3");
        assert_eq!(header(&answer, "x-ratelimit-remaining-requests"), remaining);
        assert_eq!(header(&answer, "x-ratelimit-reset-requests"), reset);
        assert!(
            !answer.headers.contains_key("x-ratelimit-limit-tokens"),
            "a key without tpm gets no token headers"
        );
    }
    let refused = chat_with(&router, WEB, CHAT).await;
    openai_error(&refused, 429, "rate_limit_exceeded");
    assert_eq!(header(&refused, "x-ratelimit-limit-requests"), "3");
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    let reset = reset_of(&refused.headers, "requests");
    assert!(
        reset > Duration::from_secs(50) && reset <= Duration::from_secs(60),
        "{reset:?}"
    );

    // A key without limits gets none of them.
    let unlimited = chat_with(&router, BATCH, CHAT).await;
    assert_eq!(unlimited.status, 200, "{}", unlimited.text());
    assert!(
        !unlimited
            .headers
            .keys()
            .any(|name| name.as_str().starts_with("x-ratelimit-")),
        "{:?}",
        unlimited.headers
    );
}

#[tokio::test]
async fn a_streamed_answer_and_an_upstream_error_carry_both_budgets() {
    let chunk = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m-a","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#;
    let a = MockUpstream::start(vec![
        Reply::sse_data(&[chunk, "[DONE]"]),
        Reply::json(
            400,
            r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#,
        ),
    ])
    .await;
    let router = spawn_router(
        &config(&keyed("rpm = 10\ntpm = 100000"), &[("a", a.url("/v1"), "")]),
        ENV,
    )
    .await;
    let stream = r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

    let streamed = chat_with(&router, WEB, stream).await;
    let failed = chat_with(&router, WEB, CHAT).await;

    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert!(streamed.text().contains("[DONE]"), "{}", streamed.text());
    assert_eq!(failed.status, 400, "{}", failed.text());
    for (answer, requests_left) in [(&streamed, 9), (&failed, 8)] {
        assert_eq!(header(answer, "x-ratelimit-limit-requests"), "10");
        assert_eq!(
            header(answer, "x-ratelimit-remaining-requests"),
            requests_left.to_string()
        );
        assert_eq!(header(answer, "x-ratelimit-limit-tokens"), "100000");
        let tokens: u32 = header(answer, "x-ratelimit-remaining-tokens")
            .parse()
            .unwrap();
        // Taken on estimate, so never a full bucket, whatever refilled in between.
        assert!((99_000..100_000).contains(&tokens), "{tokens}");
        assert!(reset_of(&answer.headers, "tokens") > Duration::ZERO);
    }
}
