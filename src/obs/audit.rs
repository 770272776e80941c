//! The audit log: every sign-in (and why one failed), sign-out, token
//! revoked and admin action, with who, from where and when; never a
//! password or a token.
//!
//! Recording never waits: an event goes into a bounded queue, and a
//! thread of its own writes the queue in batches, to the database
//! (`[database]`) and to a JSON-lines file (`[audit] file`), and forgets
//! database events older than `[audit] retention_days`. A batch the
//! database refuses is tried again (events wait in the queue meanwhile);
//! an event that finds the queue full is counted as dropped and logged.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::db::{new_id, now_ms, AuditEvent, Database};

/// How many events may wait to be written.
const QUEUE: usize = 65_536;
/// The most events a batch holds.
const BATCH: usize = 512;
/// How long a batch may wait for more events after its first.
const GATHER: Duration = Duration::from_millis(50);

/// Where events go.
#[derive(Debug)]
pub(crate) struct Audit {
    queue: Option<mpsc::Sender<AuditEvent>>,
    dropped: AtomicU64,
}

/// What an event says, besides its kind and time.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields<'a> {
    pub(crate) actor: Option<&'a str>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) address: Option<std::net::IpAddr>,
    pub(crate) provider: Option<&'a str>,
    pub(crate) client_id: Option<&'a str>,
    pub(crate) detail: Option<&'a str>,
}

impl Audit {
    /// An audit log to `database` and/or `file`; with neither, events go
    /// nowhere.
    pub(crate) fn start(database: Option<Database>, file: Option<PathBuf>, retention_days: u64) -> Self {
        if database.is_none() && file.is_none() {
            return Self {
                queue: None,
                dropped: AtomicU64::new(0),
            };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("authgate:audit".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    tracing::error!("the audit log cannot start its runtime: events are lost");
                    return;
                };
                runtime.block_on(write(rx, database, file, retention_days));
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "the audit log cannot start its thread: events are lost");
        }
        Self {
            queue: Some(tx),
            dropped: AtomicU64::new(0),
        }
    }

    /// Records `event`, at once, without waiting.
    pub(crate) fn record(&self, event: &str, fields: Fields<'_>) {
        let Some(queue) = &self.queue else { return };
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let entry = AuditEvent {
            id: new_id(),
            at: now_ms(),
            event: event.to_owned(),
            actor: owned(fields.actor),
            subject: owned(fields.subject),
            address: fields.address.map(|a| a.to_string()),
            provider: owned(fields.provider),
            client_id: owned(fields.client_id),
            detail: owned(fields.detail),
        };
        if queue.try_send(entry).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::error!(dropped, "the audit log's queue is full: events dropped");
            }
        }
    }
}

/// The writer: batches from the queue, to the database and the file,
/// until every sender is gone and the queue is empty.
async fn write(
    mut rx: mpsc::Receiver<AuditEvent>,
    database: Option<Database>,
    file: Option<PathBuf>,
    retention_days: u64,
) {
    let mut file = file.and_then(|path| {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .map_err(|e| tracing::error!(error = %e, path = %path.display(), "cannot open the audit file"))
            .ok()
    });
    let mut last_prune = None::<std::time::Instant>;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let gather = tokio::time::sleep(GATHER);
        tokio::pin!(gather);
        while batch.len() < BATCH {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(event) => batch.push(event),
                    None => break,
                },
                _ = &mut gather => break,
            }
        }
        if let Some(out) = &mut file {
            let mut lines = Vec::with_capacity(batch.len() * 160);
            for event in &batch {
                if serde_json::to_writer(&mut lines, event).is_ok() {
                    lines.push(b'\n');
                }
            }
            if let Err(err) = out.write_all(&lines) {
                tracing::error!(error = %err, "cannot write the audit file");
            }
        }
        if let Some(db) = &database {
            // Tried until it is written: the queue holds what comes meanwhile.
            let mut wait = Duration::from_millis(200);
            while let Err(err) = db.write_audit(&batch).await {
                tracing::warn!(error = %err, events = batch.len(), "the audit log cannot write to the database; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            if last_prune.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
                last_prune = Some(std::time::Instant::now());
                let before =
                    now_ms() - i64::try_from(retention_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
                if let Err(err) = db.prune_audit(before).await {
                    tracing::warn!(error = %err, "cannot forget old audit events");
                }
            }
        }
    }
}
