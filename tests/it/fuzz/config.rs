//! The configuration loader: any text, TOML-shaped or not, and any mutation of the shipped
//! `providers.toml` is a configuration or a list of errors that each say where, never a panic.

use std::path::Path;
use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use switchboard::config::{self, ConfigErrors};

use super::cases;
use super::generate::text;

/// Every variable a configuration may name is set, so validation goes as deep as it can.
fn env(name: &str) -> Option<String> {
    Some(format!("sk-fuzz-{name}"))
}

/// Checks that a refusal lists at least one error, each saying where and what.
fn check(result: Result<config::Snapshot, ConfigErrors>) -> Result<(), TestCaseError> {
    let Err(errors) = result else {
        return Ok(());
    };
    prop_assert!(!errors.0.is_empty(), "a refusal without a reason");
    for error in &errors.0 {
        prop_assert!(
            !error.table.is_empty(),
            "an error naming no table: {}",
            error
        );
        prop_assert!(
            !error.reason.is_empty(),
            "an error without a reason: {}",
            error
        );
        prop_assert!(
            error.file == "fuzz.toml",
            "an error naming another file: {}",
            error
        );
    }
    Ok(())
}

/// The tables and fields of the configuration, so generated lines often mean something.
const TABLES: [&str; 12] = [
    "[server]",
    "[routing]",
    "[upstream]",
    "[accounting]",
    "[usage_log]",
    "[[keys]]",
    "[providers.p]",
    "[providers.p.models.m]",
    "[providers.p.mock]",
    "[routes.r]",
    "[routes.\"a/b\"]",
    "[providers.\"\"]",
];

const FIELDS: [&str; 24] = [
    "listen",
    "max_body",
    "kind",
    "base_url",
    "api_key_env",
    "targets",
    "strategy",
    "weight",
    "target",
    "max_attempts",
    "default_cooldown",
    "attempt_timeout",
    "key_env",
    "sha256",
    "rpm",
    "tpm",
    "input_per_mtok",
    "currency",
    "max_tokens",
    "payment",
    "path",
    "buffer",
    "disabled",
    "admin",
];

/// A TOML value of any type, valid or not for the field it lands on.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        text().prop_map(|t| format!("{t:?}")),
        prop_oneof![
            Just("\"openai\""),
            Just("\"mock\""),
            Just("\"anthropic\""),
            Just("\"gemini\""),
            Just("\"qwen\""),
            Just("\"mistral\""),
            Just("\"weighted\""),
            Just("\"30s\""),
            Just("\"4MiB\""),
            Just("\"https://x.example/v1\""),
            Just("\"127.0.0.1:0\""),
            Just("[\"p/m\"]"),
            Just("[{ target = \"p/m\", weight = 0 }]"),
            Just("\"USD\""),
            Just("1e400"),
            Just("-1"),
            Just("0.0000000000001"),
            Just("inf"),
            Just("nan"),
            Just("{}"),
            Just("[]"),
            Just("1979-05-27T07:32:00Z"),
        ]
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
    ]
}

/// Lines that are mostly TOML: table headers, `field = value`, comments and noise.
fn toml_ish() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        2 => proptest::sample::select(&TABLES[..]).prop_map(str::to_owned),
        5 => (proptest::sample::select(&FIELDS[..]), toml_value()).prop_map(|(f, v)| format!("{f} = {v}")),
        1 => text(),
        1 => Just("# comment".to_owned()),
        1 => Just(String::new()),
    ];
    vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

/// The shipped configuration's lines.
fn shipped_lines() -> &'static [String] {
    static LINES: LazyLock<Vec<String>> = LazyLock::new(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.toml");
        std::fs::read_to_string(path)
            .expect("the shipped providers.toml")
            .lines()
            .map(str::to_owned)
            .collect()
    });
    &LINES
}

/// One edit of the shipped file.
#[derive(Clone, Debug)]
enum Mutation {
    Delete(proptest::sample::Index),
    Duplicate(proptest::sample::Index),
    /// Swap the values of two `field = value` lines (or the lines themselves).
    SwapValues(proptest::sample::Index, proptest::sample::Index),
    Replace(proptest::sample::Index, String),
    Truncate(proptest::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<proptest::sample::Index>;
    prop_oneof![
        index().prop_map(Mutation::Delete),
        index().prop_map(Mutation::Duplicate),
        (index(), index()).prop_map(|(a, b)| Mutation::SwapValues(a, b)),
        (index(), toml_value()).prop_map(|(a, v)| Mutation::Replace(a, v)),
        index().prop_map(Mutation::Truncate),
    ]
}

/// The value part of a `field = value` line, if it is one.
fn split_value(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with('[') {
        return None;
    }
    let at = line.find(" = ")?;
    Some((&line[..at + 3], &line[at + 3..]))
}

fn mutate(mut lines: Vec<String>, mutations: &[Mutation]) -> String {
    for mutation in mutations {
        if lines.is_empty() {
            break;
        }
        match mutation {
            Mutation::Delete(i) => {
                lines.remove(i.index(lines.len()));
            }
            Mutation::Duplicate(i) => {
                let i = i.index(lines.len());
                lines.insert(i, lines[i].clone());
            }
            Mutation::SwapValues(a, b) => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                match (split_value(&lines[a]), split_value(&lines[b])) {
                    (Some((fa, va)), Some((fb, vb))) => {
                        let (new_a, new_b) = (format!("{fa}{vb}"), format!("{fb}{va}"));
                        lines[a] = new_a;
                        lines[b] = new_b;
                    }
                    _ => lines.swap(a, b),
                }
            }
            Mutation::Replace(i, value) => {
                let i = i.index(lines.len());
                if let Some((field, _)) = split_value(&lines[i]) {
                    lines[i] = format!("{field}{value}");
                }
            }
            Mutation::Truncate(i) => {
                let i = i.index(lines.len());
                let line = &lines[i];
                let cut = line
                    .char_indices()
                    .map(|(at, _)| at)
                    .nth(line.len() / 2)
                    .unwrap_or(0);
                lines[i] = line[..cut].to_owned();
            }
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn fuzz_config_any_bytes(bytes in vec(any::<u8>(), 0..512)) {
        check(config::parse_bytes(&bytes, "fuzz.toml", &env))?;
    }

    #[test]
    fn fuzz_config_toml_ish_text(text in toml_ish()) {
        check(config::parse(&text, "fuzz.toml", &env))?;
    }

    #[test]
    fn fuzz_config_mutated_shipped_file(mutations in vec(mutation(), 1..6)) {
        let text = mutate(shipped_lines().to_vec(), &mutations);
        check(config::parse(&text, "fuzz.toml", &env))?;
        check(config::parse(&text, "fuzz.toml", &|_| None))?;
    }
}
