//! `POST /v1/embeddings`: the OpenAI-wire pass-through (OpenAI, Qwen), Mistral's allowlisted
//! body, Gemini's `batchEmbedContents` translated to the OpenAI list, the mock's deterministic
//! vectors, exact `base64`, failover, limits, cost, the endpoint split between chat and
//! embeddings models, the `endpoint` of the usage log and the metrics, and the official Python
//! SDK as the client.
#![cfg(test)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use switchboard::providers::mock::mock_value;

use crate::metrics::scrape;
use crate::support::{
    Answer, MockUpstream, PATIENCE, Reply, RouterHandle, TempDir, eventually, send, spawn_router,
};

const ENV: &[(&str, &str)] = &[("UP_KEY", "sk-upstream-secret")];

/// POSTs `body` to the router's embeddings endpoint with `headers`.
async fn embed_with(router: &RouterHandle, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send("POST", &router.url("/v1/embeddings"), &all, body.to_owned()).await
}

async fn embed(router: &RouterHandle, body: &str) -> Answer {
    embed_with(router, &[], body).await
}

/// One provider `up` of `kind` at `upstream` with embeddings model `model` (priced), routed
/// as `vectors`.
fn one_embedder(kind: &str, upstream: &MockUpstream, model: &str) -> String {
    format!(
        r#"
[providers.up]
kind = "{kind}"
base_url = "{base}"
api_key_env = "UP_KEY"

[providers.up.models."{model}"]
embeddings = true
input_per_mtok = "0.02"
currency = "USD"

[routes.vectors]
targets = ["up/{model}"]
"#,
        base = upstream.url("/v1")
    )
}

/// The `f32` values of a base64 embedding.
fn decode(text: &str) -> Vec<f32> {
    BASE64
        .decode(text)
        .unwrap()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer.headers[name].to_str().unwrap()
}

/// An OpenAI embeddings answer with `embedding` as each item's JSON.
fn openai_answer(embeddings: &[&str], prompt_tokens: u32) -> String {
    let data: Vec<String> = embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| format!(r#"{{"object":"embedding","index":{i},"embedding":{e}}}"#))
        .collect();
    format!(
        r#"{{"object":"list","data":[{}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":{prompt_tokens},"total_tokens":{prompt_tokens}}}}}"#,
        data.join(",")
    )
}

#[tokio::test]
async fn openai_wire_passes_the_body_through_with_only_the_model_replaced() {
    let b64 = BASE64.encode(
        [0.5f32, -0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    let answer_body = openai_answer(&[&format!("\"{b64}\"")], 1_000_000);
    let up = MockUpstream::start(vec![Reply::json(200, &answer_body)]).await;
    let router = spawn_router(&one_embedder("openai", &up, "text-embedding-3-small"), ENV).await;
    let sent = r#"{"input": "hello", "model": "vectors", "encoding_format": "base64", "user": "u-1", "dimensions": 2, "x_extra": [1]}"#;
    let answer = embed(&router, sent).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.text(),
        answer_body,
        "the answer passes byte for byte"
    );
    let received = &up.requests()[0];
    assert_eq!(received.path, "/v1/embeddings");
    assert_eq!(
        received.headers["authorization"],
        "Bearer sk-upstream-secret"
    );
    assert_eq!(
        received.body,
        sent.replace("\"vectors\"", "\"text-embedding-3-small\"")
    );
    assert_eq!(header(&answer, "x-switchboard-provider"), "up");
    assert_eq!(
        header(&answer, "x-switchboard-model"),
        "text-embedding-3-small"
    );
    assert_eq!(header(&answer, "x-switchboard-attempts"), "1");
    // A million input tokens at 0.02 per million.
    assert_eq!(header(&answer, "x-switchboard-cost"), "0.020000000 USD");
}

#[tokio::test]
async fn qwen_is_asked_for_floats_and_base64_is_encoded_exactly() {
    let floats = "[0.1,-0.2,0.30000001192092896,1e-7,-3]";
    let up = MockUpstream::start(vec![Reply::json(
        200,
        &openai_answer(&[floats, "[2.5]"], 3),
    )])
    .await;
    let router = spawn_router(&one_embedder("qwen", &up, "text-embedding-v4"), ENV).await;
    let answer = embed(
        &router,
        r#"{"model":"vectors","input":["a","b"],"encoding_format":"base64"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let received = up.requests()[0].json();
    assert_eq!(
        received["encoding_format"], "float",
        "DashScope only sends floats"
    );
    assert_eq!(received["model"], "text-embedding-v4");
    let json = answer.json();
    let first = decode(json["data"][0]["embedding"].as_str().unwrap());
    let expected: Vec<f32> = [0.1, -0.2, 0.300_000_011_920_928_96, 1e-7, -3.0]
        .iter()
        .map(|&v: &f64| v as f32)
        .collect();
    assert_eq!(first, expected);
    assert_eq!(
        decode(json["data"][1]["embedding"].as_str().unwrap()),
        vec![2.5]
    );
    assert_eq!(json["usage"]["prompt_tokens"], 3);
    // Asked for floats, the answer passes as DashScope wrote it.
    let plain = embed(&router, r#"{"model":"vectors","input":"a"}"#).await;
    assert!(plain.text().contains(floats), "{}", plain.text());
}

#[tokio::test]
async fn mistral_gets_only_the_fields_it_takes() {
    let up = MockUpstream::start(vec![Reply::json(200, &openai_answer(&["[0.25,0.5]"], 4))]).await;
    let router = spawn_router(&one_embedder("mistral", &up, "mistral-embed"), ENV).await;
    let answer = embed(
        &router,
        r#"{"model":"vectors","input":["one","two"],"user":"u","encoding_format":"float"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let received = &up.requests()[0];
    assert_eq!(received.path, "/v1/embeddings");
    assert_eq!(
        received.json(),
        serde_json::json!({"model":"mistral-embed","input":["one","two"],"encoding_format":"float"})
    );
    let tokens = embed(&router, r#"{"model":"vectors","input":[[1,2]]}"#).await;
    assert_eq!(tokens.status, 400);
    assert_eq!(tokens.error()["param"], "input");
    assert_eq!(up.calls(), 1, "a refused request reaches no provider");
}

#[tokio::test]
async fn gemini_batch_embed_contents_becomes_the_openai_list() {
    let gemini = r#"{"embeddings":[{"values":[0.015625,-0.5,0.1]},{"values":[1.5,2,-0.75]}]}"#;
    let up = MockUpstream::start(vec![Reply::json(200, gemini)]).await;
    let router = spawn_router(&one_embedder("gemini", &up, "gemini-embedding-001"), ENV).await;
    let sent = r#"{"model":"vectors","input":["abcdefgh","xy"],"dimensions":3}"#;
    let answer = embed(&router, sent).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let received = &up.requests()[0];
    assert_eq!(
        received.path,
        "/v1/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(received.headers["x-goog-api-key"], "sk-upstream-secret");
    let part = |text: &str| {
        serde_json::json!({"model":"models/gemini-embedding-001",
            "content":{"parts":[{"text":text}]},"outputDimensionality":3})
    };
    assert_eq!(
        received.json(),
        serde_json::json!({"requests":[part("abcdefgh"), part("xy")]})
    );
    assert_eq!(
        answer.json(),
        serde_json::json!({"object":"list","data":[
            {"object":"embedding","index":0,"embedding":[0.015625,-0.5,0.1]},
            {"object":"embedding","index":1,"embedding":[1.5,2,-0.75]}],
            "model":"gemini-embedding-001",
            "usage":{"prompt_tokens":3,"total_tokens":3}})
    );
    let encoded = embed(
        &router,
        r#"{"model":"vectors","input":["abcdefgh","xy"],"encoding_format":"base64"}"#,
    )
    .await;
    let json = encoded.json();
    assert_eq!(
        decode(json["data"][0]["embedding"].as_str().unwrap()),
        vec![0.015_625, -0.5, 0.1f32]
    );
    assert_eq!(
        decode(json["data"][1]["embedding"].as_str().unwrap()),
        vec![1.5, 2.0, -0.75]
    );
}

#[tokio::test]
async fn a_429_fails_over_to_the_next_target() {
    let limited = MockUpstream::start(vec![
        Reply::json(
            429,
            r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        )
        .header("retry-after", "7"),
    ])
    .await;
    let gemini =
        MockUpstream::start(vec![Reply::json(200, r#"{"embeddings":[{"values":[1]}]}"#)]).await;
    let config = format!(
        r#"
[providers.first]
kind = "openai"
base_url = "{first}"
api_key_env = "UP_KEY"
[providers.first.models."text-embedding-3-small"]
embeddings = true

[providers.second]
kind = "gemini"
base_url = "{second}"
api_key_env = "UP_KEY"
[providers.second.models."gemini-embedding-001"]
embeddings = true

[routes.vectors]
targets = ["first/text-embedding-3-small", "second/gemini-embedding-001"]
"#,
        first = limited.url("/v1"),
        second = gemini.url("/v1")
    );
    let router = spawn_router(&config, ENV).await;
    let answer = embed(&router, r#"{"model":"vectors","input":"hi"}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(header(&answer, "x-switchboard-provider"), "second");
    assert_eq!(header(&answer, "x-switchboard-attempts"), "2");
    assert_eq!((limited.calls(), gemini.calls()), (1, 1));
    let m = scrape(&router).await;
    let failovers = m.get(
        "switchboard_failovers_total",
        &[
            ("from_provider", "first"),
            ("reason", "rate_limited"),
            ("route", "vectors"),
        ],
    );
    assert_eq!(failovers, Some(1.0));
}

/// A mock provider with embeddings model `vec` (route `vectors`) and chat model `echo`
/// (route `talk`), after `head`.
fn mock_config(head: &str) -> String {
    format!(
        r#"{head}
[providers.local]
kind = "mock"
[providers.local.models."vec"]
embeddings = true

[routes.vectors]
targets = ["local/vec"]

[routes.talk]
targets = ["local/echo"]
"#
    )
}

#[tokio::test]
async fn bad_requests_are_refused_at_the_door_naming_their_param() {
    let router = spawn_router(&mock_config(""), &[]).await;
    let cases = [
        (r#"{"model":"vectors","input":""}"#, "input"),
        (r#"{"model":"vectors","input":[]}"#, "input"),
        (r#"{"model":"vectors"}"#, "input"),
        (r#"{"input":"x"}"#, "model"),
        (
            r#"{"model":"vectors","input":"x","encoding_format":"int8"}"#,
            "encoding_format",
        ),
        (
            r#"{"model":"vectors","input":"x","dimensions":0}"#,
            "dimensions",
        ),
    ];
    for (body, param) in cases {
        let answer = embed(&router, body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        assert_eq!(answer.error()["param"], param, "{body}");
    }
    let many = format!(
        r#"{{"model":"vectors","input":[{}]}}"#,
        vec!["\"a\""; 2049].join(",")
    );
    let answer = embed(&router, &many).await;
    assert_eq!(answer.status, 400);
    assert!(answer.error()["message"].as_str().unwrap().contains("2048"));
}

#[tokio::test]
async fn chat_and_embeddings_models_stay_on_their_endpoints() {
    let router = spawn_router(&mock_config(""), &[]).await;
    let chat = send(
        "POST",
        &router.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"vectors","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(chat.status, 400, "{}", chat.text());
    assert_eq!(chat.error()["param"], "model");
    assert!(
        chat.error()["message"]
            .as_str()
            .unwrap()
            .contains("/v1/embeddings")
    );
    let wrong = embed(&router, r#"{"model":"talk","input":"hi"}"#).await;
    assert_eq!(wrong.status, 400, "{}", wrong.text());
    assert_eq!(wrong.error()["param"], "model");
    let unknown = embed(&router, r#"{"model":"nope","input":"hi"}"#).await;
    assert_eq!(unknown.status, 404);
    let direct = embed(&router, r#"{"model":"local/vec","input":"hi"}"#).await;
    assert_eq!(direct.status, 200, "{}", direct.text());
}

#[tokio::test]
async fn the_mock_embeds_deterministically_in_either_format() {
    let router = spawn_router(&mock_config(""), &[]).await;
    let floats = embed(
        &router,
        r#"{"model":"vectors","input":["hello","hi"],"dimensions":5}"#,
    )
    .await;
    let json = floats.json();
    let expected: Vec<f32> = (0..5).map(|i| mock_value(b"hello", i)).collect();
    let got: Vec<f32> = json["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(got, expected);
    assert_eq!(json["data"][1]["index"], 1);
    assert_eq!(json["usage"]["prompt_tokens"], 3);
    let encoded = embed(
        &router,
        r#"{"model":"vectors","input":["hello"],"dimensions":5,"encoding_format":"base64"}"#,
    )
    .await;
    assert_eq!(
        decode(encoded.json()["data"][0]["embedding"].as_str().unwrap()),
        expected
    );
}

#[tokio::test]
async fn embeddings_need_a_client_key_and_count_against_its_tpm() {
    let head = "[[keys]]\nname = \"web\"\nkey_env = \"KEY_WEB\"\ntpm = 10\n";
    let router = spawn_router(&mock_config(head), &[("KEY_WEB", "sk-sb-web")]).await;
    let body = r#"{"model":"vectors","input":"aaaaaaaaaaaaaaaaaaaaaaaa"}"#;
    let anonymous = embed(&router, body).await;
    assert_eq!(anonymous.status, 401);
    let auth = [("authorization", "Bearer sk-sb-web")];
    // 24 bytes: six tokens of the ten a minute.
    let first = embed_with(&router, &auth, body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(header(&first, "x-ratelimit-remaining-tokens"), "4");
    let second = embed_with(&router, &auth, body).await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.error()["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn the_usage_log_and_the_metrics_say_which_endpoint() {
    let dir = TempDir::new("endpoint");
    let path = dir.path().join("usage.jsonl");
    let head = format!("[usage_log]\npath = \"{}\"\n", path.display());
    let router = spawn_router(&mock_config(&head), &[]).await;
    let embedded = embed_with(
        &router,
        &[("x-request-id", "req-embed")],
        r#"{"model":"vectors","input":"hello"}"#,
    )
    .await;
    assert_eq!(embedded.status, 200);
    let chatted = send(
        "POST",
        &router.url("/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("x-request-id", "req-chat"),
        ],
        r#"{"model":"talk","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(chatted.status, 200);
    let refused = embed_with(
        &router,
        &[("x-request-id", "req-bad")],
        r#"{"model":"vectors"}"#,
    )
    .await;
    assert_eq!(refused.status, 400);
    let lines = || read_lines(&path);
    eventually(PATIENCE, "three usage-log lines", || async {
        lines().len() == 3
    })
    .await;
    let endpoint_of = |id: &str| {
        lines()
            .into_iter()
            .find(|line| line["request_id"] == id)
            .map(|line| line["endpoint"].clone())
    };
    assert_eq!(endpoint_of("req-embed"), Some("embeddings".into()));
    assert_eq!(endpoint_of("req-chat"), Some("chat".into()));
    assert_eq!(endpoint_of("req-bad"), Some("embeddings".into()));
    let m = scrape(&router).await;
    let requests = |endpoint: &str, route: &str, provider: &str, model: &str, status: &str| {
        m.get(
            "switchboard_requests_total",
            &[
                ("endpoint", endpoint),
                ("model", model),
                ("provider", provider),
                ("route", route),
                ("status", status),
            ],
        )
    };
    assert_eq!(
        requests("embeddings", "vectors", "local", "vec", "200"),
        Some(1.0)
    );
    assert_eq!(requests("chat", "talk", "local", "echo", "200"), Some(1.0));
    assert_eq!(
        requests("embeddings", "unknown", "none", "none", "400"),
        Some(1.0)
    );
    let duration = m.get(
        "switchboard_request_duration_seconds_count",
        &[
            ("endpoint", "embeddings"),
            ("provider", "local"),
            ("route", "vectors"),
        ],
    );
    assert_eq!(duration, Some(1.0));
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The whole script runs in a few seconds; this only bounds a hang.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn official_python_sdk_embeds_through_mock_openai_and_gemini_targets() {
    let Some(python) = crate::sdk_python::python(
        "official_python_sdk_embeds_through_mock_openai_and_gemini_targets",
    )
    .await
    else {
        return;
    };
    let openai_floats = ["[0.125,-0.5,0.1]", "[1,2,3]"];
    let openai =
        MockUpstream::start(vec![Reply::json(200, &openai_answer(&openai_floats, 5))]).await;
    let gemini = MockUpstream::start(vec![Reply::json(
        200,
        r#"{"embeddings":[{"values":[0.2,-0.3]},{"values":[0.7,0.001]}]}"#,
    )])
    .await;
    let config = format!(
        r#"
[[keys]]
name = "sdk"
key_env = "SDK_KEY"

[providers.local]
kind = "mock"
[providers.local.models."vec"]
embeddings = true

[providers.oai]
kind = "openai"
base_url = "{openai}"
api_key_env = "UP_KEY"
[providers.oai.models."text-embedding-3-small"]
embeddings = true

[providers.gem]
kind = "gemini"
base_url = "{gemini}"
api_key_env = "UP_KEY"
[providers.gem.models."gemini-embedding-001"]
embeddings = true

[routes.mock-embed]
targets = ["local/vec"]
[routes.openai-embed]
targets = ["oai/text-embedding-3-small"]
[routes.gemini-embed]
targets = ["gem/gemini-embedding-001"]
"#,
        openai = openai.url("/v1"),
        gemini = gemini.url("/v1")
    );
    let router = spawn_router(
        &config,
        &[("UP_KEY", "sk-upstream-secret"), ("SDK_KEY", "sk-sb-sdk")],
    )
    .await;
    let args = vec![
        crate::sdk_python::repo()
            .join("tests/python/sdk_embeddings.py")
            .display()
            .to_string(),
        "--base-url".to_owned(),
        router.url("/v1"),
        "--api-key".to_owned(),
        "sk-sb-sdk".to_owned(),
        "--model".to_owned(),
        "mock-embed".to_owned(),
        "--model".to_owned(),
        "openai-embed".to_owned(),
        "--model".to_owned(),
        "gemini-embed".to_owned(),
    ];
    let run = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args(&args)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .output()
    });
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .expect("the script finishes")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!(
        "exit {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    let results: serde_json::Value = serde_json::from_str(stdout.trim()).expect(&report);
    let as_f32 = |values: &serde_json::Value| -> Vec<Vec<f32>> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect()
    };
    let mock: Vec<Vec<f32>> = ["hello world", "a second input"]
        .iter()
        .map(|text| (0..8).map(|i| mock_value(text.as_bytes(), i)).collect())
        .collect();
    let expected = [
        ("mock-embed", mock),
        (
            "openai-embed",
            vec![vec![0.125, -0.5, 0.1], vec![1.0, 2.0, 3.0]],
        ),
        ("gemini-embed", vec![vec![0.2, -0.3], vec![0.7, 0.001]]),
    ];
    for (model, vectors) in expected {
        let result = &results[model];
        for format in ["default", "float", "base64"] {
            assert_eq!(
                as_f32(&result[format]),
                vectors,
                "{model} {format}\n{report}"
            );
        }
        assert_eq!(result["indexes"], serde_json::json!([0, 1]), "{report}");
        assert_eq!(result["empty_input_param"], "input", "{report}");
    }
    // The SDK asks for base64 unless told otherwise.
    assert_eq!(openai.requests()[0].json()["encoding_format"], "base64");
    assert_eq!(openai.requests()[1].json()["encoding_format"], "float");
    assert_eq!(results["gemini-embed"]["model"], "gemini-embedding-001");
}
