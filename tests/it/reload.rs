//! Hot reload of `providers.toml`: every trigger (in-place write, atomic rename, ConfigMap-style
//! symlink swap, SIGHUP to the real binary, `POST /admin/reload`) moves a route to another
//! provider for the next request; requests keep the snapshot they started with while reloads
//! valid and invalid go on around them; cooldowns, rate-limit buckets and metrics of unchanged
//! providers and keys survive; invalid files change nothing and say exactly where they are
//! wrong; start-up-only settings are reported, not ignored; `--check --against` prints what a
//! file would change in a running router.
#![cfg(test)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use switchboard::config::reload::{Outcome, Trigger};

use crate::metrics::{ATTEMPTS, scrape};
use crate::support::{
    Answer, MockUpstream, Reply, RouterHandle, TempDir, chat, chat_with, eventually,
    open_chat_stream, openai_error, send, spawn_router, spawn_router_at, spawn_router_file,
    wait_for,
};

const CHAT: &str = r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#;
const RELOADS: &str = "switchboard_config_reloads_total";
const ADMIN_SECRET: &str = "sk-admin-secret";
const WEB_SECRET: &str = "sk-web-secret";
const ENV: &[(&str, &str)] = &[
    ("ADMIN_KEY", ADMIN_SECRET),
    ("WEB_KEY", WEB_SECRET),
    ("UP_KEY", "sk-upstream"),
];
const ADMIN: &[(&str, &str)] = &[("authorization", "Bearer sk-admin-secret")];
const WEB: &[(&str, &str)] = &[("authorization", "Bearer sk-web-secret")];
/// How long any one reload may take to be noticed before a test gives up.
const WITHIN: Duration = Duration::from_secs(10);

/// Mock providers `a` and `b` answering their own name, route `r` to `provider`, the watch
/// polling every `interval`, and `extra` after the `[server]` table (keys and the like).
fn routed_to(provider: &str, interval: &str, extra: &str) -> String {
    format!(
        r#"[server]
reload_interval = "{interval}"
{extra}
[providers.a]
kind = "mock"
reply = "a"

[providers.b]
kind = "mock"
reply = "b"

[routes.r]
targets = ["{provider}/m"]
"#
    )
}

/// An admin key and a plain key, both from the environment.
const KEYS: &str = r#"
[[keys]]
name = "ops"
key_env = "ADMIN_KEY"
admin = true

[[keys]]
name = "web"
key_env = "WEB_KEY"
"#;

fn provider_of(answer: &Answer) -> String {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.headers["x-switchboard-provider"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Waits until route `r` is served by `provider`.
async fn wait_served_by(router: &RouterHandle, headers: &[(&str, &str)], provider: &str) {
    eventually(
        WITHIN,
        &format!("route r served by {provider}"),
        || async move { provider_of(&chat_with(router, headers, CHAT).await) == provider },
    )
    .await;
}

fn sha256(bytes: &[u8]) -> String {
    switchboard::config::sha256_hex(bytes)
}

async fn admin_config(router: &RouterHandle) -> Value {
    let answer = send("GET", &router.url("/admin/config"), ADMIN, "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "application/json");
    answer.json()
}

/// Reloads through the router's handle and returns what happened.
async fn reload(router: &RouterHandle) -> Outcome {
    router
        .reload
        .as_ref()
        .expect("a router started from a file")
        .reload(Trigger::Admin)
        .await
        .expect("the reload task runs")
}

fn applied(outcome: Outcome) -> switchboard::config::view::Applied {
    match outcome {
        Outcome::Applied(applied) => applied,
        Outcome::Rejected(rejected) => panic!("reload rejected: {rejected:#?}"),
    }
}

// === triggers ===

#[tokio::test]
async fn an_in_place_write_switches_the_route() {
    let (router, path) = spawn_router_file(&routed_to("a", "50ms", ""), &[]).await;
    assert_eq!(provider_of(&chat(&router, CHAT).await), "a");

    std::fs::write(&path, routed_to("b", "50ms", "")).unwrap();

    wait_served_by(&router, &[], "b").await;
    let metrics = scrape(&router).await;
    assert!(metrics.value(RELOADS, &[("result", "ok")]) >= 1.0);
}

#[tokio::test]
async fn an_atomic_rename_switches_the_route() {
    let (router, path) = spawn_router_file(&routed_to("a", "50ms", ""), &[]).await;
    assert_eq!(provider_of(&chat(&router, CHAT).await), "a");

    // What editors and config-management tools do: write a new file, rename it over the old.
    let temporary = path.with_file_name(".providers.toml.tmp");
    std::fs::write(&temporary, routed_to("b", "50ms", "")).unwrap();
    std::fs::rename(&temporary, &path).unwrap();

    wait_served_by(&router, &[], "b").await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_configmap_symlink_swap_switches_the_route() {
    use std::os::unix::fs::symlink;
    // A Kubernetes ConfigMap volume: providers.toml -> ..data/providers.toml, ..data -> a
    // timestamped directory. An update writes a new directory and renames a new `..data`
    // symlink over the old one; the file itself is never written.
    let dir = TempDir::new("configmap");
    let root = dir.path();
    for (version, provider) in [("..v1", "a"), ("..v2", "b")] {
        std::fs::create_dir(root.join(version)).unwrap();
        // Same size and written together: only the resolved path tells them apart.
        std::fs::write(
            root.join(version).join("providers.toml"),
            routed_to(provider, "50ms", ""),
        )
        .unwrap();
    }
    symlink("..v1", root.join("..data")).unwrap();
    symlink("..data/providers.toml", root.join("providers.toml")).unwrap();
    let router = spawn_router_at(&root.join("providers.toml"), &[]).await;
    assert_eq!(provider_of(&chat(&router, CHAT).await), "a");

    symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();

    wait_served_by(&router, &[], "b").await;
}

#[tokio::test]
async fn the_signal_trigger_reloads_a_router_that_does_not_watch() {
    // reload_interval = "0s": no watch, so only the trigger can make the switch.
    let (router, path) = spawn_router_file(&routed_to("a", "0s", ""), &[]).await;
    std::fs::write(&path, routed_to("b", "0s", "")).unwrap();
    // A bounded negative check, the one way to show that nothing happens: a watch would have
    // seen the change within this window (the watching tests poll every 20-50 ms).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        provider_of(&chat(&router, CHAT).await),
        "a",
        "nothing watches"
    );

    assert!(router.reload.as_ref().unwrap().trigger(Trigger::Signal));

    wait_served_by(&router, &[], "b").await;
}

/// The real binary, killed when dropped, with its log in a file for failure messages.
struct Binary {
    child: Child,
    log: std::path::PathBuf,
}

impl Binary {
    fn start(config: &Path, port: u16, log: std::path::PathBuf) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--config", config.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let dir = TempDir::new("sighup");
    let path = dir.path().join("providers.toml");
    std::fs::write(&path, routed_to("a", "0s", "")).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut binary = Binary::start(&path, port, dir.path().join("switchboard.log"));
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let (url, json) = (url.as_str(), &[("content-type", "application/json")]);
    eventually(WITHIN, "the binary listens", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(provider_of(&send("POST", url, json, CHAT).await), "a");

    std::fs::write(&path, routed_to("b", "0s", "")).unwrap();
    binary.signal("HUP");

    eventually(WITHIN, "SIGHUP switches the route to b", || async move {
        provider_of(&send("POST", url, json, CHAT).await) == "b"
    })
    .await;
    assert!(
        binary.child.try_wait().unwrap().is_none(),
        "SIGHUP must not end the process"
    );
    let log = binary.log();
    assert!(log.contains("SIGHUP received"), "{log}");
    assert!(log.contains("configuration reloaded"), "{log}");
    binary.signal("TERM");
    eventually(WITHIN, "SIGTERM ends the binary", || {
        let exited = binary.child.try_wait().unwrap().is_some();
        async move { exited }
    })
    .await;
}

#[tokio::test]
async fn admin_reload_switches_the_route_and_says_what_changed() {
    let (router, path) = spawn_router_file(&routed_to("a", "0s", KEYS), ENV).await;
    assert_eq!(provider_of(&chat_with(&router, WEB, CHAT).await), "a");
    let next = routed_to("b", "0s", KEYS);
    std::fs::write(&path, &next).unwrap();

    let url = router.url("/admin/reload");
    openai_error(&send("POST", &url, &[], "").await, 401, "invalid_api_key");
    let refused = openai_error(
        &send("POST", &url, WEB, "").await,
        403,
        "admin_key_required",
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("admin = true"),
        "{refused}"
    );
    assert_eq!(provider_of(&chat_with(&router, WEB, CHAT).await), "a");

    let answer = send("POST", &url, ADMIN, "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["sha256"], sha256(next.as_bytes()));
    assert_eq!(
        report["changes"],
        serde_json::json!(["~ route r: targets [\"a/m\"] -> [\"b/m\"]"])
    );
    assert_eq!(provider_of(&chat_with(&router, WEB, CHAT).await), "b");

    let config = admin_config(&router).await;
    assert_eq!(config["sha256"], sha256(next.as_bytes()));
    assert_eq!(config["source"], path.display().to_string());
    assert!(config["last_error"].is_null(), "{config}");
    let loaded_at = config["loaded_at"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(loaded_at).is_ok(),
        "RFC 3339: {loaded_at}"
    );
    assert_eq!(config["config"]["routes"]["r"]["targets"][0], "b/m");
    assert_eq!(config["config"]["keys"]["ops"]["admin"], true);
    let text = config.to_string();
    assert!(
        !text.contains(ADMIN_SECRET) && !text.contains(WEB_SECRET),
        "no secrets in /admin/config: {text}"
    );
    let metrics = scrape(&router).await;
    assert_eq!(metrics.value(RELOADS, &[("result", "ok")]), 1.0);
    assert_eq!(metrics.get(RELOADS, &[("result", "error")]), Some(0.0));
}

#[tokio::test]
async fn admin_endpoints_are_refused_without_admin_keys_or_a_file() {
    // No keys: the router is open for chat, never for admin.
    let open = spawn_router(&routed_to("a", "1s", ""), &[]).await;
    for (method, path) in [("GET", "/admin/config"), ("POST", "/admin/reload")] {
        let error = openai_error(
            &send(method, &open.url(path), &[], "").await,
            403,
            "admin_key_required",
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("no keys configured"),
            "{error}"
        );
    }
    // Started from text, not a file: nothing to reload, but the config is shown.
    let from_text = spawn_router(&routed_to("a", "1s", KEYS), ENV).await;
    openai_error(
        &send("POST", &from_text.url("/admin/reload"), ADMIN, "").await,
        409,
        "reload_unavailable",
    );
    let config = admin_config(&from_text).await;
    assert!(config["source"].is_null());
    openai_error(
        &send("GET", &from_text.url("/admin/reload"), ADMIN, "").await,
        405,
        "method_not_allowed",
    );
}

// === one snapshot per request, under load ===

/// Version `n`: a provider and model named after it, whose reply names it five times.
fn version(n: usize) -> String {
    format!(
        r#"[server]
reload_interval = "20ms"
{KEYS}
[providers.v{n}]
kind = "mock"
reply = "v{n} v{n} v{n} v{n} v{n}"
chunk_delay = "2ms"

[routes.r]
targets = ["v{n}/m{n}"]
"#
    )
}

/// A broken file, differently broken by `n`, and unique so its hash names it.
fn broken(n: usize) -> String {
    let body = match n % 5 {
        0 => "[providers.x\nkind = \"mock\"\n".to_owned(),
        1 => {
            "[providers.x]\nkind = \"mock\"\nrpn = 5\n[routes.r]\ntargets = [\"x/m\"]\n".to_owned()
        }
        2 => "[providers.x]\nkind = \"mock\"\n[routes.r]\ntargets = [\"ghost/m\"]\n".to_owned(),
        3 => {
            "[providers.x]\nkind = \"mock\"\nrpm = 0\n[routes.r]\ntargets = [\"x/m\"]\n".to_owned()
        }
        _ => format!(
            "{KEYS}\n[[keys]]\nname = \"ops\"\nkey_env = \"WEB_KEY\"\n[providers.x]\nkind = \"mock\"\n[routes.r]\ntargets = [\"x/m\"]\n"
        ),
    };
    format!("# broken version {n}\n{body}")
}

/// Replaces the file atomically, as a deploy tool would.
fn replace(path: &Path, text: &str) {
    let temporary = path.with_file_name(".providers.toml.next");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// One chat call on a kept-alive connection, checked to come whole from one version.
async fn one_version_call(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    stream: bool,
) -> Result<(), String> {
    let body = format!(
        r#"{{"model":"r","stream":{stream},"messages":[{{"role":"user","content":"which version?"}}]}}"#
    );
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {WEB_SECRET}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let provider = response
        .headers()
        .get("x-switchboard-provider")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status != 200 {
        return Err(format!("{status}: {text}"));
    }
    let provider = provider.ok_or("no provider header")?;
    let n = provider.trim_start_matches('v');
    let reply = format!("v{n} v{n} v{n} v{n} v{n}");
    let model = format!("m{n}");
    if !stream {
        let json: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if json["choices"][0]["message"]["content"] != reply.as_str() || json["model"] != model {
            return Err(format!("{provider} answered {text}"));
        }
        return Ok(());
    }
    let events = crate::support::sse_data(&text);
    if events.last().map(String::as_str) != Some("[DONE]") {
        return Err(format!("stream without [DONE]: {text}"));
    }
    let mut content = String::new();
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).map_err(|e| e.to_string())?;
        if chunk["model"] != model.as_str() {
            return Err(format!(
                "{provider} stream has a chunk of another version: {event}"
            ));
        }
        content += chunk["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or("");
    }
    if content != reply {
        return Err(format!("{provider} streamed `{content}`"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_valid_and_invalid_under_fifty_clients_fail_no_request() {
    let (router, path) = spawn_router_file(&version(0), ENV).await;
    let router = Arc::new(router);
    let done = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let url = router.url("/v1/chat/completions");
    let mut clients = tokio::task::JoinSet::new();
    for client_index in 0..50 {
        let (done, served, url) = (done.clone(), served.clone(), url.clone());
        clients.spawn(async move {
            let client: Client<HttpConnector, Full<Bytes>> =
                Client::builder(TokioExecutor::new()).build_http();
            let mut stream = client_index % 2 == 0;
            while !done.load(Ordering::Relaxed) {
                one_version_call(&client, &url, stream).await?;
                served.fetch_add(1, Ordering::Relaxed);
                stream = !stream;
            }
            Ok::<(), String>(())
        });
    }

    for n in 1..=50 {
        let (text, valid) = if n % 2 == 0 {
            (version(n), true)
        } else {
            (broken(n), false)
        };
        let hash = sha256(text.as_bytes());
        replace(&path, &text);
        let (router, hash) = (&*router, hash.as_str());
        eventually(WITHIN, &format!("reload {n} is processed"), || async move {
            let config = admin_config(router).await;
            if valid {
                config["sha256"] == hash
            } else {
                config["last_error"]["sha256"] == hash
            }
        })
        .await;
    }
    done.store(true, Ordering::Relaxed);
    while let Some(result) = clients.join_next().await {
        result
            .unwrap()
            .unwrap_or_else(|e| panic!("a request failed: {e}"));
    }

    assert!(
        served.load(Ordering::Relaxed) >= 100,
        "the clients were busy"
    );
    assert_eq!(provider_of(&chat_with(&router, WEB, CHAT).await), "v50");
    let metrics = scrape(&router).await;
    assert!(metrics.value(RELOADS, &[("result", "ok")]) >= 25.0);
    assert!(metrics.value(RELOADS, &[("result", "error")]) >= 25.0);
}

#[tokio::test]
async fn a_removed_providers_stream_finishes_and_it_gets_no_new_requests() {
    let slow = r#"[server]
reload_interval = "0s"
[providers.a]
kind = "mock"
reply = "one two three four five"
chunk_delay = "60ms"
[providers.b]
kind = "mock"
reply = "b"
[routes.r]
targets = ["a/m"]
"#;
    let (router, path) = spawn_router_file(slow, &[]).await;
    let mut stream = open_chat_stream(
        &router,
        r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"count"}]}"#,
    )
    .await;
    assert_eq!(stream.status, 200);
    let first = stream.next_chunk().await.expect("a first chunk");

    std::fs::write(
        &path,
        "[server]\nreload_interval = \"0s\"\n[providers.b]\nkind = \"mock\"\nreply = \"b\"\n\
         [routes.r]\ntargets = [\"b/m\"]\n",
    )
    .unwrap();
    let report = applied(reload(&router).await);
    assert!(
        report.changes.contains(&"- provider a".to_owned()),
        "{report:?}"
    );
    assert_eq!(provider_of(&chat(&router, CHAT).await), "b");
    openai_error(
        &chat(
            &router,
            r#"{"model":"a/m","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await,
        404,
        "model_not_found",
    );

    let mut text = String::from_utf8(first.to_vec()).unwrap();
    text += &stream.rest().await;
    let events = crate::support::sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|event| serde_json::from_str::<Value>(event).unwrap())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "one two three four five");
}

// === state that survives ===

#[tokio::test]
async fn a_cooldown_survives_an_unrelated_reload_and_resets_when_the_upstream_changes() {
    let a = MockUpstream::start(vec![
        Reply::json(
            503,
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        )
        .header("retry-after", "60"),
        Reply::json(200, &completion("a")),
    ])
    .await;
    let a2 = MockUpstream::start(vec![Reply::json(200, &completion("a2"))]).await;
    let file = |a_url: &str, attempts: u32| {
        format!(
            r#"[server]
reload_interval = "0s"
[routing]
max_attempts = {attempts}
[providers.a]
kind = "openai"
base_url = "{a_url}"
api_key_env = "UP_KEY"
[providers.b]
kind = "mock"
reply = "b"
[routes.r]
targets = ["a/m", "b/m"]
"#
        )
    };
    let (router, path) = spawn_router_file(&file(&a.url("/v1"), 3), ENV).await;
    assert_eq!(
        provider_of(&chat(&router, CHAT).await),
        "b",
        "a failed over"
    );
    assert_eq!(a.calls(), 1);

    std::fs::write(&path, file(&a.url("/v1"), 4)).unwrap();
    applied(reload(&router).await);
    assert_eq!(provider_of(&chat(&router, CHAT).await), "b");
    assert_eq!(
        a.calls(),
        1,
        "a is still cooling down: skipped without a call"
    );
    let metrics = scrape(&router).await;
    assert_eq!(
        metrics.value(ATTEMPTS, &[("outcome", "unavailable"), ("provider", "a")]),
        1.0,
        "metrics survive too"
    );

    std::fs::write(&path, file(&a2.url("/v1"), 4)).unwrap();
    applied(reload(&router).await);
    assert_eq!(
        provider_of(&chat(&router, CHAT).await),
        "a",
        "a new base_url is another upstream: no inherited cooldown"
    );
    assert_eq!((a.calls(), a2.calls()), (1, 1));
}

fn completion(who: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-{who}","object":"chat.completion","created":1700000000,"model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":"{who}"}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}}}"#
    )
}

#[tokio::test]
async fn rate_limit_buckets_survive_unless_their_limit_changes() {
    let file = |a_rpm: u32, b_reply: &str| {
        format!(
            r#"[server]
reload_interval = "0s"
[[keys]]
name = "web"
key_env = "WEB_KEY"
rpm = 4
[providers.a]
kind = "mock"
reply = "a"
rpm = {a_rpm}
[providers.b]
kind = "mock"
reply = "{b_reply}"
[routes.r]
targets = ["a/m", "b/m"]
"#
        )
    };
    let (router, path) = spawn_router_file(&file(1, "b"), ENV).await;
    assert_eq!(provider_of(&chat_with(&router, WEB, CHAT).await), "a");

    std::fs::write(&path, file(1, "b, reloaded")).unwrap();
    applied(reload(&router).await);
    let second = chat_with(&router, WEB, CHAT).await;
    assert_eq!(
        provider_of(&second),
        "b",
        "a's one request a minute is used"
    );
    assert_eq!(
        second.json()["choices"][0]["message"]["content"],
        "b, reloaded"
    );

    std::fs::write(&path, file(5, "b, reloaded")).unwrap();
    applied(reload(&router).await);
    assert_eq!(
        provider_of(&chat_with(&router, WEB, CHAT).await),
        "a",
        "a changed rpm applies to the next request"
    );

    // The key's own bucket (4 a minute) was never changed: its fifth request is refused.
    assert_eq!(chat_with(&router, WEB, CHAT).await.status, 200);
    openai_error(
        &chat_with(&router, WEB, CHAT).await,
        429,
        "rate_limit_exceeded",
    );
}

// === invalid files ===

#[tokio::test]
async fn invalid_files_change_nothing_and_say_where_they_are_wrong() {
    let good = routed_to("a", "20ms", KEYS);
    let (router, path) = spawn_router_file(&good, ENV).await;
    let with_keys = |rest: &str| format!("{KEYS}\n{rest}");
    // (file, table, field, words the reason must contain)
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (
            with_keys("[providers.a\nkind = \"mock\"\n"),
            "providers.a",
            "",
            "",
        ),
        (
            with_keys("[providers.a]\nkind = \"mock\"\nrpn = 5\n[routes.r]\ntargets = [\"a/m\"]\n"),
            "providers.a",
            "rpn",
            "rpn",
        ),
        (
            with_keys("[providers.a]\nkind = \"mock\"\n[routes.r]\ntargets = [\"ghost/m\"]\n"),
            "routes.r",
            "targets",
            "`ghost`, which is not defined",
        ),
        (
            with_keys("[providers.a]\nkind = \"mock\"\nrpm = 0\n[routes.r]\ntargets = [\"a/m\"]\n"),
            "providers.a",
            "rpm",
            "leave it out for no limit",
        ),
        (
            with_keys(
                "[providers.a]\nkind = \"mock\"\nrpm = -5\n[routes.r]\ntargets = [\"a/m\"]\n",
            ),
            "providers.a",
            "rpm",
            "got -5",
        ),
        (
            with_keys(
                "[providers.a]\nkind = \"mock\"\nerror_rate = -0.5\n[routes.r]\ntargets = [\"a/m\"]\n",
            ),
            "providers.a",
            "error_rate",
            "between 0 and 1",
        ),
        (
            format!(
                "{KEYS}\n[[keys]]\nname = \"web\"\nsha256 = \"{}\"\n\
                 [providers.a]\nkind = \"mock\"\n[routes.r]\ntargets = [\"a/m\"]\n",
                "ab".repeat(32)
            ),
            "keys[2]",
            "name",
            "names must be unique",
        ),
        (
            with_keys(
                "[routing]\nattempt_timeout = \"soon\"\n[providers.a]\nkind = \"mock\"\n\
                 [routes.r]\ntargets = [\"a/m\"]\n",
            ),
            "routing",
            "attempt_timeout",
            "write e.g.",
        ),
        (
            String::new(),
            "top level",
            "",
            "empty or only partly written",
        ),
    ];
    let mut errors_before = scrape(&router).await.value(RELOADS, &[("result", "error")]);
    for (text, table, field, words) in &cases {
        std::fs::write(&path, text).unwrap();
        let last_error = wait_for_rejection(&router, text).await;
        let first = &last_error["errors"][0];
        assert_eq!(
            (first["table"].as_str(), first["field"].as_str()),
            (Some(*table), Some(*field)),
            "{text}\n{last_error:#}"
        );
        assert_eq!(first["file"], path.display().to_string());
        assert!(
            first["reason"].as_str().unwrap().contains(words),
            "`{words}` in {first}"
        );
        if !text.is_empty() {
            assert!(first["line"].is_u64(), "a line number: {first}");
        }
        assert_eq!(last_error["trigger"], "watch");
        assert!(humantime::parse_rfc3339(last_error["at"].as_str().unwrap()).is_ok());

        // The running configuration did not move.
        assert_eq!(provider_of(&chat_with(&router, WEB, CHAT).await), "a");
        let config = admin_config(&router).await;
        assert_eq!(config["sha256"], sha256(good.as_bytes()));
        let errors = scrape(&router).await.value(RELOADS, &[("result", "error")]);
        assert!(
            errors > errors_before,
            "config_reloads_total{{result=\"error\"}} moves"
        );
        errors_before = errors;

        // The admin endpoint says the same, at once, with a 422.
        let refused = openai_error(
            &send("POST", &router.url("/admin/reload"), ADMIN, "").await,
            422,
            "config_invalid",
        );
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains(&format!("[{table}]")), "{message}");
        assert!(message.contains("keeps serving"), "{message}");
    }

    // A good file clears the error.
    std::fs::write(&path, routed_to("b", "20ms", KEYS)).unwrap();
    wait_served_by(&router, WEB, "b").await;
    assert!(admin_config(&router).await["last_error"].is_null());
}

/// Waits until the watch has rejected `text` and returns `/admin/config`'s `last_error`.
async fn wait_for_rejection(router: &RouterHandle, text: &str) -> Value {
    let hash = sha256(text.as_bytes());
    let what = format!("the watch rejects:\n{text}");
    wait_for(WITHIN, &what, || async {
        let last_error = admin_config(router).await["last_error"].clone();
        (last_error["sha256"] == hash.as_str()).then_some(last_error)
    })
    .await
}

// === start-up-only settings ===

#[tokio::test]
async fn restart_only_settings_are_reported_and_the_rest_applies() {
    let (router, path) = spawn_router_file(&routed_to("a", "0s", KEYS), ENV).await;
    let changed = routed_to("b", "0s", KEYS)
        .replace("[server]\n", "[server]\nlisten = \"127.0.0.1:9\"\n")
        + "\n[upstream]\nconnect_timeout = \"7s\"\n";
    std::fs::write(&path, &changed).unwrap();

    let report = applied(reload(&router).await);
    let pending: Vec<&str> = report
        .restart_pending
        .iter()
        .map(|p| p.setting.as_str())
        .collect();
    assert_eq!(pending, ["server.listen", "upstream.connect_timeout"]);
    assert_eq!(
        provider_of(&chat_with(&router, WEB, CHAT).await),
        "b",
        "the live part applies; the router still listens where it did"
    );
    let config = admin_config(&router).await;
    assert_eq!(config["restart"]["running"]["listen"], "127.0.0.1:8080");
    assert_eq!(config["restart"]["running"]["connect_timeout"], "5s");
    let pending = &config["restart"]["pending"];
    assert_eq!(pending[0]["setting"], "server.listen");
    assert_eq!(pending[0]["file"], "127.0.0.1:9");
    assert_eq!(pending[1]["setting"], "upstream.connect_timeout");
    assert_eq!(pending[1]["file"], "7s");
}

// === --check --against ===

/// Runs the built binary off the runtime (the router under test runs on it).
async fn switchboard(
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn check_against_a_running_router_prints_what_would_change() {
    let running = format!(
        r#"[server]
reload_interval = "1s"
{KEYS}
[providers.a]
kind = "mock"
rpm = 1
[providers.b]
kind = "mock"
[providers.c]
kind = "mock"
[routes.r]
targets = ["a/m"]
[routes.old]
targets = ["c/m"]
"#
    );
    let (router, path) = spawn_router_file(&running, ENV).await;
    let dir = TempDir::new("against");
    let next = dir.path().join("next.toml");
    std::fs::write(
        &next,
        format!(
            r#"[server]
listen = "127.0.0.1:9"
reload_interval = "1s"
{KEYS}
[providers.a]
kind = "mock"
rpm = 2
[providers.b]
kind = "mock"
[providers.d]
kind = "mock"
[routes.r]
targets = ["b/m"]
"#
        ),
    )
    .unwrap();
    let base = format!("http://{}", router.addr);
    let with_key = vec![("SWITCHBOARD_ADMIN_KEY", ADMIN_SECRET)];
    let check = |file: &Path, url: &str| {
        vec![
            "--config".to_owned(),
            file.display().to_string(),
            "--check".to_owned(),
            "--against".to_owned(),
            url.to_owned(),
        ]
    };

    let output = switchboard(check(&next, &base), with_key.clone()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        "is valid",
        &format!("against {base}"),
        "~ provider a: rpm 1 -> 2",
        "- provider c",
        "+ provider d (kind mock)",
        "~ route r: targets [\"a/m\"] -> [\"b/m\"]",
        "- route old",
        "needs a restart",
        "! server.listen: 127.0.0.1:8080 -> 127.0.0.1:9",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    assert!(!stdout.contains(ADMIN_SECRET) && !stdout.contains(WEB_SECRET));

    // The running file itself: nothing to change.
    let same = switchboard(check(&path, &base), with_key.clone()).await;
    let stdout = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("the router runs this exact file"),
        "{stdout}"
    );

    // A key that is not an admin key, given on the command line: refused, nothing compared.
    let mut args = check(&next, &base);
    args.extend(["--key".to_owned(), WEB_SECRET.to_owned()]);
    let refused = switchboard(args, vec![]).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("403") && stderr.contains("admin = true"),
        "{stderr}"
    );

    // An invalid file fails the check before anything is fetched.
    std::fs::write(&next, "[providers.a]\nkind = \"mock\"\nrpm = 0\n").unwrap();
    let invalid = switchboard(check(&next, &base), with_key).await;
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert_eq!(invalid.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[providers.a] rpm"), "{stderr}");
}

#[tokio::test]
async fn a_paid_transaction_stays_paid_across_a_reload() {
    let priced = |reply: &str| {
        format!(
            "[server]\nreload_interval = \"0s\"\n\n[providers.a]\nkind = \"mock\"\nreply = \"{reply}\"\n\n\
             [providers.a.models.m]\nper_transaction = 0.01\ncurrency = \"CNY\"\n\n\
             [routes.r]\ntargets = [\"a/m\"]\n"
        )
    };
    let (router, path) = spawn_router_file(&priced("first"), &[]).await;
    let order = [("x-transaction-id", "order-42")];
    let confirm = chat_with(&router, &order, CHAT).await;
    let paid = confirm.headers["x-switchboard-cost"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(paid.starts_with("0.01") && paid.ends_with(" CNY"), "{paid}");

    std::fs::write(&path, priced("second")).unwrap();
    applied(reload(&router).await);

    let commit = chat_with(&router, &order, CHAT).await;
    assert_eq!(commit.json()["choices"][0]["message"]["content"], "second");
    let cost = commit.headers["x-switchboard-cost"].to_str().unwrap();
    assert!(
        cost.starts_with("0.000000000"),
        "the fee was paid before the reload: {cost}"
    );
}
