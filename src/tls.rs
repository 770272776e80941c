//! TLS with rustls (cargo feature `tls`): terminating it
//! (`[server] tls_cert` / `tls_key`, HTTP/1.1 and HTTP/2 by ALPN), and
//! connecting to `https://` upstreams (the system's roots, or
//! `[upstream] ca_file`).

use std::path::Path;
use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, RootCertStore};

/// Why a TLS file cannot be used.
pub(crate) type Reason = String;

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Reason> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The server side: the certificate chain and key, offering h2 and
/// http/1.1.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Reason> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{} is not a PEM private key: {e}", key.display()))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side, for upstreams: `http://` as is, `https://` verified
/// against the system's roots or, with `ca_file`, that CA only.
pub(crate) fn connector(
    http: HttpConnector,
    ca_file: Option<&Path>,
) -> Result<HttpsConnector<HttpConnector>, Reason> {
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(client_config(ca_file)?))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// A TLS client's settings: servers verified against the system's roots
/// or, with `ca_file`, that CA only.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Reason> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}
