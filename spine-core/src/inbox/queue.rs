//! Queue mode: storing each consumed message as a `pending` row, and the
//! workers that claim due rows, handle them and mark the outcome; a failed
//! row is retried with backoff (the scheduler is the claim's `next_attempt_at
//! <= now`) until `max_attempts`, then `dead` and dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

use super::{duplicate, event_of, message_id, only_dead_letters, transaction};
use crate::dispatch::{Resume, Shared, Unsettled};
use crate::metrics as m;
use crate::outbound::outbox::{self, Outbox, Pending};
use crate::record::Record;
use crate::shutdown::Shutdown;
use crate::store::{now_ms, ClaimedRow, NewInboxRow, Store, StoreError};

/// Stores a consumed message as a `pending` row; its offset is done once the
/// row is durable. A message whose id is stored already is a re-delivery.
pub(super) async fn store(
    shared: &Arc<Shared>,
    outbox: &Arc<Outbox>,
    msg: &OwnedMessage,
    topic_idx: usize,
    event: &Option<String>,
) -> Result<Unsettled, StoreError> {
    let rec = Record::owned(msg);
    let id = message_id(&rec);
    let event = event_of(&rec, event).or_else(|| {
        shared
            .table
            .topic(topic_idx)
            .event_name(&rec)
            .map(|e| e.into_owned())
    });
    let headers = rec.headers_vec();
    let row = NewInboxRow {
        consumer: shared.config.group_id(),
        message_id: &id,
        status: "pending",
        topic: rec.topic,
        partition: rec.partition,
        offset: rec.offset,
        key: rec.key,
        event: event.as_deref(),
        attempts: 0,
        last_error: None,
        headers: Some(&headers),
        payload: rec.payload,
    };
    let mut conn = outbox
        .store
        .pool
        .acquire()
        .await
        .map_err(|source| StoreError {
            doing: "storing the message in the inbox",
            source,
        })?;
    if Store::add_inbox(&mut conn, &row).await? {
        metrics::counter!(m::INBOX_QUEUED, "topic" => rec.topic.to_owned()).increment(1);
        outbox.queued.notify_one();
    } else {
        duplicate(shared, &rec, &id);
    }
    Ok(Unsettled::done())
}

/// Claims and handles due rows until `stop`: up to `[inbox] workers` at once.
pub(super) async fn work(shared: Arc<Shared>, outbox: Arc<Outbox>, stop: Shutdown) {
    let cfg = shared.config.inbox.clone();
    let consumer = shared.config.group_id().to_owned();
    loop {
        let claimed = tokio::select! {
            c = outbox.store.claim(&consumer, cfg.workers, cfg.lease) => c,
            _ = stop.wait() => return,
        };
        match claimed {
            Ok(rows) if rows.is_empty() => {
                tokio::select! {
                    _ = outbox.queued.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.wait() => return,
                }
            }
            Ok(rows) => {
                let handling = rows.into_iter().map(|r| handle(&shared, &outbox, r));
                // A stop lets the rows in hand finish; their leases cover a crash.
                futures::future::join_all(handling).await;
            }
            Err(e) => {
                metrics::counter!(m::INBOX_ERRORS, "operation" => e.doing).increment(1);
                tracing::warn!(error = %e, "inbox workers: the database is unreachable; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait() => return,
                }
            }
        }
    }
}

/// One attempt of a claimed row; retried while the database is away.
async fn handle(shared: &Arc<Shared>, outbox: &Arc<Outbox>, row: ClaimedRow) {
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt(shared, outbox, &row).await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!(m::INBOX_ERRORS, "operation" => e.doing).increment(1);
                tracing::warn!(inbox_id = row.id, error = %e, "inbox database error; the row is tried again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn attempt(
    shared: &Arc<Shared>,
    outbox: &Arc<Outbox>,
    row: &ClaimedRow,
) -> Result<(), StoreError> {
    let cfg = &shared.config.inbox;
    let Some(topic_idx) = shared.table.topic_index(&row.topic) else {
        let mut tx = transaction(outbox, &Pending::new(outbox.clone()), false).await?;
        let why = format!("the app no longer handles topic `{}`", row.topic);
        Store::settle_row(&mut tx, row.id, "dead", Some(&why), None).await?;
        return commit(tx).await;
    };
    let headers = row.headers.iter().fold(
        OwnedHeaders::new_with_capacity(row.headers.len()),
        |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        },
    );
    let msg = OwnedMessage::new(
        row.payload.clone(),
        row.key.clone(),
        row.topic.clone(),
        rdkafka::Timestamp::NotAvailable,
        row.partition,
        row.offset,
        Some(headers),
    );
    let pending = Pending::new(outbox.clone());
    let unsettled = pending
        .scope(
            shared
                .clone()
                .handle(msg, topic_idx, None, Resume::Fresh, None),
        )
        .await;
    let (mut records, failure) = pending.take();
    let mut tx = transaction(outbox, &pending, failure.is_none()).await?;
    let status = match &failure {
        None => {
            Store::settle_row(&mut tx, row.id, "processed", None, None).await?;
            "processed"
        }
        Some(f) if !f.retryable || row.attempts >= i64::from(cfg.max_attempts) => {
            only_dead_letters(&mut records);
            Store::settle_row(&mut tx, row.id, "dead", Some(&f.message), None).await?;
            "dead"
        }
        Some(f) => {
            records.clear();
            let exp = (row.attempts - 1).clamp(0, 20) as u32;
            let wait = cfg.backoff.saturating_mul(1 << exp).min(cfg.max_backoff);
            let next = now_ms() + wait.as_millis() as i64;
            Store::settle_row(&mut tx, row.id, "error", Some(&f.message), Some(next)).await?;
            "error"
        }
    };
    outbox::write(&mut tx, &records).await?;
    commit(tx).await?;
    metrics::counter!(m::INBOX_ATTEMPTS, "topic" => row.topic.clone(), "status" => status)
        .increment(1);
    if !records.is_empty() {
        outbox.wake.notify_one();
    }
    // Requests, or an aggregate's hold: nothing of this row's own.
    shared.settle(unsettled).await;
    Ok(())
}

async fn commit(tx: sqlx::Transaction<'static, sqlx::Any>) -> Result<(), StoreError> {
    tx.commit().await.map_err(|source| StoreError {
        doing: "committing the inbox transaction",
        source,
    })
}
