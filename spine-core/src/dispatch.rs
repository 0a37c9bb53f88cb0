//! Handling one message, independent of where it came from: route lookup,
//! decode, the handler call, retries with backoff, then replies, dead-letter
//! records and error events handed to the outbound side. The Kafka consumer
//! loop and [`crate::testing::TestApp`] both go through here.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use rdkafka::message::OwnedMessage;

use crate::config::{Config, UnknownEvent};
use crate::error::{Failure, FailureKind};
use crate::extract::{EmitLog, Scope, States};
use crate::handler::{HandlerDescriptor, HandlerFuture};
use crate::metrics as m;
use crate::middleware::{MessageInfo, Middleware, Outcome};
use crate::outbound::{cloud_event_headers, Delivery, Origin, OutRecord, Outbound, SentKind};
use crate::record::Record;
use crate::reply::Reply;
use crate::routing::{DispatchTable, Route, TopicRoutes};

/// Headers a dead-letter record carries besides the original ones.
pub mod dlq_headers {
    /// Source topic.
    pub const TOPIC: &str = "spine.dlq.topic";
    /// Source partition.
    pub const PARTITION: &str = "spine.dlq.partition";
    /// Source offset.
    pub const OFFSET: &str = "spine.dlq.offset";
    /// [`crate::FailureKind`] as text: `decode`, `handler`, `unknown_event`, `encode`.
    pub const ERROR_KIND: &str = "spine.dlq.error.kind";
    /// The error message.
    pub const ERROR_MESSAGE: &str = "spine.dlq.error.message";
    /// Attempts made.
    pub const ATTEMPTS: &str = "spine.dlq.attempts";
    /// The failing handler, when there was one.
    pub const HANDLER: &str = "spine.dlq.handler";
    /// The event name, when there was one.
    pub const EVENT: &str = "spine.dlq.event";
}

/// Counters of what the app did since it started.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    consumed: AtomicU64,
    handled: AtomicU64,
    replied: AtomicU64,
    dead_lettered: AtomicU64,
    skipped: AtomicU64,
    retried: AtomicU64,
    failed_attempts: AtomicU64,
    backpressure_pauses: AtomicU64,
}

/// A snapshot of the app's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages received.
    pub consumed: u64,
    /// Messages whose handlers succeeded.
    pub handled: u64,
    /// Replies produced.
    pub replied: u64,
    /// Messages sent to a dead-letter topic (or dropped, if dead-lettering is off).
    pub dead_lettered: u64,
    /// Messages with no handler, skipped by policy.
    pub skipped: u64,
    /// Retries scheduled.
    pub retried: u64,
    /// Failed attempts, retried or not.
    pub failed_attempts: u64,
    /// Times fetching paused because `max_in_flight` was reached.
    pub backpressure_pauses: u64,
}

impl Stats {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, AtomicOrdering::Relaxed);
    }

    pub(crate) fn consumed(&self) {
        Self::add(&self.consumed, 1);
    }

    pub(crate) fn paused(&self) {
        Self::add(&self.backpressure_pauses, 1);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let l = |c: &AtomicU64| c.load(AtomicOrdering::Relaxed);
        StatsSnapshot {
            consumed: l(&self.consumed),
            handled: l(&self.handled),
            replied: l(&self.replied),
            dead_lettered: l(&self.dead_lettered),
            skipped: l(&self.skipped),
            retried: l(&self.retried),
            failed_attempts: l(&self.failed_attempts),
            backpressure_pauses: l(&self.backpressure_pauses),
        }
    }
}

/// Everything handlers share: configuration, routes, the producer, state.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) table: DispatchTable,
    pub(crate) outbound: Outbound,
    pub(crate) states: States,
    pub(crate) middleware: Vec<Arc<dyn Middleware>>,
    pub(crate) stats: Stats,
    /// Unmatched (topic, event) pairs already warned about.
    pub(crate) unknown_seen: std::sync::Mutex<std::collections::HashSet<(String, Option<String>)>>,
}

/// How the slow path picks up a message the fast path started.
pub(crate) enum Resume {
    /// Nothing ran yet.
    Fresh,
    /// The first attempt is running.
    Running {
        fut: HandlerFuture,
        emits: Option<Arc<EmitLog>>,
    },
    /// The first attempt failed, was counted, and is to be retried.
    Retry { emits: Option<Arc<EmitLog>> },
}

/// A handler's failure that ends the message.
struct HandlerFailure {
    handler: Option<&'static str>,
    failure: Failure,
    attempts: u32,
}

/// What the handlers of one message produced.
#[derive(Default)]
pub(crate) struct MessageOutcome {
    replies: Vec<Reply>,
    failures: Vec<HandlerFailure>,
    emits: Vec<Delivery>,
}

impl MessageOutcome {
    fn add_emits(&mut self, emits: Option<Arc<EmitLog>>) {
        if let Some(e) = emits {
            self.emits.extend(e.take());
        }
    }

    /// Outcome of a single handler's first attempt, finished at once.
    pub(crate) fn first(
        handler: &HandlerDescriptor,
        result: Result<Vec<Reply>, Failure>,
        emits: Option<Arc<EmitLog>>,
    ) -> Self {
        let mut out = MessageOutcome::default();
        out.add_emits(emits);
        match result {
            Ok(replies) => out.replies = replies,
            Err(failure) => out.failures.push(HandlerFailure {
                handler: Some(handler.name),
                failure,
                attempts: 1,
            }),
        }
        out
    }
}

impl Shared {
    fn info<'a>(
        rec: &Record<'a>,
        event: Option<&'a str>,
        handler: Option<&'static str>,
    ) -> MessageInfo<'a> {
        MessageInfo {
            topic: rec.topic,
            partition: rec.partition,
            offset: rec.offset,
            key: rec.key,
            event,
            handler,
        }
    }

    /// Calls the `before` hooks. `event` is `None` when routing did not need
    /// it; it is then read here, only if there is a hook to see it.
    pub(crate) fn before(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        route: Option<&Route>,
    ) {
        if self.middleware.is_empty() {
            return;
        }
        let handler = route.and_then(|r| r.handlers.first()).map(|h| h.name);
        let event = topic.event_or(rec, event);
        let info = Self::info(rec, event.as_deref(), handler);
        for mw in &self.middleware {
            mw.before(&info);
        }
    }

    fn after(&self, info: &MessageInfo<'_>, outcome: &Outcome<'_>) {
        for mw in &self.middleware {
            mw.after(info, outcome);
        }
    }

    /// Counts and logs a failed attempt; returns whether to retry it.
    pub(crate) fn failed_attempt(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        handler: &HandlerDescriptor,
        failure: &Failure,
        attempt: u32,
    ) -> bool {
        Stats::add(&self.stats.failed_attempts, 1);
        metrics::counter!(m::FAILED, "topic" => topic.topic.to_string(), "kind" => failure.kind.as_str())
            .increment(1);
        let retry = failure.retryable() && attempt < self.config.retry.attempts;
        if retry {
            let delay = self.config.retry.delay(attempt);
            Stats::add(&self.stats.retried, 1);
            topic.metrics.retried.increment(1);
            tracing::warn!(
                handler = handler.name, attempt, error = %failure.message,
                delay_ms = delay.as_millis() as u64, "handler failed; retrying"
            );
            if !self.middleware.is_empty() {
                let info = Self::info(rec, event, Some(handler.name));
                self.after(
                    &info,
                    &Outcome::Retrying {
                        attempt,
                        error: &failure.message,
                        delay,
                    },
                );
            }
        }
        retry
    }

    /// Slow path: runs every handler of the message's route to the end, with
    /// retries, then hands replies and dead-letter records to the producer.
    pub(crate) async fn handle(
        self: Arc<Self>,
        msg: OwnedMessage,
        topic_idx: usize,
        event: Option<String>,
        resume: Resume,
    ) -> Vec<Delivery> {
        let rec = Record::owned(&msg);
        let topic = self.table.topic(topic_idx);
        // Off the hot path: read the event name even if routing did not need it,
        // for logs, dead letters and middleware.
        let event = match event {
            Some(e) => Some(Cow::Owned(e)),
            None => topic.event_name(&rec),
        };
        let event = event.as_deref();
        let Some(route) = topic.route(event) else {
            return self.finish_unknown(&rec, topic, event);
        };
        let mut out = MessageOutcome::default();
        let mut resume = Some(resume);
        for (i, h) in route.handlers.iter().enumerate() {
            let mut attempt = 1;
            let mut first = if i == 0 { resume.take() } else { None };
            loop {
                let (result, emits) = match first.take() {
                    Some(Resume::Running { fut, emits }) => {
                        (fut.await.map_err(Failure::from_handler), emits)
                    }
                    Some(Resume::Retry { emits }) => {
                        // Attempt 1 failed on the fast path, which counted it.
                        out.add_emits(emits);
                        tokio::time::sleep(self.config.retry.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    Some(Resume::Fresh) | None => {
                        let mut scope = Scope::new(&rec, topic, event, &self);
                        let started = h.handler.start(&mut scope);
                        let emits = scope.emits.take();
                        drop(scope);
                        match started {
                            Ok(fut) => (fut.await.map_err(Failure::from_handler), emits),
                            Err(f) => (Err(f), emits),
                        }
                    }
                };
                out.add_emits(emits);
                match result {
                    Ok(replies) => {
                        out.replies.extend(replies);
                        break;
                    }
                    Err(failure) => {
                        if self.failed_attempt(&rec, topic, event, h, &failure, attempt) {
                            tokio::time::sleep(self.config.retry.delay(attempt)).await;
                            attempt += 1;
                            continue;
                        }
                        out.failures.push(HandlerFailure {
                            handler: Some(h.name),
                            failure,
                            attempts: attempt,
                        });
                        break;
                    }
                }
            }
        }
        self.finish(&rec, topic, event, out)
    }

    /// Counts a message whose handlers all succeeded. Called directly by the
    /// consumer's fast path for a handler that finished with nothing to publish.
    pub(crate) fn handled(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        replies: usize,
    ) {
        Stats::add(&self.stats.handled, 1);
        topic.metrics.handled.increment(1);
        if !self.middleware.is_empty() {
            let event = topic.event_or(rec, event);
            self.after(
                &Self::info(rec, event.as_deref(), None),
                &Outcome::Handled { replies },
            );
        }
    }

    /// Whether this (topic, event) is seen unmatched for the first time, so
    /// that a stream of unknown events warns once, not per message. Remembers
    /// at most 1,024 pairs.
    fn first_sighting(&self, topic: &str, event: Option<&str>) -> bool {
        let mut seen = self.unknown_seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (topic.to_owned(), event.map(str::to_owned));
        if seen.contains(&key) || seen.len() >= 1024 {
            return false;
        }
        seen.insert(key);
        true
    }

    /// A message no handler matched: skip it or dead-letter it, by policy.
    pub(crate) fn finish_unknown(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
    ) -> Vec<Delivery> {
        topic.metrics.unknown_event.increment(1);
        match topic.unknown {
            UnknownEvent::Skip => {
                Stats::add(&self.stats.skipped, 1);
                if self.first_sighting(rec.topic, event) {
                    tracing::warn!(
                        topic = rec.topic,
                        event,
                        "no handler for this event; skipping such messages (logged once per event, \
                         counted in spine_messages_unknown_event_total)"
                    );
                }
                tracing::debug!(
                    topic = rec.topic,
                    partition = rec.partition,
                    offset = rec.offset,
                    event,
                    "no handler for this event; skipped"
                );
                if !self.middleware.is_empty() {
                    self.after(&Self::info(rec, event, None), &Outcome::Skipped);
                }
                Vec::new()
            }
            UnknownEvent::DeadLetter => {
                let message = match event {
                    Some(e) => format!("no handler for event `{e}` on topic `{}`", rec.topic),
                    None => format!(
                        "the message has no event name ({} on topic `{}`) and no handler takes every event",
                        topic.source, rec.topic
                    ),
                };
                let out = MessageOutcome {
                    failures: vec![HandlerFailure {
                        handler: None,
                        failure: Failure::new(FailureKind::UnknownEvent, message),
                        attempts: 1,
                    }],
                    ..MessageOutcome::default()
                };
                self.finish(rec, topic, event, out)
            }
        }
    }

    /// Ends a message: produces its replies, or its dead-letter record and
    /// error event. Returns the deliveries to await before committing.
    pub(crate) fn finish(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        mut out: MessageOutcome,
    ) -> Vec<Delivery> {
        let mut deliveries = std::mem::take(&mut out.emits);
        let n_replies = out.replies.len();
        if n_replies > 0 {
            let origin = Origin::of(rec);
            for reply in out.replies.drain(..) {
                match encode_reply(&self.config.app.name, &origin, reply) {
                    Ok(rec) => deliveries.push(self.outbound.enqueue(rec)),
                    Err(failure) => out.failures.push(HandlerFailure {
                        handler: None,
                        failure,
                        attempts: 1,
                    }),
                }
            }
            Stats::add(&self.stats.replied, n_replies as u64);
            topic.metrics.produced.increment(n_replies as u64);
        }
        if out.failures.is_empty() {
            self.handled(rec, topic, event, n_replies);
            return deliveries;
        }
        Stats::add(&self.stats.dead_lettered, 1);
        // Routing may not have needed the event name; the dead letter does.
        let event = topic.event_or(rec, event);
        let event = event.as_deref();
        for f in &out.failures {
            metrics::counter!(
                m::DEAD_LETTERED,
                "topic" => topic.topic.to_string(),
                "kind" => f.failure.kind.as_str()
            )
            .increment(1);
            tracing::error!(
                topic = rec.topic,
                partition = rec.partition,
                offset = rec.offset,
                event,
                handler = f.handler,
                kind = f.failure.kind.as_str(),
                attempts = f.attempts,
                error = %f.failure.message,
                dead_letter_topic = %topic.dead_letter_topic,
                "message failed"
            );
            if self.config.dead_letter.enabled {
                deliveries.push(self.outbound.enqueue(dead_letter_record(
                    rec,
                    &topic.dead_letter_topic,
                    event,
                    f,
                )));
            }
            if self.config.error_events.enabled {
                let rec = error_event(&self.config.app.name, rec, &topic.error_topic, event, f);
                deliveries.push(self.outbound.enqueue(rec));
            }
            if !self.middleware.is_empty() {
                self.after(
                    &Self::info(rec, event, f.handler),
                    &Outcome::DeadLettered {
                        kind: f.failure.kind,
                        error: &f.failure.message,
                        attempts: f.attempts,
                    },
                );
            }
        }
        deliveries
    }
}

fn encode_reply(source: &str, origin: &Origin, reply: Reply) -> Result<OutRecord, Failure> {
    let payload = reply.body.to_json().map_err(|e| {
        Failure::new(
            FailureKind::Encode,
            format!("cannot encode reply `{}` as JSON: {e}", reply.event),
        )
    })?;
    let mut headers = cloud_event_headers(source, &reply.event, Some(origin));
    headers.extend(reply.headers);
    Ok(OutRecord {
        kind: SentKind::Reply,
        topic: reply.topic,
        key: reply.key.or_else(|| origin.key.clone()),
        payload: Some(payload),
        headers,
    })
}

fn dead_letter_record(
    rec: &Record<'_>,
    dlq_topic: &str,
    event: Option<&str>,
    f: &HandlerFailure,
) -> OutRecord {
    let mut headers = rec.headers_vec();
    let mut add =
        |k: &str, v: Cow<'_, str>| headers.push((k.to_owned(), v.into_owned().into_bytes()));
    add(dlq_headers::TOPIC, rec.topic.into());
    add(dlq_headers::PARTITION, rec.partition.to_string().into());
    add(dlq_headers::OFFSET, rec.offset.to_string().into());
    add(dlq_headers::ERROR_KIND, f.failure.kind.as_str().into());
    add(
        dlq_headers::ERROR_MESSAGE,
        f.failure.message.as_str().into(),
    );
    add(dlq_headers::ATTEMPTS, f.attempts.to_string().into());
    if let Some(h) = f.handler {
        add(dlq_headers::HANDLER, h.into());
    }
    if let Some(e) = event {
        add(dlq_headers::EVENT, e.into());
    }
    OutRecord {
        kind: SentKind::DeadLetter,
        topic: dlq_topic.to_owned(),
        key: rec.key.map(<[u8]>::to_vec),
        payload: rec.payload.map(<[u8]>::to_vec),
        headers,
    }
}

/// The KaufmannEx-style `event.error.<event>` event.
fn error_event(
    source: &str,
    rec: &Record<'_>,
    topic: &str,
    event: Option<&str>,
    f: &HandlerFailure,
) -> OutRecord {
    let original = rec.payload.map(|p| {
        serde_json::from_slice::<serde_json::Value>(p)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(p).into_owned()))
    });
    let body = serde_json::json!({
        "error": f.failure.message,
        "kind": f.failure.kind.as_str(),
        "handler": f.handler,
        "event": event,
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "attempts": f.attempts,
        "payload": original,
    });
    let origin = Origin::of(rec);
    let name = format!("event.error.{}", event.unwrap_or("unknown"));
    OutRecord {
        kind: SentKind::ErrorEvent,
        topic: topic.to_owned(),
        key: origin.key.clone(),
        payload: Some(body.to_string().into_bytes()),
        headers: cloud_event_headers(source, &name, Some(&origin)),
    }
}

/// The span a message is handled in: topic, partition, offset, event, handler.
/// When no subscriber wants it, this costs a level check and nothing is read.
pub(crate) fn message_span(
    rec: &Record<'_>,
    topic: &TopicRoutes,
    event: Option<&str>,
    route: Option<&Route>,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: "spine::message",
        "message",
        topic = rec.topic,
        partition = rec.partition,
        offset = rec.offset,
        event = tracing::field::Empty,
        handler = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    span.record("event", topic.event_or(rec, event).as_deref());
    if let Some(route) = route {
        match route.single() {
            Some(h) => span.record("handler", h.name),
            None => span.record("handler", route.names().as_str()),
        };
    }
    span
}
