//! The transactional outbox (feature `inbox`). While the inbox handles a
//! message, what the message publishes (replies, emitted events, dead
//! letters, error events) is kept with the message's transaction instead of
//! being handed to the producer ([`Pending`], task-local). The inbox writes it
//! as `spine_outbox` rows in the transaction that records the message and
//! holds the handler's own writes (`Tx`), so either all of it commits or none.
//! The relay then publishes the rows in order and marks each sent only once
//! the broker acknowledged it; a crash before that publishes it again.
//!
//! Requests (`Context::request`) are not kept: their sender waits for the
//! response while the transaction is still open.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sqlx::{Any, Transaction};
use tokio::sync::Notify;

use super::{OutRecord, Outbound, SentKind};
use crate::metrics as m;
use crate::shutdown::Shutdown;
use crate::store::{OutboxRow, Store, StoreResult};

/// The app's inbox database and the relay's wake-up call.
pub(crate) struct Outbox {
    pub(crate) store: Store,
    pub(crate) wake: Notify,
    /// Queue mode: a row was stored; the workers look now.
    pub(crate) queued: Notify,
}

impl Outbox {
    pub(crate) fn new(store: Store) -> Arc<Outbox> {
        Arc::new(Outbox {
            store,
            wake: Notify::new(),
            queued: Notify::new(),
        })
    }
}

tokio::task_local! {
    static PENDING: Arc<Pending>;
}

/// The message being handled under the inbox: its transaction (opened by
/// the first `Tx` use) and what it published.
pub(crate) struct Pending {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) tx: tokio::sync::Mutex<Option<Transaction<'static, Any>>>,
    records: Mutex<Vec<OutRecord>>,
    failure: Mutex<Option<Failed>>,
}

/// How the current message failed for good.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub(crate) message: String,
    /// Whether a later attempt could succeed (queue mode retries it).
    pub(crate) retryable: bool,
}

impl Pending {
    pub(crate) fn new(outbox: Arc<Outbox>) -> Arc<Pending> {
        Arc::new(Pending {
            outbox,
            tx: tokio::sync::Mutex::new(None),
            records: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
        })
    }

    /// Runs `fut` with this as the current message's pending state.
    pub(crate) async fn scope<F: std::future::Future>(self: &Arc<Self>, fut: F) -> F::Output {
        PENDING.scope(self.clone(), fut).await
    }

    /// The records kept, and the failure the message ended with, if any.
    pub(crate) fn take(&self) -> (Vec<OutRecord>, Option<Failed>) {
        (
            std::mem::take(&mut *self.records.lock()),
            self.failure.lock().take(),
        )
    }

    /// The transaction the handler opened, if it did.
    pub(crate) async fn take_tx(&self) -> Option<Transaction<'static, Any>> {
        self.tx.lock().await.take()
    }
}

/// The current message's pending state, when the inbox handles it.
pub(crate) fn current() -> Option<Arc<Pending>> {
    PENDING.try_with(Arc::clone).ok()
}

/// A new attempt of the current message starts: what an earlier attempt
/// wrote (its transaction, its records) is rolled back.
pub(crate) fn attempt_starts() {
    if let Some(p) = current() {
        p.records.lock().clear();
        // The handler's future is gone, so nothing holds the lock; dropping
        // the transaction rolls it back.
        if let Ok(mut tx) = p.tx.try_lock() {
            tx.take();
        }
    }
}

/// The current message failed for good with `message`.
pub(crate) fn message_failed(message: &str, retryable: bool) {
    if let Some(p) = current() {
        p.failure.lock().get_or_insert_with(|| Failed {
            message: message.to_owned(),
            retryable,
        });
    }
}

/// Keeps `rec` with the current message, if the inbox handles it; gives it
/// back otherwise (and for a request).
pub(crate) fn divert(rec: OutRecord) -> Result<(), OutRecord> {
    if rec.kind == SentKind::Request {
        return Err(rec);
    }
    match current() {
        Some(p) => {
            p.records.lock().push(rec);
            Ok(())
        }
        None => Err(rec),
    }
}

/// The name a record's kind is stored under.
pub(crate) fn kind_name(kind: SentKind) -> &'static str {
    match kind {
        SentKind::Reply => "reply",
        SentKind::Emit => "emit",
        SentKind::DeadLetter => "dead_letter",
        SentKind::ErrorEvent => "error_event",
        SentKind::Publish => "publish",
        SentKind::Request => "request",
    }
}

fn kind_of(name: &str) -> SentKind {
    match name {
        "reply" => SentKind::Reply,
        "dead_letter" => SentKind::DeadLetter,
        "error_event" => SentKind::ErrorEvent,
        "publish" => SentKind::Publish,
        _ => SentKind::Emit,
    }
}

/// Writes `records` as outbox rows in `tx`.
pub(crate) async fn write(
    conn: &mut sqlx::AnyConnection,
    records: &[OutRecord],
) -> StoreResult<()> {
    for r in records {
        Store::add_outbox(
            conn,
            kind_name(r.kind),
            &r.topic,
            r.key.as_deref(),
            &r.headers,
            r.payload.as_deref(),
        )
        .await?;
    }
    Ok(())
}

/// Publishes outbox rows until `stop` fires and the outbox is empty (or
/// `stop` is forced). Rows go to the producer in id order, a round at a
/// time; a round ends when the broker acknowledged all of them, so a key's
/// records keep their order.
pub(crate) async fn relay(
    outbox: Arc<Outbox>,
    outbound: Outbound,
    batch: usize,
    interval: Duration,
    stop: Shutdown,
) {
    let mut stopping = false;
    loop {
        let rows = match outbox.store.unsent(batch).await {
            Ok(rows) => rows,
            Err(e) => {
                metrics::counter!(m::INBOX_ERRORS, "operation" => "relay").increment(1);
                tracing::warn!(error = %e, "outbox relay: the database is unreachable; retrying in 1 s");
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.forced() => return,
                }
                continue;
            }
        };
        if rows.is_empty() {
            if stopping {
                return;
            }
            tokio::select! {
                _ = outbox.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait() => stopping = true,
            }
            continue;
        }
        tokio::select! {
            _ = publish(&outbox, &outbound, rows) => {}
            _ = stop.forced() => return,
        }
    }
}

async fn publish(outbox: &Outbox, outbound: &Outbound, rows: Vec<OutboxRow>) {
    let settling: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let id = r.id;
            let delivery = outbound.send(OutRecord {
                kind: kind_of(&r.kind),
                topic: r.topic,
                key: r.key,
                payload: r.payload,
                headers: r.headers,
            });
            async move { (id, outbound.settle(vec![delivery]).await) }
        })
        .collect();
    let settled = futures::future::join_all(settling).await;
    let mut sent = Vec::new();
    for (id, s) in settled {
        match s.refused {
            None => sent.push(id),
            Some(f) => {
                metrics::counter!(m::OUTBOX_REFUSED, "topic" => f.topic.clone()).increment(1);
                tracing::error!(
                    outbox_id = id,
                    topic = %f.topic,
                    error = %f.error,
                    "the broker refused an outbox record for good; it is marked with the error and not retried"
                );
                mark(outbox, &[id], Some(&f.error.to_string())).await;
            }
        }
    }
    metrics::counter!(m::OUTBOX_PUBLISHED).increment(sent.len() as u64);
    mark(outbox, &sent, None).await;
}

/// Marks rows sent, retrying while the database is away: a row left unmarked
/// would be published again.
async fn mark(outbox: &Outbox, ids: &[i64], error: Option<&str>) {
    let mut delay = Duration::from_millis(100);
    while let Err(e) = outbox.store.mark_sent(ids, error).await {
        metrics::counter!(m::INBOX_ERRORS, "operation" => "relay").increment(1);
        tracing::warn!(error = %e, "outbox relay: cannot mark rows sent; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
