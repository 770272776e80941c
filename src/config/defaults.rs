//! Every default of `config.toml`, in one place: what a key is when the
//! file does not set it.

use std::net::{Ipv4Addr, SocketAddr};

/// `server.listen`.
pub(crate) const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// `upstream.connect_timeout_secs`.
pub(crate) const UPSTREAM_CONNECT_TIMEOUT_SECS: u64 = 5;
/// `upstream.timeout_secs`.
pub(crate) const UPSTREAM_TIMEOUT_SECS: u64 = 60;
/// `upstream.upgrades`.
pub(crate) const UPGRADES: [&str; 1] = ["websocket"];
/// `tokens.ttl_secs`.
pub(crate) const TOKEN_TTL_SECS: u64 = 3600;
/// `tokens.refresh_ttl_secs`: 30 days.
pub(crate) const REFRESH_TTL_SECS: u64 = 30 * 86_400;
/// `tokens.max_ttl_secs`: 7 days, as App Services.
pub(crate) const MAX_TTL_SECS: u64 = 7 * 86_400;
/// `tokens.persist_interval_secs`.
pub(crate) const PERSIST_INTERVAL_SECS: u64 = 30;
/// `tokens.redis_url`.
pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// `tokens.redis_prefix`.
pub(crate) const REDIS_PREFIX: &str = "authgate:";
/// `tokens.cache_secs`.
pub(crate) const CACHE_SECS: u64 = 10;
/// `auth.max_failures_per_user`.
pub(crate) const MAX_FAILURES_PER_USER: u64 = 10;
/// `auth.max_failures_per_address`.
pub(crate) const MAX_FAILURES_PER_ADDRESS: u64 = 50;
/// `auth.failure_window_secs`.
pub(crate) const FAILURE_WINDOW_SECS: u64 = 300;
/// `auth.throttle_max_entries`.
pub(crate) const THROTTLE_MAX_ENTRIES: u64 = 100_000;
/// `limits.max_header_bytes`.
pub(crate) const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// `limits.max_headers`.
pub(crate) const MAX_HEADERS: u64 = 100;
/// `limits.max_body_bytes`.
pub(crate) const MAX_BODY_BYTES: u64 = 64 * 1024;
/// `limits.header_read_timeout_secs`.
pub(crate) const HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// `limits.max_connections`.
pub(crate) const MAX_CONNECTIONS: u64 = 10_000;
/// `pages.title`.
pub(crate) const TITLE: &str = "Sign in";
/// `pages.accent_color`.
pub(crate) const ACCENT_COLOR: &str = "#2557d6";
