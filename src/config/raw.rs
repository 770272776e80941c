//! The raw mirror of `config.toml`: what serde reads, every value with
//! its place in the file (for errors with a line), nothing checked yet.

use serde::Deserialize;
use toml::Spanned;

use super::sections::{Grant, LogFormat};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    pub(super) upstream: Option<Spanned<RawUpstream>>,
    #[serde(default)]
    pub(super) tokens: RawTokens,
    #[serde(default)]
    pub(super) auth: RawAuth,
    #[serde(default)]
    pub(super) pages: RawPages,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub(super) users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    pub(super) clients: Vec<Spanned<RawClient>>,
    #[serde(default)]
    pub(super) providers: Vec<Spanned<super::providers::RawProvider>>,
    pub(super) database: Option<RawDatabase>,
    #[serde(default)]
    pub(super) audit: RawAudit,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    pub(super) signing: Option<super::signing::RawSigning>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default)]
    pub(super) groups: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) file: Option<Spanned<String>>,
    pub(super) retention_days: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) url: Spanned<String>,
    pub(super) password_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) public_url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<Spanned<String>>,
    pub(super) workers: Option<Spanned<u64>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<LogFormat>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_header_bytes: Option<Spanned<u64>>,
    pub(super) max_headers: Option<Spanned<u64>>,
    pub(super) max_body_bytes: Option<Spanned<u64>>,
    pub(super) header_read_timeout_secs: Option<Spanned<u64>>,
    pub(super) max_connections: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: Option<Spanned<String>>,
    pub(super) builtin: Option<Spanned<String>>,
    pub(super) connect_timeout_secs: Option<Spanned<u64>>,
    pub(super) timeout_secs: Option<Spanned<u64>>,
    pub(super) ca_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) underscores_in_headers: bool,
    pub(super) upgrades: Option<Vec<Spanned<String>>>,
    pub(super) send_session_token: Option<bool>,
    pub(super) identity_jwt: Option<Spanned<bool>>,
    pub(super) identity_jwt_audience: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    pub(super) ttl_secs: Option<Spanned<u64>>,
    pub(super) refresh_ttl_secs: Option<Spanned<u64>>,
    pub(super) max_ttl_secs: Option<Spanned<u64>>,
    pub(super) idle_secs: Option<Spanned<u64>>,
    pub(super) persist_path: Option<Spanned<String>>,
    pub(super) persist_interval_secs: Option<Spanned<u64>>,
    pub(super) store: Option<Spanned<String>>,
    pub(super) redis_url: Option<Spanned<String>>,
    pub(super) redis_prefix: Option<String>,
    pub(super) cache_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[serde(default)]
    pub(super) public_paths: Vec<Spanned<String>>,
    pub(super) max_failures_per_user: Option<Spanned<u64>>,
    pub(super) max_failures_per_address: Option<Spanned<u64>>,
    pub(super) failure_window_secs: Option<Spanned<u64>>,
    pub(super) throttle_max_entries: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) return_hosts: Vec<Spanned<String>>,
    pub(super) cookie_domain: Option<Spanned<String>>,
    pub(super) allowed_users: Option<Spanned<Vec<String>>>,
    pub(super) allowed_groups: Option<Spanned<Vec<String>>>,
    pub(super) auto_redirect: Option<Spanned<bool>>,
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) second_factor: Option<Spanned<String>>,
    pub(super) second_factor_groups: Option<Spanned<Vec<String>>>,
    pub(super) passkeys: Option<Spanned<bool>>,
    pub(super) webauthn_rp_id: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPages {
    pub(super) templates_dir: Option<Spanned<String>>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) logo_url: Option<Spanned<String>>,
    pub(super) accent_color: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) host: Option<String>,
    pub(super) path_prefix: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) builtin: Option<Spanned<String>>,
    pub(super) policy: Option<Spanned<String>>,
    pub(super) allowed_users: Option<Spanned<Vec<String>>>,
    pub(super) allowed_groups: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) strip_prefix: bool,
    pub(super) upgrades: Option<Vec<Spanned<String>>>,
    pub(super) send_session_token: Option<bool>,
    pub(super) identity_jwt: Option<Spanned<bool>>,
    pub(super) identity_jwt_audience: Option<Spanned<String>>,
    pub(super) auth_level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) username: Spanned<String>,
    pub(super) password_hash: Spanned<String>,
    pub(super) email: Option<Spanned<String>>,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) admin: bool,
    #[serde(default)]
    pub(super) groups: Vec<String>,
    #[serde(default)]
    pub(super) links: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub(super) client_id: Spanned<String>,
    pub(super) client_secret_hash: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) redirect_uris: Vec<Spanned<String>>,
    pub(super) grants: Option<Spanned<Vec<Grant>>>,
    pub(super) scopes: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) allow_plain_pkce: bool,
    #[serde(default)]
    pub(super) cors_origins: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) post_logout_redirect_uris: Vec<Spanned<String>>,
    pub(super) backchannel_logout_uri: Option<Spanned<String>>,
    pub(super) id_token_signed_response_alg: Option<Spanned<String>>,
    pub(super) access_token_format: Option<Spanned<String>>,
    pub(super) subject_type: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) resources: Vec<Spanned<String>>,
}
