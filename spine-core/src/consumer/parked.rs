//! The consumer's side of parking a key (`on_exhausted = "park"`): what a
//! parked message and the messages waiting behind it count against. A parked
//! key's messages leave `max_in_flight`, so that the other keys keep flowing,
//! and count against `max_parked` per partition instead; past that bound the
//! partition is paused (librdkafka stops fetching it, and resumes from the
//! last message it delivered), which is backpressure, not loss.
//!
//! The retries themselves are the dispatch side's (`dispatch::park`); it
//! tells the loop through [`LaneWatch`] when a message parks and unparks, and
//! the loop (`Loop::on_park`) moves the counts.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::registry::PartitionShared;
use super::ticket::Ticket;
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

impl LaneWatch {
    /// The watch of the message `ticket` of `partition`.
    pub(super) fn boxed(
        tx: UnboundedSender<ParkNote>,
        ticket: Ticket,
        partition: Arc<PartitionShared>,
    ) -> Box<dyn ParkWatch> {
        Box::new(LaneWatch {
            tx,
            ticket,
            partition,
        })
    }
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
