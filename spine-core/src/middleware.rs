//! Middleware: code that sees every message before dispatch and every outcome
//! after it, for logging, metrics, auditing. Hooks are synchronous and cheap by
//! design; they run on the consumer loop, so they must not block.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use spine_kafka_core::middleware::{Middleware, MessageInfo, Outcome};
//!
//! #[derive(Default)]
//! struct CountDeadLetters(AtomicU64);
//!
//! impl Middleware for CountDeadLetters {
//!     fn after(&self, _msg: &MessageInfo<'_>, outcome: &Outcome<'_>) {
//!         if let Outcome::DeadLettered { .. } = outcome {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//! ```

use crate::error::FailureKind;

/// The message a hook is called for.
#[derive(Debug, Clone, Copy)]
pub struct MessageInfo<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Message key.
    pub key: Option<&'a [u8]>,
    /// Event name, if the message has one.
    pub event: Option<&'a str>,
    /// The handler it was routed to (the first one, with fan-out), if any.
    pub handler: Option<&'a str>,
}

/// What became of a message (or of one attempt, for [`Outcome::Retrying`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// Every handler succeeded; `replies` records were produced.
    Handled {
        /// Number of replies.
        replies: usize,
    },
    /// No handler matched and the topic's policy is to skip.
    Skipped,
    /// An attempt failed and will be retried after `delay`.
    Retrying {
        /// The failed attempt's number, from 1.
        attempt: u32,
        /// Why it failed.
        error: &'a str,
        /// Wait before the next attempt.
        delay: std::time::Duration,
    },
    /// The message failed for good and went to the dead-letter topic (or was
    /// dropped after logging, if dead-lettering is disabled).
    DeadLettered {
        /// Why.
        kind: FailureKind,
        /// The last error.
        error: &'a str,
        /// Attempts made.
        attempts: u32,
    },
    /// A message whose sender waits for the outcome (an HTTP request) failed;
    /// the sender was told, and nothing was dead-lettered.
    Refused {
        /// Why.
        kind: FailureKind,
        /// The error.
        error: &'a str,
    },
}

/// Observes messages. Both hooks default to doing nothing.
pub trait Middleware: Send + Sync + 'static {
    /// Called once per message, before its handler runs.
    fn before(&self, _msg: &MessageInfo<'_>) {}
    /// Called with every outcome.
    fn after(&self, _msg: &MessageInfo<'_>, _outcome: &Outcome<'_>) {}
}

/// Logs every message and outcome with `tracing`: arrivals and successes at
/// `debug`, retries at `warn`, dead letters at `error`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Logging;

impl Middleware for Logging {
    fn before(&self, msg: &MessageInfo<'_>) {
        tracing::debug!(
            topic = msg.topic,
            partition = msg.partition,
            offset = msg.offset,
            event = msg.event,
            handler = msg.handler,
            "received"
        );
    }

    fn after(&self, msg: &MessageInfo<'_>, outcome: &Outcome<'_>) {
        let (topic, partition, offset, event) = (msg.topic, msg.partition, msg.offset, msg.event);
        match *outcome {
            Outcome::Handled { replies } => {
                tracing::debug!(topic, partition, offset, event, replies, "handled")
            }
            Outcome::Skipped => tracing::debug!(topic, partition, offset, event, "skipped"),
            Outcome::Retrying {
                attempt,
                error,
                delay,
            } => tracing::warn!(
                topic,
                partition,
                offset,
                event,
                attempt,
                error,
                delay_ms = delay.as_millis() as u64,
                "attempt failed; retrying"
            ),
            Outcome::Refused { kind, error } => tracing::warn!(
                topic,
                event,
                kind = kind.as_str(),
                error,
                "refused; the sender was told"
            ),
            Outcome::DeadLettered {
                kind,
                error,
                attempts,
            } => tracing::error!(
                topic,
                partition,
                offset,
                event,
                kind = kind.as_str(),
                error,
                attempts,
                "dead-lettered"
            ),
        }
    }
}

/// A shared middleware, so that its state can be read while the app runs.
impl<M: Middleware> Middleware for std::sync::Arc<M> {
    fn before(&self, msg: &MessageInfo<'_>) {
        (**self).before(msg)
    }
    fn after(&self, msg: &MessageInfo<'_>, outcome: &Outcome<'_>) {
        (**self).after(msg, outcome)
    }
}
