//! Integration tests: one binary (one link step), one module per area.

mod accounting;
mod anthropic;
mod auth;
mod chat;
mod errors;
mod failover;
mod fidelity;
mod fuzz;
mod gemini;
mod hardening;
mod limits;
mod logging;
mod metrics;
mod mistral;
mod payments;
mod poison;
mod qwen;
mod redaction;
mod reload;
mod sdk_async_openai;
mod sdk_python;
mod shipped_config;
mod shutdown;
mod streaming;
mod support;
mod usage_log;
