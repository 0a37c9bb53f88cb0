//! Extractors: the handler arguments after the payload. [`Meta`] (where the
//! message came from), [`Context`] (publish from inside a handler), [`State`]
//! (shared application state) and [`Raw`] (the payload bytes), all built by
//! [`FromRecord`] from the message being handled.

use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use parking_lot::Mutex;

use serde::Serialize;

use crate::dispatch::request::RequestError;
use crate::dispatch::routing::TopicRoutes;
use crate::dispatch::Shared;
use crate::error::FailureKind;
use crate::error::HandlerError;
use crate::headers::set_content_type;
use crate::outbound::{cloud_event_headers, Delivery, Origin, OutRecord, SentKind};
use crate::record::Record;

/// The message an extractor is built from.
pub struct Scope<'a> {
    pub(crate) rec: &'a Record<'a>,
    pub(crate) topic: &'a TopicRoutes,
    pub(crate) event: Option<&'a str>,
    /// The payload as decoded by the topic's codec, with the handler's
    /// converter (`None`: JSON, decoded by the handler itself).
    pub(crate) decoded: Option<crate::codec::DecodedPayload<'a>>,
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) emits: Option<Arc<EmitLog>>,
    /// The pipeline being started, if the handler is one.
    pub(crate) pipeline: Option<Arc<crate::dispatch::pipeline::PipelineState>>,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(
        rec: &'a Record<'a>,
        topic: &'a TopicRoutes,
        event: Option<&'a str>,
        shared: &'a Arc<Shared>,
    ) -> Self {
        Scope {
            rec,
            topic,
            event,
            decoded: None,
            shared,
            emits: None,
            pipeline: None,
        }
    }

    /// Source topic.
    pub fn topic(&self) -> &str {
        self.rec.topic
    }

    /// Message key.
    pub fn key(&self) -> Option<&[u8]> {
        self.rec.key
    }

    /// Payload bytes.
    pub fn payload(&self) -> Option<&[u8]> {
        self.rec.payload
    }

    /// The last value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.rec.header(name)
    }

    /// Registered state of type `T`.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.shared.states.get::<T>()
    }

    pub(crate) fn emit_log(&mut self) -> Arc<EmitLog> {
        self.emits
            .get_or_insert_with(|| Arc::new(EmitLog::default()))
            .clone()
    }
}

/// A handler argument built from the message being handled.
///
/// Implemented by [`Meta`], [`Context`], [`State`] and [`Raw`]; implement it
/// for your own types to extract something else.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    label = "not an extractor",
    note = "after the payload (the first argument), a handler takes only extractors: \
            `Meta`, `Context`, `State<T>` or `Raw`",
    note = "if `{Self}` is the payload, make it the first argument"
)]
pub trait FromRecord: Sized + Send + 'static {
    /// Builds the argument.
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError>;

    /// Checked once at startup; returns the name of missing state.
    #[doc(hidden)]
    fn missing_state(_states: &States) -> Option<&'static str> {
        None
    }
}

/// Where a message came from.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Broker or producer timestamp, in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Every header, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The event name the message was routed by.
    pub event: Option<String>,
    /// `ce_id`, or `topic/partition/offset` when the publisher sent none.
    pub event_id: String,
    /// `ce_correlationid`, or the event id when the message starts a conversation.
    pub correlation_id: String,
}

impl Meta {
    /// The key as UTF-8 text.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The last value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

impl FromRecord for Meta {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        let r = scope.rec;
        Ok(Meta {
            topic: r.topic.to_owned(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp(),
            key: r.key.map(<[u8]>::to_vec),
            headers: r.headers_vec(),
            event: scope.topic.event_or(r, scope.event).map(|e| e.into_owned()),
            event_id: r.event_id(),
            correlation_id: r.correlation_id(),
        })
    }
}

/// The payload's bytes, exactly as consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw(pub Vec<u8>);

impl FromRecord for Raw {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        Ok(Raw(scope.rec.payload.unwrap_or_default().to_vec()))
    }
}

/// Shared application state registered with `Builder::state`.
///
/// ```
/// use spine_kafka_core::State;
/// struct Db { url: String }
/// async fn handler(_order: serde_json::Value, db: State<Db>) {
///     println!("{}", db.url); // derefs to Db
/// }
/// ```
pub struct State<T>(pub Arc<T>);

impl<T> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

impl<T: Send + Sync + 'static> FromRecord for State<T> {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        scope.state::<T>().map(State).ok_or_else(|| {
            HandlerError::msg(format!(
                "no state of type `{}` is registered",
                std::any::type_name::<T>()
            ))
            .fatal()
        })
    }

    fn missing_state(states: &States) -> Option<&'static str> {
        match states.get::<T>() {
            Some(_) => None,
            None => Some(std::any::type_name::<T>()),
        }
    }
}

/// Application state, by type. A handful of entries at most, so a linear scan
/// of type ids beats hashing them on every message.
#[derive(Default, Clone)]
#[doc(hidden)]
pub struct States(Vec<(TypeId, Arc<dyn Any + Send + Sync>)>);

impl States {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_arc(Arc::new(value));
    }

    pub(crate) fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        let id = TypeId::of::<T>();
        self.0.retain(|(t, _)| *t != id);
        self.0.push((id, value));
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let id = TypeId::of::<T>();
        self.0
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, a)| a.clone().downcast::<T>().ok())
    }
}

/// Deliveries of the events a handler emitted, awaited before its offset commits.
#[derive(Default)]
pub(crate) struct EmitLog(Mutex<Vec<Delivery>>);

impl EmitLog {
    pub(crate) fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Publishes events from inside a handler.
///
/// Emitted events carry the incoming message's correlation id, and its `ce_id`
/// as their causation id. `emit` only queues the event: the message's offset is
/// committed after the broker acknowledges it, so an emitted event is never
/// lost, though it may be published twice if the app crashes in between.
#[derive(Clone)]
pub struct Context {
    pub(crate) shared: Arc<Shared>,
    origin: Arc<Origin>,
    emits: Arc<EmitLog>,
}

/// A [`Context::emit`] failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The payload could not be encoded for the topic.
    #[error("{0}")]
    Encode(String),
}

impl Context {
    /// Publishes event `event` to `topic`, keyed like the incoming message,
    /// encoded with the topic's codec (JSON unless the topic is Avro).
    pub async fn emit<T: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        payload: &T,
    ) -> Result<(), EmitError> {
        let key = self.origin.key.clone();
        self.emit_with_key(topic, event, key, payload).await
    }

    /// Publishes event `event` to `topic` with the given key.
    pub async fn emit_with_key<T: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        key: Option<Vec<u8>>,
        payload: &T,
    ) -> Result<(), EmitError> {
        let rec = self.event_record(topic, event, key, payload).await?;
        let delivery = self.shared.outbound.enqueue(rec);
        self.emits.0.lock().push(delivery);
        Ok(())
    }

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
        if matches!(self.shared.outbound, crate::outbound::Outbound::Memory(_)) {
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
            outbound.settle(vec![outbound.enqueue(rec)]).await;
            rx.await
        })
        .await;
        match waited {
            Ok(Ok(response)) => Ok(response.payload),
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

    /// Encodes an event for `topic` with the topic's codec and this message's
    /// conversation headers.
    async fn event_record<T: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        key: Option<Vec<u8>>,
        payload: &T,
    ) -> Result<OutRecord, EmitError> {
        if let Some(codec) = self.shared.output_codecs.get(topic) {
            // Fetch the subject's schema once; a registry that is down fails
            // this attempt, which the handler's retry policy retries.
            codec
                .prepare_encode(topic, None)
                .await
                .map_err(|e| EmitError::Encode(e.into_failure(FailureKind::Encode).message))?;
        }
        let what = format!("event `{event}`");
        let (payload, content_type) = self
            .shared
            .encode_for(topic, &what, &payload, || serde_json::to_vec(payload), None)
            .map_err(|f| EmitError::Encode(f.message))?;
        let mut headers =
            cloud_event_headers(&self.shared.config.app.name, event, Some(&self.origin));
        set_content_type(&mut headers, content_type);
        Ok(OutRecord {
            kind: SentKind::Emit,
            topic: topic.to_owned(),
            key,
            payload: Some(payload),
            headers,
        })
    }

    /// Holds the message's offset until the returned sender fires (or
    /// forever, if it is dropped): the message leaves `max_in_flight` when its
    /// handler ends, but is not committed before.
    pub(crate) fn hold(&self) -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.emits.0.lock().push(Delivery::Held(rx));
        tx
    }

    /// The correlation id of the conversation this message belongs to.
    pub fn correlation_id(&self) -> &str {
        &self.origin.correlation
    }

    /// The app's name (`ce_source` of what it publishes).
    pub fn app_name(&self) -> &str {
        &self.shared.config.app.name
    }
}

impl FromRecord for Context {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        Ok(Context {
            shared: scope.shared.clone(),
            origin: Arc::new(Origin::of(scope.rec)),
            emits: scope.emit_log(),
        })
    }
}
