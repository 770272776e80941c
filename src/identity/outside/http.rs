//! The HTTP client that talks to outside providers (discovery, keys,
//! tokens, userinfo, GitHub's API): every call with the provider's
//! timeout, an answer of at most [`MAX_ANSWER_BYTES`], redirects never
//! followed (a provider that redirects a server-side call is refused, not
//! a way to make the gateway fetch another address), and https verified
//! against the system's roots or the provider's `ca_file`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

use super::error_chain;

/// The largest answer read from a provider.
const MAX_ANSWER_BYTES: usize = 1 << 20;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// Why a call to a provider failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Request(String),
    #[error("the answer was larger than {MAX_ANSWER_BYTES} bytes or broke off")]
    Body,
}

/// A client for one provider.
#[derive(Clone, Debug)]
pub(crate) struct ProviderHttp {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl ProviderHttp {
    /// A client whose calls take at most `timeout`, trusting `ca_file` (or
    /// the system's roots) for https.
    pub(crate) fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        #[cfg(feature = "tls")]
        let connector = crate::tls::connector(http, ca_file)?;
        #[cfg(not(feature = "tls"))]
        let connector = {
            if ca_file.is_some() {
                return Err("ca_file needs the tls feature, which this authgate was built without".into());
            }
            http
        };
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// Sends `request` and reads the whole answer.
    pub(crate) async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (mut parts, body) = request.into_parts();
        parts
            .headers
            .entry(http::header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(concat!(
                "authgate/",
                env!("CARGO_PKG_VERSION")
            )));
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| HttpError::Request(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|_| HttpError::Body)?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))?
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
