//! Usage → cost, kept exactly per currency, and the transaction fees.
//!
//! Prices are parsed once at load into exact decimals ([`Prices`], per million tokens) and
//! travel with each target. A request's cost is its uncached input at the input price, its
//! cache reads and writes at their own prices (the input price when a model has none), its
//! output (reasoning included) at the output price, plus the model's `per_transaction` fee
//! when one is due. Arithmetic is exact ([`Decimal`]); amounts are never converted between
//! currencies and never pass through binary floating point here.
//!
//! A fee is due once per successful transaction. The client names a transaction with a request
//! header (`[accounting] transaction_header`); turns that share a name pay one fee, whichever
//! target served them, and a request without the header is its own transaction. Which names
//! have paid is remembered by a [`TransactionLedger`]: in this process a bounded, expiring
//! [`SeenTransactions`]; a shared store can take its place when replicas must agree.
//!
//! Streams carry their cost in the usage chunk: [`UsageChunk`] finds that chunk among the
//! frames and splices `usage.cost` into it, leaving every other byte as it was.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::json_scan::USAGE;
use crate::openai::Usage;

/// An exact amount in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cost {
    /// The amount, exact (never binary floating point).
    pub amount: Decimal,
    /// ISO 4217 code, e.g. `USD` or `CNY`.
    pub currency: Arc<str>,
}

/// The fewest decimals an amount is shown with: a cheap request costs fractions of a cent.
const MIN_DECIMALS: u32 = 9;

impl Cost {
    /// The amount with all its decimals and never fewer than nine, e.g. `0.000431250`.
    pub fn amount_text(&self) -> String {
        let mut amount = self.amount.normalize();
        if amount.scale() < MIN_DECIMALS {
            amount.rescale(MIN_DECIMALS);
        }
        amount.to_string()
    }

    /// The `x-switchboard-cost` value: amount and currency, e.g. `0.000431250 USD`.
    pub fn header_value(&self) -> String {
        let mut value = self.amount_text();
        value.push(' ');
        value.push_str(&self.currency);
        value
    }

    /// The `usage.cost` object of a stream's usage chunk; the amount is a string so that no
    /// JSON reader turns it into a binary float.
    pub fn json(&self) -> String {
        let currency = serde_json::to_string(&*self.currency).unwrap_or_default();
        format!(
            r#"{{"amount":"{}","currency":{currency}}}"#,
            self.amount_text()
        )
    }
}

/// A pay-per-call transaction a seller validated, for reconciliation with Alipay's bills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaidCall {
    /// Alipay's trade number.
    pub trade_no: String,
    /// The seller's order number.
    pub out_trade_no: String,
    /// The quoted amount and currency: what the call cost.
    pub cost: Cost,
}

/// The prices of one provider model, from `[providers.P.models."M"]`. Token prices are per
/// million tokens; an absent price is zero, except that cache reads and writes fall back to
/// the input price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prices {
    /// Uncached input.
    pub input_per_mtok: Option<Decimal>,
    /// Output, reasoning included.
    pub output_per_mtok: Option<Decimal>,
    /// Input read from the provider's cache.
    pub cached_input_per_mtok: Option<Decimal>,
    /// Input written to the provider's cache.
    pub cache_write_per_mtok: Option<Decimal>,
    /// The fee per successful transaction.
    pub per_transaction: Option<Decimal>,
    /// The ISO 4217 code every price above is in.
    pub currency: Arc<str>,
}

impl Prices {
    /// What the tokens of `usage` cost; `None` only when the figures overflow, which takes
    /// absurd counts at absurd prices.
    pub fn tokens(&self, usage: &Usage) -> Option<Decimal> {
        let input = self.input_per_mtok.unwrap_or(Decimal::ZERO);
        let priced = [
            (usage.uncached_prompt_tokens(), input),
            (
                usage.cached_tokens,
                self.cached_input_per_mtok.unwrap_or(input),
            ),
            (
                usage.cache_write_tokens,
                self.cache_write_per_mtok.unwrap_or(input),
            ),
            (
                usage.completion_tokens,
                self.output_per_mtok.unwrap_or(Decimal::ZERO),
            ),
        ];
        let per_million = priced
            .into_iter()
            .try_fold(Decimal::ZERO, |sum, (tokens, price)| {
                sum.checked_add(Decimal::from(tokens).checked_mul(price)?)
            })?;
        // Multiplying by 10^-6 only moves the decimal point: exact.
        per_million.checked_mul(Decimal::new(1, 6))
    }

    /// The prices of a call sold for `quote`: the quoted amount as its one fee, no token price.
    pub fn quoted(quote: &Cost) -> Self {
        Self {
            input_per_mtok: None,
            output_per_mtok: None,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
            per_transaction: Some(quote.amount),
            currency: quote.currency.clone(),
        }
    }

    /// The cost of a request that used `usage` and, with `fee`, paid the transaction fee.
    pub fn cost(&self, usage: Option<&Usage>, fee: bool) -> Option<Cost> {
        let tokens = match usage {
            Some(usage) => self.tokens(usage)?,
            None => Decimal::ZERO,
        };
        let fee = if fee {
            self.per_transaction.unwrap_or(Decimal::ZERO)
        } else {
            Decimal::ZERO
        };
        Some(Cost {
            amount: tokens.checked_add(fee)?,
            currency: self.currency.clone(),
        })
    }
}

/// `[accounting]`: how transactions are named and remembered.
#[derive(Clone, Debug)]
pub struct AccountingSettings {
    /// The request header that names a transaction (lower case).
    pub transaction_header: http::HeaderName,
    /// How long a transaction that paid its fee is remembered.
    pub transaction_window: Duration,
    /// How many such transactions are remembered at most; the oldest go first.
    pub max_transactions: usize,
}

impl Default for AccountingSettings {
    fn default() -> Self {
        Self {
            transaction_header: http::HeaderName::from_static("x-transaction-id"),
            transaction_window: Duration::from_secs(24 * 3600),
            max_transactions: 100_000,
        }
    }
}

/// Which transactions have paid their fee. The in-process [`SeenTransactions`] is the
/// default; a store shared by replicas can implement this instead.
pub trait TransactionLedger: Send + Sync {
    /// Marks `transaction` as paid and returns `true`, unless it already paid within
    /// `window`: then `false`. At most `capacity` transactions are remembered.
    fn first_fee(&self, transaction: &str, window: Duration, capacity: usize) -> bool;
}

/// The transactions that paid a fee recently, in memory: bounded by count and by age. Lives
/// in the application state, outside the configuration, so a reload forgets nothing; window
/// and capacity come with each call, so a reload that changes them applies at once.
#[derive(Debug, Default)]
pub struct SeenTransactions {
    seen: Mutex<Seen>,
}

/// The map answers "has it paid", the queue (in payment order, hence expiry order) says what
/// to forget first. Each remembered name is in both exactly once.
#[derive(Debug, Default)]
struct Seen {
    paid_at: HashMap<Arc<str>, Instant>,
    order: VecDeque<(Arc<str>, Instant)>,
}

impl Seen {
    /// Forgets every transaction that paid `window` or longer ago.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((_, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < window {
                break;
            }
            self.forget_oldest();
        }
    }

    /// Forgets the transaction that paid first.
    fn forget_oldest(&mut self) {
        if let Some((name, _)) = self.order.pop_front() {
            self.paid_at.remove(&name);
        }
    }
}

impl SeenTransactions {
    /// How many transactions are remembered now.
    pub fn len(&self) -> usize {
        self.lock().paid_at.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory, for one short, await-free look.
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // The map holds no invariant a panic elsewhere could break halfway.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TransactionLedger for SeenTransactions {
    fn first_fee(&self, transaction: &str, window: Duration, capacity: usize) -> bool {
        let now = Instant::now();
        let mut seen = self.lock();
        seen.expire(now, window);
        if seen.paid_at.contains_key(transaction) {
            return false;
        }
        while seen.paid_at.len() >= capacity.max(1) {
            seen.forget_oldest();
        }
        let name: Arc<str> = Arc::from(transaction);
        seen.paid_at.insert(name.clone(), now);
        seen.order.push_back((name, now));
        true
    }
}

/// One request's accounting: the serving target's prices and the transaction it belongs to.
/// Charged once ([`Account::charge`] takes it by value).
pub struct Account {
    prices: Option<Arc<Prices>>,
    /// The ledger's name for the transaction, `None` for a request that is its own.
    transaction: Option<String>,
    ledger: Arc<dyn TransactionLedger>,
    window: Duration,
    capacity: usize,
}

/// What a request was charged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Charge {
    /// The cost, when the serving target has prices.
    pub cost: Option<Cost>,
    /// Whether this request paid its transaction's fee.
    pub fee_charged: bool,
}

impl Account {
    /// The account of a request served with `prices`, by the client key `key`, naming
    /// `transaction` (or none). Names are kept per key: two applications that happen to use
    /// the same transaction id are still two transactions.
    pub fn new(
        prices: Option<Arc<Prices>>,
        ledger: Arc<dyn TransactionLedger>,
        settings: &AccountingSettings,
        key: &str,
        transaction: Option<&str>,
    ) -> Self {
        Self {
            prices,
            transaction: transaction.map(|id| format!("{key}\u{0}{id}")),
            ledger,
            window: settings.transaction_window,
            capacity: settings.max_transactions,
        }
    }

    /// Charges the request: its tokens, and the fee when it `succeeded`, its model has one and
    /// its transaction has not paid yet. A failed request pays no fee.
    pub fn charge(self, usage: Option<&Usage>, succeeded: bool) -> Charge {
        let Some(prices) = &self.prices else {
            return Charge::default();
        };
        let fee = succeeded && prices.per_transaction.is_some() && self.first_fee();
        let cost = prices.cost(usage, fee);
        if cost.is_none() {
            tracing::warn!(
                ?usage,
                "the cost of this request overflows; left unaccounted"
            );
        }
        Charge {
            cost,
            fee_charged: fee,
        }
    }

    /// Whether the fee is this request's to pay: always for a request that is its own
    /// transaction, else only for the first of its transaction's requests to succeed.
    fn first_fee(&self) -> bool {
        match &self.transaction {
            None => true,
            Some(name) => self.ledger.first_fee(name, self.window, self.capacity),
        }
    }
}

/// The usage chunk of a stream (`"choices": []` with a `usage` object), found among the
/// outgoing SSE frames.
#[derive(Debug)]
pub struct UsageChunk<'a> {
    payload: Cow<'a, [u8]>,
    usage: Range<usize>,
}

/// The members of a chunk that tell whether it is the usage chunk.
#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

impl<'a> UsageChunk<'a> {
    /// The usage chunk in `frame` (a `data:` frame), if that is what it is. Frames whose
    /// bytes show no `"usage": {` are passed over without parsing.
    pub fn find(frame: &'a [u8]) -> Option<Self> {
        let payload = frame_payload(frame)?;
        if !USAGE.has_value_starting_with(&payload, b'{') {
            return None;
        }
        let usage = {
            let probe: ChunkProbe<'_> = serde_json::from_slice(&payload).ok()?;
            let usage = probe.usage?;
            let no_choices = probe.choices.is_none_or(|choices| choices.is_empty());
            if !no_choices || !usage.get().starts_with('{') {
                return None;
            }
            span_of(&payload, usage.get())
        };
        Some(Self { payload, usage })
    }

    /// The chunk's JSON with `usage.cost` set to `cost` (replacing a `cost` member the
    /// upstream sent, if any); every other byte unchanged.
    pub fn with_cost(&self, cost: &Cost) -> Vec<u8> {
        let payload = &self.payload[..];
        let usage = &payload[self.usage.clone()];
        let cost_json = cost.json();
        let (span, with) = match existing_member(usage, "cost") {
            Some(value) => (value, cost_json),
            None => {
                // Before the closing brace; a comma unless the object is empty.
                let close = usage
                    .iter()
                    .rposition(|&b| b == b'}')
                    .unwrap_or(usage.len());
                let empty = usage[1..close].iter().all(u8::is_ascii_whitespace);
                let comma = if empty { "" } else { "," };
                (close..close, format!(r#"{comma}"cost":{cost_json}"#))
            }
        };
        let at = self.usage.start;
        let mut out = Vec::with_capacity(payload.len() + with.len());
        out.extend_from_slice(&payload[..at + span.start]);
        out.extend_from_slice(with.as_bytes());
        out.extend_from_slice(&payload[at + span.end..]);
        out
    }
}

/// The payload of a `data:` frame (lines joined back with `\n`); `None` for anything else.
fn frame_payload(frame: &[u8]) -> Option<Cow<'_, [u8]>> {
    let body = frame.strip_suffix(b"\n\n")?;
    let single = body.strip_prefix(b"data: ")?;
    if !single.contains(&b'\n') {
        return Some(Cow::Borrowed(single));
    }
    let mut joined = Vec::with_capacity(body.len());
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        if index > 0 {
            joined.push(b'\n');
        }
        joined.extend_from_slice(line.strip_prefix(b"data: ")?);
    }
    Some(Cow::Owned(joined))
}

/// The span of member `key`'s value inside the JSON object `object`, if it has one.
fn existing_member(object: &[u8], key: &str) -> Option<Range<usize>> {
    let members: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_slice(object).ok()?;
    let value = members.get(key)?;
    Some(span_of(object, value.get()))
}

/// The byte range of `part` inside `whole`; `part` must be a sub-slice of it.
fn span_of(whole: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::sse::data_frame;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn usd(input: &str, output: &str) -> Prices {
        Prices {
            input_per_mtok: Some(dec(input)),
            output_per_mtok: Some(dec(output)),
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
            per_transaction: None,
            currency: Arc::from("USD"),
        }
    }

    fn usage(prompt: u64, cached: u64, written: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: cached,
            cache_write_tokens: written,
            reasoning_tokens: 0,
        }
    }

    #[test]
    fn input_cached_and_output_are_priced_exactly() {
        // qwen-max: 1.6 in, 0.64 cached, 6.4 out. 1234 prompt tokens of which 100 cached,
        // 56 out: 1134 x 1.6 + 100 x 0.64 + 56 x 6.4 = 1814.4 + 64 + 358.4 = 2236.8 per MTok.
        let prices = Prices {
            cached_input_per_mtok: Some(dec("0.64")),
            ..usd("1.6", "6.4")
        };
        let cost = prices.cost(Some(&usage(1234, 100, 0, 56)), false).unwrap();
        assert_eq!(cost.amount, dec("0.0022368"));
        assert_eq!(cost.header_value(), "0.002236800 USD");
    }

    #[test]
    fn cache_writes_have_their_own_price_and_anthropic_input_is_not_billed_twice() {
        // Sonnet: 3 in, 0.30 read, 3.75 write, 15 out. Anthropic said input 12, read 1000,
        // written 100 (prompt 1112 in OpenAI's meaning), out 30.
        let prices = Prices {
            cached_input_per_mtok: Some(dec("0.30")),
            cache_write_per_mtok: Some(dec("3.75")),
            ..usd("3", "15")
        };
        let cost = prices
            .cost(Some(&usage(1112, 1000, 100, 30)), false)
            .unwrap();
        // 12 x 3 + 1000 x 0.3 + 100 x 3.75 + 30 x 15 = 36 + 300 + 375 + 450 = 1161 per MTok.
        assert_eq!(cost.amount, dec("0.001161"));
        assert_eq!(cost.amount_text(), "0.001161000");
    }

    #[test]
    fn cache_prices_fall_back_to_the_input_price() {
        let prices = usd("2", "0");
        let cost = prices.cost(Some(&usage(1000, 300, 200, 0)), false).unwrap();
        assert_eq!(cost.amount, dec("0.002"));
    }

    #[test]
    fn reasoning_is_output() {
        // Gemini 2.5 Pro: 1.25 in, 10 out; 5 visible + 7 thinking = 12 completion tokens.
        let prices = usd("1.25", "10");
        let mut used = usage(10, 0, 0, 12);
        used.reasoning_tokens = 7;
        let cost = prices.cost(Some(&used), false).unwrap();
        assert_eq!(cost.amount, dec("0.0001325"));
    }

    #[test]
    fn the_fee_is_added_once_and_in_its_own_currency() {
        let prices = Prices {
            input_per_mtok: None,
            output_per_mtok: None,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
            per_transaction: Some(dec("0.01")),
            currency: Arc::from("CNY"),
        };
        let used = usage(500, 0, 0, 80);
        assert_eq!(
            prices.cost(Some(&used), true).unwrap().header_value(),
            "0.010000000 CNY"
        );
        assert_eq!(
            prices.cost(Some(&used), false).unwrap().header_value(),
            "0.000000000 CNY"
        );
        let mixed = Prices {
            per_transaction: Some(dec("0.01")),
            ..usd("0.4", "1.2")
        };
        // 500 x 0.4 + 80 x 1.2 = 296 per MTok, plus the cent.
        assert_eq!(
            mixed.cost(Some(&used), true).unwrap().amount,
            dec("0.010296")
        );
    }

    #[test]
    fn amounts_keep_every_decimal_beyond_nine() {
        let prices = usd("0.000001", "0");
        let cost = prices.cost(Some(&usage(1, 0, 0, 0)), false).unwrap();
        assert_eq!(cost.amount_text(), "0.000000000001");
        let prices = usd("0.001", "0");
        let cost = prices.cost(Some(&usage(1, 0, 0, 0)), false).unwrap();
        assert_eq!(cost.amount_text(), "0.000000001");
        let whole = Cost {
            amount: dec("12.5"),
            currency: Arc::from("EUR"),
        };
        assert_eq!(whole.header_value(), "12.500000000 EUR");
        assert_eq!(
            whole.json(),
            r#"{"amount":"12.500000000","currency":"EUR"}"#
        );
    }

    #[test]
    fn overflow_is_none_not_a_panic() {
        let prices = usd("79228162514264337593543950335", "0");
        assert_eq!(prices.cost(Some(&usage(u64::MAX, 0, 0, 0)), false), None);
    }

    #[test]
    fn no_usage_costs_only_the_fee() {
        let prices = Prices {
            per_transaction: Some(dec("0.5")),
            ..usd("1", "1")
        };
        assert_eq!(prices.cost(None, true).unwrap().amount, dec("0.5"));
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[tokio::test(start_paused = true)]
    async fn a_transaction_pays_once_within_its_window() {
        let seen = SeenTransactions::default();
        assert!(seen.first_fee("k\0t-1", DAY, 10));
        assert!(!seen.first_fee("k\0t-1", DAY, 10));
        assert!(seen.first_fee("k\0t-2", DAY, 10));
        tokio::time::advance(DAY - Duration::from_secs(1)).await;
        assert!(!seen.first_fee("k\0t-1", DAY, 10));
        tokio::time::advance(Duration::from_secs(1)).await;
        // A day after its fee, the name is forgotten: the next use is a new transaction.
        assert!(seen.first_fee("k\0t-1", DAY, 10));
        assert_eq!(seen.len(), 1, "t-2 expired too");
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_and_forgets_the_oldest_first() {
        let seen = SeenTransactions::default();
        for n in 0..5 {
            assert!(seen.first_fee(&format!("t-{n}"), DAY, 3));
        }
        assert_eq!(seen.len(), 3);
        assert!(!seen.first_fee("t-4", DAY, 3));
        assert!(!seen.first_fee("t-2", DAY, 3));
        assert!(seen.first_fee("t-0", DAY, 3), "the oldest was forgotten");
    }

    #[test]
    fn accounts_charge_the_fee_once_per_transaction_and_key() {
        let ledger: Arc<dyn TransactionLedger> = Arc::new(SeenTransactions::default());
        let prices = Some(Arc::new(Prices {
            per_transaction: Some(dec("0.01")),
            ..usd("0", "0")
        }));
        let settings = AccountingSettings::default();
        let charge = |key: &str, id: Option<&str>, succeeded: bool| {
            Account::new(prices.clone(), ledger.clone(), &settings, key, id)
                .charge(None, succeeded)
                .fee_charged
        };
        assert!(
            !charge("web", Some("order-1"), false),
            "failures pay nothing"
        );
        assert!(charge("web", Some("order-1"), true));
        assert!(!charge("web", Some("order-1"), true));
        assert!(
            charge("app", Some("order-1"), true),
            "another key's order-1"
        );
        assert!(charge("web", None, true));
        assert!(charge("web", None, true), "no header: its own transaction");
        let unpriced = Account::new(None, ledger.clone(), &settings, "web", Some("x"));
        assert_eq!(unpriced.charge(None, true), Charge::default());
    }

    fn cost() -> Cost {
        Cost {
            amount: dec("0.00043125"),
            currency: Arc::from("USD"),
        }
    }

    #[test]
    fn the_usage_chunk_gains_a_cost_and_nothing_else_changes() {
        let chunk = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7} ,"x":"caf\u00e9 1.0"}"#;
        let frame = data_frame(chunk.as_bytes());
        let found = UsageChunk::find(&frame).unwrap();
        assert_eq!(
            String::from_utf8(found.with_cost(&cost())).unwrap(),
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"cost":{"amount":"0.000431250","currency":"USD"}} ,"x":"caf\u00e9 1.0"}"#
        );
    }

    #[test]
    fn an_upstream_cost_member_is_replaced_and_an_empty_usage_gets_no_comma() {
        let frame = data_frame(br#"{"choices":[],"usage":{"cost":0.5, "prompt_tokens":1}}"#);
        let found = UsageChunk::find(&frame).unwrap();
        assert_eq!(
            String::from_utf8(found.with_cost(&cost())).unwrap(),
            r#"{"choices":[],"usage":{"cost":{"amount":"0.000431250","currency":"USD"}, "prompt_tokens":1}}"#
        );
        let frame = data_frame(br#"{"choices":[],"usage":{ }}"#);
        let found = UsageChunk::find(&frame).unwrap();
        assert_eq!(
            String::from_utf8(found.with_cost(&cost())).unwrap(),
            r#"{"choices":[],"usage":{ "cost":{"amount":"0.000431250","currency":"USD"}}}"#
        );
    }

    #[test]
    fn a_multi_line_usage_chunk_is_found_too() {
        let frame = data_frame(b"{\"choices\": [],\n \"usage\": {\"prompt_tokens\": 1}}");
        let found = UsageChunk::find(&frame).unwrap();
        assert_eq!(
            String::from_utf8(found.with_cost(&cost())).unwrap(),
            "{\"choices\": [],\n \"usage\": {\"prompt_tokens\": 1,\"cost\":{\"amount\":\"0.000431250\",\"currency\":\"USD\"}}}"
        );
    }

    #[test]
    fn other_chunks_are_not_usage_chunks() {
        let others = [
            r#"{"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"\"usage\":{"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[],"usage":null}"#,
            "[DONE]",
        ];
        for chunk in others {
            assert!(
                UsageChunk::find(&data_frame(chunk.as_bytes())).is_none(),
                "{chunk}"
            );
        }
        assert!(UsageChunk::find(b": keep-alive\n\n").is_none());
    }
}
