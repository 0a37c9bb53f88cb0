//! The dispatch table: which handler gets a message, by (topic, event name), and
//! where each topic's event names come from.
//!
//! Precedence is resolved once at startup, so a lookup is one search of a
//! topic's event names ([`Events`]): (topic, event) beats (any topic, event),
//! which beats (topic, any event), which beats a handler with neither.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::codec::{json_field, CodecError, PayloadCodec, Reader};
use crate::config::{Config, EventSource, UnknownEvent};
use crate::dispatch::handler::HandlerDescriptor;
use crate::error::Error;
use crate::metrics::TopicMetrics;
use crate::record::Record;

type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// The handlers one message goes to: one, or several with fan-out.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) handlers: Arc<[HandlerDescriptor]>,
    /// Each handler's reader, compiled by the topic's codec (empty for JSON).
    /// Handlers whose types share a schema share a reader, so a message is
    /// decoded once for all of them.
    pub(crate) readers: Arc<[Reader]>,
    /// Each handler's `spine_handler_duration_seconds` histogram.
    pub(crate) durations: Arc<[metrics::Histogram]>,
}

impl Route {
    pub(crate) fn single(&self) -> Option<&HandlerDescriptor> {
        match &*self.handlers {
            [one] => Some(one),
            _ => None,
        }
    }

    /// How the route's handler takes batches, when it is a batch handler
    /// (one owns its route: it cannot fan out).
    #[inline]
    pub(crate) fn batch(&self) -> Option<&crate::dispatch::batch::BatchSpec> {
        self.handlers.first().and_then(|h| h.batch.as_ref())
    }

    pub(crate) fn names(&self) -> String {
        self.handlers
            .iter()
            .map(|h| h.display_name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A topic's routes by event name, kept sorted by name.
///
/// Hand-written rather than a map crate's: a topic has a handful of events,
/// and for those a scan that compares each name's bytes (its length first)
/// costs less per message than hashing the name, while the sort keeps
/// lookups logarithmic for a topic with many. Keyed by bytes, because a
/// header's value is bytes: a name that matches is the table's own `&str`,
/// so a routed message's name is never checked for UTF-8.
#[derive(Default)]
struct Events(Vec<(Box<str>, Route)>);

impl Events {
    /// Up to this many events, a lookup scans rather than bisects.
    const SCAN: usize = 8;

    /// Sets `name`'s route, replacing one set before.
    fn insert(&mut self, name: &str, route: Route) {
        match self.0.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => self.0[i].1 = route,
            Err(i) => self.0.insert(i, (name.into(), route)),
        }
    }

    /// The route of the event named `name`, with the name as the table holds it.
    #[inline]
    fn get(&self, name: &[u8]) -> Option<(&str, &Route)> {
        let found = if self.0.len() <= Self::SCAN {
            self.0.iter().find(|(n, _)| n.as_bytes() == name)
        } else {
            self.0
                .binary_search_by(|(n, _)| n.as_bytes().cmp(name))
                .ok()
                .map(|i| &self.0[i])
        };
        found.map(|(n, r)| (&**n, r))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every (name, route), by name.
    fn iter(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.0.iter().map(|(n, r)| (&**n, r))
    }

    fn values(&self) -> impl Iterator<Item = &Route> {
        self.0.iter().map(|(_, r)| r)
    }
}

/// Everything the loop needs for messages of one topic.
pub(crate) struct TopicRoutes {
    pub(crate) topic: Arc<str>,
    by_event: Events,
    any: Option<Route>,
    pub(crate) source: EventSource,
    pub(crate) unknown: UnknownEvent,
    pub(crate) dead_letter_topic: String,
    pub(crate) error_topic: String,
    pub(crate) metrics: TopicMetrics,
    /// The payload codec, when the topic is not JSON.
    pub(crate) codec: Option<Arc<dyn PayloadCodec>>,
    /// False for internal topics (completed aggregates), which are not consumed.
    pub(crate) subscribed: bool,
    /// Whether a message whose retries are exhausted parks its key
    /// (`on_exhausted = "park"`) instead of being dead-lettered.
    pub(crate) parks: bool,
}

impl TopicRoutes {
    /// Whether the event name can be read without fetching anything (the
    /// `record` source needs the writer schema).
    pub(crate) fn event_ready(&self, rec: &Record<'_>) -> bool {
        match (&self.source, &self.codec) {
            (EventSource::Record, Some(c)) => {
                !matches!(c.record_name(rec.payload), Err(CodecError::NotReady))
            }
            _ => true,
        }
    }

    /// The message's event name, from this topic's event source.
    pub(crate) fn event_name<'a>(&self, rec: &Record<'a>) -> Option<Cow<'a, str>> {
        match &self.source {
            EventSource::Header(name) => rec.header_str(name).map(Cow::Borrowed),
            EventSource::Key => rec
                .key
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(Cow::Borrowed),
            EventSource::Field(name) => rec.payload.and_then(|p| json_field(p, name)),
            EventSource::Record => self
                .codec
                .as_ref()
                .and_then(|c| c.record_name(rec.payload).ok())
                .map(Cow::Owned),
        }
    }

    /// `known`, or else the event name read from the record: for reporting on
    /// a message whose routing did not need the name.
    pub(crate) fn event_or<'k, 'r: 'k>(
        &self,
        rec: &Record<'r>,
        known: Option<&'k str>,
    ) -> Option<Cow<'k, str>> {
        match known {
            Some(e) => Some(Cow::Borrowed(e)),
            None => self.event_name(rec),
        }
    }

    /// Whether routing on this topic depends on the event name. When it does
    /// not (only topic-wide handlers), the name is not read on the hot path.
    pub(crate) fn needs_event(&self) -> bool {
        !self.by_event.is_empty()
    }

    /// Every handler of the topic (a fan-out handler once per route).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn handlers(&self) -> impl Iterator<Item = &HandlerDescriptor> {
        let mut routes: Vec<&Route> = self.by_event.values().chain(self.any.iter()).collect();
        routes.sort_by_key(|r| r.names());
        routes.into_iter().flat_map(|r| r.handlers.iter())
    }

    /// The route for an event name, after precedence.
    pub(crate) fn route(&self, event: Option<&str>) -> Option<&Route> {
        event
            .and_then(|e| self.by_event.get(e.as_bytes()))
            .map(|(_, r)| r)
            .or(self.any.as_ref())
    }

    /// A record's event name and route: [`Self::event_name`], then
    /// [`Self::route`]. A name read from a header is looked up as bytes and
    /// checked for UTF-8 only when no event of the table matches it.
    #[inline]
    pub(crate) fn routed<'x>(
        &'x self,
        rec: &Record<'x>,
    ) -> (Option<Cow<'x, str>>, Option<&'x Route>) {
        let EventSource::Header(name) = &self.source else {
            let event = self.event_name(rec);
            let route = self.route(event.as_deref());
            return (event, route);
        };
        let Some(bytes) = rec.header(name) else {
            return (None, self.any.as_ref());
        };
        match self.by_event.get(bytes) {
            Some((event, route)) => (Some(Cow::Borrowed(event)), Some(route)),
            None => (
                std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
                self.any.as_ref(),
            ),
        }
    }
}

/// A topic the app dispatches to itself and never subscribes to (completed
/// aggregates).
pub(crate) struct InternalTopic {
    pub(crate) topic: String,
    pub(crate) handlers: Vec<HandlerDescriptor>,
    pub(crate) dead_letter_topic: String,
}

/// One row of the dispatch table: a handler's descriptor where routing put
/// it (a topic-less handler appears once per subscribed topic), as
/// `App::routes()`, `Builder::describe`, the `routes` command and AsyncAPI
/// list it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RouteInfo {
    /// The topic (or `aggregate:<name>` for completed aggregates).
    pub topic: String,
    /// Whether the app consumes the topic (false for internal topics).
    pub subscribed: bool,
    /// The event, or `None` for every event of the topic.
    pub event: Option<String>,
    /// The topic's codec: `json` or `avro`.
    pub codec: &'static str,
    /// The handler: name, payload type, location, schemas, declared replies.
    pub handler: HandlerDescriptor,
}

impl RouteInfo {
    /// The handler's name, or for a pipeline its name and steps.
    pub fn display_name(&self) -> String {
        let steps = self.handler.steps();
        if steps.is_empty() {
            self.handler.name.to_string()
        } else {
            format!("{} (pipeline: {})", self.handler.name, steps.join(" → "))
        }
    }
}

/// Routes of every subscribed topic.
pub(crate) struct DispatchTable {
    topics: Vec<TopicRoutes>,
    index: FastMap<Box<str>, usize>,
}

type Key = (Option<Cow<'static, str>>, Option<Cow<'static, str>>);
type Groups = BTreeMap<Key, Vec<HandlerDescriptor>>;

fn describe_key((topic, event): &Key) -> String {
    match (topic, event) {
        (Some(t), Some(e)) => format!("topic \"{t}\", event \"{e}\""),
        (None, Some(e)) => format!("event \"{e}\" on any topic"),
        (Some(t), None) => format!("every event of topic \"{t}\""),
        (None, None) => "every event of every topic".to_owned(),
    }
}

impl DispatchTable {
    pub(crate) fn build(
        handlers: &[HandlerDescriptor],
        internal: &[InternalTopic],
        config: &Config,
        codecs: &HashMap<String, Arc<dyn PayloadCodec>>,
    ) -> Result<Self, Error> {
        let groups = group_by_key(handlers)?;
        refuse_topicless_codecs(handlers)?;
        let mut table = DispatchTable {
            topics: Vec::new(),
            index: FastMap::default(),
        };
        for topic in subscribed_topics(handlers, config)? {
            let codec = topic_codec(&topic, handlers, config, codecs)?;
            table.push(topic_routes(topic, codec, &groups, config)?);
        }
        for t in internal {
            table.push(internal_routes(t, config)?);
        }
        Ok(table)
    }

    fn push(&mut self, routes: TopicRoutes) {
        self.index.insert((*routes.topic).into(), self.topics.len());
        self.topics.push(routes);
    }

    /// Keeps each topic's counts locally, for the status page (`[http]` on
    /// with Spine's recorder).
    pub(crate) fn count_locally(&mut self) {
        for t in &mut self.topics {
            t.metrics.count_locally();
        }
    }

    pub(crate) fn topic_index(&self, topic: &str) -> Option<usize> {
        self.index.get(topic).copied()
    }

    pub(crate) fn topics(&self) -> &[TopicRoutes] {
        &self.topics
    }

    pub(crate) fn topic(&self, idx: usize) -> &TopicRoutes {
        &self.topics[idx]
    }

    /// Subscribed topic names, sorted.
    pub(crate) fn topic_names(&self) -> Vec<&str> {
        self.topics
            .iter()
            .filter(|t| t.subscribed)
            .map(|t| &*t.topic)
            .collect()
    }

    /// One row per (topic, event, handler), for `routes` and AsyncAPI.
    pub(crate) fn describe(&self) -> Vec<RouteInfo> {
        let mut rows = Vec::new();
        for t in &self.topics {
            let mut events: Vec<_> = t.by_event.iter().map(|(e, r)| (Some(e), r)).collect();
            events.extend(t.any.iter().map(|r| (None, r)));
            for (event, route) in events {
                for h in route.handlers.iter() {
                    rows.push(RouteInfo {
                        topic: t.topic.to_string(),
                        subscribed: t.subscribed,
                        event: event.map(|e| e.to_string()),
                        codec: t.codec.as_ref().map_or("json", |c| c.name()),
                        handler: h.clone(),
                    });
                }
            }
        }
        rows
    }
}

/// Handlers by (topic, event); two on one key is an error unless all of
/// them asked for fan-out.
fn group_by_key(handlers: &[HandlerDescriptor]) -> Result<Groups, Error> {
    let mut groups: Groups = BTreeMap::new();
    for h in handlers {
        groups
            .entry((h.topic.clone(), h.event.clone()))
            .or_default()
            .push(h.clone());
    }
    for (key, group) in &groups {
        if group.len() < 2 {
            continue;
        }
        // Report a pair where at least one side did not ask for fan-out.
        if let Some(pos) = group.iter().position(|h| !h.fan_out) {
            let (a, b) = if pos == 0 {
                (&group[0], &group[1])
            } else {
                (&group[0], &group[pos])
            };
            return Err(duplicate(describe_key(key), a, b));
        }
    }
    Ok(groups)
}

fn duplicate(key: String, a: &HandlerDescriptor, b: &HandlerDescriptor) -> Error {
    Error::DuplicateRoute {
        key,
        first: a.name.clone(),
        first_location: a.location(),
        second: b.name.clone(),
        second_location: b.location(),
    }
}

/// A codec belongs to a topic: a handler without one cannot declare it.
fn refuse_topicless_codecs(handlers: &[HandlerDescriptor]) -> Result<(), Error> {
    match handlers
        .iter()
        .find(|h| h.topic.is_none() && h.codec.is_some_and(|c| c != "json"))
    {
        Some(h) => Err(Error::Schema {
            handler: h.name.clone(),
            location: h.location(),
            reason: "`codec` on a handler applies to its topic: add `topic = \"...\"`, or mark \
                     the topics in spine.toml with `[topics.<name>] codec = \"avro\"`"
                .into(),
        }),
        None => Ok(()),
    }
}

/// The configured topics and those the handlers name.
fn subscribed_topics(
    handlers: &[HandlerDescriptor],
    config: &Config,
) -> Result<BTreeSet<String>, Error> {
    let mut topics: BTreeSet<String> = config.app.topics.iter().cloned().collect();
    topics.extend(
        handlers
            .iter()
            .filter_map(|h| h.topic.as_deref())
            .map(str::to_owned),
    );
    if topics.is_empty() {
        return Err(Error::NoTopics);
    }
    Ok(topics)
}

/// The routes of one subscribed topic, by precedence: (topic, event), then
/// (*, event); the topic-wide handler, else the catch-all, takes the rest.
fn topic_routes(
    topic: String,
    codec: Option<Arc<dyn PayloadCodec>>,
    groups: &Groups,
    config: &Config,
) -> Result<TopicRoutes, Error> {
    let source = config.event_source(&topic).clone();
    if source == EventSource::Record && codec.is_none() {
        return Err(Error::config(
            format!("topics.{topic}.event"),
            "the `record` event source needs an Avro topic: add `codec = \"avro\"`",
        ));
    }
    let mut by_event = Events::default();
    for ((t, e), g) in groups {
        if let (None, Some(e)) = (t, e) {
            by_event.insert(e, route(g, &codec, &topic, e)?);
        }
    }
    for ((t, e), g) in groups {
        if let (Some(t), Some(e)) = (t, e) {
            if *t == topic {
                by_event.insert(e, route(g, &codec, &topic, e)?);
            }
        }
    }
    let topic_wide = groups
        .iter()
        .find(|((t, e), _)| t.as_deref() == Some(topic.as_str()) && e.is_none())
        .map(|(_, g)| g);
    let any = match topic_wide.or_else(|| groups.get(&(None, None))) {
        Some(g) => Some(route(g, &codec, &topic, "*")?),
        None => None,
    };
    if let Some(b) = by_event.values().find(|r| r.batch().is_some()) {
        let h = &b.handlers[0];
        return Err(Error::Schema {
            handler: h.name.clone(),
            location: h.location(),
            reason: "a batch handler takes every event of its topic: remove `event`".into(),
        });
    }
    if let Some(b) = any.as_ref().filter(|r| r.batch().is_some()) {
        check_batch_topic(&topic, &b.handlers[0], &by_event, config)?;
    }
    Ok(TopicRoutes {
        source,
        unknown: config.unknown_event(&topic),
        dead_letter_topic: config.dead_letter_topic(&topic),
        error_topic: config.error_event_topic(&topic),
        metrics: TopicMetrics::new(&topic),
        codec,
        topic: topic.as_str().into(),
        by_event,
        any,
        subscribed: true,
        parks: config.on_exhausted(&topic) == crate::config::OnExhausted::Park,
    })
}

/// A batch handler takes every message of its topic's partitions, in order:
/// no other handler may take some of them, and what batches cannot do yet
/// (the inbox, parking) is refused here rather than ignored.
fn check_batch_topic(
    topic: &str,
    h: &HandlerDescriptor,
    by_event: &Events,
    config: &Config,
) -> Result<(), Error> {
    let refuse = |reason: String| Error::Schema {
        handler: h.name.clone(),
        location: h.location(),
        reason,
    };
    if h.topic.is_none() {
        return Err(refuse(
            "a batch handler names its topic: `#[on(topic = \"orders\", batch(..))]`".into(),
        ));
    }
    if let Some(other) = by_event.values().flat_map(|r| r.handlers.iter()).next() {
        return Err(refuse(format!(
            "takes batches of topic `{topic}`, so it takes every event there, but handler `{}` \
             at {} handles `{}` events on it too; give one of them another topic",
            other.name,
            other.location(),
            other.event.as_deref().unwrap_or("some")
        )));
    }
    if config.on_exhausted(topic) == crate::config::OnExhausted::Park {
        return Err(refuse(format!(
            "batches cannot park yet: remove `on_exhausted = \"park\"` from [topics.{topic}] \
             (exhausted batches are dead-lettered message by message)"
        )));
    }
    #[cfg(feature = "inbox")]
    if config.inbox.url.is_some() {
        return Err(refuse(
            "batch handlers do not run through the inbox yet: remove `batch(..)` or `[inbox] url`"
                .into(),
        ));
    }
    Ok(())
}

/// The routes of an internal topic (completed aggregates): not subscribed,
/// one catch-all route.
fn internal_routes(t: &InternalTopic, config: &Config) -> Result<TopicRoutes, Error> {
    let fan_out = t.handlers.iter().all(|h| h.fan_out);
    if t.handlers.len() > 1 && !fan_out {
        return Err(duplicate(
            format!("the completed aggregates of `{}`", t.topic),
            &t.handlers[0],
            &t.handlers[1],
        ));
    }
    Ok(TopicRoutes {
        codec: None,
        source: EventSource::default(),
        unknown: UnknownEvent::DeadLetter,
        dead_letter_topic: t.dead_letter_topic.clone(),
        error_topic: config.error_event_topic(&t.topic),
        metrics: TopicMetrics::new(&t.topic),
        topic: t.topic.as_str().into(),
        by_event: Events::default(),
        any: Some(route(&t.handlers, &None, &t.topic, "*")?),
        subscribed: false,
        parks: false,
    })
}

/// One route: its handlers, each handler's reader compiled by the topic's
/// codec, and each handler's duration histogram.
fn route(
    g: &[HandlerDescriptor],
    codec: &Option<Arc<dyn PayloadCodec>>,
    topic: &str,
    event: &str,
) -> Result<Route, Error> {
    let readers = match codec {
        None => Vec::new(),
        Some(c) => g
            .iter()
            .map(|h| {
                if h.value_decoder.is_none() {
                    return Err(Error::Schema {
                        handler: h.name.clone(),
                        location: h.location(),
                        reason: format!(
                            "topic uses the `{}` codec, but the handler has no value decoder; \
                             declare it with #[on]",
                            c.name()
                        ),
                    });
                }
                c.reader(h.reader_schema.as_deref())
                    .map_err(|e| Error::Schema {
                        handler: h.name.clone(),
                        location: h.location(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let durations: Vec<metrics::Histogram> = g
        .iter()
        .map(|h| {
            metrics::histogram!(
                crate::metrics::HANDLER_DURATION,
                "topic" => topic.to_owned(),
                "event" => event.to_owned(),
                "handler" => h.name.to_string(),
                "transport" => "kafka"
            )
        })
        .collect();
    Ok(Route {
        handlers: g.to_vec().into(),
        readers: readers.into(),
        durations: durations.into(),
    })
}

/// The codec of a subscribed topic: from `[topics.<name>] codec`, or from a
/// handler of that topic declaring `codec = "..."`; both must agree.
fn topic_codec(
    topic: &str,
    handlers: &[HandlerDescriptor],
    config: &Config,
    codecs: &HashMap<String, Arc<dyn PayloadCodec>>,
) -> Result<Option<Arc<dyn PayloadCodec>>, Error> {
    let from_handler = handlers
        .iter()
        .find(|h| h.topic.as_deref() == Some(topic) && h.codec.is_some_and(|c| c != "json"));
    let name = match (config.codec(topic), from_handler) {
        (Some(c), Some(h)) if Some(c) != h.codec => {
            return Err(Error::config(
                format!("topics.{topic}.codec"),
                format!(
                    "says `{c}`, but handler `{}` at {} declares codec = \"{}\"",
                    h.name,
                    h.location(),
                    h.codec.unwrap_or_default()
                ),
            ))
        }
        (Some(c), _) => (c, None),
        (None, Some(h)) => (h.codec.unwrap_or_default(), Some(h)),
        (None, None) => return Ok(None),
    };
    let (name, declared_by) = name;
    codecs.get(name).cloned().map(Some).ok_or_else(|| {
        let whose = match declared_by {
            Some(h) => format!("handler `{}` at {} declares", h.name, h.location()),
            None => "says".to_owned(),
        };
        Error::config(
            format!("topics.{topic}.codec"),
            format!(
                "{whose} codec = \"{name}\", but no `{name}` codec is installed; register one \
                 with Builder::codec(\"{name}\", ..), or use \"json\" or \"avro\" (Spine's \
                 `avro` feature, on by default)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// A route told apart from others by the address of its handler list.
    fn route() -> Route {
        Route {
            handlers: Arc::from(Vec::new()),
            readers: Arc::from(Vec::new()),
            durations: Arc::from(Vec::new()),
        }
    }

    proptest! {
        /// Scanning (up to `SCAN` events) and bisecting (more) find what a
        /// map would, and a second insert of a name replaces its route.
        #[test]
        fn events_find_what_a_map_finds(
            inserts in proptest::collection::vec("[a-d.é]{0,6}", 0..40),
            probes in proptest::collection::vec("[a-d.é]{0,6}", 0..40),
        ) {
            let mut events = Events::default();
            let mut model = BTreeMap::new();
            for name in &inserts {
                let r = route();
                model.insert(name.clone(), Arc::as_ptr(&r.handlers));
                events.insert(name, r);
            }
            prop_assert_eq!(events.iter().count(), model.len());
            prop_assert!(events.iter().map(|(n, _)| n).eq(model.keys().map(String::as_str)));
            for name in inserts.iter().chain(&probes) {
                let found = events
                    .get(name.as_bytes())
                    .map(|(n, r)| (n.to_owned(), Arc::as_ptr(&r.handlers)));
                prop_assert_eq!(found, model.get(name).map(|p| (name.clone(), *p)));
            }
            prop_assert_eq!(events.get(&[0xff, b'a']).map(|(n, _)| n), None);
        }
    }
}
