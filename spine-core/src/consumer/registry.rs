//! The assigned partitions as the loop and librdkafka's rebalance callback
//! both see them: each partition's generation, its committable and confirmed
//! offsets, and whether it was revoked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::{Offset, TopicPartitionList};

/// State of one assigned partition that the rebalance callback must see.
pub(crate) struct PartitionShared {
    pub(super) gen: u64,
    /// Offset safe to commit, or -1.
    pub(super) committable: AtomicI64,
    /// The last offset the broker confirmed as committed, or -1.
    pub(super) confirmed: AtomicI64,
    pub(super) revoked: AtomicBool,
}

/// Assigned partitions, shared between the loop and the rebalance callback.
#[derive(Default)]
pub(crate) struct Registry {
    pub(super) parts: Mutex<HashMap<(String, i32), Arc<PartitionShared>>>,
    next_gen: AtomicU64,
}

impl Registry {
    pub(super) fn get_or_assign(&self, topic: &str, partition: i32) -> Arc<PartitionShared> {
        self.parts
            .lock()
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| self.fresh())
            .clone()
    }

    /// Records the offsets a commit stored, partition by partition.
    pub(super) fn confirm(&self, offsets: &TopicPartitionList) {
        let parts = self.parts.lock();
        for e in offsets.elements() {
            if let (Ok(()), Offset::Offset(o)) = (e.error(), e.offset()) {
                if let Some(p) = parts.get(&(e.topic().to_owned(), e.partition())) {
                    p.confirmed.fetch_max(o, Ordering::Relaxed);
                }
            }
        }
    }

    pub(super) fn fresh(&self) -> Arc<PartitionShared> {
        Arc::new(PartitionShared {
            gen: self.next_gen.fetch_add(1, Ordering::Relaxed),
            committable: AtomicI64::new(-1),
            confirmed: AtomicI64::new(-1),
            revoked: AtomicBool::new(false),
        })
    }
}
