//! Testing handlers without Kafka: [`TestApp`] pushes a message through the same
//! dispatch path the consumer uses (routing, decoding, extractors, retries,
//! dead-lettering, replies) and returns what the app would have published.
//! And testing a service against a failing network: [`FaultProxy`] sits
//! between it and a real broker and cuts, swallows or slows the traffic.
//!
//! ```
//! use spine_kafka_core::testing::TestApp;
//! use spine_kafka_core::{Reply, Spine};
//! # use spine_kafka_core::__private::{HandlerDescriptor, HandlerInfo};
//! #[derive(serde::Deserialize)]
//! struct Ping { n: u32 }
//! async fn ping(p: Ping) -> Reply {
//!     Reply::to("pongs", "pong", serde_json::json!({ "n": p.n + 1 }))
//! }
//! # let descriptor = HandlerDescriptor::new(ping, HandlerInfo { name: "ping".into(),
//! #     topic: Some("pings".into()), event: Some("ping".into()), payload: "Ping", file: file!(), line: line!(), fan_out: false, codec: None });
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // With the `spine` crate: `Spine::builder().handlers(spine::handlers![ping])`
//! let app = TestApp::new(Spine::builder().handlers([descriptor])).unwrap();
//! let out = app.send("pings", "ping", &serde_json::json!({ "n": 1 })).await;
//! assert_eq!(out.replies[0].event(), Some("pong"));
//! assert_eq!(out.replies[0].json::<serde_json::Value>().unwrap()["n"], 2);
//! # });
//! ```

mod fault_proxy;

pub use fault_proxy::FaultProxy;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde::Serialize;

use crate::app::Builder;
use crate::config::Config;
use crate::dispatch::{message_span, Resume, Shared, StatsSnapshot};
use crate::error::Error;
use crate::outbound::{cloud_event_headers, Outbound, Sent, SentKind};
use crate::record::Record;
use tracing::Instrument;

/// An app without Kafka, for handler tests.
pub struct TestApp {
    shared: Arc<Shared>,
    sink: Arc<Mutex<Vec<Sent>>>,
    next_offset: AtomicI64,
}

/// A message to send through a [`TestApp`].
#[derive(Debug, Clone)]
pub struct TestMessage {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl TestMessage {
    /// A JSON event with CloudEvents headers (`ce_type` = `event`).
    pub fn json<T: Serialize + ?Sized>(topic: &str, event: &str, payload: &T) -> TestMessage {
        TestMessage {
            topic: topic.to_owned(),
            key: None,
            payload: Some(serde_json::to_vec(payload).unwrap_or_else(|e| {
                panic!("TestMessage::json: the payload does not serialise: {e}")
            })),
            headers: cloud_event_headers("spine-test", event, None),
        }
    }

    /// Raw payload bytes and no headers.
    pub fn raw(topic: &str, payload: impl Into<Vec<u8>>) -> TestMessage {
        TestMessage {
            topic: topic.to_owned(),
            key: None,
            payload: Some(payload.into()),
            headers: Vec::new(),
        }
    }

    /// A record without a payload (a tombstone) and no headers.
    pub fn tombstone(topic: &str) -> TestMessage {
        TestMessage {
            topic: topic.to_owned(),
            key: None,
            payload: None,
            headers: Vec::new(),
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> TestMessage {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> TestMessage {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// What one message made the app publish.
#[derive(Debug, Default, Clone)]
pub struct TestOutcome {
    /// Replies returned by handlers.
    pub replies: Vec<Sent>,
    /// Events published with `Context::emit`.
    pub emitted: Vec<Sent>,
    /// Dead-letter records.
    pub dead_letters: Vec<Sent>,
    /// `event.error.<name>` events.
    pub error_events: Vec<Sent>,
}

impl TestApp {
    /// Builds the app with an in-memory producer. Without `.config(...)` on the
    /// builder, the default configuration is used (no file, no environment).
    pub fn new(mut builder: Builder) -> Result<TestApp, Error> {
        let config = builder.take_config().unwrap_or_default();
        let sink = Arc::new(Mutex::new(Vec::new()));
        let memory = sink.clone();
        let shared =
            builder.build_shared(config, move |_: &Config| Ok(Outbound::memory(memory)))?;
        Ok(TestApp {
            shared,
            sink,
            next_offset: AtomicI64::new(0),
        })
    }

    /// Sends a JSON event named `event` to `topic`.
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        payload: &T,
    ) -> TestOutcome {
        self.send_message(TestMessage::json(topic, event, payload))
            .await
    }

    /// Sends a message and returns what it caused, after retries. Await one
    /// send before starting the next: the outcome is what the app published
    /// while this send ran.
    ///
    /// # Panics
    /// If the app does not subscribe to the message's topic.
    pub async fn send_message(&self, m: TestMessage) -> TestOutcome {
        let topic_idx = self.topic_index(&m.topic);
        let msg = self.message(m);
        let (event, span) = {
            let rec = Record::owned(&msg);
            let topic = self.shared.table.topic(topic_idx);
            let event = topic.event_name(&rec).map(|e| e.into_owned());
            let route = topic.route(event.as_deref());
            self.shared.before(&rec, topic, event.as_deref(), route);
            (
                event.clone(),
                message_span(&rec, topic, event.as_deref(), route),
            )
        };
        let start = self.sink.lock().len();
        let deliveries = self
            .shared
            .clone()
            .handle(msg, topic_idx, event, Resume::Fresh, None)
            .instrument(span)
            .await;
        // A held part of an open aggregate is released later; the test does
        // not wait for it.
        self.shared.settle(deliveries.without_hold()).await;
        self.outcome(start)
    }

    /// Sends messages of one topic to its batch handler as one batch, as the
    /// consumer would hand over one partition's messages (partition 0, in
    /// order), and returns what the batch caused, after retries.
    ///
    /// # Panics
    /// If the messages are of different topics, or their topic has no
    /// batch handler.
    pub async fn send_batch(&self, messages: Vec<TestMessage>) -> TestOutcome {
        let Some(topic) = messages.first().map(|m| m.topic.clone()) else {
            return TestOutcome::default();
        };
        assert!(
            messages.iter().all(|m| m.topic == topic),
            "TestApp::send_batch: a batch holds messages of one topic"
        );
        let topic_idx = self.topic_index(&topic);
        let routes = self.shared.table.topic(topic_idx);
        assert!(
            routes.route(None).is_some_and(|r| r.batch().is_some()),
            "TestApp::send_batch: topic `{topic}` has no batch handler; use send() for one-message handlers"
        );
        let msgs: Vec<OwnedMessage> = messages.into_iter().map(|m| self.message(m)).collect();
        for m in &msgs {
            let rec = Record::owned(m);
            self.shared.before(&rec, routes, None, routes.route(None));
        }
        let start = self.sink.lock().len();
        let refs: Vec<&OwnedMessage> = msgs.iter().collect();
        let outcomes = crate::dispatch::batch::run(&self.shared, topic_idx, &refs).await;
        for unsettled in outcomes {
            self.shared.settle(unsettled.without_hold()).await;
        }
        self.outcome(start)
    }

    fn topic_index(&self, topic: &str) -> usize {
        let Some(topic_idx) = self.shared.table.topic_index(topic) else {
            panic!(
                "TestApp: the app does not subscribe to topic `{}`; it subscribes to {:?}",
                topic,
                self.shared.table.topic_names()
            );
        };
        topic_idx
    }

    /// The record a consumer would have read, at the next offset.
    fn message(&self, m: TestMessage) -> OwnedMessage {
        let headers = m.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        OwnedMessage::new(
            m.payload,
            m.key,
            m.topic,
            rdkafka::Timestamp::now(),
            0,
            self.next_offset.fetch_add(1, Ordering::Relaxed),
            Some(headers),
        )
    }

    /// What the app published since the sink held `start` records.
    fn outcome(&self, start: usize) -> TestOutcome {
        let sent: Vec<Sent> = self.sink.lock()[start..].to_vec();
        let mut out = TestOutcome::default();
        for s in sent {
            match s.kind {
                SentKind::Reply => out.replies.push(s),
                SentKind::Emit | SentKind::Publish | SentKind::Request => out.emitted.push(s),
                SentKind::DeadLetter => out.dead_letters.push(s),
                SentKind::ErrorEvent => out.error_events.push(s),
            }
        }
        out
    }

    /// Answers requests made with `Context::request(topic, event, ..)` while
    /// testing: `f` gets the request (decoded as `Req`) and returns the
    /// response. The request is recorded in the outcome's `emitted`.
    ///
    /// ```
    /// # async fn demo() {
    /// use spine_kafka_core::testing::TestApp;
    /// # let app = TestApp::new(spine_kafka_core::Spine::builder().config({
    /// #     let mut c = spine_kafka_core::Config::default(); c.app.topics = vec!["t".into()]; c })).unwrap();
    /// app.respond("prices", "price.requested", |req: serde_json::Value| {
    ///     serde_json::json!({ "sku": req["sku"], "cents": 499 })
    /// });
    /// # }
    /// ```
    pub fn respond<Req, Resp>(
        &self,
        topic: &str,
        event: &str,
        f: impl Fn(Req) -> Resp + Send + Sync + 'static,
    ) -> &Self
    where
        Req: serde::de::DeserializeOwned,
        Resp: Serialize,
    {
        let stub: crate::dispatch::request::Stub = Box::new(move |bytes: &[u8]| {
            let req: Req = serde_json::from_slice(bytes)
                .map_err(|e| format!("the request does not decode as the stub's type: {e}"))?;
            serde_json::to_vec(&f(req)).map_err(|e| e.to_string())
        });
        self.shared
            .requests
            .stubs
            .lock()
            .insert((topic.to_owned(), event.to_owned()), stub);
        self
    }

    /// The app's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}
