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

use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;

use super::Loop;
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
}

impl Loop<'_> {
    /// Whether the loop may take a message from librdkafka: below the bound,
    /// or polling with its partitions paused.
    #[inline]
    pub(super) fn may_take(&self) -> bool {
        self.in_flight < self.bound.max_in_flight || self.bound.paused
    }

    pub(super) fn started_one(&mut self) {
        self.in_flight += 1;
        if self.in_flight == self.bound.max_in_flight {
            metrics::counter!(m::BACKPRESSURE_PAUSES).increment(1);
            self.shared.stats.paused();
            tracing::debug!(
                in_flight = self.in_flight,
                "max_in_flight reached; taking no more messages until some finish"
            );
        }
        self.bound_changed();
    }

    pub(super) fn finished_one(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.bound_changed();
    }

    /// Keeps the bound's clock in step with `in_flight` (which parking moves
    /// too): it runs while the bound holds; below it, what it paused resumes.
    pub(super) fn bound_changed(&mut self) {
        if self.in_flight >= self.bound.max_in_flight {
            self.bound.full_since.get_or_insert_with(Instant::now);
        } else if self.bound.full_since.take().is_some() && self.bound.paused {
            self.resume_stalled();
        }
    }

    /// The bound held for half of `max.poll.interval.ms`: pauses every
    /// assigned partition, so that the loop can poll without taking messages.
    pub(super) fn pause_stalled(&mut self) {
        let assigned = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the assignment to pause it");
                return;
            }
        };
        if let Err(e) = self.consumer.pause(&assigned) {
            tracing::warn!(error = %e, "cannot pause the assigned partitions");
            return;
        }
        self.bound.paused = true;
        metrics::counter!(m::STALL_PAUSES).increment(1);
        tracing::warn!(
            in_flight = self.in_flight,
            held_s = self.bound.pause_after.as_secs_f64(),
            partitions = assigned.count(),
            "max_in_flight held for half of max.poll.interval.ms: partitions paused so that \
             the consumer keeps polling and stays in its group; they resume when a message finishes"
        );
    }

    /// A message arrived while the partitions are paused: its partition was
    /// assigned since, and is paused too.
    pub(super) fn pause_partition_of(&mut self, msg: &rdkafka::message::BorrowedMessage<'_>) {
        use rdkafka::Message;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(msg.topic(), msg.partition());
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(error = %e, "cannot pause a newly assigned partition");
        }
    }

    /// A message finished: resumes what [`Loop::pause_stalled`] paused, except
    /// partitions held back by `max_parked`.
    fn resume_stalled(&mut self) {
        self.bound.paused = false;
        let Ok(assigned) = self.consumer.assignment() else {
            return;
        };
        let mut resume = TopicPartitionList::new();
        for e in assigned.elements() {
            let parked = self
                .slots
                .iter()
                .any(|s| s.paused && s.partition == e.partition() && &*s.topic == e.topic());
            if !parked {
                resume.add_partition(e.topic(), e.partition());
            }
        }
        match self.consumer.resume(&resume) {
            Ok(()) => tracing::info!(partitions = resume.count(), "partitions resumed"),
            Err(e) => tracing::warn!(error = %e, "cannot resume the partitions"),
        }
    }
}
