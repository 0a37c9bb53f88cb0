//! What handling one message produced ([`MessageOutcome`]: replies, failures,
//! emitted events) and how the slow path resumes a message ([`Resume`]).

use std::borrow::Cow;
use std::sync::Arc;

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
    /// The first attempt failed, was counted, and is to be retried.
    Retry { emits: Option<Arc<EmitLog>> },
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
