//! The forwarding fields of a request on its way upstream: `Host` and
//! `X-Forwarded-For/Proto/Host`, written as the request is written.

use http::header::{self, HeaderName, HeaderValue};

use super::http1::{Fate, FieldPolicy};

/// The forwarding fields of a request on its way upstream, written as
/// the request is written (the codec's [`FieldPolicy`]) rather than
/// inserted in its header map, which costs four hashed inserts a request.
///
/// `Host` is the upstream's, and the request's own `Host` goes on as
/// `X-Forwarded-Host`; `X-Forwarded-For` and `X-Forwarded-Proto` are these.
/// Whatever the request carried of the three `X-Forwarded-*` fields is
/// left out: these are for a request from a peer that is not a trusted
/// proxy, whose forwarding fields count for nothing.
#[derive(Debug)]
pub(crate) struct ForwardedFields {
    /// The upstream's authority.
    pub(crate) host: HeaderValue,
    /// The peer's address.
    pub(crate) forwarded_for: HeaderValue,
    /// `http` or `https`: how the gateway was reached.
    pub(crate) forwarded_proto: HeaderValue,
}

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

impl FieldPolicy for ForwardedFields {
    /// The first `Host` goes on as `X-Forwarded-Host` (`renamed_before`
    /// says one already did); the client's own forwarding fields are left
    /// out.
    fn fate(&self, name: &HeaderName, renamed_before: bool) -> Fate {
        Self::fate_of(name, renamed_before)
    }

    fn extra_fields(&self, write: &mut dyn FnMut(&str, &HeaderValue)) {
        for (name, value) in self.fields() {
            write(name, value);
        }
    }
}

impl ForwardedFields {
    /// What becomes of the request's field `name`; `host_seen` says an
    /// earlier `Host` was already renamed (only the first goes on).
    fn fate_of(name: &HeaderName, host_seen: bool) -> Fate {
        if name == header::HOST {
            return if host_seen {
                Fate::LeftOut
            } else {
                Fate::Renamed("x-forwarded-host")
            };
        }
        if name == X_FORWARDED_FOR || name == X_FORWARDED_PROTO || name == X_FORWARDED_HOST {
            return Fate::LeftOut;
        }
        Fate::Kept
    }

    /// The fields to write after the request's own.
    fn fields(&self) -> [(&'static str, &HeaderValue); 3] {
        [
            ("host", &self.host),
            ("x-forwarded-for", &self.forwarded_for),
            ("x-forwarded-proto", &self.forwarded_proto),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_host_is_forwarded_and_the_clients_forwarding_fields_are_not() {
        let fate = |name: &str, host_seen| {
            ForwardedFields::fate_of(&HeaderName::from_bytes(name.as_bytes()).unwrap(), host_seen)
        };
        assert_eq!(fate("host", false), Fate::Renamed("x-forwarded-host"));
        assert_eq!(X_FORWARDED_HOST, "x-forwarded-host");
        assert_eq!(fate("host", true), Fate::LeftOut);
        for name in ["x-forwarded-for", "X-Forwarded-Proto", "x-forwarded-host"] {
            assert_eq!(fate(name, false), Fate::LeftOut, "{name}");
        }
        for name in [
            "x-forwarded-user",
            "x-forwarded",
            "authorization",
            "x-request-id",
            "forwarded",
        ] {
            assert_eq!(fate(name, false), Fate::Kept, "{name}");
        }
        let fields = ForwardedFields {
            host: HeaderValue::from_static("up:1"),
            forwarded_for: HeaderValue::from_static("192.0.2.1"),
            forwarded_proto: HeaderValue::from_static("https"),
        };
        let names: Vec<&str> = fields.fields().iter().map(|(name, _)| *name).collect();
        let expected = [header::HOST, X_FORWARDED_FOR, X_FORWARDED_PROTO];
        assert_eq!(names, expected.iter().map(HeaderName::as_str).collect::<Vec<_>>());
    }
}
