//! Metric names and the per-topic counter handles the consumer loop keeps, so
//! that counting a message costs an atomic add, not a registry lookup.
//!
//! Metrics go through the [`metrics`] facade: install a recorder (Prometheus,
//! StatsD, ...) before building the app.

use metrics::{counter, Counter};

/// Messages received from Kafka. Labels: `topic`.
pub const CONSUMED: &str = "spine_messages_consumed_total";
/// Messages whose handlers all succeeded. Labels: `topic`.
pub const HANDLED: &str = "spine_messages_handled_total";
/// Failed handler attempts (each attempt counts). Labels: `topic`, `kind`.
pub const FAILED: &str = "spine_messages_failed_total";
/// Retries scheduled after a failed attempt. Labels: `topic`.
pub const RETRIED: &str = "spine_messages_retried_total";
/// Messages published to a dead-letter topic. Labels: `topic`, `kind`.
pub const DEAD_LETTERED: &str = "spine_messages_dead_lettered_total";
/// Messages no handler matched. Labels: `topic`.
pub const UNKNOWN_EVENT: &str = "spine_messages_unknown_event_total";
/// Replies and emitted events handed to the producer. Labels: `topic` (the source topic).
pub const PRODUCED: &str = "spine_records_produced_total";
/// Failed deliveries that are being retried. Labels: `topic` (the destination).
pub const PRODUCE_ERRORS: &str = "spine_produce_errors_total";
/// Records the broker (or librdkafka) refused for good: too large, invalid,
/// an unknown or forbidden topic. The message that published one fails with
/// kind `publish`. Labels: `topic` (the destination), `error` (the code).
pub const PUBLISH_REFUSED: &str = "spine_publish_refused_total";
/// Warnings about a message in flight for longer than
/// `dispatch.in_flight_warning`. Labels: `topic`.
pub const SLOW_MESSAGES: &str = "spine_slow_messages_total";
/// Errors reported by the consumer (transport failures and the like); the loop carries on.
pub const CONSUMER_ERRORS: &str = "spine_consumer_errors_total";
/// Messages librdkafka delivered again within one assignment (after a
/// pause); dropped, since the first copy is handled.
pub const REFETCHED: &str = "spine_messages_refetched_total";
/// Times a message waited for its codec (the schema registry being unreachable). Labels: `topic`.
pub const CODEC_WAITS: &str = "spine_codec_waits_total";
/// Offset commits that failed. They are retried at the next interval.
pub const COMMIT_ERRORS: &str = "spine_commit_errors_total";
/// Times the broker became unreachable (one per outage, not per attempt).
pub const BROKER_UNREACHABLE: &str = "spine_broker_unreachable_total";
/// Handler calls (or pipeline steps) that panicked. Labels: `topic`, `handler`.
pub const PANICS: &str = "spine_handler_panics_total";
/// Stops whose final commit the broker did not confirm in time (or that were
/// forced): handled messages whose offsets will be handled again.
pub const COMMIT_TIMEOUTS: &str = "spine_shutdown_uncommitted_total";
/// Requests that got no response in time. Labels: `topic` (the request's).
pub const REQUEST_TIMEOUTS: &str = "spine_request_timeouts_total";
/// Responses on the reply topic that no request of this instance waits for
/// (another instance's, or late).
pub const RESPONSES_UNMATCHED: &str = "spine_responses_unmatched_total";
/// Times the loop stopped taking messages because `max_in_flight` was reached.
pub const BACKPRESSURE_PAUSES: &str = "spine_backpressure_pauses_total";
/// Keys parked because a message's retries were exhausted
/// (`on_exhausted = "park"`). Labels: `topic`.
pub const PARKS: &str = "spine_parks_total";
/// Parked keys released. Labels: `topic`, `outcome` (`handled`,
/// `dead_lettered` after `park_timeout`, `abandoned` on revoke or stop).
pub const UNPARKS: &str = "spine_unparks_total";
/// Keys parked now (a gauge). Labels: `topic`.
pub const PARKED_KEYS: &str = "spine_parked_keys";
/// Times the loop paused its partitions because `max_in_flight` held for
/// half of `max.poll.interval.ms` (so that it could keep polling and stay in
/// its group).
pub const STALL_PAUSES: &str = "spine_stall_pauses_total";
/// Aggregates completed. Labels: `aggregate`.
pub const AGGREGATES_COMPLETED: &str = "spine_aggregates_completed_total";
/// Aggregates expired (timeout or `max_open`) and dead-lettered. Labels: `aggregate`, `reason`.
pub const AGGREGATES_EXPIRED: &str = "spine_aggregates_expired_total";

/// Counter handles for one topic.
#[derive(Clone)]
pub(crate) struct TopicMetrics {
    pub(crate) consumed: Counter,
    pub(crate) handled: Counter,
    pub(crate) retried: Counter,
    pub(crate) unknown_event: Counter,
    pub(crate) produced: Counter,
}

impl TopicMetrics {
    pub(crate) fn new(topic: &str) -> Self {
        let t = topic.to_owned();
        TopicMetrics {
            consumed: counter!(CONSUMED, "topic" => t.clone()),
            handled: counter!(HANDLED, "topic" => t.clone()),
            retried: counter!(RETRIED, "topic" => t.clone()),
            unknown_event: counter!(UNKNOWN_EVENT, "topic" => t.clone()),
            produced: counter!(PRODUCED, "topic" => t),
        }
    }
}
