//! The database behind the inbox, the outbox (feature `inbox`) and the
//! consumer configs (feature `config-db`): the
//! connection pool, the schema and its migrations, and every SQL statement
//! Spine runs. SQLite (a file) and PostgreSQL go through sqlx's `Any` driver,
//! so both run this same code; where their SQL differs, [`Dialect`] says so.
//!
//! Knows rows, not messages: the inbox and the outbox above turn records
//! into rows and back.

// Built for the consumer configs alone, the inbox's statements go unused.
#![cfg_attr(not(feature = "inbox"), allow(dead_code))]

mod migrate;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::error::Error;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A pool on the inbox's database, its schema migrated.
#[derive(Clone)]
pub(crate) struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) dialect: Dialect,
    /// The URL with any password hidden, for logs and errors.
    pub(crate) shown: String,
}

/// A database failure: what Spine was doing, and sqlx's error.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {source}")]
pub(crate) struct StoreError {
    pub(crate) doing: &'static str,
    #[source]
    pub(crate) source: sqlx::Error,
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

trait Doing<T> {
    fn doing(self, what: &'static str) -> StoreResult<T>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> StoreResult<T> {
        self.map_err(|source| StoreError { doing, source })
    }
}

/// Milliseconds since the Unix epoch: how every timestamp is stored (the
/// `Any` driver has no portable time type).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An outbox row: a record to publish.
#[derive(Debug, Clone)]
pub(crate) struct OutboxRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) payload: Option<Vec<u8>>,
}

/// An inbox row as it is written.
#[derive(Debug, Clone)]
pub(crate) struct NewInboxRow<'a> {
    pub(crate) consumer: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) status: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) event: Option<&'a str>,
    pub(crate) attempts: i64,
    pub(crate) last_error: Option<&'a str>,
    /// Kept in queue mode, where workers handle the row later.
    pub(crate) headers: Option<&'a [(String, Vec<u8>)]>,
    pub(crate) payload: Option<&'a [u8]>,
}

/// Queue mode: a row a worker claimed, with its message.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedRow {
    pub(crate) id: i64,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) payload: Option<Vec<u8>>,
    /// Attempts, this one included.
    pub(crate) attempts: i64,
}

/// An inbox row as it is read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InboxRow {
    /// Row id.
    pub id: i64,
    /// The consumer group that received it.
    pub consumer: String,
    /// `ce_id`, or `topic/partition/offset`.
    pub message_id: String,
    /// `processed`, `dead`, `pending`, `error`.
    pub status: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Message key, as text (lossy).
    pub key: Option<String>,
    /// Event name.
    pub event: Option<String>,
    /// Handling attempts so far.
    pub attempts: i64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it was stored (ms since the epoch).
    pub created_at: i64,
    /// When it last changed (ms since the epoch).
    pub updated_at: i64,
    /// Queue mode: when it is tried next (ms since the epoch).
    pub next_attempt_at: Option<i64>,
}

impl Store {
    /// Connects to `url` and migrates the schema. A SQLite file is created if
    /// missing, and written in WAL mode.
    pub(crate) async fn open(url: &str, max_connections: u32) -> Result<Store, Error> {
        Self::open_for("inbox.url", url, max_connections).await
    }

    /// [`Store::open`] for the database that configuration key `key` names.
    pub(crate) async fn open_for(
        key: &'static str,
        url: &str,
        max_connections: u32,
    ) -> Result<Store, Error> {
        sqlx::any::install_default_drivers();
        let shown = hide_password(url);
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(Error::config(
                key,
                format!("`{shown}` is neither `sqlite://<file>` nor `postgres://...`"),
            ));
        };
        let url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let connections = match dialect {
            // One writer at a time is all SQLite has; a second connection
            // would only wait on the file lock.
            Dialect::Sqlite => 1,
            Dialect::Postgres => max_connections.max(2),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| {
                Error::Store(format!("cannot open the database `{shown}` ({key}): {e}"))
            })?;
        let store = Store {
            pool,
            dialect,
            shown,
        };
        migrate::run(&store.pool, store.dialect == Dialect::Postgres)
            .await
            .map_err(|e| Error::Store(format!("migrating `{}`: {e}", store.shown)))?;
        Ok(store)
    }

    /// Whether `consumer` has a row for `message_id`.
    pub(crate) async fn seen(&self, consumer: &str, message_id: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM spine_inbox WHERE consumer = $1 AND message_id = $2")
            .bind(consumer)
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .doing("looking the message up in the inbox")?;
        Ok(row.is_some())
    }

    /// Writes an outbox row on `conn` (inside the caller's transaction).
    pub(crate) async fn add_outbox(
        conn: &mut AnyConnection,
        kind: &str,
        topic: &str,
        key: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
        payload: Option<&[u8]>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO spine_outbox (kind, topic, msg_key, headers, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(kind)
        .bind(topic)
        .bind(key.map(<[u8]>::to_vec))
        .bind(encode_headers(headers))
        .bind(payload.map(<[u8]>::to_vec))
        .bind(now_ms())
        .execute(conn)
        .await
        .doing("writing an outbox row")?;
        Ok(())
    }

    /// Unsent outbox rows, oldest first.
    pub(crate) async fn unsent(&self, limit: usize) -> StoreResult<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, topic, msg_key, headers, payload FROM spine_outbox \
             WHERE sent_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .doing("reading the outbox")?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    topic: r.try_get("topic")?,
                    key: r.try_get("msg_key")?,
                    headers: decode_headers(&r.try_get::<String, _>("headers")?),
                    payload: r.try_get("payload")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .doing("reading the outbox")
    }

    /// Marks outbox rows sent (or, with `error`, given up).
    pub(crate) async fn mark_sent(&self, ids: &[i64], error: Option<&str>) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = placeholders(3, ids.len());
        let sql = format!("UPDATE spine_outbox SET sent_at = $1, error = $2 WHERE id IN ({list})");
        let mut q = sqlx::query(&sql).bind(now_ms()).bind(error);
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(&self.pool)
            .await
            .doing("marking outbox rows sent")?;
        Ok(())
    }

    /// Records a message in the inbox on `conn`; `false` if its id was
    /// already there (a re-delivery).
    pub(crate) async fn add_inbox(
        conn: &mut AnyConnection,
        row: &NewInboxRow<'_>,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO spine_inbox (consumer, message_id, status, topic, kafka_partition, \
             kafka_offset, msg_key, event, attempts, last_error, headers, payload, created_at, \
             updated_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14) \
             ON CONFLICT (consumer, message_id) DO NOTHING",
        )
        .bind(row.consumer)
        .bind(row.message_id)
        .bind(row.status)
        .bind(row.topic)
        .bind(row.partition)
        .bind(row.offset)
        .bind(row.key.map(<[u8]>::to_vec))
        .bind(row.event)
        .bind(row.attempts)
        .bind(row.last_error)
        .bind(row.headers.map(encode_headers))
        .bind(row.payload.map(<[u8]>::to_vec))
        .bind(now)
        .bind((row.status == "pending").then_some(now))
        .execute(conn)
        .await
        .doing("recording the message in the inbox")?;
        Ok(done.rows_affected() == 1)
    }

    /// Queue mode: claims up to `n` rows of `consumer` that are due
    /// (`pending`, or `error` whose retry time came), unclaimed (or whose
    /// claim lapsed), and first of their key among the unfinished, so that a
    /// key's rows are handled in order. Each claim counts an attempt.
    /// PostgreSQL skips rows another instance is claiming (`FOR UPDATE SKIP
    /// LOCKED`); SQLite's writers take turns, and the lease does the rest.
    pub(crate) async fn claim(
        &self,
        consumer: &str,
        n: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedRow>> {
        let now = now_ms();
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE spine_inbox SET lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT i.id FROM spine_inbox i \
               WHERE i.consumer = $3 AND i.status IN ('pending', 'error') \
               AND i.next_attempt_at <= $2 AND (i.lease_until IS NULL OR i.lease_until < $2) \
               AND NOT EXISTS (SELECT 1 FROM spine_inbox o WHERE o.consumer = i.consumer \
                 AND o.msg_key = i.msg_key AND o.id < i.id AND o.status IN ('pending', 'error')) \
               ORDER BY i.id LIMIT $4 {lock}) \
             RETURNING id, topic, kafka_partition, kafka_offset, msg_key, headers, payload, attempts"
        );
        let rows = sqlx::query(&sql)
            .bind(now + lease.as_millis() as i64)
            .bind(now)
            .bind(consumer)
            .bind(n as i64)
            .fetch_all(&self.pool)
            .await
            .doing("claiming inbox rows")?;
        let mut out: Vec<ClaimedRow> = rows
            .iter()
            .map(|r| {
                let headers: Option<String> = r.try_get("headers")?;
                Ok(ClaimedRow {
                    id: r.try_get("id")?,
                    topic: r.try_get("topic")?,
                    partition: r.try_get::<i32, _>("kafka_partition")?,
                    offset: r.try_get("kafka_offset")?,
                    key: r.try_get("msg_key")?,
                    headers: headers.as_deref().map(decode_headers).unwrap_or_default(),
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .doing("claiming inbox rows")?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Queue mode: ends a claimed row's attempt on `conn`, inside the
    /// caller's transaction.
    pub(crate) async fn settle_row(
        conn: &mut AnyConnection,
        id: i64,
        status: &str,
        last_error: Option<&str>,
        next_attempt_at: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE spine_inbox SET status = $1, last_error = $2, next_attempt_at = $3, \
             lease_until = NULL, updated_at = $4 WHERE id = $5",
        )
        .bind(status)
        .bind(last_error)
        .bind(next_attempt_at)
        .bind(now_ms())
        .bind(id)
        .execute(conn)
        .await
        .doing("updating an inbox row")?;
        Ok(())
    }

    /// Makes rows due now: one by id, or every row of a status. A `dead`
    /// row starts its attempts again. Returns how many.
    pub async fn retry(&self, id: Option<i64>, status: Option<&str>) -> StoreResult<u64> {
        let now = now_ms();
        let set =
            "UPDATE spine_inbox SET status = 'pending', next_attempt_at = $1, lease_until = NULL, \
                   updated_at = $1, attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END";
        let done = match (id, status) {
            (Some(id), _) => {
                sqlx::query(&format!(
                    "{set} WHERE id = $2 AND status IN ('error', 'dead', 'pending')"
                ))
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
            }
            (None, Some(s)) => {
                sqlx::query(&format!("{set} WHERE status = $2"))
                    .bind(now)
                    .bind(s.to_owned())
                    .execute(&self.pool)
                    .await
            }
            (None, None) => return Ok(0),
        }
        .doing("retrying inbox rows")?;
        Ok(done.rows_affected())
    }

    /// Deletes finished rows (`processed`, `dead`) and sent outbox rows last
    /// changed before `older_than` ago. Returns (inbox rows, outbox rows).
    pub async fn purge(&self, older_than: Duration) -> StoreResult<(u64, u64)> {
        let before = now_ms() - older_than.as_millis() as i64;
        let inbox = sqlx::query(
            "DELETE FROM spine_inbox WHERE status IN ('processed', 'dead') AND updated_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .doing("purging the inbox")?;
        let outbox =
            sqlx::query("DELETE FROM spine_outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .doing("purging the outbox")?;
        Ok((inbox.rows_affected(), outbox.rows_affected()))
    }

    /// One row's stored message: its headers and payload, for `inbox show`.
    pub async fn message(
        &self,
        id: i64,
    ) -> StoreResult<Option<(Vec<(String, Vec<u8>)>, Option<Vec<u8>>)>> {
        let row = sqlx::query("SELECT headers, payload FROM spine_inbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .doing("reading an inbox row")?;
        row.map(|r| {
            let headers: Option<String> = r.try_get("headers")?;
            Ok((
                headers.as_deref().map(decode_headers).unwrap_or_default(),
                r.try_get("payload")?,
            ))
        })
        .transpose()
        .doing("reading an inbox row")
    }

    /// Inbox rows, newest first, optionally of one status.
    pub async fn list(&self, status: Option<&str>, limit: i64) -> StoreResult<Vec<InboxRow>> {
        let rows = match status {
            Some(s) => {
                sqlx::query(&format!(
                    "SELECT {INBOX_COLUMNS} FROM spine_inbox WHERE status = $1 ORDER BY id DESC LIMIT $2"
                ))
                .bind(s.to_owned())
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {INBOX_COLUMNS} FROM spine_inbox ORDER BY id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
        }
        .doing("listing the inbox")?;
        rows.iter()
            .map(inbox_row)
            .collect::<Result<_, _>>()
            .doing("listing the inbox")
    }

    /// One inbox row.
    pub async fn get(&self, id: i64) -> StoreResult<Option<InboxRow>> {
        let row = sqlx::query(&format!(
            "SELECT {INBOX_COLUMNS} FROM spine_inbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .doing("reading an inbox row")?;
        row.as_ref()
            .map(inbox_row)
            .transpose()
            .doing("reading an inbox row")
    }

    /// Counts of rows by status.
    pub async fn counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM spine_inbox GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await
        .doing("counting the inbox")?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .doing("counting the inbox")
    }
}

const INBOX_COLUMNS: &str = "id, consumer, message_id, status, topic, kafka_partition, \
     kafka_offset, msg_key, event, attempts, last_error, created_at, updated_at, next_attempt_at";

fn inbox_row(r: &AnyRow) -> Result<InboxRow, sqlx::Error> {
    let key: Option<Vec<u8>> = r.try_get("msg_key")?;
    Ok(InboxRow {
        id: r.try_get("id")?,
        consumer: r.try_get("consumer")?,
        message_id: r.try_get("message_id")?,
        status: r.try_get("status")?,
        topic: r.try_get("topic")?,
        partition: r.try_get::<i32, _>("kafka_partition")?,
        offset: r.try_get("kafka_offset")?,
        key: key.map(|k| String::from_utf8_lossy(&k).into_owned()),
        event: r.try_get("event")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
    })
}

/// `$first, $first+1, ...`: `n` numbered placeholders.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A header value: text when it is UTF-8 (the usual case, and readable in
/// the table), else its bytes.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    Text(String),
    Bytes(Vec<u8>),
}

/// Headers as JSON text: `[["ce_type","order.accepted"], ...]`.
fn encode_headers(headers: &[(String, Vec<u8>)]) -> String {
    let list: Vec<(&str, HeaderValue)> = headers
        .iter()
        .map(|(k, v)| {
            let v = match std::str::from_utf8(v) {
                Ok(s) => HeaderValue::Text(s.to_owned()),
                Err(_) => HeaderValue::Bytes(v.clone()),
            };
            (k.as_str(), v)
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned())
}

fn decode_headers(text: &str) -> Vec<(String, Vec<u8>)> {
    let list: Vec<(String, HeaderValue)> = serde_json::from_str(text).unwrap_or_default();
    list.into_iter()
        .map(|(k, v)| {
            let v = match v {
                HeaderValue::Text(s) => s.into_bytes(),
                HeaderValue::Bytes(b) => b,
            };
            (k, v)
        })
        .collect()
}

/// The URL with its password replaced by `***`.
fn hide_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_text_and_bytes() {
        let h = vec![
            ("ce_type".to_owned(), b"order.accepted".to_vec()),
            ("bin".to_owned(), vec![0xff, 0x00, 0x10]),
        ];
        assert_eq!(decode_headers(&encode_headers(&h)), h);
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(hide_password("sqlite://spine.db"), "sqlite://spine.db");
        assert_eq!(placeholders(3, 2), "$3, $4");
    }
}
