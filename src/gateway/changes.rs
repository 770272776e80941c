//! The database's change feed, acted on: a user disabled, deleted, taken
//! out of a group or given a new password has their sessions ended within
//! a second, at every gateway sharing the database (and the token store
//! tells the gateways sharing it). The same for SQLite and PostgreSQL: the
//! feed is a table, read every half second from where the last read ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::db::Database;
use crate::store::TokenStore;

/// How often the feed is read.
const EVERY: Duration = Duration::from_millis(500);
/// How far back each read looks again (clocks of writers may lag a little;
/// what was acted on already is remembered by id).
const OVERLAP_MS: i64 = 5_000;
/// At start, how far back to look: changes made while no gateway ran.
const AT_START_MS: i64 = 60_000;

/// Reads the feed until the task is stopped.
pub(super) async fn watch(db: Database, store: Arc<dyn TokenStore>) {
    let mut since = crate::db::now_ms() - AT_START_MS;
    let mut done: HashMap<String, i64> = HashMap::new();
    let mut reads = 0u64;
    loop {
        tokio::time::sleep(EVERY).await;
        let changes = match db.changes_since(since - OVERLAP_MS).await {
            Ok(changes) => changes,
            Err(err) => {
                tracing::debug!(error = %err, "the change feed cannot be read now");
                continue;
            }
        };
        for change in changes {
            since = since.max(change.at);
            if done.contains_key(&change.id) {
                continue;
            }
            match store.remove_user(&change.subject).await {
                Ok(ended) => {
                    tracing::info!(
                        kind = change.kind,
                        username = change.subject,
                        ended,
                        "sessions ended for a change in the database"
                    );
                    done.insert(change.id, change.at);
                }
                // Not marked done: tried again at the next read.
                Err(err) => tracing::warn!(error = %err, "could not end the sessions of a changed user"),
            }
        }
        done.retain(|_, at| *at >= since - 2 * OVERLAP_MS);
        reads += 1;
        if reads % 7200 == 0 {
            if let Err(err) = db.prune_changes().await {
                tracing::debug!(error = %err, "could not prune the change feed");
            }
        }
    }
}
