//! Everything the app publishes: replies, emitted events, dead-letter records and
//! error events. Owns the CloudEvents headers, the producer (or, under
//! [`crate::testing::TestApp`], an in-memory sink) and delivery tracking: a
//! message's offset is committed only after what it published is acknowledged.
//!
//! `delivery`: waiting for acknowledgements, and which refusals are retried
//! and which fail the message. `hooks`: the user's producer hooks, which see
//! each record before it is handed over. `outbox` (feature `inbox`): what a
//! message publishes, kept with its transaction, and the relay.

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use std::time::{Duration, SystemTime};

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;

mod delivery;
mod hooks;
#[cfg(feature = "inbox")]
pub(crate) mod outbox;

pub(crate) use delivery::Delivery;
pub use hooks::OutgoingResult;
pub(crate) use hooks::{HookList, Hooks};

use crate::config::Config;
use crate::error::Error;
use crate::headers::{
    CE_CAUSATION_ID, CE_CORRELATION_ID, CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TIME, CE_TYPE,
    CONTENT_TYPE,
};
use crate::record::Record;

/// Why something was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SentKind {
    /// Returned by a handler.
    Reply,
    /// Published with [`crate::Context::emit`].
    Emit,
    /// A failed message, copied to its dead-letter topic.
    DeadLetter,
    /// An `event.error.<name>` event.
    ErrorEvent,
    /// Published with [`crate::Publisher`].
    Publish,
    /// A request sent with [`crate::Context::request`].
    Request,
}

impl SentKind {
    /// What the record is, in a sentence: "a reply".
    pub(crate) fn describe(self) -> &'static str {
        match self {
            SentKind::Reply => "a reply",
            SentKind::Emit => "an emitted event",
            SentKind::DeadLetter => "a dead letter",
            SentKind::ErrorEvent => "an error event",
            SentKind::Publish => "a published record",
            SentKind::Request => "a request",
        }
    }
}

/// A record as it was handed to the producer.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Why it was published.
    pub kind: SentKind,
    /// Destination topic.
    pub topic: String,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload bytes.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Sent {
    /// The last value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::headers::last(&self.headers, name)
    }

    /// The event name (`ce_type`).
    pub fn event(&self) -> Option<&str> {
        self.header(CE_TYPE)
    }

    /// Decodes the JSON payload.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.payload.as_deref().unwrap_or(b"null"))
    }

    /// Replaces the payload with `value` as JSON (for a producer hook that
    /// transforms what is published).
    pub fn set_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.payload = Some(serde_json::to_vec(value)?);
        Ok(())
    }

    /// Sets header `name` to `value`, replacing any it had.
    pub fn set_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_owned(), value.into()));
    }
}

/// Identity of the message being handled, carried into what it causes.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) id: String,
    pub(crate) correlation: String,
    pub(crate) key: Option<Vec<u8>>,
    /// Where a response goes, when the message is a request.
    pub(crate) reply_to: Option<String>,
    /// The request's id, when the message is a request.
    pub(crate) request_id: Option<String>,
    /// The W3C trace context what it causes carries.
    pub(crate) trace: Option<crate::trace::TraceContext>,
}

impl Origin {
    pub(crate) fn of(rec: &Record<'_>) -> Origin {
        Origin {
            id: rec.event_id(),
            correlation: rec.correlation_id(),
            key: rec.key.map(<[u8]>::to_vec),
            reply_to: rec.header_str(crate::headers::REPLY_TO).map(str::to_owned),
            request_id: rec
                .header_str(crate::headers::REQUEST_ID)
                .map(str::to_owned),
            trace: crate::trace::continued(rec),
        }
    }
}

/// The `ce_*` headers of a new event named `event`, published by `source`,
/// caused by `origin` if there is one.
pub(crate) fn cloud_event_headers(
    source: &str,
    event: &str,
    origin: Option<&Origin>,
) -> Vec<(String, Vec<u8>)> {
    let id = uuid::Uuid::new_v4().to_string();
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut h = Vec::with_capacity(8);
    h.push((CE_SPECVERSION.to_owned(), b"1.0".to_vec()));
    h.push((CE_ID.to_owned(), id.clone().into_bytes()));
    h.push((CE_SOURCE.to_owned(), source.as_bytes().to_vec()));
    h.push((CE_TYPE.to_owned(), event.as_bytes().to_vec()));
    h.push((CE_TIME.to_owned(), time.into_bytes()));
    h.push((CONTENT_TYPE.to_owned(), b"application/json".to_vec()));
    match origin {
        Some(o) => {
            h.push((
                CE_CORRELATION_ID.to_owned(),
                o.correlation.as_bytes().to_vec(),
            ));
            h.push((CE_CAUSATION_ID.to_owned(), o.id.as_bytes().to_vec()));
            if let Some(t) = &o.trace {
                t.apply(&mut h);
            }
        }
        None => h.push((CE_CORRELATION_ID.to_owned(), id.into_bytes())),
    }
    h
}

/// A record on its way to the producer.
pub(crate) struct OutRecord {
    pub(crate) kind: SentKind,
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    fn from_returned(kind: SentKind, m: &OwnedMessage) -> OutRecord {
        let r = Record::owned(m);
        OutRecord {
            kind,
            topic: r.topic.to_owned(),
            key: r.key.map(<[u8]>::to_vec),
            payload: r.payload.map(<[u8]>::to_vec),
            headers: r.headers_vec(),
        }
    }

    fn from_sent(s: Sent) -> OutRecord {
        OutRecord {
            kind: s.kind,
            topic: s.topic,
            key: s.key,
            payload: s.payload,
            headers: s.headers,
        }
    }

    fn into_sent(self) -> Sent {
        Sent {
            kind: self.kind,
            topic: self.topic,
            key: self.key,
            payload: self.payload,
            headers: self.headers,
        }
    }
}

/// Where published records go, and the hooks they pass first.
#[derive(Clone)]
pub(crate) struct Outbound {
    pub(crate) sink: Sink,
    hooks: Hooks,
}

/// The producer, or (under [`crate::testing::TestApp`] and dry replays) a list.
#[derive(Clone)]
pub(crate) enum Sink {
    Kafka(Arc<LazyProducer>),
    Memory(Arc<Mutex<Vec<Sent>>>),
}

/// A producer created on first use: an app that only consumes never pays for
/// a second librdkafka client (its threads and buffers). Its configuration is
/// validated up front, so creating it later does not fail on a bad setting.
pub(crate) struct LazyProducer {
    config: ClientConfig,
    producer: OnceLock<FutureProducer>,
    warnings: delivery::Warnings,
}

impl LazyProducer {
    fn get(&self) -> Result<&FutureProducer, rdkafka::error::KafkaError> {
        if let Some(p) = self.producer.get() {
            return Ok(p);
        }
        let created = self.config.create()?;
        Ok(self.producer.get_or_init(|| created))
    }
}

/// The `[kafka]` properties a producer (or an admin client) understands, validated.
pub(crate) fn producer_config(config: &Config) -> Result<ClientConfig, Error> {
    let mut cc = ClientConfig::new();
    for (k, v) in &config.kafka {
        if !is_consumer_only(k) {
            cc.set(k, v);
        }
    }
    cc.create_native_config()
        .map_err(|e| kafka_config_error(config, e))?;
    Ok(cc)
}

impl Outbound {
    /// A producer configured from `[kafka]`, validated now, created on first use.
    pub(crate) fn kafka(config: &Config) -> Result<Outbound, Error> {
        Ok(Outbound {
            sink: Sink::Kafka(Arc::new(LazyProducer {
                config: producer_config(config)?,
                producer: OnceLock::new(),
                warnings: Default::default(),
            })),
            hooks: Hooks::default(),
        })
    }

    /// Records kept in `sink` instead of published.
    pub(crate) fn memory(sink: Arc<Mutex<Vec<Sent>>>) -> Outbound {
        Outbound {
            sink: Sink::Memory(sink),
            hooks: Hooks::default(),
        }
    }

    /// The same destination, with the app's producer hooks in front.
    pub(crate) fn with_hooks(self, hooks: Hooks) -> Outbound {
        Outbound { hooks, ..self }
    }

    /// Whether records are kept in memory rather than published.
    pub(crate) fn is_memory(&self) -> bool {
        matches!(self.sink, Sink::Memory(_))
    }

    /// Runs the producer hooks over a record, then hands it to the producer.
    /// Never blocks: a full producer queue is retried when the delivery is
    /// settled. A record a hook dropped is done.
    pub(crate) fn enqueue(&self, rec: OutRecord) -> Delivery {
        let rec = if self.hooks.is_empty() {
            rec
        } else {
            match self.hooks.apply(rec) {
                Some(rec) => rec,
                None => return Delivery::Done,
            }
        };
        // Under the inbox, kept with the message's transaction; the relay
        // publishes it once that commits.
        #[cfg(feature = "inbox")]
        let rec = match outbox::divert(rec) {
            Ok(()) => return Delivery::Done,
            Err(rec) => rec,
        };
        self.send(rec)
    }

    /// Hands a record to the producer as it is (a re-send skips the hooks).
    fn send(&self, rec: OutRecord) -> Delivery {
        match &self.sink {
            Sink::Memory(sink) => {
                sink.lock().push(rec.into_sent());
                Delivery::Done
            }
            Sink::Kafka(lazy) => {
                let kind = rec.kind;
                let producer = match lazy.get() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot create the producer; will retry");
                        return Delivery::Unsent(rec);
                    }
                };
                let sent = {
                    let mut fr = FutureRecord::<[u8], [u8]>::to(&rec.topic)
                        .headers(owned_headers(&rec.headers));
                    if let Some(k) = &rec.key {
                        fr = fr.key(k);
                    }
                    if let Some(p) = &rec.payload {
                        fr = fr.payload(p);
                    }
                    producer.send_result(fr).map_err(|(e, _)| e)
                };
                match sent {
                    Ok(fut) => Delivery::Kafka { fut, kind },
                    Err(e) if delivery::is_permanent(&e) => Delivery::Refused(rec, e),
                    Err(e) => {
                        tracing::debug!(topic = %rec.topic, error = %e, "producer queue refused a record; will retry");
                        Delivery::Unsent(rec)
                    }
                }
            }
        }
    }
}

fn owned_headers(headers: &[(String, Vec<u8>)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        },
    )
}

/// Consumer properties that a producer would warn about.
fn is_consumer_only(key: &str) -> bool {
    key == "group.id"
        || key == "group.instance.id"
        || key.starts_with("session.")
        || key.starts_with("heartbeat.")
        || key.starts_with("auto.offset.")
        || key.starts_with("auto.commit.")
        || key.starts_with("enable.auto.")
        || key.starts_with("fetch.")
        || key.starts_with("max.poll.")
        || key.starts_with("partition.assignment.")
        || key.starts_with("queued.")
        || key.starts_with("enable.partition.eof")
        || key.starts_with("isolation.")
        || key.starts_with("group.")
        || key.starts_with("check.crcs")
        || key.starts_with("consume.")
}

/// Properties only producers understand, kept off the consumer.
pub(crate) fn is_producer_only(key: &str) -> bool {
    matches!(
        key,
        "acks"
            | "request.required.acks"
            | "linger.ms"
            | "queue.buffering.max.ms"
            | "queue.buffering.max.messages"
            | "queue.buffering.max.kbytes"
            | "batch.num.messages"
            | "batch.size"
            | "compression.type"
            | "compression.codec"
            | "compression.level"
            | "enable.idempotence"
            | "message.timeout.ms"
            | "delivery.timeout.ms"
            | "retries"
            | "message.send.max.retries"
            | "retry.backoff.ms"
            | "partitioner"
            | "transactional.id"
            | "transaction.timeout.ms"
            | "request.timeout.ms"
            | "max.in.flight.requests.per.connection"
            | "max.in.flight"
            | "sticky.partitioning.linger.ms"
    )
}

/// Turns librdkafka's refusal of a property into a config error naming it.
pub(crate) fn kafka_config_error(_config: &Config, e: rdkafka::error::KafkaError) -> Error {
    use rdkafka::error::KafkaError;
    match e {
        KafkaError::ClientConfig(_, desc, key, value) => Error::config(
            format!("kafka.{key}"),
            format!("librdkafka rejected `{value}`: {desc}"),
        ),
        other => Error::Kafka(other),
    }
}

/// Publishes events from outside handlers (a CLI, a web endpoint, a test), with
/// the same CloudEvents headers as replies, and waits for the broker's ack.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = spine_kafka_core::Config::default();
/// config.set_kafka("bootstrap.servers", "127.0.0.1:9092");
/// let publisher = spine_kafka_core::Publisher::new(&config)?;
/// publisher
///     .publish("orders", "order.placed", Some("o-1"), &serde_json::json!({"order_id": "o-1"}))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    source: String,
}

/// A [`Publisher`] failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The payload could not be serialised.
    #[error("cannot encode the payload as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The broker did not acknowledge the record.
    #[error("delivery to `{topic}` failed: {error}")]
    Delivery {
        /// Destination topic.
        topic: String,
        /// librdkafka's error.
        error: rdkafka::error::KafkaError,
    },
}

impl Publisher {
    /// A publisher using the `[kafka]` properties of `config`; `app.name` becomes `ce_source`.
    pub fn new(config: &Config) -> Result<Publisher, Error> {
        let producer = producer_config(config)?
            .create()
            .map_err(|e| kafka_config_error(config, e))?;
        Ok(Publisher {
            producer,
            source: config.app.name.clone(),
        })
    }

    /// Publishes one JSON event and waits for the broker to acknowledge it.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        key: Option<&str>,
        payload: &T,
    ) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(payload)?;
        self.publish_bytes(
            topic,
            event,
            key.map(str::as_bytes),
            &payload,
            "application/json",
        )
        .await
    }

    /// Publishes payload bytes already encoded as `content_type` (for example
    /// Avro in the Confluent wire format, `application/avro`) and waits for the ack.
    pub async fn publish_bytes(
        &self,
        topic: &str,
        event: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        content_type: &str,
    ) -> Result<(), PublishError> {
        let mut headers = cloud_event_headers(&self.source, event, None);
        crate::headers::set_content_type(&mut headers, content_type);
        let mut fr = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(payload)
            .headers(owned_headers(&headers));
        if let Some(k) = key {
            fr = fr.key(k);
        }
        self.producer
            .send(fr, rdkafka::util::Timeout::Never)
            .await
            .map(|_| ())
            .map_err(|(error, _)| PublishError::Delivery {
                topic: topic.to_owned(),
                error,
            })
    }

    /// Waits until everything queued is delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        use rdkafka::producer::Producer;
        self.producer.flush(timeout).map_err(Error::Kafka)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_event_headers_carry_the_conversation() {
        let origin = Origin {
            id: "in-1".into(),
            correlation: "conv-9".into(),
            key: None,
            reply_to: None,
            request_id: None,
            trace: None,
        };
        let h = cloud_event_headers("svc", "order.accepted", Some(&origin));
        let sent = Sent {
            kind: SentKind::Reply,
            topic: "t".into(),
            key: None,
            payload: None,
            headers: h,
        };
        assert_eq!(sent.event(), Some("order.accepted"));
        assert_eq!(sent.header(CE_SOURCE), Some("svc"));
        assert_eq!(sent.header(CE_CORRELATION_ID), Some("conv-9"));
        assert_eq!(sent.header(CE_CAUSATION_ID), Some("in-1"));
        assert_eq!(sent.header(CE_SPECVERSION), Some("1.0"));
        let id = sent.header(CE_ID).unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);

        let fresh = cloud_event_headers("svc", "x", None);
        let sent = Sent {
            headers: fresh,
            ..sent
        };
        assert_eq!(sent.header(CE_CORRELATION_ID), sent.header(CE_ID));
        assert_eq!(sent.header(CE_CAUSATION_ID), None);
    }

    #[test]
    fn consumer_and_producer_properties_are_kept_apart() {
        assert!(is_consumer_only("group.id"));
        assert!(is_consumer_only("session.timeout.ms"));
        assert!(is_consumer_only("fetch.wait.max.ms"));
        assert!(!is_consumer_only("bootstrap.servers"));
        assert!(is_producer_only("linger.ms"));
        assert!(!is_producer_only("bootstrap.servers"));
    }
}
