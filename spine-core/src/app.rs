//! Building and running an app: [`Spine::builder`] collects handlers, state,
//! middleware and configuration; [`Builder::build`] validates all of it and
//! builds the dispatch table; [`App::run`] consumes until SIGINT or SIGTERM.

use std::future::Future;
use std::sync::Arc;

use std::collections::{BTreeSet, HashMap};

use crate::codec::{CodecFactory, PayloadCodec};
use crate::config::live::Live;
use crate::config::Config;
use crate::consumer;
use crate::dispatch::extract::States;
use crate::dispatch::handler::HandlerDescriptor;
use crate::dispatch::routing::{DispatchTable, RouteInfo};
use crate::dispatch::{Shared, Stats, StatsSnapshot};
use crate::error::Error;
use crate::middleware::Middleware;
use crate::outbound::Outbound;
use crate::shutdown::Shutdown;

/// Entry point: `Spine::builder()`.
#[derive(Debug)]
pub struct Spine;

impl Spine {
    /// Starts describing an app.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Collects what an app is made of. See [`Spine::builder`].
#[derive(Default)]
pub struct Builder {
    config: Option<Config>,
    handlers: Vec<HandlerDescriptor>,
    states: States,
    middleware: Vec<Arc<dyn Middleware>>,
    codecs: Vec<(String, CodecFactory)>,
    aggregates: Vec<crate::aggregate::Aggregate>,
    outgoing: crate::outbound::HookList,
    version: Option<&'static str>,
    /// Topics count locally for the status page (set by `build`).
    count_locally: bool,
    /// What a reloaded `config_source` row changes while the app runs.
    live: Arc<Live>,
}

impl Builder {
    /// Installs a payload codec under `name`, for topics with `codec = "<name>"`.
    /// The `spine` crate installs Avro.
    #[must_use]
    pub fn codec(
        mut self,
        name: &str,
        factory: impl Fn(&Config) -> Result<Arc<dyn PayloadCodec>, Error> + Send + Sync + 'static,
    ) -> Self {
        self.codecs.retain(|(n, _)| n != name);
        self.codecs.push((name.to_owned(), Arc::new(factory)));
        self
    }

    /// The app's own version, shown on the status page:
    /// `.version(env!("CARGO_PKG_VERSION"))`.
    #[must_use]
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Uses this configuration instead of loading `spine.toml` and the environment.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Changes the configuration: the one given with [`Builder::config`], or
    /// else `spine.toml` and the environment, loaded now. For what a command
    /// line overrides (a group, topics) before the app is built.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Result<Self, Error> {
        let mut config = match self.config.take() {
            Some(c) => c,
            None => Config::load()?,
        };
        f(&mut config);
        self.config = Some(config);
        Ok(self)
    }

    /// Registers handlers, usually with `spine::handlers![a, b, c]`.
    #[must_use]
    pub fn handlers(mut self, handlers: impl IntoIterator<Item = HandlerDescriptor>) -> Self {
        self.handlers.extend(handlers);
        self
    }

    /// Registers shared state, available to handlers as `State<T>`.
    #[must_use]
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Registers shared state you keep a handle to, available to handlers as `State<T>`.
    #[must_use]
    pub fn state_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.states.insert_arc(value);
        self
    }

    /// Adds an aggregation: parts from several topics joined by id, handled
    /// together once complete. See [`crate::Aggregate`].
    #[must_use]
    pub fn aggregate(mut self, aggregate: crate::aggregate::Aggregate) -> Self {
        self.aggregates.push(aggregate);
        self
    }

    /// Adds a producer hook that sees every record the app is about to publish
    /// (replies, emitted events, error events, requests; not dead letters):
    /// its topic, event, key, headers and payload. It returns the record
    /// unchanged (`Ok(Some(record))`), changed, or `Ok(None)` to drop it.
    /// A hook that fails or panics is logged and counted
    /// (`spine_outgoing_hook_errors_total`), and the record is published as it
    /// was given to it; drops are counted (`spine_outgoing_dropped_total`).
    /// Hooks run in the order added, each on what the one before returned.
    ///
    /// ```
    /// # use spine_kafka_core::Spine;
    /// let builder = Spine::builder().outgoing(|mut record| {
    ///     record.set_header("x-origin", "billing");
    ///     Ok::<_, std::convert::Infallible>(Some(record))
    /// });
    /// ```
    #[must_use]
    pub fn outgoing<F, E>(mut self, hook: F) -> Self
    where
        F: Fn(crate::Sent) -> Result<Option<crate::Sent>, E> + Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.outgoing.push(None, hook);
        self
    }

    /// Adds a producer hook for the records of one event (`ce_type`), as
    /// [`Builder::outgoing`] does for all of them: the way to filter or
    /// transform one kind of event.
    #[must_use]
    pub fn outgoing_event<F, E>(mut self, event: &str, hook: F) -> Self
    where
        F: Fn(crate::Sent) -> Result<Option<crate::Sent>, E> + Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.outgoing.push(Some(event), hook);
        self
    }

    /// Adds a middleware; they run in the order added.
    #[must_use]
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Validates everything and builds the app. Nothing connects yet.
    pub fn build(self) -> Result<App, Error> {
        let config = match &self.config {
            Some(c) => c.clone(),
            None => Config::load()?,
        };
        if config.bootstrap_servers().is_none() {
            return Err(Error::config(
                "kafka.bootstrap.servers",
                "not set: add `\"bootstrap.servers\" = \"host:9092\"` under [kafka] in spine.toml, \
                 or set SPINE_BOOTSTRAP_SERVERS",
            ));
        }
        if config.app.config_source.is_some() {
            #[cfg(not(feature = "config-db"))]
            let reason = "settings held in a database need Spine's `config-db` feature: \
                 spine-kafka = { version = \"...\", features = [\"config-db\"] }";
            #[cfg(feature = "config-db")]
            let reason = "its row is applied, and reloaded, by the supervisor: run the app \
                 with `spine::run(builder)` (or `spine::settings::Supervised`), \
                 not `build()?.run()`";
            return Err(Error::config("app.config_source", reason));
        }
        #[cfg(not(feature = "inbox"))]
        if config.inbox.url.is_some() {
            return Err(Error::config(
                "inbox.url",
                "the inbox needs Spine's `inbox` feature: \
                 spine-kafka = { version = \"...\", features = [\"inbox\"] }",
            ));
        }
        // Before the dispatch table takes its metric handles from it.
        let count_locally = config.http.listen.is_some() && http_recorder()?;
        let builder = Builder {
            count_locally,
            ..self
        };
        let version = builder.version;
        let shared = builder.build_shared(config, Outbound::kafka)?;
        consumer::check_consumer_config(&shared)?;
        for r in shared.table.describe().iter().filter(|r| r.subscribed) {
            let event = r.event.as_deref().unwrap_or("*");
            tracing::info!(topic = %r.topic, %event, handler = %r.display_name(), "route");
        }
        Ok(App {
            shared,
            shutdown: Shutdown::new(),
            version,
        })
    }

    pub(crate) fn build_shared(
        mut self,
        mut config: Config,
        outbound: impl FnOnce(&Config) -> Result<Outbound, Error>,
    ) -> Result<Arc<Shared>, Error> {
        config.validate()?;
        // In queue mode the inbox's scheduler retries (`[inbox] max_attempts`):
        // a worker gives a row one attempt per claim.
        if config.inbox.url.is_some() && config.inbox.mode == crate::config::InboxMode::Queue {
            config.retry.attempts = 1;
        }
        // Aggregations: their parts are routes like any handler's; completed
        // aggregates are dispatched on an internal topic each.
        let mut internal = Vec::new();
        let mut seen = BTreeSet::new();
        for agg in std::mem::take(&mut self.aggregates) {
            if !seen.insert(agg.name().to_owned()) {
                return Err(Error::config(
                    format!("aggregations.{}", agg.name()),
                    "two aggregations have this name",
                ));
            }
            let topic = agg.internal_topic();
            let (parts, handlers, dlq) = agg.install(&config)?;
            self.handlers.extend(parts);
            internal.push(crate::dispatch::routing::InternalTopic {
                topic,
                handlers,
                dead_letter_topic: dlq,
            });
        }
        // Codecs are created only if some topic uses them (Avro needs a registry URL).
        let mut wanted: BTreeSet<&str> = config
            .topics
            .keys()
            .filter_map(|t| config.codec(t))
            .collect();
        wanted.extend(
            self.handlers
                .iter()
                .filter_map(|h| h.codec)
                .filter(|c| *c != "json"),
        );
        let mut codecs: HashMap<String, Arc<dyn PayloadCodec>> = HashMap::new();
        for name in wanted {
            if let Some((_, factory)) = self.codecs.iter().find(|(n, _)| n == name) {
                codecs.insert(name.to_owned(), factory(&config)?);
            }
        }
        let mut table = DispatchTable::build(&self.handlers, &internal, &config, &codecs)?;
        if self.count_locally {
            table.count_locally();
        }
        // What the app publishes is encoded by the codec of the destination topic.
        let mut output_codecs = HashMap::new();
        for topic in config.topics.keys() {
            if let Some(c) = config.codec(topic).and_then(|name| codecs.get(name)) {
                output_codecs.insert(topic.clone(), c.clone());
            }
        }
        for t in table.topics() {
            if let Some(c) = &t.codec {
                output_codecs
                    .entry(t.topic.to_string())
                    .or_insert(c.clone());
            }
        }
        let aggregate_handlers = internal.iter().flat_map(|t| &t.handlers);
        for h in self.handlers.iter().chain(aggregate_handlers) {
            if let Some(p) = &h.pipeline {
                p.configure(&config)?;
            }
            if let Some(state) = h.handler.missing_state(&self.states) {
                return Err(Error::MissingState {
                    handler: h.name.clone(),
                    location: h.location(),
                    state,
                });
            }
        }
        Ok(Arc::new(Shared {
            outbound: outbound(&config)?.with_hooks(std::mem::take(&mut self.outgoing).freeze()),
            table,
            states: self.states,
            middleware: self.middleware,
            stats: Stats::default(),
            unknown_seen: Default::default(),
            output_codecs,
            requests: crate::dispatch::request::Requests::new(&config),
            status: Default::default(),
            timed: config.http.listen.is_some(),
            live: self.live,
            #[cfg(feature = "inbox")]
            outbox: Default::default(),
            config,
        }))
    }

    /// Builds the dispatch table without connecting to anything, and returns
    /// the configuration and the routes: for `routes`, schema export and
    /// checks, AsyncAPI. Without `.config(...)`, reads spine.toml and the
    /// environment; `bootstrap.servers` may be unset.
    pub fn describe(mut self) -> Result<(Config, Vec<RouteInfo>), Error> {
        let config = match self.config.take() {
            Some(c) => c,
            None => Config::load()?,
        };
        let sink = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let shared = self.build_shared(config, move |_: &Config| Ok(Outbound::memory(sink)))?;
        Ok((shared.config.clone(), shared.table.describe()))
    }

    /// The OpenAPI 3.1 document of the handlers served over HTTP, as `GET
    /// /openapi.json` serves it, built without connecting to anything: for the
    /// service's `openapi` command.
    #[cfg(feature = "http")]
    pub fn openapi(mut self) -> Result<serde_json::Value, Error> {
        let config = match self.config.take() {
            Some(c) => c,
            None => Config::load()?,
        };
        let version = self.version;
        let sink = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let shared = self.build_shared(config, move |_: &Config| Ok(Outbound::memory(sink)))?;
        crate::http::openapi_document(&shared, version)
    }

    /// A copy to build the app again from, for one supervised app
    /// (`[app] config_source`): the builds run one after the other, sharing
    /// `live`.
    #[cfg_attr(not(feature = "config-db"), allow(dead_code))]
    pub(crate) fn duplicate(&self, config: Config, live: Arc<Live>) -> Builder {
        Builder {
            config: Some(config),
            handlers: self.handlers.clone(),
            states: self.states.clone(),
            middleware: self.middleware.clone(),
            codecs: self.codecs.clone(),
            aggregates: self.aggregates.clone(),
            outgoing: self.outgoing.clone(),
            version: self.version,
            count_locally: false,
            live,
        }
    }

    pub(crate) fn take_config(&mut self) -> Option<Config> {
        self.config.take()
    }
}

/// `[http]` is on: installs Spine's Prometheus recorder unless the app
/// installed one; whether Spine's is the one. Refused without the feature.
fn http_recorder() -> Result<bool, Error> {
    #[cfg(feature = "http")]
    {
        let ours = crate::http::install_recorder();
        if !ours {
            tracing::info!(
                "a metrics recorder of the app's own is installed; /metrics answers 404"
            );
        }
        Ok(ours)
    }
    #[cfg(not(feature = "http"))]
    Err(Error::config(
        "http.listen",
        "this build has no HTTP listener: enable the `http` feature of spine-kafka \
         (on by default), or unset it",
    ))
}

/// A built app, ready to run.
pub struct App {
    shared: Arc<Shared>,
    shutdown: Shutdown,
    version: Option<&'static str>,
}

impl App {
    /// Consumes and handles until SIGINT or SIGTERM (or [`Shutdown::trigger`]),
    /// then stops fetching, lets in-flight handlers finish within
    /// `dispatch.shutdown_timeout`, commits, and returns `Ok(())`.
    pub async fn run(self) -> Result<(), Error> {
        stop_on_signals(self.shutdown.clone())?;
        self.run_until(std::future::pending()).await
    }

    /// Like [`App::run`], but stops when `stop` completes instead of on signals.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        crate::dispatch::unwind::warn_if_abort();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            stop.await;
            shutdown.trigger();
        });
        #[cfg(feature = "http")]
        let listener = crate::http::start(self.shared.clone(), self.version).await?;
        #[cfg(not(feature = "http"))]
        let _ = self.version;
        // The relay stops after the consumer, so that what the last handlers
        // wrote is published too.
        #[cfg(feature = "inbox")]
        let stop = Shutdown::new();
        #[cfg(feature = "inbox")]
        let relay = crate::inbox::start(&self.shared, &stop).await?;
        #[cfg(feature = "inbox")]
        let relay_wait = self.shared.config.dispatch.commit_timeout;
        let result = consumer::run(self.shared, self.shutdown).await;
        // What the outbox holds is published before the app stops, as long
        // as that takes no longer than a commit may; the rest goes at the
        // next start.
        #[cfg(feature = "inbox")]
        if let Some(relay) = relay {
            stop.trigger();
            if tokio::time::timeout(relay_wait, relay).await.is_err() {
                stop.force();
                tracing::warn!("the outbox relay did not finish in time; unsent rows are published at the next start");
            }
        }
        #[cfg(feature = "http")]
        if let Some(l) = listener {
            l.stop().await;
        }
        result
    }

    /// A handle that stops the app from elsewhere.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// A handle to read the app's counters while it runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The dispatch table, one row per (topic, event, handler): the same
    /// rows as `Builder::describe`, the `routes` command and AsyncAPI.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.shared.table.describe()
    }
}

/// Reads an app's counters.
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.stats.snapshot()
    }
}

/// The first SIGINT or SIGTERM stops `shutdown` gracefully, the second at once.
pub(crate) fn stop_on_signals(shutdown: Shutdown) -> Result<(), Error> {
    let mut signals = Box::pin(signals().map_err(Error::Signal)?);
    tokio::spawn(async move {
        use futures::StreamExt;
        if signals.next().await.is_some() {
            tracing::info!("shutdown signal received; a second one stops at once");
            shutdown.trigger();
        }
        if signals.next().await.is_some() {
            tracing::warn!("second shutdown signal: stopping at once");
            shutdown.force();
        }
    });
    Ok(())
}

/// SIGINT and SIGTERM, as a stream: each one received is one item.
#[cfg(unix)]
fn signals() -> std::io::Result<impl futures::Stream<Item = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(futures::stream::poll_fn(move |cx| {
        match (term.poll_recv(cx), int.poll_recv(cx)) {
            (std::task::Poll::Ready(_), _) | (_, std::task::Poll::Ready(_)) => {
                std::task::Poll::Ready(Some(()))
            }
            _ => std::task::Poll::Pending,
        }
    }))
}

/// Ctrl-C, as a stream: each one received is one item.
#[cfg(not(unix))]
fn signals() -> std::io::Result<impl futures::Stream<Item = ()> + Send> {
    Ok(futures::stream::unfold((), |()| async {
        tokio::signal::ctrl_c().await.ok().map(|()| ((), ()))
    }))
}
