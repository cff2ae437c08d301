//! Raw file → [`Snapshot`]: every value parsed and checked once, every problem collected.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, StatusCode, Uri};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::raw::{RawConfig, RawKey, RawModel, RawPrice, RawProvider, RawRoute, RawTarget};
use crate::accounting::Prices;
use crate::logging::{LogFormat, UnknownLogFormat};
use crate::redact::Redactor;

use super::{
    AccountingSettings, ClientKey, ConfigError, ConfigErrors, EnvLookup, LimitSettings,
    MODEL_HEADER, MockSettings, ModelSettings, Named, OnPaymentRequired, PROVIDER_HEADER, Payment,
    Provider, ProviderKind, Route, RoutingSettings, Secret, ServerSettings, Snapshot, Strategy,
    Target, UpstreamSettings, UsageLogSettings, WILDCARD_MODEL,
};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_MAX_BODY: usize = 4 << 20;
const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
const MIN_RELOAD_INTERVAL: Duration = Duration::from_millis(10);

/// Collects errors with their location while the file is checked.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, span: Option<Range<usize>>, table: &str, field: &str, reason: String) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: span.map(|s| line_of(self.text, s.start)),
            table: table.to_owned(),
            field: field.to_owned(),
            reason,
        });
    }

    /// The value a setting that takes one of a few names is given; `None` when the name is
    /// unknown, reported with the names allowed.
    fn named<T: Named>(&mut self, value: &Spanned<String>, table: &str, field: &str) -> Option<T> {
        match T::parse_named(field, value.get_ref()) {
            Ok(named) => Some(named),
            Err(unknown) => {
                self.error(Some(value.span()), table, field, unknown.to_string());
                None
            }
        }
    }

    fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        table: &str,
        field: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        match humantime::parse_duration(value.get_ref()) {
            Ok(duration) if !duration.is_zero() => duration,
            Ok(_) => {
                self.error(
                    Some(value.span()),
                    table,
                    field,
                    "must be longer than zero".into(),
                );
                default
            }
            Err(e) => {
                self.error(
                    Some(value.span()),
                    table,
                    field,
                    format!(
                        "`{}` is not a duration ({e}); write e.g. \"30s\", \"500ms\" or \"2m\"",
                        value.get_ref()
                    ),
                );
                default
            }
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The `[table]` header in force at byte `offset`, for parse errors that only know a position.
/// The line holding `offset` counts: a missing field is reported at its table's header.
fn table_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    text[..line_end]
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|line| line.trim_matches(|c| c == '[' || c == ']').to_owned())
        .unwrap_or_else(|| "top level".to_owned())
}

/// The key a parse error at byte `offset` is about: the one assigned on its line, before the
/// value the error points at (or the unknown key the error points at itself). Empty when the
/// line assigns nothing, e.g. a table missing a field is reported at its header.
fn field_at(text: &str, offset: usize) -> &str {
    let offset = offset.min(text.len());
    let (Some(before), Some(after)) = (text.get(..offset), text.get(offset..)) else {
        return "";
    };
    let before = before.rsplit('\n').next().unwrap_or("");
    let after = after.split('\n').next().unwrap_or("");
    let key = match (before.rfind('='), after.find('=')) {
        (Some(eq), _) => before[..eq].rsplit([',', '{', '[']).next().unwrap_or(""),
        (None, Some(eq)) => &after[..eq],
        (None, None) => "",
    };
    let key = key.trim().trim_matches('"');
    let bare = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { key } else { "" }
}

pub(super) fn validate(
    text: &str,
    file: &str,
    env: EnvLookup<'_>,
) -> Result<Snapshot, ConfigErrors> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span();
        let offset = span.as_ref().map_or(0, |s| s.start);
        ConfigErrors(vec![ConfigError {
            file: file.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            table: table_at(text, offset),
            field: field_at(text, offset).to_owned(),
            reason: e.message().trim().to_owned(),
        }])
    })?;
    let mut check = Checker {
        file,
        text,
        errors: Vec::new(),
    };
    let server = server(&mut check, &raw);
    let max_attempts = max_attempts(&mut check, &raw);
    let r = &raw.routing;
    let mut routing_duration = |value: Option<&Spanned<String>>, field: &str, secs: u64| {
        check.duration(value, "routing", field, Duration::from_secs(secs))
    };
    let routing = RoutingSettings {
        max_attempts,
        default_cooldown: routing_duration(r.default_cooldown.as_ref(), "default_cooldown", 30),
        max_cooldown: routing_duration(r.max_cooldown.as_ref(), "max_cooldown", 300),
        account_cooldown: routing_duration(r.account_cooldown.as_ref(), "account_cooldown", 600),
        attempt_timeout: routing_duration(r.attempt_timeout.as_ref(), "attempt_timeout", 30),
        request_timeout: routing_duration(r.request_timeout.as_ref(), "request_timeout", 600),
        stream_idle_timeout: routing_duration(
            r.stream_idle_timeout.as_ref(),
            "stream_idle_timeout",
            60,
        ),
    };
    let u = &raw.upstream;
    let mut upstream_duration = |value: Option<&Spanned<String>>, field: &str, secs: u64| {
        check.duration(value, "upstream", field, Duration::from_secs(secs))
    };
    let upstream = UpstreamSettings {
        connect_timeout: upstream_duration(u.connect_timeout.as_ref(), "connect_timeout", 5),
        pool_idle_timeout: upstream_duration(u.pool_idle_timeout.as_ref(), "pool_idle_timeout", 90),
    };
    let accounting = accounting(&mut check, &raw);
    let keys = keys(&mut check, &raw.keys, env);
    let providers: BTreeMap<String, Arc<Provider>> = raw
        .providers
        .iter()
        .filter_map(|(name, provider)| {
            let checked = self::provider(&mut check, name, provider, env)?;
            Some((name.clone(), Arc::new(checked)))
        })
        .collect();
    let routes = routes(&mut check, &raw, &providers);
    let wildcards = wildcards(&providers);
    if raw.providers.is_empty() && raw.routes.is_empty() {
        // An empty file, or one cut short while it was being written, must never replace a
        // working configuration: it would route nothing.
        check.error(
            None,
            "top level",
            "",
            "defines no [providers] and no [routes], so nothing could be served; is the file \
             empty or only partly written?"
                .into(),
        );
    }
    let usage_log = usage_log(&mut check, &raw);
    let redactor = Arc::new(redactor(&raw, &providers, env));
    if !check.errors.is_empty() {
        return Err(ConfigErrors(check.errors));
    }
    Ok(Snapshot {
        file: file.to_owned(),
        server,
        routing,
        upstream,
        accounting,
        keys,
        providers,
        routes,
        wildcards,
        loaded_at: SystemTime::now(),
        usage_log,
        sha256: super::sha256_hex(text.as_bytes()),
        redactor,
    })
}

/// The redactor of every secret this configuration knows: provider keys (the router sends
/// them upstream, so a provider may echo them) and client keys read from the environment,
/// admin keys included (a file's `sha256` keys have no secret here to redact).
fn redactor(
    raw: &RawConfig,
    providers: &BTreeMap<String, Arc<Provider>>,
    env: EnvLookup<'_>,
) -> Redactor {
    let client_secrets: Vec<String> = raw
        .keys
        .iter()
        .filter_map(|key| key.get_ref().key_env.as_ref())
        .filter_map(|var| env(var.get_ref()))
        .collect();
    let provider_secrets = providers
        .values()
        .filter_map(|provider| provider.secret.as_ref().map(Secret::expose));
    Redactor::new(provider_secrets.chain(client_secrets.iter().map(String::as_str)))
}

/// The usage log's queue when `buffer` is not set, in lines.
const DEFAULT_USAGE_LOG_BUFFER: u32 = 10_000;
/// The largest `buffer`: a queue this long of the largest lines is already a lot of memory.
const MAX_USAGE_LOG_BUFFER: u32 = 1_000_000;

/// `[usage_log]`: a non-empty path and a queue of 1 to a million lines.
fn usage_log(check: &mut Checker<'_>, raw: &RawConfig) -> Option<UsageLogSettings> {
    let raw = raw.usage_log.as_ref()?;
    if raw.path.get_ref().trim().is_empty() {
        check.error(
            Some(raw.path.span()),
            "usage_log",
            "path",
            "must name a file, e.g. \"/var/log/switchboard/usage.jsonl\"".into(),
        );
        return None;
    }
    let buffer = match &raw.buffer {
        None => DEFAULT_USAGE_LOG_BUFFER,
        Some(value) if (1..=MAX_USAGE_LOG_BUFFER).contains(value.get_ref()) => *value.get_ref(),
        Some(value) => {
            check.error(
                Some(value.span()),
                "usage_log",
                "buffer",
                format!("must be between 1 and {MAX_USAGE_LOG_BUFFER} lines"),
            );
            return None;
        }
    };
    Some(UsageLogSettings {
        path: PathBuf::from(raw.path.get_ref()),
        include_bodies: raw.include_bodies.unwrap_or(false),
        buffer: usize::try_from(buffer).unwrap_or(usize::MAX),
    })
}

fn max_attempts(check: &mut Checker<'_>, raw: &RawConfig) -> u32 {
    match &raw.routing.max_attempts {
        None => 3,
        Some(value) if *value.get_ref() >= 1 => *value.get_ref(),
        Some(value) => {
            check.error(
                Some(value.span()),
                "routing",
                "max_attempts",
                "must be at least 1".into(),
            );
            1
        }
    }
}

/// `rpm` and `tpm` of a provider or key: positive when set.
fn limits(
    check: &mut Checker<'_>,
    table: &str,
    rpm: Option<&Spanned<i64>>,
    tpm: Option<&Spanned<i64>>,
) -> LimitSettings {
    let mut positive = |field: &str, value: Option<&Spanned<i64>>| {
        let value = value?;
        let checked = u32::try_from(*value.get_ref())
            .ok()
            .and_then(NonZeroU32::new);
        if checked.is_none() {
            check.error(
                Some(value.span()),
                table,
                field,
                format!(
                    "must be a whole number from 1 to {}, got {} (leave it out for no limit)",
                    u32::MAX,
                    value.get_ref()
                ),
            );
        }
        checked
    };
    LimitSettings {
        rpm: positive("rpm", rpm),
        tpm: positive("tpm", tpm),
    }
}

fn server(check: &mut Checker<'_>, raw: &RawConfig) -> ServerSettings {
    let listen = match &raw.server.listen {
        None => DEFAULT_LISTEN.parse().ok(),
        Some(value) => {
            let parsed = value.get_ref().parse::<SocketAddr>();
            if parsed.is_err() {
                check.error(
                    Some(value.span()),
                    "server",
                    "listen",
                    format!(
                        "`{}` is not an address; write e.g. \"127.0.0.1:8080\"",
                        value.get_ref()
                    ),
                );
            }
            parsed.ok()
        }
    };
    let max_body = match &raw.server.max_body {
        None => DEFAULT_MAX_BODY,
        Some(value) => match parse_size(value.get_ref()) {
            Some(size) if size > 0 => size,
            _ => {
                check.error(
                    Some(value.span()),
                    "server",
                    "max_body",
                    format!(
                        "`{}` is not a size; write e.g. \"4MiB\", \"512KiB\" or \"1000000\"",
                        value.get_ref()
                    ),
                );
                DEFAULT_MAX_BODY
            }
        },
    };
    ServerSettings {
        listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
        max_body,
        shutdown_grace: check.duration(
            raw.server.shutdown_grace.as_ref(),
            "server",
            "shutdown_grace",
            Duration::from_secs(30),
        ),
        reload_interval: reload_interval(check, raw),
        header_read_timeout: check.duration(
            raw.server.header_read_timeout.as_ref(),
            "server",
            "header_read_timeout",
            Duration::from_secs(10),
        ),
        idle_timeout: check.duration(
            raw.server.idle_timeout.as_ref(),
            "server",
            "idle_timeout",
            Duration::from_secs(90),
        ),
        max_connections: at_least_one(
            check,
            raw.server.max_connections.as_ref(),
            "max_connections",
            DEFAULT_MAX_CONNECTIONS,
        ),
        max_inflight: at_least_one(
            check,
            raw.server.max_inflight.as_ref(),
            "max_inflight",
            DEFAULT_MAX_INFLIGHT,
        ),
        cors_allowed_origins: cors_allowed_origins(check, raw),
        log_format: log_format(check, raw),
    }
}

/// Open connections at most, by default: well under a process's usual descriptor limit.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Requests in flight at most, by default: about 400 MiB of open streams.
const DEFAULT_MAX_INFLIGHT: usize = 4_096;
/// The largest count `max_connections` and `max_inflight` take (tokio's semaphore limit is
/// far above; no machine serves more).
const MAX_COUNT: i64 = 1 << 24;

/// A `[server]` count that must be from 1 to [`MAX_COUNT`].
fn at_least_one(
    check: &mut Checker<'_>,
    value: Option<&Spanned<i64>>,
    field: &str,
    default: usize,
) -> usize {
    let Some(value) = value else {
        return default;
    };
    match usize::try_from(*value.get_ref()) {
        Ok(count) if (1..=MAX_COUNT).contains(value.get_ref()) => count,
        _ => {
            check.error(
                Some(value.span()),
                "server",
                field,
                format!(
                    "must be a whole number from 1 to {MAX_COUNT}, got {}",
                    value.get_ref()
                ),
            );
            default
        }
    }
}

/// `server.cors_allowed_origins`: each an origin as browsers send it, `scheme://host[:port]`
/// with no path; kept in lower case, the form browsers serialise origins in.
fn cors_allowed_origins(check: &mut Checker<'_>, raw: &RawConfig) -> Vec<http::HeaderValue> {
    let Some(origins) = &raw.server.cors_allowed_origins else {
        return Vec::new();
    };
    let mut allowed = Vec::with_capacity(origins.len());
    for origin in origins {
        let text = origin.get_ref().trim().to_ascii_lowercase();
        match valid_origin(&text).then(|| http::HeaderValue::from_str(&text)) {
            Some(Ok(value)) => allowed.push(value),
            _ => check.error(
                Some(origin.span()),
                "server",
                "cors_allowed_origins",
                format!(
                    "`{}` is not an origin; write e.g. \"https://app.example.com\" (scheme, host \
                     and optional port, no path)",
                    origin.get_ref()
                ),
            ),
        }
    }
    allowed
}

/// Whether `origin` is `http(s)://host[:port]` with nothing after it (no path, not even `/`,
/// no user info): the only form a browser's `Origin` header takes.
fn valid_origin(origin: &str) -> bool {
    let Ok(uri) = origin.parse::<http::Uri>() else {
        return false;
    };
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let authority_ok = uri
        .authority()
        .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'));
    let nothing_after = uri.path() == "/" && uri.query().is_none() && !origin.ends_with('/');
    scheme_ok && authority_ok && nothing_after
}

/// `server.log_format`: `"text"` (the default) or `"json"`.
fn log_format(check: &mut Checker<'_>, raw: &RawConfig) -> LogFormat {
    let Some(value) = &raw.server.log_format else {
        return LogFormat::default();
    };
    value
        .get_ref()
        .parse()
        .unwrap_or_else(|e: UnknownLogFormat| {
            check.error(Some(value.span()), "server", "log_format", e.to_string());
            LogFormat::default()
        })
}

/// `server.reload_interval`: `"0s"` turns the file watch off; anything shorter than
/// [`MIN_RELOAD_INTERVAL`] would only burn CPU on `stat` calls.
fn reload_interval(check: &mut Checker<'_>, raw: &RawConfig) -> Duration {
    let Some(value) = &raw.server.reload_interval else {
        return DEFAULT_RELOAD_INTERVAL;
    };
    match humantime::parse_duration(value.get_ref()) {
        Ok(interval) if interval.is_zero() || interval >= MIN_RELOAD_INTERVAL => interval,
        Ok(_) => {
            check.error(
                Some(value.span()),
                "server",
                "reload_interval",
                "must be at least 10ms, or \"0s\" to turn the file watch off".into(),
            );
            DEFAULT_RELOAD_INTERVAL
        }
        Err(e) => {
            check.error(
                Some(value.span()),
                "server",
                "reload_interval",
                format!(
                    "`{}` is not a duration ({e}); write e.g. \"1s\", or \"0s\" for no watch",
                    value.get_ref()
                ),
            );
            DEFAULT_RELOAD_INTERVAL
        }
    }
}

/// Parses sizes like `4MiB`, `512 KiB`, `1MB` or a plain byte count.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().ok()?;
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

fn keys(check: &mut Checker<'_>, raw: &[Spanned<RawKey>], env: EnvLookup<'_>) -> Vec<ClientKey> {
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (index, key) in raw.iter().enumerate() {
        let table = format!("keys[{index}]");
        let span = Some(key.span());
        let key = key.get_ref();
        let name = key.name.get_ref();
        if name.is_empty() {
            check.error(span.clone(), &table, "name", "must not be empty".into());
        } else if !names.insert(name.clone()) {
            check.error(
                Some(key.name.span()),
                &table,
                "name",
                format!("`{name}` is used by another key; names must be unique"),
            );
        }
        let (digest, source) = match (&key.key_env, &key.sha256) {
            (Some(var), None) => (
                env(var.get_ref())
                    .filter(|s| !s.is_empty())
                    .map(|secret| Sha256::digest(secret.as_bytes()).into()),
                format!("secret in ${}", var.get_ref()),
            ),
            (None, Some(hex_digest)) => match parse_digest(hex_digest.get_ref()) {
                Some(digest) => (Some(digest), "sha256 in file".to_owned()),
                None => {
                    check.error(
                        Some(hex_digest.span()),
                        &table,
                        "sha256",
                        "must be 64 hex digits: the SHA-256 of the secret \
                         (e.g. `printf %s \"$KEY\" | sha256sum`)"
                            .into(),
                    );
                    (None, String::new())
                }
            },
            _ => {
                check.error(
                    span.clone(),
                    &table,
                    "key_env",
                    "set exactly one of `key_env` (a variable holding the secret) or `sha256` \
                     (its digest)"
                        .into(),
                );
                (None, String::new())
            }
        };
        if let Some(digest) = digest
            && !digests.insert(digest)
        {
            check.error(
                span,
                &table,
                "key_env",
                "this secret is the same as another key's; every key needs its own".into(),
            );
        }
        keys.push(ClientKey {
            name: Arc::from(name.as_str()),
            digest,
            limits: limits(check, &table, key.rpm.as_ref(), key.tpm.as_ref()),
            source,
            admin: key.admin,
        });
    }
    keys
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text, &mut digest).ok()?;
    Some(digest)
}

fn provider(
    check: &mut Checker<'_>,
    name: &str,
    raw: &Spanned<RawProvider>,
    env: EnvLookup<'_>,
) -> Option<Provider> {
    let table = format!("providers.{name}");
    let span = Some(raw.span());
    let raw = raw.get_ref();
    let errors_before = check.errors.len();
    if name.is_empty() || name.contains('/') {
        check.error(
            span.clone(),
            &table,
            "",
            "provider names must be non-empty and contain no `/`".into(),
        );
    }
    let kind = check.named::<ProviderKind>(&raw.kind, &table, "kind")?;
    let is_mock = kind == ProviderKind::Mock;
    let mock = mock_settings(check, &table, raw, is_mock);
    let base_url = match (&raw.base_url, is_mock) {
        (Some(url), false) => base_url(check, &table, url),
        (None, false) => {
            check.error(
                span.clone(),
                &table,
                "base_url",
                "is required for this kind".into(),
            );
            String::new()
        }
        (Some(url), true) => {
            check.error(
                Some(url.span()),
                &table,
                "base_url",
                "a mock provider answers by itself; remove base_url".into(),
            );
            String::new()
        }
        (None, true) => String::new(),
    };
    let (secret, disabled) = match &raw.api_key_env {
        Some(var) if is_mock => {
            check.error(
                Some(var.span()),
                &table,
                "api_key_env",
                "a mock provider needs no key; remove api_key_env".into(),
            );
            (None, None)
        }
        Some(var) => match env(var.get_ref()).filter(|s| !s.is_empty()) {
            Some(secret) => (Some(Secret(secret)), None),
            None => (None, Some(format!("${} is not set", var.get_ref()))),
        },
        None => (None, None),
    };
    let forward_headers = raw
        .forward_headers
        .iter()
        .filter_map(|prefix| header_prefix(check, &table, prefix))
        .collect();
    let payment = payment(check, &table, kind, raw.payment.as_ref());
    if check.errors.len() > errors_before {
        return None;
    }
    Some(Provider {
        name: Arc::from(name),
        kind,
        base_url,
        api_key_env: raw.api_key_env.as_ref().map(|var| var.get_ref().clone()),
        secret,
        disabled,
        forward_headers: a2m_forwarded(payment, forward_headers),
        limits: limits(check, &table, raw.rpm.as_ref(), raw.tpm.as_ref()),
        mock: if is_mock { Some(mock) } else { None },
        models: models(check, &table, kind, raw),
        payment,
    })
}

/// `payment`: only OpenAI-wire providers can carry the A2M exchange (its quote and proof
/// travel in headers around an OpenAI-wire call).
fn payment(
    check: &mut Checker<'_>,
    table: &str,
    kind: ProviderKind,
    raw: Option<&Spanned<String>>,
) -> Payment {
    let Some(value) = raw else {
        return Payment::None;
    };
    let Some(payment) = check.named::<Payment>(value, table, "payment") else {
        return Payment::None;
    };
    let wire_ok = matches!(kind, ProviderKind::Qwen | ProviderKind::OpenAi);
    if payment == Payment::A2m && !wire_ok {
        check.error(
            Some(value.span()),
            table,
            "payment",
            "\"a2m\" only applies to kind = \"qwen\" or \"openai\"".into(),
        );
    }
    payment
}

/// The A2M exchange's response headers, `Payment-Validation` above all (the agent's receipt).
const A2M_HEADERS: &str = "payment-";

/// An A2M seller's `Payment-*` headers reach the client whatever `forward_headers` lists: the
/// rule is made here, once, so the request path only matches prefixes.
fn a2m_forwarded(payment: Payment, mut prefixes: Vec<String>) -> Vec<String> {
    let covered = prefixes.iter().any(|p| A2M_HEADERS.starts_with(p.as_str()));
    if payment == Payment::A2m && !covered {
        prefixes.push(A2M_HEADERS.to_owned());
    }
    prefixes
}

fn models(
    check: &mut Checker<'_>,
    table: &str,
    kind: ProviderKind,
    raw: &RawProvider,
) -> BTreeMap<String, ModelSettings> {
    raw.models
        .iter()
        .map(|(name, model)| {
            let max_tokens = model.max_tokens.as_ref().and_then(|cap| {
                if *cap.get_ref() == 0 {
                    check.error(
                        Some(cap.span()),
                        &format!("{table}.models.{name}"),
                        "max_tokens",
                        "must be at least 1".into(),
                    );
                    return None;
                }
                Some(*cap.get_ref())
            });
            let prices = prices(check, &format!("{table}.models.{name}"), model);
            let embeddings = embeddings(check, &format!("{table}.models.{name}"), kind, model);
            (
                name.clone(),
                ModelSettings {
                    max_tokens,
                    prices,
                    embeddings,
                },
            )
        })
        .collect()
}

/// `embeddings = true`, refused for the kinds with no embeddings API (Anthropic).
fn embeddings(check: &mut Checker<'_>, table: &str, kind: ProviderKind, model: &RawModel) -> bool {
    let Some(flag) = &model.embeddings else {
        return false;
    };
    if *flag.get_ref() && crate::providers::embedder_for(kind).is_none() {
        check.error(
            Some(flag.span()),
            table,
            "embeddings",
            format!(
                "kind = \"{}\" has no embeddings API; serve embeddings from an openai, qwen, \
                 mistral, gemini or mock provider",
                kind.as_str()
            ),
        );
        return false;
    }
    *flag.get_ref()
}

/// Most decimal places a price may have: enough for any list price, and few enough that
/// every cost stays exact within the decimal type's 28 places.
const MAX_PRICE_DECIMALS: u32 = 12;

/// A model's prices: `None` when it declares neither a price nor a currency. Any price needs
/// the currency it is in.
fn prices(check: &mut Checker<'_>, table: &str, model: &RawModel) -> Option<Arc<Prices>> {
    let mut price = |field: &str, raw: Option<&Spanned<RawPrice>>| price(check, table, field, raw);
    let input_per_mtok = price("input_per_mtok", model.input_per_mtok.as_ref());
    let output_per_mtok = price("output_per_mtok", model.output_per_mtok.as_ref());
    let cached_input_per_mtok = price(
        "cached_input_per_mtok",
        model.cached_input_per_mtok.as_ref(),
    );
    let cache_write_per_mtok = price("cache_write_per_mtok", model.cache_write_per_mtok.as_ref());
    let per_transaction = price("per_transaction", model.per_transaction.as_ref());
    let any_price = [
        &model.input_per_mtok,
        &model.output_per_mtok,
        &model.cached_input_per_mtok,
        &model.cache_write_per_mtok,
        &model.per_transaction,
    ]
    .iter()
    .any(|p| p.is_some());
    let currency = match &model.currency {
        Some(code) => currency(check, table, code)?,
        None if any_price => {
            check.error(
                None,
                table,
                "currency",
                "is required with prices: the ISO 4217 code they are in, e.g. \"USD\"".into(),
            );
            return None;
        }
        None => return None,
    };
    Some(Arc::new(Prices {
        input_per_mtok,
        output_per_mtok,
        cached_input_per_mtok,
        cache_write_per_mtok,
        per_transaction,
        currency,
    }))
}

/// One price: a decimal, not negative, with at most [`MAX_PRICE_DECIMALS`] places.
fn price(
    check: &mut Checker<'_>,
    table: &str,
    field: &str,
    raw: Option<&Spanned<RawPrice>>,
) -> Option<Decimal> {
    let raw = raw?;
    let text = &raw.get_ref().0;
    let problem = match Decimal::from_str_exact(text) {
        Ok(value) if value.is_sign_negative() && !value.is_zero() => {
            format!("must not be negative, got {text}")
        }
        Ok(value) if value.normalize().scale() > MAX_PRICE_DECIMALS => {
            format!("has more than {MAX_PRICE_DECIMALS} decimal places: {text}")
        }
        Ok(value) => return Some(value.abs()),
        Err(_) => format!("`{text}` is not a price; write e.g. 1.25 or \"1.25\""),
    };
    check.error(Some(raw.span()), table, field, problem);
    None
}

/// An ISO 4217 currency code: three capital letters.
fn currency(check: &mut Checker<'_>, table: &str, code: &Spanned<String>) -> Option<Arc<str>> {
    let text = code.get_ref();
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(Arc::from(text.as_str()));
    }
    check.error(
        Some(code.span()),
        table,
        "currency",
        format!("`{text}` is not an ISO 4217 code (three capital letters, e.g. \"USD\")"),
    );
    None
}

/// `[accounting]`: the transaction header and how long and how many paid transactions are
/// remembered.
fn accounting(check: &mut Checker<'_>, raw: &RawConfig) -> AccountingSettings {
    let defaults = AccountingSettings::default();
    let raw = &raw.accounting;
    let transaction_header = match &raw.transaction_header {
        None => defaults.transaction_header,
        Some(name) => match HeaderName::try_from(name.get_ref().to_ascii_lowercase()) {
            Ok(header) => header,
            Err(_) => {
                check.error(
                    Some(name.span()),
                    "accounting",
                    "transaction_header",
                    format!(
                        "`{}` is not a header name; write e.g. \"x-transaction-id\"",
                        name.get_ref()
                    ),
                );
                defaults.transaction_header
            }
        },
    };
    let max_transactions = match &raw.max_transactions {
        None => defaults.max_transactions,
        Some(count) => match usize::try_from(*count.get_ref()) {
            Ok(count) if count >= 1 => count,
            _ => {
                check.error(
                    Some(count.span()),
                    "accounting",
                    "max_transactions",
                    "must be at least 1".into(),
                );
                defaults.max_transactions
            }
        },
    };
    AccountingSettings {
        transaction_header,
        transaction_window: check.duration(
            raw.transaction_window.as_ref(),
            "accounting",
            "transaction_window",
            defaults.transaction_window,
        ),
        max_transactions,
    }
}

fn base_url(check: &mut Checker<'_>, table: &str, url: &Spanned<String>) -> String {
    let text = url.get_ref().trim_end_matches('/');
    let valid = text.parse::<Uri>().ok().is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some()
            && uri.query().is_none()
    });
    if !valid {
        check.error(
            Some(url.span()),
            table,
            "base_url",
            format!(
                "`{}` is not an http(s) URL without a query, e.g. \"https://api.mistral.ai/v1\"",
                url.get_ref()
            ),
        );
    }
    text.to_owned()
}

/// Response headers the router sets or that frame the connection; a forwarded upstream copy
/// would duplicate or contradict them.
const RESERVED_HEADERS: &[&str] = &[
    "x-switchboard-",
    "x-request-id",
    "x-should-retry",
    "x-ratelimit-",
    "retry-after",
    "content-",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "set-cookie",
];

fn header_prefix(check: &mut Checker<'_>, table: &str, prefix: &Spanned<String>) -> Option<String> {
    let lower = prefix.get_ref().to_ascii_lowercase();
    let valid = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let clash = RESERVED_HEADERS
        .iter()
        .find(|reserved| reserved.starts_with(&lower) || lower.starts_with(*reserved));
    if let (true, Some(reserved)) = (valid, clash) {
        check.error(
            Some(prefix.span()),
            table,
            "forward_headers",
            format!(
                "`{}` would pass the upstream's `{reserved}` headers, which the router sets \
                 itself; use a narrower prefix",
                prefix.get_ref()
            ),
        );
        return None;
    }
    if valid {
        return Some(lower);
    }
    check.error(
        Some(prefix.span()),
        table,
        "forward_headers",
        format!(
            "`{}` is not a header-name prefix (letters, digits, `-`, `_`)",
            prefix.get_ref()
        ),
    );
    None
}

fn mock_settings(
    check: &mut Checker<'_>,
    table: &str,
    raw: &RawProvider,
    is_mock: bool,
) -> MockSettings {
    let mock_only: [(&str, Option<Range<usize>>); 5] = [
        ("reply", raw.reply.as_ref().map(Spanned::span)),
        ("latency", raw.latency.as_ref().map(Spanned::span)),
        ("chunk_delay", raw.chunk_delay.as_ref().map(Spanned::span)),
        ("error_rate", raw.error_rate.as_ref().map(Spanned::span)),
        ("error_status", raw.error_status.as_ref().map(Spanned::span)),
    ];
    for (field, span) in mock_only {
        if let (Some(span), false) = (span, is_mock) {
            check.error(
                Some(span),
                table,
                field,
                "only applies to kind = \"mock\"".into(),
            );
        }
    }
    let error_rate = raw.error_rate.as_ref().map_or(0.0, |rate| {
        let value = *rate.get_ref();
        if !(0.0..=1.0).contains(&value) {
            check.error(
                Some(rate.span()),
                table,
                "error_rate",
                format!("must be between 0 and 1, got {value}"),
            );
        }
        value
    });
    let error_status =
        raw.error_status
            .as_ref()
            .map_or(
                StatusCode::SERVICE_UNAVAILABLE,
                |status| match StatusCode::from_u16(*status.get_ref()) {
                    Ok(code) if code.is_client_error() || code.is_server_error() => code,
                    _ => {
                        check.error(
                            Some(status.span()),
                            table,
                            "error_status",
                            format!(
                                "must be an HTTP error status (400-599), got {status}",
                                status = status.get_ref()
                            ),
                        );
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                },
            );
    MockSettings {
        reply: raw.reply.as_ref().map(|r| r.get_ref().clone()),
        latency: check.duration(raw.latency.as_ref(), table, "latency", Duration::ZERO),
        chunk_delay: check.duration(
            raw.chunk_delay.as_ref(),
            table,
            "chunk_delay",
            Duration::ZERO,
        ),
        error_rate,
        error_status,
    }
}

fn routes(
    check: &mut Checker<'_>,
    raw: &RawConfig,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> foldhash::HashMap<String, Route> {
    let mut routes = foldhash::HashMap::default();
    // Declared models are addressable directly as `provider/model`.
    for (name, provider) in &raw.providers {
        let Some(checked) = providers.get(name) else {
            continue;
        };
        for model in provider.get_ref().models.keys() {
            if model != WILDCARD_MODEL {
                insert_direct(&mut routes, checked, model);
            }
        }
    }
    for (name, route) in &raw.routes {
        if let Some(checked) = self::route(check, name, route, providers) {
            for target in &checked.targets {
                insert_direct(&mut routes, &target.provider, &target.model);
            }
            routes.insert(name.clone(), checked);
        }
    }
    routes
}

/// `provider/*` of each provider that declares `[providers.NAME.models."*"]`: a direct route
/// whose one target stands for any model name the provider does not declare.
fn wildcards(providers: &BTreeMap<String, Arc<Provider>>) -> foldhash::HashMap<String, Route> {
    providers
        .iter()
        .filter(|(_, provider)| provider.models.contains_key(WILDCARD_MODEL))
        .map(|(name, provider)| {
            let target = make_target(provider, WILDCARD_MODEL, 1);
            let route = Route {
                name: target.label.clone(),
                embeddings: target.embeddings,
                targets: vec![target],
                strategy: Strategy::Priority,
                failover_on_timeout: true,
                on_payment_required: OnPaymentRequired::Quote,
                direct: true,
            };
            (name.clone(), route)
        })
        .collect()
}

fn insert_direct(
    routes: &mut foldhash::HashMap<String, Route>,
    provider: &Arc<Provider>,
    model: &str,
) {
    let target = make_target(provider, model, 1);
    routes
        .entry(target.label.to_string())
        .or_insert_with(|| Route {
            name: target.label.clone(),
            embeddings: target.embeddings,
            targets: vec![target],
            strategy: Strategy::Priority,
            failover_on_timeout: true,
            on_payment_required: OnPaymentRequired::Quote,
            direct: true,
        });
}

fn make_target(provider: &Arc<Provider>, model: &str, weight: u32) -> Target {
    let label: Arc<str> = Arc::from(format!("{}/{model}", provider.name));
    Target {
        provider: provider.clone(),
        model: Arc::from(model),
        declared: label.clone(),
        label,
        weight,
        max_tokens: provider.models.get(model).and_then(|m| m.max_tokens),
        prices: provider.models.get(model).and_then(|m| m.prices.clone()),
        embeddings: provider.models.get(model).is_some_and(|m| m.embeddings),
        answer_headers: answer_headers(&provider.name, model),
    }
}

/// The headers that name the answering target; a name that is no valid header value is left
/// out rather than mangled.
pub(super) fn answer_headers(provider: &str, model: &str) -> Arc<[(HeaderName, HeaderValue)]> {
    [(PROVIDER_HEADER, provider), (MODEL_HEADER, model)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, HeaderValue::from_str(value).ok()?)))
        .collect()
}

fn route(
    check: &mut Checker<'_>,
    name: &str,
    raw: &Spanned<RawRoute>,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> Option<Route> {
    let table = format!("routes.{name}");
    let errors_before = check.errors.len();
    if name.is_empty() || name.contains('/') {
        check.error(
            Some(raw.span()),
            &table,
            "",
            "route names must be non-empty and contain no `/` (that form addresses a provider \
             directly)"
                .into(),
        );
    }
    let raw = raw.get_ref();
    let targets_raw = &raw.targets;
    if targets_raw.get_ref().is_empty() {
        check.error(
            Some(targets_raw.span()),
            &table,
            "targets",
            "must list at least one \"provider/model\"".into(),
        );
    }
    let span = targets_raw.span();
    let mut targets = Vec::new();
    for spec in targets_raw.get_ref() {
        let (text, weight) = match spec {
            RawTarget::Plain(text) => (text, 1),
            RawTarget::Weighted(weighted) => (&weighted.target, weighted.weight),
        };
        if let Some(target) = target(check, &table, span.clone(), text, weight, providers) {
            targets.push(target);
        }
    }
    let strategy = raw
        .strategy
        .as_ref()
        .map_or(Some(Strategy::default()), |value| {
            check.named(value, &table, "strategy")
        });
    let on_payment_required = raw
        .on_payment_required
        .as_ref()
        .map_or(Some(OnPaymentRequired::default()), |value| {
            check.named(value, &table, "on_payment_required")
        });
    let weighted = strategy == Some(Strategy::Weighted);
    let has_weights = raw
        .targets
        .get_ref()
        .iter()
        .any(|t| matches!(t, RawTarget::Weighted(_)));
    if has_weights && !weighted && strategy.is_some() {
        check.error(
            Some(span.clone()),
            &table,
            "targets",
            "weights only apply with strategy = \"weighted\"".into(),
        );
    }
    let embeddings = targets.first().is_some_and(|t| t.embeddings);
    if targets.iter().any(|t| t.embeddings != embeddings) {
        check.error(
            Some(span),
            &table,
            "targets",
            "mixes embeddings models (embeddings = true) with chat models; a route serves one \
             or the other"
                .into(),
        );
    }
    let (Some(strategy), Some(on_payment_required)) = (strategy, on_payment_required) else {
        return None;
    };
    (check.errors.len() == errors_before).then(|| Route {
        name: Arc::from(name),
        embeddings,
        targets,
        strategy,
        failover_on_timeout: raw.failover_on_timeout.unwrap_or(true),
        on_payment_required,
        direct: false,
    })
}

/// One `"provider/model"` of a route, checked against the providers.
fn target(
    check: &mut Checker<'_>,
    table: &str,
    span: Range<usize>,
    text: &str,
    weight: u32,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> Option<Target> {
    if weight == 0 {
        check.error(
            Some(span),
            table,
            "targets",
            format!("`{text}` has weight 0; remove it or give it a positive weight"),
        );
        return None;
    }
    let Some((provider, model)) = text.split_once('/') else {
        check.error(
            Some(span),
            table,
            "targets",
            format!("`{text}` must be written \"provider/model\""),
        );
        return None;
    };
    match providers.get(provider) {
        Some(_) if model == WILDCARD_MODEL => {
            check.error(
                Some(span),
                table,
                "targets",
                format!(
                    "`{text}` is the provider's wildcard, not a model; name the model a route \
                     sends to"
                ),
            );
            None
        }
        Some(found) if !model.is_empty() => Some(make_target(found, model, weight)),
        Some(_) => {
            check.error(
                Some(span),
                table,
                "targets",
                format!("`{text}` names no model after the `/`"),
            );
            None
        }
        None => {
            check.error(
                Some(span),
                table,
                "targets",
                format!(
                    "`{text}` names provider `{provider}`, which is not defined (known: {})",
                    providers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "QWEN_KEY" => Some("sk-qwen".into()),
            "CLIENT_KEY" => Some("client-secret".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Snapshot, ConfigErrors> {
        validate(text, "test.toml", &env)
    }

    fn first_error(text: &str) -> ConfigError {
        parse(text).unwrap_err().0.remove(0)
    }

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9999"
max_body = "1MiB"

[[keys]]
name = "web"
key_env = "CLIENT_KEY"

[providers.qwen]
kind = "qwen"
base_url = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/"
api_key_env = "QWEN_KEY"
forward_headers = ["X-Alipay-"]

[providers.qwen.models."qwen-max"]

[providers.mistral]
kind = "mistral"
base_url = "https://api.mistral.ai/v1"
api_key_env = "MISTRAL_KEY"

[providers.local]
kind = "mock"
latency = "10ms"

[routes.demo]
targets = ["local/echo"]

[routes.chat]
targets = ["mistral/mistral-small-latest", "qwen/qwen-plus"]
"#;

    #[test]
    fn a_good_file_becomes_checked_types() {
        let snapshot = parse(GOOD).unwrap();
        assert_eq!(snapshot.server.listen.port(), 9999);
        assert_eq!(snapshot.server.max_body, 1 << 20);
        let qwen = &snapshot.providers["qwen"];
        assert_eq!(
            qwen.base_url,
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
        );
        assert_eq!(qwen.secret.as_ref().unwrap().expose(), "sk-qwen");
        assert_eq!(qwen.forward_headers, vec!["x-alipay-"]);
        assert_eq!(
            snapshot.providers["mistral"].disabled.as_deref(),
            Some("$MISTRAL_KEY is not set")
        );
        let mock = snapshot.providers["local"].mock.as_ref().unwrap();
        assert_eq!(mock.latency, Duration::from_millis(10));
        let chat = snapshot.route("chat").unwrap();
        assert_eq!(&*chat.targets[1].label, "qwen/qwen-plus");
        // Route targets and declared models are addressable directly.
        for direct in ["qwen/qwen-max", "qwen/qwen-plus", "local/echo"] {
            assert!(snapshot.route(direct).unwrap().direct, "{direct}");
        }
        assert!(snapshot.route("qwen/unknown").is_none());
        assert_eq!(
            snapshot.keys[0].digest.unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"client-secret"))
        );
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let snapshot = parse(GOOD).unwrap();
        assert!(!format!("{snapshot:?}").contains("sk-qwen"));
    }

    #[test]
    fn unknown_fields_are_errors_with_table_and_line() {
        let error =
            first_error("[providers.x]\nkind = \"openai\"\nbase_url = \"http://a\"\nrpn = 5\n");
        assert_eq!(error.line, Some(4));
        assert_eq!(error.table, "providers.x");
        assert!(error.reason.contains("rpn"), "{error}");
    }

    #[test]
    fn embeddings_models_make_embeddings_routes_and_never_anthropic_ones() {
        let text = "[providers.m]\nkind = \"mock\"\n[providers.m.models.\"vec\"]\nembeddings = true\n\
                    [routes.search]\ntargets = [\"m/vec\"]\n[routes.talk]\ntargets = [\"m/chat\"]\n";
        let snapshot = parse(text).unwrap();
        assert!(snapshot.routes["search"].embeddings);
        assert!(snapshot.routes["m/vec"].embeddings);
        assert!(snapshot.routes["search"].targets[0].embeddings);
        assert!(!snapshot.routes["talk"].embeddings);
        let anthropic = first_error(
            "[providers.a]\nkind = \"anthropic\"\nbase_url = \"http://x\"\n\
             [providers.a.models.\"claude\"]\nembeddings = true\n",
        );
        assert_eq!(
            (&*anthropic.table, &*anthropic.field),
            ("providers.a.models.claude", "embeddings")
        );
        assert!(
            anthropic.reason.contains("no embeddings API"),
            "{anthropic}"
        );
        let mixed = first_error(
            "[providers.m]\nkind = \"mock\"\n[providers.m.models.\"vec\"]\nembeddings = true\n\
             [providers.a]\nkind = \"anthropic\"\nbase_url = \"http://x\"\n\
             [routes.search]\ntargets = [\"m/vec\", \"a/claude\"]\n",
        );
        assert_eq!((&*mixed.table, &*mixed.field), ("routes.search", "targets"));
        assert!(mixed.reason.contains("mixes embeddings models"), "{mixed}");
    }

    #[test]
    fn a2m_payment_is_only_for_openai_wire_providers() {
        let error = first_error(
            "[providers.m]\nkind = \"mistral\"\nbase_url = \"http://x\"\npayment = \"a2m\"\n",
        );
        assert_eq!(
            (error.table.as_str(), error.field.as_str()),
            ("providers.m", "payment")
        );
        let snapshot = parse(
            "[providers.a]\nkind = \"qwen\"\nbase_url = \"http://x\"\npayment = \"a2m\"\n\
             [routes.r]\ntargets = [\"a/m\"]\non_payment_required = \"failover\"\n",
        )
        .unwrap();
        let route = snapshot.route("r").unwrap();
        assert_eq!(route.on_payment_required, OnPaymentRequired::Failover);
        assert_eq!(route.targets[0].provider.payment, Payment::A2m);
        let error = first_error(
            "[providers.a]\nkind = \"qwen\"\nbase_url = \"http://x\"\n\
             [routes.r]\ntargets = [\"a/m\"]\non_payment_required = \"pay\"\n",
        );
        assert!(error.reason.contains("pay"), "{error}");
    }

    #[test]
    fn unknown_names_say_their_field_and_the_names_allowed() {
        let route = |line: &str| {
            format!("[providers.m]\nkind = \"mock\"\n[routes.r]\ntargets = [\"m/x\"]\n{line}\n")
        };
        let cases = [
            (
                "[providers.broken]\nkind = \"nope\"\n".to_owned(),
                "test.toml:2: [providers.broken] kind: unknown kind \"nope\", expected one of \
                 openai, qwen, mistral, anthropic, gemini, mock",
            ),
            (
                "[providers.q]\nkind = \"qwen\"\nbase_url = \"http://x\"\npayment = \"card\"\n"
                    .to_owned(),
                "test.toml:4: [providers.q] payment: unknown payment \"card\", expected one of \
                 none, a2m",
            ),
            (
                route("strategy = \"random\""),
                "test.toml:5: [routes.r] strategy: unknown strategy \"random\", expected one of \
                 priority, weighted",
            ),
            (
                route("on_payment_required = \"pay\""),
                "test.toml:5: [routes.r] on_payment_required: unknown on_payment_required \
                 \"pay\", expected one of quote, failover",
            ),
        ];
        for (text, expected) in cases {
            let errors = parse(&text).unwrap_err().0;
            assert_eq!(errors.len(), 1, "{text}: {errors:?}");
            assert_eq!(errors[0].to_string(), expected);
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_field() {
        let cases = [
            (
                "[providers.m]\nkind = \"mock\"\nrpm = \"many\"\n",
                "providers.m",
                "rpm",
            ),
            ("[providers.m]\nkind = 5\n", "providers.m", "kind"),
            (
                "[providers.m]\nkind = \"mock\"\n[providers.m.models.\"x\"]\nmax_tokens = -1\n",
                "providers.m.models.\"x\"",
                "max_tokens",
            ),
            ("[[keys]]\nname = \"a\"\nadmin = \"yes\"\n", "keys", "admin"),
            ("[routing]\nmax_attempts = 1.5\n", "routing", "max_attempts"),
        ];
        for (text, table, field) in cases {
            let error = first_error(text);
            assert_eq!(
                (error.table.as_str(), error.field.as_str()),
                (table, field),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn a_wildcard_model_table_serves_any_name_but_no_route_targets_it() {
        let text = "[providers.w]\nkind = \"mock\"\n[providers.w.models.\"*\"]\nmax_tokens = 7\n\
                    [providers.w.models.\"known\"]\n[providers.p]\nkind = \"mock\"\n";
        let snapshot = parse(text).unwrap();
        let wildcard = snapshot.route("w/new-model").unwrap();
        assert!(wildcard.is_wildcard());
        assert_eq!(&*wildcard.name, "w/*");
        let served = wildcard.serving("w/new-model").unwrap();
        let target = &served.targets[0];
        assert_eq!(
            (&*target.model, &*target.label),
            ("new-model", "w/new-model")
        );
        assert_eq!((&*target.declared, target.max_tokens), ("w/*", Some(7)));
        assert!(wildcard.serving("w/bad\u{7}name").is_none());
        assert!(!snapshot.route("w/known").unwrap().is_wildcard());
        assert!(snapshot.route("p/new-model").is_none());
        let error = first_error(&format!("{text}[routes.r]\ntargets = [\"w/*\"]\n"));
        assert_eq!(
            (error.table.as_str(), error.field.as_str()),
            ("routes.r", "targets")
        );
        assert!(error.reason.contains("wildcard"), "{error}");
    }

    #[test]
    fn routes_must_name_existing_providers() {
        let error = first_error("[routes.r]\ntargets = [\"ghost/m\"]\n");
        assert_eq!(error.table, "routes.r");
        assert_eq!(error.field, "targets");
        assert_eq!(error.line, Some(2));
        assert!(error.reason.contains("ghost"));
    }

    #[test]
    fn bad_values_name_table_and_field() {
        let cases = [
            (
                "[routing]\nattempt_timeout = \"soon\"\n",
                "routing",
                "attempt_timeout",
            ),
            ("[server]\nmax_body = \"4 parsecs\"\n", "server", "max_body"),
            ("[server]\nlisten = \"localhost\"\n", "server", "listen"),
            (
                "[providers.m]\nkind = \"mock\"\nerror_rate = 1.5\n",
                "providers.m",
                "error_rate",
            ),
            (
                "[providers.o]\nkind = \"openai\"\nbase_url = \"http://x\"\nforward_headers = [\"x-\"]\n",
                "providers.o",
                "forward_headers",
            ),
            (
                "[providers.o]\nkind = \"openai\"\nbase_url = \"http://x\"\nforward_headers = [\"Set-Cookie\"]\n",
                "providers.o",
                "forward_headers",
            ),
            (
                "[providers.o]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n",
                "providers.o",
                "base_url",
            ),
            (
                "[providers.o]\nkind = \"openai\"\n",
                "providers.o",
                "base_url",
            ),
            (
                "[providers.o]\nkind = \"openai\"\nbase_url = \"http://x\"\nreply = \"hi\"\n",
                "providers.o",
                "reply",
            ),
            ("[[keys]]\nname = \"a\"\n", "keys[0]", "key_env"),
            (
                "[[keys]]\nname = \"a\"\nsha256 = \"abc\"\n",
                "keys[0]",
                "sha256",
            ),
            (
                "[providers.m]\nkind = \"mock\"\n[routes.r]\ntargets = []\n",
                "routes.r",
                "targets",
            ),
            (
                "[providers.m]\nkind = \"mock\"\n[routes.\"a/b\"]\ntargets = [\"m/x\"]\n",
                "routes.a/b",
                "",
            ),
        ];
        for (text, table, field) in cases {
            let error = first_error(text);
            assert_eq!(
                (error.table.as_str(), error.field.as_str()),
                (table, field),
                "{text}"
            );
            assert!(error.to_string().starts_with("test.toml"), "{error}");
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let text = "[[keys]]\nname = \"a\"\nkey_env = \"CLIENT_KEY\"\n[[keys]]\nname = \"a\"\nkey_env = \"CLIENT_KEY\"\n";
        let errors = parse(text).unwrap_err().0;
        assert!(errors.iter().any(|e| e.reason.contains("unique")));
        assert!(
            errors
                .iter()
                .any(|e| e.reason.contains("same as another key"))
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let text = "[routing]\nattempt_timeout = \"x\"\nrequest_timeout = \"y\"\n\
                    [providers.m]\nkind = \"mock\"\n";
        assert_eq!(parse(text).unwrap_err().0.len(), 2);
    }

    const PRICED: &str = r#"
[providers.qwen]
kind = "qwen"
base_url = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
api_key_env = "QWEN_KEY"

[providers.qwen.models."qwen-max"]
input_per_mtok = 1.6
output_per_mtok = 6.4
cached_input_per_mtok = 0.64
currency = "USD"

[providers.qwen.models."exact"]
input_per_mtok = "0.000000000001"
cache_write_per_mtok = 3
per_transaction = 0.01
currency = "CNY"

[providers.qwen.models."free"]
currency = "EUR"

[providers.qwen.models."unpriced"]

[routes.r]
targets = ["qwen/qwen-max", "qwen/unpriced"]
"#;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn prices_become_exact_decimals_and_travel_with_targets() {
        let snapshot = parse(PRICED).unwrap();
        let route = snapshot.route("r").unwrap();
        let max = route.targets[0].prices.as_deref().unwrap();
        assert_eq!(max.input_per_mtok, Some(dec("1.6")));
        assert_eq!(max.output_per_mtok, Some(dec("6.4")));
        assert_eq!(max.cached_input_per_mtok, Some(dec("0.64")));
        assert_eq!(max.cache_write_per_mtok, None);
        assert_eq!(&*max.currency, "USD");
        assert!(route.targets[1].prices.is_none());
        let exact = snapshot.route("qwen/exact").unwrap().targets[0]
            .prices
            .clone()
            .unwrap();
        assert_eq!(exact.input_per_mtok, Some(dec("0.000000000001")));
        assert_eq!(exact.cache_write_per_mtok, Some(dec("3")));
        assert_eq!(exact.per_transaction, Some(dec("0.01")));
        let free = snapshot.route("qwen/free").unwrap().targets[0]
            .prices
            .clone()
            .unwrap();
        assert_eq!((free.input_per_mtok, &*free.currency), (None, "EUR"));
    }

    #[test]
    fn bad_prices_name_the_model_table_and_field() {
        let model = |fields: &str| {
            format!("[providers.m]\nkind = \"mock\"\n[providers.m.models.\"x\"]\n{fields}\n")
        };
        let cases = [
            (
                "input_per_mtok = -1.5\ncurrency = \"USD\"",
                "input_per_mtok",
                "negative",
            ),
            (
                "per_transaction = \"-0.01\"\ncurrency = \"CNY\"",
                "per_transaction",
                "negative",
            ),
            (
                "output_per_mtok = \"cheap\"\ncurrency = \"USD\"",
                "output_per_mtok",
                "not a price",
            ),
            (
                "output_per_mtok = nan\ncurrency = \"USD\"",
                "output_per_mtok",
                "not a price",
            ),
            (
                "cached_input_per_mtok = \"0.0000000000001\"\ncurrency = \"USD\"",
                "cached_input_per_mtok",
                "decimal places",
            ),
            ("input_per_mtok = 1", "currency", "required"),
            (
                "input_per_mtok = 1\ncurrency = \"usd\"",
                "currency",
                "ISO 4217",
            ),
            ("currency = \"DOLLARS\"", "currency", "ISO 4217"),
        ];
        for (fields, field, reason) in cases {
            let error = first_error(&model(fields));
            assert_eq!(
                (error.table.as_str(), error.field.as_str()),
                ("providers.m.models.x", field),
                "{fields}"
            );
            assert!(error.reason.contains(reason), "{fields}: {error}");
        }
        let error = first_error(&model("input_per_mtok = true\ncurrency = \"USD\""));
        assert!(error.reason.contains("a price"), "{error}");
    }

    #[test]
    fn accounting_settings_are_checked() {
        let snapshot = parse("[providers.m]\nkind = \"mock\"\n").unwrap();
        assert_eq!(snapshot.accounting.transaction_header, "x-transaction-id");
        assert_eq!(
            snapshot.accounting.transaction_window,
            Duration::from_secs(86400)
        );
        assert_eq!(snapshot.accounting.max_transactions, 100_000);
        let snapshot = parse(
            "[providers.m]\nkind = \"mock\"\n[accounting]\ntransaction_header = \"X-Order-Id\"\ntransaction_window = \"1h\"\nmax_transactions = 5\n",
        )
        .unwrap();
        assert_eq!(snapshot.accounting.transaction_header, "x-order-id");
        assert_eq!(
            snapshot.accounting.transaction_window,
            Duration::from_secs(3600)
        );
        assert_eq!(snapshot.accounting.max_transactions, 5);
        for (text, field) in [
            ("transaction_header = \"x id\"", "transaction_header"),
            ("transaction_window = \"soon\"", "transaction_window"),
            ("max_transactions = 0", "max_transactions"),
        ] {
            let error = first_error(&format!("[accounting]\n{text}\n"));
            assert_eq!(
                (error.table.as_str(), error.field.as_str()),
                ("accounting", field)
            );
            assert_eq!(error.line, Some(2), "{error}");
        }
    }

    #[test]
    fn log_format_is_text_unless_json_is_asked_for() {
        let format = |line: &str| {
            parse(&format!(
                "[server]\n{line}\n[providers.m]\nkind = \"mock\"\n"
            ))
            .map(|s| s.server.log_format)
        };
        assert_eq!(format("").unwrap(), LogFormat::Text);
        assert_eq!(format("log_format = \"text\"").unwrap(), LogFormat::Text);
        assert_eq!(format("log_format = \"json\"").unwrap(), LogFormat::Json);
        let error =
            first_error("[server]\nlog_format = \"logfmt\"\n[providers.m]\nkind = \"mock\"\n");
        assert_eq!(
            (error.table.as_str(), error.field.as_str(), error.line),
            ("server", "log_format", Some(2))
        );
        assert!(error.reason.contains("`logfmt`"), "{error}");
        assert!(error.reason.contains("\"text\" or \"json\""), "{error}");
    }

    #[test]
    fn the_redactor_knows_provider_keys_and_client_keys_from_the_environment() {
        let snapshot = parse(GOOD).unwrap();
        let text = "provider key sk-qwen, client key client-secre...";
        assert_eq!(
            snapshot.redactor.redact(text),
            "provider key [redacted], client key [redacted]..."
        );
        let reloaded = validate(GOOD, "test.toml", &|name| {
            (name == "QWEN_KEY").then(|| "rotated-qwen-key".to_owned())
        })
        .unwrap();
        assert_eq!(
            reloaded.redactor.redact(text),
            text,
            "the old keys are gone"
        );
        assert_eq!(
            reloaded.redactor.redact("rotated-qwen"),
            "[redacted]",
            "the new key is known"
        );
    }

    #[test]
    fn reload_interval_defaults_to_a_second_and_zero_turns_the_watch_off() {
        let mock = "[providers.m]\nkind = \"mock\"\n";
        let interval = |server: &str| {
            parse(&format!("[server]\n{server}\n{mock}"))
                .map(|s| s.server.reload_interval)
                .map_err(|mut e| e.0.remove(0))
        };
        assert_eq!(interval(""), Ok(Duration::from_secs(1)));
        assert_eq!(interval("reload_interval = \"0s\""), Ok(Duration::ZERO));
        assert_eq!(
            interval("reload_interval = \"250ms\""),
            Ok(Duration::from_millis(250))
        );
        for bad in ["reload_interval = \"1ms\"", "reload_interval = \"soon\""] {
            let error = interval(bad).unwrap_err();
            assert_eq!(
                (error.table.as_str(), error.field.as_str()),
                ("server", "reload_interval")
            );
            assert!(error.reason.contains("0s"), "{error}");
        }
    }

    #[test]
    fn keys_are_not_admin_unless_marked() {
        let text = "[[keys]]\nname = \"a\"\nkey_env = \"CLIENT_KEY\"\n\
                    [[keys]]\nname = \"b\"\nsha256 = \"00\"\nadmin = true\n";
        let text = text.replace("\"00\"", &format!("\"{}\"", "ab".repeat(32)));
        let snapshot = parse(&format!("{text}[providers.m]\nkind = \"mock\"\n")).unwrap();
        assert!(!snapshot.keys[0].admin);
        assert!(snapshot.keys[1].admin);
    }

    #[test]
    fn limits_must_be_positive_whole_numbers() {
        for (value, shown) in [
            ("0", "got 0"),
            ("-1", "got -1"),
            ("5000000000", "got 5000000000"),
        ] {
            let error = first_error(&format!("[providers.m]\nkind = \"mock\"\nrpm = {value}\n"));
            assert_eq!(
                (error.table.as_str(), error.field.as_str()),
                ("providers.m", "rpm")
            );
            assert_eq!(error.line, Some(3));
            assert!(error.reason.contains(shown), "{error}");
        }
    }

    #[test]
    fn a_file_with_nothing_to_serve_is_refused() {
        for text in ["", "# only a comment\n", "[server]\nmax_body = \"1MiB\"\n"] {
            let error = first_error(text);
            assert_eq!(error.table, "top level", "{text}");
            assert!(error.reason.contains("nothing could be served"), "{error}");
        }
    }

    #[test]
    fn the_snapshot_names_its_version_by_the_file_hash() {
        let snapshot = parse(GOOD).unwrap();
        assert_eq!(
            snapshot.sha256,
            hex::encode(Sha256::digest(GOOD.as_bytes()))
        );
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4MiB"), Some(4 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1MB"), Some(1_000_000));
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("4 lightyears"), None);
    }
}
