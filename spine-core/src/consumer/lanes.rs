//! Key-ordered scheduling: a lane per (partition, key) (or per partition),
//! holding the messages that wait for an earlier one with the same lane to
//! finish. Lanes exist only while busy, so an idle app keeps none. A lane
//! whose running message is parked (`on_exhausted = "park"`) is marked, so
//! that the loop counts its waiting messages against `max_parked` rather than
//! `max_in_flight`.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

use crate::config::OrderingPolicy;

/// Identifies a lane. Two keys may share a lane id if their hashes collide;
/// that only serialises them, it never reorders anything.
pub(crate) type LaneId = u64;

pub(crate) struct Lanes<T> {
    ordering: OrderingPolicy,
    hasher: ahash::RandomState,
    busy: HashMap<LaneId, Lane<T>, ahash::RandomState>,
}

/// A busy lane: the messages waiting behind its running one.
struct Lane<T> {
    waiting: VecDeque<T>,
    parked: bool,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Lane {
            waiting: VecDeque::new(),
            parked: false,
        }
    }
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
        self.busy.entry(lane).or_default().waiting.push_back(item);
    }

    /// Whether the lane's running message is parked.
    pub(crate) fn is_parked(&self, lane: LaneId) -> bool {
        self.busy.get(&lane).is_some_and(|l| l.parked)
    }

    /// Marks the lane's running message parked (or no longer); returns how
    /// many messages wait behind it.
    pub(crate) fn set_parked(&mut self, lane: LaneId, parked: bool) -> usize {
        match self.busy.get_mut(&lane) {
            Some(l) => {
                l.parked = parked;
                l.waiting.len()
            }
            None => 0,
        }
    }

    /// The running message of the lane finished: returns the next one, which is
    /// now running, or frees the lane.
    pub(crate) fn release(&mut self, lane: LaneId) -> Option<T> {
        let l = self.busy.get_mut(&lane)?;
        l.parked = false;
        match l.waiting.pop_front() {
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
        self.busy.values().map(|l| l.waiting.len()).sum()
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
    fn a_parked_lane_says_how_many_wait_and_release_ends_the_park() {
        let mut l = Lanes::new(OrderingPolicy::Key);
        let a = l.lane_of(0, Some(b"a")).unwrap();
        assert_eq!(l.set_parked(a, true), 0, "no lane yet");
        l.occupy(a);
        l.wait(a, 1);
        l.wait(a, 2);
        assert_eq!(l.set_parked(a, true), 2);
        assert!(l.is_parked(a));
        l.wait(a, 3);
        assert_eq!(l.release(a), Some(1));
        assert!(!l.is_parked(a), "the next message runs unparked");
        assert_eq!(l.set_parked(a, false), 2);
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
