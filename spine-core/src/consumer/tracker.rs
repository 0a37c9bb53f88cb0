//! The per-partition offset tracker behind at-least-once delivery: it knows
//! which consumed offsets are finished and yields the offset that is safe to
//! commit, the one after the longest finished run from the start.

use std::collections::VecDeque;

/// Finished and unfinished offsets of one partition, in consumption order.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    /// Offsets consumed but not yet committable, oldest first, with a done flag.
    pending: VecDeque<(i64, bool)>,
    /// The offset to commit next (last contiguous finished offset + 1).
    committable: Option<i64>,
    /// The highest offset seen, to ignore re-deliveries within one assignment.
    highest: Option<i64>,
}

impl OffsetTracker {
    /// Whether a consumed offset is new in this assignment. librdkafka can hand
    /// the application an offset again within one assignment (after a pause,
    /// fetching restarts from the position saved when the pause took effect);
    /// the first copy is already handled or in flight, so the caller drops it.
    pub(crate) fn accept(&mut self, offset: i64) -> bool {
        if self.highest.is_some_and(|h| offset <= h) {
            return false;
        }
        self.highest = Some(offset);
        true
    }

    /// An accepted offset that finished without waiting. Returns whether the
    /// committable offset moved.
    pub(crate) fn finished_now(&mut self, offset: i64) -> bool {
        if self.pending.is_empty() {
            self.committable = Some(offset + 1);
            true
        } else {
            self.pending.push_back((offset, true));
            false
        }
    }

    /// An accepted offset whose handling goes on.
    pub(crate) fn started(&mut self, offset: i64) {
        self.pending.push_back((offset, false));
    }

    /// Marks a started offset finished. Returns whether the committable offset moved.
    pub(crate) fn finish(&mut self, offset: i64) -> bool {
        let Ok(i) = self.pending.binary_search_by_key(&offset, |(o, _)| *o) else {
            return false;
        };
        self.pending[i].1 = true;
        if i != 0 {
            return false;
        }
        while let Some(&(o, true)) = self.pending.front() {
            self.committable = Some(o + 1);
            self.pending.pop_front();
        }
        true
    }

    /// The offset to commit: every offset before it is finished.
    pub(crate) fn committable(&self) -> Option<i64> {
        self.committable
    }

    /// Offsets consumed and not yet committable.
    #[cfg(test)]
    pub(crate) fn backlog(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_the_contiguous_run() {
        let mut t = OffsetTracker::default();
        assert_eq!(t.committable(), None);
        t.started(10);
        t.started(11);
        assert!(!t.finished_now(12));
        assert_eq!(t.committable(), None);
        assert!(!t.finish(11));
        assert_eq!(t.committable(), None, "10 is still running");
        assert!(t.finish(10));
        assert_eq!(t.committable(), Some(13));
        assert_eq!(t.backlog(), 0);
        assert!(t.finished_now(14));
        assert_eq!(t.committable(), Some(15));
    }

    #[test]
    fn gaps_in_offsets_do_not_stall_it() {
        // Compacted topics and transaction markers leave holes in offsets.
        let mut t = OffsetTracker::default();
        t.started(3);
        t.started(7);
        t.finish(7);
        t.finish(3);
        assert_eq!(t.committable(), Some(8));
    }

    #[test]
    fn offsets_seen_before_are_not_accepted_again() {
        let mut t = OffsetTracker::default();
        assert!(t.accept(5));
        t.started(5);
        assert!(!t.accept(5), "a re-fetched copy of an offset in flight");
        assert!(!t.accept(4));
        assert!(t.accept(6));
        assert!(t.finish(5));
        assert_eq!(t.committable(), Some(6));
    }

    proptest! {
        /// Whatever order handlers finish in, the committable offset never passes
        /// an unfinished offset, and reaches the end once all are finished.
        #[test]
        fn never_commits_past_an_unfinished_offset(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            inline in proptest::collection::vec(any::<bool>(), 60),
            order in Just(()).prop_perturb(|_, mut rng| {
                let mut v: Vec<usize> = (0..60).collect();
                for i in (1..v.len()).rev() {
                    let j = (rng.next_u32() as usize) % (i + 1);
                    v.swap(i, j);
                }
                v
            }),
        ) {
            let mut offsets = Vec::new();
            let mut o = 100;
            for g in &gaps { o += g; offsets.push(o); }
            let mut t = OffsetTracker::default();
            let mut unfinished = std::collections::BTreeSet::new();
            for (i, off) in offsets.iter().enumerate() {
                if inline[i] && unfinished.is_empty() {
                    t.finished_now(*off);
                } else {
                    t.started(*off);
                    unfinished.insert(*off);
                }
            }
            for idx in order.into_iter().filter(|i| *i < offsets.len()) {
                let off = offsets[idx];
                if unfinished.remove(&off) {
                    t.finish(off);
                }
                if let (Some(c), Some(first)) = (t.committable(), unfinished.iter().next()) {
                    prop_assert!(c <= *first, "committed {c} past unfinished {first}");
                }
            }
            prop_assert_eq!(t.committable(), Some(offsets.last().unwrap() + 1));
        }
    }
}
