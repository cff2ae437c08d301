//! The validated configuration: one immutable [`Snapshot`] built from `providers.toml`.
//!
//! `raw` mirrors the file, `validate` turns it into checked types (durations, sizes, URLs,
//! resolved targets, secrets read from the environment through an injected lookup). Nothing
//! on the request path re-checks what is here. Errors name the file, the table and the field,
//! and the line where the TOML parser knows it; they never reach HTTP. [`reload`] swaps a new
//! snapshot in while the router runs; [`view`] is the secret-free picture of a snapshot that the
//! admin endpoint shows and `--check --against` compares.

mod raw;
pub mod reload;
mod validate;
pub mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

pub use crate::accounting::AccountingSettings;
use crate::accounting::Prices;
use crate::logging::LogFormat;
use crate::redact::Redactor;

/// Where a secret comes from: the process environment, or a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The environment of this process.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A running configuration. Requests load it once and keep it for their whole life.
#[derive(Debug)]
pub struct Snapshot {
    /// The file it was loaded from, for messages.
    pub file: String,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[routing]`.
    pub routing: RoutingSettings,
    /// `[upstream]`.
    pub upstream: UpstreamSettings,
    /// `[accounting]`.
    pub accounting: AccountingSettings,
    /// `[[keys]]`, in file order. Empty means the router is open.
    pub keys: Vec<ClientKey>,
    /// `[providers.*]` by name.
    pub providers: BTreeMap<String, Arc<Provider>>,
    /// Named routes and direct `provider/model` targets, by the name a client sends as `model`.
    pub routes: foldhash::HashMap<String, Route>,
    /// The wildcards (`provider/*`) of providers that serve any model name, by provider.
    pub wildcards: foldhash::HashMap<String, Route>,
    /// When this snapshot was built.
    pub loaded_at: SystemTime,
    /// `[usage_log]`, when configured. Read once at start-up.
    pub usage_log: Option<UsageLogSettings>,
    /// SHA-256 of the file's bytes, in lower-case hex: names the running version.
    pub sha256: String,
    /// Removes this configuration's secrets from upstream-derived text (shared with streams
    /// that outlive a request's hold on the snapshot).
    pub redactor: Arc<Redactor>,
}

/// `[usage_log]`: one JSON line per chat request, written off the request path.
#[derive(Clone, Debug)]
pub struct UsageLogSettings {
    /// The file, created if missing and appended to.
    pub path: PathBuf,
    /// Whether lines carry the request body and the (non-stream) response body.
    pub include_bodies: bool,
    /// How many lines may wait for the writer before new ones are dropped (and counted).
    pub buffer: usize,
}

/// `[server]`: the listener and request limits.
#[derive(Debug)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// How long in-flight requests (streams included) may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How often the file is checked for changes; zero turns the watch off (SIGHUP and
    /// `POST /admin/reload` still reload).
    pub reload_interval: Duration,
    /// How long a connection may take from accept to a complete request head (also for each
    /// later HTTP/1 request, from its first byte).
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may sit with no request in flight.
    pub idle_timeout: Duration,
    /// Open client connections at most; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// Requests served at once at most (a stream counts until its end); beyond it the answer
    /// is an immediate 503 `overloaded`.
    pub max_inflight: usize,
    /// Browser origins (`scheme://host[:port]`, lower case) allowed to call the router.
    pub cors_allowed_origins: Vec<http::HeaderValue>,
    /// How the process log is written; read once at start-up.
    pub log_format: LogFormat,
}

/// `[routing]`: attempts, timeouts and cooldowns.
#[derive(Debug)]
pub struct RoutingSettings {
    /// Upstream attempts per request, all targets together (at least 1).
    pub max_attempts: u32,
    /// Cooldown after a failure that carries no `Retry-After`; doubles on each consecutive
    /// failure up to `max_cooldown`.
    pub default_cooldown: Duration,
    /// The longest cooldown a provider gets, whatever it asks for.
    pub max_cooldown: Duration,
    /// Cooldown after a billing or credential failure on the router's own provider key.
    pub account_cooldown: Duration,
    /// One upstream attempt, until response headers.
    pub attempt_timeout: Duration,
    /// The whole request, a stream included.
    pub request_timeout: Duration,
    /// The longest silence between stream events.
    pub stream_idle_timeout: Duration,
}

/// `[upstream]`: the shared HTTP client.
#[derive(Debug)]
pub struct UpstreamSettings {
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

/// A client key from `[[keys]]`.
#[derive(Debug)]
pub struct ClientKey {
    /// The key's name: used in logs and labels, never the secret.
    pub name: Arc<str>,
    /// SHA-256 of the secret; `None` when its `key_env` variable is not set (the key is off).
    pub digest: Option<[u8; 32]>,
    /// Requests and tokens per minute this key may use.
    pub limits: LimitSettings,
    /// Where the secret comes from, for the start-up summary.
    pub source: String,
    /// Whether this key may use the `/admin/*` endpoints.
    pub admin: bool,
}

/// A setting that takes one of a fixed set of names, read from the file as text so that an
/// unknown name is reported with its field and the names allowed.
pub trait Named: Sized + Copy + 'static {
    /// Every value, in the order messages list them.
    const ALL: &'static [Self];

    /// The name used in `providers.toml`.
    fn name(self) -> &'static str;

    /// The value `text` names; `field` is only used in the error.
    fn parse_named(field: &str, text: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .iter()
            .copied()
            .find(|value| value.name() == text)
            .ok_or_else(|| UnknownName {
                field: field.to_owned(),
                value: text.to_owned(),
                allowed: Self::ALL
                    .iter()
                    .map(|value| value.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// A name that is none of those a setting takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {field} {value:?}, expected one of {allowed}")]
pub struct UnknownName {
    /// The setting, e.g. `kind`.
    pub field: String,
    /// The name as written.
    pub value: String,
    /// The names it takes, comma-separated.
    pub allowed: String,
}

/// The wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenAI-compatible upstream.
    OpenAi,
    /// Alibaba Model Studio (DashScope) compatible mode, Alipay endpoints included.
    Qwen,
    /// Mistral's chat completions.
    Mistral,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (generateContent).
    Gemini,
    /// Built in: the router answers by itself.
    Mock,
}

impl Named for ProviderKind {
    const ALL: &'static [Self] = &[
        Self::OpenAi,
        Self::Qwen,
        Self::Mistral,
        Self::Anthropic,
        Self::Gemini,
        Self::Mock,
    ];

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl ProviderKind {
    /// The name used in `providers.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Qwen => "qwen",
            Self::Mistral => "mistral",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Mock => "mock",
        }
    }
}

/// A provider secret. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for building the upstream's auth header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A configured provider.
#[derive(Debug)]
pub struct Provider {
    /// Its name in `providers.toml`.
    pub name: Arc<str>,
    /// Its wire format.
    pub kind: ProviderKind,
    /// Base URL without a trailing slash; empty for `mock`.
    pub base_url: String,
    /// The variable its API key is read from, when it names one.
    pub api_key_env: Option<String>,
    /// Its API key, when it needs one.
    pub secret: Option<Secret>,
    /// `None` when usable, else why not (e.g. its key variable is not set).
    pub disabled: Option<String>,
    /// Lower-case prefixes of upstream response headers passed to the client.
    pub forward_headers: Vec<String>,
    /// Requests and tokens per minute the router sends this provider.
    pub limits: LimitSettings,
    /// The built-in responder's settings, for `kind = "mock"`.
    pub mock: Option<MockSettings>,
    /// Per-model settings of the models declared under `[providers.NAME.models]`.
    pub models: BTreeMap<String, ModelSettings>,
    /// How it sells its calls.
    pub payment: Payment,
}

impl Provider {
    /// Whether `other` talks to the same upstream account: same wire, same URL, same key. A
    /// provider that keeps its name but changes any of these is a different upstream, so its
    /// cooldown is not carried over a reload.
    pub fn same_upstream(&self, other: &Provider) -> bool {
        self.kind == other.kind
            && self.base_url == other.base_url
            && self.secret.as_ref().map(Secret::expose) == other.secret.as_ref().map(Secret::expose)
    }
}

/// `[providers.NAME.models."MODEL"]`.
#[derive(Clone, Debug, Default)]
pub struct ModelSettings {
    /// Output cap sent when the client gives none (Anthropic requires one).
    pub max_tokens: Option<u32>,
    /// The model's prices, when any are configured.
    pub prices: Option<Arc<Prices>>,
    /// `embeddings = true`: an embeddings model, served on `/v1/embeddings` only (and the
    /// others on the chat endpoints only).
    pub embeddings: bool,
}

/// Per-minute budgets; `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LimitSettings {
    /// Requests per minute.
    pub rpm: Option<NonZeroU32>,
    /// Tokens per minute (prompt plus completion).
    pub tpm: Option<NonZeroU32>,
}

impl LimitSettings {
    /// Whether any budget is set.
    pub fn is_limited(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}

/// How a provider sells its calls, from `payment` in `[providers.NAME]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Payment {
    /// Billed by tokens (or a configured fee); no payment exchange.
    #[default]
    None,
    /// Alipay's agent-to-merchant pay-per-call: 402 quotes, `Payment-Proof` retries.
    A2m,
}

impl Named for Payment {
    const ALL: &'static [Self] = &[Self::None, Self::A2m];

    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::A2m => "a2m",
        }
    }
}

/// What a route does with a price quote (a 402 with `Payment-Needed`), from
/// `on_payment_required` in `[routes.NAME]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnPaymentRequired {
    /// The client gets the quote, to pay it and retry with proof.
    #[default]
    Quote,
    /// The next target (billed by tokens) answers instead.
    Failover,
}

impl Named for OnPaymentRequired {
    const ALL: &'static [Self] = &[Self::Quote, Self::Failover];

    fn name(self) -> &'static str {
        match self {
            Self::Quote => "quote",
            Self::Failover => "failover",
        }
    }
}

/// How a route spreads requests over its targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Targets in order; the next one only when the previous cannot answer.
    #[default]
    Priority,
    /// Requests spread by weight (smooth weighted round-robin), failing over to the others.
    Weighted,
}

impl Named for Strategy {
    const ALL: &'static [Self] = &[Self::Priority, Self::Weighted];

    fn name(self) -> &'static str {
        match self {
            Self::Priority => "priority",
            Self::Weighted => "weighted",
        }
    }
}

/// How a `mock` provider answers.
#[derive(Clone, Debug)]
pub struct MockSettings {
    /// A fixed reply; `None` echoes the last user message.
    pub reply: Option<String>,
    /// Delay before the response headers.
    pub latency: Duration,
    /// Delay between stream chunks.
    pub chunk_delay: Duration,
    /// Fraction of requests (0 to 1) answered with `error_status`.
    pub error_rate: f64,
    /// The status of simulated failures.
    pub error_status: http::StatusCode,
}

/// One place a request can go: a provider and the model name it knows.
#[derive(Clone, Debug)]
pub struct Target {
    /// The provider.
    pub provider: Arc<Provider>,
    /// The model name sent upstream.
    pub model: Arc<str>,
    /// `provider/model`, for logs and reports.
    pub label: Arc<str>,
    /// Share of traffic under the weighted strategy (1 under priority).
    pub weight: u32,
    /// The model's output cap default from `providers.toml`, if declared.
    pub max_tokens: Option<u32>,
    /// The model's prices from `providers.toml`, if declared.
    pub prices: Option<Arc<Prices>>,
    /// Whether the model is declared an embeddings model.
    pub embeddings: bool,
    /// The configured entry it comes from, which breaker state is kept under: `label` for a
    /// declared model, `provider/*` for a model served through the provider's wildcard, so
    /// names chosen by clients never grow the router's state.
    pub declared: Arc<str>,
    /// `x-switchboard-provider` and `x-switchboard-model` as sent with every answer, built
    /// once here so no request formats or validates them (absent if not a valid header value).
    pub answer_headers: Arc<[(HeaderName, HeaderValue)]>,
}

/// The model key of `[providers.NAME.models."*"]`: the provider serves any model name, with
/// that table's settings for every model not declared by its own name.
pub const WILDCARD_MODEL: &str = "*";

/// The longest model name a wildcard passes upstream, in bytes.
pub const MAX_MODEL_NAME: usize = 256;

/// The response headers naming the provider and the model that answered (each target
/// builds their values once, at load).
pub use crate::headers::{MODEL as MODEL_HEADER, PROVIDER as PROVIDER_HEADER};

/// What a client's `model` resolves to: a named route or one direct target.
#[derive(Debug)]
pub struct Route {
    /// The name clients send.
    pub name: Arc<str>,
    /// Targets in priority order.
    pub targets: Vec<Target>,
    /// Priority or weighted.
    pub strategy: Strategy,
    /// Whether a timeout after the request was sent may be retried on another target. Off
    /// for calls that must not run twice, such as a payment commit.
    pub failover_on_timeout: bool,
    /// What a price quote from one of its targets does.
    pub on_payment_required: OnPaymentRequired,
    /// True for `provider/model` addressing.
    pub direct: bool,
    /// Whether it serves `/v1/embeddings` (its targets are embeddings models) rather than
    /// chat.
    pub embeddings: bool,
}

impl Route {
    /// Whether this is a provider's wildcard (`provider/*`), which serves model names it was
    /// not configured with.
    pub fn is_wildcard(&self) -> bool {
        self.direct
            && self
                .targets
                .first()
                .is_some_and(|target| &*target.model == WILDCARD_MODEL)
    }

    /// The one-target route that serves `model` (`provider/name`, as the client wrote it)
    /// through this wildcard: `name` goes upstream, with the wildcard's settings. `None` when
    /// `name` cannot be a model name: empty, longer than [`MAX_MODEL_NAME`], or holding
    /// whitespace or control characters.
    pub fn serving(&self, model: &str) -> Option<Route> {
        let template = self.targets.first()?;
        let name = model.split_once('/')?.1;
        let valid = (1..=MAX_MODEL_NAME).contains(&name.len())
            && !name.chars().any(|c| c.is_control() || c.is_whitespace());
        if !valid {
            return None;
        }
        let target = Target {
            model: Arc::from(name),
            label: Arc::from(model),
            answer_headers: validate::answer_headers(&template.provider.name, name),
            ..template.clone()
        };
        Some(Route {
            name: self.name.clone(),
            targets: vec![target],
            ..*self
        })
    }
}

/// One configuration problem, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The table, e.g. `providers.qwen` or `keys[0]`.
    pub table: String,
    /// The field within the table; empty for whole-table problems.
    pub field: String,
    /// What is wrong and what to do.
    pub reason: String,
}

impl ConfigError {
    /// A problem with the file as a whole: it cannot be read, is not text, and the like.
    pub fn whole_file(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            table: "top level".to_owned(),
            field: String::new(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": [{}]", self.table)?;
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every problem found in a file (all of them, not just the first).
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Snapshot, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::whole_file(
            &file,
            format!("cannot read the file: {e}"),
        )])
    })?;
    parse(&text, &file, env)
}

/// Validates configuration text; `file` is only used in messages.
pub fn parse(text: &str, file: &str, env: EnvLookup<'_>) -> Result<Snapshot, ConfigErrors> {
    validate::validate(text, file, env)
}

/// Validates the bytes of a configuration file, which must be UTF-8.
pub fn parse_bytes(bytes: &[u8], file: &str, env: EnvLookup<'_>) -> Result<Snapshot, ConfigErrors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file, env),
        Err(e) => Err(ConfigErrors(vec![ConfigError::whole_file(
            file,
            format!("the file is not UTF-8 text ({e})"),
        )])),
    }
}

/// SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Snapshot {
    /// The route or direct target a client's `model` names; for a `provider/name` the
    /// provider does not declare, its wildcard when it has one (see [`Route::serving`]).
    pub fn route(&self, model: &str) -> Option<&Route> {
        self.routes.get(model).or_else(|| {
            let (provider, _) = model.split_once('/')?;
            self.wildcards.get(provider)
        })
    }

    /// A human summary of providers, routes and keys, for `--check` and the start-up log.
    pub fn summary(&self) -> String {
        let mut out = format!("configuration {} is valid\nproviders:\n", self.file);
        for provider in self.providers.values() {
            let state = match &provider.disabled {
                None => "enabled".to_owned(),
                Some(reason) => format!("disabled: {reason}"),
            };
            out += &format!(
                "  {} (kind {}): {state}\n",
                provider.name,
                provider.kind.as_str()
            );
        }
        out += "routes:\n";
        let mut routes: Vec<&Route> = self.routes.values().filter(|r| !r.direct).collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        for route in routes {
            let targets: Vec<String> = route
                .targets
                .iter()
                .map(|t| match route.strategy {
                    Strategy::Priority => t.label.to_string(),
                    Strategy::Weighted => format!("{} (weight {})", t.label, t.weight),
                })
                .collect();
            out += &format!(
                "  {} [{}] -> {}\n",
                route.name,
                route.strategy.name(),
                targets.join(", ")
            );
        }
        if self.keys.is_empty() {
            out += "keys: none configured; the router is OPEN to any client\n";
        } else {
            out += "keys:\n";
            for key in &self.keys {
                let state = if key.digest.is_some() {
                    "active"
                } else {
                    "inactive: its variable is not set"
                };
                let role = if key.admin { ", admin" } else { "" };
                out += &format!("  {} ({}{role}): {state}\n", key.name, key.source);
            }
        }
        out
    }
}

/// A target of a `kind` provider named `provider` with key `sk-test`, built through the real
/// validation so tests keep up with new fields.
#[cfg(test)]
pub(crate) fn test_target(kind: &str, provider: &str, model: &str) -> Target {
    let base_url = if kind == "mock" {
        String::new()
    } else {
        "base_url = \"https://upstream.example/v1\"\napi_key_env = \"TEST_KEY\"".to_owned()
    };
    let text = format!(
        "[providers.{provider}]\nkind = \"{kind}\"\n{base_url}\n[routes.t]\ntargets = [\"{provider}/{model}\"]\n"
    );
    let env = |name: &str| (name == "TEST_KEY").then(|| "sk-test".to_owned());
    match parse(&text, "test.toml", &env) {
        Ok(snapshot) => snapshot.routes["t"].targets[0].clone(),
        Err(e) => panic!("test target: {e}"),
    }
}
