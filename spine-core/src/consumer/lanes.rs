//! Key-ordered scheduling: a lane per (partition, key) (or per partition),
//! holding the messages that wait for an earlier one with the same lane to
//! finish. Lanes exist only while busy, so an idle app keeps none.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

use crate::config::OrderingPolicy;

/// Identifies a lane. Two keys may share a lane id if their hashes collide;
/// that only serialises them, it never reorders anything.
pub(crate) type LaneId = u64;

pub(crate) struct Lanes<T> {
    ordering: OrderingPolicy,
    hasher: ahash::RandomState,
    busy: HashMap<LaneId, VecDeque<T>, ahash::RandomState>,
}

impl<T> Lanes<T> {
    pub(crate) fn new(ordering: OrderingPolicy) -> Self {
        Lanes {
            ordering,
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            busy: HashMap::default(),
        }
    }

    /// The lane of a message of partition slot `slot` with key `key`, or `None`
    /// when ordering is off.
    pub(crate) fn lane_of(&self, slot: usize, key: Option<&[u8]>) -> Option<LaneId> {
        let mut h = self.hasher.build_hasher();
        h.write_usize(slot);
        match (self.ordering, key) {
            (OrderingPolicy::Unordered, _) => return None,
            (OrderingPolicy::Key, Some(k)) => {
                h.write_u8(1);
                h.write(k);
            }
            (OrderingPolicy::Key, None) | (OrderingPolicy::Partition, _) => h.write_u8(0),
        }
        Some(h.finish())
    }

    /// Whether no lane is busy.
    pub(crate) fn is_idle(&self) -> bool {
        self.busy.is_empty()
    }

    /// Whether a message of this lane must wait.
    pub(crate) fn is_busy(&self, lane: LaneId) -> bool {
        !self.busy.is_empty() && self.busy.contains_key(&lane)
    }

    /// Marks the lane busy with a running message.
    pub(crate) fn occupy(&mut self, lane: LaneId) {
        self.busy.entry(lane).or_default();
    }

    /// Queues a message behind the running one.
    pub(crate) fn wait(&mut self, lane: LaneId, item: T) {
        self.busy.entry(lane).or_default().push_back(item);
    }

    /// The running message of the lane finished: returns the next one, which is
    /// now running, or frees the lane.
    pub(crate) fn release(&mut self, lane: LaneId) -> Option<T> {
        let queue = self.busy.get_mut(&lane)?;
        match queue.pop_front() {
            Some(next) => Some(next),
            None => {
                self.busy.remove(&lane);
                None
            }
        }
    }

    /// Messages waiting in any lane.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.busy.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_waits_other_keys_do_not() {
        let mut l = Lanes::new(OrderingPolicy::Key);
        let a = l.lane_of(0, Some(b"a")).unwrap();
        let b = l.lane_of(0, Some(b"b")).unwrap();
        let a_other_partition = l.lane_of(1, Some(b"a")).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, a_other_partition);
        l.occupy(a);
        assert!(l.is_busy(a));
        assert!(!l.is_busy(b));
        l.wait(a, "a2");
        l.wait(a, "a3");
        assert_eq!(l.waiting(), 2);
        assert_eq!(l.release(a), Some("a2"));
        assert!(l.is_busy(a), "a2 is running now");
        assert_eq!(l.release(a), Some("a3"));
        assert_eq!(l.release(a), None);
        assert!(!l.is_busy(a));
    }

    #[test]
    fn modes_choose_the_lane() {
        let p = Lanes::<()>::new(OrderingPolicy::Partition);
        assert_eq!(p.lane_of(3, Some(b"x")), p.lane_of(3, Some(b"y")));
        assert_ne!(p.lane_of(3, None), p.lane_of(4, None));
        let k = Lanes::<()>::new(OrderingPolicy::Key);
        assert_eq!(k.lane_of(0, None), k.lane_of(0, None));
        assert_ne!(k.lane_of(0, None), k.lane_of(0, Some(b"")));
        let n = Lanes::<()>::new(OrderingPolicy::Unordered);
        assert_eq!(n.lane_of(0, Some(b"x")), None);
    }
}
