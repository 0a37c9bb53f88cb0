//! The consumer loop's side of batch handlers. The loop hands each message
//! bound for a batch handler, in offset order, to its partition's batcher: a
//! task that gathers up to `max` messages (or what arrived within `linger` of
//! the first), runs them as one batch (`dispatch::batch::run`), and gives
//! each message's outcome back to the loop, which commits as for any other.
//!
//! A partition's batches run one at a time, in order, so a batch handler keeps
//! partition order and so key order; partitions batch concurrently. Under
//! `ordering = "none"`, which promises no order, a partition's next batch
//! gathers and runs while the one before is still running. Each message
//! waiting in a batch counts against `max_in_flight`, which bounds both.

use std::future::Future;
use std::sync::Arc;

use rdkafka::message::OwnedMessage;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::OrderingPolicy;
use crate::dispatch::batch::BatchSpec;
use crate::dispatch::{MessageOutcome, Shared, Unsettled};
use crate::error::{Failure, FailureKind};
use crate::record::Record;

/// A message waiting for its batch.
struct Member {
    msg: Arc<OwnedMessage>,
    since: Instant,
    done: oneshot::Sender<Unsettled>,
}

/// One partition's batcher; dropping it lets the task finish what it holds
/// and end (a revoked partition's outcomes are then not committed).
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Member>,
}

impl Batcher {
    /// Starts the task for `topic_idx`'s batch handler on one partition.
    pub(crate) fn start(
        shared: Arc<Shared>,
        topic_idx: usize,
        partition: i32,
        spec: &BatchSpec,
    ) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let span = tracing::debug_span!(
            target: "spine::batch",
            "batcher",
            topic = &*shared.table.topic(topic_idx).topic,
            partition
        );
        let overlap = shared.config.dispatch.ordering == OrderingPolicy::Unordered;
        let gathering = gather(shared, topic_idx, spec.max, spec.linger, overlap, rx);
        tokio::spawn(gathering.instrument(span));
        Batcher { tx }
    }

    /// Queues a message for the next batch; the future ends with what the
    /// message still waits for once its batch ran.
    pub(crate) fn push(
        &self,
        shared: Arc<Shared>,
        topic_idx: usize,
        msg: OwnedMessage,
    ) -> impl Future<Output = Unsettled> + Send + 'static {
        let msg = Arc::new(msg);
        let (done, outcome) = oneshot::channel();
        let member = Member {
            msg: msg.clone(),
            since: Instant::now(),
            done,
        };
        // The task ends only when this sender is dropped, so it is there.
        let queued = self.tx.send(member).is_ok();
        async move {
            match outcome.await {
                Ok(unsettled) if queued => unsettled,
                _ => stopped(&shared, topic_idx, &msg),
            }
        }
    }
}

/// The batcher's task ended without answering (the runtime is shutting
/// down): the message fails rather than being committed unhandled.
#[cold]
fn stopped(shared: &Shared, topic_idx: usize, msg: &OwnedMessage) -> Unsettled {
    let rec = Record::owned(msg);
    let topic = shared.table.topic(topic_idx);
    let failure = Failure::new(
        FailureKind::Handler,
        "the batch this message waited for was never run (its batcher stopped)",
    );
    shared.finish(&rec, topic, None, MessageOutcome::failed(None, failure))
}

/// Gathers batches and runs each: in turn, or with `overlap` each on a task
/// of its own while the next gathers.
async fn gather(
    shared: Arc<Shared>,
    topic_idx: usize,
    max: usize,
    linger: std::time::Duration,
    overlap: bool,
    mut rx: mpsc::UnboundedReceiver<Member>,
) {
    while let Some(first) = rx.recv().await {
        let deadline = first.since + linger;
        let mut batch = vec![first];
        // `timeout_at` polls the channel before the deadline, so messages
        // that queued while the previous batch ran are taken even past it.
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => batch.push(m),
                Ok(None) | Err(_) => break,
            }
        }
        if overlap {
            tokio::spawn(run(shared.clone(), topic_idx, batch).in_current_span());
        } else {
            run(shared.clone(), topic_idx, batch).await;
        }
    }
}

/// Runs one batch and gives each member its outcome.
async fn run(shared: Arc<Shared>, topic_idx: usize, batch: Vec<Member>) {
    let msgs: Vec<&OwnedMessage> = batch.iter().map(|m| &*m.msg).collect();
    let outcomes = crate::dispatch::batch::run(&shared, topic_idx, &msgs).await;
    drop(msgs);
    for (m, unsettled) in batch.into_iter().zip(outcomes) {
        let _ = m.done.send(unsettled);
    }
}
