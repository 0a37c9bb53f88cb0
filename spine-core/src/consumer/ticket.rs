//! [`Ticket`]: the identity of a message in flight, which the loop follows
//! from its start to its settlement.

use super::lanes::LaneId;

/// Identifies a message in flight.
#[derive(Clone, Copy)]
pub(super) struct Ticket {
    pub(super) slot: usize,
    pub(super) gen: u64,
    pub(super) offset: i64,
    pub(super) lane: Option<LaneId>,
    /// Already out of `in_flight`: a held offset (open aggregate) waits
    /// outside the bound.
    pub(super) released: bool,
}
