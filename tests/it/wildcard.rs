//! `[providers.NAME.models."*"]`: a provider that serves any model name. The client's name goes
//! upstream, the usage log keeps it, and the metrics count it under `model="other"`, so label
//! sets stay bounded; providers without the wildcard still answer 404 for undeclared models.
#![cfg(test)]

use std::time::Duration;

use crate::support::{MockUpstream, Reply, TempDir, UP_ENV, chat, eventually, send, spawn_router};

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"brand-new-model","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

fn config(upstream: &MockUpstream, usage_log: &std::path::Path) -> String {
    format!(
        r#"
[usage_log]
path = "{log}"

[providers.up]
kind = "openai"
base_url = "{base}"
api_key_env = "UP_KEY"

[providers.up.models."*"]
max_tokens = 100

[providers.up.models."declared"]

[providers.plain]
kind = "openai"
base_url = "{base}"
api_key_env = "UP_KEY"

[providers.plain.models."declared"]
"#,
        log = usage_log.display(),
        base = upstream.url("/v1")
    )
}

fn request(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

#[tokio::test]
async fn a_wildcard_provider_serves_a_new_model_counted_as_other() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let dir = TempDir::new("wildcard");
    let log = dir.path().join("usage.jsonl");
    let router = spawn_router(&config(&upstream, &log), UP_ENV).await;

    let answer = chat(&router, &request("up/brand-new-model")).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(upstream.requests()[0].json()["model"], "brand-new-model");
    assert_eq!(answer.headers["x-switchboard-model"], "brand-new-model");
    let metrics = send("GET", &router.url("/metrics"), &[], "").await.text();
    assert!(
        metrics.contains(
            r#"switchboard_requests_total{endpoint="chat",model="other",provider="up",route="up/*",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"switchboard_tokens_total{kind="output",model="other",provider="up"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("brand-new-model"), "{metrics}");
    eventually(Duration::from_secs(5), "the usage-log line", || async {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("\n"))
    })
    .await;
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["requested_model"], "up/brand-new-model");
    assert_eq!(line["route"], "up/*");
    assert_eq!(line["provider"], "up");
    assert_eq!(line["model"], "brand-new-model");

    // Declared models keep their own label.
    assert_eq!(chat(&router, &request("up/declared")).await.status, 200);
    let metrics = send("GET", &router.url("/metrics"), &[], "").await.text();
    assert!(metrics.contains(r#"model="declared",provider="up",route="up/declared""#));
}

#[tokio::test]
async fn without_the_wildcard_an_undeclared_model_is_not_found() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let dir = TempDir::new("wildcard-404");
    let router = spawn_router(&config(&upstream, &dir.path().join("u.jsonl")), UP_ENV).await;

    let answer = chat(&router, &request("plain/brand-new-model")).await;

    assert_eq!(answer.status, 404, "{}", answer.text());
    assert_eq!(answer.error()["code"], "model_not_found");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn a_name_that_cannot_be_a_model_is_refused_before_any_provider() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let dir = TempDir::new("wildcard-400");
    let router = spawn_router(&config(&upstream, &dir.path().join("u.jsonl")), UP_ENV).await;

    let long = format!("up/{}", "m".repeat(257));
    for model in ["up/", "up/two words", "up/tab\\there", long.as_str()] {
        let answer = chat(&router, &request(model)).await;
        assert_eq!(answer.status, 400, "{model}: {}", answer.text());
        assert_eq!(answer.error()["param"], "model");
    }
    assert!(upstream.requests().is_empty());
    let fits = format!("up/{}", "m".repeat(256));
    assert_eq!(chat(&router, &request(&fits)).await.status, 200);
}

#[tokio::test]
async fn models_lists_declared_models_and_retrieves_wildcard_ones_by_their_name() {
    let upstream = MockUpstream::start(vec![Reply::json(200, ANSWER)]).await;
    let dir = TempDir::new("wildcard-models");
    let router = spawn_router(&config(&upstream, &dir.path().join("u.jsonl")), UP_ENV).await;

    let list = send("GET", &router.url("/v1/models"), &[], "").await.json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["plain/declared", "up/declared"]);
    let one = send(
        "GET",
        &router.url("/v1/models/up%2Fbrand-new-model"),
        &[],
        "",
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["id"], "up/brand-new-model");
    assert_eq!(one.json()["owned_by"], "up");
    let missing = send("GET", &router.url("/v1/models/plain%2Fnew"), &[], "").await;
    assert_eq!(missing.status, 404);
}
