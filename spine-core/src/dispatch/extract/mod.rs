//! Extractors: the handler arguments after the payload, all built by
//! [`FromRecord`] from the message being handled, through a [`Scope`]:
//! - `meta`: [`Meta`] (where the message came from) and [`Raw`] (its bytes);
//! - `state`: [`State`] (shared application state) and the app's [`States`];
//! - `context`: [`Context`] (publish from inside a handler); its request half
//!   lives with request-reply, in `dispatch::request`;
//! - `tx`: [`Tx`] (the inbox's transaction, feature `inbox`);
//! - `settings`: [`Settings`] (the consumer's settings row, feature `config-db`).

mod context;
mod meta;
#[cfg(feature = "config-db")]
mod settings;
mod state;
#[cfg(feature = "inbox")]
mod tx;

use std::sync::Arc;

use crate::dispatch::routing::TopicRoutes;
use crate::dispatch::Shared;
use crate::error::HandlerError;
use crate::record::Record;

pub(crate) use context::EmitLog;
pub use context::{Context, EmitError};
pub use meta::{Meta, Raw, Transport};
#[cfg(feature = "config-db")]
pub use settings::Settings;
pub use state::{State, States};
#[cfg(feature = "inbox")]
pub use tx::{Tx, TxConn};

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
