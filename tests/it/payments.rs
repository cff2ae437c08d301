//! Alipay pay-per-call (A2M) through the router, against sellers on real HTTP (scripted, and one
//! that checks proofs against the orders it quoted and the payments made): the
//! 402 quote reaches the client intact, the paid retry reaches its seller once and is charged
//! the quoted amount, a refused proof is a 400, and nothing crashes on malformed headers.
#![cfg(test)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::metrics::{COST, Exposition, TRANSACTIONS, scrape};
use crate::support::{
    MockUpstream, Reply, RouterHandle, TempDir, chat_with, closed_port, spawn_router,
};

/// base64url without padding, as the seller writes its headers.
fn b64url(json: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in json.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A signed-looking `Payment-Needed` for order `order`, payable until `pay_before`.
fn quote_header(order: &str, pay_before: &str) -> String {
    b64url(&format!(
        r#"{{"out_trade_no":"{order}","amount":"0.01","currency":"CNY","resource_id":"chat","pay_before":"{pay_before}","seller_signature":"c2lnbmVk+/==","seller_sign_type":"RSA2","seller_id":"2088000000000001","goods_name":"AI call"}}"#
    ))
}

const LATER: &str = "2999-04-15T12:54:37+08:00";

/// The seller's 402.
fn quote_reply(header: &str) -> Reply {
    Reply::json(
        402,
        r#"{"code":"Payment-Needed","message":"pay first","out_trade_no":"o-1","amount":"0.01","currency":"CNY"}"#,
    )
    .header("payment-needed", header)
}

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"ai","choices":[{"index":0,"message":{"role":"assistant","content":"paid"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100}}"#;

/// The seller's 200 for a good proof.
fn served_reply(order: &str) -> Reply {
    let validation = b64url(&format!(
        r#"{{"trade_no":"2026T1","out_trade_no":"{order}","validated":true,"resource_id":"chat"}}"#
    ));
    Reply::json(200, ANSWER).header("payment-validation", &validation)
}

/// A payment proof with an opaque client session.
fn proof() -> String {
    b64url(
        r#"{"protocol":{"payment_proof":"p+/=","trade_no":"2026T1"},"method":{"client_session":"c2Vzc2lvbg=="}}"#,
    )
}

/// A router with a token-billed `cheap/m` and the seller `seller/ai`, in the order given by
/// `targets`, under `route_extra`.
async fn router(cheap: &str, seller: &str, targets: &str, route_extra: &str) -> RouterHandle {
    let toml = format!(
        r#"
[providers.cheap]
kind = "openai"
base_url = "{cheap}"

[providers.cheap.models."m"]
input_per_mtok = 1
output_per_mtok = 2
currency = "USD"

[providers.seller]
kind = "qwen"
base_url = "{seller}"
payment = "a2m"

[providers.seller.models."ai"]
per_transaction = 5
currency = "CNY"

[routes.r]
targets = {targets}
{route_extra}
"#
    );
    spawn_router(&toml, &[]).await
}

const ASK: &str = r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#;

fn count(metrics: &Exposition, name: &str, provider: &str) -> f64 {
    metrics
        .get(&format!("switchboard_{name}"), &[("provider", provider)])
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_quote_reaches_the_client_intact_and_the_paid_retry_its_seller_once() {
    let cheap = MockUpstream::start(vec![Reply::json(500, "{}"), Reply::json(200, ANSWER)]).await;
    let header = quote_header("o-1", LATER);
    let seller = MockUpstream::start(vec![quote_reply(&header), served_reply("o-1")]).await;
    let router = router(
        &cheap.url("/v1"),
        &seller.url("/v1"),
        r#"["cheap/m", "seller/ai"]"#,
        "",
    )
    .await;

    let quoted = chat_with(&router, &[], ASK).await;
    assert_eq!(
        quoted.status,
        402,
        "{}",
        String::from_utf8_lossy(&quoted.body)
    );
    assert_eq!(
        quoted.headers["payment-needed"].as_bytes(),
        header.as_bytes()
    );
    assert_eq!(quoted.headers["x-switchboard-provider"], "seller");
    assert_eq!(quoted.headers["x-switchboard-model"], "ai");
    let error = quoted.error();
    assert_eq!(error["code"], "payment_required");
    let message = error["message"].as_str().unwrap();
    for part in ["0.01", "CNY", "o-1", LATER] {
        assert!(message.contains(part), "{message}");
    }

    // cheap/m is healthy again, but the proof was bought from the seller: it goes there.
    let proof = proof();
    let paid = chat_with(&router, &[("payment-proof", &proof)], ASK).await;
    assert_eq!(paid.status, 200, "{}", String::from_utf8_lossy(&paid.body));
    assert_eq!(paid.headers["x-switchboard-provider"], "seller");
    assert_eq!(paid.headers["x-switchboard-cost"], "0.010000000 CNY");
    assert_eq!(cheap.calls(), 1);
    let received = seller.requests();
    assert_eq!(received.len(), 2);
    assert!(!received[0].headers.contains_key("payment-proof"));
    assert_eq!(
        received[1].headers["payment-proof"].as_bytes(),
        proof.as_bytes()
    );

    let metrics = scrape(&router).await;
    assert_eq!(count(&metrics, "payment_quotes_total", "seller"), 1.0);
    assert_eq!(count(&metrics, "payments_completed_total", "seller"), 1.0);
    let labels = [("provider", "seller"), ("model", "ai")];
    assert_eq!(metrics.value(TRANSACTIONS, &labels), 1.0);
    let cost_labels = [
        ("provider", "seller"),
        ("model", "ai"),
        ("key", "anonymous"),
        ("currency", "CNY"),
    ];
    let cost = metrics.value(COST, &cost_labels);
    assert!((cost - 0.01).abs() < 1e-12, "{cost}");
}

#[tokio::test]
async fn a_pinned_retry_reaches_the_seller_behind_a_healthy_first_target() {
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let seller = MockUpstream::start(vec![served_reply("o-9")]).await;
    let router = router(
        &cheap.url("/v1"),
        &seller.url("/v1"),
        r#"["cheap/m", "seller/ai"]"#,
        "",
    )
    .await;
    let proof = proof();
    let headers = [
        ("payment-proof", proof.as_str()),
        ("x-switchboard-target", "seller/ai"),
    ];
    let paid = chat_with(&router, &headers, ASK).await;
    assert_eq!(paid.status, 200);
    assert_eq!(paid.headers["x-switchboard-provider"], "seller");
    assert_eq!(cheap.calls(), 0);
    // No quote was seen for this order: the configured fee is the fallback.
    assert_eq!(paid.headers["x-switchboard-cost"], "5.000000000 CNY");
}

#[tokio::test]
async fn the_sellers_receipt_reaches_the_client_without_forward_headers() {
    let validation = b64url(
        r#"{"trade_no":"2026T3","out_trade_no":"o-3","validated":true,"resource_id":"chat"}"#,
    );
    // A token-billed provider's `Payment-*` headers are no exchange's: they stay behind.
    let cheap = MockUpstream::start(vec![
        Reply::json(200, ANSWER)
            .header("payment-validation", &validation)
            .header("payment-needed", "c3RyYXk"),
    ])
    .await;
    let seller = MockUpstream::start(vec![
        Reply::json(200, ANSWER).header("payment-validation", &validation),
    ])
    .await;
    // Neither provider lists `forward_headers` (see `router`).
    let router = router(
        &cheap.url("/v1"),
        &seller.url("/v1"),
        r#"["cheap/m", "seller/ai"]"#,
        "",
    )
    .await;

    let unpaid = chat_with(&router, &[], ASK).await;
    assert_eq!(unpaid.status, 200, "{}", unpaid.text());
    assert_eq!(unpaid.headers["x-switchboard-provider"], "cheap");
    assert!(!unpaid.headers.contains_key("payment-validation"));
    assert!(!unpaid.headers.contains_key("payment-needed"));

    let proof = proof();
    let headers = [
        ("payment-proof", proof.as_str()),
        ("x-switchboard-target", "seller/ai"),
    ];
    let paid = chat_with(&router, &headers, ASK).await;
    assert_eq!(paid.status, 200, "{}", paid.text());
    assert_eq!(paid.headers["x-switchboard-provider"], "seller");
    let receipts: Vec<_> = paid.headers.get_all("payment-validation").iter().collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0].as_bytes(), validation.as_bytes());
}

#[tokio::test]
async fn a_paid_retry_is_never_sent_elsewhere_when_its_seller_is_down() {
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let down = format!("http://127.0.0.1:{}/v1", closed_port().await);
    let router = router(&cheap.url("/v1"), &down, r#"["seller/ai", "cheap/m"]"#, "").await;
    let proof = proof();
    let answer = chat_with(&router, &[("payment-proof", &proof)], ASK).await;
    assert!(answer.status.is_server_error(), "{}", answer.status);
    assert_eq!(cheap.calls(), 0);
}

#[tokio::test]
async fn a_refused_proof_is_a_400_and_counted() {
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let refusal =
        r#"{"code":"INVALID_PAYMENT_PROOF","message":"the payment proof is invalid or expired"}"#;
    let seller = MockUpstream::start(vec![Reply::json(400, refusal)]).await;
    let router = router(
        &cheap.url("/v1"),
        &seller.url("/v1"),
        r#"["seller/ai", "cheap/m"]"#,
        "",
    )
    .await;
    let proof = proof();
    let answer = chat_with(&router, &[("payment-proof", &proof)], ASK).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error()["code"], "INVALID_PAYMENT_PROOF");
    assert_eq!(cheap.calls(), 0);
    let metrics = scrape(&router).await;
    assert_eq!(
        count(&metrics, "payment_proofs_rejected_total", "seller"),
        1.0
    );
}

#[tokio::test]
async fn failover_policy_sends_the_call_to_a_token_billed_target() {
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let seller = MockUpstream::start(vec![quote_reply(&quote_header("o-2", LATER))]).await;
    let router = router(
        &cheap.url("/v1"),
        &seller.url("/v1"),
        r#"["seller/ai", "cheap/m"]"#,
        r#"on_payment_required = "failover""#,
    )
    .await;
    let answer = chat_with(&router, &[], ASK).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-switchboard-provider"], "cheap");
    // 1000 x 1 + 100 x 2 per MTok.
    assert_eq!(answer.headers["x-switchboard-cost"], "0.001200000 USD");
    let metrics = scrape(&router).await;
    assert_eq!(count(&metrics, "payment_quotes_total", "seller"), 1.0);
    let failover = [
        ("route", "r"),
        ("from_provider", "seller"),
        ("reason", "payment_required"),
    ];
    assert_eq!(metrics.value("switchboard_failovers_total", &failover), 1.0);
    assert_eq!(
        metrics.get(
            "switchboard_provider_cooldown_seconds",
            &[("provider", "seller")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn malformed_and_expired_quotes_pass_through_without_harm() {
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let expired = quote_header("o-3", "2001-01-01T00:00:00+08:00");
    let seller = MockUpstream::start(vec![
        quote_reply("%%%not-base64"),
        quote_reply(&b64url("[1,2]")),
        quote_reply(&expired),
        Reply::json(200, ANSWER).header("payment-validation", "@@@"),
    ])
    .await;
    let router = router(
        &cheap.url("/v1"),
        &seller.url("/v1"),
        r#"["seller/ai", "cheap/m"]"#,
        "",
    )
    .await;
    for header in ["%%%not-base64".to_owned(), b64url("[1,2]"), expired] {
        let answer = chat_with(&router, &[], ASK).await;
        assert_eq!(answer.status, 402);
        assert_eq!(
            answer.headers["payment-needed"].as_bytes(),
            header.as_bytes()
        );
        assert_eq!(answer.error()["code"], "payment_required");
    }
    let proof = proof();
    let served = chat_with(&router, &[("payment-proof", &proof)], ASK).await;
    assert_eq!(served.status, 200);
    let body: Value = served.json();
    assert_eq!(body["choices"][0]["message"]["content"], "paid");
    assert_eq!(cheap.calls(), 0);
    let metrics = scrape(&router).await;
    assert_eq!(
        count(&metrics, "payment_headers_malformed_total", "seller"),
        3.0
    );
    assert_eq!(count(&metrics, "payments_completed_total", "seller"), 0.0);
}

#[tokio::test]
async fn a_paid_stream_costs_its_quote_once_and_the_usage_log_can_reconcile_it() {
    let dir = TempDir::new("payments");
    let log = dir.path().join("usage.jsonl");
    let header = quote_header("o-7", LATER);
    let validation = b64url(r#"{"trade_no":"2026T7","out_trade_no":"o-7","validated":true}"#);
    let stream = Reply::sse_data(&[
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"ai","choices":[{"index":0,"delta":{"content":"paid"},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"ai","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#,
        "[DONE]",
    ])
    .header("payment-validation", &validation);
    let seller = MockUpstream::start(vec![quote_reply(&header), stream]).await;
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let usage_log = format!("\n[usage_log]\npath = \"{}\"\n", log.display());
    let router = router(
        &cheap.url("/v1"),
        &seller.url("/v1"),
        r#"["seller/ai"]"#,
        &usage_log,
    )
    .await;
    const ASK_STREAM: &str = r#"{"model":"r","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;

    assert_eq!(chat_with(&router, &[], ASK_STREAM).await.status, 402);
    let proof = proof();
    for _ in 0..2 {
        // The second is a replay of the same validated order: served, never charged again.
        let paid = chat_with(&router, &[("payment-proof", &proof)], ASK_STREAM).await;
        assert_eq!(paid.status, 200);
        assert!(paid.text().contains("paid"));
        assert_eq!(
            paid.headers["payment-validation"].as_bytes(),
            validation.as_bytes(),
            "the receipt travels with the stream"
        );
    }
    let first = seller.requests();
    assert_eq!(first.len(), 3);

    let metrics = scrape(&router).await;
    let labels = [("provider", "seller"), ("model", "ai")];
    assert_eq!(metrics.value(TRANSACTIONS, &labels), 1.0);
    router.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let paid: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line.get("payment").is_some())
        .collect();
    assert_eq!(paid.len(), 2, "{text}");
    assert_eq!(paid[0]["payment"]["trade_no"], "2026T7");
    assert_eq!(paid[0]["payment"]["out_trade_no"], "o-7");
    assert_eq!(paid[0]["payment"]["amount"], "0.01");
    assert_eq!(paid[0]["payment"]["currency"], "CNY");
    assert_eq!(paid[0]["cost"], "0.010000000");
    assert_eq!(paid[0]["fee_charged"], true);
    assert_eq!(paid[1]["fee_charged"], false);
}

// === a seller that checks proofs itself ===

/// A stateful A2M seller on real HTTP: quotes unpaid calls, checks each proof against the
/// orders it quoted and the payments made to them, refuses unknown, reused or late proofs with
/// 400 `INVALID_PAYMENT_PROOF`, and serves paid calls with `Payment-Validation`.
struct Seller {
    url: String,
    state: Arc<Mutex<Ledger>>,
}

#[derive(Default)]
struct Ledger {
    /// out_trade_no → pay_before, for every quote issued.
    quoted: HashMap<String, String>,
    /// trade_no → out_trade_no, for every payment made (by the test, as Alipay would).
    paid: HashMap<String, String>,
    /// trade_nos already served: a proof pays for one call.
    used: Vec<String>,
    /// The `client_session` of every proof received, as received.
    sessions: Vec<String>,
    calls: usize,
}

impl Seller {
    async fn start(pay_before: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let state: Arc<Mutex<Ledger>> = Arc::default();
        let ledger = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let ledger = ledger.clone();
                        async move { Ok::<_, Infallible>(sell(request, &ledger, pay_before)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    /// Pays order `out_trade_no` through "Alipay": returns the proof header to send.
    fn pay(&self, out_trade_no: &str) -> String {
        let mut ledger = self.state.lock().unwrap();
        let trade_no = format!("2026{:08}", ledger.paid.len() + 1);
        ledger
            .paid
            .insert(trade_no.clone(), out_trade_no.to_owned());
        b64url(&format!(
            r#"{{"protocol":{{"payment_proof":"sig+/=","trade_no":"{trade_no}"}},"method":{{"client_session":"c2Vzc2lvbi0x+/=="}}}}"#
        ))
    }
}

fn sell(
    request: Request<Incoming>,
    ledger: &Mutex<Ledger>,
    pay_before: &str,
) -> Response<Full<Bytes>> {
    let mut ledger = ledger.lock().unwrap();
    ledger.calls += 1;
    let Some(proof) = request.headers().get("payment-proof") else {
        let order = format!("o-{}", ledger.quoted.len() + 1);
        ledger.quoted.insert(order.clone(), pay_before.to_owned());
        let header = b64url(&format!(
            r#"{{"out_trade_no":"{order}","amount":"0.05","currency":"CNY","resource_id":"chat","pay_before":"{pay_before}","seller_signature":"c2ln+/==","seller_sign_type":"RSA2","seller_id":"2088000000000001","goods_name":"AI call"}}"#
        ));
        let body = format!(
            r#"{{"code":"Payment-Needed","message":"pay first","out_trade_no":"{order}","amount":"0.05","currency":"CNY"}}"#
        );
        return seller_reply(402, body, Some(("payment-needed", header)));
    };
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        proof.as_bytes(),
    )
    .ok()
    .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
    let trade_no = decoded
        .as_ref()
        .and_then(|p| p["protocol"]["trade_no"].as_str())
        .unwrap_or_default()
        .to_owned();
    if let Some(session) = decoded
        .as_ref()
        .and_then(|p| p["method"]["client_session"].as_str())
    {
        ledger.sessions.push(session.to_owned());
    }
    let order = ledger.paid.get(&trade_no).cloned();
    let in_time = order
        .as_ref()
        .and_then(|o| ledger.quoted.get(o))
        .is_some_and(|deadline| deadline.as_str() > "2026-11-26");
    let fresh = !ledger.used.contains(&trade_no);
    let (Some(order), true, true) = (order, in_time, fresh) else {
        let body = r#"{"code":"INVALID_PAYMENT_PROOF","message":"the payment proof is invalid or expired"}"#;
        return seller_reply(400, body.to_owned(), None);
    };
    ledger.used.push(trade_no.clone());
    let validation = b64url(&format!(
        r#"{{"trade_no":"{trade_no}","out_trade_no":"{order}","validated":true,"resource_id":"chat"}}"#
    ));
    seller_reply(
        200,
        ANSWER.to_owned(),
        Some(("payment-validation", validation)),
    )
}

fn seller_reply(
    status: u16,
    body: String,
    header: Option<(&'static str, String)>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    if let Some((name, value)) = header {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// The `out_trade_no` inside a 402's `Payment-Needed` header.
fn quoted_order(answer: &crate::support::Answer) -> String {
    let header = answer.headers["payment-needed"].to_str().unwrap();
    let json =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap();
    serde_json::from_slice::<Value>(&json).unwrap()["out_trade_no"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_whole_exchange_with_a_seller_that_checks_proofs() {
    let seller = Seller::start(LATER).await;
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let router = router(
        &cheap.url("/v1"),
        &seller.url,
        r#"["seller/ai", "cheap/m"]"#,
        "",
    )
    .await;

    let quote = chat_with(&router, &[], ASK).await;
    assert_eq!(quote.status, 402, "{}", quote.text());
    let order = quoted_order(&quote);
    let proof = seller.pay(&order);
    let paid = chat_with(&router, &[("payment-proof", &proof)], ASK).await;
    assert_eq!(paid.status, 200, "{}", paid.text());
    assert_eq!(paid.headers["x-switchboard-cost"], "0.050000000 CNY");

    // The same proof again pays for nothing: the seller refuses it and nobody else is asked.
    let reused = chat_with(&router, &[("payment-proof", &proof)], ASK).await;
    assert_eq!(reused.status, 400, "{}", reused.text());
    assert_eq!(cheap.calls(), 0);
    let ledger = seller.state.lock().unwrap();
    assert_eq!(ledger.calls, 3);
    assert_eq!(
        ledger.sessions,
        ["c2Vzc2lvbi0x+/==", "c2Vzc2lvbi0x+/=="],
        "client_session reaches the seller as sent"
    );
}

#[tokio::test]
async fn a_proof_paid_after_the_deadline_is_refused_by_the_seller() {
    let seller = Seller::start("2020-01-01T00:00:00+08:00").await;
    let cheap = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let router = router(
        &cheap.url("/v1"),
        &seller.url,
        r#"["seller/ai", "cheap/m"]"#,
        "",
    )
    .await;

    let quote = chat_with(&router, &[], ASK).await;
    assert_eq!(quote.status, 402, "{}", quote.text());
    let proof = seller.pay(&quoted_order(&quote));
    let late = chat_with(&router, &[("payment-proof", &proof)], ASK).await;
    assert_eq!(late.status, 400, "{}", late.text());
    assert!(
        late.text().contains("INVALID_PAYMENT_PROOF")
            || late.text().to_lowercase().contains("proof"),
        "{}",
        late.text()
    );
    assert_eq!(cheap.calls(), 0, "a refused proof never goes elsewhere");
    assert!(late.headers.get("x-switchboard-cost").is_none());
}
