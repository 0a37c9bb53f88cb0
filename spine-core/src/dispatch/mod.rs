//! Handling one message, independent of where it came from: route lookup,
//! decode, the handler call, retries with backoff, then replies, dead-letter
//! records and error events handed to the outbound side. The Kafka consumer
//! loop and [`crate::testing::TestApp`] both go through here.
//!
//! The dispatch core shares the runtime state ([`Shared`]) by nature, so its
//! modules import each other; that cycle stays inside this directory
//! (`scripts/modgraph --allow dispatch` checks it):
//! - `routing`: the dispatch table, built from the handler descriptors;
//! - `handler`: the `Handler` trait, its tuple impls and the descriptor;
//! - `batch`: batch handlers' typing, and running one batch;
//! - `extract`: the extractors (`Meta`, `Context`, `State`, `Raw`) and `Scope`;
//! - `pipeline`: what `#[pipeline]` expands to at run time;
//! - `request`: request-reply over Kafka (the reply listener, `Context::request`);
//! - `unwind`: panics in user code, turned into their message's failure;
//! - `park`: the slow retries of a message whose key is parked;
//! - `direct`: a message whose sender waits for its outcome (HTTP).

pub(crate) mod batch;
mod dead_letter;
#[cfg(feature = "http")]
pub(crate) mod direct;
pub(crate) mod extract;
pub(crate) mod handler;
mod outcome;
pub(crate) mod park;
pub(crate) mod pipeline;
pub mod request;
pub(crate) mod routing;
mod stats;
pub(crate) mod unwind;

use dead_letter::{dead_letter_record, error_event};
use outcome::{HandlerFailure, Source};
pub(crate) use outcome::{MessageOutcome, Resume, Unsettled};
pub(crate) use stats::Stats;
pub use stats::StatsSnapshot;

use std::borrow::Cow;
use std::sync::Arc;

use rdkafka::message::OwnedMessage;

use crate::codec::{CodecError, Decoded};
use crate::config::{Config, UnknownEvent};
use crate::dispatch::extract::{Scope, States};
use crate::dispatch::handler::HandlerDescriptor;
use crate::dispatch::routing::{DispatchTable, Route, TopicRoutes};
use crate::error::{Failure, FailureKind, HandlerError};
use crate::metrics as m;
use crate::middleware::{MessageInfo, Middleware, Outcome};
use crate::outbound::{cloud_event_headers, Delivery, Origin, OutRecord, Outbound, SentKind};
use crate::record::Record;
use crate::reply::Reply;

/// Everything handlers share: configuration, routes, the producer, state.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) table: DispatchTable,
    pub(crate) outbound: Outbound,
    pub(crate) states: States,
    pub(crate) middleware: Vec<Arc<dyn Middleware>>,
    pub(crate) stats: Stats,
    /// Unmatched (topic, event) pairs already warned about.
    pub(crate) unknown_seen:
        parking_lot::Mutex<std::collections::HashSet<(String, Option<String>)>>,
    /// Codecs of topics the app publishes to that are not JSON.
    pub(crate) output_codecs:
        std::collections::HashMap<String, Arc<dyn crate::codec::PayloadCodec>>,
    /// Requests this app sends and the listener for their responses.
    pub(crate) requests: crate::dispatch::request::Requests,
    /// What the app knows about itself, for the operations surface.
    pub(crate) status: Arc<crate::status::Status>,
    /// Whether handler durations are measured (`[http]` is on).
    pub(crate) timed: bool,
    /// Settings a reloaded `[app] config_source` row changes while running.
    pub(crate) live: Arc<crate::config::live::Live>,
    /// The inbox's database, opened when the app starts (`[inbox] url`).
    #[cfg(feature = "inbox")]
    pub(crate) outbox: tokio::sync::OnceCell<Arc<crate::outbound::outbox::Outbox>>,
}

impl Shared {
    fn info<'a>(
        rec: &Record<'a>,
        event: Option<&'a str>,
        handler: Option<&'a str>,
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
    #[inline]
    pub(crate) fn before(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        route: Option<&Route>,
    ) {
        if !self.middleware.is_empty() {
            self.call_before(rec, topic, event, route);
        }
    }

    /// [`Self::before`] with hooks to call: out of line, so that an app
    /// without middleware pays one comparison per message.
    #[cold]
    #[inline(never)]
    fn call_before(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        route: Option<&Route>,
    ) {
        let handler = route.and_then(|r| r.handlers.first()).map(|h| &*h.name);
        let event = topic.event_or(rec, event);
        let info = Self::info(rec, event.as_deref(), handler);
        for mw in &self.middleware {
            if let Err(e) = unwind::call(|| mw.before(&info)) {
                middleware_panicked(&info, "before", &e);
            }
        }
    }

    fn after(&self, info: &MessageInfo<'_>, outcome: &Outcome<'_>) {
        for mw in &self.middleware {
            if let Err(e) = unwind::call(|| mw.after(info, outcome)) {
                middleware_panicked(info, "after", &e);
            }
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
        self.stats.failed_attempt();
        metrics::counter!(m::FAILED, "topic" => topic.topic.to_string(), "kind" => failure.kind.as_str(), "transport" => "kafka")
            .increment(1);
        if failure.kind == FailureKind::Panic {
            let handler = handler.name.to_string();
            metrics::counter!(m::PANICS, "topic" => topic.topic.to_string(), "handler" => handler)
                .increment(1);
        }
        let retry = self.retries_left(failure, attempt);
        if retry {
            let delay = self.config.retry.delay(attempt);
            self.stats.retried();
            metrics::counter!(m::RETRIED, "topic" => topic.topic.to_string(), "kind" => failure.kind.as_str())
                .increment(1);
            tracing::warn!(
                handler = &*handler.name, attempt, error = %failure.message,
                delay_ms = delay.as_millis() as u64, "handler failed; retrying"
            );
            if !self.middleware.is_empty() {
                let info = Self::info(rec, event, Some(&handler.name));
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

    /// Whether a failed attempt gets another one under `[retry] attempts`.
    fn retries_left(&self, failure: &Failure, attempt: u32) -> bool {
        failure.retryable(self.config.retry.retry_panics) && attempt < self.config.retry.attempts
    }

    /// Whether a failure whose retries are exhausted would park its key.
    pub(crate) fn may_park(&self, topic: &TopicRoutes, failure: &Failure) -> bool {
        topic.parks && failure.retryable(self.config.retry.retry_panics)
    }

    /// Slow path: runs every handler of the message's route to the end, with
    /// retries, then hands replies and dead-letter records to the producer.
    /// With `park` (the topic parks exhausted messages), a message whose
    /// retries are exhausted parks its key instead of failing.
    pub(crate) async fn handle(
        self: Arc<Self>,
        msg: OwnedMessage,
        topic_idx: usize,
        event: Option<String>,
        resume: Resume,
        park: Option<Box<dyn park::ParkWatch>>,
    ) -> Unsettled {
        let rec = Record::owned(&msg);
        let topic = self.table.topic(topic_idx);
        if let Resume::Finished { replies, emits } = resume {
            let mut out = MessageOutcome::default();
            out.add_emits(emits);
            out.replies = replies;
            let event = topic.event_or(&rec, event.as_deref());
            return self
                .finish_prepared(&rec, topic, event.as_deref(), out)
                .await;
        }
        // A codec topic: fetch the writer schema first. A registry that is
        // down holds the message here (and, through max_in_flight, the
        // fetching) until it answers; a definite answer goes on as usual.
        let prepared = match &topic.codec {
            Some(codec) => {
                self.wait_for_codec(rec.topic, || codec.prepare(rec.payload))
                    .await
            }
            None => Ok(()),
        };
        // Off the hot path: read the event name even if routing did not need it,
        // for logs, dead letters and middleware.
        let event = match event {
            Some(e) => Some(Cow::Owned(e)),
            None => topic.event_name(&rec),
        };
        let event = event.as_deref();
        let Some(route) = topic.route(event) else {
            return match prepared {
                // The payload is not even readable: that, not the missing
                // handler, is what the dead letter should say.
                Err(e) => {
                    let out = MessageOutcome::failed(None, e.into_failure(FailureKind::Decode));
                    self.finish(&rec, topic, event, out)
                }
                Ok(()) => self.finish_unknown(&rec, topic, event),
            };
        };
        if route.batch().is_some() {
            // One message outside the consumer's batcher (a test, a replay):
            // a batch of one.
            let mut one = batch::run(&self, topic_idx, &[&msg]).await;
            return one.pop().expect("one outcome per message");
        }
        let mut out = MessageOutcome::default();
        let mut resume = Some(resume);
        let mut parking = park.map(|w| park::Parking::new(w, &topic.topic));
        // One decoded payload per reader schema, shared by fan-out handlers.
        let mut decoded: Vec<(usize, Box<dyn Decoded>)> = Vec::new();
        for (i, h) in route.handlers.iter().enumerate() {
            let started = self.timed.then(quanta::Instant::now);
            let mut attempt = 1;
            let mut first = if i == 0 { resume.take() } else { None };
            if let Some(codec) = &topic.codec {
                let reader = &route.readers[i];
                let key = Arc::as_ptr(reader) as *const () as usize;
                if !decoded.iter().any(|(k, _)| *k == key) {
                    let result = match &prepared {
                        Ok(()) => codec.decode(rec.payload, reader),
                        Err(e) => Err(e.clone()),
                    };
                    match result {
                        Ok(d) => decoded.push((key, d)),
                        Err(e) => {
                            let failure = e.into_failure(FailureKind::Decode);
                            self.failed_attempt(&rec, topic, event, h, &failure, 1);
                            out.failures.push(HandlerFailure {
                                handler: Some(h.name.clone()),
                                failure,
                                attempts: 1,
                            });
                            continue;
                        }
                    }
                }
            }
            let payload = decoded
                .iter()
                .find(|(k, _)| {
                    route
                        .readers
                        .get(i)
                        .map(|r| Arc::as_ptr(r) as *const () as usize)
                        == Some(*k)
                })
                .map(|(_, d)| &**d);
            loop {
                // Whether the failure was already counted (on the fast path).
                let mut counted = false;
                let (result, emits) = match first.take() {
                    Some(Resume::Running { fut, emits }) => {
                        (fut.await.map_err(Failure::from_handler), emits)
                    }
                    Some(Resume::Retry { failure, emits }) => {
                        counted = true;
                        (Err(failure), emits)
                    }
                    Some(Resume::Finished { .. }) => unreachable!("handled above"),
                    Some(Resume::Fresh) | None => {
                        #[cfg(feature = "inbox")]
                        crate::outbound::outbox::attempt_starts();
                        let mut scope = Scope::new(&rec, topic, event, &self);
                        scope.decoded = payload.map(|d| (d.value(), h.value_decoder));
                        let started = h.start(&mut scope);
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
                        if let Some(p) = &mut parking {
                            p.succeeded(&self.stats);
                        }
                        out.replies.extend(replies);
                        if let Some(t) = started {
                            route.durations[i].record(t.elapsed());
                        }
                        break;
                    }
                    Err(failure) => {
                        let retry = if counted {
                            self.retries_left(&failure, attempt)
                        } else {
                            self.failed_attempt(&rec, topic, event, h, &failure, attempt)
                        };
                        if retry {
                            tokio::time::sleep(self.config.retry.delay(attempt)).await;
                            attempt += 1;
                            continue;
                        }
                        if let Some(p) = &mut parking {
                            match p.next(&failure, &self.config.retry, &h.name, &self.stats) {
                                park::Next::RetryAfter(delay) => {
                                    tokio::time::sleep(delay).await;
                                    attempt += 1;
                                    continue;
                                }
                                // Its partition's new owner handles it; this
                                // owner commits nothing more there.
                                park::Next::Abandon => return Unsettled::done(),
                                park::Next::GiveUp => {}
                            }
                        }
                        out.failures.push(HandlerFailure {
                            handler: Some(h.name.clone()),
                            failure,
                            attempts: attempt,
                        });
                        if let Some(t) = started {
                            route.durations[i].record(t.elapsed());
                        }
                        break;
                    }
                }
            }
        }
        self.finish_prepared(&rec, topic, event, out).await
    }

    /// Retries `attempt` while the codec's source (the registry) is down.
    /// Returns its definite answer.
    pub(crate) async fn wait_for_codec<'a, F, Fut>(
        &self,
        topic: &str,
        mut attempt: F,
    ) -> Result<(), CodecError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), CodecError>> + 'a,
    {
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(
                    e @ CodecError::Failed {
                        transient: false, ..
                    },
                ) => return Err(e),
                Err(e) => {
                    metrics::counter!(m::CODEC_WAITS, "topic" => topic.to_owned()).increment(1);
                    self.stats.codec_waited();
                    tracing::warn!(
                        topic,
                        error = ?e,
                        retry_in_ms = delay.as_millis() as u64,
                        "codec not ready (schema registry unreachable?); holding the message"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }

    /// Whether every reply can be encoded from cached state.
    pub(crate) fn replies_ready(&self, replies: &[Reply]) -> bool {
        replies
            .iter()
            .all(|r| match self.output_codecs.get(&r.topic) {
                None => true,
                Some(c) => c.encoder_ready(&r.topic, r.schema.as_deref()),
            })
    }

    /// Fetches what encoding the replies needs, then ends the message.
    async fn finish_prepared(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        mut out: MessageOutcome,
    ) -> Unsettled {
        let needed: Vec<(String, Option<String>)> = out
            .replies
            .iter()
            .filter(|r| self.output_codecs.contains_key(&r.topic))
            .map(|r| (r.topic.clone(), r.schema.clone()))
            .collect();
        let mut refused: Vec<((String, Option<String>), CodecError)> = Vec::new();
        for (t, schema) in needed {
            if let Some(codec) = self.output_codecs.get(&t) {
                if let Err(e) = self
                    .wait_for_codec(&t, || codec.prepare_encode(&t, schema.as_deref()))
                    .await
                {
                    refused.push(((t, schema), e));
                }
            }
        }
        // A reply the codec refused for good becomes the message's failure,
        // with the codec's reason (schema not registered, ...).
        if !refused.is_empty() {
            let replies = std::mem::take(&mut out.replies);
            for r in replies {
                match refused
                    .iter()
                    .find(|((t, s), _)| *t == r.topic && *s == r.schema)
                {
                    Some((_, e)) => out.failures.push(HandlerFailure {
                        handler: None,
                        failure: e.clone().into_failure(FailureKind::Encode),
                        attempts: 1,
                    }),
                    None => out.replies.push(r),
                }
            }
        }
        self.finish(rec, topic, event, out)
    }

    /// Counts a message whose handlers all succeeded, and whose replies the
    /// broker acknowledged. Called directly by the consumer's fast path for a
    /// handler that finished with nothing to publish.
    #[inline]
    pub(crate) fn handled(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        replies: usize,
    ) {
        self.stats.handled();
        topic.metrics.handled(replies as u64);
        if replies > 0 {
            self.stats.replied(replies as u64);
        }
        if !self.middleware.is_empty() {
            self.after_handled(rec, topic, event, replies);
        }
    }

    /// The `after` hooks of a handled message (out of line, as
    /// [`Self::call_before`]).
    #[cold]
    #[inline(never)]
    fn after_handled(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        replies: usize,
    ) {
        let event = topic.event_or(rec, event);
        self.after(
            &Self::info(rec, event.as_deref(), None),
            &Outcome::Handled { replies },
        );
    }

    /// Whether this (topic, event) is seen unmatched for the first time, so
    /// that a stream of unknown events warns once, not per message. Remembers
    /// at most 1,024 pairs.
    fn first_sighting(&self, topic: &str, event: Option<&str>) -> bool {
        let mut seen = self.unknown_seen.lock();
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
    ) -> Unsettled {
        topic.metrics.unknown_event();
        match topic.unknown {
            UnknownEvent::Skip => {
                self.stats.skipped();
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
                Unsettled::done()
            }
            UnknownEvent::DeadLetter => {
                let message = match event {
                    Some(e) => format!("no handler for event `{e}` on topic `{}`", rec.topic),
                    None => format!(
                        "the message has no event name ({} on topic `{}`) and no handler takes every event",
                        topic.source, rec.topic
                    ),
                };
                let failure = Failure::new(FailureKind::UnknownEvent, message);
                self.finish(rec, topic, event, MessageOutcome::failed(None, failure))
            }
        }
    }

    /// Ends a message: produces its replies, or its dead-letter record and
    /// error event. Returns what to await before committing; a message whose
    /// replies are not acknowledged yet is counted handled by [`Shared::settle`].
    pub(crate) fn finish(
        &self,
        rec: &Record<'_>,
        topic: &TopicRoutes,
        event: Option<&str>,
        mut out: MessageOutcome,
    ) -> Unsettled {
        let mut deliveries = std::mem::take(&mut out.emits);
        let n_replies = out.replies.len();
        if n_replies > 0 {
            let origin = Origin::of(rec);
            for reply in out.replies.drain(..) {
                match self.encode_reply(&origin, reply) {
                    Ok(rec) => deliveries.push(self.outbound.enqueue(rec)),
                    Err(failure) => out.failures.push(HandlerFailure {
                        handler: None,
                        failure,
                        attempts: 1,
                    }),
                }
            }
        }
        if out.failures.is_empty() {
            if !deliveries.iter().any(Delivery::is_record) {
                self.handled(rec, topic, event, n_replies);
                return Unsettled::records(deliveries);
            }
            // Counted once the broker acknowledged them; kept to be
            // dead-lettered if one of them is refused for good. The event
            // name is read from the copy only if it is needed then.
            return Unsettled {
                deliveries,
                source: Some(Box::new(Source {
                    msg: rec.detach(),
                    event: event.map(str::to_owned),
                    replies: Some(n_replies),
                })),
            };
        }
        self.stats.dead_lettered();
        topic.metrics.failed();
        // Routing may not have needed the event name; the dead letter does.
        let event = topic.event_or(rec, event);
        let event = event.as_deref();
        for f in &out.failures {
            #[cfg(feature = "inbox")]
            crate::outbound::outbox::message_failed(
                &f.failure.message,
                f.failure.retryable(self.config.retry.retry_panics),
            );
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
                handler = f.handler.as_deref(),
                kind = f.failure.kind.as_str(),
                attempts = f.attempts,
                error = %f.failure.message,
                dead_letter_topic = %topic.dead_letter_topic,
                "message failed"
            );
            self.status.failed(crate::status::FailureRecord {
                at: std::time::SystemTime::now(),
                topic: rec.topic.to_owned(),
                partition: rec.partition,
                offset: rec.offset,
                handler: f.handler.as_deref().map(str::to_owned),
                kind: f.failure.kind.as_str(),
                error: f.failure.message.to_string(),
            });
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
                    &Self::info(rec, event, f.handler.as_deref()),
                    &Outcome::DeadLettered {
                        kind: f.failure.kind,
                        error: &f.failure.message,
                        attempts: f.attempts,
                    },
                );
            }
        }
        Unsettled::records(deliveries)
    }
}

impl Shared {
    /// Waits for a decided message's records. A message whose records were
    /// all acknowledged counts as handled now (if it succeeded). A record
    /// refused for good fails the message with kind `publish`: it goes to the
    /// dead-letter topic, whose record is retried until it is taken.
    pub(crate) async fn settle(&self, unsettled: Unsettled) {
        let settled = self.outbound.settle(unsettled.deliveries).await;
        self.stats.publish_retried(settled.retries);
        let Some(source) = unsettled.source else {
            if let Some(f) = settled.refused {
                tracing::error!(topic = %f.topic, error = %f.error, "a record was refused for good");
                self.stats.publish_failed();
            }
            return;
        };
        let rec = Record::owned(&source.msg);
        let Some(topic) = self
            .table
            .topic_index(rec.topic)
            .map(|i| self.table.topic(i))
        else {
            return;
        };
        // The event name, if routing did not read it: `handled` and `finish`
        // read it from the record when they need it.
        let event = source.event.as_deref();
        let Some(refused) = settled.refused else {
            if let Some(replies) = source.replies {
                self.handled(&rec, topic, event, replies);
            }
            return;
        };
        self.stats.publish_failed();
        let failure = Failure {
            kind: FailureKind::Publish,
            message: format!(
                "the broker refused {} to `{}` for good: {}",
                refused.kind.describe(),
                refused.topic,
                refused.error
            ),
            fatal: true,
            code: None,
            headers: vec![(
                crate::headers::dead_letter::PUBLISH_TOPIC.to_owned(),
                refused.topic,
            )],
        };
        let dead = self.finish(&rec, topic, event, MessageOutcome::failed(None, failure));
        // Dead letters are never given up, so this ends once they are taken.
        let settled = self.outbound.settle(dead.deliveries).await;
        self.stats.publish_retried(settled.retries);
    }
}

impl Shared {
    /// Encodes a value for `topic` with the topic's codec (JSON by default);
    /// returns the bytes and the content type.
    pub(crate) fn encode_for(
        &self,
        topic: &str,
        what: &str,
        value: &dyn erased_serde::Serialize,
        json: impl FnOnce() -> Result<Vec<u8>, serde_json::Error>,
        schema: Option<&str>,
    ) -> Result<(Vec<u8>, &'static str), Failure> {
        match self.output_codecs.get(topic) {
            None => json().map(|b| (b, "application/json")).map_err(|e| {
                Failure::new(
                    FailureKind::Encode,
                    format!("cannot encode {what} as JSON: {e}"),
                )
            }),
            Some(codec) => match codec.encode(topic, value, schema) {
                Ok(b) => Ok((b, codec.content_type())),
                Err(CodecError::NotReady) => Err(Failure {
                    code: Some("codec.not_ready"),
                    ..Failure::new(
                        FailureKind::Encode,
                        format!(
                            "the `{}` codec of topic `{topic}` has no schema for {what}",
                            codec.name()
                        ),
                    )
                }),
                Err(e) => Err(e.into_failure(FailureKind::Encode)),
            },
        }
    }

    fn encode_reply(&self, origin: &Origin, mut reply: Reply) -> Result<OutRecord, Failure> {
        if reply.respond {
            let Some(to) = &origin.reply_to else {
                return Err(Failure::new(
                    FailureKind::Encode,
                    format!(
                        "respond(\"{}\", ..) answers a request, but this message has no `{}` header; \
                         publish with Reply::to(topic, ..) instead",
                        reply.event,
                        crate::headers::REPLY_TO
                    ),
                ));
            };
            reply.topic = to.clone();
            let id = origin.request_id.as_deref().unwrap_or(&origin.id);
            reply.headers.push((
                crate::headers::REQUEST_ID.to_owned(),
                id.as_bytes().to_vec(),
            ));
        }
        let what = format!("reply `{}`", reply.event);
        let (payload, content_type) = self.encode_for(
            &reply.topic,
            &what,
            reply.body.erased(),
            || reply.body.to_json(),
            reply.schema.as_deref(),
        )?;
        let mut headers = cloud_event_headers(&self.config.app.name, &reply.event, Some(origin));
        crate::headers::set_content_type(&mut headers, content_type);
        headers.extend(reply.headers);
        Ok(OutRecord {
            kind: SentKind::Reply,
            topic: reply.topic,
            key: reply.key.or_else(|| origin.key.clone()),
            payload: Some(payload),
            headers,
        })
    }
}

/// The span a message is handled in: topic, partition, offset, event, handler
/// (level DEBUG, target `spine::message`).
/// When no subscriber wants it, this costs a level check and nothing is read.
pub(crate) fn message_span(
    rec: &Record<'_>,
    topic: &TopicRoutes,
    event: Option<&str>,
    route: Option<&Route>,
) -> tracing::Span {
    // DEBUG, not INFO: under a subscriber at INFO, a span per message costs
    // more than handling a small message (measured: throughput halves).
    let span = tracing::debug_span!(
        target: "spine::message",
        "message",
        topic = rec.topic,
        partition = rec.partition,
        offset = rec.offset,
        event = tracing::field::Empty,
        handler = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        transport = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    #[cfg(feature = "otel")]
    crate::trace::otel::adopt(&span, rec);
    // The trace this message continues, so that log lines can be joined
    // with the other services' (read only when the span is recorded).
    if let Some(p) = rec
        .header_str(crate::trace::TRACEPARENT)
        .and_then(crate::trace::parse)
    {
        span.record("trace_id", p.trace_id);
    }
    span.record("event", topic.event_or(rec, event).as_deref());
    if let Some(route) = route {
        match route.single() {
            Some(h) => span.record("handler", &*h.name),
            None => span.record("handler", route.names().as_str()),
        };
    }
    span
}

/// A middleware hook observes a message; its panic is logged and counted, and
/// the message goes on as if the hook had returned.
#[cold]
fn middleware_panicked(info: &MessageInfo<'_>, hook: &str, error: &HandlerError) {
    metrics::counter!(m::PANICS, "topic" => info.topic.to_owned(), "handler" => "middleware")
        .increment(1);
    tracing::error!(
        topic = info.topic,
        partition = info.partition,
        offset = info.offset,
        hook,
        error = %error,
        "middleware hook panicked; the message goes on"
    );
}
