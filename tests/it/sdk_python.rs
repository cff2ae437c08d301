//! Client compatibility: the official `openai` Python SDK (tests/python/sdk_compat.py) against
//! a router with a client key, the built-in mock route `demo` and an OpenAI-wire upstream that
//! answers tool calls. The interpreter is `$SWITCHBOARD_PYTHON`, else `<repo>/.venv/bin/python`;
//! `scripts/test.sh` creates that venv. Without it this test fails, it never skips.
#![cfg(test)] // Test-only helpers: lets clippy apply its test allowances (expect, panic).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::sdk_async_openai::{tool_call_completion, tool_call_stream};
use crate::support::{MockUpstream, spawn_router};

const CLIENT_KEY: &str = "sk-switchboard-python-sdk-test";

/// The whole script runs in a few seconds; this only bounds a hang.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter to use, checked to import `openai`; a failure explains how to get one.
async fn python() -> PathBuf {
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
        Ok(output) if output.status.success() => return python,
        Ok(output) => format!(
            "it cannot import openai: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => format!("it cannot be run: {e}"),
    };
    panic!(
        "No Python with the `openai` SDK for the SDK compatibility test: {} ({source}): \
         {problem}.\nRun scripts/test.sh (it creates .venv and installs \
         tests/python/requirements.txt), or set SWITCHBOARD_PYTHON to an interpreter that has \
         them.",
        python.display()
    );
}

struct ScriptRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the script without blocking the runtime (the router serves it from this runtime),
/// killing it if it outlives [`SCRIPT_TIMEOUT`].
async fn run_script(python: &Path, args: &[String]) -> ScriptRun {
    let mut child = Command::new(python)
        .arg(repo().join("tests/python/sdk_compat.py"))
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
                "sdk_compat.py did not finish within {SCRIPT_TIMEOUT:?}\n--- stdout\n{stdout}\n\
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

#[tokio::test]
async fn official_python_sdk_passes_its_compatibility_checks() {
    let python = python().await;

    // The script asks for the tool call once plainly, then once streamed, in that order.
    let upstream = MockUpstream::start(vec![tool_call_completion(), tool_call_stream()]).await;
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
base_url = "{base}"
api_key_env = "UP_KEY"

[providers.up.models."tool-model"]

[routes.demo]
targets = ["local/echo"]

[routes.tools]
targets = ["up/tool-model"]
"#,
        base = upstream.url("/v1"),
    );
    let router = spawn_router(
        &toml,
        &[("PY_SDK_KEY", CLIENT_KEY), ("UP_KEY", "sk-upstream-secret")],
    )
    .await;

    let args = [
        "--base-url".to_owned(),
        router.url("/v1"),
        "--api-key".to_owned(),
        CLIENT_KEY.to_owned(),
        "--chat-model".to_owned(),
        "demo".to_owned(),
        "--tool-model".to_owned(),
        "tools".to_owned(),
    ];
    let run = run_script(&python, &args).await;
    let report = format!(
        "{} tests/python/sdk_compat.py exited with {}\n--- stdout\n{}--- stderr\n{}",
        python.display(),
        run.status,
        run.stdout,
        run.stderr
    );
    assert!(run.status.success(), "{report}");

    // Every check ran (none skipped) and passed.
    for check in [
        "chat, non-stream",
        "chat, stream with include_usage",
        "tool call, non-stream",
        "tool call, stream",
        "BadRequestError for empty messages",
        "AuthenticationError for a wrong key",
        "NotFoundError for an unknown model",
    ] {
        assert!(
            run.stdout.contains(&format!("ok   {check}")),
            "check {check:?} did not pass\n{report}"
        );
    }
    assert!(run.stdout.contains("7 passed, 0 failed"), "{report}");

    // The upstream saw exactly the two tool-call requests, plain then streamed, with the tools.
    let sent = upstream.requests();
    assert_eq!(sent.len(), 2, "{report}");
    for (recorded, stream) in sent.iter().zip([false, true]) {
        let body = recorded.json();
        assert_eq!(body["model"], "tool-model");
        assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(body["stream"].as_bool().unwrap_or(false), stream);
    }
}
