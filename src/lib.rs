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

mod auth;
mod config;
mod error;
mod gateway;
mod identity;
mod layer;
mod oauth;
mod obs;
mod password;
mod proxy;
mod runtime;
mod store;
#[cfg(feature = "tls")]
mod tls;
mod web;

pub use config::{Config, ConfigBuilder, LogFormat, Upstream};
pub use error::{Error, ErrorKind, Location};
pub use gateway::whoami::Whoami;
pub use gateway::{shutdown_signal, Gateway};
pub use layer::{AuthBody, AuthLayer, AuthService, ResponseFuture};
pub use obs::logging::init_logging;
pub use obs::metrics::RouteKind;
pub use password::hash_password;
pub use proxy::pool::UpstreamBody;
pub use proxy::{Proxy, ProxyBody};
#[cfg(feature = "redis")]
pub use store::RedisStore;
pub use store::{
    Family, Identity, MemoryStore, Session, StoreError, StoreFuture, Token, TokenKey, TokenStore,
};
pub use web::peer::ClientAddr;
