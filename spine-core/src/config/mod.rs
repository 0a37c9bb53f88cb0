//! Configuration: `spine.toml` plus `SPINE_…` environment overrides, validated
//! at startup so that a bad value fails with its key and the reason.
//!
//! ```toml
//! [app]
//! name = "orders-service"      # ce_source of everything the app publishes
//! group = "orders-service"     # consumer group (SPINE_GROUP_ID overrides)
//! topics = ["audit"]           # subscribed besides the handlers' own topics
//! config_source = "sqlite://spine.db" # settings in a database row, reloaded live (feature `config-db`)
//!
//! [kafka]                      # passed as-is to librdkafka
//! "bootstrap.servers" = "localhost:9092"   # SPINE_BOOTSTRAP_SERVERS overrides
//!
//! [dispatch]
//! event = "header:ce_type"     # or "key", or "field:<name>" for JSON payloads
//! ordering = "key"             # or "partition", "none"
//! max_in_flight = 1024
//! unknown_event = "skip"       # or "dead_letter"
//! commit_interval = "1s"
//! shutdown_timeout = "30s"
//! commit_timeout = "5s"
//! in_flight_warning = "60s"   # a message in flight this long is logged at WARN
//!
//! [retry]
//! attempts = 3                 # 1 means no retries
//! backoff = "100ms"
//! max_backoff = "10s"
//! multiplier = 2.0
//! retry_panics = false        # true: a panic is retried like an error
//! on_exhausted = "dead_letter" # or "park": hold the key, retry slowly
//! park_backoff = "1s"          # then doubling up to park_max_backoff
//! park_max_backoff = "60s"
//! park_timeout = "1h"          # then dead-lettered, and the key drains
//! max_parked = 10000           # messages behind parked keys, per partition
//!
//! [http]                       # needs the `http` feature
//! listen = "127.0.0.1:9090"    # /metrics, /health/live, /health/ready, /; off when unset
//! liveness_ttl = "30s"
//! max_in_flight = 64           # endpoint requests at once; then 503 + Retry-After
//! request_timeout = "30s"      # then 503
//!
//! [http.endpoints.accept]      # expose, move or hide a handler over HTTP
//! route = "POST /orders/{key}" # the path parameter becomes the message key
//! namespace = "shop"           # path prefix and OpenAPI tag
//! summary = "Place an order"
//! roles = ["orders.write"]     # with [http.auth]: one of these is needed
//! publish = true               # false: replies are returned, not published
//! enabled = true
//!
//! [http.auth]
//! api_keys = { ORDERS_API_KEY = ["orders.write"] } # env var name -> roles
//! protect_operations = false   # true: /metrics, /health/*, docs need a credential
//!
//! [http.auth.jwt]              # bearer tokens
//! hs256_secret_env = "JWT_SECRET" # or rs256_public_key_file = "jwt.pub.pem"
//! roles_claim = "roles"
//!
//! [http.tls]                   # HTTPS (rustls)
//! cert_file = "cert.pem"
//! key_file = "key.pem"
//!
//! [telemetry]
//! log_format = "text"          # or "json": one object per line
//!
//! [dead_letter]
//! enabled = true
//! topic = "{topic}.dlq"
//!
//! [error_events]               # KaufmannEx-style `event.error.<name>` events
//! enabled = false
//! topic = "{topic}.errors"
//!
//! [schema_registry]            # for Avro topics
//! url = "http://localhost:8081" # SPINE_SCHEMA_REGISTRY_URL overrides
//! auto_register = false        # register unknown reply schemas
//! subject_strategy = "topic"   # or "record", "topic_record"
//!
//! [topics.orders]              # per-topic overrides
//! event = "key"                # or "record": the Avro record's full name
//! codec = "avro"               # or "json" (the default)
//! ```
//!
//! Environment overrides: `SPINE_BOOTSTRAP_SERVERS`, `SPINE_GROUP_ID`,
//! `SPINE_KAFKA__<PROPERTY>` (underscores become dots:
//! `SPINE_KAFKA__SESSION_TIMEOUT_MS` sets `session.timeout.ms`), and
//! `SPINE_<SECTION>__<KEY>` for everything else (`SPINE_DISPATCH__MAX_IN_FLIGHT=64`).
//! `SPINE_CONFIG` names the file to read instead of `./spine.toml`.
//!
//! Here: [`Config`], loading and validation; `sections` holds the tables
//! (`[app]`, `[dispatch]`, ...), `env` the `SPINE_*` overrides, `live` the
//! few values a running app takes changes of (`[app] config_source`).

mod env;
// Only a `config_source` row (feature `config-db`) sets live values.
#[cfg_attr(not(feature = "config-db"), allow(dead_code))]
pub(crate) mod live;
mod sections;

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::Error;
use env::with_env;

pub use sections::{
    AggregationConfig, AppConfig, AuthConfig, ConsumerConfig, DeadLetterConfig, DispatchConfig,
    EndpointConfig, ErrorEventsConfig, EventSource, HttpConfig, InboxConfig, InboxMode, JwtConfig,
    LogFormat, OnExhausted, OrderingPolicy, PipelineConfig, RequestConfig, RetryConfig,
    SchemaRegistryConfig, SubjectStrategy, TelemetryConfig, TlsConfig, TopicConfig, UnknownEvent,
};

/// The whole configuration of an app.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and subscriptions.
    #[serde(default)]
    pub app: AppConfig,
    /// librdkafka properties, passed through unchanged to the consumer and the producer.
    #[serde(default, deserialize_with = "kafka_properties")]
    pub kafka: BTreeMap<String, String>,
    /// How messages are routed and scheduled.
    #[serde(default)]
    pub dispatch: DispatchConfig,
    /// Retries of failed handlers.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Where poison messages go.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// `event.error.<name>` events for messages that failed for good.
    #[serde(default)]
    pub error_events: ErrorEventsConfig,
    /// The schema registry, for Avro topics.
    #[serde(default)]
    pub schema_registry: SchemaRegistryConfig,
    /// Per-topic overrides, keyed by topic name.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicConfig>,
    /// Per-pipeline settings, keyed by the pipeline's name (its module's name).
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Request-reply: where responses come back and how long to wait.
    #[serde(default)]
    pub requests: RequestConfig,
    /// Per-aggregation overrides, keyed by the aggregation's name.
    #[serde(default)]
    pub aggregations: BTreeMap<String, AggregationConfig>,
    /// The HTTP listener: metrics, health probes, status page.
    #[serde(default)]
    pub http: HttpConfig,
    /// Logs (and, with the `otel` feature, traces).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The database inbox and outbox (feature `inbox`).
    #[serde(default)]
    pub inbox: InboxConfig,
    /// Named consumers of a binary that runs several, keyed by name.
    #[serde(default)]
    pub consumers: BTreeMap<String, ConsumerConfig>,
}

impl Config {
    /// Reads `$SPINE_CONFIG` or `./spine.toml` (if it exists), then applies the
    /// `SPINE_…` environment overrides, then validates.
    pub fn load() -> Result<Config, Error> {
        let path = std::env::var("SPINE_CONFIG").unwrap_or_else(|_| "spine.toml".to_owned());
        if std::env::var_os("SPINE_CONFIG").is_some() && !Path::new(&path).exists() {
            return Err(Error::config(
                "SPINE_CONFIG",
                format!("file `{path}` does not exist"),
            ));
        }
        Self::extract(with_env(Figment::from(Toml::file(path))), true)
    }

    /// Reads the given TOML file, then applies the environment overrides.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, Error> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::config(
                "SPINE_CONFIG",
                format!("file `{}` does not exist", path.display()),
            ));
        }
        Self::extract(with_env(Figment::from(Toml::file(path))), true)
    }

    /// Parses TOML text. No environment overrides are applied.
    pub fn from_toml(text: &str) -> Result<Config, Error> {
        Self::extract(Figment::from(Toml::string(text)), false)
    }

    fn extract(figment: Figment, env: bool) -> Result<Config, Error> {
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(figment);
        let mut config: Config = figment.extract().map_err(figment_error)?;
        if env {
            config.apply_kafka_env();
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_kafka_env(&mut self) {
        for (name, value) in std::env::vars() {
            if let Some(prop) = name.strip_prefix("SPINE_KAFKA__") {
                let prop = prop.to_ascii_lowercase().replace('_', ".");
                self.kafka.insert(prop, value);
            }
        }
        if let Ok(servers) = std::env::var("SPINE_BOOTSTRAP_SERVERS") {
            self.kafka.insert("bootstrap.servers".to_owned(), servers);
        }
        if let Ok(group) = std::env::var("SPINE_GROUP_ID") {
            self.app.group = Some(group);
        }
        if let Ok(url) = std::env::var("SPINE_SCHEMA_REGISTRY_URL") {
            self.schema_registry.url = Some(url);
        }
    }

    /// Checks the values that types alone do not.
    pub fn validate(&self) -> Result<(), Error> {
        if self.app.name.trim().is_empty() {
            return Err(Error::config("app.name", "must not be empty"));
        }
        if self.dispatch.max_in_flight == 0 {
            return Err(Error::config(
                "dispatch.max_in_flight",
                "must be at least 1 (1 handles one message at a time)",
            ));
        }
        if self.retry.attempts == 0 {
            return Err(Error::config(
                "retry.attempts",
                "must be at least 1 (1 means no retries)",
            ));
        }
        if !(self.retry.multiplier.is_finite() && self.retry.multiplier >= 1.0) {
            return Err(Error::config("retry.multiplier", "must be a number >= 1.0"));
        }
        if self.retry.max_backoff < self.retry.backoff {
            return Err(Error::config(
                "retry.max_backoff",
                "must not be shorter than retry.backoff",
            ));
        }
        if self.retry.park_max_backoff < self.retry.park_backoff {
            return Err(Error::config(
                "retry.park_max_backoff",
                "must not be shorter than retry.park_backoff",
            ));
        }
        if self.retry.max_parked == 0 {
            return Err(Error::config(
                "retry.max_parked",
                "must be at least 1 (it bounds the messages waiting behind parked keys)",
            ));
        }
        if let Some(listen) = &self.http.listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(Error::config(
                    "http.listen",
                    format!("`{listen}` is not an address to listen on; write it as \"127.0.0.1:9090\" or \"0.0.0.0:9090\""),
                ));
            }
        }
        if self.dispatch.commit_interval.is_zero() {
            return Err(Error::config(
                "dispatch.commit_interval",
                "must be longer than zero, e.g. \"1s\"",
            ));
        }
        check_topic_pattern("dead_letter.topic", &self.dead_letter.topic)?;
        check_topic_pattern("error_events.topic", &self.error_events.topic)?;
        for (topic, t) in &self.topics {
            if let Some(dlq) = &t.dead_letter_topic {
                check_topic_pattern(&format!("topics.{topic}.dead_letter_topic"), dlq)?;
            }
            if let Some(codec) = &t.codec {
                if !matches!(codec.as_str(), "json" | "avro") {
                    return Err(Error::config(
                        format!("topics.{topic}.codec"),
                        format!("unknown codec `{codec}`; expected \"json\" or \"avro\""),
                    ));
                }
            }
        }
        for key in ["enable.auto.commit", "enable.auto.offset.store"] {
            if self.kafka.get(key).is_some_and(|v| v == "true") {
                return Err(Error::config(
                    format!("kafka.{key}"),
                    "Spine commits offsets itself, only after a message is handled; remove this setting",
                ));
            }
        }
        Ok(())
    }

    /// The consumer group id: `app.group`, else `kafka."group.id"`, else `app.name`.
    pub fn group_id(&self) -> &str {
        self.app
            .group
            .as_deref()
            .or(self.kafka.get("group.id").map(String::as_str))
            .unwrap_or(&self.app.name)
    }

    /// Makes this the configuration of the named consumer `name`: its group
    /// and topics from `[consumers.<name>]`, the group otherwise
    /// `<group>.<name>`.
    pub fn for_consumer(&mut self, name: &str) {
        let own = self.consumers.get(name).cloned().unwrap_or_default();
        let group = own
            .group
            .unwrap_or_else(|| format!("{}.{name}", self.group_id()));
        self.app.group = Some(group);
        if let Some(topics) = own.topics {
            self.app.topics = topics;
        }
    }

    /// `kafka."bootstrap.servers"`, if set.
    pub fn bootstrap_servers(&self) -> Option<&str> {
        self.kafka
            .get("bootstrap.servers")
            .or_else(|| self.kafka.get("metadata.broker.list"))
            .map(String::as_str)
    }

    /// Sets a librdkafka property.
    pub fn set_kafka(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.kafka.insert(key.into(), value.into());
        self
    }

    /// The event source of a topic: its override, else the app's.
    pub fn event_source(&self, topic: &str) -> &EventSource {
        self.topics
            .get(topic)
            .and_then(|t| t.event.as_ref())
            .unwrap_or(&self.dispatch.event)
    }

    /// The unknown-event policy of a topic.
    pub fn unknown_event(&self, topic: &str) -> UnknownEvent {
        self.topics
            .get(topic)
            .and_then(|t| t.unknown_event)
            .unwrap_or(self.dispatch.unknown_event)
    }

    /// What happens to `topic`'s messages whose retries are exhausted.
    pub fn on_exhausted(&self, topic: &str) -> OnExhausted {
        self.topics
            .get(topic)
            .and_then(|t| t.on_exhausted)
            .unwrap_or(self.retry.on_exhausted)
    }

    /// The dead-letter topic for messages from `topic`.
    pub fn dead_letter_topic(&self, topic: &str) -> String {
        let pattern = self
            .topics
            .get(topic)
            .and_then(|t| t.dead_letter_topic.as_deref())
            .unwrap_or(&self.dead_letter.topic);
        pattern.replace("{topic}", topic)
    }

    /// The codec named for `topic`, if not JSON.
    pub fn codec(&self, topic: &str) -> Option<&str> {
        self.topics
            .get(topic)
            .and_then(|t| t.codec.as_deref())
            .filter(|c| *c != "json")
    }

    /// The subject naming strategy of `topic`.
    pub fn subject_strategy(&self, topic: &str) -> SubjectStrategy {
        self.topics
            .get(topic)
            .and_then(|t| t.subject_strategy)
            .unwrap_or(self.schema_registry.subject_strategy)
    }

    /// The error-event topic for messages from `topic`.
    pub fn error_event_topic(&self, topic: &str) -> String {
        self.error_events.topic.replace("{topic}", topic)
    }
}

fn figment_error(e: figment::Error) -> Error {
    let key = if e.path.is_empty() {
        "spine.toml".to_owned()
    } else {
        e.path.join(".")
    };
    let mut reason = e.kind.to_string();
    if let Some(md) = &e.metadata {
        reason.push_str(&format!(" (from {})", md.name));
    }
    Error::config(key, reason)
}

fn check_topic_pattern(key: &str, pattern: &str) -> Result<(), Error> {
    let name = pattern.replace("{topic}", "t");
    let valid = !name.is_empty()
        && name.len() <= 249
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!(
                "`{pattern}` is not a valid topic name pattern: use letters, digits, `.`, `_`, `-` and `{{topic}}`"
            ),
        ))
    }
}

/// librdkafka takes every property as a string; TOML lets users write numbers
/// and booleans naturally.
fn kafka_properties<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.dispatch.max_in_flight, 1024);
        assert_eq!(c.dispatch.event, EventSource::Header("ce_type".into()));
        assert_eq!(c.group_id(), "spine-app");
        assert_eq!(c.dead_letter_topic("orders"), "orders.dlq");
    }

    #[test]
    fn parses_a_full_file() {
        let c = Config::from_toml(
            r#"
            [app]
            name = "svc"
            group = "g1"
            topics = ["extra"]
            [kafka]
            "bootstrap.servers" = "127.0.0.1:9092"
            "session.timeout.ms" = 6000
            "enable.partition.eof" = false
            [dispatch]
            event = "key"
            ordering = "partition"
            max_in_flight = 8
            unknown_event = "dead_letter"
            commit_interval = "250ms"
            [retry]
            attempts = 5
            backoff = "10ms"
            [topics.orders]
            event = "field:type"
            dead_letter_topic = "dead.{topic}"
            "#,
        )
        .unwrap();
        assert_eq!(c.kafka["session.timeout.ms"], "6000");
        assert_eq!(c.kafka["enable.partition.eof"], "false");
        assert_eq!(c.group_id(), "g1");
        assert_eq!(c.dispatch.ordering, OrderingPolicy::Partition);
        assert_eq!(c.dispatch.commit_interval, Duration::from_millis(250));
        assert_eq!(c.event_source("orders"), &EventSource::Field("type".into()));
        assert_eq!(c.event_source("other"), &EventSource::Key);
        assert_eq!(c.dead_letter_topic("orders"), "dead.orders");
        assert_eq!(c.unknown_event("orders"), UnknownEvent::DeadLetter);
    }

    #[test]
    fn ordering_none_is_the_unordered_policy() {
        for word in ["none", "unordered"] {
            let c = Config::from_toml(&format!("[dispatch]\nordering = \"{word}\"")).unwrap();
            assert_eq!(c.dispatch.ordering, OrderingPolicy::Unordered, "{word}");
        }
    }

    fn config_error(text: &str) -> (String, String) {
        match Config::from_toml(text) {
            Err(Error::Config { key, reason }) => (key, reason),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let (key, reason) = config_error("[dispatch]\nmax_in_flight = 0");
        assert_eq!(key, "dispatch.max_in_flight");
        assert!(reason.contains("at least 1"), "{reason}");

        let (key, reason) = config_error("[dispatch]\nordering = \"sideways\"");
        assert_eq!(key, "dispatch.ordering");
        assert!(reason.contains("sideways"), "{reason}");

        let (key, reason) = config_error("[dispatch]\nevent = \"body\"");
        assert_eq!(key, "dispatch.event");
        assert!(reason.contains("header:<name>"), "{reason}");

        let (key, reason) = config_error("[retry]\nbackoff = \"soon\"");
        assert_eq!(key, "retry.backoff");
        assert!(reason.contains("500ms"), "{reason}");

        let (key, reason) = config_error("[dispatch]\nmax_in_flihgt = 3");
        assert_eq!(key, "dispatch.max_in_flihgt");
        assert!(reason.contains("unknown field"), "{reason}");

        let (key, reason) = config_error("[kafka]\n\"enable.auto.commit\" = true");
        assert_eq!(key, "kafka.enable.auto.commit");
        assert!(reason.contains("commits offsets itself"), "{reason}");

        let (key, _) = config_error("[dead_letter]\ntopic = \"bad topic\"");
        assert_eq!(key, "dead_letter.topic");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = RetryConfig {
            attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            multiplier: 2.0,
            ..RetryConfig::default()
        };
        assert_eq!(r.delay(1), Duration::from_millis(100));
        assert_eq!(r.delay(2), Duration::from_millis(200));
        assert_eq!(r.delay(3), Duration::from_millis(350));
        assert_eq!(r.delay(9), Duration::from_millis(350));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn environment_overrides_the_file() {
        // figment::Jail isolates the process environment for this closure.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "spine.toml",
                "[app]\nname = \"svc\"\n[kafka]\n\"bootstrap.servers\" = \"file:1\"\n[dispatch]\nmax_in_flight = 4\n",
            )?;
            jail.set_env("SPINE_BOOTSTRAP_SERVERS", "env:2");
            jail.set_env("SPINE_GROUP_ID", "from-env");
            jail.set_env("SPINE_DISPATCH__MAX_IN_FLIGHT", "16");
            jail.set_env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000");
            let c = Config::load().expect("loads");
            assert_eq!(c.bootstrap_servers(), Some("env:2"));
            assert_eq!(c.group_id(), "from-env");
            assert_eq!(c.dispatch.max_in_flight, 16);
            assert_eq!(c.kafka["session.timeout.ms"], "6000");
            assert!(
                c.kafka.keys().all(|k| !k.contains('_')),
                "Kafka properties from the environment use dots: {:?}",
                c.kafka.keys()
            );
            assert_eq!(c.app.name, "svc");
            Ok(())
        });
    }
}
