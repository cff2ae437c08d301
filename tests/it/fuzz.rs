//! Property tests ("fuzzing" on the stable toolchain): hostile or random input at every place
//! where the router reads bytes it does not control. Each property runs a bounded number of
//! cases in the normal suite; `PROPTEST_CASES=100000 cargo test --release --test it fuzz`
//! runs them longer (README "Fuzzing").
#![cfg(test)]

mod config;
mod front;
mod generate;
mod requests;
mod sse;
mod streams;

use proptest::test_runner::Config;

/// The proptest configuration of one property: `default_cases` cases unless `PROPTEST_CASES`
/// says otherwise, and no regression files (a failure prints its minimal input and seed;
/// what it finds becomes a plain unit test beside the fixed code).
pub(crate) fn cases(default_cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config.failure_persistence = None;
    config
}
