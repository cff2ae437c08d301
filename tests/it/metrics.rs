//! `GET /metrics`: the Prometheus text exposition, parsed here sample by sample, and the
//! counters of the resilient router (upstream attempts by outcome, failovers by reason, the
//! router's own rate-limit refusals, cooldown gauges) moving by exactly what a scripted
//! request did.
#![cfg(test)]

use std::collections::BTreeMap;

use crate::support::{
    MockUpstream, PATIENCE, Reply, RouterHandle, chat, chat_with, closed_port, completion,
    eventually, routed, send, spawn_router, stream_of, wait_for,
};

/// One sample line: `name{label="value",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// A parsed exposition.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exposition {
    pub(crate) samples: Vec<Sample>,
    /// `# TYPE` lines: metric name -> type.
    pub(crate) types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses the text format; panics on a line it cannot read.
    pub(crate) fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let name = parts.next().expect("TYPE name").to_owned();
                let kind = parts.next().expect("TYPE kind").to_owned();
                out.types.insert(name, kind);
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            out.samples.push(parse_sample(line));
        }
        out
    }

    /// The value of the sample with exactly these labels, if present.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Like [`Self::get`], with an absent series read as 0 (a counter not yet touched).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every sample of `name`.
    pub(crate) fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value in sample line {line:?}"));
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}")),
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest
        .strip_suffix('}')
        .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(
            chars.next(),
            Some('"'),
            "label value must be quoted: {line:?}"
        );
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape in {line:?}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        }
        labels.insert(key.trim().to_owned(), value);
        match chars.next() {
            Some(',') | None => {}
            Some(c) => panic!("unexpected {c:?} after a label in {line:?}"),
        }
    }
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// `GET /metrics`, checked to be Prometheus text, parsed.
pub(crate) async fn scrape(router: &RouterHandle) -> Exposition {
    let answer = send("GET", &router.url("/metrics"), &[], "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let content_type = answer.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    Exposition::parse(&answer.text())
}

pub(crate) const ATTEMPTS: &str = "switchboard_upstream_attempts_total";
pub(crate) const FAILOVERS: &str = "switchboard_failovers_total";
pub(crate) const RATE_LIMITED: &str = "switchboard_rate_limited_total";
pub(crate) const COOLDOWN: &str = "switchboard_provider_cooldown_seconds";

/// `upstream_attempts_total{provider, outcome}`.
pub(crate) fn attempts(m: &Exposition, provider: &str, outcome: &str) -> f64 {
    m.value(ATTEMPTS, &[("outcome", outcome), ("provider", provider)])
}

/// `failovers_total{route, from_provider, reason}`.
pub(crate) fn failovers(m: &Exposition, route: &str, from: &str, reason: &str) -> f64 {
    m.value(
        FAILOVERS,
        &[
            ("from_provider", from),
            ("reason", reason),
            ("route", route),
        ],
    )
}

/// `provider_cooldown_seconds{provider}`; panics when the gauge is missing.
pub(crate) fn cooldown(m: &Exposition, provider: &str) -> f64 {
    m.get(COOLDOWN, &[("provider", provider)])
        .unwrap_or_else(|| panic!("no {COOLDOWN} for {provider}"))
}

pub(crate) const TARGET_COOLDOWN: &str = "switchboard_target_cooldown_seconds";

/// `target_cooldown_seconds{provider, model}`; panics when the gauge is missing.
pub(crate) fn target_cooldown(m: &Exposition, provider: &str, model: &str) -> f64 {
    m.get(TARGET_COOLDOWN, &[("model", model), ("provider", provider)])
        .unwrap_or_else(|| panic!("no {TARGET_COOLDOWN} for {provider}/{model}"))
}

/// Waits (bounded) until `provider`'s cooldown is over, as its gauge says: the router's clock
/// runs on its own threads, so the test watches it rather than sleeping past it.
pub(crate) async fn cooled_down(router: &RouterHandle, provider: &str) {
    eventually(PATIENCE, &format!("{provider}'s cooldown ends"), || async {
        cooldown(&scrape(router).await, provider) == 0.0
    })
    .await;
}

/// Waits (bounded) until nothing is in flight (the router has finished and counted every
/// request, abandoned ones included) and returns that scrape.
pub(crate) async fn settled(router: &RouterHandle) -> Exposition {
    wait_for(PATIENCE, "no request in flight", || async {
        let scraped = scrape(router).await;
        (inflight(&scraped) == 0.0).then_some(scraped)
    })
    .await
}

/// Asserts that, between two scrapes, the `name` series moved by exactly `expected` (series
/// by label set; absent ones count as 0) and no other series of `name` moved.
pub(crate) fn assert_moved(
    before: &Exposition,
    after: &Exposition,
    name: &str,
    expected: &[(&[(&str, &str)], f64)],
) {
    let mut all: Vec<BTreeMap<String, String>> = before
        .series(name)
        .into_iter()
        .chain(after.series(name))
        .map(|s| s.labels.clone())
        .collect();
    all.sort();
    all.dedup();
    for labels in &all {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let moved = after.value(name, &pairs) - before.value(name, &pairs);
        let want = expected
            .iter()
            .find(|(l, _)| {
                let mut l: Vec<(&str, &str)> = l.to_vec();
                l.sort_unstable();
                l == pairs
            })
            .map_or(0.0, |(_, v)| *v);
        assert_eq!(
            moved, want,
            "{name}{labels:?} moved by {moved}, want {want}"
        );
    }
    for (labels, want) in expected {
        if *want != 0.0 {
            assert!(
                after.get(name, labels).is_some(),
                "{name}{labels:?} is missing from the exposition"
            );
        }
    }
}

const CHAT: &str = r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM_CHAT: &str =
    r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// `[routing]` lines, `extra` tables (keys and the like), then [`routed`]'s providers and route.
fn config(routing: &str, extra: &str, providers: &[(&str, String)]) -> String {
    format!("{extra}\n{}", routed(routing, "", providers))
}

const ENV: &[(&str, &str)] = &[("UP_KEY", "sk-upstream-secret")];

#[tokio::test]
async fn the_exposition_is_prometheus_text_with_the_router_families() {
    let a = MockUpstream::start(vec![Reply::json(200, &completion("a"))]).await;
    let router = spawn_router(&config("", "", &[("a", a.url("/v1"))]), ENV).await;
    assert_eq!(chat(&router, CHAT).await.status, 200);

    let m = scrape(&router).await;

    assert_eq!(
        m.types.get(ATTEMPTS).map(String::as_str),
        Some("counter"),
        "{:?}",
        m.types
    );
    assert_eq!(m.types.get(COOLDOWN).map(String::as_str), Some("gauge"));
    assert_eq!(attempts(&m, "a", "ok"), 1.0);
    assert_eq!(cooldown(&m, "a"), 0.0, "a healthy provider is usable now");
    // Every sample is named with the router's prefix.
    for sample in &m.samples {
        assert!(sample.name.starts_with("switchboard_"), "{sample:?}");
    }
}

#[tokio::test]
async fn a_scripted_failover_moves_attempts_and_failovers_by_exactly_one() {
    let a = MockUpstream::start(vec![
        Reply::json(429, r#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
            .header("retry-after", "30"),
    ])
    .await;
    let b = MockUpstream::start(vec![Reply::json(200, &completion("b"))]).await;
    let router = spawn_router(
        &config("", "", &[("a", a.url("/v1")), ("b", b.url("/v1"))]),
        ENV,
    )
    .await;
    let before = scrape(&router).await;

    let answer = chat(&router, CHAT).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-switchboard-attempts"], "2");
    let after = scrape(&router).await;
    assert_moved(
        &before,
        &after,
        ATTEMPTS,
        &[
            (&[("outcome", "rate_limited"), ("provider", "a")], 1.0),
            (&[("outcome", "ok"), ("provider", "b")], 1.0),
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
            1.0,
        )],
    );
    assert!(cooldown(&after, "a") > 25.0, "{}", cooldown(&after, "a"));
    assert_eq!(cooldown(&after, "b"), 0.0);

    // While a cools down the next request makes no attempt at a at all.
    let answer = chat(&router, CHAT).await;
    assert_eq!(answer.headers["x-switchboard-provider"], "b");
    assert_eq!(answer.headers["x-switchboard-attempts"], "1");
    let later = scrape(&router).await;
    assert_moved(
        &after,
        &later,
        ATTEMPTS,
        &[(&[("outcome", "ok"), ("provider", "b")], 1.0)],
    );
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn every_failure_class_has_its_outcome_and_failover_reason() {
    let timeout = MockUpstream::start(vec![
        Reply::json(200, &completion("t")).delay(std::time::Duration::from_secs(3)),
    ])
    .await;
    let refused = format!("http://127.0.0.1:{}/v1", closed_port().await);
    let unavailable = MockUpstream::start(vec![Reply::json(503, "{}")]).await;
    let role = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
    let broken = MockUpstream::start(vec![Reply::sse_data(&[role]).abort()]).await;
    let account = MockUpstream::start(vec![Reply::json(
        401,
        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    )])
    .await;
    let good = MockUpstream::start(vec![stream_of("ok")]).await;
    let router = spawn_router(
        &config(
            "max_attempts = 6\nattempt_timeout = \"200ms\"",
            "",
            &[
                ("t", timeout.url("/v1")),
                ("c", refused),
                ("u", unavailable.url("/v1")),
                ("s", broken.url("/v1")),
                ("k", account.url("/v1")),
                ("ok", good.url("/v1")),
            ],
        ),
        ENV,
    )
    .await;
    let before = scrape(&router).await;

    let answer = chat(&router, STREAM_CHAT).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-switchboard-provider"], "ok");
    assert_eq!(answer.headers["x-switchboard-attempts"], "6");
    let after = scrape(&router).await;
    let classes = [
        ("t", "timeout"),
        ("c", "connect_error"),
        ("u", "unavailable"),
        ("s", "stream_error"),
        ("k", "account"),
    ];
    let mut expected_attempts: Vec<(Vec<(&str, &str)>, f64)> = classes
        .iter()
        .map(|&(p, o)| (vec![("outcome", o), ("provider", p)], 1.0))
        .collect();
    expected_attempts.push((vec![("outcome", "ok"), ("provider", "ok")], 1.0));
    let refs: Vec<(&[(&str, &str)], f64)> = expected_attempts
        .iter()
        .map(|(l, v)| (l.as_slice(), *v))
        .collect();
    assert_moved(&before, &after, ATTEMPTS, &refs);
    let expected_failovers: Vec<Vec<(&str, &str)>> = classes
        .iter()
        .map(|&(p, reason)| vec![("from_provider", p), ("reason", reason), ("route", "r")])
        .collect();
    let refs: Vec<(&[(&str, &str)], f64)> = expected_failovers
        .iter()
        .map(|l| (l.as_slice(), 1.0))
        .collect();
    assert_moved(&before, &after, FAILOVERS, &refs);
    // Each failed provider is cooling; the account failure for the long account cooldown.
    for (provider, _) in classes {
        assert!(cooldown(&after, provider) > 0.0, "{provider}");
    }
    assert!(
        cooldown(&after, "k") > 500.0,
        "account_cooldown defaults to 10 min"
    );
    assert_eq!(cooldown(&after, "ok"), 0.0);
}

#[tokio::test]
async fn a_client_error_counts_as_client_error_and_is_no_failover() {
    let a = MockUpstream::start(vec![Reply::json(
        400,
        r#"{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    )])
    .await;
    let b = MockUpstream::start(vec![Reply::json(200, &completion("b"))]).await;
    let router = spawn_router(
        &config("", "", &[("a", a.url("/v1")), ("b", b.url("/v1"))]),
        ENV,
    )
    .await;
    let before = scrape(&router).await;

    assert_eq!(chat(&router, CHAT).await.status, 400);

    let after = scrape(&router).await;
    assert_moved(
        &before,
        &after,
        ATTEMPTS,
        &[(&[("outcome", "client_error"), ("provider", "a")], 1.0)],
    );
    assert_moved(&before, &after, FAILOVERS, &[]);
    assert_eq!(
        cooldown(&after, "a"),
        0.0,
        "a wrong request says nothing of a"
    );
}

#[tokio::test]
async fn key_and_provider_limit_refusals_count_in_rate_limited_total() {
    let a = MockUpstream::start(vec![Reply::json(200, &completion("a"))]).await;
    let b = MockUpstream::start(vec![Reply::json(200, &completion("b"))]).await;
    let keys = "[[keys]]\nname = \"web\"\nkey_env = \"KEY_WEB\"\nrpm = 1\n\n[[keys]]\nname = \"batch\"\nkey_env = \"KEY_BATCH\"\n";
    let text = config("", keys, &[("a", a.url("/v1")), ("b", b.url("/v1"))])
        .replace("[providers.a]\n", "[providers.a]\nrpm = 1\n");
    let env = [
        ("UP_KEY", "sk-upstream-secret"),
        ("KEY_WEB", "sk-web"),
        ("KEY_BATCH", "sk-batch"),
    ];
    let router = spawn_router(&text, &env).await;
    let web = [("authorization", "Bearer sk-web")];
    let batch = [("authorization", "Bearer sk-batch")];
    let before = scrape(&router).await;

    // web: first request to a (its one request a minute), second refused by the key limit.
    assert_eq!(chat_with(&router, &web, CHAT).await.status, 200);
    let refused = chat_with(&router, &web, CHAT).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    let middle = scrape(&router).await;
    assert_moved(
        &before,
        &middle,
        RATE_LIMITED,
        &[(&[("name", "web"), ("scope", "key")], 1.0)],
    );

    // batch: a has no room left this minute, so it is skipped for b.
    let answer = chat_with(&router, &batch, CHAT).await;
    assert_eq!(answer.headers["x-switchboard-provider"], "b");
    let after = scrape(&router).await;
    assert_moved(
        &middle,
        &after,
        RATE_LIMITED,
        &[(&[("name", "a"), ("scope", "provider")], 1.0)],
    );
    // The router's own limit is not an upstream attempt.
    assert_moved(
        &middle,
        &after,
        ATTEMPTS,
        &[(&[("outcome", "ok"), ("provider", "b")], 1.0)],
    );
    assert_eq!(a.calls(), 1);
}

#[test]
fn the_parser_reads_labels_escapes_and_bare_samples() {
    let text = "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"uote\\\\\"} 3\nup 1\nh_bucket{le=\"+Inf\"} 2\n";
    let m = Exposition::parse(text);
    assert_eq!(
        m.get("x_total", &[("a", "1"), ("b", "q\"uote\\")]),
        Some(3.0)
    );
    assert_eq!(m.get("up", &[]), Some(1.0));
    assert_eq!(m.get("h_bucket", &[("le", "+Inf")]), Some(2.0));
    assert_eq!(
        m.get("x_total", &[("a", "1")]),
        None,
        "label sets match exactly"
    );
    assert_eq!(m.types["x_total"], "counter");
}

// ---------------------------------------------------------------------------------------------
// Per-request metrics: requests, durations, time to first token, tokens, in-flight, cost.

pub(crate) const REQUESTS: &str = "switchboard_requests_total";
pub(crate) const DURATION_COUNT: &str = "switchboard_request_duration_seconds_count";
pub(crate) const TTFT_COUNT: &str = "switchboard_time_to_first_token_seconds_count";
pub(crate) const TOKENS: &str = "switchboard_tokens_total";
pub(crate) const COST: &str = "switchboard_cost_total";
pub(crate) const TRANSACTIONS: &str = "switchboard_transactions_total";
pub(crate) const INFLIGHT: &str = "switchboard_inflight_requests";

/// `requests_total{endpoint="chat", route, provider, model, status}`.
fn requests(route: &str, provider: &str, model: &str, status: &str) -> Vec<(String, String)> {
    [
        ("endpoint", "chat"),
        ("model", model),
        ("provider", provider),
        ("route", route),
        ("status", status),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// Borrowed label pairs of an owned list.
fn pairs(labels: &[(String, String)]) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `inflight_requests`; panics when the gauge is missing.
pub(crate) fn inflight(m: &Exposition) -> f64 {
    m.get(INFLIGHT, &[])
        .unwrap_or_else(|| panic!("no {INFLIGHT}"))
}

fn completion_with_cache(who: &str, cached: u64) -> String {
    format!(
        r#"{{"id":"chatcmpl-{who}","object":"chat.completion","created":1700000000,"model":"m-{who}","choices":[{{"index":0,"message":{{"role":"assistant","content":"answer"}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{{"cached_tokens":{cached}}}}}}}"#
    )
}

#[tokio::test]
async fn every_metric_of_the_design_is_exposed_with_its_type_before_any_traffic() {
    let router = spawn_router(
        "[providers.local]\nkind = \"mock\"\n[routes.demo]\ntargets = [\"local/echo\"]\n",
        &[],
    )
    .await;

    let m = scrape(&router).await;

    // Vectors without a child yet have no TYPE line in the text format; these must all be
    // there from the start, so dashboards and alerts see zeros, not gaps.
    for (name, kind) in [
        ("switchboard_provider_cooldown_seconds", "gauge"),
        (TARGET_COOLDOWN, "gauge"),
        (INFLIGHT, "gauge"),
        ("switchboard_config_reloads_total", "counter"),
        ("switchboard_usage_log_dropped_total", "counter"),
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    assert_eq!(inflight(&m), 0.0);
    for result in ["ok", "error"] {
        assert_eq!(
            m.get("switchboard_config_reloads_total", &[("result", result)]),
            Some(0.0),
            "{result}"
        );
    }
    assert_eq!(m.get("switchboard_usage_log_dropped_total", &[]), Some(0.0));

    // One request brings the per-request families in, each with its type.
    assert_eq!(
        chat(
            &router,
            r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
        )
        .await
        .status,
        200
    );
    let m = scrape(&router).await;
    for (name, kind) in [
        (REQUESTS, "counter"),
        ("switchboard_request_duration_seconds", "histogram"),
        ("switchboard_time_to_first_token_seconds", "histogram"),
        (TOKENS, "counter"),
        (TRANSACTIONS, "counter"),
        (ATTEMPTS, "counter"),
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
    }
}

#[tokio::test]
async fn a_served_request_moves_requests_durations_and_tokens_by_exactly_one_request() {
    let a = MockUpstream::start(vec![Reply::json(200, &completion_with_cache("a", 4))]).await;
    let router = spawn_router(&config("", "", &[("a", a.url("/v1"))]), ENV).await;
    let before = scrape(&router).await;

    let answer = chat(&router, CHAT).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let after = scrape(&router).await;
    let served = requests("r", "a", "m-a", "200");
    assert_moved(&before, &after, REQUESTS, &[(&pairs(&served), 1.0)]);
    let route = [("endpoint", "chat"), ("provider", "a"), ("route", "r")];
    assert_moved(&before, &after, DURATION_COUNT, &[(&route, 1.0)]);
    // A non-stream answer has no first token of its own: its latency is the duration.
    assert_moved(&before, &after, TTFT_COUNT, &[]);
    // 11 prompt tokens of which 4 from the cache: 7 + 4 + the 7 output tokens.
    assert_moved(
        &before,
        &after,
        TOKENS,
        &[
            (
                &[("kind", "input"), ("model", "m-a"), ("provider", "a")],
                7.0,
            ),
            (
                &[
                    ("kind", "cached_input"),
                    ("model", "m-a"),
                    ("provider", "a"),
                ],
                4.0,
            ),
            (
                &[("kind", "output"), ("model", "m-a"), ("provider", "a")],
                7.0,
            ),
        ],
    );
    // The histogram's buckets are the documented LLM-latency ones.
    let les: Vec<String> = after
        .series("switchboard_request_duration_seconds_bucket")
        .iter()
        .filter(|s| s.labels.get("route").map(String::as_str) == Some("r"))
        .map(|s| s.labels["le"].clone())
        .collect();
    assert_eq!(
        les,
        [
            "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "20", "30", "60", "120",
            "300", "600", "+Inf"
        ]
    );
    assert_eq!(inflight(&after), 0.0);

    // A second request through the same handles adds exactly one more.
    assert_eq!(chat(&router, CHAT).await.status, 200);
    let again = scrape(&router).await;
    assert_moved(&after, &again, REQUESTS, &[(&pairs(&served), 1.0)]);
    assert_moved(&after, &again, DURATION_COUNT, &[(&route, 1.0)]);
}

#[tokio::test]
async fn a_stream_counts_its_first_token_and_stays_in_flight_until_its_body_ends() {
    let a = MockUpstream::start(vec![
        stream_of("a").chunk_delay(std::time::Duration::from_millis(150)),
    ])
    .await;
    let router = spawn_router(&config("", "", &[("a", a.url("/v1"))]), ENV).await;
    let before = scrape(&router).await;
    assert_eq!(inflight(&before), 0.0);

    let mut stream = crate::support::open_chat_stream(&router, STREAM_CHAT).await;
    assert_eq!(stream.status, 200);
    assert!(stream.next_chunk().await.is_some());
    let during = scrape(&router).await;
    assert_eq!(inflight(&during), 1.0, "the open stream is in flight");
    assert_moved(&before, &during, REQUESTS, &[]);

    let rest = stream.rest().await;
    assert!(rest.contains("[DONE]"), "{rest}");
    let after = scrape(&router).await;
    assert_eq!(inflight(&after), 0.0, "the stream ended");
    let route = [("endpoint", "chat"), ("provider", "a"), ("route", "r")];
    assert_moved(
        &before,
        &after,
        REQUESTS,
        &[(&pairs(&requests("r", "a", "m-a", "200")), 1.0)],
    );
    assert_moved(&before, &after, TTFT_COUNT, &[(&route, 1.0)]);
    assert_moved(&before, &after, DURATION_COUNT, &[(&route, 1.0)]);
    // The first token came at once, the whole stream took the chunk delays.
    let ttft_sum = after.value(
        "switchboard_time_to_first_token_seconds_sum",
        &[("endpoint", "chat"), ("provider", "a"), ("route", "r")],
    );
    let duration_sum = after.value(
        "switchboard_request_duration_seconds_sum",
        &[("endpoint", "chat"), ("provider", "a"), ("route", "r")],
    );
    assert!(ttft_sum < duration_sum, "{ttft_sum} < {duration_sum}");
    assert!(duration_sum >= 0.45, "{duration_sum}");
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_leaves_nothing_in_flight() {
    let many: Vec<&str> = std::iter::repeat_n(
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tick "},"finish_reason":null}]}"#,
        40,
    )
    .chain(std::iter::once("[DONE]"))
    .collect();
    let a = MockUpstream::start(vec![
        Reply::sse_data(&many).chunk_delay(std::time::Duration::from_millis(50)),
    ])
    .await;
    let router = spawn_router(&config("", "", &[("a", a.url("/v1"))]), ENV).await;
    let before = scrape(&router).await;

    let mut stream = crate::support::open_chat_stream(&router, STREAM_CHAT).await;
    assert!(stream.next_chunk().await.is_some());
    assert_eq!(inflight(&scrape(&router).await), 1.0);
    drop(stream);

    // The router notices at its next write; the record is then finished and counted once.
    let after = settled(&router).await;
    assert_moved(
        &before,
        &after,
        REQUESTS,
        &[(&pairs(&requests("r", "a", "m-a", "200")), 1.0)],
    );
}

#[tokio::test]
async fn errors_are_counted_under_bounded_labels_never_the_clients_model() {
    let rejecting = MockUpstream::start(vec![Reply::json(
        400,
        r#"{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    )])
    .await;
    let down = MockUpstream::start(vec![Reply::json(503, "{}")]).await;
    let text = config("", "", &[("a", rejecting.url("/v1"))])
        + &format!(
            "\n[providers.d]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"UP_KEY\"\n\n[routes.down]\ntargets = [\"d/m-d\"]\n",
            down.url("/v1")
        );
    let router = spawn_router(&text, ENV).await;
    let before = scrape(&router).await;

    let unknown = chat(
        &router,
        r#"{"model":"made-up-model-x7","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(chat(&router, "{not json").await.status, 400);
    assert_eq!(chat(&router, CHAT).await.status, 400, "the upstream's 400");
    let all_down = chat(
        &router,
        r#"{"model":"down","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(all_down.status, 503, "{}", all_down.text());

    let after = scrape(&router).await;
    assert_moved(
        &before,
        &after,
        REQUESTS,
        &[
            (&pairs(&requests("unknown", "none", "none", "404")), 1.0),
            (&pairs(&requests("unknown", "none", "none", "400")), 1.0),
            (&pairs(&requests("r", "none", "none", "400")), 1.0),
            (&pairs(&requests("down", "none", "none", "503")), 1.0),
        ],
    );
    assert_moved(
        &before,
        &after,
        DURATION_COUNT,
        &[
            (
                &[
                    ("endpoint", "chat"),
                    ("provider", "none"),
                    ("route", "unknown"),
                ],
                2.0,
            ),
            (
                &[("endpoint", "chat"), ("provider", "none"), ("route", "r")],
                1.0,
            ),
            (
                &[
                    ("endpoint", "chat"),
                    ("provider", "none"),
                    ("route", "down"),
                ],
                1.0,
            ),
        ],
    );
    assert_moved(&before, &after, TOKENS, &[]);
    // What the client typed is nowhere in the exposition.
    let text = send("GET", &router.url("/metrics"), &[], "").await.text();
    assert!(!text.contains("made-up-model-x7"), "{text}");
    assert_eq!(inflight(&after), 0.0);
}

#[tokio::test]
async fn a_client_that_hangs_up_before_the_answer_is_counted_once_as_499() {
    use tokio::io::AsyncWriteExt;

    // The answer is held until the client has gone: the request is in flight for as long as
    // the test looks.
    let held = crate::support::Gate::new();
    let a = MockUpstream::start(vec![Reply::json(200, &completion("a")).until(&held)]).await;
    let router = spawn_router(&config("", "", &[("a", a.url("/v1"))]), ENV).await;
    let before = scrape(&router).await;

    let mut client = tokio::net::TcpStream::connect(router.addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    a.wait_for_calls(1).await;
    assert_eq!(inflight(&scrape(&router).await), 1.0);
    drop(client);

    let after = settled(&router).await;
    assert_moved(
        &before,
        &after,
        REQUESTS,
        &[(&pairs(&requests("r", "none", "none", "499")), 1.0)],
    );
}

/// The `cost_total` moves between two scrapes, by label set, with a float tolerance (the
/// counter is a float made from exact amounts).
fn cost_moved(before: &Exposition, after: &Exposition, labels: &[(&str, &str)]) -> f64 {
    after.value(COST, labels) - before.value(COST, labels)
}

#[tokio::test]
async fn cost_and_transactions_are_counted_per_key_currency_and_transaction() {
    let a = MockUpstream::start(vec![Reply::json(200, &completion("a"))]).await;
    let pay = MockUpstream::start(vec![Reply::json(200, &completion("pay"))]).await;
    let keys = "[[keys]]\nname = \"web\"\nkey_env = \"KEY_WEB\"\n\n[[keys]]\nname = \"batch\"\nkey_env = \"KEY_BATCH\"\n";
    let text = config("", keys, &[("a", a.url("/v1")), ("pay", pay.url("/v1"))])
        .replace(
            "[routes.r]\ntargets = [\"a/m-a\", \"pay/m-pay\"]",
            "[providers.a.models.\"m-a\"]\ninput_per_mtok = 1.6\noutput_per_mtok = 6.4\ncurrency = \"USD\"\n\n\
             [providers.pay.models.\"m-pay\"]\nper_transaction = 0.01\ncurrency = \"CNY\"\n\n\
             [routes.r]\ntargets = [\"a/m-a\"]\n\n[routes.p]\ntargets = [\"pay/m-pay\"]",
        );
    let env = [
        ("UP_KEY", "sk-upstream-secret"),
        ("KEY_WEB", "sk-web"),
        ("KEY_BATCH", "sk-batch"),
    ];
    let router = spawn_router(&text, &env).await;
    let web = ("authorization", "Bearer sk-web");
    let batch = ("authorization", "Bearer sk-batch");
    let pay_chat = r#"{"model":"p","messages":[{"role":"user","content":"pay"}]}"#;
    let before = scrape(&router).await;

    // 5 prompt and 3 completion tokens: 5 x 1.6 + 3 x 6.4 = 27.2 USD per million requests.
    assert_eq!(chat_with(&router, &[web], CHAT).await.status, 200);
    for _ in 0..2 {
        assert_eq!(chat_with(&router, &[batch], CHAT).await.status, 200);
    }
    // A confirmation and a commit under one transaction id pay one fee; another id another.
    for _ in 0..2 {
        let answer = chat_with(&router, &[web, ("x-transaction-id", "tx-1")], pay_chat).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let answer = chat_with(&router, &[batch, ("x-transaction-id", "tx-2")], pay_chat).await;
    assert_eq!(answer.status, 200);

    let after = scrape(&router).await;
    let expected = [
        ("a", "m-a", "web", "USD", 0.000_027_2),
        ("a", "m-a", "batch", "USD", 0.000_054_4),
        ("pay", "m-pay", "web", "CNY", 0.01),
        ("pay", "m-pay", "batch", "CNY", 0.01),
    ];
    for (provider, model, key, currency, amount) in expected {
        let labels = [
            ("currency", currency),
            ("key", key),
            ("model", model),
            ("provider", provider),
        ];
        let moved = cost_moved(&before, &after, &labels);
        assert!(
            (moved - amount).abs() < 1e-12,
            "{labels:?} moved by {moved}, want {amount}"
        );
    }
    assert_eq!(
        after.series(COST).len(),
        expected.len(),
        "no other cost series"
    );
    assert_moved(
        &before,
        &after,
        TRANSACTIONS,
        &[
            (&[("model", "m-pay"), ("provider", "pay")], 2.0),
            (&[("model", "m-a"), ("provider", "a")], 0.0),
        ],
    );
}

#[tokio::test]
async fn overhead_is_reported_without_the_providers_time() {
    let completion = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let slow = MockUpstream::start(vec![
        Reply::json(200, completion).delay(std::time::Duration::from_millis(300)),
    ])
    .await;
    let config = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[routes.r]\ntargets = [\"up/m\"]\n",
        slow.url("/v1")
    );
    let router = spawn_router(&config, &[]).await;
    let before = scrape(&router).await;

    let answer = chat(
        &router,
        r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let overhead: f64 = answer.headers["x-switchboard-overhead-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The provider took 300 ms to answer; none of that is the router's own time.
    assert!((0.0..150.0).contains(&overhead), "overhead {overhead} ms");
    let after = scrape(&router).await;
    let count = |m: &Exposition| {
        m.get("switchboard_overhead_seconds_count", &[])
            .unwrap_or(0.0)
    };
    assert_eq!(count(&after) - count(&before), 1.0);
}
