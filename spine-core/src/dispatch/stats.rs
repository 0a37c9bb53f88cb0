//! [`Stats`]: what the app did since it started, and its [`StatsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the app did since it started.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    consumed: AtomicU64,
    handled: AtomicU64,
    replied: AtomicU64,
    dead_lettered: AtomicU64,
    skipped: AtomicU64,
    retried: AtomicU64,
    failed_attempts: AtomicU64,
    backpressure_pauses: AtomicU64,
    aggregates_completed: AtomicU64,
    aggregates_expired: AtomicU64,
    codec_waits: AtomicU64,
    publish_failed: AtomicU64,
    publish_retried: AtomicU64,
    parks: AtomicU64,
    unparks: AtomicU64,
}

/// A snapshot of the app's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages received.
    pub consumed: u64,
    /// Messages whose handlers succeeded and whose records the broker
    /// acknowledged.
    pub handled: u64,
    /// Replies the broker acknowledged.
    pub replied: u64,
    /// Messages sent to a dead-letter topic (or dropped, if dead-lettering is off).
    pub dead_lettered: u64,
    /// Messages with no handler, skipped by policy.
    pub skipped: u64,
    /// Retries scheduled.
    pub retried: u64,
    /// Failed attempts, retried or not.
    pub failed_attempts: u64,
    /// Times fetching paused because `max_in_flight` was reached.
    pub backpressure_pauses: u64,
    /// Aggregates completed and handed to their handlers.
    pub aggregates_completed: u64,
    /// Aggregates expired (timeout or `max_open`), their parts dead-lettered.
    pub aggregates_expired: u64,
    /// Times a message waited for its codec's source (the schema registry).
    pub codec_waits: u64,
    /// Messages that failed because a record they published was refused for
    /// good (failure kind `publish`).
    pub publish_failed: u64,
    /// Records sent again after a refusal worth retrying.
    pub publish_retried: u64,
    /// Keys parked because a message's retries were exhausted
    /// (`on_exhausted = "park"`).
    pub parks: u64,
    /// Parked keys released: their message succeeded, or was dead-lettered
    /// after `park_timeout`. `parks - unparks` keys are parked now.
    pub unparks: u64,
}

impl Stats {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn handled(&self) {
        Self::add(&self.handled, 1);
    }

    pub(crate) fn replied(&self, n: u64) {
        Self::add(&self.replied, n);
    }

    pub(crate) fn dead_lettered(&self) {
        Self::add(&self.dead_lettered, 1);
    }

    pub(crate) fn skipped(&self) {
        Self::add(&self.skipped, 1);
    }

    pub(crate) fn retried(&self) {
        Self::add(&self.retried, 1);
    }

    pub(crate) fn failed_attempt(&self) {
        Self::add(&self.failed_attempts, 1);
    }

    pub(crate) fn consumed(&self) {
        Self::add(&self.consumed, 1);
    }

    pub(crate) fn paused(&self) {
        Self::add(&self.backpressure_pauses, 1);
    }

    pub(crate) fn aggregate_completed(&self) {
        Self::add(&self.aggregates_completed, 1);
    }

    pub(crate) fn aggregate_expired(&self) {
        Self::add(&self.aggregates_expired, 1);
    }

    pub(crate) fn codec_waited(&self) {
        Self::add(&self.codec_waits, 1);
    }

    pub(crate) fn publish_failed(&self) {
        Self::add(&self.publish_failed, 1);
    }

    pub(crate) fn publish_retried(&self, n: u64) {
        Self::add(&self.publish_retried, n);
    }

    pub(crate) fn parked(&self) {
        Self::add(&self.parks, 1);
    }

    pub(crate) fn unparked(&self) {
        Self::add(&self.unparks, 1);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            consumed: l(&self.consumed),
            handled: l(&self.handled),
            replied: l(&self.replied),
            dead_lettered: l(&self.dead_lettered),
            skipped: l(&self.skipped),
            retried: l(&self.retried),
            failed_attempts: l(&self.failed_attempts),
            backpressure_pauses: l(&self.backpressure_pauses),
            aggregates_completed: l(&self.aggregates_completed),
            aggregates_expired: l(&self.aggregates_expired),
            codec_waits: l(&self.codec_waits),
            publish_failed: l(&self.publish_failed),
            publish_retried: l(&self.publish_retried),
            parks: l(&self.parks),
            unparks: l(&self.unparks),
        }
    }
}
