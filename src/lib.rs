//! Spine: typed Kafka event handlers for Rust.
//!
//! ```no_run
//! use spine::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct OrderPlaced { order_id: String, amount_cents: i64 }
//!
//! #[derive(Serialize)]
//! struct OrderAccepted { order_id: String, accepted: bool }
//!
//! #[on(event = "order.placed", topic = "orders")]
//! async fn accept(order: OrderPlaced, meta: Meta) -> Result<Reply, HandlerError> {
//!     if order.amount_cents < 0 {
//!         return Err(HandlerError::msg("negative amount"));
//!     }
//!     let accepted = OrderAccepted { order_id: order.order_id, accepted: true };
//!     Ok(Reply::to("orders.accepted", "order.accepted", accepted))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), spine::Error> {
//!     spine::init_tracing();
//!     Spine::builder()
//!         .handlers(spine::handlers![accept])
//!         .build()? // reads spine.toml and SPINE_* variables
//!         .run()    // until SIGINT or SIGTERM
//!         .await
//! }
//! ```
//!
//! See the README for the whole guide.
#![warn(missing_docs)]

#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
pub use cli::{run, run_from, run_many, run_many_from};

pub use spine_kafka_core::{
    aggregate, request, respond, Aggregate, Position, ReplayOptions, ReplayReport, RouteInfo,
};
pub use spine_kafka_core::{
    codec, config, dev, headers, metrics, middleware, testing, App, BatchHandler, Builder, Config,
    Context, EmitError, Error, Failure, FailureKind, FromBatch, FromRecord, Handler,
    HandlerDescriptor, HandlerError, HandlerFuture, HandlerInfo, IntoReplies, Meta, OutgoingResult,
    PublishError, Publisher, Raw, Reply, RequestError, Scope, Sent, SentKind, Shutdown, State,
    StatsHandle, StatsSnapshot, Transport, UncommittedOffset, MAX_EXTRACTORS,
};
pub use spine_kafka_macros::{on, pipeline};

/// sqlx, for queries of the handlers' own (feature `inbox` or `config-db`).
#[cfg(any(feature = "inbox", feature = "config-db"))]
pub use spine_kafka_core::sqlx;
/// The database inbox and outbox (feature `inbox`): [`Tx`], the transaction
/// a handler writes its rows in, and sqlx for its queries.
#[cfg(feature = "inbox")]
pub use spine_kafka_core::{inbox, Tx, TxConn};

/// Consumer settings held in a database (feature `config-db`, `[app]
/// config_source`): [`Settings`], the row's metadata and output topics as
/// handlers see them, and [`settings`], the table and the supervisor that
/// applies its changes while the service runs.
#[cfg(feature = "config-db")]
pub use spine_kafka_core::{settings, Settings};

/// JSON Schema, for the payloads and replies of handlers served over HTTP
/// (`#[on(http = "POST /orders")]`): derive [`JsonSchema`] beside
/// `Deserialize`. Re-exported so that a service needs no `schemars`
/// dependency of its own (`use spine::prelude::*;` brings the name the
/// derive expands to).
#[cfg(feature = "http")]
pub use schemars;
#[cfg(feature = "http")]
pub use schemars::JsonSchema;

/// Entry point: `Spine::builder()`, with the Avro codec installed for topics
/// marked `codec = "avro"` (feature `avro`, on by default).
#[derive(Debug)]
pub struct Spine;

impl Spine {
    /// Starts describing an app.
    pub fn builder() -> Builder {
        let builder = spine_kafka_core::Spine::builder();
        #[cfg(feature = "avro")]
        let builder = builder.codec("avro", spine_kafka_avro::codec_factory);
        builder
    }
}

/// Avro payloads through a Confluent-compatible schema registry.
///
/// Derive `AvroSchema` (re-exported here) beside `Serialize`/`Deserialize` on
/// payload types, mark topics `codec = "avro"` in `spine.toml` (or on the
/// handler: `#[on(topic = "orders", codec = "avro")]`), and set
/// `[schema_registry] url`.
#[cfg(feature = "avro")]
pub mod avro {
    pub use spine_kafka_avro::apache_avro::{self, AvroSchema};
    pub use spine_kafka_avro::registry::{self, DevRegistry, DevRegistryHandle, RegistryClient};
    pub use spine_kafka_avro::{wire, AvroCodec, AvroError, CodecOptions};

    /// A reply carrying its payload type's Avro schema, needed by the record
    /// subject strategies and by `auto_register`.
    pub fn reply<T>(topic: impl Into<String>, event: impl Into<String>, payload: T) -> crate::Reply
    where
        T: serde::Serialize + AvroSchema + Send + 'static,
    {
        let schema = serde_json::to_string(&T::get_schema()).unwrap_or_default();
        crate::Reply::to(topic, event, payload).with_schema(schema)
    }
}

/// Collects the descriptors of handlers declared with `#[on]` and pipelines
/// declared with `#[pipeline]`, for [`Builder::handlers`].
///
/// ```no_run
/// # use spine::prelude::*;
/// # #[on(event = "a", topic = "t")] async fn accept(_: serde_json::Value) {}
/// # #[on(event = "b", topic = "t")] async fn audit(_: serde_json::Value) {}
/// let builder = Spine::builder().handlers(spine::handlers![accept, audit]);
/// ```
#[macro_export]
macro_rules! handlers {
    ($($($segment:ident)::+),* $(,)?) => {
        [$($($segment)::+::__spine_descriptor()),*]
    };
}

/// Installs a `tracing` subscriber that prints to stderr, filtered by
/// `RUST_LOG` (default `info`), as text or, with `[telemetry] log_format =
/// "json"` (or `SPINE_TELEMETRY__LOG_FORMAT=json`), one JSON object per line.
/// Call it first thing in `main`; does nothing if a subscriber is already
/// installed. A configuration that does not load leaves text: the app
/// reports the error itself.
///
/// With the `otel` feature and `[telemetry] otlp_endpoint` set, spans are also
/// exported through OTLP (each message's span continues its record's trace);
/// [`shutdown_tracing`] flushes them, and `spine::run` calls it at the end.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let telemetry = Config::load()
        .map(|c| (c.telemetry, c.app.name))
        .unwrap_or_default();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match telemetry.0.log_format {
        config::LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        _ => fmt.boxed(),
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter()));
    #[cfg(feature = "otel")]
    let registry = registry.with(
        telemetry
            .0
            .otlp_endpoint
            .as_deref()
            .and_then(|endpoint| otel::layer(endpoint, &telemetry.1)),
    );
    #[cfg(not(feature = "otel"))]
    if telemetry.0.otlp_endpoint.is_some() {
        eprintln!(
            "warning: [telemetry] otlp_endpoint is set, but this build has no `otel` feature; \
             no spans are exported"
        );
    }
    let _ = registry.try_init();
}

/// Flushes the spans not exported yet (with the `otel` feature); a no-op
/// otherwise. `spine::run` calls it before it returns.
pub fn shutdown_tracing() {
    #[cfg(feature = "otel")]
    otel::shutdown();
}

#[cfg(feature = "otel")]
mod otel {
    //! The OTLP exporter behind `[telemetry] otlp_endpoint`.
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::Layer;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The layer that exports spans, with the message spans (DEBUG, target
    /// `spine::message`) and the app's INFO spans.
    pub(super) fn layer<S>(endpoint: &str, service: &str) -> Option<impl Layer<S>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("warning: no OTLP export to {endpoint}: {e}");
                return None;
            }
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_owned())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("spine");
        let _ = PROVIDER.set(provider);
        let targets = Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("spine::message", tracing::Level::DEBUG);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(targets),
        )
    }

    pub(super) fn shutdown() {
        if let Some(p) = PROVIDER.get() {
            let _ = p.shutdown();
        }
    }
}

/// Everything a handler module needs: `use spine::prelude::*;`.
pub mod prelude {
    /// The consumer's settings row, for handlers that read its metadata.
    #[cfg(feature = "config-db")]
    pub use crate::Settings;
    /// The inbox's transaction, for handlers that write rows.
    #[cfg(feature = "inbox")]
    pub use crate::Tx;
    pub use crate::{
        handlers, on, pipeline, respond, Context, HandlerError, Meta, Raw, Reply, Spine, State,
    };
    /// `#[derive(JsonSchema)]` for the payloads of `http` handlers; the
    /// derive names `schemars::`, which this import resolves.
    #[cfg(feature = "http")]
    pub use crate::{schemars, JsonSchema};
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    pub use spine_kafka_core::__private::{
        pipeline, Describe, HandlerDescriptor, HandlerInfo, HttpAttr, States,
    };
    pub use spine_kafka_core::{HandlerError, Reply};

    /// Tables in the style of every Spine command, for the `spine` CLI.
    #[cfg(feature = "cli")]
    pub use crate::cli::table;

    /// Compile-time checks `#[on]` places on the user's types.
    pub mod assert {
        pub use spine_kafka_core::__private::assert::*;

        /// `codec = "avro"`: the payload type carries an Avro schema.
        #[cfg(feature = "avro")]
        pub fn avro<T: spine_kafka_avro::apache_avro::AvroSchema>() {}

        /// `codec = "avro"` in a build without Avro: refused, saying why.
        #[cfg(not(feature = "avro"))]
        pub fn avro<T: AvroFeature>() {}

        /// Implemented for nothing: it exists for its message.
        #[cfg(not(feature = "avro"))]
        #[diagnostic::on_unimplemented(
            message = "`codec = \"avro\"` needs Spine's `avro` feature",
            label = "this payload is declared Avro",
            note = "turn on the feature: spine-kafka = {{ version = \"...\", features = [\"avro\"] }}"
        )]
        pub trait AvroFeature {}

        /// `http = ...`: the payload type derives `JsonSchema`. `M` is what
        /// the probe found (`HasJsonSchema` or `NoJsonSchema`), so that a
        /// missing derive is reported with this message, naming `T`.
        pub fn http_payload<T, M: super::probe::HttpPayload<T>>(_: M) {}

        /// `http = ...` with `replies(...)`: each reply type derives `JsonSchema`.
        pub fn http_reply<T, M: super::probe::HttpReply<T>>(_: M) {}
    }

    /// Converts a decoded Avro value into the handler's payload type.
    #[cfg(feature = "avro")]
    pub use spine_kafka_avro::value_decoder as avro_value;

    /// Without Avro no codec produces Avro values; the macros still name a
    /// converter, and this one is never reached.
    #[cfg(not(feature = "avro"))]
    pub fn avro_value<T>(
        _value: &(dyn std::any::Any + Send + Sync),
        _out: &mut dyn std::any::Any,
    ) -> Result<(), spine_kafka_core::codec::CodecError> {
        Err(spine_kafka_core::codec::CodecError::failed(
            "avro.off",
            "Avro support is off: turn on Spine's `avro` feature",
        ))
    }

    /// Finds a payload type's Avro schema, if it has one, by autoref
    /// specialization: `(&&Probe::<T>::new()).reader_schema()` picks
    /// `AvroReader` when `T: AvroSchema` and falls back to `NoReader`.
    pub mod probe {
        use std::marker::PhantomData;

        pub struct Probe<T>(PhantomData<T>);

        impl<T> Probe<T> {
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Probe(PhantomData)
            }
        }

        pub trait AvroReader {
            fn reader_schema(&self) -> Option<String>;
        }

        #[cfg(feature = "avro")]
        impl<T: spine_kafka_avro::apache_avro::AvroSchema> AvroReader for &Probe<T> {
            fn reader_schema(&self) -> Option<String> {
                serde_json::to_string(&T::get_schema()).ok()
            }
        }

        pub trait NoReader {
            fn reader_schema(&self) -> Option<String>;
        }

        impl<T> NoReader for Probe<T> {
            fn reader_schema(&self) -> Option<String> {
                None
            }
        }

        /// What the JSON Schema probe found.
        pub struct HasJsonSchema;
        /// What the JSON Schema probe found.
        pub struct LacksJsonSchema;

        /// A type's JSON Schema, when it derives `JsonSchema` (feature `http`).
        pub trait JsonSchemaOf {
            fn json_schema(&self) -> Option<spine_kafka_core::__private::JsonSchemaFn>;
            fn json_schema_marker(&self) -> HasJsonSchema;
        }

        #[cfg(feature = "http")]
        impl<T: schemars::JsonSchema> JsonSchemaOf for &Probe<T> {
            fn json_schema(&self) -> Option<spine_kafka_core::__private::JsonSchemaFn> {
                Some(|| schemars::schema_for!(T).to_value())
            }
            fn json_schema_marker(&self) -> HasJsonSchema {
                HasJsonSchema
            }
        }

        pub trait NoJsonSchema {
            fn json_schema(&self) -> Option<spine_kafka_core::__private::JsonSchemaFn>;
            fn json_schema_marker(&self) -> LacksJsonSchema;
        }

        impl<T> NoJsonSchema for Probe<T> {
            fn json_schema(&self) -> Option<spine_kafka_core::__private::JsonSchemaFn> {
                None
            }
            fn json_schema_marker(&self) -> LacksJsonSchema {
                LacksJsonSchema
            }
        }

        #[cfg(feature = "http")]
        #[diagnostic::on_unimplemented(
            message = "`{T}` is served over HTTP, so it must derive `JsonSchema`",
            label = "the payload of an `http` handler",
            note = "derive it beside `Deserialize`: `#[derive(Deserialize, JsonSchema)]` \
                    (`use spine::prelude::*;` brings both in); the OpenAPI document describes the body with it"
        )]
        pub trait HttpPayload<T> {}

        #[cfg(feature = "http")]
        #[diagnostic::on_unimplemented(
            message = "`{T}` is a reply of an HTTP handler, so it must derive `JsonSchema`",
            label = "declared in `replies(...)` of an `http` handler",
            note = "derive it beside `Serialize`: `#[derive(Serialize, JsonSchema)]` \
                    (`use spine::prelude::*;` brings both in); the OpenAPI document describes the response with it"
        )]
        pub trait HttpReply<T> {}

        #[cfg(not(feature = "http"))]
        #[diagnostic::on_unimplemented(
            message = "`http = ...` needs Spine's `http` feature",
            label = "this handler is served over HTTP",
            note = "turn on the feature: spine-kafka = {{ version = \"...\", features = [\"http\"] }}"
        )]
        pub trait HttpPayload<T> {}

        #[cfg(not(feature = "http"))]
        #[diagnostic::on_unimplemented(
            message = "`http = ...` needs Spine's `http` feature",
            label = "this handler is served over HTTP",
            note = "turn on the feature: spine-kafka = {{ version = \"...\", features = [\"http\"] }}"
        )]
        pub trait HttpReply<T> {}

        #[cfg(feature = "http")]
        impl<T> HttpPayload<T> for HasJsonSchema {}
        #[cfg(feature = "http")]
        impl<T> HttpReply<T> for HasJsonSchema {}
    }
}

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide pages' Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
pub mod guides {
    #[doc = include_str!("../docs/pipelines.md")]
    pub struct Pipelines;

    #[doc = include_str!("../docs/request-reply.md")]
    pub struct RequestReply;

    #[doc = include_str!("../docs/aggregation.md")]
    pub struct Aggregation;

    #[doc = include_str!("../docs/database.md")]
    pub struct Database;
}

#[cfg(test)]
mod readme {
    /// The README's `spine.toml` (under "Configuration") is a valid
    /// configuration, with the values it shows.
    #[test]
    fn the_configuration_example_parses() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("\n## Configuration").expect("the section")..];
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a toml block");
        let c = crate::Config::from_toml(toml).expect("the README's configuration parses");
        assert_eq!(c.retry.park_timeout, std::time::Duration::from_secs(3600));
        assert_eq!(c.on_exhausted("payments"), crate::config::OnExhausted::Park);
        assert_eq!(
            c.on_exhausted("orders"),
            crate::config::OnExhausted::DeadLetter
        );
    }
}
