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

pub use spine_core::{
    config, dev, headers, metrics, middleware, testing, App, Builder, Config, Context, EmitError,
    Error, Failure, FailureKind, FromRecord, Handler, HandlerDescriptor, HandlerError,
    HandlerFuture, IntoReplies, Meta, PublishError, Publisher, Raw, Reply, Scope, Sent, SentKind,
    Shutdown, Spine, State, StatsHandle, StatsSnapshot,
};
pub use spine_macros::on;

/// Collects the descriptors of handlers declared with `#[on]`, for
/// [`Builder::handlers`].
///
/// ```no_run
/// # use spine::prelude::*;
/// # #[on(event = "a", topic = "t")] async fn accept(_: serde_json::Value) {}
/// # #[on(event = "b", topic = "t")] async fn audit(_: serde_json::Value) {}
/// let builder = Spine::builder().handlers(spine::handlers![accept, audit]);
/// ```
#[macro_export]
macro_rules! handlers {
    ($($handler:path),* $(,)?) => {
        [$(<$handler as $crate::__private::Describe>::descriptor()),*]
    };
}

/// Installs a `tracing` subscriber that prints to stderr, filtered by
/// `RUST_LOG` (default `info`). Call it first thing in `main`; does nothing if
/// a subscriber is already installed.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Everything a handler module needs: `use spine::prelude::*;`.
pub mod prelude {
    pub use crate::{handlers, on, Context, HandlerError, Meta, Raw, Reply, Spine, State};
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    pub use spine_core::__private::*;
}

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
