//! The usage log (`[usage_log]`): exactly one JSON line per chat request, errors, streams and
//! hang-ups included; every acknowledged line on disk once a shutdown returns, also across a
//! restart; bodies only when asked for; no secrets; and a full queue drops lines (counted)
//! instead of holding requests up.
#![cfg(test)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::metrics::{inflight, scrape};
use crate::support::{PATIENCE, TempDir, chat_with, eventually, spawn_router};

/// Waits (bounded) until the log at `path` has the line of request `id`.
async fn logged(path: &Path, id: &str) {
    let needle = format!(r#""request_id":"{id}""#);
    eventually(PATIENCE, &format!("the line of {id}"), || async {
        std::fs::read_to_string(path).is_ok_and(|text| text.contains(&needle))
    })
    .await;
}

/// The lines of a usage log, parsed; panics on a line that is not one JSON object.
fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

/// The lines by request id; panics when an id has more than one line.
fn by_request_id(lines: &[serde_json::Value]) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for line in lines {
        let id = line["request_id"].as_str().expect("request_id").to_owned();
        assert!(
            out.insert(id.clone(), line.clone()).is_none(),
            "two lines for {id}"
        );
    }
    out
}

/// A config with the mock provider on `demo`, a slow streaming mock on `slow`, an always
/// failing mock on `down`, a mock on `lazy` that answers only after the test is over, one client key, and `[usage_log]` with `extra` settings.
fn config(path: &Path, extra: &str) -> String {
    format!(
        r#"
[usage_log]
path = "{path}"
{extra}

[[keys]]
name = "checkout-web"
key_env = "CLIENT_KEY"

[providers.local]
kind = "mock"

[providers.slow]
kind = "mock"
chunk_delay = "40ms"
reply = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"

[providers.broken]
kind = "mock"
error_rate = 1.0

[providers.lazy]
kind = "mock"
latency = "60s"

[routes.demo]
targets = ["local/echo"]

[routes.slow]
targets = ["slow/words"]

[routes.down]
targets = ["broken/never"]

[routes.lazy]
targets = ["lazy/late"]
"#,
        path = path.display()
    )
}

const CLIENT_SECRET: &str = "sk-client-very-secret";
const ENV: &[(&str, &str)] = &[("CLIENT_KEY", CLIENT_SECRET)];
const AUTH: (&str, &str) = ("authorization", "Bearer sk-client-very-secret");

fn body(model: &str, stream: bool) -> String {
    let stream = if stream {
        r#","stream":true,"stream_options":{"include_usage":true}"#
    } else {
        ""
    };
    format!(
        r#"{{"model":"{model}"{stream},"messages":[{{"role":"user","content":"hello there"}}]}}"#
    )
}

/// Sends a chat request with the client key and a chosen request id; returns the status.
async fn request(router: &crate::support::RouterHandle, id: &str, body: &str) -> u16 {
    chat_with(router, &[AUTH, ("x-request-id", id)], body)
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn every_request_writes_exactly_one_line_errors_streams_and_hang_ups_included() {
    let dir = TempDir::new("every");
    let path = dir.path().join("usage.jsonl");
    let router = spawn_router(&config(&path, ""), ENV).await;

    assert_eq!(request(&router, "t-ok", &body("demo", false)).await, 200);
    let streamed = chat_with(
        &router,
        &[AUTH, ("x-request-id", "t-stream")],
        &body("demo", true),
    )
    .await;
    assert_eq!(streamed.status, 200);
    assert!(streamed.text().contains("[DONE]"));
    assert_eq!(request(&router, "t-400", "{not json").await, 400);
    assert_eq!(
        request(&router, "t-404", &body("no-such-model", false)).await,
        404
    );
    assert_eq!(request(&router, "t-503", &body("down", false)).await, 503);
    let unauthorized = chat_with(
        &router,
        &[("authorization", "Bearer wrong"), ("x-request-id", "t-401")],
        &body("demo", false),
    )
    .await;
    assert_eq!(unauthorized.status, 401);
    // A stream the client abandons after its first chunk.
    let hang_up = {
        let request = http::Request::builder()
            .method("POST")
            .uri(router.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .header(AUTH.0, AUTH.1)
            .header("x-request-id", "t-hangup")
            .body(http_body_util::Full::new(bytes::Bytes::from(body(
                "slow", true,
            ))))
            .unwrap();
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http()
            .request(request)
            .await
            .unwrap()
    };
    assert_eq!(hang_up.status(), 200);
    let mut hang_up = hang_up.into_body();
    {
        use http_body_util::BodyExt;
        let _ = hang_up.frame().await;
    }
    drop(hang_up);
    // The router notices at its next write (40 ms later) and writes the line.
    logged(&path, "t-hangup").await;
    // A client that gives up before a plain answer came, once the router is working on it.
    {
        use tokio::io::AsyncWriteExt;
        let lazy = body("lazy", false);
        let mut client = tokio::net::TcpStream::connect(router.addr).await.unwrap();
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\nx-request-id: t-gave-up\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{lazy}",
            AUTH.1,
            lazy.len()
        );
        client.write_all(raw.as_bytes()).await.unwrap();
        eventually(PATIENCE, "the router works on t-gave-up", || async {
            inflight(&scrape(&router).await) == 1.0
        })
        .await;
    }
    logged(&path, "t-gave-up").await;

    router.shutdown().await;

    let lines = read_lines(&path);
    let lines = by_request_id(&lines);
    let ids: Vec<&str> = lines.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "t-400",
            "t-401",
            "t-404",
            "t-503",
            "t-gave-up",
            "t-hangup",
            "t-ok",
            "t-stream"
        ]
    );

    let ok = &lines["t-ok"];
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["key"], "checkout-web");
    assert_eq!(ok["route"], "demo");
    assert_eq!(ok["provider"], "local");
    assert_eq!(ok["model"], "echo");
    assert_eq!(ok["attempts"], 1);
    assert_eq!(
        ok["attempt_outcomes"],
        serde_json::json!([{"target": "local/echo", "outcome": "ok"}])
    );
    assert!(ok["error"].is_null());
    assert!(ok["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{ok}");
    assert!(
        ok["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{ok}"
    );
    assert!(ok["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(ok["time_to_first_token_ms"].is_null(), "not a stream");
    assert!(ok["time"].as_str().unwrap().ends_with('Z'), "{ok}");
    assert!(ok.get("request_body").is_none(), "no bodies unless asked");

    let stream = &lines["t-stream"];
    assert_eq!(stream["status"], 200);
    assert!(
        stream["time_to_first_token_ms"].as_f64().is_some(),
        "{stream}"
    );
    assert!(
        stream["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{stream}"
    );
    assert!(stream["error"].is_null(), "{stream}");

    assert_eq!(lines["t-400"]["status"], 400);
    assert!(lines["t-400"]["route"].is_null());
    assert_eq!(lines["t-401"]["status"], 401);
    assert_eq!(lines["t-401"]["error"], "invalid_api_key");
    assert_eq!(lines["t-404"]["status"], 404);
    assert_eq!(lines["t-404"]["requested_model"], "no-such-model");
    assert_eq!(lines["t-404"]["error"], "model_not_found");
    assert!(lines["t-404"]["route"].is_null());

    let down = &lines["t-503"];
    assert_eq!(down["status"], 503);
    assert_eq!(down["route"], "down");
    assert!(down["provider"].is_null());
    assert_eq!(down["error"], "all_targets_unavailable");
    assert_eq!(down["attempts"], 1);
    assert_eq!(
        down["attempt_outcomes"],
        serde_json::json!([{"target": "broken/never", "outcome": "unavailable"}])
    );

    let hangup = &lines["t-hangup"];
    assert_eq!(hangup["status"], 200);
    assert_eq!(hangup["error"], "client_disconnected");
    assert_eq!(hangup["provider"], "slow");

    let gave_up = &lines["t-gave-up"];
    assert_eq!(gave_up["status"], 499, "{gave_up}");
    assert_eq!(gave_up["error"], "client_disconnected");
    assert_eq!(gave_up["route"], "lazy");

    // No secret anywhere in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    assert!(!text.contains("wrong"), "not even a wrong key: {text}");
}

/// File descriptors of this process open on `path`.
fn open_fds(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

#[tokio::test]
async fn a_shutdown_writes_every_acknowledged_line_and_a_restart_appends() {
    let dir = TempDir::new("flush");
    let path = dir.path().join("usage.jsonl");
    // Large bodies give the writer real work, so lines are still queued when the server stops.
    let text = config(&path, "include_bodies = true");
    let router = spawn_router(&text, ENV).await;
    let filler = "x".repeat(64 << 10);
    let big = format!(
        r#"{{"model":"demo","messages":[{{"role":"system","content":"{filler}"}},{{"role":"user","content":"hi"}}]}}"#
    );
    let n = 150;
    let router = std::sync::Arc::new(router);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let router = router.clone();
        let big = big.clone();
        tasks.spawn(async move { request(&router, &format!("first-{i}"), &big).await });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let router = std::sync::Arc::into_inner(router).expect("no other handle");

    router.shutdown().await;

    // Every answered request is on disk the moment shutdown returns, and the file is closed.
    assert_eq!(read_lines(&path).len(), n);
    assert_eq!(open_fds(&path), 0, "the writer closed the file");

    // A restart appends; nothing of the first run is lost or rewritten.
    let before = std::fs::read(&path).unwrap();
    let router = spawn_router(&text, ENV).await;
    for i in 0..3 {
        assert_eq!(
            request(&router, &format!("second-{i}"), &body("demo", false)).await,
            200
        );
    }
    router.shutdown().await;
    let after = std::fs::read(&path).unwrap();
    assert!(after.starts_with(&before));
    let lines = read_lines(&path);
    assert_eq!(lines.len(), n + 3);
    assert_eq!(by_request_id(&lines).len(), n + 3);
}

#[tokio::test]
async fn bodies_are_logged_exactly_and_only_when_asked() {
    let dir = TempDir::new("bodies");
    let path = dir.path().join("usage.jsonl");
    let router = spawn_router(&config(&path, "include_bodies = true"), ENV).await;
    // Odd spacing, a trailing-zero number and an escape: logged byte for byte.
    let sent = "{\n  \"model\": \"demo\",\n  \"metadata\": {\"amount\": \"1000.00\"},\n  \"messages\": [{\"role\": \"user\", \"content\": \"caf\\u00e9 1000.00\"}]\n}";
    let answer = chat_with(&router, &[AUTH, ("x-request-id", "b-plain")], sent).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(request(&router, "b-stream", &body("demo", true)).await, 200);
    router.shutdown().await;

    let lines = by_request_id(&read_lines(&path));
    let plain = &lines["b-plain"];
    assert_eq!(plain["request_body"], sent);
    assert_eq!(plain["response_body"], answer.text());
    let stream = &lines["b-stream"];
    assert_eq!(stream["request_body"], body("demo", true));
    assert!(
        stream.get("response_body").is_none(),
        "stream bodies are not kept: {stream}"
    );
}

#[tokio::test]
async fn a_full_queue_drops_lines_and_counts_them_without_holding_requests_up() {
    use std::io::{Read, Write};

    let dir = TempDir::new("full");
    let path = dir.path().join("usage.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // Opened read-write so the router's open does not wait for a reader; nothing is read yet,
    // so once the pipe's buffer (64 KiB) is full the writer is stuck in its write.
    let mut pipe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let router = spawn_router(&config(&path, "include_bodies = true\nbuffer = 2"), ENV).await;
    let filler = "y".repeat(16 << 10);
    let big = format!(
        r#"{{"model":"demo","messages":[{{"role":"system","content":"{filler}"}},{{"role":"user","content":"hi"}}]}}"#
    );
    let n = 40;
    let all = async {
        for i in 0..n {
            assert_eq!(request(&router, &format!("f-{i}"), &big).await, 200);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), all)
        .await
        .expect("requests must not wait for a stuck usage log");
    let dropped = scrape(&router)
        .await
        .get("switchboard_usage_log_dropped_total", &[])
        .unwrap();
    assert!(dropped > 0.0, "the queue of 2 must have overflowed");
    assert!(dropped < f64::from(n), "some lines got through: {dropped}");
    let expected = n as usize - dropped as usize;

    // Drain the pipe while the router shuts down: exactly the lines not dropped arrive.
    let reader = std::thread::spawn(move || {
        let mut received = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while received.iter().filter(|&&b| b == b'\n').count() < expected {
            let n = pipe.read(&mut buf).unwrap();
            received.extend_from_slice(&buf[..n]);
        }
        // Anything the router wrote after those lines would come before this marker.
        pipe.write_all(b"END\n").unwrap();
        let mut tail = Vec::new();
        while !tail.ends_with(b"END\n") {
            let n = pipe.read(&mut buf).unwrap();
            tail.extend_from_slice(&buf[..n]);
        }
        (received, tail)
    });
    tokio::time::timeout(Duration::from_secs(10), router.shutdown())
        .await
        .expect("the shutdown finishes once the pipe is drained");
    let (received, tail) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(tail, b"END\n", "no line beyond the ones not dropped");
    let text = String::from_utf8(received).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len() + dropped as usize, n as usize);
}

#[tokio::test]
async fn usage_log_settings_are_checked_with_table_field_and_line() {
    let env = |_: &str| None;
    let cases = [
        ("[usage_log]\ninclude_bodies = true\n", "path"),
        ("[usage_log]\npath = \"\"\n", "path"),
        ("[usage_log]\npath = \"u.jsonl\"\nbuffer = 0\n", "buffer"),
        ("[usage_log]\npath = \"u.jsonl\"\nbufer = 10\n", "bufer"),
    ];
    for (usage_log, field) in cases {
        let text = &format!("{usage_log}[providers.m]\nkind = \"mock\"\n");
        let errors = switchboard::config::parse(text, "test.toml", &env)
            .expect_err(text)
            .0;
        let error = &errors[0];
        assert_eq!(error.table, "usage_log", "{text}: {error}");
        assert!(
            error.field == field || error.reason.contains(field),
            "{text}: {error}"
        );
        assert!(error.line.is_some(), "{text}: {error}");
    }
    let settings = switchboard::config::parse(
        "[usage_log]\npath = \"u.jsonl\"\n[providers.m]\nkind = \"mock\"\n",
        "t",
        &env,
    )
    .unwrap()
    .usage_log
    .unwrap();
    assert_eq!(settings.buffer, 10_000);
    assert!(!settings.include_bodies);

    // A file that cannot be opened stops the start, naming the setting and the path.
    let missing = std::env::temp_dir().join("switchboard-no-such-dir/usage.jsonl");
    let text = format!(
        "[usage_log]\npath = \"{}\"\n[providers.local]\nkind = \"mock\"\n",
        missing.display()
    );
    let snapshot = switchboard::config::parse(&text, "t", &env).unwrap();
    let listen = "127.0.0.1:0".parse().unwrap();
    let error = switchboard::server::Server::bind(snapshot, listen, std::num::NonZeroUsize::MIN)
        .await
        .err()
        .expect("bind must fail");
    let message = error.to_string();
    assert!(
        message.contains("[usage_log] path") && message.contains("switchboard-no-such-dir"),
        "{message}"
    );
}

#[tokio::test]
async fn a_line_carries_the_exact_cost_currency_and_transaction() {
    let dir = TempDir::new("cost");
    let path = dir.path().join("usage.jsonl");
    let text = config(&path, "").replace(
        "[routes.demo]",
        "[providers.local.models.echo]\ninput_per_mtok = 1.6\noutput_per_mtok = 6.4\ncurrency = \"USD\"\n\n\
         [providers.pay]\nkind = \"mock\"\n\n[providers.pay.models.\"pay-model\"]\nper_transaction = 0.01\ncurrency = \"CNY\"\n\n\
         [routes.payments]\ntargets = [\"pay/pay-model\"]\n\n[routes.demo]",
    );
    let router = spawn_router(&text, ENV).await;
    let priced = chat_with(
        &router,
        &[AUTH, ("x-request-id", "c-tokens")],
        &body("demo", false),
    )
    .await;
    assert_eq!(priced.status, 200);
    let header = priced.headers["x-switchboard-cost"]
        .to_str()
        .unwrap()
        .to_owned();
    for id in ["c-confirm", "c-commit"] {
        let answer = chat_with(
            &router,
            &[AUTH, ("x-request-id", id), ("x-transaction-id", "order-42")],
            &body("payments", false),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    router.shutdown().await;

    let lines = by_request_id(&read_lines(&path));
    let tokens = &lines["c-tokens"];
    let (amount, currency) = header.split_once(' ').unwrap();
    assert_eq!(tokens["cost"], amount, "the exact amount of the header");
    assert_eq!(tokens["currency"], currency);
    assert!(tokens["transaction"].is_null());
    let confirm = &lines["c-confirm"];
    assert_eq!(confirm["transaction"], "order-42");
    assert_eq!(confirm["currency"], "CNY");
    assert_eq!(confirm["fee_charged"], true, "{confirm}");
    let commit = &lines["c-commit"];
    assert_eq!(commit["transaction"], "order-42");
    assert_eq!(
        commit["fee_charged"], false,
        "one fee per transaction: {commit}"
    );
}
