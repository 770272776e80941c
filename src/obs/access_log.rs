//! The access log: a line per request, in the log's own format (see
//! [`crate::obs::logging`]) on standard error, written by the gateway
//! itself rather than as a `tracing` event (which costs several times as
//! much), when the log is on at `info` for its target, `authgate::access`.
//! A unit test checks that a line written here is the one the log's
//! format writes for the same event, byte for byte after the time.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;

use crate::config::LogFormat;
use crate::web::peer::AddrText;

/// The access log's target.
pub(crate) const TARGET: &str = "authgate::access";

/// One request's line.
pub(crate) struct AccessLine<'a> {
    /// The request's id (the one a trusted proxy set, or the gateway's).
    pub(crate) request_id: &'a [u8],
    pub(crate) method: &'a Method,
    /// The path, never the query (which may hold a token).
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) latency_us: u64,
    pub(crate) user: Option<&'a str>,
    pub(crate) client: IpAddr,
}

/// A timestamp's text up to its second (`YYYY-MM-DDTHH:MM:SS.`), with
/// that second: the same for every line written within it.
type CachedSecond = Option<(u64, [u8; 20])>;

thread_local! {
    /// The line being written, and the last second's text, reused by the
    /// thread's requests.
    static SCRATCH: RefCell<(Vec<u8>, CachedSecond)> = const { RefCell::new((Vec::new(), None)) };
}

impl AccessLine<'_> {
    /// Whether the log is on for the access log.
    pub(crate) fn enabled() -> bool {
        tracing::enabled!(target: TARGET, tracing::Level::INFO)
    }

    /// The line as a `tracing` event, with the request's id on the thread:
    /// what the log's format writes for it.
    #[cfg(test)]
    fn to_event(&self) {
        let _in_request =
            crate::obs::logging::in_request(&http::HeaderValue::from_bytes(self.request_id).unwrap());
        tracing::info!(
            target: "authgate::access",
            method = %self.method,
            path = self.path,
            status = self.status,
            latency_us = self.latency_us,
            user = self.user,
            client = %self.client,
        );
    }

    /// Writes the line in `format` to standard error with one `write`; a
    /// failure to write is ignored, as the log's other lines' are.
    pub(crate) fn to_stderr(&self, format: LogFormat) {
        SCRATCH.with_borrow_mut(|(line, second)| {
            line.clear();
            match format {
                LogFormat::Json => self.write_json(SystemTime::now(), second, line),
                _ => self.write_text(SystemTime::now(), second, line),
            }
            let _ = std::io::stderr().lock().write_all(line);
        });
    }

    /// The line as JSON at `now`: the log's keys in its order; strings
    /// escaped by `serde_json`.
    fn write_json(&self, now: SystemTime, second: &mut CachedSecond, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(now, second, out);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"authgate::access\",\"request_id\":");
        // As the log has it: a trusted proxy's id may hold bytes that are
        // not UTF-8.
        json_string(&String::from_utf8_lossy(self.request_id), out);
        out.extend_from_slice(b",\"method\":");
        json_string(self.method.as_str(), out);
        out.extend_from_slice(b",\"path\":");
        json_string(self.path, out);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.extend_from_slice(b",\"latency_us\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.latency_us).as_bytes());
        if let Some(user) = self.user {
            out.extend_from_slice(b",\"user\":");
            json_string(user, out);
        }
        // An address's text needs no escaping.
        out.extend_from_slice(b",\"client\":\"");
        out.extend_from_slice(AddrText::of(self.client).as_str().as_bytes());
        out.extend_from_slice(b"\"}\n");
    }

    /// The line as text at `now`; `second` caches the timestamp's text to
    /// the second.
    fn write_text(&self, now: SystemTime, second: &mut CachedSecond, out: &mut Vec<u8>) {
        write_timestamp(now, second, out);
        out.extend_from_slice(b"  INFO authgate::access: request_id=");
        out.extend_from_slice(String::from_utf8_lossy(self.request_id).as_bytes());
        out.extend_from_slice(b" method=");
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.extend_from_slice(b" path=");
        write_quoted(self.path, out);
        out.extend_from_slice(b" status=");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.extend_from_slice(b" latency_us=");
        out.extend_from_slice(itoa::Buffer::new().format(self.latency_us).as_bytes());
        if let Some(user) = self.user {
            out.extend_from_slice(b" user=");
            write_quoted(user, out);
        }
        out.extend_from_slice(b" client=");
        out.extend_from_slice(AddrText::of(self.client).as_str().as_bytes());
        out.push(b'\n');
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds); `second` caches
/// the text to the second.
pub(crate) fn write_timestamp(now: SystemTime, second: &mut CachedSecond, out: &mut Vec<u8>) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let text = match second {
        Some((cached, text)) if *cached == secs => text,
        _ => &mut second.insert((secs, date_and_time(secs))).1,
    };
    out.extend_from_slice(text);
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` for `secs` after the Unix epoch, in UTC.
fn date_and_time(secs: u64) -> [u8; 20] {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let in_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3600);
    put(14, 2, in_day / 60 % 60);
    put(17, 2, in_day % 60);
    text
}

/// The proleptic Gregorian date of a day counted from 1970-01-01: the
/// usual era arithmetic (eras of 400 years, 146,097 days, starting on
/// March 1st so that the leap day ends a year).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u64;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u64;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
pub(crate) fn json_string(text: &str, out: &mut Vec<u8>) {
    // Writing into a vector cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `text` as `{:?}` writes a string (as the log writes string fields):
/// printable ASCII other than `"` and `\` as it is, anything else by
/// `Debug` itself.
fn write_quoted(text: &str, out: &mut Vec<u8>) {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{text:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::FormatTime;

    use super::*;
    use crate::obs::logging::testing::logged;

    fn written(line: &AccessLine<'_>, now: SystemTime, format: LogFormat) -> String {
        let mut out = Vec::new();
        match format {
            LogFormat::Json => line.write_json(now, &mut None, &mut out),
            _ => line.write_text(now, &mut None, &mut out),
        }
        String::from_utf8(out).unwrap()
    }

    /// A line without its time, which the two ways read from the clock at
    /// different moments.
    fn timeless(line: &str, format: LogFormat) -> String {
        match format {
            LogFormat::Json => {
                let start = line.find("\"timestamp\":\"").unwrap() + 13;
                format!("{}{}", &line[..start], &line[start + 27..])
            }
            _ => line[27..].to_owned(),
        }
    }

    #[test]
    fn lines_are_those_the_logs_format_writes_for_the_same_event() {
        let get = Method::GET;
        let custom = Method::from_bytes(b"PROPFIND").unwrap();
        let now = UNIX_EPOCH + Duration::new(1_796_000_000, 123_456_789);
        let paths = [
            "/",
            "/api/items",
            "/a b/\"q\"",
            "/back\\slash",
            "/caf\u{e9}",
            "/tab\there",
            "/\u{7f}",
            "/\u{1}\n",
            "",
        ];
        let users = [None, Some("alice"), Some("o'brien \"ob\""), Some("\u{1F600}")];
        let clients: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        for path in paths {
            for user in users {
                for client in clients {
                    // Our own ids, and one a trusted proxy set (any header
                    // value: quotes, bytes that are not UTF-8).
                    for (method, request_id) in [
                        (&get, &b"8362cb80-0000000e7046"[..]),
                        (&custom, b"proxy \"7\" \xff\xfe"),
                    ] {
                        let line = AccessLine {
                            request_id,
                            method,
                            path,
                            status: 200,
                            latency_us: 136,
                            user,
                            client,
                        };
                        for format in [LogFormat::Text, LogFormat::Json] {
                            let ours = written(&line, now, format);
                            let theirs = logged(format, || line.to_event());
                            assert_eq!(timeless(&ours, format), timeless(&theirs, format));
                            if format == LogFormat::Json {
                                let value: serde_json::Value = serde_json::from_str(&ours).unwrap();
                                assert_eq!(value["path"], path);
                                assert_eq!(value["timestamp"], "2026-11-30T00:53:20.123456Z");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The timestamp against `tracing-subscriber`'s own clock-reading
    /// timer: equal up to the microseconds, within a second of each other.
    #[test]
    fn timestamps_are_rfc_3339_utc_to_the_microsecond() {
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        let mut ours = Vec::new();
        write_timestamp(SystemTime::now(), &mut None, &mut ours);
        let ours = String::from_utf8(ours).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
        assert_eq!(ours[..16], theirs[..16], "{ours} / {theirs}");
        assert!(ours.ends_with('Z') && theirs.ends_with('Z'));
    }

    #[test]
    fn dates_across_leap_years_and_centuries() {
        let day = |y: i64, m: u64, d: u64| (y, m, d);
        assert_eq!(civil_from_days(0), day(1970, 1, 1));
        assert_eq!(civil_from_days(59), day(1970, 3, 1));
        assert_eq!(civil_from_days(10_957), day(2000, 1, 1));
        assert_eq!(civil_from_days(11_016), day(2000, 2, 29), "2000 is a leap year");
        assert_eq!(civil_from_days(47_540), day(2100, 2, 28));
        assert_eq!(
            civil_from_days(47_541),
            day(2100, 3, 1),
            "2100 is not a leap year"
        );
        assert_eq!(civil_from_days(20_786), day(2026, 11, 29));
        assert_eq!(&date_and_time(1_796_000_000), b"2026-11-30T00:53:20.");
        // The cached second is the one asked for, not the first cached.
        let mut second = None;
        let mut out = Vec::new();
        write_timestamp(UNIX_EPOCH + Duration::from_secs(59), &mut second, &mut out);
        write_timestamp(UNIX_EPOCH + Duration::from_secs(60), &mut second, &mut out);
        assert_eq!(out, b"1970-01-01T00:00:59.000000Z1970-01-01T00:01:00.000000Z");
    }
}
