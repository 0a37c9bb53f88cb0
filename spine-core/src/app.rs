//! Building and running an app: [`Spine::builder`] collects handlers, state,
//! middleware and configuration; [`Builder::build`] validates all of it and
//! builds the dispatch table; [`App::run`] consumes until SIGINT or SIGTERM.

use std::future::Future;
use std::sync::Arc;

use std::collections::{BTreeSet, HashMap};

use crate::codec::{CodecFactory, PayloadCodec};
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
    version: Option<&'static str>,
    /// Topics count locally for the status page (set by `build`).
    count_locally: bool,
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
        config: Config,
        outbound: impl FnOnce(&Config) -> Result<Outbound, Error>,
    ) -> Result<Arc<Shared>, Error> {
        config.validate()?;
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
            outbound: outbound(&config)?,
            table,
            states: self.states,
            middleware: self.middleware,
            stats: Stats::default(),
            unknown_seen: Default::default(),
            output_codecs,
            requests: crate::dispatch::request::Requests::new(&config),
            status: Default::default(),
            timed: config.http.listen.is_some(),
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
        let shared = self.build_shared(config, move |_: &Config| Ok(Outbound::Memory(sink)))?;
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
        let shared = self.build_shared(config, move |_: &Config| Ok(Outbound::Memory(sink)))?;
        crate::http::openapi_document(&shared, version)
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
        let mut signals = Box::pin(signals().map_err(Error::Signal)?);
        let shutdown = self.shutdown.clone();
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
        let result = consumer::run(self.shared, self.shutdown).await;
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
