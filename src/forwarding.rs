//! Who is really calling: the connection's peer, and the forwarding
//! headers (`X-Forwarded-For/Proto/Host`), which count only when that peer
//! is a trusted proxy (`[server] trusted_proxies`).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// The address of the peer at the other end of the connection. A server
/// embedding the layer sets it on each request's extensions (the gateway
/// knows it per connection, and sets it on requests to its own endpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

pub(crate) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most address in `X-Forwarded-For` that is not itself a trusted
/// proxy.
pub(crate) fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(*ip, trusted))
            .unwrap_or(peer),
    )
}

/// An address as text, as `Display` writes it. IPv4, the common case,
/// is written without the formatting machinery (about 900 instructions
/// less): each request's `X-Forwarded-For` and access-log line carry one.
pub(crate) struct AddrText {
    text: [u8; 45],
    len: usize,
}

impl AddrText {
    pub(crate) fn of(ip: IpAddr) -> Self {
        let mut text = [0u8; 45];
        let IpAddr::V4(v4) = ip else {
            let mut rest = &mut text[..];
            // The longest IPv6 text is 45 bytes.
            let _ = write!(rest, "{ip}");
            let len = 45 - rest.len();
            return Self { text, len };
        };
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                text[len] = b'.';
                len += 1;
            }
            let digits = [octet / 100, octet / 10 % 10, octet % 10];
            let first = match octet {
                100.. => 0,
                10..=99 => 1,
                _ => 2,
            };
            for digit in &digits[first..] {
                text[len] = b'0' + digit;
                len += 1;
            }
        }
        Self { text, len }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).expect("an address's text is ASCII")
    }
}

/// The forwarding fields of a request on its way upstream, written as
/// the request is written (by [`crate::http1`]) rather than inserted in
/// its header map: four inserts there (`Host` and the three
/// `X-Forwarded-*`) cost about 1,000 instructions a request.
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

/// What becomes of one of the request's own fields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Kept,
    LeftOut,
    /// Written under this name instead.
    Renamed(&'static str),
}

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

impl ForwardedFields {
    /// What becomes of the request's field `name`; `host_seen` says an
    /// earlier `Host` was already renamed (only the first goes on).
    pub(crate) fn fate(name: &HeaderName, host_seen: bool) -> Fate {
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
    pub(crate) fn fields(&self) -> [(&'static str, &HeaderValue); 3] {
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
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8, 10.0.0.2".parse().unwrap());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(
            client_ip(Some(proxy), &headers, &trusted),
            Some("5.6.7.8".parse().unwrap())
        );
        assert_eq!(client_ip(Some(stranger), &headers, &trusted), Some(stranger));
        assert_eq!(client_ip(Some(proxy), &HeaderMap::new(), &trusted), Some(proxy));
        assert_eq!(client_ip(None, &headers, &trusted), None);
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "127.0.0.1",
            "0.0.0.0",
            "10.20.30.40",
            "192.168.100.9",
            "255.255.255.255",
            "1.9.99.100",
            "::1",
            "::",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "0:0:0:0:0:ffff:255.255.255.255",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(AddrText::of(ip).as_str(), ip.to_string(), "{text}");
        }
    }

    #[test]
    fn the_first_host_is_forwarded_and_the_clients_forwarding_fields_are_not() {
        let fate = |name: &str, host_seen| {
            ForwardedFields::fate(&HeaderName::from_bytes(name.as_bytes()).unwrap(), host_seen)
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
