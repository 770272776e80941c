//! Sessions across restarts (`tokens.persist_path`): restored at start,
//! saved every `persist_interval_secs` and at shutdown, off the async
//! threads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::persist::{self, Loaded};
use crate::store::MemoryStore;

pub(super) async fn restore_sessions(store: &MemoryStore, path: &Path) {
    let (store, path) = (store.clone(), path.to_path_buf());
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || persist::load(&store, &path)).await {
        Ok(Loaded::Nothing) => tracing::info!(path = shown, "no session snapshot yet"),
        Ok(Loaded::Restored(n)) => tracing::info!(path = shown, sessions = n, "sessions restored"),
        Ok(Loaded::Corrupt { reason, set_aside }) => tracing::error!(
            path = shown,
            %reason,
            set_aside = %set_aside.display(),
            "the session snapshot is unreadable: set aside, starting with no sessions"
        ),
        Err(err) => tracing::error!(error = %err, "restoring sessions failed"),
    }
}

pub(super) async fn save_sessions(store: &MemoryStore, path: PathBuf) {
    let store = store.clone();
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || persist::save(&store, &path)).await {
        Ok(Ok(n)) => tracing::debug!(path = shown, sessions = n, "sessions saved"),
        Ok(Err(err)) => tracing::error!(path = shown, error = %err, "cannot save the sessions"),
        Err(err) => tracing::error!(error = %err, "saving sessions failed"),
    }
}

/// Saves the sessions every `every`, from one interval after start.
pub(super) async fn save_every(store: MemoryStore, path: PathBuf, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        save_sessions(&store, path.clone()).await;
    }
}
