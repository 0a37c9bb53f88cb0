//! Backpressure: what `max_in_flight` does to fetching.
//!
//! At `max_in_flight` unfinished messages the loop stops taking messages from
//! librdkafka, whose prefetch queue then fills to its bound
//! (`queued.max.messages.kbytes`, `queued.min.messages`) and stops fetching,
//! so memory stays bounded. This, not librdkafka's `pause`/`resume`, is the
//! first step: pausing discards the prefetched queue and resuming fetches it
//! again, a round trip to the broker each time the bound is reached. With
//! handlers that wait on I/O the bound is reached every few messages, and
//! that round trip caps the throughput. Measured on nisshi (1 partition,
//! 1,000 keys, a handler awaiting 5 ms, `max_in_flight` 100, 40,000
//! messages, 3 runs each): about 16,000 msgs/s this way, 7,500 msgs/s when
//! pausing at the bound and resuming at half of it.
//!
//! But a loop that takes no messages does not poll librdkafka either, and
//! after `max.poll.interval.ms` without a poll librdkafka leaves the group
//! (MAXPOLL): one stuck bound would cost a rebalance and re-deliveries. So
//! when the bound holds for half that interval, the loop pauses every
//! assigned partition and polls again. Paused partitions deliver nothing,
//! polling keeps the membership, and resuming fetches from the last offset
//! delivered: nothing lost, nothing twice.

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use crate::metrics as m;

/// librdkafka's default `max.poll.interval.ms`.
const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(300);

/// How long the bound may hold before the loop pauses its partitions to poll.
pub(super) fn pause_after(kafka: &std::collections::BTreeMap<String, String>) -> Duration {
    kafka
        .get("max.poll.interval.ms")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_MAX_POLL_INTERVAL)
        / 2
}

/// The loop's backpressure state.
pub(super) struct Bound {
    pub(super) max_in_flight: usize,
    pause_after: Duration,
    /// Since when `max_in_flight` holds.
    full_since: Option<Instant>,
    /// The partitions are paused because the bound held too long.
    paused: bool,
}

impl Bound {
    pub(super) fn new(max_in_flight: usize, pause_after: Duration) -> Self {
        Bound {
            max_in_flight,
            pause_after,
            full_since: None,
            paused: false,
        }
    }

    /// When to pause the partitions, if the bound holds and they are not yet.
    pub(super) fn pause_at(&self) -> Option<Instant> {
        match (self.full_since, self.paused) {
            (Some(since), false) => Some(since + self.pause_after),
            _ => None,
        }
    }

    /// Whether the partitions are paused because the bound held too long.
    pub(super) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the loop may take a message from librdkafka: below the bound,
    /// or polling with its partitions paused.
    #[inline]
    pub(super) fn may_take(&self, in_flight: usize) -> bool {
        in_flight < self.max_in_flight || self.paused
    }

    /// `in_flight` changed (parking moves it too): the clock runs while the
    /// bound holds. Returns whether what [`Bound::pause`] paused should
    /// resume now.
    pub(super) fn changed(&mut self, in_flight: usize) -> bool {
        if in_flight >= self.max_in_flight {
            self.full_since.get_or_insert_with(Instant::now);
            false
        } else {
            self.full_since.take().is_some() && self.paused
        }
    }

    /// The bound held for half of `max.poll.interval.ms`: pauses every
    /// assigned partition, so that the loop can poll without taking messages.
    pub(super) fn pause<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        in_flight: usize,
    ) {
        let assigned = match consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the assignment to pause it");
                return;
            }
        };
        if let Err(e) = consumer.pause(&assigned) {
            tracing::warn!(error = %e, "cannot pause the assigned partitions");
            return;
        }
        self.paused = true;
        metrics::counter!(m::STALL_PAUSES).increment(1);
        tracing::warn!(
            in_flight,
            held_s = self.pause_after.as_secs_f64(),
            partitions = assigned.count(),
            "max_in_flight held for half of max.poll.interval.ms: partitions paused so that \
             the consumer keeps polling and stays in its group; they resume when a message finishes"
        );
    }

    /// Resumes what [`Bound::pause`] paused, except the partitions `held`
    /// back for another reason (`max_parked`).
    pub(super) fn resume<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        held: impl Fn(&str, i32) -> bool,
    ) {
        self.paused = false;
        let Ok(assigned) = consumer.assignment() else {
            return;
        };
        let mut resume = TopicPartitionList::new();
        for e in assigned.elements() {
            if !held(e.topic(), e.partition()) {
                resume.add_partition(e.topic(), e.partition());
            }
        }
        match consumer.resume(&resume) {
            Ok(()) => tracing::info!(partitions = resume.count(), "partitions resumed"),
            Err(e) => tracing::warn!(error = %e, "cannot resume the partitions"),
        }
    }
}

/// Pauses (or resumes) one partition.
pub(super) fn set_paused<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    partition: i32,
    pause: bool,
) -> rdkafka::error::KafkaResult<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    }
}
