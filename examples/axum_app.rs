//! authgate's sign-in in front of an axum app, in-process.
//!
//! ```text
//! cargo run --example axum_app
//! ```
//!
//! Then open <http://127.0.0.1:3000/> and sign in as `demo` /
//! `authgate-demo` (the demo user of the shipped `config.toml`).

use authgate::{AuthLayer, Config, Session};
use axum::routing::get;
use axum::{Extension, Router};
use http::HeaderMap;

/// The app: `/` greets the signed-in user; `/health` is public.
pub fn app(config: Config) -> Result<Router, authgate::Error> {
    Ok(Router::new()
        .route("/", get(hello))
        .route("/health", get(|| async { "ok" }))
        .layer(AuthLayer::new(config)?))
}

/// Every request that gets here is signed in: the layer put the session in
/// the extensions and the token in `Authorization`.
async fn hello(Extension(session): Extension<Session>, headers: HeaderMap) -> String {
    let bearer = headers.contains_key("authorization");
    format!(
        "hello, {}! (token expires in {} s; Authorization header present: {bearer})\n",
        session.username(),
        session.expires_in()
    )
}

#[allow(dead_code)] // the tests use `app` without `main`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("axum app with authgate on http://{}", listener.local_addr()?);
    axum::serve(listener, app(config)?).await?;
    Ok(())
}
