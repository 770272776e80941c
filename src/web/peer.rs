//! Who is really calling: the connection's peer, and the forwarding
//! headers (`X-Forwarded-For`), which count only when that peer is a
//! trusted proxy (`[server] trusted_proxies`).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::header::HeaderMap;
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
}
