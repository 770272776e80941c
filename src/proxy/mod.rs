//! The upstream forwarding service: a reverse proxy that rewrites each
//! request for the upstream and sends it on a connection of
//! [`crate::proxy::pool`].

pub(crate) mod error;
pub(crate) mod forwarding;
pub(crate) mod http1;
pub(crate) mod pool;

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use pin_project_lite::pin_project;
use tower::Service;
use url::Url;

use crate::config::{Config, ServerConfig, UpstreamConfig};
use crate::error::Error;
use crate::runtime::timer::CoarseSleep;
use crate::web::peer::{is_trusted, AddrText, ClientAddr};

use self::error::UpstreamError;
use self::forwarding::{ForwardedFields, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use self::http1::{FieldPolicy, Upgraded};
use self::pool::{ConnectionLink, Origin, UpstreamBody};
use crate::web::response::{self, OwnBody};

/// The body of a proxied response: the upstream's, streamed, or the
/// gateway's own when the upstream failed.
pub type ProxyBody = Either<UpstreamBody, OwnBody>;

/// Forwards requests to one upstream origin. Cloning is cheap: clones
/// share the origin's connections.
///
/// A response carries its request's extensions (such as the
/// [`Session`](crate::Session) the layer found), so that the services
/// around the proxy find them there too.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<ProxyInner>,
}

#[derive(Debug)]
struct ProxyInner {
    origin: Arc<Origin>,
    host: HeaderValue,
    forwarded_proto: HeaderValue,
    timeout: Duration,
    trusted_proxies: Vec<IpNet>,
    /// The protocols a request may upgrade to, lower case.
    upgrades: Vec<String>,
}

impl Proxy {
    /// A proxy to `upstream` (an `http://` or, with the `tls` feature,
    /// `https://` origin) with the timeouts, forwarding headers, trusted
    /// proxies, upgrades and CA of `config`.
    pub fn new(upstream: &Url, config: &Config) -> Result<Self, Error> {
        Self::to_origin(
            upstream,
            &config.upstream,
            &config.server,
            config.upstream.upgrades.clone(),
        )
    }

    /// A proxy to `upstream`, as its `[upstream]` section says (timeouts,
    /// CA) and as the `[server]` is reached (trusted proxies, https), that
    /// lets requests upgrade to `upgrades` (a route's own, or the
    /// section's).
    pub(crate) fn to_origin(
        upstream: &Url,
        section: &UpstreamConfig,
        server: &ServerConfig,
        upgrades: Vec<String>,
    ) -> Result<Self, Error> {
        let https = server.is_https();
        let forwarded_proto = if https { "https" } else { "http" };
        let scheme = if upstream.scheme() == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let authority = match upstream.port() {
            Some(port) => format!("{}:{port}", upstream.host_str().unwrap_or("127.0.0.1")),
            None => upstream.host_str().unwrap_or("127.0.0.1").to_owned(),
        };
        let authority = Authority::try_from(authority).expect("the config checked the upstream URL");
        let inner = ProxyInner {
            host: HeaderValue::from_str(authority.as_str()).expect("an authority is a header value"),
            origin: Origin::new(scheme, authority, section)?,
            forwarded_proto: HeaderValue::from_static(forwarded_proto),
            timeout: section.timeout,
            trusted_proxies: server.trusted_proxies.clone(),
            upgrades,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }
}

impl ProxyInner {
    /// Rewrites `req` to go upstream: the same path and query (origin
    /// form) with the upstream's `Host`, HTTP/1.1, no hop-by-hop headers
    /// (but a protocol upgrade asked for, such as WebSocket, is asked of
    /// the upstream too), and `X-Forwarded-For/Proto/Host` set. Answers
    /// whether it is an upgrade, and the forwarding fields to write with
    /// the request when they are not set in its headers (the common case:
    /// see [`ForwardedFields`]).
    fn rewrite(
        &self,
        req: &mut Request<Incoming>,
        client: Option<&Client>,
    ) -> (bool, Option<Box<dyn FieldPolicy>>) {
        let upgrade = upgrade_asked(req.headers(), &self.upgrades);
        let peer = match client {
            Some(client) => Some(client.ip),
            None => req.extensions().get::<ClientAddr>().map(|addr| addr.0.ip()),
        };
        let from_trusted_proxy = peer.is_some_and(|ip| is_trusted(ip, &self.trusted_proxies));
        // A request in absolute form names its host in its target.
        let origin_form = req.uri().authority().is_none();
        remove_hop_by_hop(req.headers_mut());
        *req.version_mut() = Version::HTTP_11;
        if origin_form && !from_trusted_proxy && upgrade.is_none() {
            let forwarded_for = match client {
                Some(client) => Some(client.forwarded_for.clone()),
                None => peer.map(address_header),
            };
            if let Some(forwarded_for) = forwarded_for {
                let forwarded = ForwardedFields {
                    host: self.host.clone(),
                    forwarded_for,
                    forwarded_proto: self.forwarded_proto.clone(),
                };
                return (false, Some(Box::new(forwarded)));
            }
        }
        let path_and_query = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let original_host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        *req.uri_mut() = Uri::from(path_and_query);
        let headers = req.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        let chain = from_trusted_proxy
            .then(|| {
                let earlier: Vec<&str> = headers
                    .get_all(X_FORWARDED_FOR)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!earlier.is_empty()).then(|| earlier.join(", "))
            })
            .flatten();
        let forwarded_for = match (chain, peer, client) {
            (Some(chain), Some(peer), _) => HeaderValue::try_from(format!("{chain}, {peer}")).ok(),
            (_, _, Some(client)) => Some(client.forwarded_for.clone()),
            (_, peer, None) => peer.map(address_header),
        };
        match forwarded_for {
            Some(value) => headers.insert(X_FORWARDED_FOR, value),
            None => headers.remove(X_FORWARDED_FOR),
        };
        if !(from_trusted_proxy && headers.contains_key(X_FORWARDED_PROTO)) {
            headers.insert(X_FORWARDED_PROTO, self.forwarded_proto.clone());
        }
        if !(from_trusted_proxy && headers.contains_key(X_FORWARDED_HOST)) {
            match original_host {
                Some(host) => headers.insert(X_FORWARDED_HOST, host),
                None => headers.remove(X_FORWARDED_HOST),
            };
        }
        if let Some(protocol) = &upgrade {
            headers.insert(header::UPGRADE, protocol.clone());
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        (upgrade.is_some(), None)
    }
}

/// The client connection requests come on, as the proxy tells the
/// upstream about it: its address, and that address as an
/// `X-Forwarded-For` value, written once for all of its requests.
#[derive(Clone)]
pub(crate) struct Client {
    ip: IpAddr,
    forwarded_for: HeaderValue,
    /// Kept as long as a tunnel this connection upgraded to is open (the
    /// server's connection slot).
    keep_while_tunnelled: Option<KeepAlive>,
}

/// Whatever a tunnel keeps alive while it is open.
pub(crate) type KeepAlive = Arc<dyn std::any::Any + Send + Sync>;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(peer: std::net::SocketAddr, keep_while_tunnelled: Option<KeepAlive>) -> Self {
        Self {
            ip: peer.ip(),
            forwarded_for: address_header(peer.ip()),
            keep_while_tunnelled,
        }
    }
}

/// An address as a header value.
fn address_header(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(AddrText::of(ip).as_str()).expect("an address is a header value")
}

/// The `Upgrade` the request asks for (with `Connection: upgrade`), such
/// as `websocket`, cut to the protocols in `allowed` (names compared
/// without their version, in any case); `None` if none is left. Any
/// other upgrade, `h2c` above all (a tunnel to the upstream's HTTP/2,
/// whose requests the gateway would never check), is not asked of the
/// upstream: the request goes on as an ordinary one.
fn upgrade_asked(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let asked = headers.get(header::UPGRADE)?.to_str().ok()?;
    let kept: Vec<&str> = asked
        .split(',')
        .map(str::trim)
        .filter(|protocol| {
            let name = protocol.split('/').next().unwrap_or("").trim();
            !name.eq_ignore_ascii_case("h2c") && allowed.iter().any(|a| name.eq_ignore_ascii_case(a))
        })
        .collect();
    match kept.len() {
        0 => None,
        _ if kept.len() == asked.split(',').count() => headers.get(header::UPGRADE).cloned(),
        _ => HeaderValue::from_str(&kept.join(", ")).ok(),
    }
}

/// Splices an upgraded client connection to the upgraded upstream
/// connection, both ways, until either side closes; `_kept` lives as long.
async fn splice(client: OnUpgrade, mut upstream: Upgraded, _kept: Option<KeepAlive>) {
    match client.await {
        Ok(client) => {
            let mut client = TokioIo::new(client);
            if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %err, "upgraded connection ended");
            }
        }
        Err(err) => tracing::warn!(error = %err, "protocol upgrade failed"),
    }
}

/// Drops hop-by-hop headers and those the `Connection` header names.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none: one pass over the names, and no
    // allocation unless `Connection` names some other header. (An
    // answer's are left out as it is read, in `crate::proxy::http1`.)
    // At most the ten hop-by-hop names.
    let mut present: [Option<HeaderName>; 10] = Default::default();
    for (slot, name) in present
        .iter_mut()
        .zip(headers.keys().filter(|name| is_hop_by_hop(name)))
    {
        *slot = Some(name.clone());
    }
    if present[0].is_none() {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| !is_connection_option(token))
        .filter_map(|name| HeaderName::try_from(name).ok())
        .collect();
    for name in named.iter().chain(present.iter().flatten()) {
        headers.remove(name);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    crate::proxy::http1::is_hop_by_hop(name.as_str())
}

/// A `Connection` option that is not a header's name, or one removed
/// anyway.
fn is_connection_option(token: &str) -> bool {
    ["keep-alive", "close", "upgrade"]
        .iter()
        .any(|option| token.eq_ignore_ascii_case(option))
}

/// The gateway's answer for a request it could not forward: its status,
/// a short JSON body saying why, and the error's kind in its extensions
/// (for the metrics).
fn upstream_failure(err: &UpstreamError) -> Response<ProxyBody> {
    let mut response = response::json_error(err.status(), "upstream_unavailable", err.description());
    response.extensions_mut().insert(err.kind());
    response.map(Either::Right)
}

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        self.forward(req, None, None)
    }
}

impl Proxy {
    /// Forwards `req`, on the upstream connection `link` keeps for its
    /// client connection when there is one; `client` is that connection's
    /// peer (else the request's [`ClientAddr`], if any).
    pub(crate) fn forward(
        &self,
        mut req: Request<Incoming>,
        link: Option<ConnectionLink>,
        client: Option<&Client>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>> {
        let inner = &self.inner;
        let (upgrade, forwarded) = inner.rewrite(&mut req, client);
        let client_upgrade = upgrade.then(|| {
            let kept = client.and_then(|c| c.keep_while_tunnelled.clone());
            Box::new((hyper::upgrade::on(&mut req), kept))
        });
        let extensions = std::mem::take(req.extensions_mut());
        let sending = inner.origin.clone().send(req, forwarded, link);
        Box::pin(Forwarding::new(
            sending,
            inner.timeout,
            client_upgrade,
            Some(extensions),
        ))
    }
}

pin_project! {
    /// A request on its way upstream, and then its answer: the upstream's,
    /// or the gateway's own when the upstream fails or is too slow.
    ///
    /// A future of its own rather than an `async` block, which would hold
    /// the sending future twice (captured, and being awaited).
    struct Forwarding<F> {
        #[pin]
        sending: F,
        // Until the answer's head (`upstream.timeout_secs`).
        deadline: CoarseSleep,
        // Boxed: few requests upgrade.
        client_upgrade: Option<Box<(OnUpgrade, Option<KeepAlive>)>>,
        // The request's, for the response (see `Proxy`).
        extensions: Option<http::Extensions>,
        timeout: Duration,
    }
}

impl<F> Forwarding<F> {
    fn new(
        sending: F,
        timeout: Duration,
        client_upgrade: Option<Box<(OnUpgrade, Option<KeepAlive>)>>,
        extensions: Option<http::Extensions>,
    ) -> Self {
        Self {
            sending,
            deadline: CoarseSleep::until(std::time::Instant::now() + timeout),
            client_upgrade,
            extensions,
            timeout,
        }
    }
}

impl<F> Future for Forwarding<F>
where
    F: Future<Output = Result<Response<UpstreamBody>, UpstreamError>>,
{
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let sent = match this.sending.poll(cx) {
            Poll::Ready(sent) => Ok(sent),
            Poll::Pending => {
                std::task::ready!(Pin::new(this.deadline).poll(cx));
                Err(UpstreamError::timeout())
            }
        };
        let mut answer = match sent {
            Ok(Ok(mut response)) => {
                // The answer's hop-by-hop fields were left out as it was
                // read (`crate::proxy::http1`), but for a `101`'s.
                if let Some((client, kept)) = this.client_upgrade.take().map(|boxed| *boxed) {
                    if let Some(upstream) = response.body_mut().take_upgraded() {
                        tokio::spawn(splice(client, upstream, kept));
                    }
                }
                response.map(Either::Left)
            }
            Ok(Err(err)) | Err(err) => {
                tracing::warn!(error = %err, kind = err.kind().as_str(), timeout_secs = this.timeout.as_secs(), "request not forwarded");
                upstream_failure(&err)
            }
        };
        if let Some(extensions) = this.extensions.take() {
            answer.extensions_mut().extend(extensions);
        }
        Poll::Ready(Ok(answer))
    }
}

/// A response built from static text, for the built-in upstream.
pub(crate) fn text_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_upgrades_are_asked_of_the_upstream() {
        let allowed = vec!["websocket".to_owned()];
        let asked = |upgrade: &str, connection: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::UPGRADE, HeaderValue::from_str(upgrade).unwrap());
            headers.insert(header::CONNECTION, HeaderValue::from_str(connection).unwrap());
            upgrade_asked(&headers, &allowed).map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(asked("websocket", "Upgrade").as_deref(), Some("websocket"));
        assert_eq!(
            asked("WebSocket", "keep-alive, upgrade").as_deref(),
            Some("WebSocket")
        );
        assert_eq!(asked("websocket", "keep-alive"), None, "no Connection: upgrade");
        assert_eq!(asked("h2c", "Upgrade, HTTP2-Settings"), None);
        assert_eq!(asked("anything/1.0", "Upgrade"), None);
        assert_eq!(asked("h2c, websocket", "Upgrade").as_deref(), Some("websocket"));
        let h2c_allowed = vec!["h2c".to_owned()];
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        assert_eq!(
            upgrade_asked(&headers, &h2c_allowed),
            None,
            "h2c never, whatever the list"
        );
    }

    #[test]
    fn connection_options_are_not_taken_for_header_names() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("Keep-Alive, X-Secret, close"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"]);
    }

    /// A forwarded request's future is allocated for every request: over
    /// 1 KiB it would leave glibc's per-thread cache for its slower paths
    /// (measured as a few per cent of the proxy's CPU). With hundreds of
    /// connections each line of it is also a cold one to write; it is 816
    /// bytes here (952 before the resend path was scoped off).
    #[tokio::test]
    async fn a_forwarded_request_fits_the_allocator_fast_path() {
        let (server, mut client) = tokio::io::duplex(1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
            TokioIo::new(server),
            hyper::service::service_fn(move |req: Request<Incoming>| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(req);
                }
                std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
            }),
        ));
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let req = rx.await.unwrap();
        let config = Config::from_toml_str(
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[[users]]\nusername = \"a\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU\"\n",
        )
        .unwrap();
        let proxy = Proxy::new(&Url::parse("http://127.0.0.1:1").unwrap(), &config).unwrap();
        let sending = proxy.inner.origin.clone().send(req, None, None);
        let forwarding = Forwarding::new(sending, Duration::from_secs(1), None, None);
        let size = std::mem::size_of_val(&forwarding);
        assert!(size <= 800, "a forwarded request's future is {size} bytes");
    }
}
