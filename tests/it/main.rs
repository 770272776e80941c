//! The integration tests, one binary: each module drives the gateway (or
//! the layer) over real sockets, with real clients, upstreams, Redis,
//! nginx and Chromium where they are involved. `common` is what they
//! share.

mod account;
mod admin_api;
mod admin_audit;
mod admin_clients;
mod admin_people;
mod admin_sessions;
mod architecture;
mod backchannel_logout;
mod browser;
mod cli;
mod common;
mod console;
mod database;
mod embedding;
mod forward_auth;
mod gateway;
mod hardening;
mod hostile;
mod identity_jwt;
mod ldap;
mod oauth;
mod openid;
mod openid_browser;
mod operations;
mod outside;
mod passkeys;
mod properties;
mod redis;
mod restart;
mod routing;
mod second_factor;
#[cfg(feature = "tls")]
mod tls;
mod upstream_connections;
mod upstream_http1;
mod websocket;
mod workers;
