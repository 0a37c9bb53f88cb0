//! What handling one message produced ([`MessageOutcome`]: replies, failures,
//! emitted events), what a decided message still waits for ([`Unsettled`]),
//! and how the slow path resumes a message ([`Resume`]).

use std::borrow::Cow;
use std::sync::Arc;

use rdkafka::message::OwnedMessage;

use crate::dispatch::extract::EmitLog;
use crate::dispatch::handler::{HandlerDescriptor, HandlerFuture};
use crate::error::Failure;
use crate::outbound::Delivery;
use crate::reply::Reply;

/// How the slow path picks up a message the fast path started.
pub(crate) enum Resume {
    /// Nothing ran yet.
    Fresh,
    /// The first attempt is running.
    Running {
        fut: HandlerFuture,
        emits: Option<Arc<EmitLog>>,
    },
    /// The first attempt failed and was counted; it is to be retried, or
    /// its key parked.
    Retry {
        failure: Failure,
        emits: Option<Arc<EmitLog>>,
    },
    /// The handler finished, but its replies need a codec to fetch a schema
    /// before they can be encoded.
    Finished {
        replies: Vec<Reply>,
        emits: Option<Arc<EmitLog>>,
    },
}

/// A handler's failure that ends the message.
pub(super) struct HandlerFailure {
    pub(super) handler: Option<Cow<'static, str>>,
    pub(super) failure: Failure,
    pub(super) attempts: u32,
}

/// What the handlers of one message produced.
#[derive(Default)]
pub(crate) struct MessageOutcome {
    pub(super) replies: Vec<Reply>,
    pub(super) failures: Vec<HandlerFailure>,
    pub(super) emits: Vec<Delivery>,
}

impl MessageOutcome {
    pub(super) fn add_emits(&mut self, emits: Option<Arc<EmitLog>>) {
        if let Some(e) = emits {
            self.emits.extend(e.take());
        }
    }

    /// A message that failed before any handler ran.
    pub(crate) fn failed(handler: Option<Cow<'static, str>>, failure: Failure) -> Self {
        MessageOutcome {
            failures: vec![HandlerFailure {
                handler,
                failure,
                attempts: 1,
            }],
            ..MessageOutcome::default()
        }
    }

    /// Outcome of a single handler's first attempt, finished at once.
    pub(crate) fn first(
        handler: &HandlerDescriptor,
        result: Result<Vec<Reply>, Failure>,
        emits: Option<Arc<EmitLog>>,
    ) -> Self {
        let mut out = MessageOutcome::default();
        out.add_emits(emits);
        match result {
            Ok(replies) => out.replies = replies,
            Err(failure) => out.failures.push(HandlerFailure {
                handler: Some(handler.name.clone()),
                failure,
                attempts: 1,
            }),
        }
        out
    }
}

/// A message whose outcome is decided, and what it still waits for: the
/// acknowledgements of its records, or an open aggregate's release.
pub(crate) struct Unsettled {
    pub(crate) deliveries: Vec<Delivery>,
    /// The message, kept while one of its records is unacknowledged: a record
    /// refused for good sends it to the dead-letter topic instead.
    pub(super) source: Option<Box<Source>>,
}

/// The message behind unacknowledged records.
pub(super) struct Source {
    pub(super) msg: OwnedMessage,
    pub(super) event: Option<String>,
    /// For a message whose handlers succeeded: its replies. It counts as
    /// handled (and they as replied) once the broker acknowledged them.
    pub(super) replies: Option<usize>,
}

impl Unsettled {
    /// Records to wait for, with no message behind them to fail.
    pub(crate) fn records(deliveries: Vec<Delivery>) -> Self {
        Unsettled {
            deliveries,
            source: None,
        }
    }

    /// Nothing to wait for.
    pub(crate) fn done() -> Self {
        Unsettled::records(Vec::new())
    }

    /// Whether nothing is left to wait for.
    pub(crate) fn is_done(&self) -> bool {
        self.deliveries.iter().all(|d| matches!(d, Delivery::Done))
    }

    /// Whether an open aggregate holds the message.
    pub(crate) fn is_held(&self) -> bool {
        self.deliveries.iter().any(Delivery::is_held)
    }

    /// The same, without the aggregate's hold: for callers that do not wait
    /// for an aggregate to complete (`TestApp`, a replay).
    pub(crate) fn without_hold(mut self) -> Self {
        self.deliveries.retain(|d| !d.is_held());
        self
    }
}
