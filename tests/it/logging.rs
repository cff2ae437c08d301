//! The process log cannot be forged: a client's strings never start a line of their own or
//! reach the terminal as an escape. The log of the whole test binary is captured by a
//! process-wide subscriber in the router's own text format (the router's workers run on
//! threads of their own, which a thread-local subscriber would not see).
#![cfg(test)]

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use switchboard::logging::{self, LogFormat};

use crate::support::{chat, spawn_router};

/// The process log of the whole test binary, from the first redaction test on.
pub(crate) fn process_log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer = buffer.clone();
        let subscriber = logging::subscriber(
            LogFormat::Text,
            tracing_subscriber::EnvFilter::new("switchboard=debug"),
            move || SharedWriter(writer.clone()),
            false,
        );
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test sets a process-wide subscriber");
        buffer
    })
}

/// An `io::Write` into the captured log.
struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for SharedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The captured log lines that mention `tag`.
pub(crate) fn log_lines_with(tag: &str) -> Vec<String> {
    let log = process_log().lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|line| line.contains(tag))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_model_name_cannot_forge_a_log_line() {
    process_log();
    let router = spawn_router("[providers.m]\nkind = \"mock\"\n", &[]).await;
    let forged = "2026-01-01T00:00:00Z  INFO switchboard::access: forged-entry";
    let model = format!("case-forgery\r\n{forged}\u{1b}[2J\u{1b}]0;owned\u{7}");
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let answer = chat(&router, &body.to_string()).await;
    assert_eq!(answer.status, 404);
    let lines = log_lines_with("case-forgery");
    assert!(!lines.is_empty(), "the request was not logged");
    for line in &lines {
        assert!(
            line.contains(&format!("case-forgery\\r\\n{forged}")),
            "{line}"
        );
        assert!(line.contains(r"\u{1b}[2J"), "{line}");
    }
    let log = process_log().lock().unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(
        !log.lines().any(|line| line.starts_with(forged)),
        "a forged line made it into the log"
    );
    assert!(!log.contains('\u{1b}') && !log.contains('\r') && !log.contains('\u{7}'));
}
