//! # authgate
//!
//! A sign-in gateway for HTTP apps: an OAuth 2.0 authorization server (the
//! App Services management API) and an authenticating reverse proxy, from
//! one core.
//!
//! - [`AuthLayer`]: a tower [`Layer`](tower::Layer) for your own hyper,
//!   axum or tower stack. Unauthenticated requests never reach your service:
//!   a browser is sent to the sign-in page, an API client gets a `401`.
//!   Authenticated ones arrive with `Authorization: Bearer <token>` and
//!   `X-Forwarded-User` set, and the [`Session`] in their extensions.
//! - [`Gateway`]: the `authgate` binary's server, the layer in front of a
//!   reverse proxy, driven by `config.toml` ([`Config`]).
//! - [`init_logging`]: the binary's log (text or JSON on stderr, the
//!   access log on at `info`), for a program that runs a [`Gateway`] as the
//!   binary does.
//! - [`TokenStore`]: where sessions live; [`MemoryStore`] keeps them in a
//!   concurrent map, keyed on the SHA-256 of each token.
//!
//! ```
//! use authgate::{AuthLayer, Config};
//! use axum::{routing::get, Extension, Router};
//!
//! let config = Config::from_toml_str(r#"
//!     [upstream]
//!     builtin = "whoami"
//!     [auth]
//!     public_paths = ["/health"]
//! "#).unwrap();
//!
//! let app: Router = Router::new()
//!     .route("/", get(|Extension(session): Extension<authgate::Session>| async move {
//!         format!("hello, {}", session.username())
//!     }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(AuthLayer::new(config).unwrap());
//! # let _ = app;
//! ```
//!
//! `examples/axum_app.rs` runs a whole app this way.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod access_log;
mod background;
mod client_fields;
mod coarse_timer;
mod config;
mod connection_watch;
mod credential;
mod csrf;
mod directory;
mod error;
mod forwarding;
mod handling;
mod http1;
mod layer;
mod logging;
mod metrics;
mod oauth;
mod pages;
mod paths;
mod proxy;
mod request;
mod response;
mod server;
mod state;
mod store;
mod throttle;
#[cfg(feature = "tls")]
mod tls;
mod upstream;
mod whoami;
mod workers;

pub use config::{Config, LogFormat, Upstream};
pub use directory::hash_password;
pub use error::{Error, ErrorKind, Location};
pub use forwarding::ClientAddr;
pub use layer::{AuthBody, AuthLayer, AuthService, ResponseFuture};
pub use logging::init_logging;
pub use metrics::{RouteKind, UpstreamError};
pub use proxy::{Proxy, ProxyBody};
pub use server::{shutdown_signal, Gateway};
#[cfg(feature = "redis")]
pub use store::RedisStore;
pub use store::{
    Family, Identity, MemoryStore, Session, StoreError, StoreFuture, Token, TokenKey, TokenStore,
};
pub use upstream::UpstreamBody;
pub use whoami::Whoami;
