//! The consumer loop: one tokio task that fetches with rdkafka, schedules
//! messages into key-ordered lanes, runs handlers (inline when they finish on
//! their first poll, concurrently otherwise), tracks finished offsets per
//! partition, commits them, pauses fetching at `max_in_flight`, and shuts down
//! gracefully.
//!
//! Beside it: `backpressure` (what `max_in_flight` does to fetching), `lanes` (which messages must wait for which, by ordering policy),
//! `tracker` (per-partition watermark of contiguous finished offsets),
//! `watch` (in-flight messages that take long, logged at WARN), `parked`
//! (what parked keys count against) and `reach` (one WARN when the broker
//! cannot be reached, not one ERROR per attempt).
//!
//! The hot path is built for throughput: a message whose handler completes on
//! its first poll costs no task spawn, no lock and no copy of the message; only
//! the boxed handler future is allocated.

mod backpressure;
mod batcher;
mod lanes;
mod parked;
mod reach;
mod registry;
mod ticket;
mod tracker;
mod watch;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tracing::Instrument;

use crate::codec::{CodecError, DecodedPayload};
use crate::consumer::lanes::{LaneId, Lanes};
use crate::consumer::reach::Reach;
use crate::consumer::registry::{PartitionShared, Registry};
use crate::consumer::ticket::Ticket;
use crate::consumer::tracker::OffsetTracker;
use crate::consumer::watch::{Stage, Watch};
use crate::dispatch::extract::Scope;
use crate::dispatch::{message_span, MessageOutcome, Resume, Shared, Unsettled};
use crate::error::{Error, Failure, FailureKind};
use crate::metrics as m;
use crate::outbound::{is_producer_only, kafka_config_error};
use crate::record::Record;
use crate::shutdown::Shutdown;

/// The rdkafka context: commits finished offsets when partitions are revoked,
/// records the offsets the broker confirms, and reports commit failures.
pub(crate) struct SpineContext {
    registry: Arc<Registry>,
    reach: Arc<Reach>,
    status: Arc<crate::status::Status>,
}

impl ClientContext for SpineContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        // A failed connection attempt: `Reach` says it once, in words.
        if fac == "FAIL" {
            tracing::debug!(target: "librdkafka", "{fac} {message}");
            return;
        }
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", "{fac} {message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", "{fac} {message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", "{fac} {message}"),
            L::Debug => tracing::debug!(target: "librdkafka", "{fac} {message}"),
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.status.statistics(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if Reach::is_unreachable(&error) {
            self.reach.lost(reason);
        } else {
            tracing::error!(error = %error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for SpineContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut commit = TopicPartitionList::new();
        {
            let mut parts = self.registry.parts.lock();
            for e in revoked.elements() {
                if let Some(p) = parts.remove(&(e.topic().to_owned(), e.partition())) {
                    p.revoked.store(true, Ordering::Relaxed);
                    let c = p.committable.load(Ordering::Relaxed);
                    if c >= 0 {
                        // Only fails for a partition listed twice, which cannot happen here.
                        let _ = commit.add_partition_offset(
                            e.topic(),
                            e.partition(),
                            Offset::Offset(c),
                        );
                    }
                }
            }
        }
        self.status.revoke(
            revoked
                .elements()
                .iter()
                .map(|e| (e.topic(), e.partition())),
        );
        tracing::info!(partitions = revoked.count(), "partitions revoked");
        // Asynchronous, so that a rebalance never waits on an unreachable
        // coordinator (a synchronous commit waits for it without a deadline,
        // on the thread that polls the consumer). librdkafka sends it before
        // the group is rejoined, so the next owner starts from it; if it
        // does not land, the next owner handles those messages again.
        if commit.count() > 0 {
            match consumer.commit(&commit, CommitMode::Async) {
                Ok(()) => tracing::info!(
                    partitions = commit.count(),
                    "committing finished offsets of revoked partitions"
                ),
                Err(e) => {
                    metrics::counter!(m::COMMIT_ERRORS).increment(1);
                    tracing::warn!(error = %e, "commit on revoke failed; the new owner re-handles those messages");
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.reach.answered();
                let mut parts = self.registry.parts.lock();
                for e in tpl.elements() {
                    parts
                        .entry((e.topic().to_owned(), e.partition()))
                        .or_insert_with(|| self.registry.fresh());
                }
                self.status
                    .assign(tpl.elements().iter().map(|e| (e.topic(), e.partition())));
                tracing::info!(partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if result.is_ok() {
            self.reach.answered();
        }
        if let Err(e) = result {
            metrics::counter!(m::COMMIT_ERRORS).increment(1);
            tracing::warn!(error = %e, "offset commit failed; retried at the next interval");
        }
        self.registry.confirm(offsets);
    }
}

/// A message waiting in its lane.
struct Waiting {
    msg: OwnedMessage,
    topic_idx: usize,
    event: Option<String>,
    ticket: Ticket,
}

/// The loop's own view of an assigned partition.
struct Slot {
    topic: Arc<str>,
    /// librdkafka's handle of the topic, as an identity.
    topic_ptr: usize,
    partition: i32,
    topic_idx: Option<usize>,
    shared: Arc<PartitionShared>,
    tracker: OffsetTracker,
    committed: Option<i64>,
    /// Messages waiting behind parked keys.
    parked: usize,
    /// Paused because `parked` reached `max_parked`.
    paused: bool,
    /// The partition's batcher, once a message went to a batch handler.
    batcher: Option<batcher::Batcher>,
}

type Running = Pin<Box<dyn Future<Output = (Ticket, Unsettled)> + Send>>;
type Settling = Pin<Box<dyn Future<Output = Ticket> + Send>>;

/// Messages taken from the stream in one go before the loop looks at its other
/// work (finished handlers, commits, shutdown).
const BATCH: usize = 256;

struct Loop<'c> {
    shared: Arc<Shared>,
    consumer: &'c StreamConsumer<SpineContext>,
    /// The same consumer, for the final commit's thread.
    handle: Arc<StreamConsumer<SpineContext>>,
    registry: Arc<Registry>,
    reach: Arc<Reach>,
    slots: Vec<Slot>,
    last_slot: usize,
    lanes: Lanes<Waiting>,
    running: FuturesUnordered<Running>,
    settling: FuturesUnordered<Settling>,
    in_flight: usize,
    bound: backpressure::Bound,
    watch: Watch,
    park_tx: tokio::sync::mpsc::UnboundedSender<parked::ParkNote>,
    park_rx: tokio::sync::mpsc::UnboundedReceiver<parked::ParkNote>,
    /// Whether some topic parks exhausted messages (`on_exhausted = "park"`).
    parks: bool,
}

/// Builds the consumer's librdkafka configuration.
pub(crate) fn consumer_config(shared: &Shared) -> ClientConfig {
    let config = &shared.config;
    let mut cc = ClientConfig::new();
    // Defaults; `[kafka]` may override all but the commit ones.
    // A new group starts from the beginning: at-least-once loses nothing.
    cc.set("auto.offset.reset", "earliest");
    // librdkafka postpones fetching a partition whose local queue is over its
    // threshold by this much (default 1 s). Any consumer slower than the
    // fetcher then runs the queue dry and stalls for up to a second; 20 ms
    // keeps the queue fed at the cost of a few more checks.
    cc.set("fetch.queue.backoff.ms", "20");
    // librdkafka lets a fetch wait up to 500 ms for data. Brokers that hold
    // a fetch for that long when little is new (nisshi does) then add up to
    // half a second to every message: 168 ms p50 and 500 ms p99 at 5,000
    // msgs/s (scripts/bench --latency). 10 ms costs an idle consumer about
    // 100 fetch requests a second per broker.
    cc.set("fetch.wait.max.ms", "10");
    // librdkafka prefetches until its queue holds `queued.min.messages`
    // (default 100,000) or `queued.max.messages.kbytes` (64 MiB). Draining a
    // backlog of small messages then holds 100,000 of them, with their
    // per-message overhead, for no gain. `scripts/bench --messages 1000000`:
    // peak RSS 74 → 56 MiB, and throughput as high or higher; 10,000 ran
    // the queue dry (0.59× the raw loop). The kbytes bound keeps large
    // messages in check. `[kafka]` overrides both.
    cc.set("queued.min.messages", "40000");
    cc.set("queued.max.messages.kbytes", "16384");
    for (k, v) in &config.kafka {
        if !is_producer_only(k) {
            cc.set(k, v);
        }
    }
    // The operations surface reads lag, committed offsets and broker states
    // from librdkafka's statistics.
    if config.http.listen.is_some() && !config.kafka.contains_key("statistics.interval.ms") {
        cc.set("statistics.interval.ms", "1000");
    }
    cc.set("group.id", config.group_id());
    cc.set("enable.auto.commit", "false");
    cc.set("enable.auto.offset.store", "false");
    cc
}

/// Validates the consumer configuration without connecting.
pub(crate) fn check_consumer_config(shared: &Shared) -> Result<(), Error> {
    consumer_config(shared)
        .create_native_config()
        .map(|_| ())
        .map_err(|e| kafka_config_error(&shared.config, e))
}

/// Runs the app until `shutdown` fires, then drains and commits.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: Shutdown) -> Result<(), Error> {
    let registry = Arc::new(Registry::default());
    let reach = Arc::new(Reach::new(
        shared
            .config
            .bootstrap_servers()
            .unwrap_or("(no bootstrap.servers)"),
    ));
    let consumer: StreamConsumer<SpineContext> = consumer_config(&shared)
        .create_with_context(SpineContext {
            registry: registry.clone(),
            reach: reach.clone(),
            status: shared.status.clone(),
        })
        .map_err(|e| kafka_config_error(&shared.config, e))?;
    let topics = shared.table.topic_names();
    consumer.subscribe(&topics)?;
    tracing::info!(
        app = %shared.config.app.name,
        group = shared.config.group_id(),
        topics = ?topics,
        "subscribed"
    );
    let max_in_flight = shared.config.dispatch.max_in_flight;
    let commit_timeout = shared.config.dispatch.commit_timeout;
    let lanes = Lanes::new(shared.config.dispatch.ordering);
    let consumer = Arc::new(consumer);
    let (park_tx, park_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut lp = Loop {
        shared: shared.clone(),
        consumer: &consumer,
        handle: consumer.clone(),
        registry,
        reach,
        slots: Vec::new(),
        last_slot: 0,
        lanes,
        running: FuturesUnordered::new(),
        settling: FuturesUnordered::new(),
        in_flight: 0,
        bound: backpressure::Bound::new(
            max_in_flight,
            backpressure::pause_after(&shared.config.kafka),
        ),
        watch: Watch::new(shared.config.dispatch.in_flight_warning),
        park_tx,
        park_rx,
        parks: shared.table.topics().iter().any(|t| t.parks),
    };
    let result = lp.run(&shutdown).await;
    drop(lp);
    shared.status.stop(match &result {
        Ok(()) => "the consumer stopped (shutdown)".to_owned(),
        Err(e) => format!("the consumer stopped: {e}"),
    });
    // After a failed final commit the coordinator is out of reach, and
    // leaving the group would wait for it: the group notices the member gone
    // after `session.timeout.ms` instead.
    if result.is_ok() {
        consumer.unsubscribe();
        close(consumer, commit_timeout, &shutdown).await;
    }
    shared.requests.stop().await;
    result
}

/// Leaves the group and closes the consumer, on a thread of its own:
/// librdkafka's close waits for the group coordinator. Waited for at most
/// `timeout`.
async fn close(
    consumer: Arc<StreamConsumer<SpineContext>>,
    timeout: Duration,
    shutdown: &Shutdown,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let closing = std::thread::Builder::new()
        .name("spine-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = tx.send(());
        });
    if closing.is_err() {
        return;
    }
    tokio::select! {
        _ = rx => {}
        _ = tokio::time::sleep(timeout) => {
            tracing::warn!("leaving the consumer group took longer than dispatch.commit_timeout; the group notices after session.timeout.ms");
        }
        _ = shutdown.forced() => {}
    }
}

impl Loop<'_> {
    async fn run(&mut self, shutdown: &Shutdown) -> Result<(), Error> {
        let dispatch = self.shared.config.dispatch.clone();
        let mut commit_tick = tokio::time::interval(dispatch.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stream = self.consumer.stream();
        let shared = self.shared.clone();
        let mut watch_tick = tokio::time::interval(self.watch.period());
        watch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let configured = dispatch.max_in_flight;
        loop {
            let pause_at = self.bound.pause_at();
            tokio::select! {
                biased;
                _ = &mut stop => break,
                // Before `running`: a message unparks before its future ends.
                // Polled only if some topic parks: no note can come otherwise.
                Some(note) = self.park_rx.recv(), if self.parks => self.on_park(note),
                Some((ticket, deliveries)) = self.running.next(), if !self.running.is_empty() => {
                    self.on_handled(ticket, deliveries);
                }
                Some(ticket) = self.settling.next(), if !self.settling.is_empty() => {
                    self.on_settled(ticket);
                }
                _ = commit_tick.tick() => {
                    // A reloaded `config_source` row changes the bound, read
                    // here rather than per message: within a commit interval.
                    self.bound.max_in_flight = shared.live.max_in_flight().unwrap_or(configured);
                    self.commit(CommitMode::Async, false);
                    self.shared.status.beat(self.in_flight);
                }
                _ = watch_tick.tick() => {
                    self.watch.warn();
                    self.shared.status.beat(self.in_flight);
                    self.shared.status.set_slow(self.watch.oldest(20));
                }
                // The bound held too long: pause the partitions, poll again.
                _ = async {
                    if let Some(at) = pause_at {
                        tokio::time::sleep_until(at.into()).await
                    }
                }, if pause_at.is_some() => {
                    self.pause_stalled();
                }
                // At max_in_flight the loop stops taking messages; librdkafka
                // then stops fetching once its bounded prefetch queue is full.
                item = stream.next(), if self.may_take() => {
                    match item {
                        Some(Ok(msg)) if self.bound.is_paused() => {
                            // From a partition assigned since the pause.
                            self.pause_partition_of(&msg);
                            self.on_message(&shared, &msg);
                            continue;
                        }
                        Some(Ok(msg)) => {
                            self.reach.answered();
                            self.on_message(&shared, &msg)
                        }
                        Some(Err(e)) => consumer_error(&self.reach, &e),
                        None => break,
                    }
                    // Take what is already fetched without going round the select.
                    let mut noop = TaskContext::from_waker(Waker::noop());
                    for _ in 0..BATCH {
                        if !self.may_take() {
                            break;
                        }
                        match stream.poll_next_unpin(&mut noop) {
                            Poll::Ready(Some(Ok(msg))) => self.on_message(&shared, &msg),
                            Poll::Ready(Some(Err(e))) => consumer_error(&self.reach, &e),
                            Poll::Ready(None) | Poll::Pending => break,
                        }
                    }
                }
            }
        }
        drop(stream);
        self.drain(dispatch.shutdown_timeout, &mut commit_tick, shutdown)
            .await;
        self.final_commit(dispatch.commit_timeout, shutdown).await
    }

    /// Stops fetching and lets in-flight messages finish within `timeout`
    /// (or until a forced stop).
    async fn drain(
        &mut self,
        timeout: Duration,
        commit_tick: &mut tokio::time::Interval,
        shutdown: &Shutdown,
    ) {
        tracing::info!(
            in_flight = self.in_flight,
            "shutting down: finishing in-flight messages"
        );
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        while self.in_flight > 0 {
            tokio::select! {
                biased;
                Some(note) = self.park_rx.recv(), if self.parks => self.on_park(note),
                Some((ticket, deliveries)) = self.running.next(), if !self.running.is_empty() => {
                    self.on_handled(ticket, deliveries);
                }
                Some(ticket) = self.settling.next(), if !self.settling.is_empty() => {
                    self.on_settled(ticket);
                }
                _ = commit_tick.tick() => self.commit(CommitMode::Async, false),
                _ = &mut deadline => {
                    tracing::warn!(
                        abandoned = self.in_flight,
                        "shutdown timeout reached; unfinished messages will be re-delivered"
                    );
                    break;
                }
                _ = shutdown.forced() => {
                    tracing::warn!(
                        abandoned = self.in_flight,
                        "forced stop; unfinished messages will be re-delivered"
                    );
                    break;
                }
            }
        }
    }

    /// Commits what was handled and the broker has not confirmed yet, and
    /// waits for the broker's answer: at most `timeout`, off the runtime's
    /// threads (a synchronous commit waits for an unreachable coordinator
    /// without a deadline). A commit that fails, times out or is cut short
    /// by a forced stop is logged once with the offsets that will be handled
    /// again, counted, and returned as [`Error::Uncommitted`].
    async fn final_commit(&mut self, timeout: Duration, shutdown: &Shutdown) -> Result<(), Error> {
        let tpl = self.unconfirmed();
        if tpl.count() == 0 {
            tracing::info!("shutdown complete");
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let consumer = self.handle.clone();
        let list = tpl.clone();
        let committing = std::thread::Builder::new()
            .name("spine-commit".into())
            .spawn(move || {
                let result = consumer.commit(&list, CommitMode::Sync);
                drop(consumer);
                let _ = tx.send(result);
            });
        let reason = match committing {
            Err(e) => format!("cannot start the commit thread: {e}"),
            Ok(_) => tokio::select! {
                r = rx => match r {
                    Ok(Ok(())) => {
                        tracing::info!(partitions = tpl.count(), "committed; shutdown complete");
                        return Ok(());
                    }
                    Ok(Err(e)) => format!("the final commit failed: {e}"),
                    Err(_) => "the final commit thread ended without an answer".to_owned(),
                },
                _ = tokio::time::sleep(timeout) => format!(
                    "the broker did not confirm the final commit within dispatch.commit_timeout ({timeout:?})"
                ),
                _ = shutdown.forced() => "forced stop".to_owned(),
            },
        };
        let offsets = self.uncommitted(&tpl);
        metrics::counter!(m::COMMIT_TIMEOUTS).increment(1);
        let err = Error::Uncommitted { reason, offsets };
        tracing::error!(error = %err, "shutdown incomplete");
        Err(err)
    }

    /// Partitions whose finished offset the broker has not confirmed.
    fn unconfirmed(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for s in &self.slots {
            if s.shared.revoked.load(Ordering::Relaxed) {
                continue;
            }
            if let Some(c) = s.tracker.committable() {
                if s.shared.confirmed.load(Ordering::Relaxed) != c {
                    let _ = tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(c));
                }
            }
        }
        tpl
    }

    fn uncommitted(&self, tpl: &TopicPartitionList) -> Vec<crate::error::UncommittedOffset> {
        tpl.elements()
            .iter()
            .filter_map(|e| {
                let Offset::Offset(offset) = e.offset() else {
                    return None;
                };
                let slot = self
                    .slots
                    .iter()
                    .find(|s| s.partition == e.partition() && &*s.topic == e.topic())?;
                let confirmed = slot.shared.confirmed.load(Ordering::Relaxed);
                Some(crate::error::UncommittedOffset {
                    topic: e.topic().to_owned(),
                    partition: e.partition(),
                    offset,
                    committed: (confirmed >= 0).then_some(confirmed),
                })
            })
            .collect()
    }

    /// The slot of a message's partition, refreshed when the partition was
    /// revoked since. The common case compares two integers: librdkafka's
    /// topic handle is stable, so the topic name is not even read.
    fn slot_for(&mut self, msg: &BorrowedMessage<'_>) -> usize {
        let (topic_ptr, partition) = (msg.topic_ptr() as usize, msg.partition());
        if let Some(s) = self.slots.get(self.last_slot) {
            if s.topic_ptr == topic_ptr
                && s.partition == partition
                && !s.shared.revoked.load(Ordering::Relaxed)
            {
                return self.last_slot;
            }
        }
        let topic = msg.topic();
        let found = self
            .slots
            .iter()
            .position(|s| s.partition == partition && &*s.topic == topic);
        let idx = match found {
            Some(i) if !self.slots[i].shared.revoked.load(Ordering::Relaxed) => i,
            Some(i) => {
                self.slots[i] = self.new_slot(topic, topic_ptr, partition);
                i
            }
            None => {
                let slot = self.new_slot(topic, topic_ptr, partition);
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.last_slot = idx;
        idx
    }

    fn new_slot(&self, topic: &str, topic_ptr: usize, partition: i32) -> Slot {
        Slot {
            topic: topic.into(),
            topic_ptr,
            partition,
            topic_idx: self.shared.table.topic_index(topic),
            shared: self.registry.get_or_assign(topic, partition),
            tracker: OffsetTracker::default(),
            committed: None,
            parked: 0,
            paused: false,
            batcher: None,
        }
    }

    /// Handles one message; `shared` is the loop's own handle, passed in so
    /// that a message costs no reference-count traffic. The steps: accept the
    /// offset, route, queue behind a busy key, else run the handler inline and
    /// hand what did not finish on its first poll to the slow path.
    fn on_message(&mut self, shared: &Arc<Shared>, msg: &BorrowedMessage<'_>) {
        let slot = self.slot_for(msg);
        if !self.accept(slot, msg) {
            return;
        }
        shared.stats.consumed();
        let Some(topic_idx) = self.slots[slot].topic_idx else {
            tracing::error!(
                topic = msg.topic(),
                "message from a topic the app does not subscribe to; committed without handling"
            );
            self.finished_inline(slot, msg.offset(), Unsettled::done());
            return;
        };
        let topic = shared.table.topic(topic_idx);
        let rec = Record::borrowed(msg, &topic.topic);
        topic.metrics.consumed();
        // Routing by Avro record name needs the writer schema; when it is not
        // cached yet, the slow path fetches it and routes.
        let ready = topic.event_ready(&rec);
        // Read the event name only if routing depends on it: for librdkafka,
        // the first header access parses and allocates every header.
        let (event, route) = if ready && topic.needs_event() {
            topic.routed(&rec)
        } else {
            (None, topic.route(None))
        };
        if ready && route.is_none() {
            return self.unknown_event(shared, slot, &rec, topic, event);
        }
        let route = route.filter(|_| ready);
        if let Some(r) = route.filter(|r| r.batch().is_some()) {
            return self.queue_for_batch(shared, &rec, slot, topic_idx, r);
        }
        let gen = self.slots[slot].shared.gen;
        // Lanes exist only while something is in flight; when none is, no
        // message waits and the key is not even hashed.
        if !self.lanes.is_idle() {
            let lane = self.lanes.lane_of(slot, rec.key);
            if let Some(l) = lane.filter(|l| self.lanes.is_busy(*l)) {
                return self.wait_in_lane(l, &rec, (slot, gen), topic_idx, event);
            }
        }
        shared.before(&rec, topic, event.as_deref(), route);
        let span = message_span(&rec, topic, event.as_deref(), route);
        let resume = match route
            .and_then(|r| r.single().map(|h| (r, h)))
            .filter(|_| !inbox_on(shared))
        {
            None => Resume::Fresh,
            Some((route, h)) => {
                let _entered = span.enter();
                match self.run_inline(shared, &rec, slot, topic, route, h, event.as_deref()) {
                    Some(resume) => resume,
                    None => return,
                }
            }
        };
        self.slow_path(shared, &rec, (slot, gen), topic_idx, event, resume, span);
    }

    /// Whether this offset is new in the partition's assignment; a copy
    /// delivered again (after a seek) is dropped, as its first is handled.
    #[inline]
    fn accept(&mut self, slot: usize, msg: &BorrowedMessage<'_>) -> bool {
        let offset = msg.offset();
        if self.slots[slot].tracker.accept(offset) {
            return true;
        }
        metrics::counter!(m::REFETCHED).increment(1);
        tracing::debug!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset,
            "offset delivered again in the same assignment; the first copy is handled, dropping this one"
        );
        false
    }

    /// No handler for the message's event: dead-lettered or skipped, as
    /// configured, and finished at once.
    #[cold]
    fn unknown_event(
        &mut self,
        shared: &Arc<Shared>,
        slot: usize,
        rec: &Record<'_>,
        topic: &crate::dispatch::routing::TopicRoutes,
        event: Option<Cow<'_, str>>,
    ) {
        let event = topic.event_or(rec, event.as_deref()).map(Cow::into_owned);
        let _span = message_span(rec, topic, event.as_deref(), None).entered();
        shared.before(rec, topic, event.as_deref(), None);
        let deliveries = shared.finish_unknown(rec, topic, event.as_deref());
        self.finished_inline(slot, rec.offset, deliveries);
    }

    /// Its key's lane is busy: the message is detached and waits its turn.
    fn wait_in_lane(
        &mut self,
        lane: LaneId,
        rec: &Record<'_>,
        (slot, gen): (usize, u64),
        topic_idx: usize,
        event: Option<Cow<'_, str>>,
    ) {
        self.slots[slot].tracker.started(rec.offset);
        if self.lanes.is_parked(lane) {
            // Not watched: the parked message is, and says why its key waits.
            self.wait_behind_parked(slot);
        } else {
            self.started_one();
            let key = (slot, gen, rec.offset);
            let s = &self.slots[slot];
            self.watch
                .enter(key, Stage::Lane, &s.topic, s.partition, None);
        }
        let waiting = Waiting {
            msg: rec.detach(),
            topic_idx,
            event: event.map(Cow::into_owned),
            ticket: Ticket {
                slot,
                gen,
                offset: rec.offset,
                lane: Some(lane),
                released: false,
            },
        };
        self.lanes.wait(lane, waiting);
    }

    /// A message for a batch handler: queued in its partition's batcher, in
    /// offset order, outside the key lanes (the batcher keeps the order).
    #[cold]
    fn queue_for_batch(
        &mut self,
        shared: &Arc<Shared>,
        rec: &Record<'_>,
        slot: usize,
        topic_idx: usize,
        route: &crate::dispatch::routing::Route,
    ) {
        let topic = shared.table.topic(topic_idx);
        shared.before(rec, topic, None, Some(route));
        self.slots[slot].tracker.started(rec.offset);
        self.started_one();
        let s = &mut self.slots[slot];
        let ticket = Ticket {
            slot,
            gen: s.shared.gen,
            offset: rec.offset,
            lane: None,
            released: false,
        };
        let h = &route.handlers[0];
        self.watch.enter(
            (slot, ticket.gen, rec.offset),
            Stage::Handler,
            &s.topic,
            s.partition,
            Some(h.name.clone()),
        );
        let spec = route.batch().expect("a batch route");
        let batcher = s.batcher.get_or_insert_with(|| {
            batcher::Batcher::start(shared.clone(), topic_idx, s.partition, spec)
        });
        let fut = batcher.push(shared.clone(), topic_idx, rec.detach());
        self.running.push(Box::pin(fut.map(move |d| (ticket, d))));
    }

    /// Runs a single handler on the loop's own stack: decodes, starts, polls
    /// once. `None` when the message is finished; otherwise how the slow path
    /// resumes it (still running, to retry, replies waiting for a schema, or
    /// not started because a schema is not cached yet).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn run_inline(
        &mut self,
        shared: &Arc<Shared>,
        rec: &Record<'_>,
        slot: usize,
        topic: &crate::dispatch::routing::TopicRoutes,
        route: &crate::dispatch::routing::Route,
        h: &crate::dispatch::handler::HandlerDescriptor,
        event: Option<&str>,
    ) -> Option<Resume> {
        let t0 = shared.timed.then(quanta::Instant::now);
        let Some((started, emits)) = start_decoded(shared, rec, topic, route, h, event) else {
            return Some(Resume::Fresh);
        };
        let timed = |t0: Option<quanta::Instant>| {
            if let Some(t) = t0 {
                route.durations[0].record(t.elapsed());
            }
        };
        match poll_once(started) {
            // The common case: done, nothing to publish, nothing to wait for.
            Inline::Done(Ok(replies)) if replies.is_empty() && emits.is_none() => {
                timed(t0);
                shared.handled(rec, topic, event, 0);
                self.finished_now(slot, rec.offset);
                None
            }
            Inline::Pending(fut) => Some(Resume::Running { fut, emits }),
            Inline::Done(Ok(replies)) if !shared.replies_ready(&replies) => {
                Some(Resume::Finished { replies, emits })
            }
            Inline::Done(Err(f))
                if shared.failed_attempt(rec, topic, event, h, &f, 1)
                    || shared.may_park(topic, &f) =>
            {
                Some(Resume::Retry { failure: f, emits })
            }
            Inline::Done(result) => {
                timed(t0);
                let outcome = MessageOutcome::first(h, result, emits);
                let deliveries = shared.finish(rec, topic, event, outcome);
                self.finished_inline(slot, rec.offset, deliveries);
                None
            }
        }
    }

    /// Hands a message to the slow path: detached, in its lane, handled by a
    /// future the loop polls with the others.
    #[allow(clippy::too_many_arguments)]
    fn slow_path(
        &mut self,
        shared: &Arc<Shared>,
        rec: &Record<'_>,
        (slot, gen): (usize, u64),
        topic_idx: usize,
        event: Option<Cow<'_, str>>,
        resume: Resume,
        span: tracing::Span,
    ) {
        self.slots[slot].tracker.started(rec.offset);
        self.started_one();
        let lane = self.lanes.lane_of(slot, rec.key);
        if let Some(l) = lane {
            self.lanes.occupy(l);
        }
        let ticket = Ticket {
            slot,
            gen,
            offset: rec.offset,
            lane,
            released: false,
        };
        let handler = first_handler(shared, topic_idx, event.as_deref());
        let s = &self.slots[slot];
        self.watch.enter(
            (slot, gen, rec.offset),
            Stage::Handler,
            &s.topic,
            s.partition,
            handler,
        );
        let detached = rec.detach();
        let event = event.map(Cow::into_owned);
        let park = self.park_watch(topic_idx, ticket);
        let fut = handle(shared.clone(), detached, topic_idx, event, resume, park);
        self.running
            .push(Box::pin(fut.instrument(span).map(move |d| (ticket, d))));
    }

    /// A message finished on its first poll with nothing to deliver: the
    /// common case, which builds no [`Unsettled`] to drop.
    #[inline]
    fn finished_now(&mut self, slot: usize, offset: i64) {
        let s = &mut self.slots[slot];
        if s.tracker.finished_now(offset) {
            publish_committable(s);
        }
    }

    /// A message that needs nothing more than its deliveries.
    fn finished_inline(&mut self, slot: usize, offset: i64, deliveries: Unsettled) {
        if deliveries.is_done() {
            return self.finished_now(slot, offset);
        }
        self.slots[slot].tracker.started(offset);
        let held = deliveries.is_held();
        if !held {
            self.started_one();
        }
        let ticket = Ticket {
            slot,
            gen: self.slots[slot].shared.gen,
            offset,
            lane: None,
            released: held,
        };
        self.watch_settling(ticket, held);
        self.settle(ticket, deliveries);
    }

    fn settle(&mut self, ticket: Ticket, deliveries: Unsettled) {
        let shared = self.shared.clone();
        self.settling.push(Box::pin(async move {
            shared.settle(deliveries).await;
            ticket
        }));
    }

    /// A message's handlers are done: free its lane, then wait for its deliveries.
    fn on_handled(&mut self, mut ticket: Ticket, deliveries: Unsettled) {
        if let Some(lane) = ticket.lane {
            self.start_next_in_lane(lane);
        }
        if deliveries.is_held() {
            // Held by an open aggregate: out of the bound now, committed later.
            self.finished_one();
            ticket.released = true;
        }
        if deliveries.is_done() {
            self.on_settled(ticket);
        } else {
            self.watch_settling(ticket, ticket.released);
            self.settle(ticket, deliveries);
        }
    }

    /// The message's outcome is decided; it waits for its records'
    /// acknowledgements, or for its aggregate.
    fn watch_settling(&mut self, ticket: Ticket, held: bool) {
        let stage = if held { Stage::Aggregate } else { Stage::Acks };
        let s = &self.slots[ticket.slot];
        self.watch.enter(
            (ticket.slot, ticket.gen, ticket.offset),
            stage,
            &s.topic,
            s.partition,
            None,
        );
    }

    /// Starts the next waiting message of a lane, skipping those whose
    /// partition was revoked meanwhile (the new owner handles them).
    fn start_next_in_lane(&mut self, lane: LaneId) {
        while let Some(w) = self.lanes.release(lane) {
            let slot = &self.slots[w.ticket.slot];
            if slot.shared.gen != w.ticket.gen || slot.shared.revoked.load(Ordering::Relaxed) {
                self.watch
                    .leave((w.ticket.slot, w.ticket.gen, w.ticket.offset));
                self.finished_one();
                continue;
            }
            let shared = self.shared.clone();
            let rec = Record::owned(&w.msg);
            let topic = shared.table.topic(w.topic_idx);
            let route = topic.route(w.event.as_deref());
            let handler = route
                .and_then(|r| r.handlers.first())
                .map(|h| h.name.clone());
            let (key, s) = ((w.ticket.slot, w.ticket.gen, w.ticket.offset), slot);
            self.watch
                .enter(key, Stage::Handler, &s.topic, s.partition, handler);
            shared.before(&rec, topic, w.event.as_deref(), route);
            let span = message_span(&rec, topic, w.event.as_deref(), route);
            let ticket = w.ticket;
            let park = self.park_watch(w.topic_idx, ticket);
            let fut = handle(shared, w.msg, w.topic_idx, w.event, Resume::Fresh, park);
            self.running
                .push(Box::pin(fut.instrument(span).map(move |d| (ticket, d))));
            return;
        }
    }

    /// Everything the message published is acknowledged: its offset is finished.
    fn on_settled(&mut self, ticket: Ticket) {
        self.watch.leave((ticket.slot, ticket.gen, ticket.offset));
        if !ticket.released {
            self.finished_one();
        }
        let s = &mut self.slots[ticket.slot];
        if s.shared.gen == ticket.gen && s.tracker.finish(ticket.offset) {
            publish_committable(s);
        }
    }

    /// Commits the finished offsets that moved since the last commit (all of
    /// them when `all`).
    fn commit(&mut self, mode: CommitMode, all: bool) {
        let mut tpl = TopicPartitionList::new();
        for s in &mut self.slots {
            if s.shared.revoked.load(Ordering::Relaxed) {
                continue;
            }
            if let Some(c) = s.tracker.committable() {
                if all || s.committed != Some(c) {
                    let _ = tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(c));
                    s.committed = Some(c);
                }
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            metrics::counter!(m::COMMIT_ERRORS).increment(1);
            tracing::warn!(error = %e, "offset commit failed; retried at the next interval");
            for s in &mut self.slots {
                s.committed = None;
            }
        } else {
            tracing::trace!(partitions = tpl.count(), "committed");
        }
    }
}

/// Backpressure (`backpressure` holds the bound's state and the pausing).
impl Loop<'_> {
    #[inline]
    fn may_take(&self) -> bool {
        self.bound.may_take(self.in_flight)
    }

    fn started_one(&mut self) {
        self.in_flight += 1;
        if self.in_flight == self.bound.max_in_flight {
            metrics::counter!(m::BACKPRESSURE_PAUSES).increment(1);
            self.shared.stats.paused();
            tracing::debug!(
                in_flight = self.in_flight,
                "max_in_flight reached; taking no more messages until some finish"
            );
        }
        self.bound_changed();
    }

    fn finished_one(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.bound_changed();
    }

    /// `in_flight` moved: below the bound again, what a stall paused resumes
    /// (but not partitions held back by `max_parked`).
    fn bound_changed(&mut self) {
        if self.bound.changed(self.in_flight) {
            let slots = &self.slots;
            self.bound.resume(self.consumer, |topic, partition| {
                slots
                    .iter()
                    .any(|s| s.paused && s.partition == partition && &*s.topic == topic)
            });
        }
    }

    /// The bound held too long: pause the partitions, poll again.
    fn pause_stalled(&mut self) {
        self.bound.pause(self.consumer, self.in_flight);
    }

    /// A message arrived while the partitions are paused: its partition was
    /// assigned since, and is paused too.
    fn pause_partition_of(&mut self, msg: &BorrowedMessage<'_>) {
        if let Err(e) = backpressure::set_paused(self.consumer, msg.topic(), msg.partition(), true)
        {
            tracing::warn!(error = %e, "cannot pause a newly assigned partition");
        }
    }
}

/// Parking (`parked` holds the watch the dispatch side reports through).
impl Loop<'_> {
    /// The watch for a message of `topic_idx`, if its topic parks.
    fn park_watch(
        &self,
        topic_idx: usize,
        ticket: Ticket,
    ) -> Option<Box<dyn crate::dispatch::park::ParkWatch>> {
        if !self.shared.table.topic(topic_idx).parks {
            return None;
        }
        Some(parked::LaneWatch::boxed(
            self.park_tx.clone(),
            ticket,
            self.slots[ticket.slot].shared.clone(),
        ))
    }

    /// A message parked or unparked: moves it and the messages waiting behind
    /// it out of `max_in_flight` (or back), and pauses or resumes its partition
    /// around `max_parked`.
    fn on_park(&mut self, (ticket, parked): parked::ParkNote) {
        let waiting = match ticket.lane {
            Some(lane) => self.lanes.set_parked(lane, parked),
            None => 0,
        };
        let key = (ticket.slot, ticket.gen, ticket.offset);
        let slot = &mut self.slots[ticket.slot];
        let current = slot.shared.gen == ticket.gen;
        if parked {
            self.in_flight = self.in_flight.saturating_sub(1 + waiting);
            if current {
                slot.parked += waiting;
            }
            let s = &self.slots[ticket.slot];
            self.watch
                .enter(key, Stage::Parked, &s.topic, s.partition, None);
        } else {
            self.in_flight += 1 + waiting;
            if current {
                slot.parked = slot.parked.saturating_sub(waiting);
            }
            let s = &self.slots[ticket.slot];
            self.watch
                .enter(key, Stage::Handler, &s.topic, s.partition, None);
        }
        self.bound_changed();
        self.pause_or_resume(ticket.slot);
    }

    /// A message arrived for a parked key: it waits outside `max_in_flight`.
    fn wait_behind_parked(&mut self, slot: usize) {
        self.slots[slot].parked += 1;
        self.pause_or_resume(slot);
    }

    /// Pauses a partition whose parked backlog reached `max_parked`, and
    /// resumes it once below.
    fn pause_or_resume(&mut self, slot: usize) {
        let max = self.shared.config.retry.max_parked;
        let s = &mut self.slots[slot];
        let over = s.parked >= max;
        if over == s.paused || s.shared.revoked.load(Ordering::Relaxed) {
            return;
        }
        if !over && self.bound.is_paused() {
            // Paused for backpressure too: resumed with the others.
            s.paused = false;
            return;
        }
        match backpressure::set_paused(self.consumer, &s.topic, s.partition, over) {
            Ok(()) => {
                s.paused = over;
                tracing::info!(
                    topic = %s.topic, partition = s.partition, parked = s.parked, max_parked = max,
                    "{}",
                    if over {
                        "max_parked reached: partition paused until a parked key drains"
                    } else {
                        "parked backlog below max_parked: partition resumed"
                    }
                );
            }
            Err(e) => tracing::warn!(
                topic = %s.topic, partition = s.partition, error = %e,
                "could not pause or resume the partition; tried again at its next park change"
            ),
        }
    }
}

/// The name of the handler a message goes to (the first, with fan-out).
fn first_handler(
    shared: &Shared,
    topic_idx: usize,
    event: Option<&str>,
) -> Option<Cow<'static, str>> {
    let route = shared.table.topic(topic_idx).route(event)?;
    route.handlers.first().map(|h| h.name.clone())
}

/// Whether the inbox handles this app's messages (then none takes the
/// fast path: each needs its transaction).
#[inline]
fn inbox_on(_shared: &Shared) -> bool {
    #[cfg(feature = "inbox")]
    return crate::inbox::enabled(_shared);
    #[cfg(not(feature = "inbox"))]
    false
}

/// The slow path's handling of a message: through the inbox when it is on.
fn handle(
    shared: Arc<Shared>,
    msg: rdkafka::message::OwnedMessage,
    topic_idx: usize,
    event: Option<String>,
    resume: Resume,
    park: Option<Box<dyn crate::dispatch::park::ParkWatch>>,
) -> impl Future<Output = Unsettled> + Send + 'static {
    #[cfg(feature = "inbox")]
    {
        use futures::future::Either;
        if crate::inbox::enabled(&shared) {
            return Either::Left(crate::inbox::handle(shared, msg, topic_idx, event, park));
        }
        Either::Right(shared.handle(msg, topic_idx, event, resume, park))
    }
    #[cfg(not(feature = "inbox"))]
    shared.handle(msg, topic_idx, event, resume, park)
}

/// The first attempt of a message on the fast path.
enum Inline {
    Done(Result<Vec<crate::reply::Reply>, Failure>),
    Pending(crate::dispatch::handler::HandlerFuture),
}

/// Decodes the payload (a codec topic decodes from cached schemas only, and
/// lends the value to the handler without boxing it) and starts the handler.
/// `None` when the codec needs a schema it has not cached yet, or the registry
/// is briefly unreachable: the slow path waits for it.
#[inline]
fn start_decoded(
    shared: &Arc<Shared>,
    rec: &Record<'_>,
    topic: &crate::dispatch::routing::TopicRoutes,
    route: &crate::dispatch::routing::Route,
    h: &crate::dispatch::handler::HandlerDescriptor,
    event: Option<&str>,
) -> Option<Started> {
    let start = |decoded: Option<DecodedPayload<'_>>| {
        let mut scope = Scope::new(rec, topic, event, shared);
        scope.decoded = decoded;
        let started = h.start(&mut scope);
        (started, scope.emits.take())
    };
    let Some(c) = &topic.codec else {
        return Some(start(None));
    };
    let mut out = None;
    let mut sink = |v: &(dyn std::any::Any + Send + Sync)| {
        out = Some(start(Some((v, h.value_decoder))));
    };
    match c.decode_with(rec.payload, &route.readers[0], &mut sink) {
        Ok(()) => out,
        Err(e) if e.is_transient() || matches!(e, CodecError::NotReady) => None,
        Err(e) => Some((Err(e.into_failure(FailureKind::Decode)), None)),
    }
}

/// A started handler and the emits its extractors collect.
type Started = (
    Result<crate::dispatch::handler::HandlerFuture, Failure>,
    Option<Arc<crate::dispatch::extract::EmitLog>>,
);

/// Polls a started handler once, with a waker that does nothing: a handler
/// that does not await finishes here, at no scheduling cost.
#[inline]
fn poll_once(started: Result<crate::dispatch::handler::HandlerFuture, Failure>) -> Inline {
    match started {
        Err(f) => Inline::Done(Err(f)),
        Ok(mut fut) => {
            let mut noop = TaskContext::from_waker(Waker::noop());
            match fut.as_mut().poll(&mut noop) {
                Poll::Ready(r) => Inline::Done(r.map_err(Failure::from_handler)),
                Poll::Pending => Inline::Pending(fut),
            }
        }
    }
}

fn publish_committable(s: &mut Slot) {
    if let Some(c) = s.tracker.committable() {
        s.shared.committable.store(c, Ordering::Relaxed);
    }
}

fn consumer_error(reach: &Reach, e: &rdkafka::error::KafkaError) {
    metrics::counter!(m::CONSUMER_ERRORS).increment(1);
    if Reach::is_unreachable(e) {
        reach.lost(&e.to_string());
    } else {
        tracing::warn!(error = %e, "consumer error; carrying on");
    }
}
