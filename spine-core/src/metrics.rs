//! Metric names and the per-topic counter handles the consumer loop keeps, so
//! that counting a message costs an atomic add, not a registry lookup.
//!
//! Metrics go through the [`metrics`] facade: install a recorder (Prometheus,
//! StatsD, ...) before building the app.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, Counter};

/// Defines each metric's name as a constant, documented, and `describe()`,
/// which gives each its `# HELP` text: the same words, written once.
macro_rules! metrics {
    ($($(#[doc = $doc:literal])+ $kind:ident $name:ident = $value:literal;)*) => {
        $(
            $(#[doc = $doc])+
            pub const $name: &str = $value;
        )*

        /// Gives every metric its description (Prometheus' `# HELP` line).
        #[cfg_attr(not(feature = "http"), allow(dead_code))]
        pub(crate) fn describe() {
            $(metrics!(@describe $kind, $value, concat!($($doc),+).trim_start());)*
        }
    };
    (@describe counter, $name:expr, $help:expr) => { metrics::describe_counter!($name, $help) };
    (@describe gauge, $name:expr, $help:expr) => { metrics::describe_gauge!($name, $help) };
    (@describe histogram, $name:expr, $help:expr) => {
        metrics::describe_histogram!($name, metrics::Unit::Seconds, $help)
    };
}

metrics! {
    /// Messages received, from Kafka or as HTTP requests. Labels: `topic`,
    /// `transport` (`kafka` or `http`).
    counter CONSUMED = "spine_messages_consumed_total";
    /// Messages whose handlers all succeeded. Labels: `topic`, `transport`.
    counter HANDLED = "spine_messages_handled_total";
    /// Failed handler attempts (each attempt counts). Labels: `topic`, `kind`,
    /// `transport`.
    counter FAILED = "spine_messages_failed_total";
    /// Retries scheduled after a failed attempt. Labels: `topic`, `kind`.
    counter RETRIED = "spine_messages_retried_total";
    /// Messages published to a dead-letter topic. Labels: `topic`, `kind`.
    counter DEAD_LETTERED = "spine_messages_dead_lettered_total";
    /// Messages no handler matched. Labels: `topic`.
    counter UNKNOWN_EVENT = "spine_messages_unknown_event_total";
    /// Replies and emitted events handed to the producer. Labels: `topic` (the source topic).
    counter PRODUCED = "spine_records_produced_total";
    /// Failed deliveries that are being retried. Labels: `topic` (the destination).
    counter PRODUCE_ERRORS = "spine_produce_errors_total";
    /// Records the broker (or librdkafka) refused for good: too large, invalid,
    /// an unknown or forbidden topic. The message that published one fails with
    /// kind `publish`. Labels: `topic` (the destination), `error` (the code).
    counter PUBLISH_REFUSED = "spine_publish_refused_total";
    /// Warnings about a message in flight for longer than
    /// `dispatch.in_flight_warning`. Labels: `topic`.
    counter SLOW_MESSAGES = "spine_slow_messages_total";
    /// Errors reported by the consumer (transport failures and the like); the loop carries on.
    counter CONSUMER_ERRORS = "spine_consumer_errors_total";
    /// Messages librdkafka delivered again within one assignment (after a
    /// pause); dropped, since the first copy is handled.
    counter REFETCHED = "spine_messages_refetched_total";
    /// Times a message waited for its codec (the schema registry being unreachable). Labels: `topic`.
    counter CODEC_WAITS = "spine_codec_waits_total";
    /// Offset commits that failed. They are retried at the next interval.
    counter COMMIT_ERRORS = "spine_commit_errors_total";
    /// Times the broker became unreachable (one per outage, not per attempt).
    counter BROKER_UNREACHABLE = "spine_broker_unreachable_total";
    /// Records a producer hook dropped. Labels: `topic` (the destination), `event`.
    counter OUTGOING_DROPPED = "spine_outgoing_dropped_total";
    /// Producer hooks that failed or panicked; the record was published as
    /// given to the hook. Labels: `topic` (the destination), `event`.
    counter OUTGOING_HOOK_ERRORS = "spine_outgoing_hook_errors_total";
    /// Re-delivered messages the inbox skipped, their id being recorded.
    /// Labels: `topic`.
    counter INBOX_DUPLICATES = "spine_inbox_duplicates_total";
    /// Queue mode: messages stored as `pending` rows. Labels: `topic`.
    counter INBOX_QUEUED = "spine_inbox_queued_total";
    /// Queue mode: attempts of inbox rows, by outcome (`processed`, `error`,
    /// `dead`). Labels: `topic`, `status`.
    counter INBOX_ATTEMPTS = "spine_inbox_attempts_total";
    /// Inbox database operations that failed and are retried (the database
    /// unreachable, a lock timeout). Labels: `operation`.
    counter INBOX_ERRORS = "spine_inbox_errors_total";
    /// Changes of the consumer's `spine_consumer_configs` row (`[app]
    /// config_source`), by outcome: `applied`, or `rejected` (invalid; the
    /// previous settings stay).
    counter CONFIG_RELOADS = "spine_config_reloads_total";
    /// Outbox rows the relay published and marked sent.
    counter OUTBOX_PUBLISHED = "spine_outbox_published_total";
    /// Outbox rows the broker refused for good (marked with the error).
    /// Labels: `topic`.
    counter OUTBOX_REFUSED = "spine_outbox_refused_total";
    /// Handler calls (or pipeline steps) that panicked. Labels: `topic`, `handler`.
    counter PANICS = "spine_handler_panics_total";
    /// Stops whose final commit the broker did not confirm in time (or that were
    /// forced): handled messages whose offsets will be handled again.
    counter COMMIT_TIMEOUTS = "spine_shutdown_uncommitted_total";
    /// Requests that got no response in time. Labels: `topic` (the request's).
    counter REQUEST_TIMEOUTS = "spine_request_timeouts_total";
    /// Responses on the reply topic that no request of this instance waits for
    /// (another instance's, or late).
    counter RESPONSES_UNMATCHED = "spine_responses_unmatched_total";
    /// Times the loop stopped taking messages because `max_in_flight` was reached.
    counter BACKPRESSURE_PAUSES = "spine_backpressure_pauses_total";
    /// Keys parked because a message's retries were exhausted
    /// (`on_exhausted = "park"`). Labels: `topic`.
    counter PARKS = "spine_parks_total";
    /// Parked keys released. Labels: `topic`, `outcome` (`handled`,
    /// `dead_lettered` after `park_timeout`, `abandoned` on revoke or stop).
    counter UNPARKS = "spine_unparks_total";
    /// Keys parked now (a gauge). Labels: `topic`.
    gauge PARKED_KEYS = "spine_parked_keys";
    /// Times the loop paused its partitions because `max_in_flight` held for
    /// half of `max.poll.interval.ms` (so that it could keep polling and stay in
    /// its group).
    counter STALL_PAUSES = "spine_stall_pauses_total";
    /// Messages in flight (sampled at each round of the consumer loop).
    gauge IN_FLIGHT = "spine_in_flight";
    /// Partitions assigned to this instance.
    gauge ASSIGNED_PARTITIONS = "spine_assigned_partitions";
    /// Messages not yet consumed, per assigned partition (librdkafka's
    /// statistics: the end minus the position). Labels: `topic`, `partition`.
    gauge CONSUMER_LAG = "spine_consumer_lag";
    /// The group's committed offset, per assigned partition. Labels: `topic`,
    /// `partition`.
    gauge COMMITTED_OFFSET = "spine_committed_offset";
    /// Aggregates completed. Labels: `aggregate`.
    counter AGGREGATES_COMPLETED = "spine_aggregates_completed_total";
    /// Aggregates expired (timeout or `max_open`) and dead-lettered. Labels: `aggregate`, `reason`.
    counter AGGREGATES_EXPIRED = "spine_aggregates_expired_total";
    /// How long handlers take, from the start of the first attempt to the end of
    /// the last (retries included). Labels: `topic`, `event`, `handler`,
    /// `transport`.
    histogram HANDLER_DURATION = "spine_handler_duration_seconds";
    /// Requests to the handler endpoints, by response. Labels: `handler`,
    /// `status` (the HTTP status code), `kind` (the error kind, or `ok`).
    counter HTTP_REQUESTS = "spine_http_requests_total";
}

/// Counter handles for one topic. When `[http]` is on, the counts are kept
/// locally instead (the status page shows them; a recorder's values cannot be
/// read back), and the counters are brought up to them at each scrape
/// ([`TopicMetrics::sync`]): one atomic add per count and message either way.
/// Off, nothing is kept (measured: two more atomic adds per message cost the
/// JSON benchmark several percent).
pub(crate) struct TopicMetrics {
    consumed: Counter,
    handled: Counter,
    unknown_event: Counter,
    produced: Counter,
    local: Option<Box<[AtomicU64; 4]>>,
}

/// A topic's counts since the app started (read by the status page).
#[cfg_attr(not(feature = "http"), allow(dead_code))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TopicCounts {
    pub(crate) consumed: u64,
    pub(crate) handled: u64,
    pub(crate) failed: u64,
    pub(crate) unknown_event: u64,
}

const CONSUMED_AT: usize = 0;
const HANDLED_AT: usize = 1;
const FAILED_AT: usize = 2;
const UNKNOWN_AT: usize = 3;

impl TopicMetrics {
    pub(crate) fn new(topic: &str) -> Self {
        let t = topic.to_owned();
        TopicMetrics {
            consumed: counter!(CONSUMED, "topic" => t.clone(), "transport" => "kafka"),
            handled: counter!(HANDLED, "topic" => t.clone(), "transport" => "kafka"),
            unknown_event: counter!(UNKNOWN_EVENT, "topic" => t.clone()),
            produced: counter!(PRODUCED, "topic" => t),
            local: None,
        }
    }

    /// From now on, counts locally instead of on the counters.
    pub(crate) fn count_locally(&mut self) {
        self.local.get_or_insert_with(Default::default);
    }

    /// Counts locally (`[http]` on), else on `counter`.
    #[inline]
    fn add(&self, at: usize, counter: Option<&Counter>) {
        match (&self.local, counter) {
            (Some(l), _) => {
                l[at].fetch_add(1, Ordering::Relaxed);
            }
            (None, Some(c)) => c.increment(1),
            (None, None) => {}
        }
    }

    pub(crate) fn consumed(&self) {
        self.add(CONSUMED_AT, Some(&self.consumed));
    }

    pub(crate) fn handled(&self, produced: u64) {
        self.add(HANDLED_AT, Some(&self.handled));
        if produced > 0 {
            self.produced.increment(produced);
        }
    }

    pub(crate) fn unknown_event(&self) {
        self.add(UNKNOWN_AT, Some(&self.unknown_event));
    }

    /// A message failed for good (its counter has labels, so it is counted
    /// where the failure is known).
    pub(crate) fn failed(&self) {
        self.add(FAILED_AT, None);
    }

    /// Brings the counters up to the local counts, before a scrape.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn sync(&self) {
        if let Some(c) = self.counts() {
            self.consumed.absolute(c.consumed);
            self.handled.absolute(c.handled);
            self.unknown_event.absolute(c.unknown_event);
        }
    }

    /// The local counts; `None` when they are not kept.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn counts(&self) -> Option<TopicCounts> {
        let local = self.local.as_ref()?;
        let l = |at: usize| local[at].load(Ordering::Relaxed);
        Some(TopicCounts {
            consumed: l(CONSUMED_AT),
            handled: l(HANDLED_AT),
            failed: l(FAILED_AT),
            unknown_event: l(UNKNOWN_AT),
        })
    }
}
