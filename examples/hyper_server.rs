//! authgate's sign-in in front of a plain hyper service, no framework.
//!
//! ```text
//! cargo run --example hyper_server
//! ```
//!
//! Then open <http://127.0.0.1:3001/> and sign in as `demo` /
//! `authgate-demo` (the demo user of the shipped `config.toml`).

use std::convert::Infallible;

use authgate::{AuthLayer, Config, Session};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Layer;

/// The app: every request that reaches it is signed in.
async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = req
        .extensions()
        .get::<Session>()
        .map_or("nobody", Session::username);
    Ok(Response::new(Full::new(Bytes::from(format!(
        "hello from hyper, {user}\n"
    )))))
}

/// Serves `app` behind `AuthLayer` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: Config) -> Result<(), authgate::Error> {
    let layer = AuthLayer::new(config)?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = TowerToHyperService::new(layer.layer(tower::service_fn(app)));
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[allow(dead_code)] // the tests use `serve` without `main`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))?;
    let listener = TcpListener::bind("127.0.0.1:3001").await?;
    println!("hyper server with authgate on http://{}", listener.local_addr()?);
    serve(listener, config).await?;
    Ok(())
}
