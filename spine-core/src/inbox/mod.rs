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
//! A database that cannot be reached holds the message (and, through
//! `max_in_flight`, the fetching) and retries with backoff, counted in
//! `spine_inbox_errors_total`: nothing is skipped.

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
    let mut delay = Duration::from_millis(100);
    loop {
        match once(&shared, &outbox, &msg, topic_idx, &event, park.take()).await {
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
    let mut tx = match (&failure, pending.take_tx().await) {
        // A failed message's writes are not kept; its dead letter is.
        (None, Some(tx)) => tx,
        _ => outbox
            .store
            .pool
            .begin()
            .await
            .map_err(|source| StoreError {
                doing: "beginning the inbox transaction",
                source,
            })?,
    };
    if failure.is_some() {
        records.retain(|r| {
            matches!(
                r.kind,
                crate::SentKind::DeadLetter | crate::SentKind::ErrorEvent
            )
        });
    }
    let event_name = event
        .clone()
        .or_else(|| rec.header_str(crate::headers::CE_TYPE).map(str::to_owned));
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

fn duplicate(shared: &Shared, rec: &Record<'_>, id: &str) {
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
