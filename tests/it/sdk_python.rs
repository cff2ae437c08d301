//! Client compatibility: the official `openai` Python SDK (tests/python/sdk_compat.py) against
//! a router with a client key, the built-in mock route `demo` and three tool routes, one per
//! wire format (OpenAI, Anthropic, Gemini), each backed by a mock upstream in that format;
//! the script runs once per tool route, with usage required through the two adapters. The
//! interpreter is `$SWITCHBOARD_PYTHON`, else `<repo>/.venv/bin/python`; `scripts/test.sh`
//! creates that venv. Without one, plain `cargo test` skips these tests, saying so on stderr
//! (a fresh checkout passes); with `SWITCHBOARD_REQUIRE_PYTHON` set (scripts/test.sh, hence
//! CI, sets it) they fail instead, so CI can never skip them.
#![cfg(test)] // Test-only helpers: lets clippy apply its test allowances (expect, panic).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::anthropic::thinking;
use crate::gemini::gemini_sse;
use crate::sdk_async_openai::{TOOL_ARGUMENTS, tool_call_completion, tool_call_stream};
use crate::support::{MockUpstream, Reply, RouterHandle, spawn_router};

const CLIENT_KEY: &str = "sk-switchboard-python-sdk-test";

/// The whole script runs in a few seconds; this only bounds a hang.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What a test does when there is no Python with the `openai` SDK.
#[derive(Debug, PartialEq, Eq)]
enum WhenMissing {
    /// Pass, saying it was skipped and how to run it: a fresh `cargo test` stays green.
    Skip,
    /// Fail, as CI must: `SWITCHBOARD_REQUIRE_PYTHON` is set.
    Fail,
}

/// The decision, from the value of `SWITCHBOARD_REQUIRE_PYTHON`: any non-empty value requires
/// the interpreter.
fn when_missing(require: Option<&OsStr>) -> WhenMissing {
    match require {
        Some(value) if !value.is_empty() => WhenMissing::Fail,
        _ => WhenMissing::Skip,
    }
}

/// The interpreter to use, checked to import `openai`. Without one, `None` after saying on
/// stderr that `test` is skipped (unless `SWITCHBOARD_REQUIRE_PYTHON` makes that a failure).
pub(crate) async fn python(test: &str) -> Option<PathBuf> {
    let (python, source) = match std::env::var_os("SWITCHBOARD_PYTHON") {
        Some(path) if !path.is_empty() => (PathBuf::from(path), "SWITCHBOARD_PYTHON"),
        _ => (repo().join(".venv/bin/python"), "the default"),
    };
    let probe = python.clone();
    let result = tokio::task::spawn_blocking(move || {
        Command::new(&probe)
            .args(["-c", "import openai; print(openai.__version__)"])
            .stdin(Stdio::null())
            .output()
    })
    .await
    .expect("probe task");
    let problem = match result {
        Ok(output) if output.status.success() => return Some(python),
        Ok(output) => format!(
            "it cannot import openai: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => format!("it cannot be run: {e}"),
    };
    let missing = format!(
        "No Python with the `openai` SDK for the SDK compatibility test: {} ({source}): \
         {problem}.\nRun scripts/test.sh (it creates .venv and installs \
         tests/python/requirements.txt), or set SWITCHBOARD_PYTHON to an interpreter that has \
         them.",
        python.display()
    );
    let require = std::env::var_os("SWITCHBOARD_REQUIRE_PYTHON");
    match when_missing(require.as_deref()) {
        WhenMissing::Fail => panic!("{missing}\n(SWITCHBOARD_REQUIRE_PYTHON is set: no skipping.)"),
        WhenMissing::Skip => {
            // Straight to stderr, past the harness's capture, so a passing run still shows it.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED sdk_python::{test}: {missing}\n(Set SWITCHBOARD_REQUIRE_PYTHON=1 to \
                 make this a failure; scripts/test.sh and CI do.)"
            );
            None
        }
    }
}

#[test]
fn a_missing_python_skips_only_when_not_required() {
    assert_eq!(when_missing(None), WhenMissing::Skip);
    assert_eq!(when_missing(Some(OsStr::new(""))), WhenMissing::Skip);
    assert_eq!(when_missing(Some(OsStr::new("1"))), WhenMissing::Fail);
    assert_eq!(when_missing(Some(OsStr::new("yes"))), WhenMissing::Fail);
}

pub(crate) struct ScriptRun {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `tests/python/<script>` without blocking the runtime (the router serves it from this
/// runtime), killing it if it outlives [`SCRIPT_TIMEOUT`].
pub(crate) async fn run_script(python: &Path, script: &str, args: &[String]) -> ScriptRun {
    let mut child = Command::new(python)
        .arg(repo().join("tests/python").join(script))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (stdout, stderr) = (stdout.await.unwrap(), stderr.await.unwrap());
            panic!(
                "{script} did not finish within {SCRIPT_TIMEOUT:?}\n--- stdout\n{stdout}\n\
                 --- stderr\n{stderr}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    ScriptRun {
        status,
        stdout: stdout.await.expect("stdout reader"),
        stderr: stderr.await.expect("stderr reader"),
    }
}

/// Anthropic's answer to the forced `get_weather` call: one `tool_use` block, and usage whose
/// input is split into uncached (40), cache writes (10) and cache reads (50).
pub(crate) const ANTHROPIC_TOOL_ANSWER: &str = r#"{"id":"msg_01SdkPlain","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
  "content":[{"type":"tool_use","id":"toolu_01SdkPlain","name":"get_weather","input":{"city":"Paris","unit":"celsius"}}],
  "stop_reason":"tool_use","stop_sequence":null,
  "usage":{"input_tokens":40,"cache_creation_input_tokens":10,"cache_read_input_tokens":50,"output_tokens":12,"service_tier":"standard"}}"#;

/// Anthropic's stream for the same call: the `tool_use` block, a ping, the input in three
/// `input_json_delta` fragments (after an empty one), and cumulative usage in `message_delta`.
pub(crate) const ANTHROPIC_TOOL_STREAM: &[&str] = &[
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01SdkStream\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":15,\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01SdkStream\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\", \\\"unit\\\": \\\"cel\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"sius\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":15,\"output_tokens\":19}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

/// The Gemini model the `gemini-tools` route targets (it appears in the upstream path).
pub(crate) const GEMINI_MODEL: &str = "gemini-2.5-flash";

/// Gemini's `generateContent` answer to the forced call: a `functionCall` part (with a thought
/// signature) that ends with `STOP`, and usage with thinking tokens (18 + 64 completion).
pub(crate) const GEMINI_TOOL_ANSWER: &str = r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris","unit":"celsius"}},
  "thoughtSignature":"CiQBVKhc7yXf0Rb8RmUc+/Zr0g=="}],"role":"model"},"finishReason":"STOP","index":0}],
  "usageMetadata":{"promptTokenCount":57,"candidatesTokenCount":18,"totalTokenCount":139,"thoughtsTokenCount":64,
    "promptTokensDetails":[{"modality":"TEXT","tokenCount":57}]},
  "modelVersion":"gemini-2.5-flash","responseId":"sdkPlainGemini1"}"#;

/// Gemini's stream for the same call: the whole `functionCall` in one chunk with running
/// usage, then an empty text part with `finishReason: STOP` and the final usage (20 + 33).
pub(crate) const GEMINI_TOOL_STREAM: [&str; 2] = [
    r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather","args": {"city": "Paris","unit": "celsius"}},"thoughtSignature": "CiQBVKhc7yXf0Rb8RmUc+/Zr0g=="}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 61,"candidatesTokenCount": 17,"totalTokenCount": 111,"thoughtsTokenCount": 33},"modelVersion": "gemini-2.5-flash","responseId": "sdkStreamGemini1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 61,"candidatesTokenCount": 20,"totalTokenCount": 114,"thoughtsTokenCount": 33},"modelVersion": "gemini-2.5-flash","responseId": "sdkStreamGemini1"}"#,
];

/// The checks every run must pass, none skipped.
const CHECKS: [&str; 9] = [
    "chat, non-stream",
    "chat, stream with include_usage",
    "tool call, non-stream",
    "tool call, stream",
    "BadRequestError for empty messages",
    "AuthenticationError for a wrong key",
    "NotFoundError for an unknown model",
    "413 for a body too large, sync client",
    "413 for a body too large, AsyncOpenAI",
];

/// One script run against `router` with `--tool-model tool_model`: it must pass every check.
/// Returns its stdout and a report to show with any later failure.
async fn run_all_checks(
    python: &Path,
    router: &RouterHandle,
    tool_model: &str,
    expect_usage: bool,
) -> (String, String) {
    let mut args = vec![
        "--base-url".to_owned(),
        router.url("/v1"),
        "--api-key".to_owned(),
        CLIENT_KEY.to_owned(),
        "--chat-model".to_owned(),
        "demo".to_owned(),
        "--tool-model".to_owned(),
        tool_model.to_owned(),
    ];
    if expect_usage {
        args.push("--expect-usage".to_owned());
    }
    let run = run_script(python, "sdk_compat.py", &args).await;
    let report = format!(
        "{} tests/python/sdk_compat.py {} exited with {}\n--- stdout\n{}--- stderr\n{}",
        python.display(),
        args[6..].join(" "),
        run.status,
        run.stdout,
        run.stderr
    );
    assert!(run.status.success(), "{report}");
    for check in CHECKS {
        assert!(
            run.stdout.contains(&format!("ok   {check}")),
            "check {check:?} did not pass\n{report}"
        );
    }
    assert!(run.stdout.contains("9 passed, 0 failed"), "{report}");
    (run.stdout, report)
}

/// What a passing check printed in parentheses after its name.
fn detail<'a>(stdout: &'a str, check: &str, report: &str) -> &'a str {
    let prefix = format!("ok   {check} (");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no detail for {check:?}\n{report}"))
}

/// The call as the script shows it: `TOOL_ARGUMENTS` parsed, keys sorted, compact.
const SHOWN_CALL: &str = r#"get_weather({"city":"Paris","unit":"celsius"})"#;

#[tokio::test]
async fn official_python_sdk_passes_its_compatibility_checks() {
    let Some(python) = python("official_python_sdk_passes_its_compatibility_checks").await else {
        return;
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(TOOL_ARGUMENTS).unwrap(),
        serde_json::json!({"city": "Paris", "unit": "celsius"}),
        "SHOWN_CALL shows TOOL_ARGUMENTS"
    );

    // Each script run asks for the tool call once plainly, then once streamed, in that order;
    // each tool route has its own upstream, scripted in its provider's wire format.
    let openai = MockUpstream::start(vec![tool_call_completion(), tool_call_stream()]).await;
    let anthropic = MockUpstream::start(vec![
        Reply::json(200, ANTHROPIC_TOOL_ANSWER),
        Reply::sse_raw(ANTHROPIC_TOOL_STREAM),
    ])
    .await;
    let gemini = MockUpstream::start(vec![
        Reply::json(200, GEMINI_TOOL_ANSWER),
        gemini_sse(&GEMINI_TOOL_STREAM),
    ])
    .await;
    let toml = format!(
        r#"
[[keys]]
name = "python-sdk"
key_env = "PY_SDK_KEY"

[providers.local]
kind = "mock"

[providers.local.models.echo]

[providers.up]
kind = "openai"
base_url = "{openai}"
api_key_env = "UP_KEY"

[providers.up.models."tool-model"]

[providers.claude]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "CLAUDE_KEY"

[providers.claude.models."claude-sonnet-4-5"]

[providers.g]
kind = "gemini"
base_url = "{gemini}"
api_key_env = "GEMINI_KEY"

[providers.g.models."{GEMINI_MODEL}"]

[routes.demo]
targets = ["local/echo"]

[routes.tools]
targets = ["up/tool-model"]

[routes.claude-tools]
targets = ["claude/claude-sonnet-4-5"]

[routes.gemini-tools]
targets = ["g/{GEMINI_MODEL}"]
"#,
        openai = openai.url("/v1"),
        anthropic = anthropic.url(""),
        gemini = gemini.url(""),
    );
    let router = spawn_router(
        &toml,
        &[
            ("PY_SDK_KEY", CLIENT_KEY),
            ("UP_KEY", "sk-upstream-secret"),
            ("CLAUDE_KEY", "sk-ant-upstream-secret"),
            ("GEMINI_KEY", "gemini-upstream-secret"),
        ],
    )
    .await;

    // OpenAI wire, without --expect-usage: the script's plain mode.
    let (stdout, report) = run_all_checks(&python, &router, "tools", false).await;
    assert_eq!(
        detail(&stdout, "tool call, non-stream", &report),
        format!("{SHOWN_CALL}; usage 20+10=30"),
        "{report}"
    );
    assert_eq!(
        detail(&stdout, "tool call, stream", &report),
        format!("{SHOWN_CALL} from 3 fragments"),
        "{report}"
    );
    // The upstream saw exactly the two tool-call requests, plain then streamed, with the tools.
    let sent = openai.requests();
    assert_eq!(sent.len(), 2, "{report}");
    for (recorded, stream) in sent.iter().zip([false, true]) {
        let body = recorded.json();
        assert_eq!(body["model"], "tool-model");
        assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(body["stream"].as_bool().unwrap_or(false), stream);
    }

    // Anthropic: prompt_tokens = input + cache writes + cache reads.
    let (stdout, report) = run_all_checks(&python, &router, "claude-tools", true).await;
    assert_eq!(
        detail(&stdout, "tool call, non-stream", &report),
        format!("{SHOWN_CALL}; usage 100+12=112"),
        "{report}"
    );
    assert_eq!(
        detail(&stdout, "tool call, stream", &report),
        format!("{SHOWN_CALL} from 3 fragments; usage 40+19=59"),
        "{report}"
    );
    let sent = anthropic.requests();
    assert_eq!(sent.len(), 2, "{report}");
    for (recorded, stream) in sent.iter().zip([false, true]) {
        assert_eq!(recorded.method, http::Method::POST);
        assert_eq!(recorded.path, "/v1/messages", "{report}");
        assert_eq!(recorded.headers["x-api-key"], "sk-ant-upstream-secret");
        let body = recorded.json();
        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert_eq!(body["tools"][0]["name"], "get_weather");
        assert_eq!(body["tools"][0]["input_schema"]["required"][0], "city");
        assert_eq!(body["tool_choice"]["type"], "tool", "{body}");
        assert_eq!(body["tool_choice"]["name"], "get_weather", "{body}");
        assert_eq!(body["stream"].as_bool().unwrap_or(false), stream);
        assert!(body.get("stream_options").is_none(), "{body}");
    }

    // Gemini: completion_tokens = candidates + thoughts.
    let (stdout, report) = run_all_checks(&python, &router, "gemini-tools", true).await;
    assert_eq!(
        detail(&stdout, "tool call, non-stream", &report),
        format!("{SHOWN_CALL}; usage 57+82=139"),
        "{report}"
    );
    assert_eq!(
        detail(&stdout, "tool call, stream", &report),
        format!("{SHOWN_CALL} from 1 fragments; usage 61+53=114"),
        "{report}"
    );
    let sent = gemini.requests();
    assert_eq!(sent.len(), 2, "{report}");
    for (recorded, action) in sent
        .iter()
        .zip([":generateContent", ":streamGenerateContent?alt=sse"])
    {
        assert_eq!(recorded.method, http::Method::POST);
        assert_eq!(
            recorded.path,
            format!("/v1beta/models/{GEMINI_MODEL}{action}"),
            "{report}"
        );
        assert_eq!(recorded.headers["x-goog-api-key"], "gemini-upstream-secret");
        let body = recorded.json();
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["name"],
            "get_weather"
        );
        assert_eq!(
            body["toolConfig"]["functionCallingConfig"],
            serde_json::json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
            "{body}"
        );
    }
}

#[tokio::test]
async fn official_python_sdk_sees_a_price_quote_as_a_402_and_pays_it() {
    let Some(python) = python("official_python_sdk_sees_a_price_quote_as_a_402_and_pays_it").await
    else {
        return;
    };
    let quote = "eyJvdXRfdHJhZGVfbm8iOiJvLXB5IiwiYW1vdW50IjoiMC4wMSIsImN1cnJlbmN5IjoiQ05ZIiwicGF5X2JlZm9yZSI6IjI5OTktMDEtMDFUMDA6MDA6MDArMDg6MDAifQ";
    let validation = "eyJ0cmFkZV9ubyI6IlQiLCJvdXRfdHJhZGVfbm8iOiJvLXB5IiwidmFsaWRhdGVkIjp0cnVlfQ";
    let seller = MockUpstream::start(vec![
        Reply::json(402, r#"{"code":"Payment-Needed","message":"pay first"}"#)
            .header("payment-needed", quote),
        Reply::json(200, r#"{"id":"c","object":"chat.completion","created":1,"model":"ai","choices":[{"index":0,"message":{"role":"assistant","content":"paid"},"finish_reason":"stop"}]}"#)
            .header("payment-validation", validation),
    ])
    .await;
    let toml = format!(
        r#"
[[keys]]
name = "python-sdk"
key_env = "PY_SDK_KEY"

[providers.local]
kind = "mock"

[providers.seller]
kind = "qwen"
base_url = "{seller}"
payment = "a2m"

[routes.demo]
targets = ["local/echo"]

[routes.paid]
targets = ["seller/ai"]
"#,
        seller = seller.url("/v1"),
    );
    let router = spawn_router(&toml, &[("PY_SDK_KEY", CLIENT_KEY)]).await;
    let args: Vec<String> = [
        "--base-url",
        &router.url("/v1"),
        "--api-key",
        CLIENT_KEY,
        "--payment-model",
        "paid",
        "--payment-proof",
        "eyJwcm9vZiI6InAifQ",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let run = run_script(&python, "sdk_compat.py", &args).await;
    let report = format!("--- stdout\n{}--- stderr\n{}", run.stdout, run.stderr);
    assert!(run.status.success(), "{report}");
    assert_eq!(
        detail(&run.stdout, "APIStatusError 402 for a price quote", &report),
        format!("{quote} from seller"),
        "{report}"
    );
    assert_eq!(
        detail(&run.stdout, "paid retry with Payment-Proof", &report),
        "cost 0.010000000 CNY",
        "{report}"
    );
    let sent = seller.requests();
    assert_eq!(sent.len(), 2, "{report}");
    assert_eq!(sent[1].headers["payment-proof"], "eyJwcm9vZiI6InAifQ");
}

#[tokio::test]
async fn official_python_sdk_keeps_signed_thinking_in_a_tool_loop() {
    let Some(python) = python("official_python_sdk_keeps_signed_thinking_in_a_tool_loop").await
    else {
        return;
    };
    // Plain turn 1 and 2, then streamed turn 1 and 2; the mock refuses a second turn whose
    // assistant message lost its signed thinking, as Anthropic does.
    let claude = MockUpstream::enforcing(
        vec![
            Reply::json(200, &thinking::first_answer()),
            Reply::json(200, thinking::FINAL_ANSWER),
            thinking::sse(&thinking::first_stream()),
            thinking::sse(&thinking::final_stream()),
        ],
        thinking::signed_thinking_rule,
    )
    .await;
    let toml = format!(
        r#"
[[keys]]
name = "python-sdk"
key_env = "PY_SDK_KEY"

[providers.local]
kind = "mock"

[providers.claude]
kind = "anthropic"
base_url = "{claude}"
api_key_env = "CLAUDE_KEY"

[providers.claude.models."claude-sonnet-4-5"]

[routes.demo]
targets = ["local/echo"]

[routes.claude-thinking]
targets = ["claude/claude-sonnet-4-5"]
"#,
        claude = claude.url(""),
    );
    let router = spawn_router(
        &toml,
        &[
            ("PY_SDK_KEY", CLIENT_KEY),
            ("CLAUDE_KEY", "sk-ant-upstream"),
        ],
    )
    .await;
    let args: Vec<String> = [
        "--base-url",
        &router.url("/v1"),
        "--api-key",
        CLIENT_KEY,
        "--chat-model",
        "demo",
        "--thinking-model",
        "claude-thinking",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let run = run_script(&python, "sdk_compat.py", &args).await;
    let report = format!("--- stdout\n{}--- stderr\n{}", run.stdout, run.stderr);
    assert!(run.status.success(), "{report}");
    for check in [
        "thinking tool loop, non-stream",
        "thinking tool loop, stream",
    ] {
        assert_eq!(
            detail(&run.stdout, check, &report),
            "thinking,redacted_thinking sent back; 18C in Paris.",
            "{report}"
        );
    }
    let sent = claude.requests();
    assert_eq!(sent.len(), 4, "{report}");
    for second in [&sent[1], &sent[3]] {
        let body = second.json();
        let assistant = &body["messages"][1]["content"];
        assert_eq!(
            assistant.as_array().unwrap()[0..2],
            thinking::blocks().as_array().unwrap()[..],
            "{body}"
        );
    }
}
