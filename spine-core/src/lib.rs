//! Runtime of Spine, the framework for typed Kafka event handlers.
//!
//! Users depend on the `spine` crate, which re-exports what is public here and
//! adds the `#[on]` macro. This crate owns configuration, the dispatch table,
//! the consumer loop (at-least-once offset tracking, key-ordered concurrency,
//! backpressure, retries, dead-lettering, graceful shutdown), the producer side
//! (replies, emitted events, CloudEvents headers) and the in-process test kit.
#![warn(missing_docs)]

pub mod aggregate;
mod app;
pub mod asyncapi;
pub mod codec;
pub mod config;
mod consumer;
pub mod dev;
mod dispatch;
mod error;
pub mod headers;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "inbox")]
pub mod inbox;
pub mod metrics;
pub mod middleware;
mod outbound;
mod record;
mod replay;
mod reply;
#[cfg(feature = "config-db")]
pub mod settings;
mod shutdown;
mod status;
#[cfg(any(feature = "inbox", feature = "config-db"))]
mod store;
pub mod testing;
mod trace;

pub use aggregate::Aggregate;
pub use app::{App, Builder, Spine, StatsHandle};
pub use config::Config;
pub use dispatch::batch::{BatchHandler, FromBatch};
#[cfg(feature = "config-db")]
pub use dispatch::extract::Settings;
pub use dispatch::extract::{Context, EmitError, FromRecord, Meta, Raw, Scope, State, Transport};
#[cfg(feature = "inbox")]
pub use dispatch::extract::{Tx, TxConn};
pub use dispatch::handler::{
    Handler, HandlerDescriptor, HandlerFuture, HandlerInfo, MAX_EXTRACTORS,
};
pub use dispatch::request::{self, RequestError};
pub use dispatch::routing::RouteInfo;
pub use dispatch::StatsSnapshot;
pub use error::{Error, Failure, FailureKind, HandlerError, UncommittedOffset};
pub use outbound::{OutgoingResult, PublishError, Publisher, Sent, SentKind};
pub use replay::{Position, ReplayOptions, ReplayProgress, ReplayRange, ReplayReport};
pub use reply::{respond, IntoReplies, Reply};
pub use shutdown::Shutdown;
/// sqlx, for queries on a `Tx` (feature `inbox`) or on the consumer configs'
/// database (feature `config-db`).
#[cfg(any(feature = "inbox", feature = "config-db"))]
pub use sqlx;

/// Items the `#[on]` macro's expansion names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::extract::States;
    pub use crate::dispatch::handler::{
        assert, Describe, HandlerDescriptor, HandlerInfo, HttpAttr, JsonSchemaFn,
    };
    /// What `#[pipeline]`'s expansion calls.
    pub mod pipeline {
        pub use crate::dispatch::pipeline::{
            check_arg, check_extractors, end, failed, guard, guard_sync, publish, ArgParam, Pipe,
            PipelineEnd, PipelineSpec,
        };
    }
}
