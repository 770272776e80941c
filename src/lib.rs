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
//! - [`Config`]: `config.toml`, read and checked, or built in code with
//!   [`Config::builder`].
//! - [`TokenStore`]: where sessions live; [`MemoryStore`] keeps them in a
//!   concurrent map, keyed on the SHA-256 of each token, and [`RedisStore`]
//!   shares them between gateways. [`store`] has what a store of your own
//!   needs.
//! - [`gateway`]: the `authgate` binary's server (the layer in front of a
//!   reverse proxy), for a program that runs one as the binary does.
//!
//! ```
//! use authgate::{AuthLayer, Config};
//! use axum::{routing::get, Extension, Router};
//!
//! let config = Config::builder()
//!     .user("alice", &authgate::hash_password("correct horse"))
//!     .public_path("/health")
//!     .build()
//!     .unwrap();
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
//! `examples/axum_app.rs` runs a whole app this way; `docs/architecture.md`
//! shows how a request goes through the modules.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod auth;
mod config;
mod db;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
mod identity;
mod layer;
mod oauth;
mod obs;
mod password;
mod proxy;
mod runtime;
mod second_factor;
mod signing;
pub mod store;
#[cfg(feature = "tls")]
mod tls;
mod web;

pub use config::{Config, ConfigBuilder};
pub use error::{Error, ErrorKind, Location};
pub use layer::{AuthBody, AuthLayer, AuthService, ResponseFuture};
pub use obs::metrics::RouteKind;
pub use password::hash_password;
#[cfg(feature = "redis")]
pub use store::RedisStore;
pub use store::{MemoryStore, Session, TokenStore};
pub use web::peer::ClientAddr;
