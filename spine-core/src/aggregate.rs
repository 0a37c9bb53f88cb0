//! Aggregation across topics: parts from several topics that share an id
//! (a named field, or the message key) are joined into one JSON object, keyed
//! by part name, which a handler or pipeline receives as its typed payload.
//!
//! Each part is a fan-out route of the dispatch table (typed: a part that does
//! not decode into its declared type is dead-lettered at once). A part's
//! offset is *held*: its message leaves `max_in_flight` and its key's lane, but
//! its offset is not committed until the aggregate completes (and what its
//! handler published is acknowledged) or expires (and its parts are
//! dead-lettered). A crash re-delivers the held parts, so nothing is lost.
//!
//! The aggregate itself is dispatched as a message on an internal topic named
//! `aggregate:<name>` (never subscribed): retries, dead-lettering and replies
//! work exactly as for a consumed message.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::dispatch::extract::{Context, Meta, Raw};
use crate::dispatch::handler::{HandlerDescriptor, HandlerInfo};
use crate::dispatch::{Resume, Shared};
use crate::error::{Error, HandlerError};
use crate::headers::CE_TYPE;
use crate::headers::{dead_letter, AGGREGATE_ID, AGGREGATE_PARTS};
use crate::outbound::{OutRecord, SentKind};

/// Where an aggregate's id comes from.
#[derive(Debug, Clone)]
enum IdSource {
    Field(String),
    Key,
}

/// Declares an aggregation: which parts, joined by what id, within what time,
/// handled by which handler.
///
/// ```
/// use std::time::Duration;
/// use spine_kafka_core::Aggregate;
///
/// #[derive(serde::Deserialize)]
/// struct OrderPlaced { order_id: String, amount_cents: i64 }
/// #[derive(serde::Deserialize)]
/// struct PaymentReceived { order_id: String, amount_cents: i64 }
///
/// let paid = Aggregate::new("order_paid")
///     .part::<OrderPlaced>("order", "orders", "order.placed")
///     .part::<PaymentReceived>("payment", "payments", "payment.received")
///     .by_field("order_id")
///     .timeout(Duration::from_secs(10))
///     .max_open(10_000)
///     .dead_letter_topic("orders.paid.dlq");
/// // .handlers(spine::handlers![settle]), where `settle` takes
/// // `struct PaidOrder { order: OrderPlaced, payment: PaymentReceived }`.
/// ```
#[derive(Clone)]
pub struct Aggregate {
    name: String,
    parts: Vec<PartDecl>,
    id: Option<IdSource>,
    timeout: Duration,
    max_open: usize,
    dead_letter_topic: Option<String>,
    handlers: Vec<HandlerDescriptor>,
}

#[derive(Clone)]
struct PartDecl {
    name: String,
    topic: String,
    event: String,
    /// The part's handler, made for each install's aggregator. Each app
    /// built from the declaration has its own: a rebuilt app (a reloaded
    /// `config_source`) starts with nothing open, and the parts its
    /// predecessor held, uncommitted, are delivered again.
    make: Arc<dyn Fn(Arc<Aggregator>) -> HandlerDescriptor + Send + Sync>,
}

impl std::fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregate")
            .field("name", &self.name)
            .field(
                "parts",
                &self
                    .parts
                    .iter()
                    .map(|p| format!("{} = {}/{}", p.name, p.topic, p.event))
                    .collect::<Vec<_>>(),
            )
            .field("id", &self.id)
            .field("timeout", &self.timeout)
            .field("max_open", &self.max_open)
            .finish_non_exhaustive()
    }
}

impl Aggregate {
    /// An aggregation named `name` (its metrics, logs and `[aggregations.<name>]`).
    /// Defaults: timeout 60 s, 10,000 open aggregates, dead-letter topic
    /// `<name>.dlq`.
    pub fn new(name: impl Into<String>) -> Aggregate {
        Aggregate {
            name: name.into(),
            parts: Vec::new(),
            id: None,
            timeout: Duration::from_secs(60),
            max_open: 10_000,
            dead_letter_topic: None,
            handlers: Vec::new(),
        }
    }

    /// A part: event `event` on `topic`, decoded as `T` (a part that does not
    /// decode goes to the topic's dead-letter topic at once), and placed under
    /// key `name` of the joined object.
    #[must_use]
    pub fn part<T: DeserializeOwned + Send + 'static>(
        mut self,
        name: &str,
        topic: &str,
        event: &str,
    ) -> Aggregate {
        let index = self.parts.len();
        let info = HandlerInfo {
            name: format!("aggregate {} (part {name})", self.name).into(),
            topic: Some(topic.to_owned().into()),
            event: Some(event.to_owned().into()),
            payload: std::any::type_name::<T>(),
            file: "<aggregate>",
            line: 0,
            // Other handlers of the same event may run beside the part
            // if they are declared `fan_out` too.
            fan_out: true,
            codec: None,
        };
        let make = move |agg: Arc<Aggregator>| {
            let handler = move |_part: T, ctx: Context, raw: Raw, meta: Meta| {
                agg.clone().on_part(index, ctx, raw, meta)
            };
            HandlerDescriptor::new(handler, info.clone())
        };
        self.parts.push(PartDecl {
            name: name.to_owned(),
            topic: topic.to_owned(),
            event: event.to_owned(),
            make: Arc::new(make),
        });
        self
    }

    /// Joins parts by this top-level field of their JSON payloads (a string
    /// or a number).
    #[must_use]
    pub fn by_field(mut self, field: &str) -> Aggregate {
        self.id = Some(IdSource::Field(field.to_owned()));
        self
    }

    /// Joins parts by their message key.
    #[must_use]
    pub fn by_key(mut self) -> Aggregate {
        self.id = Some(IdSource::Key);
        self
    }

    /// How long an aggregate may stay incomplete, from its first part.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Aggregate {
        self.timeout = timeout;
        self
    }

    /// Most aggregates open at once; past it, the one due first (the oldest,
    /// unless the timeout changed) expires first.
    #[must_use]
    pub fn max_open(mut self, max_open: usize) -> Aggregate {
        self.max_open = max_open;
        self
    }

    /// Where the parts of an expired aggregate go (default `<name>.dlq`).
    #[must_use]
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Aggregate {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// The handler (or pipeline) of completed aggregates, declared with `#[on]`
    /// or `#[pipeline]` without `topic` or `event`. Its payload type has one
    /// field per part name. Several handlers need `fan_out`.
    #[must_use]
    pub fn handlers(mut self, handlers: impl IntoIterator<Item = HandlerDescriptor>) -> Aggregate {
        self.handlers.extend(handlers);
        self
    }

    /// The internal topic completed aggregates are dispatched on.
    pub(crate) fn internal_topic(&self) -> String {
        format!("aggregate:{}", self.name)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Checks the declaration against the configuration and starts the
    /// aggregation's state. Returns the part routes and the aggregate's
    /// handlers and dead-letter topic.
    pub(crate) fn install(
        self,
        config: &Config,
    ) -> Result<(Vec<HandlerDescriptor>, Vec<HandlerDescriptor>, String), Error> {
        let name = &self.name;
        let key = |k: &str| format!("aggregations.{name}.{k}");
        if self.parts.len() < 2 {
            return Err(Error::config(
                key("parts"),
                "an aggregation joins at least two parts: add `.part::<T>(name, topic, event)`",
            ));
        }
        for (i, p) in self.parts.iter().enumerate() {
            if self.parts[..i].iter().any(|q| q.name == p.name) {
                return Err(Error::config(
                    key("parts"),
                    format!("part name `{}` is used twice", p.name),
                ));
            }
            if config.codec(&p.topic).is_some_and(|c| c != "json") {
                return Err(Error::config(
                    format!("topics.{}.codec", p.topic),
                    format!(
                        "aggregation `{name}` reads part `{}` from this topic, but aggregations join JSON parts only",
                        p.name
                    ),
                ));
            }
        }
        let Some(id) = self.id.clone() else {
            return Err(Error::config(
                key("id"),
                "say how parts are joined: `.by_field(\"order_id\")` or `.by_key()`",
            ));
        };
        if self.handlers.is_empty() {
            return Err(Error::config(
                key("handlers"),
                "no handler takes the completed aggregates: add `.handlers(spine::handlers![...])`",
            ));
        }
        for h in &self.handlers {
            if h.topic.is_some() || h.event.is_some() {
                return Err(Error::Schema {
                    handler: h.name.clone(),
                    location: h.location(),
                    reason: format!(
                        "it handles aggregation `{name}`: declare it with `#[on]` (or `#[pipeline]`) \
                         without `topic` or `event`"
                    ),
                });
            }
        }
        let overrides = config.aggregations.get(name);
        let timeout = overrides.and_then(|o| o.timeout).unwrap_or(self.timeout);
        let max_open = overrides.and_then(|o| o.max_open).unwrap_or(self.max_open);
        if timeout.is_zero() {
            return Err(Error::config(key("timeout"), "must be longer than zero"));
        }
        if max_open == 0 {
            return Err(Error::config(key("max_open"), "must be at least 1"));
        }
        let dlq = overrides
            .and_then(|o| o.dead_letter_topic.clone())
            .or(self.dead_letter_topic.clone())
            .unwrap_or_else(|| format!("{name}.dlq"));
        let agg = Arc::new(Aggregator {
            name: name.clone(),
            internal_topic: self.internal_topic(),
            parts: self.parts.iter().map(|p| p.name.clone()).collect(),
            id,
            timeout,
            max_open,
            dead_letter_topic: dlq.clone(),
            open: Mutex::default(),
            seq: AtomicU64::new(0),
            sweeper: OnceLock::new(),
        });

        Ok((
            self.parts.iter().map(|p| (p.make)(agg.clone())).collect(),
            self.handlers,
            dlq,
        ))
    }
}

/// One aggregation's open aggregates.
pub(crate) struct Aggregator {
    name: String,
    internal_topic: String,
    parts: Vec<String>,
    id: IdSource,
    timeout: Duration,
    max_open: usize,
    dead_letter_topic: String,
    open: Mutex<Open>,
    seq: AtomicU64,
    sweeper: OnceLock<()>,
}

#[derive(Default)]
struct Open {
    by_id: HashMap<String, Pending>,
    /// Deadline order (creation order while the timeout stays the same; a
    /// reloaded `config_source` row may change it): `(deadline, seq) → id`.
    order: BTreeMap<(Instant, u64), String>,
}

struct Pending {
    id: String,
    seq: u64,
    deadline: Instant,
    /// The timeout its deadline was set with.
    timeout: Duration,
    /// Each part's latest JSON payload.
    parts: Vec<Option<Vec<u8>>>,
    /// Every record held for this aggregate (a part re-delivered is held twice).
    records: Vec<(Meta, Vec<u8>)>,
    /// Released when the aggregate is done with; their offsets then commit.
    holds: Vec<oneshot::Sender<()>>,
}

impl Aggregator {
    async fn on_part(
        self: Arc<Self>,
        index: usize,
        ctx: Context,
        raw: Raw,
        meta: Meta,
    ) -> Result<(), HandlerError> {
        let id = self.id_of(&raw.0, &meta).ok_or_else(|| {
            let from = match &self.id {
                IdSource::Field(f) => format!("field `{f}` (a string or a number)"),
                IdSource::Key => "a UTF-8 key".to_owned(),
            };
            HandlerError::msg(format!(
                "part `{}` of aggregation `{}` has no id: the payload needs {from}",
                self.parts[index], self.name
            ))
            .fatal()
        })?;
        self.start_sweeper(&ctx);
        let hold = ctx.hold();
        let (complete, evicted) = {
            let mut open = self.open.lock();
            let mut evicted = Vec::new();
            if !open.by_id.contains_key(&id) {
                while open.by_id.len() >= self.max_open {
                    let Some((_, oldest)) = open.order.pop_first() else {
                        break;
                    };
                    if let Some(p) = open.by_id.remove(&oldest) {
                        evicted.push(p);
                    }
                }
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                let timeout = self.timeout(&ctx);
                let deadline = Instant::now() + timeout;
                open.order.insert((deadline, seq), id.clone());
                open.by_id.insert(
                    id.clone(),
                    Pending {
                        id: id.clone(),
                        seq,
                        deadline,
                        timeout,
                        parts: vec![None; self.parts.len()],
                        records: Vec::new(),
                        holds: Vec::new(),
                    },
                );
            }
            let done = {
                let p = open.by_id.get_mut(&id).expect("inserted above");
                p.parts[index] = Some(raw.0.clone());
                p.records.push((meta.clone(), raw.0));
                p.holds.push(hold);
                p.parts.iter().all(Option::is_some)
            };
            let complete = if done {
                open.by_id.remove(&id).inspect(|p| {
                    open.order.remove(&(p.deadline, p.seq));
                })
            } else {
                None
            };
            (complete, evicted)
        };
        for p in evicted {
            let reason = format!("evicted: {} aggregates were open (max_open)", self.max_open);
            self.expire(&ctx.shared, p, "max_open", &reason).await;
        }
        if let Some(p) = complete {
            self.complete(&ctx.shared, p, &meta).await;
        }
        Ok(())
    }

    /// The configured timeout, unless a reloaded `config_source` row set one.
    fn timeout(&self, ctx: &Context) -> Duration {
        ctx.shared
            .live
            .aggregation_timeout()
            .unwrap_or(self.timeout)
    }

    fn id_of(&self, payload: &[u8], meta: &Meta) -> Option<String> {
        match &self.id {
            IdSource::Key => meta.key_str().map(str::to_owned),
            IdSource::Field(f) => {
                let v: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(payload).ok()?;
                match v.get(f)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            }
        }
    }

    /// Dispatches the joined value on the internal topic, waits until what
    /// its handlers published is acknowledged, then releases the parts.
    async fn complete(&self, shared: &Arc<Shared>, p: Pending, last: &Meta) {
        let mut joined = Vec::from(&b"{"[..]);
        for (i, (name, part)) in self.parts.iter().zip(&p.parts).enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            // A part name is plain text; serde_json writes it as a JSON string.
            joined.extend(serde_json::to_vec(name).unwrap_or_default());
            joined.push(b':');
            joined.extend(part.as_deref().unwrap_or(b"null"));
        }
        joined.push(b'}');
        let headers = last
            .headers
            .iter()
            .filter(|(k, _)| k != CE_TYPE)
            .chain(std::iter::once(&(
                CE_TYPE.to_owned(),
                self.name.clone().into_bytes(),
            )))
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v),
                })
            });
        let msg = OwnedMessage::new(
            Some(joined),
            Some(p.id.clone().into_bytes()),
            self.internal_topic.clone(),
            rdkafka::Timestamp::now(),
            last.partition,
            last.offset,
            Some(headers),
        );
        let Some(topic_idx) = shared.table.topic_index(&self.internal_topic) else {
            tracing::error!(aggregate = %self.name, "aggregation has no route; its parts stay uncommitted");
            return;
        };
        tracing::debug!(aggregate = %self.name, id = %p.id, "aggregate complete");
        let unsettled = shared
            .clone()
            .handle(msg, topic_idx, Some(self.name.clone()), Resume::Fresh, None)
            .await;
        shared.settle(unsettled).await;
        metrics::counter!(crate::metrics::AGGREGATES_COMPLETED, "aggregate" => self.name.clone())
            .increment(1);
        shared.stats.aggregate_completed();
        for h in p.holds {
            let _ = h.send(());
        }
    }

    /// Dead-letters every record of an incomplete aggregate, then releases them.
    async fn expire(&self, shared: &Shared, p: Pending, why: &'static str, reason: &str) {
        let (mut had, mut missing) = (Vec::new(), Vec::new());
        for (name, part) in self.parts.iter().zip(&p.parts) {
            match part {
                Some(_) => had.push(name.as_str()),
                None => missing.push(name.as_str()),
            }
        }
        let message = format!(
            "aggregate `{}` with id `{}` expired ({reason}); had [{}], missing [{}]",
            self.name,
            p.id,
            had.join(", "),
            missing.join(", ")
        );
        tracing::warn!(aggregate = %self.name, id = %p.id, parts = p.records.len(), %message, "aggregate expired");
        metrics::counter!(crate::metrics::AGGREGATES_EXPIRED, "aggregate" => self.name.clone(), "reason" => why).increment(1);
        shared.stats.aggregate_expired();
        if shared.config.dead_letter.enabled {
            let deliveries = p
                .records
                .iter()
                .map(|(meta, payload)| {
                    shared
                        .outbound
                        .enqueue(self.expired_record(meta, payload, &p.id, &had, &message))
                })
                .collect();
            // Dead letters: never given up, so nothing comes back refused.
            let settled = shared.outbound.settle(deliveries).await;
            shared.stats.publish_retried(settled.retries);
        }
        for h in p.holds {
            let _ = h.send(());
        }
    }

    fn expired_record(
        &self,
        meta: &Meta,
        payload: &[u8],
        id: &str,
        had: &[&str],
        message: &str,
    ) -> OutRecord {
        let mut headers = meta.headers.clone();
        let mut add = |k: &str, v: &str| headers.push((k.to_owned(), v.as_bytes().to_vec()));
        add(dead_letter::TOPIC, &meta.topic);
        add(dead_letter::PARTITION, &meta.partition.to_string());
        add(dead_letter::OFFSET, &meta.offset.to_string());
        add(dead_letter::ERROR_KIND, "aggregate");
        add(dead_letter::ERROR_CODE, "aggregate.expired");
        add(dead_letter::ERROR_MESSAGE, message);
        add(dead_letter::ATTEMPTS, "1");
        add(dead_letter::HANDLER, &self.name);
        if let Some(e) = &meta.event {
            add(dead_letter::EVENT, e);
        }
        add(AGGREGATE_ID, id);
        add(AGGREGATE_PARTS, &had.join(","));
        OutRecord {
            kind: SentKind::DeadLetter,
            topic: self.dead_letter_topic.clone(),
            key: meta.key.clone(),
            payload: Some(payload.to_vec()),
            headers,
        }
    }

    /// Expires aggregates past their deadline, every quarter of the timeout
    /// (at most every second). Holds only weak references: it ends with the app.
    fn start_sweeper(self: &Arc<Self>, ctx: &Context) {
        self.sweeper.get_or_init(|| {
            let agg: Weak<Aggregator> = Arc::downgrade(self);
            let shared: Weak<Shared> = Arc::downgrade(&ctx.shared);
            let period =
                (self.timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let (Some(agg), Some(shared)) = (agg.upgrade(), shared.upgrade()) else {
                        return;
                    };
                    let now = Instant::now();
                    let expired: Vec<Pending> = {
                        let mut open = agg.open.lock();
                        let mut out = Vec::new();
                        while let Some((&(deadline, seq), id)) = open.order.first_key_value() {
                            if deadline > now {
                                break;
                            }
                            let id = id.clone();
                            open.order.remove(&(deadline, seq));
                            if let Some(p) = open.by_id.remove(&id) {
                                out.push(p);
                            }
                        }
                        out
                    };
                    for p in expired {
                        let reason = format!("no complete set within {:?}", p.timeout);
                        agg.expire(&shared, p, "timeout", &reason).await;
                    }
                }
            });
        });
    }
}
