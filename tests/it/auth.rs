//! Client keys: `Authorization: Bearer <key>` against `[[keys]]` from the environment or as a
//! SHA-256 digest in the file. A wrong, missing or inactive key is a 401 `invalid_api_key`;
//! health endpoints stay open; and a key whose variable is unset never opens the router.
#![cfg(test)]

use sha2::{Digest, Sha256};

use crate::support::{
    Answer, MockUpstream, Reply, RouterHandle, chat_with, openai_error, send, spawn_router,
};

const WEB_KEY: &str = "sk-sb-web-7f3a";
const BATCH_KEY: &str = "sk-sb-batch-91c2";
const REQUEST: &str = r#"{"model":"demo","messages":[{"role":"user","content":"hi"}]}"#;

fn keyed_config() -> String {
    let digest = hex::encode(Sha256::digest(BATCH_KEY.as_bytes()));
    format!(
        r#"
[[keys]]
name = "web"
key_env = "SB_KEY_WEB"

[[keys]]
name = "batch"
sha256 = "{digest}"

[[keys]]
name = "unset"
key_env = "SB_KEY_UNSET"

[providers.local]
kind = "mock"

[routes.demo]
targets = ["local/echo"]
"#
    )
}

async fn keyed_router() -> RouterHandle {
    spawn_router(&keyed_config(), &[("SB_KEY_WEB", WEB_KEY)]).await
}

fn unauthorized(answer: &Answer) {
    let error = openai_error(answer, 401, "invalid_api_key");
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["param"].is_null());
}

#[tokio::test]
async fn a_key_from_the_environment_or_a_digest_in_the_file_is_accepted() {
    let router = keyed_router().await;
    for key in [WEB_KEY, BATCH_KEY] {
        let answer = chat_with(
            &router,
            &[("authorization", &format!("Bearer {key}"))],
            REQUEST,
        )
        .await;
        assert_eq!(answer.status, 200, "{key}: {}", answer.text());
        assert_eq!(answer.json()["choices"][0]["message"]["content"], "hi");
    }
}

#[tokio::test]
async fn wrong_missing_or_non_bearer_credentials_are_401_invalid_api_key() {
    let router = keyed_router().await;
    let basic = format!("Basic {WEB_KEY}");
    let wrong_case = format!("Bearer {}", WEB_KEY.to_uppercase());
    let prefix = format!("Bearer {}", &WEB_KEY[..WEB_KEY.len() - 1]);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("authorization", "Bearer sk-wrong")],
        vec![],
        vec![("authorization", &basic)],
        vec![("authorization", "Bearer ")],
        vec![("authorization", &wrong_case)],
        vec![("authorization", &prefix)],
        vec![("x-api-key", WEB_KEY)],
    ];
    for headers in cases {
        let answer = chat_with(&router, &headers, REQUEST).await;
        unauthorized(&answer);
        assert!(
            !answer.text().contains(WEB_KEY),
            "the error never echoes a key: {}",
            answer.text()
        );
    }
}

#[tokio::test]
async fn authentication_comes_before_anything_about_the_request() {
    let router = keyed_router().await;
    // Without a key, a bad body or an unknown model says nothing about either.
    for body in [
        "{not json",
        r#"{"model":"secret-route","messages":[{"role":"user","content":"x"}]}"#,
    ] {
        unauthorized(&chat_with(&router, &[], body).await);
    }
}

#[tokio::test]
async fn models_requires_a_key_and_health_does_not() {
    let router = keyed_router().await;
    let bearer = format!("Bearer {WEB_KEY}");

    unauthorized(&send("GET", &router.url("/v1/models"), &[], "").await);
    unauthorized(&send("GET", &router.url("/v1/models/demo"), &[], "").await);
    let listed = send(
        "GET",
        &router.url("/v1/models"),
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["object"], "list");

    for path in ["/healthz", "/readyz"] {
        let answer = send("GET", &router.url(path), &[], "").await;
        assert_eq!(answer.status, 200, "{path} is for load balancers");
    }
}

#[tokio::test]
async fn a_key_whose_variable_is_unset_is_inactive_and_does_not_open_the_router() {
    let only_unset = r#"
[[keys]]
name = "unset"
key_env = "SB_KEY_UNSET"

[providers.local]
kind = "mock"

[routes.demo]
targets = ["local/echo"]
"#;
    // Unset, and set to the empty string: neither makes the key usable nor the router open.
    for env in [&[][..], &[("SB_KEY_UNSET", "")][..]] {
        let router = spawn_router(only_unset, env).await;
        for headers in [
            vec![],
            vec![("authorization", "Bearer ")],
            vec![("authorization", "Bearer anything")],
        ] {
            unauthorized(&chat_with(&router, &headers, REQUEST).await);
        }
        unauthorized(&send("GET", &router.url("/v1/models"), &[], "").await);
    }
    // The same config with other active keys: the unset one still matches nothing.
    let router = keyed_router().await;
    unauthorized(&chat_with(&router, &[("authorization", "Bearer ")], REQUEST).await);
}

#[tokio::test]
async fn the_clients_key_is_not_forwarded_to_the_provider() {
    let upstream = MockUpstream::start(vec![Reply::json(
        200,
        r#"{"id":"c1","object":"chat.completion","created":1,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#,
    )])
    .await;
    let toml = format!(
        r#"
[[keys]]
name = "web"
key_env = "SB_KEY_WEB"

[providers.up]
kind = "openai"
base_url = "{}"
api_key_env = "UP_KEY"

[routes.fast]
targets = ["up/m1"]
"#,
        upstream.url("/v1")
    );
    let router = spawn_router(
        &toml,
        &[("SB_KEY_WEB", WEB_KEY), ("UP_KEY", "sk-upstream-secret")],
    )
    .await;

    let answer = chat_with(
        &router,
        &[("authorization", &format!("Bearer {WEB_KEY}"))],
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let received = &upstream.requests()[0];
    assert_eq!(
        received.headers["authorization"],
        "Bearer sk-upstream-secret"
    );
    for (name, value) in &received.headers {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(WEB_KEY),
            "client key leaked upstream in {name}"
        );
    }
}
