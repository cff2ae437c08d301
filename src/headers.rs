//! The names of the HTTP headers the router itself reads from clients and writes on answers,
//! in one place: a typo here is a contract break the compiler cannot see elsewhere.
//!
//! Header names are lowercase `HeaderName` constants (`from_static` of a lowercase literal
//! costs nothing at run time). Provider-specific headers stay with their adapter; the
//! `x-ratelimit-*` trio stays with the code that writes its values ([`crate::limits`]).

use http::HeaderName;

/// Answers: the provider that answered.
pub const PROVIDER: HeaderName = HeaderName::from_static("x-switchboard-provider");

/// Answers: the model that answered.
pub const MODEL: HeaderName = HeaderName::from_static("x-switchboard-model");

/// Answers: how many upstream attempts the answer took.
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchboard-attempts");

/// Answers: the router's own time on the request, in milliseconds.
pub const OVERHEAD_MS: HeaderName = HeaderName::from_static("x-switchboard-overhead-ms");

/// Answers: what the request cost (`0.000123 USD`).
pub const COST: HeaderName = HeaderName::from_static("x-switchboard-cost");

/// Requests: pins a paid retry to one `provider/model`.
pub const TARGET: HeaderName = HeaderName::from_static("x-switchboard-target");

/// Errors: tells the official SDKs not to retry an answer a retry cannot change.
pub const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// Requests: the client's idempotency key, passed to every attempt.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A2M answers: a seller's price quote (a 402's).
pub const PAYMENT_NEEDED: HeaderName = HeaderName::from_static("payment-needed");

/// A2M requests: the proof that a quote was paid.
pub const PAYMENT_PROOF: HeaderName = HeaderName::from_static("payment-proof");

/// A2M answers: the seller's record of a paid, served call.
pub const PAYMENT_VALIDATION: HeaderName = HeaderName::from_static("payment-validation");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_s_own_answer_headers_share_one_prefix() {
        for name in [PROVIDER, MODEL, ATTEMPTS, OVERHEAD_MS, COST, TARGET] {
            assert!(name.as_str().starts_with("x-switchboard-"), "{name}");
        }
    }
}
