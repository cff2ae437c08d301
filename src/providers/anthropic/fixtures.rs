//! What the anthropic tests share.

use http::StatusCode;
use serde_json::Value;

use super::Anthropic;
use crate::config::Target;
use crate::openai::ChatRequest;
use crate::providers::Adapter;

pub(super) const CREATED: u64 = 1_760_000_000;

/// A target from a real config: `claude/claude-x` (no default cap) and
/// `claude/claude-capped` (max_tokens = 1000).
pub(super) fn target(model: &str) -> Target {
    let toml = r#"
[providers.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "CLAUDE_KEY"

[providers.claude.models."claude-x"]
[providers.claude.models."claude-capped"]
max_tokens = 1000
"#;
    let env = |name: &str| (name == "CLAUDE_KEY").then(|| "sk-ant-test".to_owned());
    let snapshot = crate::config::parse(toml, "test.toml", &env).unwrap();
    snapshot.route(model).unwrap().targets[0].clone()
}

pub(super) fn parse(body: &str) -> ChatRequest<'_> {
    let mut chat = ChatRequest::parse(body.as_bytes()).unwrap();
    chat.created = CREATED;
    chat
}

/// The upstream body for a client body, as JSON.
pub(super) fn translate(body: &str) -> Value {
    translate_for(body, "claude/claude-x")
}

pub(super) fn translate_for(body: &str, model: &str) -> Value {
    let request = Anthropic.request(&parse(body), &target(model)).unwrap();
    serde_json::from_slice(&request.body).unwrap()
}

/// The 400 for a client body: (param, message).
/// The param and message of the 400 a client body gets, at the front door or here.
pub(super) fn refused(body: &str) -> (String, String) {
    let error = match ChatRequest::parse(body.as_bytes()) {
        Ok(chat) => Anthropic
            .request(&chat, &target("claude/claude-x"))
            .unwrap_err(),
        Err(error) => error,
    };
    assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
    let json: Value = serde_json::from_slice(&error.body()).unwrap();
    (
        json["error"]["param"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        json["error"]["message"].as_str().unwrap().to_owned(),
    )
}

pub(super) fn with(extra: &str) -> String {
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
}
