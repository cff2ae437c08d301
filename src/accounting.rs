//! Usage → tokens and cost, kept exactly per currency. (Being built for issue 5.)

use std::sync::Arc;

use rust_decimal::Decimal;

/// An exact amount in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cost {
    /// The amount, exact (never binary floating point).
    pub amount: Decimal,
    /// ISO 4217 code, e.g. `USD` or `CNY`.
    pub currency: Arc<str>,
}
