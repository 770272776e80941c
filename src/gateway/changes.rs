//! The database's change feed, acted on: a user disabled, deleted, taken
//! out of a group or given a new password has their sessions ended within
//! a second, at every gateway sharing the database (and the token store
//! tells the gateways sharing it); a client added, changed or deleted is
//! loaded again. The same for SQLite and PostgreSQL: the feed is a table,
//! read every half second from where the last read ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::state::AuthState;
use crate::db::{Change, Database, CLIENT_CHANGED, CLIENT_DELETED};
use crate::identity::DatabaseClients;
use crate::layer::AuthLayer;
use crate::store::StoreError;

/// How often the feed is read.
const EVERY: Duration = Duration::from_millis(500);
/// How far back each read looks again (clocks of writers may lag a little;
/// what was acted on already is remembered by id).
const OVERLAP_MS: i64 = 5_000;
/// At start, how far back to look: changes made while no gateway ran.
const AT_START_MS: i64 = 60_000;

/// Reads the feed until the task is stopped.
pub(super) async fn watch(db: Database, layer: AuthLayer, clients: Arc<DatabaseClients>) {
    let mut since = crate::db::now_ms() - AT_START_MS;
    let mut done: HashMap<String, i64> = HashMap::new();
    // Loaded at start if the database answered then; else here, as soon
    // as it does.
    let mut clients_stale = clients.all().is_empty();
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
            if change.kind == CLIENT_CHANGED || change.kind == CLIENT_DELETED {
                clients_stale = true;
            }
            match act_on(&layer.state(), &change).await {
                Ok(()) => {
                    done.insert(change.id, change.at);
                }
                // Not marked done: tried again at the next read.
                Err(err) => tracing::warn!(error = %err, "could not end the sessions of a change"),
            }
        }
        if clients_stale {
            match clients.reload().await {
                Ok(count) => {
                    tracing::info!(count, "OAuth clients loaded from the database");
                    clients_stale = false;
                }
                Err(err) => tracing::debug!(error = %err, "the database's clients cannot be read now"),
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

/// Ends the sessions a change makes void: a person's, for a change about
/// them; a deleted client's tokens. A client changed keeps its tokens:
/// only what it may ask for next changes.
async fn act_on(state: &AuthState, change: &Change) -> Result<(), StoreError> {
    let ended = match change.kind.as_str() {
        CLIENT_CHANGED => return Ok(()),
        CLIENT_DELETED => crate::store::remove_client_sessions(&*state.store, &change.subject).await?,
        // The clients that held one are told (back-channel logout).
        _ => crate::auth::backchannel::end_sessions_of(state, &change.subject).await?,
    };
    tracing::info!(
        kind = change.kind,
        subject = change.subject,
        ended,
        "sessions ended for a change in the database"
    );
    Ok(())
}
