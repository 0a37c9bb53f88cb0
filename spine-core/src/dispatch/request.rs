//! Request-reply: [`crate::Context::request`] publishes a request carrying a
//! request id and the topic to answer on, then waits for the response.
//!
//! Responses are matched in-process. Each app instance reads *every*
//! partition of the reply topic (`[requests] reply_topic`, default
//! `{app}.replies`) without a consumer group, from the end as it was when the
//! instance made its first request, and completes only its own waiters, by
//! request id. Instances therefore never steal each other's responses, and no
//! per-instance topic has to be created; the cost is that each instance reads
//! the responses meant for the others too (and drops them). The listener
//! starts with the first request, so an app that never requests pays nothing.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{oneshot, OnceCell};

use crate::config::Config;
use crate::dispatch::extract::Context;
use crate::headers::{CE_CAUSATION_ID, REQUEST_ID};
use crate::metrics as m;
use crate::outbound::{is_producer_only, producer_config, SentKind};

/// A [`crate::Context::request`] failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No response arrived in time.
    #[error(
        "no response to `{event}` on `{topic}` within {after:?} (request id {request_id}); \
         is a handler for it running, and does it answer with `spine::respond(...)`?"
    )]
    Timeout {
        /// The request's topic.
        topic: String,
        /// The request's event name.
        event: String,
        /// How long it waited.
        after: Duration,
        /// The request's id.
        request_id: String,
    },
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The response's payload is not the expected type.
    #[error("cannot decode the response to `{event}` as `{expected}`: {error}")]
    Decode {
        /// The request's event name.
        event: String,
        /// The expected type.
        expected: &'static str,
        /// What went wrong.
        error: String,
    },
    /// The reply topic cannot be read.
    #[error("cannot listen for responses on `{topic}`: {reason}")]
    ReplyTopic {
        /// The reply topic.
        topic: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// Requests need a Kafka broker; under `TestApp`, a stub registered with
    /// `TestApp::respond` answers instead.
    #[error(
        "requests need a Kafka broker; under TestApp, answer `{event}` on `{topic}` with \
         `app.respond(\"{topic}\", \"{event}\", |req| ...)`"
    )]
    NoBroker {
        /// The request's topic.
        topic: String,
        /// The request's event name.
        event: String,
    },
    /// The broker refused the request record for good (too large, an invalid
    /// or unknown topic, no right to write it).
    #[error("the broker refused the request to `{topic}` for good: {reason}")]
    Refused {
        /// The request's topic.
        topic: String,
        /// The broker's or librdkafka's error.
        reason: String,
    },
}

/// A stand-in responder for `TestApp`: request JSON in, response JSON out.
pub(crate) type Stub = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// A response as received.
pub(crate) struct Response {
    pub(crate) payload: Option<Vec<u8>>,
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Response>>>>;

/// The request side of one app: its reply topic, its waiters and the
/// listener feeding them.
pub(crate) struct Requests {
    pub(crate) reply_topic: String,
    pub(crate) instance: String,
    pub(crate) default_timeout: Duration,
    waiters: Waiters,
    /// `TestApp::respond` stubs, by (topic, event).
    pub(crate) stubs: Mutex<HashMap<(String, String), Stub>>,
    listener: OnceCell<()>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: Config,
}

impl Drop for Requests {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

impl Requests {
    pub(crate) fn new(config: &Config) -> Requests {
        Requests {
            reply_topic: config
                .requests
                .reply_topic
                .replace("{app}", &config.app.name),
            instance: uuid::Uuid::new_v4().to_string(),
            default_timeout: config.requests.timeout,
            waiters: Arc::default(),
            stubs: Mutex::default(),
            listener: OnceCell::new(),
            task: Mutex::new(None),
            config: config.clone(),
        }
    }

    /// Starts the listener once; later calls return at once.
    pub(crate) async fn ready(&self) -> Result<(), RequestError> {
        self.listener
            .get_or_try_init(|| async {
                let task = self.listen().await?;
                *self.task.lock() = Some(task);
                Ok(())
            })
            .await
            .map(drop)
    }

    /// Stops listening (the app stopped) and waits until the listener's
    /// consumer is closed.
    pub(crate) async fn stop(&self) {
        let task = self.task.lock().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Registers a waiter for `request_id`.
    pub(crate) fn wait_for(&self, request_id: &str) -> oneshot::Receiver<Response> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(request_id.to_owned(), tx);
        rx
    }

    pub(crate) fn forget(&self, request_id: &str) {
        self.waiters.lock().remove(request_id);
    }

    async fn listen(&self) -> Result<tokio::task::JoinHandle<()>, RequestError> {
        let topic = self.reply_topic.clone();
        let err = |reason: String| RequestError::ReplyTopic {
            topic: topic.clone(),
            reason,
        };
        let mut cc = ClientConfig::new();
        for (k, v) in &self.config.kafka {
            if !is_producer_only(k) {
                cc.set(k, v);
            }
        }
        // Never joins the group nor commits: partitions are assigned by hand.
        cc.set(
            "group.id",
            format!("{}.replies.{}", self.config.group_id(), self.instance),
        );
        cc.set("enable.auto.commit", "false");
        cc.set("enable.auto.offset.store", "false");
        cc.set("fetch.wait.max.ms", "10");
        let consumer: StreamConsumer = cc.create().map_err(|e| err(e.to_string()))?;
        let consumer = Arc::new(consumer);
        let c = consumer.clone();
        let t = topic.clone();
        // Blocking librdkafka calls (metadata, watermarks): off the runtime.
        let partitions = tokio::task::spawn_blocking(move || partitions_of(&c, &t))
            .await
            .map_err(|e| err(e.to_string()))?;
        let partitions = match partitions {
            Ok(p) => p,
            Err(first) => {
                // Only now: an admin client is one more librdkafka client.
                let admin: AdminClient<DefaultClientContext> = producer_config(&self.config)
                    .and_then(|c| c.create().map_err(Into::into))
                    .map_err(|e| err(e.to_string()))?;
                create_topic(&admin, &topic).await;
                // The new topic's metadata takes a moment to reach the broker
                // that answers: ask again until it is there or time is up.
                partitions_within(&consumer, &topic, Duration::from_secs(10))
                    .await
                    .map_err(|again| {
                        err(format!(
                            "{first}; creating it failed too ({again}): create the topic, or set \
                             [requests] reply_topic to one that exists"
                        ))
                    })?
            }
        };
        let c = consumer.clone();
        let t = topic.clone();
        let tpl = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in partitions {
                let (_, high) = c
                    .fetch_watermarks(&t, p, Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                tpl.add_partition_offset(&t, p, Offset::Offset(high))
                    .map_err(|e| e.to_string())?;
            }
            c.assign(&tpl).map_err(|e| e.to_string())?;
            Ok::<_, String>(tpl.count())
        })
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(err)?;
        tracing::info!(reply_topic = %topic, partitions = tpl, instance = %self.instance, "listening for responses");
        let waiters = self.waiters.clone();
        let instance = self.instance.clone();
        Ok(tokio::spawn(async move {
            let mut stream = consumer.stream();
            while let Some(item) = stream.next().await {
                let msg = match item {
                    Ok(msg) => msg,
                    Err(e) => {
                        metrics::counter!(m::CONSUMER_ERRORS).increment(1);
                        tracing::warn!(error = %e, "reply listener: consumer error; carrying on");
                        continue;
                    }
                };
                let id = header(&msg, REQUEST_ID).or_else(|| header(&msg, CE_CAUSATION_ID));
                let waiter = id.and_then(|id| waiters.lock().remove(&id));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(Response {
                            payload: msg.payload().map(<[u8]>::to_vec),
                        });
                    }
                    None => {
                        // Another instance's response, or one that came after its timeout.
                        metrics::counter!(m::RESPONSES_UNMATCHED).increment(1);
                        tracing::trace!(%instance, offset = msg.offset(), "response for another requester");
                    }
                }
            }
        }))
    }
}

fn header<M: Message>(msg: &M, name: &str) -> Option<String> {
    let headers = msg.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

fn partitions_of(c: &StreamConsumer, topic: &str) -> Result<Vec<i32>, String> {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("topic `{topic}` is not in the metadata"))?;
    if let Some(e) = t.error() {
        return Err(format!(
            "topic `{topic}`: {}",
            rdkafka::types::RDKafkaErrorCode::from(e)
        ));
    }
    if t.partitions().is_empty() {
        return Err(format!("topic `{topic}` has no partitions"));
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Creates the reply topic with one partition; an error (it exists, or the
/// broker does not support CreateTopics) is left for the metadata to judge.
async fn create_topic(admin: &AdminClient<DefaultClientContext>, topic: &str) {
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    match admin.create_topics([&new], &AdminOptions::new()).await {
        Ok(results) => {
            for r in results {
                if let Err((t, e)) = r {
                    tracing::debug!(topic = %t, error = ?e, "reply topic not created");
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "reply topic not created"),
    }
}

/// [`partitions_of`], asked again every 50 ms until it answers or `within`
/// has passed; then the last error.
async fn partitions_within(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    within: Duration,
) -> Result<Vec<i32>, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (c, t) = (consumer.clone(), topic.to_owned());
        let last = tokio::task::spawn_blocking(move || partitions_of(&c, &t))
            .await
            .map_err(|e| e.to_string())?;
        match last {
            Ok(p) => return Ok(p),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A request being built: `.timeout(d)` and `.key(k)` adjust it, `.await`
/// sends it and waits for the response. See [`Context::request`].
#[must_use = "a request does nothing until awaited"]
pub struct Request<'a, Req: ?Sized, Resp> {
    pub(crate) ctx: &'a Context,
    pub(crate) topic: &'a str,
    pub(crate) event: &'a str,
    pub(crate) payload: &'a Req,
    pub(crate) timeout: Option<Duration>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) _resp: PhantomData<fn() -> Resp>,
}

impl<Req: ?Sized, Resp> Request<'_, Req, Resp> {
    /// How long to wait for the response (default: `[requests] timeout`, 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The request's key (default: the key of the message being handled).
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl<'a, Req, Resp> IntoFuture for Request<'a, Req, Resp>
where
    Req: Serialize + Sync + ?Sized,
    Resp: DeserializeOwned + Send + 'a,
{
    type Output = Result<Resp, RequestError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let payload = self
                .ctx
                .send_request(self.topic, self.event, self.key, self.payload, self.timeout)
                .await?;
            serde_json::from_slice(payload.as_deref().unwrap_or(b"null")).map_err(|e| {
                RequestError::Decode {
                    event: self.event.to_owned(),
                    expected: std::any::type_name::<Resp>(),
                    error: e.to_string(),
                }
            })
        })
    }
}

/// The request half of [`Context`]: sending a request and awaiting its
/// response, beside the listener that matches responses.
impl Context {
    /// Publishes a request and waits for its response, decoded as `Resp`
    /// (JSON). The responder answers with [`crate::respond`], which publishes
    /// to the topic named in the request's `spine.reply.to` header and carries
    /// its `spine.request.id` back.
    ///
    /// ```no_run
    /// # use spine_kafka_core::{Context, HandlerError};
    /// # use std::time::Duration;
    /// #[derive(serde::Deserialize)]
    /// struct Price { cents: i64 }
    ///
    /// async fn quote(sku: String, ctx: Context) -> Result<(), HandlerError> {
    ///     let price: Price = ctx
    ///         .request("prices", "price.requested", &serde_json::json!({ "sku": sku }))
    ///         .timeout(Duration::from_secs(2))
    ///         .await?;
    ///     println!("{} cents", price.cents);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// The request is published at once (not when the handler ends) and is not
    /// retried by itself: a timeout is an error the handler's retry policy sees.
    /// The app reads its reply topic (`[requests] reply_topic`) outside
    /// `max_in_flight`, but a request answered by the *same* app needs room in
    /// `max_in_flight` for the request itself: keep the requesting handlers'
    /// concurrency (a pipeline's `max_concurrent`) below it.
    pub fn request<'a, Req, Resp>(
        &'a self,
        topic: &'a str,
        event: &'a str,
        payload: &'a Req,
    ) -> crate::dispatch::request::Request<'a, Req, Resp>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: serde::de::DeserializeOwned,
    {
        crate::dispatch::request::Request {
            ctx: self,
            topic,
            event,
            payload,
            timeout: None,
            key: None,
            _resp: std::marker::PhantomData,
        }
    }

    pub(crate) async fn send_request<Req: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        key: Option<Vec<u8>>,
        payload: &Req,
        timeout: Option<std::time::Duration>,
    ) -> Result<Option<Vec<u8>>, RequestError> {
        let requests = &self.shared.requests;
        let key = key.or_else(|| self.origin.key.clone());
        let mut rec = self
            .event_record(topic, event, key, payload)
            .await
            .map_err(|e| RequestError::Encode(e.to_string()))?;
        rec.kind = SentKind::Request;
        if self.shared.outbound.is_memory() {
            // TestApp (or a replay that does not publish): a stub answers, if any.
            let request = rec.payload.clone().unwrap_or_default();
            let answer = {
                let stubs = requests.stubs.lock();
                stubs
                    .get(&(topic.to_owned(), event.to_owned()))
                    .map(|stub| stub(&request))
            };
            let Some(answer) = answer else {
                return Err(RequestError::NoBroker {
                    topic: topic.to_owned(),
                    event: event.to_owned(),
                });
            };
            // Recorded like any published record, so tests can see the request.
            let _ = self.shared.outbound.enqueue(rec);
            return answer.map(Some).map_err(|error| RequestError::Decode {
                event: event.to_owned(),
                expected: "the stub's request type",
                error,
            });
        }
        requests.ready().await?;
        let request_id = rec
            .headers
            .iter()
            .find(|(k, _)| k == crate::headers::CE_ID)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        rec.headers.push((
            crate::headers::REPLY_TO.to_owned(),
            requests.reply_topic.clone().into_bytes(),
        ));
        rec.headers.push((
            crate::headers::REQUEST_ID.to_owned(),
            request_id.clone().into_bytes(),
        ));
        rec.headers.push((
            crate::headers::REPLY_INSTANCE.to_owned(),
            requests.instance.clone().into_bytes(),
        ));
        let rx = requests.wait_for(&request_id);
        let after = timeout.unwrap_or(requests.default_timeout);
        let outbound = &self.shared.outbound;
        let waited = tokio::time::timeout(after, async move {
            let settled = outbound.settle(vec![outbound.enqueue(rec)]).await;
            match settled.refused {
                Some(f) => Ok(Err(f)),
                None => rx.await.map(Ok),
            }
        })
        .await;
        match waited {
            Ok(Ok(Ok(response))) => Ok(response.payload),
            Ok(Ok(Err(refused))) => {
                requests.forget(&request_id);
                Err(RequestError::Refused {
                    topic: refused.topic,
                    reason: refused.error.to_string(),
                })
            }
            Ok(Err(_)) => Err(RequestError::ReplyTopic {
                topic: requests.reply_topic.clone(),
                reason: "the response listener stopped".to_owned(),
            }),
            Err(_) => {
                requests.forget(&request_id);
                metrics::counter!(crate::metrics::REQUEST_TIMEOUTS, "topic" => topic.to_owned())
                    .increment(1);
                Err(RequestError::Timeout {
                    topic: topic.to_owned(),
                    event: event.to_owned(),
                    after,
                    request_id,
                })
            }
        }
    }
}
