//! TLS: the gateway terminating it (HTTP/1.1 and HTTP/2 by ALPN, Secure
//! cookies), and an https:// upstream verified against a configured CA.
//! Certificates are made by the test (rcgen).

use std::sync::Arc;

use crate::common::*;
use serde_json::Value;
use tokio_rustls::rustls;

struct Pki {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    cert_pem: String,
    key_pem: String,
}

/// A self-signed certificate for localhost and 127.0.0.1 (its own CA).
fn pki() -> Pki {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    Pki {
        _dir: dir,
        cert,
        key,
        cert_pem,
        key_pem,
    }
}

fn https_client(pki: &Pki, http2: bool) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(pki.cert_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true);
    if http2 { builder } else { builder.http1_only() }
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_gateway_terminates_tls_with_h1_and_h2_and_cookies_are_secure() {
    let pki = pki();
    let upstream = start_upstream().await;
    let toml = config_toml(upstream.addr, "").replace(
        "[server]\n",
        &format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.cert.display(),
            pki.key.display()
        ),
    );
    let gateway = Gateway::start(&toml).await;
    let base = format!("https://localhost:{}", gateway.addr.port());

    for (http2, version) in [
        (false, reqwest::Version::HTTP_11),
        (true, reqwest::Version::HTTP_2),
    ] {
        let client = https_client(&pki, http2);
        let response = submit_sign_in(
            &client,
            &format!("{base}/management/authorize?rd=/x"),
            "alice",
            PASSWORD,
        )
        .await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.version(), version);
        let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("; Secure"), "{cookie}");
        let response = client.get(format!("{base}/x")).send().await.unwrap();
        assert_eq!(response.version(), version);
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
        assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    }

    // Plain HTTP on the TLS port is not served.
    assert!(api()
        .get(gateway.url("/x"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success()));
}

/// An https upstream answering "secure ok" with `pki`'s certificate.
async fn start_https_upstream(pki: &Pki) -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let chain = vec![rustls::pki_types::CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"secure ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_the_configured_ca() {
    let pki = pki();
    let upstream = start_https_upstream(&pki).await;
    let base = config_toml(upstream, "").replace(
        &format!("url = \"http://{upstream}\""),
        &format!("url = \"https://localhost:{}\"", upstream.port()),
    );
    let trusting = Gateway::start(&base.replace(
        "timeout_secs = 2",
        &format!("timeout_secs = 2\nca_file = \"{}\"", pki.cert.display()),
    ))
    .await;
    let token = session_token(&sign_in(&browser(), &trusting, "alice", PASSWORD, "/").await);
    let response = bearer_get(&trusting, "/x", &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "secure ok");

    // With the system's roots, the test's CA is unknown: refused, not trusted.
    let system_roots = Gateway::start(&base).await;
    let token = session_token(&sign_in(&browser(), &system_roots, "alice", PASSWORD, "/").await);
    assert_eq!(bearer_status(&system_roots, "/x", &token).await, 502);
}

#[test]
fn a_tls_key_that_does_not_fit_is_refused_with_its_line() {
    let (a, b) = (pki(), pki());
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[upstream]\nbuiltin = \"whoami\"\n",
        a.cert.display(),
        b.key.display()
    );
    let err = authgate::Config::from_toml_str(&toml).unwrap_err();
    assert_eq!(err.location().unwrap().line, 3, "{err}");
    assert!(err.message().contains("do not go together"), "{err}");
}
