//! The shipped `providers.toml`: valid on a fresh machine with no keys, `demo` answers end to
//! end from the built-in mock, and `switchboard --check` tells an operator what is enabled and
//! why not, or exactly where a broken file is wrong.
#![cfg(test)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{chat, send, spawn_router};

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.toml")
}

fn shipped_text() -> String {
    std::fs::read_to_string(shipped_path()).unwrap()
}

/// Runs the built binary with `args`, with exactly `env` as its environment.
fn switchboard(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn the_shipped_file_is_valid_with_an_empty_environment() {
    let snapshot = switchboard::config::parse(&shipped_text(), "providers.toml", &|_| None)
        .unwrap_or_else(|e| panic!("shipped providers.toml is invalid:\n{e}"));

    let demo = snapshot.route("demo").expect("the demo route");
    assert!(!demo.direct);
    assert_eq!(demo.targets.len(), 1);
    let target = &demo.targets[0];
    assert_eq!(&*target.label, "local/echo");
    assert_eq!(
        target.provider.kind,
        switchboard::config::ProviderKind::Mock
    );
    assert!(
        target.provider.disabled.is_none(),
        "the mock needs no key: {:?}",
        target.provider.disabled
    );
    // Every real provider is off without its key, and says which variable is missing.
    for (name, provider) in &snapshot.providers {
        if provider.kind == switchboard::config::ProviderKind::Mock {
            continue;
        }
        let reason = provider
            .disabled
            .as_deref()
            .unwrap_or_else(|| panic!("{name} is enabled without a key"));
        assert!(reason.contains("_API_KEY"), "{name}: {reason}");
    }
    assert!(
        snapshot.keys.is_empty(),
        "the shipped router starts open, and says so"
    );
}

#[tokio::test]
async fn demo_answers_end_to_end_from_the_shipped_file() {
    let router = spawn_router(&shipped_text(), &[]).await;

    let answer = chat(
        &router,
        r#"{"model":"demo","messages":[{"role":"user","content":"Hello, switchboard"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "Hello, switchboard"
    );
    assert_eq!(answer.headers["x-switchboard-provider"], "local");
    assert_eq!(answer.headers["x-switchboard-model"], "echo");

    let stream = chat(
        &router,
        r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"stream me"}]}"#,
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.sse_data().last().map(String::as_str), Some("[DONE]"));

    // A route whose providers have no keys answers fast and says why.
    let chat_route = chat(
        &router,
        r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(chat_route.status, 503, "{}", chat_route.text());
    let message = chat_route.error()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("DASHSCOPE_API_KEY"), "{message}");

    let models = send("GET", &router.url("/v1/models"), &[], "").await;
    let ids: Vec<String> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&"demo".to_owned()), "{ids:?}");
    assert!(ids.contains(&"local/echo".to_owned()), "{ids:?}");
    assert!(
        !ids.contains(&"qwen/qwen-max".to_owned()),
        "disabled providers' targets are not advertised: {ids:?}"
    );
}

#[test]
fn check_prints_each_provider_enabled_or_disabled_and_why() {
    let path = shipped_path();
    let output = switchboard(
        &["--config", path.to_str().unwrap(), "--check"],
        &[("MISTRAL_API_KEY", "sk-mistral-test")],
    );

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    for line in [
        "local (kind mock): enabled",
        "mistral (kind mistral): enabled",
        "qwen (kind qwen): disabled: $DASHSCOPE_API_KEY is not set",
        "alipay (kind qwen): disabled: $ALIPAY_AI_API_KEY is not set",
        "claude (kind anthropic): disabled: $ANTHROPIC_API_KEY is not set",
        "gemini (kind gemini): disabled: $GEMINI_API_KEY is not set",
        "demo [priority] -> local/echo",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    assert!(
        stdout.contains("OPEN"),
        "warns that no keys are configured:\n{stdout}"
    );
    assert!(
        !stdout.contains("sk-mistral-test"),
        "--check never prints a secret:\n{stdout}"
    );
}

#[test]
fn check_on_a_broken_file_exits_1_naming_file_table_and_field() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let path = std::env::temp_dir().join(format!(
        "switchboard-check-{}-{nanos}.toml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        "[routing]\nattempt_timeout = \"30s\"\n\n[providers.up]\nkind = \"openai\"\nbase_url = \"ftp://example.com\"\n",
    )
    .unwrap();

    let output = switchboard(&["--config", path.to_str().unwrap(), "--check"], &[]);
    let _ = std::fs::remove_file(&path);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("is valid"), "{stdout}");
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:6: [providers.up] base_url:")),
        "file, line, table and field:\n{stderr}"
    );
    assert!(stderr.contains("ftp://example.com"), "{stderr}");
}
