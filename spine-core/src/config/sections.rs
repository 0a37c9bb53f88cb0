//! The tables of `spine.toml` (`[app]`, `[dispatch]`, `[retry]`, ...), their
//! defaults, and the value types they use; durations are written as
//! humantime strings ("500ms", "2s").

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// `[pipelines.<name>]`: overrides for one `#[pipeline]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Messages this pipeline handles at once (within `dispatch.max_in_flight`).
    pub max_concurrent: Option<usize>,
    /// Values of the steps' `#[arg]` parameters, by parameter name; they
    /// override `args(...)` of the attribute.
    pub args: BTreeMap<String, serde_json::Value>,
}

/// `[requests]`: request-reply with [`crate::Context::request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConfig {
    /// Topic responses come back on; `{app}` is the app's name. Every
    /// instance reads all of it and keeps the responses to its own requests.
    pub reply_topic: String,
    /// How long a request waits for its response unless `.timeout(...)` says otherwise.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for RequestConfig {
    fn default() -> Self {
        RequestConfig {
            reply_topic: "{app}.replies".to_owned(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// `[aggregations.<name>]`: overrides for one aggregation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationConfig {
    /// How long an aggregate may stay incomplete, from its first part.
    #[serde(with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Most aggregates open at once; past it the oldest expires.
    pub max_open: Option<usize>,
    /// Where expired aggregates' parts go.
    pub dead_letter_topic: Option<String>,
}

/// `[inbox]`: the database inbox and outbox (feature `inbox`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboxConfig {
    /// `sqlite://spine.db` (a file, created if missing) or
    /// `postgres://user@host/db`. Off when unset.
    pub url: Option<String>,
    /// `dedupe` (handle at once, drop re-deliveries) or `queue` (store, then
    /// handle from the table).
    pub mode: InboxMode,
    /// Database connections (SQLite: always 1, its writers take turns).
    pub max_connections: u32,
    /// Outbox rows the relay publishes per round.
    pub relay_batch: usize,
    /// How often the relay looks for rows another process (or a crash) left.
    #[serde(with = "duration")]
    pub relay_interval: Duration,
    /// Queue mode: rows handled at once.
    pub workers: usize,
    /// Queue mode: attempts of a row before it is `dead`.
    pub max_attempts: u32,
    /// Queue mode: the first retry's delay; doubled per attempt.
    #[serde(with = "duration")]
    pub backoff: Duration,
    /// Queue mode: the longest delay between attempts.
    #[serde(with = "duration")]
    pub max_backoff: Duration,
    /// Queue mode: how long a claimed row stays claimed by a worker that
    /// stopped answering (a crash) before another takes it.
    #[serde(with = "duration")]
    pub lease: Duration,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            url: None,
            mode: InboxMode::Dedupe,
            max_connections: 8,
            relay_batch: 500,
            relay_interval: Duration::from_secs(1),
            workers: 8,
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            lease: Duration::from_secs(60),
        }
    }
}

/// `[inbox] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InboxMode {
    /// Handle each message at once; record its id with its outcome, in one
    /// transaction, and skip a message whose id is recorded.
    Dedupe,
    /// Store each message as `pending` and commit its offset; workers handle
    /// the rows, retry failures with backoff, and mark them `processed`,
    /// `error` or `dead`.
    Queue,
}

/// `[consumers.<name>]`: settings of one named consumer of a binary that
/// runs several (`spine::run_many`). What it leaves unset comes from `[app]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Its consumer group. Default: the app's group followed by `.<name>`,
    /// so that two consumers of one binary never share a group by accident.
    pub group: Option<String>,
    /// Topics it subscribes besides its handlers' own (replaces `[app] topics`).
    pub topics: Option<Vec<String>>,
}

/// `[app]`: the service's identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// Name of the app; the `ce_source` of everything it publishes.
    pub name: String,
    /// Consumer group id. Defaults to `name`. `SPINE_GROUP_ID` overrides it.
    pub group: Option<String>,
    /// Topics subscribed besides those named by handlers (needed for handlers
    /// declared with an `event` but no `topic`).
    pub topics: Vec<String>,
    /// A database holding this app's settings in its `spine_consumer_configs`
    /// row (`sqlite://<file>` or `postgres://...`; feature `config-db`): input
    /// and output topics, metadata, bootstrap servers, the aggregation
    /// timeout, `max_in_flight` and `enabled`, reloaded while the app runs.
    /// `SPINE_APP__CONFIG_SOURCE` overrides it.
    pub config_source: Option<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            name: "spine-app".to_owned(),
            group: None,
            topics: Vec::new(),
            config_source: None,
        }
    }
}

/// `[http]`: the service's HTTP listener (Prometheus metrics, health
/// probes, routes, AsyncAPI, a status page, and the handlers exposed as
/// endpoints with their OpenAPI document). Off unless `listen` is set; needs
/// the `http` feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The address to listen on, e.g. `"127.0.0.1:9090"` (`0.0.0.0:9090` in
    /// a container). `SPINE_HTTP__LISTEN` overrides it.
    pub listen: Option<String>,
    /// `/health/live` answers 503 when the consumer loop has not gone round
    /// for this long (it goes round at least every second while it runs,
    /// paused or not).
    #[serde(with = "duration")]
    pub liveness_ttl: Duration,
    /// Endpoint requests handled at once; past it a request gets `503` with
    /// `Retry-After` at once, rather than queueing.
    pub max_in_flight: usize,
    /// How long an endpoint request may take, publishing its replies
    /// included; past it the caller gets `503`.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// `[http.endpoints.<handler>]`: expose, move or hide a handler's
    /// endpoint; each value overrides what `#[on(http = ...)]` says.
    pub endpoints: BTreeMap<String, EndpointConfig>,
    /// `[http.auth]`: who may call the endpoints.
    pub auth: AuthConfig,
    /// `[http.tls]`: serve HTTPS.
    pub tls: Option<TlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: None,
            liveness_ttl: Duration::from_secs(30),
            max_in_flight: 64,
            request_timeout: Duration::from_secs(30),
            endpoints: BTreeMap::new(),
            auth: AuthConfig::default(),
            tls: None,
        }
    }
}

/// `[http.endpoints.<handler>]`: one handler's endpoint. Unset values keep
/// what the handler's attribute says.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointConfig {
    /// `"POST /orders"`, or `"POST /orders/{key}"` where the path's
    /// parameter becomes the message key.
    pub route: Option<String>,
    /// `false` hides the endpoint.
    pub enabled: Option<bool>,
    /// A path prefix, and the endpoint's tag in the OpenAPI document.
    pub namespace: Option<String>,
    /// One line shown in the OpenAPI document and on `/docs`.
    pub summary: Option<String>,
    /// A caller needs one of these roles (with `[http.auth]`).
    pub roles: Option<Vec<String>>,
    /// Whether the replies are also published to Kafka (the default), or
    /// only returned.
    pub publish: Option<bool>,
}

/// `[http.auth]`: credentials for the endpoints. With neither `api_keys`
/// nor `jwt`, the endpoints are open.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// API keys, sent in the `X-API-Key` header: the name of the
    /// environment variable holding each key, and the roles it grants, e.g.
    /// `ORDERS_API_KEY = ["orders.write"]`. Keys are read at start and
    /// never logged.
    pub api_keys: BTreeMap<String, Vec<String>>,
    /// Bearer JSON Web Tokens (`Authorization: Bearer ...`).
    pub jwt: Option<JwtConfig>,
    /// Whether `/metrics`, `/health/*`, the status page and the documents
    /// need a credential too (any role).
    pub protect_operations: bool,
}

/// `[http.auth.jwt]`: how bearer tokens are verified. Exactly one of
/// `hs256_secret_env` and `rs256_public_key_file`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// The environment variable holding the HS256 secret.
    pub hs256_secret_env: Option<String>,
    /// A PEM file of the RS256 public key.
    pub rs256_public_key_file: Option<std::path::PathBuf>,
    /// The claim listing the caller's roles (an array of strings, or a
    /// string of space-separated roles, as OAuth2's `scope`).
    pub roles_claim: String,
    /// The `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// The `aud` a token must carry, when set.
    pub audience: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            hs256_secret_env: None,
            rs256_public_key_file: None,
            roles_claim: "roles".to_owned(),
            issuer: None,
            audience: None,
        }
    }
}

/// `[http.tls]`: the listener serves HTTPS (rustls) with this certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate chain.
    pub cert_file: std::path::PathBuf,
    /// PEM file of the private key.
    pub key_file: std::path::PathBuf,
}

/// `[telemetry]`: how the app's logs are written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `"text"` (the default) or `"json"`: one JSON object per line, with
    /// the message's fields, for log shippers. Read by `spine::init_tracing`.
    pub log_format: LogFormat,
    /// With the `otel` feature: where spans are exported through OTLP over
    /// HTTP, e.g. `"http://127.0.0.1:4318/v1/traces"`. Off when unset.
    pub otlp_endpoint: Option<String>,
}

/// The format of log lines (`[telemetry] log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[dispatch]`: routing and scheduling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Where the event name comes from.
    pub event: EventSource,
    /// Which messages must be handled in order.
    pub ordering: OrderingPolicy,
    /// Messages handled or waiting at once before fetching pauses.
    pub max_in_flight: usize,
    /// What happens to a message no handler matches.
    pub unknown_event: UnknownEvent,
    /// How often finished offsets are committed.
    #[serde(with = "duration")]
    pub commit_interval: Duration,
    /// How long shutdown waits for in-flight handlers.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// How long a commit that must be confirmed (the final one at shutdown)
    /// waits for the broker. A stop takes at most `shutdown_timeout` plus
    /// this, whether the broker is up or not.
    #[serde(with = "duration")]
    pub commit_timeout: Duration,
    /// A message in flight for longer than this (its handler, its key's
    /// turn, its records' acknowledgement, its aggregate) is logged at WARN,
    /// and again each time as long passes.
    #[serde(with = "duration")]
    pub in_flight_warning: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            event: EventSource::default(),
            ordering: OrderingPolicy::Key,
            max_in_flight: 1024,
            unknown_event: UnknownEvent::Skip,
            commit_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            commit_timeout: Duration::from_secs(5),
            in_flight_warning: Duration::from_secs(60),
        }
    }
}

/// `[retry]`: exponential backoff for failed handlers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Total attempts per message, the first included. `1` disables retries.
    pub attempts: u32,
    /// Wait before the first retry.
    #[serde(with = "duration")]
    pub backoff: Duration,
    /// Upper bound of the wait between attempts.
    #[serde(with = "duration")]
    pub max_backoff: Duration,
    /// Factor applied to the wait after each attempt.
    pub multiplier: f64,
    /// Whether a handler that panicked is retried like one that returned an
    /// error. By default a panic sends its message to the dead-letter topic
    /// at once: a bug rarely goes away on its own.
    pub retry_panics: bool,
    /// What happens to a message whose retries are exhausted: dead-lettered
    /// (the default), or its key parked. Per topic: `[topics.<name>]`.
    pub on_exhausted: OnExhausted,
    /// With `park`: the wait before the first retry of a parked message.
    #[serde(with = "duration")]
    pub park_backoff: Duration,
    /// With `park`: the longest wait between retries of a parked message
    /// (the wait doubles up to it).
    #[serde(with = "duration")]
    pub park_max_backoff: Duration,
    /// With `park`: how long a message stays parked before it is
    /// dead-lettered and its key's backlog drains.
    #[serde(with = "duration")]
    pub park_timeout: Duration,
    /// With `park`: how many messages may wait behind parked keys, per
    /// partition. Past it, the partition stops fetching until a key unparks.
    pub max_parked: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            retry_panics: false,
            on_exhausted: OnExhausted::DeadLetter,
            park_backoff: Duration::from_secs(1),
            park_max_backoff: Duration::from_secs(60),
            park_timeout: Duration::from_secs(3600),
            max_parked: 10_000,
        }
    }
}

/// What happens to a message whose retries are exhausted (`[retry] on_exhausted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// Publish it to the dead-letter topic and go on with its key.
    DeadLetter,
    /// Park its key: the message is retried on a slow schedule
    /// (`park_backoff` .. `park_max_backoff`) and the key's later messages
    /// wait behind it, while other keys flow. After `park_timeout` it is
    /// dead-lettered and the key's backlog drains in order. The partition's
    /// committed offset stays below a parked message, so a restart handles
    /// it, and what follows it in the partition, again.
    Park,
}

impl RetryConfig {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.multiplier.powi(attempt.saturating_sub(1) as i32);
        let secs = (self.backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// `[dead_letter]`: where poison messages go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// When false, failed messages are logged, counted and committed, not published.
    pub enabled: bool,
    /// Topic pattern; `{topic}` is the source topic.
    pub topic: String,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            enabled: true,
            topic: "{topic}.dlq".to_owned(),
        }
    }
}

/// `[error_events]`: KaufmannEx-style `event.error.<event>` events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorEventsConfig {
    /// Emit an error event when a message fails for good.
    pub enabled: bool,
    /// Topic pattern; `{topic}` is the source topic.
    pub topic: String,
}

impl Default for ErrorEventsConfig {
    fn default() -> Self {
        ErrorEventsConfig {
            enabled: false,
            topic: "{topic}.errors".to_owned(),
        }
    }
}

/// `[schema_registry]`: where Avro schemas live.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `http://localhost:8081`. `SPINE_SCHEMA_REGISTRY_URL` overrides it.
    pub url: Option<String>,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// Bearer token (instead of basic auth).
    pub token: Option<String>,
    /// Register the schemas of replies and emitted events that the registry
    /// does not know yet. Off by default: schemas are usually registered by CI.
    pub auto_register: bool,
    /// How subjects are named when encoding.
    pub subject_strategy: SubjectStrategy,
}

impl fmt::Debug for SchemaRegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistryConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("auto_register", &self.auto_register)
            .field("subject_strategy", &self.subject_strategy)
            .finish()
    }
}

/// Confluent's subject name strategies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectStrategy {
    /// `<topic>-value` (`TopicNameStrategy`, the default).
    #[default]
    Topic,
    /// `<record full name>` (`RecordNameStrategy`).
    Record,
    /// `<topic>-<record full name>` (`TopicRecordNameStrategy`).
    TopicRecord,
}

/// `[topics.<name>]`: overrides for one topic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicConfig {
    /// The payload format: `"json"` (default) or `"avro"`. Applies to what is
    /// consumed from and published to the topic.
    pub codec: Option<String>,
    /// Subject naming for this topic, overriding `[schema_registry]`.
    pub subject_strategy: Option<SubjectStrategy>,
    /// Where this topic's event names come from.
    pub event: Option<EventSource>,
    /// What happens to this topic's unmatched messages.
    pub unknown_event: Option<UnknownEvent>,
    /// What happens to this topic's messages whose retries are exhausted.
    pub on_exhausted: Option<OnExhausted>,
    /// Dead-letter topic for this topic (a name, `{topic}` allowed).
    pub dead_letter_topic: Option<String>,
    /// The `.avsc` file of the topic's value schema, relative to spine.toml;
    /// `spine schemas register` registers it under this topic's subject.
    pub schema: Option<String>,
}

/// Where a message's event name comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// A header; `header:ce_type` (CloudEvents binary mode) is the default.
    Header(String),
    /// The message key.
    Key,
    /// A top-level string field of a JSON payload.
    Field(String),
    /// The full name of the payload's Avro record (one topic, several record types).
    Record,
}

impl Default for EventSource {
    fn default() -> Self {
        EventSource::Header(crate::headers::CE_TYPE.to_owned())
    }
}

impl FromStr for EventSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let non_empty = |rest: &str, what: &str| {
            if rest.is_empty() {
                Err(format!("`{what}:` needs a name, e.g. `{what}:ce_type`"))
            } else {
                Ok(rest.to_owned())
            }
        };
        match s.split_once(':') {
            None if s == "key" => Ok(EventSource::Key),
            None if s == "record" => Ok(EventSource::Record),
            Some(("header", rest)) => non_empty(rest, "header").map(EventSource::Header),
            Some(("field", rest)) => non_empty(rest, "field").map(EventSource::Field),
            _ => Err(format!(
                "unknown event source `{s}`; expected `header:<name>`, `key`, `field:<name>` or `record`"
            )),
        }
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventSource::Header(h) => write!(f, "header:{h}"),
            EventSource::Key => f.write_str("key"),
            EventSource::Field(n) => write!(f, "field:{n}"),
            EventSource::Record => f.write_str("record"),
        }
    }
}

impl Serialize for EventSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which messages must be handled in order (`[dispatch] ordering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderingPolicy {
    /// Same key, same partition: in order. Different keys run concurrently.
    /// Messages without a key are ordered with each other per partition.
    Key,
    /// One message at a time per partition.
    Partition,
    /// No ordering: every message may run concurrently (`ordering = "none"`).
    #[serde(rename = "none", alias = "unordered")]
    Unordered,
}

/// What happens to a message whose event has no handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownEvent {
    /// Count it, log it, commit it.
    Skip,
    /// Count it, log it, and publish it to the dead-letter topic.
    DeadLetter,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => humantime::parse_duration(&s).map(Some).map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a duration ({e}); write e.g. \"500ms\", \"2s\" or \"1m\""
                ))
            }),
        }
    }
}

mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a duration ({e}); write e.g. \"500ms\", \"2s\" or \"1m\""
            ))
        })
    }
}
