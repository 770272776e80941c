//! The `authgate` binary's log: `tracing-subscriber`'s `fmt` layer on
//! standard error, in text or JSON as `[log] format` says, where each line
//! a request logs carries the request's id.
//!
//! The id used to come from a `request` span around every request, which
//! cost the `fmt` layer about 3,200 instructions a request (the span's
//! slot, its field formatted, entered and left at each poll, closed) with
//! the log at `info`, the default: a tenth of a logged request. Most
//! requests log nothing but their access line, which the gateway writes
//! itself ([`crate::obs::access_log`]). Here the request's id is held for the
//! thread while the request is being worked on, and the lines it logs are
//! given it as the span gave it: `request{id=…}: ` after the level in text,
//! `"span":{"id":…,"name":"request"}` at the end in JSON. A unit test
//! renders lines both ways and compares them byte for byte.
//!
//! Elsewhere (a terminal, whose text has colours; a subscriber of the
//! embedding program's own) requests keep their span.

use std::cell::RefCell;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderValue;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the binary's log as the process's `tracing` subscriber, with
/// `RUST_LOG` as its filter (`info` when unset). Answers whether the log
/// is JSON, or text without colours (not a terminal): then the gateway can
/// write its access log's lines itself
/// ([`Gateway::with_access_log_to_stderr`](crate::Gateway::with_access_log_to_stderr)).
///
/// Span-based `RUST_LOG` directives (`[request]=debug`) find no request
/// span when the answer is `true`.
///
/// # Panics
///
/// If the process already has a global `tracing` subscriber.
pub fn init_logging(format: LogFormat) -> bool {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => {
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .map_event_format(|inner| WithRequestId { inner, json: true })
                .init();
        }
        _ if std::io::stderr().is_terminal() => {
            builder.with_ansi(true).init();
            return false;
        }
        _ => builder
            .with_ansi(false)
            .map_event_format(|inner| WithRequestId { inner, json: false })
            .init(),
    }
    IDS_FROM_THE_THREAD.store(true, Ordering::Relaxed);
    true
}

/// Whether the installed log gives lines their request's id from the
/// thread ([`in_request`]), so that requests need no span.
pub(crate) fn ids_from_the_thread() -> bool {
    IDS_FROM_THE_THREAD.load(Ordering::Relaxed)
}

static IDS_FROM_THE_THREAD: AtomicBool = AtomicBool::new(false);

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

/// An event format that adds the thread's current request to its lines,
/// where the `request` span's context would be.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        CURRENT.with_borrow(|current| {
            // Inside a span of its own, a line shows that span, as it did.
            let Some(id) = current.as_ref().filter(|_| ctx.lookup_current().is_none()) else {
                return self.inner.format_event(ctx, writer, event);
            };
            let mut line = String::new();
            self.inner.format_event(ctx, Writer::new(&mut line), event)?;
            let id = String::from_utf8_lossy(id.as_bytes());
            if self.json {
                add_to_json(&mut line, &id);
            } else {
                add_to_text(&mut line, &id);
            }
            writer.write_str(&line)
        })
    }
}

/// `request{id=…}: ` after the timestamp and the level (`{:>5}`), each
/// followed by a space, where the `fmt` layer writes the spans in scope.
fn add_to_text(line: &mut String, id: &str) {
    let Some(after_level) = line.find(' ').map(|end_of_time| end_of_time + 7) else {
        return;
    };
    if line.len() >= after_level {
        line.insert_str(after_level, &format!("request{{id={id}}}: "));
    }
}

/// `,"span":{"id":…,"name":"request"}` before the object's closing brace,
/// where the JSON format writes the current span.
fn add_to_json(line: &mut String, id: &str) {
    let Some(end) = line.rfind('}') else {
        return;
    };
    let id = serde_json::to_string(id).expect("a string serializes");
    line.insert_str(end, &format!(",\"span\":{{\"id\":{id},\"name\":\"request\"}}"));
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
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::time::FormatTime;

    use super::testing::Captured;
    use super::*;

    /// A fixed time, so that two renderings can be compared.
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-11-29T08:47:43.123456Z")
        }
    }

    /// Some events a request may log, as the gateway's code logs them.
    fn events() {
        tracing::warn!(error = "connection reset", "upstream failed");
        tracing::error!(panic = "a \"bug\"", "request handling panicked");
        tracing::info!(target: "authgate::access", method = "GET", path = "/x", status = 200u16, user = "ann");
        tracing::debug!(timeout_secs = 30u64, "upstream timed out");
    }

    /// `events` logged in a request's span (the old way) and with the
    /// request's id on the thread (this module's), in `format`.
    fn both_ways(id: &HeaderValue, json: bool) -> (String, String) {
        let render = |scoped: bool| {
            let captured = Captured::default();
            let builder = tracing_subscriber::fmt()
                .with_writer(captured.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .with_timer(Fixed);
            let emit = || {
                if scoped {
                    let _in_request = in_request(id);
                    events();
                } else {
                    let lossy = String::from_utf8_lossy(id.as_bytes());
                    tracing::info_span!("request", id = %lossy).in_scope(events);
                }
                // Outside any request: unchanged either way.
                tracing::info!("listening");
            };
            if json {
                let subscriber = builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .map_event_format(|inner| WithRequestId { inner, json: true })
                    .finish();
                tracing::subscriber::with_default(subscriber, emit);
            } else {
                let subscriber = builder
                    .map_event_format(|inner| WithRequestId { inner, json: false })
                    .finish();
                tracing::subscriber::with_default(subscriber, emit);
            }
            captured.text()
        };
        (render(false), render(true))
    }

    #[test]
    fn lines_carry_the_request_id_byte_for_byte_as_the_span_gave_it() {
        let ids = [
            HeaderValue::from_static("07535f25-000000000001"),
            HeaderValue::from_static("trace \"me\" \\ 7"),
            HeaderValue::from_bytes(b"proxy-\xff-id").unwrap(),
        ];
        for id in &ids {
            for json in [false, true] {
                let (span, scoped) = both_ways(id, json);
                assert_eq!(scoped, span, "id {id:?}, json {json}");
                assert_eq!(span.lines().count(), 5, "{span}");
                assert!(span.contains("id"), "{span}");
            }
        }
        // Once the guard is gone, the thread is in no request.
        assert!(CURRENT.with_borrow(Option::is_none));
    }
}
