//! switchboard: an LLM router that speaks the OpenAI Chat Completions API to its clients and
//! routes each request to Qwen (Alibaba Model Studio, Alipay endpoints included), Mistral,
//! any OpenAI-compatible upstream, or its own built-in mock.
//!
//! The request path, in module order: [`server`] accepts connections and hands each to one
//! of the [`workers`], [`app`] gives each request an id and hands it to [`api`], which
//! authenticates ([`auth`]), validates the body ([`openai`]) and asks the [`router`] for an answer. The router resolves the model
//! against the [`config`] snapshot, has a provider adapter ([`providers`]) build the request,
//! sends it through [`upstream`], and the answer comes back whole or as a [`stream`] of
//! [`sse`] events. [`error`] is the only place an error becomes an HTTP response.
//! [`config::reload`] swaps in a new configuration while the router runs; [`admin_client`]
//! fetches a running router's configuration for `--check --against`. Text from a provider is
//! cleaned of the configuration's secrets by [`redact`] where it enters the router, and the
//! process log ([`logging`]) escapes whatever a client or provider could put in a line.

pub mod access_log;
pub mod accounting;
pub mod admin_client;
pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod config;
pub mod connection;
pub mod endpoint;
pub mod error;
pub mod headers;
pub mod json_guard;
pub mod json_scan;
pub mod json_syntax;
pub mod layers;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod openai;
pub mod payment;
pub mod providers;
pub mod redact;
pub mod responses;
pub mod retry_after;
pub mod router;
pub mod server;
pub mod sse;
pub mod stream;
pub mod upstream;
pub mod usage_log;
pub mod workers;
