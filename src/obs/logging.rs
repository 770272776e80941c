//! The gateway's log: one format of its own, in text or in JSON
//! (`[log] format`), on standard error, every line a request logs carrying
//! that request's id.
//!
//! Text, one line an event:
//!
//! ```text
//! 2026-12-01T09:32:33.123456Z  WARN authgate::proxy: request_id=07535f25-00000000000a request not forwarded error="…" kind="timeout"
//! 2026-12-01T09:32:33.123460Z  INFO authgate::access: request_id=07535f25-00000000000a method=GET path="/x" status=504 latency_us=2001243 client=127.0.0.1
//! ```
//!
//! the time (UTC, microseconds), the level (five wide), the target, the
//! request's id when the event is a request's, then the message and the
//! fields as `key=value` (strings quoted as Rust writes them, escapes and
//! all). JSON, one object a line, with the same keys in the same order:
//!
//! ```text
//! {"timestamp":"2026-12-01T09:32:33.123460Z","level":"INFO","target":"authgate::access","request_id":"07535f25-00000000000a","method":"GET","path":"/x","status":504,"latency_us":2001243,"client":"127.0.0.1"}
//! ```
//!
//! The access log's lines are written by the gateway itself in this format
//! ([`crate::obs::access_log`]), at a fraction of the cost of an event;
//! every other line is a `tracing` event, formatted by [`Lines`]. A
//! request's id is held for its thread while the request is worked on
//! ([`in_request`]), rather than in a span: a span per request cost more
//! than the rest of the log.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use http::HeaderValue;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

use super::access_log::{json_string, write_timestamp};

/// Installs the gateway's log as the process's `tracing` subscriber, on
/// standard error in `format`, with `RUST_LOG` as its filter (`info` when
/// unset; `RUST_LOG=warn` turns the access log off).
///
/// # Panics
///
/// If the process already has a global `tracing` subscriber.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Lines::new(format))
        .init();
}

thread_local! {
    static CURRENT: RefCell<Option<HeaderValue>> = const { RefCell::new(None) };
}

/// Lines logged on this thread until the guard is dropped belong to the
/// request `id`.
pub(crate) fn in_request(id: &HeaderValue) -> InRequest {
    let previous = CURRENT.with_borrow_mut(|current| current.replace(id.clone()));
    InRequest { previous }
}

/// See [`in_request`].
pub(crate) struct InRequest {
    previous: Option<HeaderValue>,
}

impl Drop for InRequest {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with_borrow_mut(|current| *current = previous);
    }
}

/// The request a line logged now on this thread belongs to, as text.
fn current_request() -> Option<String> {
    CURRENT.with_borrow(|current| {
        current
            .as_ref()
            .map(|id| String::from_utf8_lossy(id.as_bytes()).into_owned())
    })
}

/// The event format of the gateway's log (see the module's docs).
pub(crate) struct Lines {
    json: bool,
}

impl Lines {
    pub(crate) fn new(format: LogFormat) -> Self {
        Self {
            json: format == LogFormat::Json,
        }
    }
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut timestamp = Vec::new();
        write_timestamp(std::time::SystemTime::now(), &mut None, &mut timestamp);
        let timestamp = String::from_utf8_lossy(&timestamp);
        let request = current_request();
        if self.json {
            let mut line = String::new();
            line.push_str("{\"timestamp\":\"");
            line.push_str(&timestamp);
            line.push_str("\",\"level\":\"");
            line.push_str(meta.level().as_str());
            line.push_str("\",\"target\":");
            push_json(&mut line, meta.target());
            if let Some(id) = &request {
                line.push_str(",\"request_id\":");
                push_json(&mut line, id);
            }
            event.record(&mut JsonFields { line: &mut line });
            line.push_str("}\n");
            return writer.write_str(&line);
        }
        write!(
            writer,
            "{timestamp} {:>5} {}: ",
            meta.level().as_str(),
            meta.target()
        )?;
        if let Some(id) = &request {
            write!(writer, "request_id={id} ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn push_json(line: &mut String, text: &str) {
    let mut bytes = Vec::new();
    json_string(text, &mut bytes);
    line.push_str(&String::from_utf8_lossy(&bytes));
}

/// An event's fields as JSON members, each after a comma, in the order
/// they were recorded.
struct JsonFields<'a> {
    line: &'a mut String,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        self.line.push(',');
        push_json(self.line, field.name());
        self.line.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json(self.line, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.line, "{value}");
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.line, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.line, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        match serde_json::Number::from_f64(value) {
            Some(number) => {
                let _ = write!(self.line, "{number}");
            }
            None => push_json(self.line, &value.to_string()),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        push_json(self.line, &format!("{value:?}"));
    }
}

/// What tests of log lines share.
#[cfg(test)]
pub(crate) mod testing {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    /// A writer for the `fmt` layer that keeps what it is given.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Everything written so far.
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// What `emit` logs through the gateway's format, at `debug`.
    pub(crate) fn logged(format: crate::config::LogFormat, emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .event_format(super::Lines::new(format))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::logged;
    use super::*;

    /// The time of a line, and the rest of it.
    fn split_time(line: &str) -> (&str, &str) {
        line.split_at(27)
    }

    #[test]
    fn text_lines_carry_the_level_target_request_and_fields() {
        let id = HeaderValue::from_static("07535f25-000000000001");
        let text = logged(LogFormat::Text, || {
            let _in_request = in_request(&id);
            tracing::warn!(error = "connection reset", kind = "io", "request not forwarded");
            drop(_in_request);
            tracing::info!("listening");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (time, rest) = split_time(lines[0]);
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
        assert_eq!(
            rest,
            "  WARN authgate::obs::logging::tests: request_id=07535f25-000000000001 request not forwarded error=\"connection reset\" kind=\"io\""
        );
        assert_eq!(
            split_time(lines[1]).1,
            "  INFO authgate::obs::logging::tests: listening"
        );
        assert!(CURRENT.with_borrow(Option::is_none), "out of the request again");
    }

    #[test]
    fn json_lines_are_objects_with_the_same_keys_in_order() {
        let id = HeaderValue::from_bytes(b"proxy \"7\" \xff").unwrap();
        let text = logged(LogFormat::Json, || {
            let _in_request = in_request(&id);
            tracing::error!(
                panic = "a \"bug\"",
                code = 7u64,
                ok = false,
                "request handling panicked"
            );
        });
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(value["level"], "ERROR");
        assert_eq!(value["target"], "authgate::obs::logging::tests");
        assert_eq!(value["request_id"], "proxy \"7\" \u{fffd}");
        assert_eq!(value["message"], "request handling panicked");
        assert_eq!(
            (
                value["panic"].as_str(),
                value["code"].as_u64(),
                value["ok"].as_bool()
            ),
            (Some("a \"bug\""), Some(7), Some(false))
        );
        let at = |key: &str| {
            text.find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key} in {text}"))
        };
        let order = [
            "timestamp",
            "level",
            "target",
            "request_id",
            "message",
            "panic",
            "code",
            "ok",
        ]
        .map(at);
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
    }
}
