//! Waiting for what a message published: acknowledgements, re-sends with
//! backoff, and the line between a refusal worth retrying (a full queue, a
//! broker briefly away, a timeout) and one that can never succeed (a record
//! too large, an invalid record or topic, a topic the app may not write to).
//! The second kind fails the message that published the record, instead of
//! holding its offset forever; only a dead letter is retried whatever the
//! refusal, since dropping it would lose the message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::DeliveryFuture;

use super::{OutRecord, Outbound, SentKind, Sink};
use crate::metrics as m;

/// A record handed to the producer, not yet acknowledged.
pub(crate) enum Delivery {
    Done,
    Kafka {
        fut: DeliveryFuture,
        kind: SentKind,
    },
    /// Not taken by the producer yet (its queue was full): sent again.
    Unsent(OutRecord),
    /// Refused by the producer when it was handed over, for a reason no
    /// retry helps (a dead letter is retried all the same).
    Refused(OutRecord, KafkaError),
    /// Not a record: the message's offset is held (by an open aggregate)
    /// until this fires.
    Held(tokio::sync::oneshot::Receiver<()>),
}

impl Delivery {
    pub(crate) fn is_held(&self) -> bool {
        matches!(self, Delivery::Held(_))
    }

    /// Whether this is a record whose fate is not known yet.
    pub(crate) fn is_record(&self) -> bool {
        matches!(
            self,
            Delivery::Kafka { .. } | Delivery::Unsent(_) | Delivery::Refused(..)
        )
    }
}

/// A record that will never be taken, and why.
#[derive(Debug)]
pub(crate) struct PublishFailure {
    pub(crate) topic: String,
    pub(crate) kind: SentKind,
    pub(crate) error: KafkaError,
}

/// How a message's records ended.
#[derive(Debug, Default)]
pub(crate) struct Settlement {
    /// Records sent again after a refusal worth retrying.
    pub(crate) retries: u64,
    /// The first record refused for good, if any: its message fails with it.
    pub(crate) refused: Option<PublishFailure>,
}

/// Whether no retry can get this record in: its size, its form, its topic
/// or the app's rights. An unknown topic counts: librdkafka reports it only
/// after waiting `topic.metadata.propagation.max.ms` (30 s) for the topic to
/// appear, when the broker does not create topics on first use.
pub(crate) fn is_permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidMessage
                | C::InvalidRecord
                | C::InvalidTopic
                | C::UnknownTopic
                | C::UnknownTopicOrPartition
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidRequiredAcks
                | C::UnsupportedForMessageFormat
                | C::PolicyViolation
                | C::InvalidArgument
        )
    )
}

/// Retry warnings, at most one per topic in this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// When each topic's last retry warning was logged.
#[derive(Default)]
pub(crate) struct Warnings(parking_lot::Mutex<HashMap<String, Instant>>);

impl Warnings {
    fn due(&self, topic: &str) -> bool {
        let mut last = self.0.lock();
        let now = Instant::now();
        match last.get(topic) {
            Some(t) if now.duration_since(*t) < WARN_EVERY => false,
            _ => {
                last.insert(topic.to_owned(), now);
                true
            }
        }
    }
}

impl Outbound {
    /// Waits until every delivery is acknowledged, re-sending refused ones
    /// with backoff, as long as a retry can succeed. Returns at the first
    /// record refused for good (a reply, an emitted event, a request): the
    /// caller fails its message. A dead letter is never given up: it holds
    /// its message's offset and is retried, logged at ERROR.
    #[must_use = "a refused record fails its message"]
    pub(crate) async fn settle(&self, deliveries: Vec<Delivery>) -> Settlement {
        let mut out = Settlement::default();
        for d in deliveries {
            let mut delivery = d;
            let mut wait = Duration::from_millis(50);
            loop {
                let (rec, error) = match delivery {
                    Delivery::Done => break,
                    Delivery::Kafka { fut, kind } => match fut.await {
                        Ok(Ok(_)) => break,
                        Ok(Err((e, msg))) => (OutRecord::from_returned(kind, &msg), Some(e)),
                        Err(_canceled) => {
                            // The producer was dropped: only happens at exit. The
                            // offset stays uncommitted and the message is re-delivered.
                            return std::future::pending().await;
                        }
                    },
                    Delivery::Unsent(rec) => (rec, None),
                    Delivery::Refused(rec, e) => (rec, Some(e)),
                    Delivery::Held(rx) => match rx.await {
                        Ok(()) => break,
                        // Released without completing (the app is stopping):
                        // the offset stays uncommitted and is re-delivered.
                        Err(_) => return std::future::pending().await,
                    },
                };
                match &error {
                    Some(e) if is_permanent(e) && rec.kind == SentKind::ErrorEvent => {
                        // The dead letter carries the same story; an error
                        // event that can never be published is not worth a
                        // stuck partition.
                        tracing::error!(topic = %rec.topic, error = %e, "an error event was refused for good; dropped (the dead letter records the failure)");
                        count_refused(&rec.topic, e);
                        break;
                    }
                    Some(e) if is_permanent(e) && rec.kind != SentKind::DeadLetter => {
                        count_refused(&rec.topic, e);
                        out.refused = Some(PublishFailure {
                            topic: rec.topic,
                            kind: rec.kind,
                            error: e.clone(),
                        });
                        return out;
                    }
                    Some(e) if is_permanent(e) => self.dead_letter_refused(&rec.topic, e),
                    Some(e) => {
                        if self.warnings().is_some_and(|w| w.due(&rec.topic)) {
                            tracing::warn!(topic = %rec.topic, error = %e, "publishing failed; retrying with backoff (logged at most every 10 s per topic)");
                        }
                    }
                    None => tracing::debug!(topic = %rec.topic, "producer queue full; retrying"),
                }
                metrics::counter!(m::PRODUCE_ERRORS, "topic" => rec.topic.clone()).increment(1);
                out.retries += 1;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                delivery = self.send(rec);
            }
        }
        out
    }

    fn warnings(&self) -> Option<&Warnings> {
        match &self.sink {
            Sink::Kafka(p) => Some(&p.warnings),
            Sink::Memory(_) => None,
        }
    }

    fn dead_letter_refused(&self, topic: &str, e: &KafkaError) {
        count_refused(topic, e);
        if self.warnings().is_none_or(|w| w.due(topic)) {
            tracing::error!(
                topic,
                error = %e,
                "the dead-letter topic refuses this record; its message's offset is held and the \
                 record retried until the topic takes it (check the topic's size limit, name and \
                 ACLs); logged at most every 10 s per topic"
            );
        }
    }
}

/// Counts a record refused for good.
fn count_refused(topic: &str, e: &KafkaError) {
    metrics::counter!(m::PUBLISH_REFUSED, "topic" => topic.to_owned(), "error" => error_name(e))
        .increment(1);
}

/// The error's code, as a metric label: `MessageSizeTooLarge`.
fn error_name(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => "Other".to_owned(),
    }
}
