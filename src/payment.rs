//! Alipay's agent-to-merchant pay-per-call exchange (the "HTTP 402" protocol).
//!
//! A seller answers 402 with a `Payment-Needed` quote; the client pays and repeats the call
//! with `Payment-Proof`; the seller answers 200 with `Payment-Validation`. The router never
//! alters these headers (they are signed, or carry Alipay's opaque client session): it only
//! reads them, to route the paid retry to the seller that quoted and to charge the quoted
//! amount. Decoding is total: a malformed header yields `None`, never a panic.
//!
//! Quotes are remembered by a [`QuoteMemory`] so that the paid retry finds its seller and its
//! price: in this process a bounded, expiring [`RecentQuotes`]; a shared store can take its
//! place when replicas must agree, as for the transaction ledger.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// The response header of a price quote, named here too for the adapters that read it.
pub use crate::headers::PAYMENT_NEEDED;

/// The seller's error code for a payment proof it refuses.
pub const INVALID_PAYMENT_PROOF: &str = "INVALID_PAYMENT_PROOF";

/// The longest a quote is remembered, whatever its `pay_before` says.
const MAX_QUOTE_LIFE: Duration = Duration::from_secs(24 * 3600);

/// The decoded fields of a `Payment-Needed` header that the router uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The seller's order number.
    pub out_trade_no: String,
    /// The price, exact.
    pub amount: Decimal,
    /// Its ISO 4217 currency (`CNY` today).
    pub currency: Arc<str>,
    /// The deadline to pay, as the seller wrote it.
    pub pay_before: String,
    /// Time left to pay, when `pay_before` could be read and lies ahead.
    pub time_left: Option<Duration>,
}

/// A `Payment-Needed` header as the seller sent it, and what could be read from it.
#[derive(Clone, Debug)]
pub struct QuoteHeader {
    /// The header, byte for byte.
    pub raw: HeaderValue,
    /// The decoded quote; `None` when the header is malformed.
    pub quote: Option<Quote>,
}

impl QuoteHeader {
    /// Reads a `Payment-Needed` header.
    pub fn new(raw: &HeaderValue) -> Self {
        Self {
            raw: raw.clone(),
            quote: decode_quote(raw.as_bytes()),
        }
    }
}

/// The decoded fields of a `Payment-Validation` header.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Validation {
    /// Alipay's trade number.
    #[serde(default)]
    pub trade_no: String,
    /// The seller's order number.
    pub out_trade_no: String,
    /// Whether the seller accepted the payment.
    pub validated: bool,
}

/// Reads a `Payment-Validation` header; `None` when it is malformed.
pub fn decode_validation(raw: &[u8]) -> Option<Validation> {
    serde_json::from_slice(&base64url(raw)?).ok()
}

/// The fields of `Payment-Needed` as JSON.
#[derive(Deserialize)]
struct RawQuote {
    out_trade_no: String,
    amount: String,
    currency: String,
    pay_before: String,
}

/// Reads a `Payment-Needed` header; `None` when it is not base64url JSON with an order
/// number, a decimal amount, a currency and a deadline.
pub fn decode_quote(raw: &[u8]) -> Option<Quote> {
    let fields: RawQuote = serde_json::from_slice(&base64url(raw)?).ok()?;
    let amount: Decimal = fields.amount.trim().parse().ok()?;
    if fields.out_trade_no.is_empty() || fields.currency.is_empty() || amount.is_sign_negative() {
        return None;
    }
    let time_left = unix_seconds(&fields.pay_before).and_then(|deadline| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let left = u64::try_from(deadline).ok()?.checked_sub(now)?;
        Some(Duration::from_secs(left))
    });
    Some(Quote {
        out_trade_no: fields.out_trade_no,
        amount,
        currency: Arc::from(fields.currency),
        pay_before: fields.pay_before,
        time_left,
    })
}

/// Decodes base64url, padded or not; the standard alphabet is accepted too, since sellers'
/// libraries differ.
fn base64url(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    let text = text.trim_ascii();
    URL_SAFE
        .decode(text)
        .or_else(|_| STANDARD.decode(text))
        .ok()
}

/// Seconds since the epoch of an RFC 3339 time such as `2026-04-15T12:54:37+08:00`.
fn unix_seconds(text: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
    at.ok().map(time::OffsetDateTime::unix_timestamp)
}

/// Who quoted a request: the client key and the SHA-256 of the request body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuoteKey(String);

impl QuoteKey {
    /// The key of a request by client key `key` with body `body`.
    pub fn new(key: &str, body: &[u8]) -> Self {
        Self(format!("{key}\u{0}{}", hex::encode(Sha256::digest(body))))
    }
}

/// A remembered quote: the target that issued it and its price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// The quoting target, `provider/model`.
    pub target: Arc<str>,
    /// The quote.
    pub quote: Quote,
}

/// Where quotes are remembered until their deadline. One process keeps them in memory
/// ([`RecentQuotes`]); replicas need a shared store behind this same interface.
pub trait QuoteMemory: Send + Sync {
    /// Remembers that `quoted.target` quoted the request `key`.
    fn remember(&self, key: QuoteKey, quoted: Quoted);
    /// The target that quoted the request `key`, while its quote may still be paid.
    fn seller(&self, key: &QuoteKey) -> Option<Arc<str>>;
    /// The quote of order `out_trade_no` issued by `provider`, while remembered.
    fn order(&self, provider: &str, out_trade_no: &str) -> Option<Quote>;
}

/// A bounded, expiring [`QuoteMemory`] in this process.
#[derive(Debug)]
pub struct RecentQuotes {
    capacity: usize,
    inner: Mutex<Remembered>,
}

/// The quotes, by request and by order, with their insertion order for eviction.
#[derive(Debug, Default)]
struct Remembered {
    /// The quoting target, until when, and the order it quoted (a request quoted again names
    /// its newer order, so evicting the older one must leave it).
    by_request: HashMap<QuoteKey, (Arc<str>, Instant, String)>,
    by_order: HashMap<String, (Quote, Instant)>,
    order: VecDeque<(QuoteKey, String)>,
}

impl RecentQuotes {
    /// A memory of at most `capacity` quotes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Remembered::default()),
        }
    }
}

impl Default for RecentQuotes {
    fn default() -> Self {
        Self::new(100_000)
    }
}

/// The memory's key of an order: the provider's name and its order number.
fn order_key(provider: &str, out_trade_no: &str) -> String {
    format!("{provider}\u{0}{out_trade_no}")
}

impl QuoteMemory for RecentQuotes {
    fn remember(&self, key: QuoteKey, quoted: Quoted) {
        // A quote whose deadline is unreadable or past cannot be paid: nothing to remember.
        let Some(left) = quoted.quote.time_left else {
            return;
        };
        let until = Instant::now() + left.min(MAX_QUOTE_LIFE);
        let provider = quoted.target.split('/').next().unwrap_or_default();
        let order = order_key(provider, &quoted.quote.out_trade_no);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.order.len() >= self.capacity {
            let Some((old_key, old_order)) = inner.order.pop_front() else {
                break;
            };
            if inner
                .by_request
                .get(&old_key)
                .is_some_and(|(_, _, order)| *order == old_order)
            {
                inner.by_request.remove(&old_key);
            }
            inner.by_order.remove(&old_order);
        }
        inner
            .by_request
            .insert(key.clone(), (quoted.target, until, order.clone()));
        inner.by_order.insert(order.clone(), (quoted.quote, until));
        inner.order.push_back((key, order));
    }

    fn seller(&self, key: &QuoteKey) -> Option<Arc<str>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (target, until, _) = inner.by_request.get(key)?;
        (*until > Instant::now()).then(|| target.clone())
    }

    fn order(&self, provider: &str, out_trade_no: &str) -> Option<Quote> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // An order that was quoted is paid for after its deadline only if the seller served
        // it, so an expired entry still names the right price.
        let (quote, _) = inner.by_order.get(&order_key(provider, out_trade_no))?;
        Some(quote.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in json.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn quotes_decode_exactly() {
        let header = encode(
            r#"{"out_trade_no":"o1","amount":"0.01","currency":"CNY","pay_before":"2999-04-15T12:54:37+08:00"}"#,
        );
        let quote = decode_quote(header.as_bytes()).unwrap();
        assert_eq!(quote.amount, Decimal::new(1, 2));
        assert_eq!(&*quote.currency, "CNY");
        assert!(quote.time_left.is_some());
    }

    #[test]
    fn malformed_headers_decode_to_nothing() {
        for bad in [
            "",
            "!!!",
            "e30",
            &encode("[1]"),
            &encode(r#"{"amount":"x"}"#),
        ] {
            assert_eq!(decode_quote(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(decode_validation(b"%%%"), None);
    }

    #[test]
    fn deadlines_read_their_offset() {
        assert_eq!(unix_seconds("1970-01-01T08:00:00+08:00"), Some(0));
        assert_eq!(unix_seconds("2026-04-15T04:54:37Z"), Some(1_776_228_877));
        assert_eq!(unix_seconds("2026-04-15"), None);
    }

    #[test]
    fn memory_is_bounded_and_forgets_expired_quotes() {
        let memory = RecentQuotes::new(1);
        let quote = |no: &str, left: Option<Duration>| Quote {
            out_trade_no: no.into(),
            amount: Decimal::ONE,
            currency: Arc::from("CNY"),
            pay_before: String::new(),
            time_left: left,
        };
        let key = |body: &[u8]| QuoteKey::new("k", body);
        let hour = Some(Duration::from_secs(3600));
        memory.remember(
            key(b"a"),
            Quoted {
                target: Arc::from("p/m"),
                quote: quote("1", hour),
            },
        );
        memory.remember(
            key(b"b"),
            Quoted {
                target: Arc::from("p/m"),
                quote: quote("2", hour),
            },
        );
        assert_eq!(memory.seller(&key(b"a")), None);
        assert_eq!(memory.seller(&key(b"b")).as_deref(), Some("p/m"));
        assert!(memory.order("p", "2").is_some());
        // Quoted again: the newer quote stays when the older one is evicted.
        let memory = RecentQuotes::new(2);
        for no in ["4", "5", "6"] {
            let quote = quote(no, hour);
            memory.remember(
                key(b"d"),
                Quoted {
                    target: Arc::from("p/m"),
                    quote,
                },
            );
        }
        assert_eq!(memory.seller(&key(b"d")).as_deref(), Some("p/m"));
        assert!(memory.order("p", "4").is_none());
        memory.remember(
            key(b"c"),
            Quoted {
                target: Arc::from("p/m"),
                quote: quote("3", None),
            },
        );
        assert_eq!(memory.seller(&key(b"c")), None);
    }
}
