//! The secret-free picture of a configuration: what `GET /admin/config` shows, what a reload
//! logs as its changes, and what `switchboard --check --against` compares.
//!
//! A view holds only what the file says. It never holds a secret, a key digest, or anything
//! that depends on the environment (whether a key variable is set), so a file checked on a
//! build machine without the production secrets compares cleanly with the running router.
//! Settings that only take effect at start-up are kept apart in [`RestartOnly`], because the
//! router keeps running with the values it started with whatever a later file says.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::logging::LogFormat;

use super::{ConfigError, Named, Payment, Provider, Route, Snapshot, Strategy};

/// Everything `GET /admin/config` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminConfig {
    /// The file the router reloads from; `None` when it was started from text (tests).
    pub source: Option<String>,
    /// SHA-256 of the running file's bytes, in hex.
    pub sha256: String,
    /// When the running configuration was loaded (RFC 3339).
    pub loaded_at: String,
    /// The last reload that failed, while no later reload has succeeded.
    pub last_error: Option<ReloadError>,
    /// Settings that only take effect at start-up.
    pub restart: RestartStatus,
    /// The running configuration.
    pub config: ConfigView,
}

/// Start-up-only settings: what is in effect, and what the running file would change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RestartStatus {
    /// The values the process started with, which stay in effect until a restart.
    pub running: RestartOnly,
    /// Settings whose value in the running file differs from `running`.
    pub pending: Vec<Pending>,
}

/// A rejected reload, as logged and shown by `GET /admin/config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadError {
    /// When it happened (RFC 3339).
    pub at: String,
    /// What asked for the reload: `watch`, `signal` or `admin`.
    pub trigger: String,
    /// SHA-256 of the rejected file, when it could be read.
    pub sha256: Option<String>,
    /// Every problem, each with file, line, table and field.
    pub errors: Vec<ConfigError>,
}

/// A reload that took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// SHA-256 of the file now running.
    pub sha256: String,
    /// What changed, one line each (empty when the file was the same).
    pub changes: Vec<String>,
    /// Start-up-only settings the file changes, which wait for a restart.
    pub restart_pending: Vec<Pending>,
}

/// A start-up-only setting whose value in the file differs from the one in effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// `table.field`, e.g. `server.listen`.
    pub setting: String,
    /// The value in effect.
    pub running: String,
    /// The value in the file.
    pub file: String,
}

/// The settings read once at start-up: the listener, the process log's format, the shared
/// upstream client and the usage log's writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartOnly {
    /// `server.listen`.
    pub listen: String,
    /// `upstream.connect_timeout`.
    pub connect_timeout: String,
    /// `upstream.pool_idle_timeout`.
    pub pool_idle_timeout: String,
    /// `[usage_log]`: path, bodies and buffer, or `off`.
    #[serde(default)]
    pub usage_log: String,
    /// `server.header_read_timeout`.
    #[serde(default)]
    pub header_read_timeout: String,
    /// `server.idle_timeout`.
    #[serde(default)]
    pub idle_timeout: String,
    /// `server.max_connections`.
    #[serde(default)]
    pub max_connections: String,
    /// `server.max_inflight`.
    #[serde(default)]
    pub max_inflight: String,
    /// `server.log_format` (a router that predates it writes text).
    #[serde(default = "text_log_format")]
    pub log_format: String,
}

/// The log format of a router whose view does not name one.
fn text_log_format() -> String {
    LogFormat::Text.as_str().to_owned()
}

impl RestartOnly {
    /// The start-up-only settings a snapshot names.
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            listen: snapshot.server.listen.to_string(),
            log_format: snapshot.server.log_format.as_str().to_owned(),
            connect_timeout: duration(snapshot.upstream.connect_timeout),
            pool_idle_timeout: duration(snapshot.upstream.pool_idle_timeout),
            usage_log: snapshot.usage_log.as_ref().map_or_else(
                || "off".to_owned(),
                |log| {
                    format!(
                        "path {}, include_bodies {}, buffer {}",
                        log.path.display(),
                        log.include_bodies,
                        log.buffer
                    )
                },
            ),
            header_read_timeout: duration(snapshot.server.header_read_timeout),
            idle_timeout: duration(snapshot.server.idle_timeout),
            max_connections: snapshot.server.max_connections.to_string(),
            max_inflight: snapshot.server.max_inflight.to_string(),
        }
    }

    /// The settings where `file` differs from these (the running ones).
    pub fn pending(&self, file: &RestartOnly) -> Vec<Pending> {
        [
            ("server.listen", &self.listen, &file.listen),
            ("server.log_format", &self.log_format, &file.log_format),
            (
                "upstream.connect_timeout",
                &self.connect_timeout,
                &file.connect_timeout,
            ),
            (
                "upstream.pool_idle_timeout",
                &self.pool_idle_timeout,
                &file.pool_idle_timeout,
            ),
            ("usage_log", &self.usage_log, &file.usage_log),
            (
                "server.header_read_timeout",
                &self.header_read_timeout,
                &file.header_read_timeout,
            ),
            (
                "server.idle_timeout",
                &self.idle_timeout,
                &file.idle_timeout,
            ),
            (
                "server.max_connections",
                &self.max_connections,
                &file.max_connections,
            ),
            (
                "server.max_inflight",
                &self.max_inflight,
                &file.max_inflight,
            ),
        ]
        .into_iter()
        .filter(|(_, running, file)| running != file)
        .map(|(setting, running, file)| Pending {
            setting: setting.to_owned(),
            running: running.clone(),
            file: file.clone(),
        })
        .collect()
    }
}

/// What a file configures, minus secrets and environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    /// `[server]`, the live part.
    pub server: ServerView,
    /// `[routing]`.
    pub routing: RoutingView,
    /// `[[keys]]` by name.
    pub keys: BTreeMap<String, KeyView>,
    /// `[providers.*]` by name.
    pub providers: BTreeMap<String, ProviderView>,
    /// `[routes.*]` by name (direct `provider/model` targets are not listed).
    pub routes: BTreeMap<String, RouteView>,
    /// The start-up-only settings as the file writes them.
    pub restart_only: RestartOnly,
}

/// The `[server]` settings that apply to the next request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Drain time at shutdown.
    pub shutdown_grace: String,
    /// File watch period (`0s`: off).
    pub reload_interval: String,
    /// Browser origins allowed to call the router.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
}

/// `[routing]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutingView {
    /// Attempts per request.
    pub max_attempts: u32,
    /// Cooldown without `Retry-After`.
    pub default_cooldown: String,
    /// Longest cooldown.
    pub max_cooldown: String,
    /// Cooldown after billing or credential failures.
    pub account_cooldown: String,
    /// One attempt, until headers.
    pub attempt_timeout: String,
    /// The whole request.
    pub request_timeout: String,
    /// Longest silence in a stream.
    pub stream_idle_timeout: String,
}

/// A client key, without its secret or digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    /// May use `/admin/*`.
    pub admin: bool,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u32>,
    /// Where the secret comes from (`secret in $VAR` or `sha256 in file`).
    pub secret_from: String,
}

/// A provider, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderView {
    /// Wire format.
    pub kind: String,
    /// Base URL (empty for `mock`).
    pub base_url: String,
    /// The variable its key is read from.
    pub api_key_env: Option<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u32>,
    /// Forwarded response-header prefixes.
    pub forward_headers: Vec<String>,
    /// Declared models and their output cap.
    pub models: BTreeMap<String, Option<u32>>,
    /// The built-in responder's settings, for `mock`.
    pub mock: Option<MockView>,
    /// `"a2m"` for a pay-per-call seller; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<String>,
}

/// A `mock` provider's behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MockView {
    /// Fixed reply, or `None` to echo.
    pub reply: Option<String>,
    /// Delay before headers.
    pub latency: String,
    /// Delay between stream chunks.
    pub chunk_delay: String,
    /// Fraction of simulated failures.
    pub error_rate: f64,
    /// Status of simulated failures.
    pub error_status: u16,
}

/// A named route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// `priority` or `weighted`.
    pub strategy: String,
    /// `provider/model`, with ` (weight N)` under `weighted`.
    pub targets: Vec<String>,
    /// Whether a timeout may be retried on another target.
    pub failover_on_timeout: bool,
    /// `"quote"` or `"failover"`: what a price quote from a target does.
    #[serde(default)]
    pub on_payment_required: String,
}

impl ConfigView {
    /// The view of a snapshot.
    pub fn of(snapshot: &Snapshot) -> Self {
        let routing = &snapshot.routing;
        Self {
            server: ServerView {
                max_body: snapshot.server.max_body,
                shutdown_grace: duration(snapshot.server.shutdown_grace),
                reload_interval: duration(snapshot.server.reload_interval),
                cors_allowed_origins: snapshot
                    .server
                    .cors_allowed_origins
                    .iter()
                    .filter_map(|origin| origin.to_str().ok().map(str::to_owned))
                    .collect(),
            },
            routing: RoutingView {
                max_attempts: routing.max_attempts,
                default_cooldown: duration(routing.default_cooldown),
                max_cooldown: duration(routing.max_cooldown),
                account_cooldown: duration(routing.account_cooldown),
                attempt_timeout: duration(routing.attempt_timeout),
                request_timeout: duration(routing.request_timeout),
                stream_idle_timeout: duration(routing.stream_idle_timeout),
            },
            keys: snapshot
                .keys
                .iter()
                .map(|key| {
                    let view = KeyView {
                        admin: key.admin,
                        rpm: key.limits.rpm.map(|n| n.get()),
                        tpm: key.limits.tpm.map(|n| n.get()),
                        secret_from: key.source.clone(),
                    };
                    (key.name.to_string(), view)
                })
                .collect(),
            providers: snapshot
                .providers
                .iter()
                .map(|(name, provider)| (name.clone(), provider_view(provider)))
                .collect(),
            routes: snapshot
                .routes
                .values()
                .filter(|route| !route.direct)
                .map(|route| (route.name.to_string(), route_view(route)))
                .collect(),
            restart_only: RestartOnly::of(snapshot),
        }
    }
}

fn provider_view(provider: &Provider) -> ProviderView {
    ProviderView {
        kind: provider.kind.as_str().to_owned(),
        base_url: provider.base_url.clone(),
        api_key_env: provider.api_key_env.clone(),
        rpm: provider.limits.rpm.map(|n| n.get()),
        tpm: provider.limits.tpm.map(|n| n.get()),
        forward_headers: provider.forward_headers.clone(),
        models: provider
            .models
            .iter()
            .map(|(name, model)| (name.clone(), model.max_tokens))
            .collect(),
        mock: provider.mock.as_ref().map(|mock| MockView {
            reply: mock.reply.clone(),
            latency: duration(mock.latency),
            chunk_delay: duration(mock.chunk_delay),
            error_rate: mock.error_rate,
            error_status: mock.error_status.as_u16(),
        }),
        payment: (provider.payment != Payment::None).then(|| provider.payment.name().to_owned()),
    }
}

fn route_view(route: &Route) -> RouteView {
    RouteView {
        strategy: route.strategy.name().to_owned(),
        targets: route
            .targets
            .iter()
            .map(|target| match route.strategy {
                Strategy::Priority => target.label.to_string(),
                Strategy::Weighted => format!("{} (weight {})", target.label, target.weight),
            })
            .collect(),
        failover_on_timeout: route.failover_on_timeout,
        on_payment_required: route.on_payment_required.name().to_owned(),
    }
}

/// A duration as people write it in `providers.toml` (`30s`, `1m 30s`, `500ms`, `0s`).
pub fn duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

/// A time in RFC 3339, to the millisecond, UTC.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// What changes going from `running` to `file`, one line per difference, for people:
/// `+ provider b (kind openai, https://…)`, `- route old`, `~ provider a: rpm 1 -> 2`,
/// `~ routing.max_attempts: 3 -> 4`. Start-up-only settings are left to
/// [`RestartOnly::pending`].
pub fn changes(running: &ConfigView, file: &ConfigView) -> Vec<String> {
    let mut out = Vec::new();
    for (section, running, file) in [
        ("server", json(&running.server), json(&file.server)),
        ("routing", json(&running.routing), json(&file.routing)),
    ] {
        for (path, old, new) in field_changes(section, &running, &file) {
            out.push(format!("~ {path}: {old} -> {new}"));
        }
    }
    named_changes(
        "provider",
        &running.providers,
        &file.providers,
        &mut out,
        |p| {
            if p.base_url.is_empty() {
                format!("kind {}", p.kind)
            } else {
                format!("kind {}, {}", p.kind, p.base_url)
            }
        },
    );
    named_changes("route", &running.routes, &file.routes, &mut out, |r| {
        format!("{} -> {}", r.strategy, r.targets.join(", "))
    });
    named_changes("key", &running.keys, &file.keys, &mut out, |k| {
        let role = if k.admin { "admin" } else { "client" };
        format!("{role}, {}", k.secret_from)
    });
    out
}

/// Added, removed and changed entries of a map of named things; `describe` sums up an added
/// one.
fn named_changes<T: Serialize>(
    what: &str,
    running: &BTreeMap<String, T>,
    file: &BTreeMap<String, T>,
    out: &mut Vec<String>,
    describe: impl Fn(&T) -> String,
) {
    for (name, entry) in file {
        let Some(before) = running.get(name) else {
            out.push(format!("+ {what} {name} ({})", describe(entry)));
            continue;
        };
        for (path, old, new) in field_changes("", &json(before), &json(entry)) {
            out.push(format!("~ {what} {name}: {path} {old} -> {new}"));
        }
    }
    for name in running.keys().filter(|name| !file.contains_key(*name)) {
        out.push(format!("- {what} {name}"));
    }
}

/// Differences between two JSON values as `(path, old, new)`, descending into objects.
fn field_changes(path: &str, running: &Value, file: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    collect_changes(path, running, file, &mut out);
    out
}

fn collect_changes(
    path: &str,
    running: &Value,
    file: &Value,
    out: &mut Vec<(String, String, String)>,
) {
    if let (Value::Object(before), Value::Object(after)) = (running, file) {
        let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let missing = Value::Null;
            let old = before.get(name).unwrap_or(&missing);
            let new = after.get(name).unwrap_or(&missing);
            collect_changes(&child, old, new, out);
        }
    } else if running != file {
        out.push((path.to_owned(), running.to_string(), file.to_string()));
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    // Views hold only strings, numbers, booleans and string-keyed maps, which always convert.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The report of `switchboard --check --against`: how `file` differs from what `running`
/// (the router's `GET /admin/config`) runs.
pub fn compare(running: &AdminConfig, file: &Snapshot) -> String {
    let source = running.source.as_deref().unwrap_or("text, not a file");
    let mut out = format!(
        "running: sha256 {} loaded at {} from {source}\n",
        running.sha256, running.loaded_at
    );
    out += &format!("file:    sha256 {} ({})\n", file.sha256, file.file);
    if let Some(error) = &running.last_error {
        out += &format!(
            "note: the router's last reload ({}, {}) was rejected; it still runs the version above\n",
            error.trigger, error.at
        );
    }
    let view = ConfigView::of(file);
    let changes = changes(&running.config, &view);
    if changes.is_empty() {
        out += if running.sha256 == file.sha256 {
            "no changes: the router runs this exact file\n"
        } else {
            "no changes to providers, routes, keys or settings (only comments or layout differ)\n"
        };
    } else {
        out += &format!("{} change(s) a reload would make:\n", changes.len());
        for line in &changes {
            out += &format!("  {line}\n");
        }
    }
    let pending = running.restart.running.pending(&view.restart_only);
    if !pending.is_empty() {
        out += "needs a restart (a reload keeps the running value):\n";
        for setting in &pending {
            out += &format!(
                "  ! {}: {} -> {}\n",
                setting.setting, setting.running, setting.file
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(text: &str) -> Snapshot {
        let env = |name: &str| (name == "K").then(|| "secret-value".to_owned());
        super::super::parse(text, "test.toml", &env).unwrap()
    }

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[[keys]]
name = "web"
key_env = "K"
[providers.a]
kind = "mock"
rpm = 1
[providers.c]
kind = "mock"
[routes.r]
targets = ["a/m"]
[routes.old]
targets = ["c/m"]
"#;

    #[test]
    fn changes_name_added_removed_and_changed_fields() {
        let before = ConfigView::of(&snapshot(BASE));
        let after = ConfigView::of(&snapshot(
            r#"
[server]
listen = "0.0.0.0:9000"
[routing]
max_attempts = 5
[[keys]]
name = "web"
key_env = "K"
admin = true
[providers.a]
kind = "mock"
rpm = 2
[providers.b]
kind = "mock"
[routes.r]
targets = ["b/m"]
"#,
        ));
        let lines = changes(&before, &after);
        for expected in [
            "~ routing.max_attempts: 3 -> 5",
            "~ provider a: rpm 1 -> 2",
            "+ provider b (kind mock)",
            "- provider c",
            "~ route r: targets [\"a/m\"] -> [\"b/m\"]",
            "- route old",
            "~ key web: admin false -> true",
        ] {
            assert!(
                lines.iter().any(|line| line.starts_with(expected)),
                "missing `{expected}` in {lines:#?}"
            );
        }
        assert!(
            !lines.iter().any(|line| line.contains("listen")),
            "restart-only settings are reported apart: {lines:#?}"
        );
        let pending = before.restart_only.pending(&after.restart_only);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].setting, "server.listen");
        assert_eq!(pending[0].file, "0.0.0.0:9000");
    }

    #[test]
    fn log_format_is_a_restart_only_setting() {
        let before = ConfigView::of(&snapshot(BASE));
        assert_eq!(before.restart_only.log_format, "text");
        let after = ConfigView::of(&snapshot(
            &BASE.replace("[server]\n", "[server]\nlog_format = \"json\"\n"),
        ));
        assert!(changes(&before, &after).is_empty());
        let pending = before.restart_only.pending(&after.restart_only);
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].setting.as_str(), pending[0].file.as_str()),
            ("server.log_format", "json")
        );
        // A router from before the setting existed reports no format: it writes text.
        let mut older = serde_json::to_value(&before.restart_only).unwrap();
        older.as_object_mut().unwrap().remove("log_format");
        let older: RestartOnly = serde_json::from_value(older).unwrap();
        assert!(older.pending(&before.restart_only).is_empty());
    }

    #[test]
    fn views_hold_no_secrets_and_nothing_from_the_environment() {
        let view = ConfigView::of(&snapshot(BASE));
        let text = serde_json::to_string(&view).unwrap();
        assert!(!text.contains("secret-value"), "{text}");
        let without_env = super::super::parse(BASE, "test.toml", &|_| None).unwrap();
        assert_eq!(ConfigView::of(&without_env), view);
        assert!(changes(&view, &view).is_empty());
    }
}
