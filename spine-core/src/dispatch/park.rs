//! Parking a key (`[retry] on_exhausted = "park"`): a message whose retries
//! are exhausted is retried on a slow schedule instead of being dead-lettered,
//! while the consumer holds its key's later messages behind it.
//!
//! This module owns the schedule ([`Parking`]) and the interface through which
//! the consumer learns that a key parked or unparked ([`ParkWatch`]); the
//! consumer loop owns the accounting (lanes, `max_in_flight`, `max_parked`).

use std::time::{Duration, Instant};

use crate::config::RetryConfig;
use crate::dispatch::Stats;
use crate::error::Failure;
use crate::metrics as m;

/// How the consumer follows a message that may park. Implemented by the
/// consumer loop; [`crate::testing::TestApp`] passes none, so a message there
/// is dead-lettered when its retries are exhausted.
pub(crate) trait ParkWatch: Send {
    /// The message parked (`true`) or unparked (`false`: it succeeded, or it
    /// timed out and is dead-lettered).
    fn parked(&mut self, parked: bool);
    /// Whether parking is pointless now: the partition was revoked (its new
    /// owner handles the message) or the app is stopping.
    fn abandoned(&self) -> bool;
}

/// What a parked message does next.
pub(crate) enum Next {
    /// Retry after this wait.
    RetryAfter(Duration),
    /// Give up: dead-letter it (the park timed out, or parking does not apply).
    GiveUp,
    /// Leave it unfinished, uncommitted: its partition went to another owner.
    Abandon,
}

/// One message's park state.
pub(crate) struct Parking {
    watch: Box<dyn ParkWatch>,
    since: Option<Instant>,
    delay: Duration,
    topic: String,
}

impl Parking {
    pub(crate) fn new(watch: Box<dyn ParkWatch>, topic: &str) -> Self {
        Parking {
            watch,
            since: None,
            delay: Duration::ZERO,
            topic: topic.to_owned(),
        }
    }

    /// Whether the message is parked now.
    pub(crate) fn is_parked(&self) -> bool {
        self.since.is_some()
    }

    /// After a failed attempt that the normal retries do not cover: parks the
    /// key (the first time), or schedules the next slow retry, or gives up.
    pub(crate) fn next(
        &mut self,
        failure: &Failure,
        retry: &RetryConfig,
        handler: &str,
        stats: &Stats,
    ) -> Next {
        if self.watch.abandoned() {
            self.unpark("abandoned");
            return Next::Abandon;
        }
        if !failure.retryable(retry.retry_panics) {
            if self.is_parked() {
                stats.unparked();
                self.unpark("dead_lettered");
            }
            return Next::GiveUp;
        }
        let since = match self.since {
            Some(since) => since,
            None => {
                let now = Instant::now();
                self.since = Some(now);
                self.delay = retry.park_backoff;
                self.watch.parked(true);
                stats.parked();
                metrics::counter!(m::PARKS, "topic" => self.topic.clone()).increment(1);
                metrics::gauge!(m::PARKED_KEYS, "topic" => self.topic.clone()).increment(1.0);
                tracing::warn!(
                    handler, error = %failure.message,
                    retry_in_ms = self.delay.as_millis() as u64,
                    park_timeout_s = retry.park_timeout.as_secs(),
                    "retries exhausted; key parked: its later messages wait, other keys go on"
                );
                return Next::RetryAfter(self.delay);
            }
        };
        let left = retry.park_timeout.saturating_sub(since.elapsed());
        if left.is_zero() {
            tracing::warn!(
                handler, error = %failure.message,
                parked_s = since.elapsed().as_secs(),
                "park_timeout reached; dead-lettering the message, its key's backlog drains"
            );
            stats.unparked();
            self.unpark("dead_lettered");
            return Next::GiveUp;
        }
        self.delay = (self.delay * 2).min(retry.park_max_backoff);
        tracing::warn!(
            handler, error = %failure.message,
            retry_in_ms = self.delay.min(left).as_millis() as u64,
            "parked message failed again"
        );
        Next::RetryAfter(self.delay.min(left))
    }

    /// The message succeeded: unparks its key if it was parked.
    pub(crate) fn succeeded(&mut self, stats: &Stats) {
        if self.is_parked() {
            stats.unparked();
            tracing::info!(
                parked_ms = self.since.map_or(0, |s| s.elapsed().as_millis() as u64),
                "parked message handled; its key's backlog drains in order"
            );
            self.unpark("handled");
        }
    }

    fn unpark(&mut self, outcome: &'static str) {
        if self.since.take().is_some() {
            self.watch.parked(false);
            metrics::counter!(m::UNPARKS, "topic" => self.topic.clone(), "outcome" => outcome)
                .increment(1);
            metrics::gauge!(m::PARKED_KEYS, "topic" => self.topic.clone()).decrement(1.0);
        }
    }
}

impl Drop for Parking {
    /// A parked message dropped unfinished (the app stopped): the gauge and
    /// the consumer's accounting must not keep it.
    fn drop(&mut self) {
        self.unpark("abandoned");
    }
}
