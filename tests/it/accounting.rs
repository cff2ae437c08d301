//! Cost accounting end to end: the exact `x-switchboard-cost` of non-stream answers and the
//! `usage.cost` of stream usage chunks for every adapter kind, usage captured from streams
//! whose client did not ask for it (and hidden from that client), a stream the client
//! abandons, and transaction fees charged once per transaction.
#![cfg(test)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::metrics::{COST, Exposition, TRANSACTIONS, scrape};
use crate::support::{
    MockUpstream, PATIENCE, Reply, RouterHandle, chat, chat_with, open_chat_stream, spawn_router,
    wait_for,
};

/// qwen-max's list prices (USD per MTok).
const QWEN_MAX: &str =
    "input_per_mtok = 1.6\noutput_per_mtok = 6.4\ncached_input_per_mtok = 0.64\ncurrency = \"USD\"";
/// Claude Sonnet's list prices (USD per MTok), cache writes included.
const SONNET: &str = "input_per_mtok = 3\noutput_per_mtok = 15\ncached_input_per_mtok = 0.30\ncache_write_per_mtok = 3.75\ncurrency = \"USD\"";
/// Gemini 2.5 Flash's list prices (USD per MTok).
const FLASH: &str = "input_per_mtok = 0.30\noutput_per_mtok = 2.50\ncached_input_per_mtok = 0.03\ncurrency = \"USD\"";
/// Mistral Small's list prices (USD per MTok).
const SMALL: &str = "input_per_mtok = 0.10\noutput_per_mtok = 0.30\ncurrency = \"USD\"";
/// The Alipay endpoint's price: a fee per transaction.
const PER_CALL: &str = "per_transaction = 0.01\ncurrency = \"CNY\"";

/// A router with provider `up` of `kind` at `upstream`, whose model `m` has `prices`, routed
/// as `r`.
async fn priced_router(kind: &str, upstream: &MockUpstream, prices: &str) -> RouterHandle {
    let base = match kind {
        "anthropic" | "gemini" => upstream.url(""),
        _ => upstream.url("/v1"),
    };
    let toml = format!(
        r#"
[providers.up]
kind = "{kind}"
base_url = "{base}"
api_key_env = "UP_KEY"

[providers.up.models."m"]
{prices}

[routes.r]
targets = ["up/m"]
"#
    );
    spawn_router(&toml, &[("UP_KEY", "sk-up")]).await
}

const ASK: &str = r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#;
const ASK_STREAM: &str =
    r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const ASK_STREAM_USAGE: &str = r#"{"model":"r","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;

/// An OpenAI-wire answer: 1234 prompt tokens (100 from the cache), 56 out. At qwen-max prices
/// 1134 x 1.6 + 100 x 0.64 + 56 x 6.4 = 2236.8 per MTok.
const OPENAI_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"1000.00"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1234,"completion_tokens":56,"total_tokens":1290,"prompt_tokens_details":{"cached_tokens":100}}}"#;
const OPENAI_COST: &str = "0.002236800";

/// The same answer streamed, usage chunk included (what an upstream asked for usage sends).
const OPENAI_EVENTS: [&str; 5] = [
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"caf\u00e9 1000.00"},"finish_reason":null}],"usage":null}"#,
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1234,"completion_tokens":56,"total_tokens":1290,"prompt_tokens_details":{"cached_tokens":100}}}"#,
    "[DONE]",
];

/// The `cost` object a usage chunk carries.
fn cost_json(amount: &str, currency: &str) -> Value {
    json!({"amount": amount, "currency": currency})
}

/// The usage chunk of a stream's `data:` payloads (the one before `[DONE]`), parsed.
fn usage_chunk(data: &[String]) -> Value {
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunk: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(chunk["choices"], json!([]), "{chunk}");
    chunk
}

/// `switchboard_cost_total` of provider `up`, model `m`, for the open router's key.
async fn spent(router: &RouterHandle, currency: &str) -> f64 {
    scrape(router).await.value(
        COST,
        &[
            ("provider", "up"),
            ("model", "m"),
            ("key", "anonymous"),
            ("currency", currency),
        ],
    )
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-12,
        "{actual} is not {expected}"
    );
}

#[tokio::test]
async fn openai_and_qwen_answers_carry_their_exact_cost_and_keep_their_bytes() {
    for kind in ["openai", "qwen"] {
        let upstream = MockUpstream::start(vec![Reply::json(200, OPENAI_ANSWER)]).await;
        let router = priced_router(kind, &upstream, QWEN_MAX).await;
        let answer = chat(&router, ASK).await;
        assert_eq!(answer.status, 200, "{kind}: {}", answer.text());
        assert_eq!(
            answer.headers["x-switchboard-cost"],
            format!("{OPENAI_COST} USD"),
            "{kind}"
        );
        assert_eq!(
            answer.text(),
            OPENAI_ANSWER,
            "{kind}: the body is the upstream's"
        );
    }
}

#[tokio::test]
async fn a_model_without_prices_has_no_cost_header() {
    let upstream = MockUpstream::start(vec![Reply::json(200, OPENAI_ANSWER)]).await;
    let router = priced_router("openai", &upstream, "").await;
    let answer = chat(&router, ASK).await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers.get("x-switchboard-cost").is_none());
}

#[tokio::test]
async fn a_qwen_stream_that_asked_for_usage_gets_the_cost_in_its_usage_chunk() {
    let upstream = MockUpstream::start(vec![Reply::sse_data(&OPENAI_EVENTS)]).await;
    let router = priced_router("qwen", &upstream, QWEN_MAX).await;
    let answer = chat(&router, ASK_STREAM_USAGE).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer.headers.get("x-switchboard-cost").is_none(),
        "headers leave before usage is known"
    );
    let spliced = OPENAI_EVENTS[3].replace(
        r#""cached_tokens":100}}"#,
        &format!(r#""cached_tokens":100}},"cost":{{"amount":"{OPENAI_COST}","currency":"USD"}}}}"#),
    );
    let expected: Vec<String> = [
        OPENAI_EVENTS[0],
        OPENAI_EVENTS[1],
        OPENAI_EVENTS[2],
        &spliced,
        "[DONE]",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(answer.sse_data(), expected, "only the usage chunk changed");
}

#[tokio::test]
async fn a_stream_is_accounted_even_when_its_client_did_not_ask_for_usage() {
    for kind in ["openai", "qwen"] {
        let upstream = MockUpstream::start(vec![Reply::sse_data(&OPENAI_EVENTS)]).await;
        let router = priced_router(kind, &upstream, QWEN_MAX).await;
        let answer = chat(&router, ASK_STREAM).await;
        assert_eq!(answer.status, 200, "{kind}: {}", answer.text());
        let sent = upstream.requests()[0].json();
        assert_eq!(
            sent["stream_options"],
            json!({"include_usage": true}),
            "{kind}: the upstream is asked for usage"
        );
        let without_usage_chunk: Vec<String> = [
            OPENAI_EVENTS[0],
            OPENAI_EVENTS[1],
            OPENAI_EVENTS[2],
            "[DONE]",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(answer.sse_data(), without_usage_chunk, "{kind}");
        assert_close(spent(&router, "USD").await, 0.0022368);
    }
}

#[tokio::test]
async fn the_mock_is_asked_for_usage_too() {
    let toml = r#"
[providers.up]
kind = "mock"
reply = "abcd efgh"

[providers.up.models."m"]
input_per_mtok = 1
output_per_mtok = 2
currency = "USD"

[routes.r]
targets = ["up/m"]
"#;
    let router = spawn_router(toml, &[]).await;
    // "hi" is one token in, the nine-character reply three out: 1 x 1 + 3 x 2 = 7 per MTok.
    let answer = chat(&router, ASK_STREAM).await;
    assert!(!answer.text().contains("\"usage\":{"), "{}", answer.text());
    assert_close(spent(&router, "USD").await, 0.000007);
    let answer = chat(&router, ASK_STREAM_USAGE).await;
    assert_eq!(
        usage_chunk(&answer.sse_data())["usage"]["cost"],
        cost_json("0.000007000", "USD")
    );
}

/// A Mistral answer: 300 in, 40 out. At Mistral Small's prices 300 x 0.1 + 40 x 0.3 = 42.
const MISTRAL_ANSWER: &str = r#"{"id":"m1","object":"chat.completion","created":1,"model":"mistral-small-latest","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":300,"completion_tokens":40,"total_tokens":340}}"#;

#[tokio::test]
async fn mistral_answers_and_streams_carry_their_cost() {
    let upstream = MockUpstream::start(vec![
        Reply::json(200, MISTRAL_ANSWER),
        Reply::sse_data(&[
            r#"{"id":"s","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":"o"},"finish_reason":null}]}"#,
            r#"{"id":"s","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"k"},"finish_reason":"stop"}],"usage":{"prompt_tokens":300,"completion_tokens":40,"total_tokens":340}}"#,
            "[DONE]",
        ]),
    ])
    .await;
    let router = priced_router("mistral", &upstream, SMALL).await;
    let answer = chat(&router, ASK).await;
    assert_eq!(answer.headers["x-switchboard-cost"], "0.000042000 USD");
    let answer = chat(&router, ASK_STREAM_USAGE).await;
    assert_eq!(
        usage_chunk(&answer.sse_data())["usage"]["cost"],
        cost_json("0.000042000", "USD")
    );
}

/// Anthropic: input 12 (uncached), cache reads 1000, cache writes 100, output 30. At Sonnet's
/// prices 12 x 3 + 1000 x 0.3 + 100 x 3.75 + 30 x 15 = 1161 per MTok: the 1112 prompt tokens
/// are never all billed at the input price.
const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":30,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000}}"#;

/// The same figures streamed: input at `message_start`, the final output at `message_delta`.
const ANTHROPIC_EVENTS: [&str; 6] = [
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":1000}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

#[tokio::test]
async fn anthropic_cache_reads_and_writes_are_priced_apart() {
    let upstream = MockUpstream::start(vec![
        Reply::json(200, ANTHROPIC_ANSWER),
        Reply::sse_raw(&ANTHROPIC_EVENTS),
        Reply::sse_raw(&ANTHROPIC_EVENTS),
    ])
    .await;
    let router = priced_router("anthropic", &upstream, SONNET).await;
    let answer = chat(&router, ASK).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-switchboard-cost"], "0.001161000 USD");
    let answer = chat(&router, ASK_STREAM_USAGE).await;
    let chunk = usage_chunk(&answer.sse_data());
    assert_eq!(chunk["usage"]["prompt_tokens"], 1112);
    assert_eq!(chunk["usage"]["cost"], cost_json("0.001161000", "USD"));
    // Unasked: no usage chunk, still accounted.
    let before = spent(&router, "USD").await;
    let answer = chat(&router, ASK_STREAM).await;
    assert!(
        !answer.text().contains("\"choices\":[]"),
        "{}",
        answer.text()
    );
    assert_close(spent(&router, "USD").await - before, 0.001161);
}

/// Gemini: prompt 10 (4 from the cache), 5 visible + 7 thinking out. At Flash's prices
/// 6 x 0.3 + 4 x 0.03 + 12 x 2.5 = 31.92 per MTok: thinking is billed as output.
const GEMINI_ANSWER: &str = r#"{"candidates":[{"content":{"parts":[{"text":"ok"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"thoughtsTokenCount":7,"cachedContentTokenCount":4,"totalTokenCount":22},"modelVersion":"m","responseId":"g1"}"#;

#[tokio::test]
async fn gemini_thinking_is_billed_as_output() {
    let first = r#"{"candidates":[{"content":{"parts":[{"text":"o"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1,"totalTokenCount":11},"modelVersion":"m","responseId":"g2"}"#;
    let stream = [first, GEMINI_ANSWER]
        .map(|chunk| format!("data: {chunk}\r\n\r\n"))
        .to_vec();
    let stream: Vec<&str> = stream.iter().map(String::as_str).collect();
    let upstream = MockUpstream::start(vec![
        Reply::json(200, GEMINI_ANSWER),
        Reply::sse_raw(&stream),
    ])
    .await;
    let router = priced_router("gemini", &upstream, FLASH).await;
    let answer = chat(&router, ASK).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-switchboard-cost"], "0.000031920 USD");
    let answer = chat(&router, ASK_STREAM_USAGE).await;
    let chunk = usage_chunk(&answer.sse_data());
    assert_eq!(chunk["usage"]["completion_tokens"], 12);
    assert_eq!(chunk["usage"]["cost"], cost_json("0.000031920", "USD"));
}

#[tokio::test]
async fn a_stream_the_client_abandons_is_accounted_with_what_was_received() {
    // message_start reports 1000 input tokens and 1 output token; then words trickle in.
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":1000,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    let word = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word \"}}\n\n";
    let mut events = vec![start];
    events.extend([word; 100]);
    let upstream = MockUpstream::start(vec![
        Reply::sse_raw(&events).chunk_delay(Duration::from_millis(50)),
    ])
    .await;
    // With a fee too, which an unfinished stream must not pay.
    let prices = format!("{SONNET}\nper_transaction = 0.5");
    let router = priced_router("anthropic", &upstream, &prices).await;
    let mut stream = open_chat_stream(&router, ASK_STREAM).await;
    assert_eq!(stream.status, 200);
    assert!(stream.next_chunk().await.is_some());
    drop(stream);
    // 1000 x 3 + 1 x 15 = 3015 per MTok and no fee, counted once the router notices the
    // client left.
    let spent = wait_for(PATIENCE, "the abandoned stream is accounted", || async {
        let spent = spent(&router, "USD").await;
        (spent > 0.0).then_some(spent)
    })
    .await;
    assert_close(spent, 0.003015);
    let metrics = scrape(&router).await;
    assert_eq!(
        metrics.value(TRANSACTIONS, &[("provider", "up"), ("model", "m")]),
        0.0
    );
}

// === Transaction fees ===

/// A qwen-wire answer with a little usage (a per-transaction model ignores it).
const PAY_ANSWER: &str = r#"{"id":"p","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"{\"amount\":\"1000.00\"}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":9,"total_tokens":59}}"#;

/// Two Alipay-like providers `a1` and `a2`, each with model `m` at one fee per transaction,
/// routed in that order as `pay`.
async fn payment_router(a1: &MockUpstream, a2: &MockUpstream) -> RouterHandle {
    let toml = format!(
        r#"
[providers.a1]
kind = "qwen"
base_url = "{a1}"

[providers.a1.models."m"]
{PER_CALL}

[providers.a2]
kind = "qwen"
base_url = "{a2}"

[providers.a2.models."m"]
{PER_CALL}

[routes.pay]
targets = ["a1/m", "a2/m"]
"#,
        a1 = a1.url("/v1"),
        a2 = a2.url("/v1"),
    );
    spawn_router(&toml, &[]).await
}

const PAY: &str = r#"{"model":"pay","messages":[{"role":"user","content":"confirm"}]}"#;
const FEE: &str = "0.010000000 CNY";
const NO_FEE: &str = "0.000000000 CNY";

/// Sends `body` naming transaction `id` (none when `None`) and returns the cost header.
async fn pay(router: &RouterHandle, id: Option<&str>, body: &str) -> String {
    let headers: Vec<(&str, &str)> = id.map(|id| ("x-transaction-id", id)).into_iter().collect();
    let answer = chat_with(router, &headers, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.headers["x-switchboard-cost"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn transactions(metrics: &Exposition, provider: &str) -> f64 {
    metrics.value(TRANSACTIONS, &[("provider", provider), ("model", "m")])
}

#[tokio::test]
async fn confirmation_and_commit_with_one_id_pay_one_fee_whichever_target_served() {
    let a1 = MockUpstream::start(vec![Reply::json(200, PAY_ANSWER)]).await;
    let a2 = MockUpstream::start(vec![Reply::json(200, PAY_ANSWER)]).await;
    let router = payment_router(&a1, &a2).await;
    assert_eq!(
        pay(&router, Some("order-1"), PAY).await,
        FEE,
        "confirmation"
    );
    assert_eq!(pay(&router, Some("order-1"), PAY).await, NO_FEE, "commit");
    // The same transaction on the other Alipay target still pays nothing more.
    let direct = r#"{"model":"a2/m","messages":[{"role":"user","content":"commit"}]}"#;
    assert_eq!(pay(&router, Some("order-1"), direct).await, NO_FEE);
    assert_eq!(a2.calls(), 1);
    // Another id is another transaction; no id at all is a transaction of its own each time.
    assert_eq!(pay(&router, Some("order-2"), PAY).await, FEE);
    assert_eq!(pay(&router, None, PAY).await, FEE);
    assert_eq!(pay(&router, None, PAY).await, FEE);
    let metrics = scrape(&router).await;
    assert_eq!(transactions(&metrics, "a1"), 4.0);
    assert_eq!(transactions(&metrics, "a2"), 0.0);
}

#[tokio::test]
async fn a_failed_attempt_then_a_failover_success_pays_one_fee_to_the_provider_that_served() {
    let unavailable = r#"{"error":{"message":"busy","type":"server_error","code":null}}"#;
    let a1 = MockUpstream::start(vec![Reply::json(503, unavailable)]).await;
    let a2 = MockUpstream::start(vec![Reply::json(200, PAY_ANSWER)]).await;
    let router = payment_router(&a1, &a2).await;
    let answer = chat_with(&router, &[("x-transaction-id", "order-9")], PAY).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-switchboard-provider"], "a2");
    assert_eq!(answer.headers["x-switchboard-attempts"], "2");
    assert_eq!(answer.headers["x-switchboard-cost"], FEE);
    assert_eq!(pay(&router, Some("order-9"), PAY).await, NO_FEE, "commit");
    let metrics = scrape(&router).await;
    assert_eq!(transactions(&metrics, "a1"), 0.0);
    assert_eq!(transactions(&metrics, "a2"), 1.0);
}

#[tokio::test]
async fn a_failed_request_pays_nothing_and_leaves_the_fee_to_the_next_success() {
    let unavailable = r#"{"error":{"message":"busy","type":"server_error","code":null}}"#;
    let a1 = MockUpstream::start(vec![
        Reply::json(503, unavailable),
        Reply::json(200, PAY_ANSWER),
    ])
    .await;
    let toml = format!(
        "[routing]\ndefault_cooldown = \"1ms\"\n[providers.a1]\nkind = \"qwen\"\nbase_url = \"{}\"\n[providers.a1.models.\"m\"]\n{PER_CALL}\n[routes.pay]\ntargets = [\"a1/m\"]\n",
        a1.url("/v1")
    );
    let router = spawn_router(&toml, &[]).await;
    let failed = chat_with(&router, &[("x-transaction-id", "order-5")], PAY).await;
    assert_eq!(failed.status, 503, "{}", failed.text());
    assert!(failed.headers.get("x-switchboard-cost").is_none());
    // Until the 1 ms cooldown that 503 opened is over, the route answers 503 without calling
    // a1 (and charges nothing); the first success pays the fee.
    let cost = wait_for(PATIENCE, "a success once the cooldown is over", || async {
        let answer = chat_with(&router, &[("x-transaction-id", "order-5")], PAY).await;
        if answer.status != 200 {
            assert!(answer.headers.get("x-switchboard-cost").is_none());
            return None;
        }
        Some(
            answer.headers["x-switchboard-cost"]
                .to_str()
                .unwrap()
                .to_owned(),
        )
    })
    .await;
    assert_eq!(cost, FEE);
    assert_eq!(a1.calls(), 2, "the failure, then the success");
}

#[tokio::test]
async fn a_streamed_confirmation_pays_the_fee_in_its_usage_chunk_and_the_commit_does_not() {
    let a1 = MockUpstream::start(vec![
        Reply::sse_data(&OPENAI_EVENTS),
        Reply::json(200, PAY_ANSWER),
    ])
    .await;
    let a2 = MockUpstream::start(vec![Reply::json(200, PAY_ANSWER)]).await;
    let router = payment_router(&a1, &a2).await;
    let stream = r#"{"model":"pay","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"confirm"}]}"#;
    let answer = chat_with(&router, &[("x-transaction-id", "order-7")], stream).await;
    assert_eq!(
        usage_chunk(&answer.sse_data())["usage"]["cost"],
        cost_json("0.010000000", "CNY")
    );
    assert_eq!(pay(&router, Some("order-7"), PAY).await, NO_FEE);
}

/// The `x-order` header naming transaction `id`.
fn order(id: &str) -> [(&'static str, &str); 1] {
    [("x-order", id)]
}

#[tokio::test]
async fn the_transaction_header_is_configurable_and_must_be_sane() {
    let a1 = MockUpstream::start(vec![Reply::json(200, PAY_ANSWER)]).await;
    let toml = format!(
        "[accounting]\ntransaction_header = \"X-Order\"\n[providers.a1]\nkind = \"qwen\"\nbase_url = \"{}\"\n[providers.a1.models.\"m\"]\n{PER_CALL}\n[routes.pay]\ntargets = [\"a1/m\"]\n",
        a1.url("/v1")
    );
    let router = spawn_router(&toml, &[]).await;
    assert_eq!(
        chat_with(&router, &order("t-1"), PAY).await.headers["x-switchboard-cost"],
        FEE
    );
    assert_eq!(
        chat_with(&router, &order("t-1"), PAY).await.headers["x-switchboard-cost"],
        NO_FEE
    );
    // The default header means nothing here: each such request is its own transaction.
    assert_eq!(pay(&router, Some("t-1"), PAY).await, FEE);
    let refused = chat_with(&router, &order(&"x".repeat(129)), PAY).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.error()["message"]
            .as_str()
            .unwrap()
            .contains("x-order")
    );
}

#[test]
fn the_shipped_file_prices_every_model_it_names() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let snapshot = switchboard::config::parse(&text, "providers.toml", &|_| None).unwrap();
    for provider in snapshot.providers.values() {
        for (model, settings) in &provider.models {
            assert!(
                settings.prices.is_some(),
                "{}/{model} has no prices",
                provider.name
            );
        }
    }
    let prices = |label: &str| {
        let route = snapshot.route(label).unwrap();
        let prices = route.targets[0].prices.clone().unwrap();
        let text = |p: Option<rust_decimal::Decimal>| p.map(|d| d.normalize().to_string());
        (
            text(prices.input_per_mtok),
            text(prices.output_per_mtok),
            text(prices.cached_input_per_mtok),
            text(prices.cache_write_per_mtok),
            text(prices.per_transaction),
            prices.currency.to_string(),
        )
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        prices("qwen/qwen-max"),
        (
            some("1.6"),
            some("6.4"),
            some("0.64"),
            None,
            None,
            "USD".into()
        )
    );
    assert_eq!(
        prices("claude/claude-sonnet-4-5"),
        (
            some("3"),
            some("15"),
            some("0.3"),
            some("3.75"),
            None,
            "USD".into()
        )
    );
    assert_eq!(
        prices("claude/claude-haiku-4-5"),
        (
            some("1"),
            some("5"),
            some("0.1"),
            some("1.25"),
            None,
            "USD".into()
        )
    );
    assert_eq!(
        prices("gemini/gemini-2.5-flash"),
        (
            some("0.3"),
            some("2.5"),
            some("0.03"),
            None,
            None,
            "USD".into()
        )
    );
    assert_eq!(
        prices("gemini/gemini-2.5-pro"),
        (
            some("1.25"),
            some("10"),
            some("0.125"),
            None,
            None,
            "USD".into()
        )
    );
    assert_eq!(
        prices("mistral/mistral-small-latest"),
        (some("0.1"), some("0.3"), None, None, None, "USD".into())
    );
    assert_eq!(
        prices("mistral/mistral-large-latest"),
        (some("0.5"), some("1.5"), None, None, None, "USD".into())
    );
    assert_eq!(
        prices("alipay/qwen-plus-payments"),
        (None, None, None, None, some("0.01"), "CNY".into())
    );
}
