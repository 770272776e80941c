//! `SIGHUP`: the config file read again and put in force at once, or
//! refused with its reason while the one in force stays; the signing keys
//! read again.

use crate::config::Config;
use crate::layer::AuthLayer;

/// Reloads the config file on each `SIGHUP`; a config that fails its check
/// is refused with its reason and the one in force stays.
pub(super) async fn reload_on_sighup(layer: AuthLayer, current: Config) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        let path = current.source().to_path_buf();
        match Config::load(&path) {
            Ok(next) => {
                for (what, changed) in [
                    (
                        "server.listen",
                        next.listen() != current.listen() && next.listen().port() != 0,
                    ),
                    ("upstream", next.upstream() != current.upstream()),
                    (
                        "server.trusted_proxies",
                        next.server.trusted_proxies != current.server.trusted_proxies,
                    ),
                    (
                        "tokens.persist_path",
                        next.tokens.persist_path != current.tokens.persist_path,
                    ),
                    ("limits", next.limits != current.limits),
                    ("routes", next.routes != current.routes),
                    ("signing", next.signing != current.signing),
                ] {
                    if changed {
                        tracing::warn!("{what} changed in {}: that takes a restart", path.display());
                    }
                }
                let mut next = next.with_listen(current.listen());
                next.routes = current.routes.clone();
                match layer.reload(next) {
                    Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
                    Err(err) => tracing::error!("reload refused, the old configuration stays: {err}"),
                }
                // And the signing keys, at once (a rotation made with
                // `authgate keys rotate`, say), not at the next minute.
                let keys = layer.keys();
                match tokio::task::spawn_blocking(move || keys.refresh()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => tracing::warn!(error = %err, "could not read the signing keys again"),
                    Err(err) => tracing::warn!(error = %err, "reading the signing keys failed"),
                }
            }
            Err(err) => tracing::error!("reload refused, the old configuration stays: {err}"),
        }
    }
}
