//! The serde mirror of `providers.toml`: strings as written, nothing checked but shape.
//!
//! Every table denies unknown fields, so a typo is an error with a line number instead of a
//! setting silently ignored. `Spanned` values let validation errors point at a line too.
//! Settings that take one of a few names are read as text: validation names the field and the
//! names allowed when one is unknown, which serde's own message does not.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) routing: RawRouting,
    #[serde(default)]
    pub(super) upstream: RawUpstream,
    #[serde(default)]
    pub(super) accounting: RawAccounting,
    #[serde(default)]
    pub(super) keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    pub(super) providers: BTreeMap<String, Spanned<RawProvider>>,
    #[serde(default)]
    pub(super) routes: BTreeMap<String, Spanned<RawRoute>>,
    pub(super) usage_log: Option<RawUsageLog>,
}

/// `[usage_log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUsageLog {
    pub(super) path: Spanned<String>,
    pub(super) include_bodies: Option<bool>,
    pub(super) buffer: Option<Spanned<u32>>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) max_body: Option<Spanned<String>>,
    pub(super) shutdown_grace: Option<Spanned<String>>,
    pub(super) reload_interval: Option<Spanned<String>>,
    pub(super) header_read_timeout: Option<Spanned<String>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) max_inflight: Option<Spanned<i64>>,
    pub(super) cors_allowed_origins: Option<Vec<Spanned<String>>>,
    pub(super) log_format: Option<Spanned<String>>,
}

/// `[routing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouting {
    pub(super) max_attempts: Option<Spanned<u32>>,
    pub(super) default_cooldown: Option<Spanned<String>>,
    pub(super) max_cooldown: Option<Spanned<String>>,
    pub(super) account_cooldown: Option<Spanned<String>>,
    pub(super) attempt_timeout: Option<Spanned<String>>,
    pub(super) request_timeout: Option<Spanned<String>>,
    pub(super) stream_idle_timeout: Option<Spanned<String>>,
}

/// `[upstream]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) pool_idle_timeout: Option<Spanned<String>>,
}

/// `[accounting]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccounting {
    pub(super) transaction_header: Option<Spanned<String>>,
    pub(super) transaction_window: Option<Spanned<String>>,
    pub(super) max_transactions: Option<Spanned<u64>>,
}

/// One `[[keys]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) name: Spanned<String>,
    pub(super) key_env: Option<Spanned<String>>,
    pub(super) sha256: Option<Spanned<String>>,
    pub(super) rpm: Option<Spanned<i64>>,
    pub(super) tpm: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) admin: bool,
}

/// One `[providers.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) kind: Spanned<String>,
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) api_key_env: Option<Spanned<String>>,
    // Limits are read as signed so that `rpm = -1` gets "must be at least 1" rather than a
    // type error about `u32`.
    pub(super) rpm: Option<Spanned<i64>>,
    pub(super) tpm: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) forward_headers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) models: BTreeMap<String, RawModel>,
    pub(super) reply: Option<Spanned<String>>,
    pub(super) latency: Option<Spanned<String>>,
    pub(super) chunk_delay: Option<Spanned<String>>,
    pub(super) error_rate: Option<Spanned<f64>>,
    pub(super) error_status: Option<Spanned<u16>>,
    pub(super) payment: Option<Spanned<String>>,
}

/// One `[providers.NAME.models."MODEL"]` table. It declares a model that clients may address
/// directly as `provider/model`, with its per-model settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) max_tokens: Option<Spanned<u32>>,
    pub(super) input_per_mtok: Option<Spanned<RawPrice>>,
    pub(super) output_per_mtok: Option<Spanned<RawPrice>>,
    pub(super) cached_input_per_mtok: Option<Spanned<RawPrice>>,
    pub(super) cache_write_per_mtok: Option<Spanned<RawPrice>>,
    pub(super) per_transaction: Option<Spanned<RawPrice>>,
    pub(super) currency: Option<Spanned<String>>,
    pub(super) embeddings: Option<Spanned<bool>>,
}

/// A price as written: the decimal text of a TOML number (a float's shortest round-trip
/// form, so `0.3` stays `0.3`) or of a string, for amounts a float cannot hold exactly.
#[derive(Debug)]
pub(super) struct RawPrice(pub(super) String);

impl<'de> Deserialize<'de> for RawPrice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PriceVisitor;
        impl Visitor<'_> for PriceVisitor {
            type Value = RawPrice;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a price: a number such as 1.25, or a string such as \"1.25\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawPrice, E> {
                // `Display` of an f64 is its shortest round-trip decimal, never an exponent.
                Ok(RawPrice(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPrice, E> {
                Ok(RawPrice(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPrice, E> {
                Ok(RawPrice(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPrice, E> {
                Ok(RawPrice(v.trim().to_owned()))
            }
        }
        deserializer.deserialize_any(PriceVisitor)
    }
}

/// One `[routes.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) strategy: Option<Spanned<String>>,
    pub(super) targets: Spanned<Vec<RawTarget>>,
    pub(super) failover_on_timeout: Option<bool>,
    pub(super) on_payment_required: Option<Spanned<String>>,
}

/// A route target: `"provider/model"`, or `{ target = "provider/model", weight = N }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawTarget {
    Plain(String),
    Weighted(RawWeighted),
}

/// The table form of a route target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeighted {
    pub(super) target: String,
    pub(super) weight: u32,
}
