//! The process log, in one of two formats, neither of which a client can forge lines in.
//!
//! Fields carry client-controlled text (model names, request ids, header values) and provider
//! text (error messages). In the human `text` format every control character in every field
//! is escaped (`\n`, `\r`, `\t`, `\u{1b}`, ...), as are the Unicode line separators and
//! bidirectional overrides, so one event is always one line and nothing in it reaches the
//! terminal as an escape sequence. The `json` format (for production: one object per line)
//! gets the same guarantee from JSON string escaping.

use std::fmt;
use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{RecordFields, VisitOutput as _};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultVisitor, FormatFields, Writer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event, control characters escaped.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in `providers.toml` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// A log format name that is neither `text` nor `json`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a log format; write \"text\" or \"json\"")]
pub struct UnknownLogFormat(String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(UnknownLogFormat(other.to_owned())),
        }
    }
}

/// The process's subscriber: events that pass `filter`, in `format`, written to `writer`;
/// `ansi` colours the text format's levels (for a terminal).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).fmt_fields(EscapedFields).finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}

/// tracing-subscriber's field format with every control character escaped.
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // The default visitor lays the fields out; everything it writes passes the escaper.
        // Its writer has no ANSI, so field names come out plain, never as escapes to undo.
        let mut escaping = Escaping(&mut writer);
        let mut visitor = DefaultVisitor::new(Writer::new(&mut escaping), true);
        fields.record(&mut visitor);
        visitor.finish()
    }
}

/// Passes text on with the characters that could break or hide a line escaped.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut clean_from = 0;
        for (at, c) in text.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.0.write_str(&text[clean_from..at])?;
            match c {
                '\n' | '\r' | '\t' => write!(self.0, "{}", c.escape_default())?,
                _ => write!(self.0, "{}", c.escape_unicode())?,
            }
            clean_from = at + c.len_utf8();
        }
        self.0.write_str(&text[clean_from..])
    }
}

/// Control characters (C0, DEL, C1), the Unicode line and paragraph separators, and the
/// marks and overrides that reorder how a line is displayed.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer, for reading back what was logged.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `format` writes for the events `emit` sends.
    fn logged(format: LogFormat, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(
            format,
            EnvFilter::new("trace"),
            move || writer.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// An event whose every field a client or a provider could have written.
    fn hostile_event() {
        let model = "gpt-4o\nINFO forged line";
        let header = "id\r\nX-Forged: 1";
        let upstream = "\x1b[31mred\x1b[0m\u{202e}txt";
        tracing::warn!(
            model,
            header = %header,
            upstream = ?upstream,
            tab = %"a\tb\u{85}c\u{2028}d",
            "upstream said {}",
            "\x1b]0;title\x07 and\nmore"
        );
    }

    #[test]
    fn text_fields_are_escaped_onto_one_line() {
        let text = logged(LogFormat::Text, hostile_event);
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'), "{text}");
        assert!(
            !text.chars().any(|c| c != '\n' && needs_escape(c)),
            "{text:?}"
        );
        for escaped in [
            r"gpt-4o\nINFO forged line",
            r"id\r\nX-Forged: 1",
            r"a\tb\u{85}c\u{2028}d",
            r"\u{202e}txt",
            r"and\nmore",
        ] {
            assert!(text.contains(escaped), "`{escaped}` missing from {text}");
        }
    }

    #[test]
    fn json_is_one_parseable_object_per_line_with_newlines_escaped() {
        let text = logged(LogFormat::Json, || {
            hostile_event();
            tracing::info!(request_id = "r\n2", "second");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["fields"]["header"], "id\r\nX-Forged: 1");
        let message = first["fields"]["message"].as_str().unwrap();
        assert!(message.ends_with(" and\nmore"), "{message}");
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["fields"]["request_id"], "r\n2");
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }

    #[test]
    fn format_names_parse_and_unknown_ones_say_what_is_allowed() {
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let error = "JSON".parse::<LogFormat>().unwrap_err().to_string();
        assert!(error.contains("\"text\" or \"json\""), "{error}");
        assert_eq!(LogFormat::default().as_str(), "text");
    }
}
