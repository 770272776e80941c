//! The audit log's table: events written in batches, read back filtered.

use sqlx::Row;

use super::{Database, DbError};

/// One event of the audit log: what happened, to whom, by whom, from
/// where, when. Never a password or a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct AuditEvent {
    pub(crate) id: String,
    /// Milliseconds since the epoch.
    pub(crate) at: i64,
    /// `sign_in.succeeded`, `sign_in.failed`, `sign_in.throttled`,
    /// `sign_out`, `sign_out.backchannel`, `token.issued`, `token.revoked`,
    /// `admin.*`.
    pub(crate) event: String,
    /// Who did it, where that is not the subject (an admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) actor: Option<String>,
    /// Whom it was about (a username, as typed for a failed sign-in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    /// Why, for a failure (`wrong_password`, `unavailable`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

/// Which events to read: each field narrows them; none, all.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AuditFilter<'a> {
    /// Whom they are about.
    pub(crate) subject: Option<&'a str>,
    /// A prefix of their kind (`sign_in` for all sign-ins).
    pub(crate) event: Option<&'a str>,
    /// At or after (milliseconds since the epoch).
    pub(crate) after: Option<i64>,
    /// Before (milliseconds since the epoch).
    pub(crate) before: Option<i64>,
    /// At most this many, the newest.
    pub(crate) limit: i64,
}

/// A time as a person types it, in milliseconds since the epoch: a
/// number of milliseconds, RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` (UTC, as
/// a browser's `datetime-local` field sends it).
pub(crate) fn time_of(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .map(|at| at.and_utc().timestamp_millis())
}

impl Database {
    /// Writes `events` in one transaction.
    pub(crate) async fn write_audit(&self, events: &[AuditEvent]) -> Result<(), DbError> {
        let mut tx = self.ready().await?.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO audit_events (id, at, event, actor, subject, address, provider, client_id, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)",
            )
            .bind(&e.id)
            .bind(e.at)
            .bind(&e.event)
            .bind(&e.actor)
            .bind(&e.subject)
            .bind(&e.address)
            .bind(&e.provider)
            .bind(&e.client_id)
            .bind(&e.detail)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The events `filter` asks for, newest first.
    pub(crate) async fn audit(&self, filter: &AuditFilter<'_>) -> Result<Vec<AuditEvent>, DbError> {
        // Two statements rather than `($1 = '' OR subject = $1)`, which
        // no index serves: by person, the (subject, at) index; else (at).
        let columns =
            "SELECT id, at, event, actor, subject, address, provider, client_id, detail FROM audit_events";
        let pattern = format!("{}%", super::like_escaped(filter.event.unwrap_or("")));
        let (after, before) = (
            filter.after.unwrap_or(i64::MIN),
            filter.before.unwrap_or(i64::MAX),
        );
        let by_person = format!(
            "{columns} WHERE subject = $1 AND event LIKE $2 ESCAPE '\\' AND at >= $3 AND at < $4 ORDER BY at DESC, id DESC LIMIT $5"
        );
        let by_event = format!(
            "{columns} WHERE event LIKE $1 ESCAPE '\\' AND at >= $2 AND at < $3 ORDER BY at DESC, id DESC LIMIT $4"
        );
        let rows = match filter.subject {
            Some(subject) => sqlx::query(&by_person)
                .bind(subject.to_owned())
                .bind(pattern)
                .bind(after)
                .bind(before)
                .bind(filter.limit),
            None => sqlx::query(&by_event)
                .bind(pattern)
                .bind(after)
                .bind(before)
                .bind(filter.limit),
        }
        .fetch_all(self.ready().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    event: r.try_get("event")?,
                    actor: r.try_get("actor")?,
                    subject: r.try_get("subject")?,
                    address: r.try_get("address")?,
                    provider: r.try_get("provider")?,
                    client_id: r.try_get("client_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Forgets events older than `before` (milliseconds since the epoch),
    /// ten thousand at a time: a long backlog never holds the database
    /// for long (with SQLite's one connection, sign-ins wait meanwhile).
    pub(crate) async fn prune_audit(&self, before: i64) -> Result<u64, DbError> {
        let mut forgotten = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < $1 LIMIT 10000)",
            )
            .bind(before)
            .execute(self.ready().await?)
            .await?;
            forgotten += done.rows_affected();
            if done.rows_affected() < 10_000 {
                return Ok(forgotten);
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::time_of;

    #[test]
    fn times_are_read_as_people_type_them_in_utc() {
        assert_eq!(time_of("1764547200000"), Some(1_764_547_200_000));
        assert_eq!(time_of("2025-12-01T00:00:00Z"), Some(1_764_547_200_000));
        assert_eq!(time_of("2025-12-01T01:00:00+01:00"), Some(1_764_547_200_000));
        assert_eq!(time_of("2025-12-01T00:00"), Some(1_764_547_200_000));
        assert_eq!(time_of("2025-12-01"), Some(1_764_547_200_000));
        assert_eq!(time_of("yesterday"), None);
        assert_eq!(time_of("2025-13-01"), None);
    }
}
