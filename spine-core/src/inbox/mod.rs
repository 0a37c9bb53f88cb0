//! The database inbox (feature `inbox`, `[inbox] url`): how a consumed
//! message meets the database before, while and after its handlers run.
//!
//! In `dedupe` mode each message is handled at once, under a [`Pending`]
//! transaction: the message's id (its `ce_id`, or topic/partition/offset) is
//! recorded in `spine_inbox` in the same transaction as the handler's own
//! writes (`Tx`) and the outbox rows of what it published. A message whose id
//! is recorded already (a re-delivery after a crash or a rebalance, or a
//! producer's retry) is skipped and counted. The offset is done once that
//! transaction commits; the outbox relay publishes the rest.
//!
//! In `queue` mode (seed 000's message log) the consumer only stores each
//! message as a `pending` row and its offset is done once the row is durable.
//! Workers (`queue`) claim due rows and run the same handlers under the same
//! transaction, then mark each row `processed`, or `error` with the error and
//! a retry time (backoff), or `dead` once `max_attempts` are spent or the
//! failure is fatal; a dead row's dead letter goes out through the outbox.
//!
//! A database that cannot be reached holds the message (and, through
//! `max_in_flight`, the fetching) and retries with backoff, counted in
//! `spine_inbox_errors_total`: nothing is skipped.

mod queue;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::OwnedMessage;

use crate::dispatch::park::ParkWatch;
use crate::dispatch::{Resume, Shared, Unsettled};
use crate::error::Error;
use crate::metrics as m;
use crate::outbound::outbox::{self, Outbox, Pending};
use crate::record::Record;
use crate::shutdown::Shutdown;
use crate::store::{NewInboxRow, Store, StoreError};

/// Opens the inbox database (migrating it) and starts the outbox relay.
/// Returns the relay's task, which ends after `stop` once the outbox is empty.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    stop: &Shutdown,
) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    let cfg = &shared.config.inbox;
    let Some(url) = &cfg.url else {
        return Ok(None);
    };
    let store = Store::open(url, cfg.max_connections).await?;
    tracing::info!(database = %store.shown, mode = ?cfg.mode, "inbox open");
    let outbox = shared
        .outbox
        .get_or_init(|| async { Outbox::new(store) })
        .await
        .clone();
    if cfg.mode == crate::config::InboxMode::Queue {
        tokio::spawn(queue::work(shared.clone(), outbox.clone(), stop.clone()));
    }
    let relay = tokio::spawn(outbox::relay(
        outbox,
        shared.outbound.clone(),
        cfg.relay_batch,
        cfg.relay_interval,
        stop.clone(),
    ));
    Ok(Some(relay))
}

/// Whether the inbox handles this app's messages.
pub(crate) fn enabled(shared: &Shared) -> bool {
    shared.outbox.initialized()
}

/// The id a message is recorded under: `ce_id`, else topic/partition/offset.
pub(crate) fn message_id(rec: &Record<'_>) -> String {
    match rec.header_str(crate::headers::CE_ID) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("{}/{}/{}", rec.topic, rec.partition, rec.offset),
    }
}

/// Handles one message in `dedupe` mode; retries while the database is away.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    msg: OwnedMessage,
    topic_idx: usize,
    event: Option<String>,
    mut park: Option<Box<dyn ParkWatch>>,
) -> Unsettled {
    let Some(outbox) = shared.outbox.get().cloned() else {
        return shared
            .handle(msg, topic_idx, event, Resume::Fresh, park)
            .await;
    };
    let queue = shared.config.inbox.mode == crate::config::InboxMode::Queue;
    let mut delay = Duration::from_millis(100);
    loop {
        let done = if queue {
            queue::store(&shared, &outbox, &msg, topic_idx, &event).await
        } else {
            once(&shared, &outbox, &msg, topic_idx, &event, park.take()).await
        };
        match done {
            Ok(done) => return done,
            Err(e) => {
                metrics::counter!(m::INBOX_ERRORS, "operation" => e.doing).increment(1);
                tracing::warn!(
                    topic = %rdkafka::Message::topic(&msg),
                    offset = rdkafka::Message::offset(&msg),
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "inbox database error; the message is held and handled again"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn once(
    shared: &Arc<Shared>,
    outbox: &Arc<Outbox>,
    msg: &OwnedMessage,
    topic_idx: usize,
    event: &Option<String>,
    park: Option<Box<dyn ParkWatch>>,
) -> Result<Unsettled, StoreError> {
    let rec = Record::owned(msg);
    let consumer = shared.config.group_id();
    let id = message_id(&rec);
    if outbox.store.seen(consumer, &id).await? {
        duplicate(shared, &rec, &id);
        return Ok(Unsettled::done());
    }
    let pending = Pending::new(outbox.clone());
    let unsettled = pending
        .scope(
            shared
                .clone()
                .handle(msg.clone(), topic_idx, event.clone(), Resume::Fresh, park),
        )
        .await;
    let (mut records, failure) = pending.take();
    let mut tx = transaction(outbox, &pending, failure.is_none()).await?;
    if failure.is_some() {
        only_dead_letters(&mut records);
    }
    let failure = failure.map(|f| f.message);
    let event_name = event_of(&rec, event);
    let row = NewInboxRow {
        consumer,
        message_id: &id,
        status: if failure.is_some() {
            "dead"
        } else {
            "processed"
        },
        topic: rec.topic,
        partition: rec.partition,
        offset: rec.offset,
        key: rec.key,
        event: event_name.as_deref(),
        attempts: 1,
        last_error: failure.as_deref(),
        headers: None,
        payload: None,
    };
    if !Store::add_inbox(&mut tx, &row).await? {
        // Recorded meanwhile by another delivery of the same id, which
        // committed first: this one's writes go.
        drop(tx);
        duplicate(shared, &rec, &id);
        return Ok(Unsettled::done());
    }
    outbox::write(&mut tx, &records).await?;
    tx.commit().await.map_err(|source| StoreError {
        doing: "committing the inbox transaction",
        source,
    })?;
    if !records.is_empty() {
        outbox.wake.notify_one();
    }
    Ok(unsettled)
}

/// The transaction a message's outcome is written in: the handler's, if it
/// opened one and its writes are kept, else a new one (a failed attempt's
/// writes are dropped, which rolls them back).
pub(super) async fn transaction(
    outbox: &Outbox,
    pending: &Pending,
    keep: bool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    match pending.take_tx().await {
        Some(tx) if keep => return Ok(tx),
        // Rolled back, and its connection released, before a new one is
        // asked for: SQLite's pool has one connection, which this one holds.
        rolled_back => drop(rolled_back),
    }
    outbox
        .store
        .pool
        .begin()
        .await
        .map_err(|source| StoreError {
            doing: "beginning the inbox transaction",
            source,
        })
}

/// Keeps what a failed message publishes for good: its dead letters and error events.
pub(super) fn only_dead_letters(records: &mut Vec<crate::outbound::OutRecord>) {
    records.retain(|r| {
        matches!(
            r.kind,
            crate::SentKind::DeadLetter | crate::SentKind::ErrorEvent
        )
    });
}

/// The message's event name: as routing read it, else its `ce_type`.
pub(super) fn event_of(rec: &Record<'_>, event: &Option<String>) -> Option<String> {
    event
        .clone()
        .or_else(|| rec.header_str(crate::headers::CE_TYPE).map(str::to_owned))
}

pub(super) fn duplicate(shared: &Shared, rec: &Record<'_>, id: &str) {
    metrics::counter!(m::INBOX_DUPLICATES, "topic" => rec.topic.to_owned()).increment(1);
    shared.stats.skipped();
    tracing::debug!(
        topic = rec.topic,
        partition = rec.partition,
        offset = rec.offset,
        message_id = id,
        "already in the inbox; skipped"
    );
}

pub use crate::store::InboxRow;

/// The inbox's rows, for operators: what a service's `inbox` command lists,
/// shows, retries and purges. Opens (and migrates) `[inbox] url`.
pub struct Inbox {
    store: Store,
}

/// One inbox row with its stored message (queue mode keeps it).
#[derive(Debug, Clone)]
pub struct InboxEntry {
    /// The row.
    pub row: InboxRow,
    /// The message's headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The message's payload.
    pub payload: Option<Vec<u8>>,
}

fn store_error(e: StoreError) -> Error {
    Error::Store(e.to_string())
}

impl Inbox {
    /// Opens the database of `config`'s `[inbox] url`.
    pub async fn open(config: &crate::Config) -> Result<Inbox, Error> {
        let url = config.inbox.url.as_deref().ok_or_else(|| {
            Error::config(
                "inbox.url",
                "not set: the service has no inbox (set [inbox] url, or SPINE_INBOX__URL)",
            )
        })?;
        Ok(Inbox {
            store: Store::open(url, 2).await?,
        })
    }

    /// Rows, newest first, optionally of one status (`pending`, `error`,
    /// `dead`, `processed`).
    pub async fn list(&self, status: Option<&str>, limit: i64) -> Result<Vec<InboxRow>, Error> {
        self.store.list(status, limit).await.map_err(store_error)
    }

    /// One row and its message.
    pub async fn get(&self, id: i64) -> Result<Option<InboxEntry>, Error> {
        let Some(row) = self.store.get(id).await.map_err(store_error)? else {
            return Ok(None);
        };
        let (headers, payload) = self
            .store
            .message(id)
            .await
            .map_err(store_error)?
            .unwrap_or_default();
        Ok(Some(InboxEntry {
            row,
            headers,
            payload,
        }))
    }

    /// Makes a row (by id) or every row of a status due now, as `pending`; a
    /// `dead` row gets its attempts back. Returns how many rows changed.
    pub async fn retry(&self, id: Option<i64>, status: Option<&str>) -> Result<u64, Error> {
        self.store.retry(id, status).await.map_err(store_error)
    }

    /// Deletes `processed` and `dead` rows, and sent outbox rows, older than
    /// `older_than`. Returns (inbox rows, outbox rows) deleted.
    pub async fn purge(&self, older_than: Duration) -> Result<(u64, u64), Error> {
        self.store.purge(older_than).await.map_err(store_error)
    }

    /// How many rows have each status.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, Error> {
        self.store.counts().await.map_err(store_error)
    }
}
