//! The consumer's side of parking a key (`on_exhausted = "park"`): what a
//! parked message and the messages waiting behind it count against. A parked
//! key's messages leave `max_in_flight`, so that the other keys keep flowing,
//! and count against `max_parked` per partition instead; past that bound the
//! partition is paused (librdkafka stops fetching it, and resumes from the
//! last message it delivered), which is backpressure, not loss.
//!
//! The retries themselves are the dispatch side's (`dispatch::park`); it
//! tells the loop through [`LaneWatch`] when a message parks and unparks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc::UnboundedSender;

use super::watch::Stage;
use super::{Loop, PartitionShared, Ticket};
use crate::dispatch::park::ParkWatch;

/// A message parked (`true`) or unparked.
pub(super) type ParkNote = (Ticket, bool);

/// Tells the loop about one message's park, and whether its partition is
/// still this instance's.
pub(super) struct LaneWatch {
    tx: UnboundedSender<ParkNote>,
    ticket: Ticket,
    partition: Arc<PartitionShared>,
}

impl ParkWatch for LaneWatch {
    fn parked(&mut self, parked: bool) {
        // The loop is gone only when the app stops; nothing to account then.
        let _ = self.tx.send((self.ticket, parked));
    }

    fn abandoned(&self) -> bool {
        self.partition.revoked.load(Ordering::Relaxed)
    }
}

impl Loop<'_> {
    /// The watch for a message of `topic_idx`, if its topic parks.
    pub(super) fn park_watch(
        &self,
        topic_idx: usize,
        ticket: Ticket,
    ) -> Option<Box<dyn ParkWatch>> {
        if !self.shared.table.topic(topic_idx).parks {
            return None;
        }
        Some(Box::new(LaneWatch {
            tx: self.park_tx.clone(),
            ticket,
            partition: self.slots[ticket.slot].shared.clone(),
        }))
    }

    /// A message parked or unparked: moves it and the messages waiting behind
    /// it out of `max_in_flight` (or back), and pauses or resumes its partition
    /// around `max_parked`.
    pub(super) fn on_park(&mut self, (ticket, parked): ParkNote) {
        let waiting = match ticket.lane {
            Some(lane) => self.lanes.set_parked(lane, parked),
            None => 0,
        };
        let key = (ticket.slot, ticket.gen, ticket.offset);
        let slot = &mut self.slots[ticket.slot];
        let current = slot.shared.gen == ticket.gen;
        if parked {
            self.in_flight = self.in_flight.saturating_sub(1 + waiting);
            if current {
                slot.parked += waiting;
            }
            let s = &self.slots[ticket.slot];
            self.watch
                .enter(key, Stage::Parked, &s.topic, s.partition, None);
        } else {
            self.in_flight += 1 + waiting;
            if current {
                slot.parked = slot.parked.saturating_sub(waiting);
            }
            let s = &self.slots[ticket.slot];
            self.watch
                .enter(key, Stage::Handler, &s.topic, s.partition, None);
        }
        self.bound_changed();
        self.pause_or_resume(ticket.slot);
    }

    /// A message arrived for a parked key: it waits outside `max_in_flight`.
    pub(super) fn wait_behind_parked(&mut self, slot: usize) {
        self.slots[slot].parked += 1;
        self.pause_or_resume(slot);
    }

    /// Pauses a partition whose parked backlog reached `max_parked`, and
    /// resumes it once below.
    fn pause_or_resume(&mut self, slot: usize) {
        let max = self.shared.config.retry.max_parked;
        let s = &mut self.slots[slot];
        let over = s.parked >= max;
        if over == s.paused || s.shared.revoked.load(Ordering::Relaxed) {
            return;
        }
        if !over && self.bound.is_paused() {
            // Paused for backpressure too: resumed with the others.
            s.paused = false;
            return;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&s.topic, s.partition);
        let result = if over {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        match result {
            Ok(()) => {
                s.paused = over;
                tracing::info!(
                    topic = %s.topic, partition = s.partition, parked = s.parked, max_parked = max,
                    "{}",
                    if over {
                        "max_parked reached: partition paused until a parked key drains"
                    } else {
                        "parked backlog below max_parked: partition resumed"
                    }
                );
            }
            Err(e) => tracing::warn!(
                topic = %s.topic, partition = s.partition, error = %e,
                "could not pause or resume the partition; tried again at its next park change"
            ),
        }
    }
}
