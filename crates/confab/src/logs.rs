//! Logs: plain text lines for people, or JSON lines. Values that come from
//! clients (a sender's number, a reason naming what they sent) can hold
//! newlines and terminal escapes; in a text log every field and message has
//! its control characters escaped, so no client can write a line of its own
//! or recolour a terminal. JSON escapes them by itself.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.fmt_fields(Escaped).init();
    }
}

/// Control characters as escapes: `\n`, `\r`, `\t`, others as `\u{1b}`.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The text format's fields, as tracing writes them (`message k=v k=v`),
/// escaped.
struct Escaped;

impl<'w> FormatFields<'w> for Escaped {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut line = Line::default();
        fields.record(&mut line);
        writer.write_str(&line.out)
    }
}

#[derive(Default)]
struct Line {
    out: String,
}

impl Line {
    fn field(&mut self, field: &Field, text: &str) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        if field.name() != "message" {
            self.out.push_str(field.name());
            self.out.push('=');
        }
        escape_into(&mut self.out, text);
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, value);
        } else {
            self.field(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_client_value_cannot_write_a_line_of_its_own() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(Escaped)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let from = "+1555\n2026-12-03T00:00:00Z  INFO confab: admin logged in";
            let reason = format!("'{from}' is not a phone number");
            tracing::warn!(%reason, number = from, "Meta message from {from} skipped\x1b[31m");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains(r"Meta message from +1555\n2026-12-03T00:00:00Z  INFO confab: admin logged in skipped\u{1b}[31m"),
            "{text}"
        );
        assert!(text.contains(r"reason='+1555\n2026"), "{text}");
        assert!(text.contains(r#"number="+1555\n2026"#), "{text}");
    }
}
