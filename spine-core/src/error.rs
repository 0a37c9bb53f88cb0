//! Errors: what startup can reject ([`Error`]), what a handler can fail with
//! ([`HandlerError`]), and how a failed message is classified on its way to the
//! dead-letter topic ([`FailureKind`]).

use std::borrow::Cow;
use std::fmt;

/// Everything that can stop an app from starting or running.
///
/// Failures of single messages are not here: they are retried, dead-lettered
/// and counted, and never stop the app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing or wrong. `key` is the dotted path of the
    /// setting, as written in `spine.toml` (`dispatch.max_in_flight`,
    /// `kafka.bootstrap.servers`, ...).
    #[error("invalid configuration `{key}`: {reason}")]
    Config {
        /// Dotted path of the setting.
        key: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two handlers claim the same (topic, event) key without asking for fan-out.
    #[error(
        "two handlers for {key}: `{first}` at {first_location} and `{second}` at {second_location}; \
         remove one, give them different events, or add `fan_out` to both `#[on(...)]` attributes"
    )]
    DuplicateRoute {
        /// The contested key, e.g. `topic "orders", event "order.placed"`.
        key: String,
        /// The first handler's function name.
        first: Cow<'static, str>,
        /// Where the first handler is defined (`file:line`).
        first_location: String,
        /// The second handler's function name.
        second: Cow<'static, str>,
        /// Where the second handler is defined (`file:line`).
        second_location: String,
    },
    /// A handler takes `State<T>` but no state of type `T` was registered.
    #[error(
        "handler `{handler}` at {location} takes `State<{state}>`, but no state of that type was \
         registered; add `.state(value)` to the builder"
    )]
    MissingState {
        /// The handler's function name.
        handler: Cow<'static, str>,
        /// Where it is defined (`file:line`).
        location: String,
        /// The missing state type.
        state: &'static str,
    },
    /// A handler's payload schema cannot be used by its topic's codec.
    #[error("handler `{handler}` at {location}: {reason}")]
    Schema {
        /// The handler's function name.
        handler: Cow<'static, str>,
        /// Where it is defined.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The app has nothing to subscribe to.
    #[error(
        "no topics to subscribe to: give handlers a `topic = \"...\"` or list topics in \
         `[app] topics = [...]` of spine.toml"
    )]
    NoTopics,
    /// The inbox database cannot be opened or migrated (feature `inbox`).
    #[error("inbox database: {0}")]
    Store(String),
    /// librdkafka refused an operation.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The OS signal handlers could not be installed.
    #[error("cannot listen for shutdown signals: {0}")]
    Signal(#[source] std::io::Error),
    /// The app stopped, but the offsets of messages it handled were not
    /// committed: the broker did not confirm the final commit within
    /// `dispatch.commit_timeout`, or the stop was forced. Nothing is lost:
    /// the partitions' next owner handles those messages again.
    /// `spine::run` exits with status 3.
    #[error(
        "stopped without committing handled messages ({reason}); they will be handled again: {}",
        UncommittedOffset::list(offsets)
    )]
    Uncommitted {
        /// Why the commit did not complete.
        reason: String,
        /// The partitions whose handled messages were not committed.
        offsets: Vec<UncommittedOffset>,
    },
}

/// A partition whose handled messages were not committed at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncommittedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset the commit would have stored: every message before it was
    /// handled.
    pub offset: i64,
    /// The last offset the broker confirmed, if any since the app started.
    pub committed: Option<i64>,
}

impl UncommittedOffset {
    /// `orders[0] 17..41, payments[2] ..8`: the offsets to be handled again.
    pub(crate) fn list(offsets: &[UncommittedOffset]) -> String {
        let parts: Vec<String> = offsets
            .iter()
            .map(|u| {
                let from = u.committed.map(|c| c.to_string()).unwrap_or_default();
                format!("{}[{}] {from}..{}", u.topic, u.partition, u.offset)
            })
            .collect();
        parts.join(", ")
    }
}

impl Error {
    pub(crate) fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The error type handlers return.
///
/// Any `std::error::Error + Send + Sync + 'static` converts into it with `?`.
/// By default a handler error is retried with backoff and then dead-lettered;
/// [`HandlerError::fatal`] skips the retries.
///
/// ```
/// use spine_kafka_core::HandlerError;
///
/// fn parse(amount: &str) -> Result<i64, HandlerError> {
///     let n: i64 = amount.parse()?; // ParseIntError converts
///     if n < 0 {
///         // retrying will not make it positive: dead-letter at once
///         return Err(HandlerError::msg("negative amount").fatal());
///     }
///     Ok(n)
/// }
/// assert!(parse("-1").unwrap_err().is_fatal());
/// assert!(!parse("x").unwrap_err().is_fatal());
/// ```
pub struct HandlerError {
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
    fatal: bool,
    /// The handler panicked (the error is the panic's message).
    panicked: bool,
    /// The pipeline step that failed, when a pipeline did.
    step: Option<&'static str>,
}

impl HandlerError {
    /// An error with just a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        HandlerError {
            source: message.to_string().into(),
            fatal: false,
            panicked: false,
            step: None,
        }
    }

    /// The failure of a handler that panicked, from the panic's payload.
    pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        HandlerError {
            panicked: true,
            ..HandlerError::msg(format!("panicked: {message}"))
        }
    }

    /// Whether the handler panicked.
    pub fn is_panic(&self) -> bool {
        self.panicked
    }

    /// Marks the error as permanent: the message goes to the dead-letter topic
    /// without retries.
    #[must_use]
    pub fn fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// Whether retries are skipped for this error.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// The pipeline step this error came from, if a pipeline step failed.
    pub fn step(&self) -> Option<&'static str> {
        self.step
    }

    /// Records which pipeline step failed (written by `#[pipeline]`).
    #[doc(hidden)]
    #[must_use]
    pub fn in_step(mut self, step: &'static str) -> Self {
        self.step.get_or_insert(step);
        self
    }

    /// The underlying error.
    pub fn source_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl<E> From<E> for HandlerError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        HandlerError {
            source: Box::new(error),
            fatal: false,
            panicked: false,
            step: None,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)?;
        let mut cause = self.source.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("error", &self.to_string())
            .field("fatal", &self.fatal)
            .field("panicked", &self.panicked)
            .field("step", &self.step)
            .finish()
    }
}

/// Why a message did not end as handled. The `as_str` form is what the
/// dead-letter headers, error events and metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The payload could not be decoded into the handler's payload type.
    Decode,
    /// The handler returned an error on every attempt (or a fatal one).
    Handler,
    /// No handler matches the message's event name.
    UnknownEvent,
    /// A reply or emitted event could not be encoded.
    Encode,
    /// The handler (or a pipeline step) panicked. Not retried unless
    /// `[retry] retry_panics = true`.
    Panic,
    /// A record the message published (a reply, an emitted event) was
    /// refused for good: too large, invalid, or for a topic that does not
    /// exist or may not be written. Not retried: the same record would be
    /// refused again.
    Publish,
}

impl FailureKind {
    /// Stable name used in headers, error events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Decode => "decode",
            FailureKind::Handler => "handler",
            FailureKind::UnknownEvent => "unknown_event",
            FailureKind::Encode => "encode",
            FailureKind::Panic => "panic",
            FailureKind::Publish => "publish",
        }
    }

    /// Whether trying again could succeed.
    pub(crate) fn is_retryable(self) -> bool {
        matches!(self, FailureKind::Handler)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message's failure, as recorded on the dead-letter topic.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The classification.
    pub kind: FailureKind,
    /// Human-readable cause.
    pub message: String,
    /// Whether the handler asked to skip retries.
    pub fatal: bool,
    /// A finer code from the codec (`avro.wrong_magic`, ...), carried in the
    /// `spine.dlq.error.code` header and the `code` metric label.
    pub code: Option<&'static str>,
    /// More headers for the dead-letter record (schema fingerprints, field).
    pub headers: Vec<(String, String)>,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            fatal: !kind.is_retryable(),
            code: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn from_handler(error: HandlerError) -> Self {
        let kind = if error.panicked {
            FailureKind::Panic
        } else {
            FailureKind::Handler
        };
        match error.step {
            None => Failure {
                kind,
                fatal: error.is_fatal(),
                message: error.to_string(),
                code: None,
                headers: Vec::new(),
            },
            Some(step) => Failure {
                kind,
                fatal: error.is_fatal(),
                message: format!("step `{step}` failed: {error}"),
                code: None,
                headers: vec![(
                    crate::headers::dead_letter::STEP.to_owned(),
                    step.to_owned(),
                )],
            },
        }
    }

    /// Whether another attempt could succeed: a handler error that is not
    /// fatal, or a panic when `retry_panics` is set.
    pub(crate) fn retryable(&self, retry_panics: bool) -> bool {
        !self.fatal
            && (self.kind.is_retryable() || (retry_panics && self.kind == FailureKind::Panic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::num::ParseIntError);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bad amount")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn display_includes_the_cause_chain() {
        let inner = "x".parse::<i64>().unwrap_err();
        let e: HandlerError = Outer(inner).into();
        assert_eq!(e.to_string(), "bad amount: invalid digit found in string");
        assert!(!e.is_fatal());
    }

    #[test]
    fn fatal_handler_errors_are_not_retried() {
        let f = Failure::from_handler(HandlerError::msg("no").fatal());
        assert!(!f.retryable(false));
        let f = Failure::from_handler(HandlerError::msg("later"));
        assert!(f.retryable(false));
        assert!(!Failure::new(FailureKind::Decode, "bad json").retryable(true));
    }
}
