//! What a running app knows about itself, for the operations surface
//! (`/health/*`, the status page, the gauges): when the consumer loop last
//! went round, whether it joined its group, the assigned partitions with
//! their committed offset and lag (from librdkafka's statistics), whether a
//! broker is up, the messages in flight, and the last failures.
//!
//! Always compiled and cheap: atomics and small locks, written by the loop
//! at its ticks, by librdkafka's callbacks, and once per failed message;
//! never on a message's fast path. The HTTP module (feature `http`) reads it.

// Without the HTTP module, what only it reads goes unread.
#![cfg_attr(not(feature = "http"), allow(dead_code))]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

/// How many failures the status page shows.
pub(crate) const FAILURES_KEPT: usize = 20;

/// A message that failed for good (dead-lettered, or skipped when
/// dead-lettering is off): where it was and why, never its payload.
#[derive(Debug, Clone)]
pub(crate) struct FailureRecord {
    pub(crate) at: SystemTime,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) handler: Option<String>,
    pub(crate) kind: &'static str,
    pub(crate) error: String,
}

/// An assigned partition, as librdkafka's statistics last described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartitionStatus {
    /// The group's committed offset, when known.
    pub(crate) committed: Option<i64>,
    /// The partition's end (high watermark), when known.
    pub(crate) high: Option<i64>,
    /// Messages not yet consumed: the end minus the position.
    pub(crate) lag: Option<i64>,
}

/// An in-flight message that has taken long, as the status page lists it.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) handler: Option<String>,
    pub(crate) waits_for: &'static str,
    pub(crate) for_: Duration,
}

/// The app's operational state.
pub(crate) struct Status {
    started: Instant,
    started_at: SystemTime,
    /// Milliseconds since `started` of the loop's last round.
    heartbeat: AtomicU64,
    /// Set when the loop ended, with why.
    stopped: Mutex<Option<String>>,
    /// An assignment (even an empty one) arrived since the last revoke.
    joined: AtomicBool,
    assigned: Mutex<BTreeMap<(String, i32), PartitionStatus>>,
    /// Brokers librdkafka reported `UP` in its last statistics, and when.
    brokers_up: AtomicUsize,
    brokers_known: AtomicUsize,
    stats_at: AtomicU64,
    in_flight: AtomicUsize,
    slow: Mutex<Vec<InFlight>>,
    failures: Mutex<VecDeque<FailureRecord>>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            started: Instant::now(),
            started_at: SystemTime::now(),
            heartbeat: AtomicU64::new(0),
            stopped: Mutex::new(None),
            joined: AtomicBool::new(false),
            assigned: Mutex::new(BTreeMap::new()),
            brokers_up: AtomicUsize::new(0),
            brokers_known: AtomicUsize::new(0),
            stats_at: AtomicU64::new(u64::MAX),
            in_flight: AtomicUsize::new(0),
            slow: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::with_capacity(FAILURES_KEPT)),
        }
    }
}

impl Status {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The loop went round.
    pub(crate) fn beat(&self, in_flight: usize) {
        self.heartbeat.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.store(in_flight, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::IN_FLIGHT).set(in_flight as f64);
    }

    /// The loop ended.
    pub(crate) fn stop(&self, why: String) {
        *self.stopped.lock() = Some(why);
    }

    /// How long ago the loop last went round, or why it ended.
    pub(crate) fn since_beat(&self) -> Result<Duration, String> {
        if let Some(why) = self.stopped.lock().clone() {
            return Err(why);
        }
        let last = self.heartbeat.load(Ordering::Relaxed);
        Ok(Duration::from_millis(self.now_ms().saturating_sub(last)))
    }

    /// Uptime and start time.
    pub(crate) fn started(&self) -> (Duration, SystemTime) {
        (self.started.elapsed(), self.started_at)
    }

    /// Partitions were assigned (after a revoke, the whole new assignment).
    pub(crate) fn assign<'a>(&self, parts: impl Iterator<Item = (&'a str, i32)>) {
        let mut a = self.assigned.lock();
        for (t, p) in parts {
            a.entry((t.to_owned(), p)).or_default();
        }
        self.joined.store(true, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::ASSIGNED_PARTITIONS).set(a.len() as f64);
    }

    /// Partitions were revoked: the member is between generations.
    pub(crate) fn revoke<'a>(&self, parts: impl Iterator<Item = (&'a str, i32)>) {
        let mut a = self.assigned.lock();
        for (t, p) in parts {
            a.remove(&(t.to_owned(), p));
            let labels = [("topic", t.to_owned()), ("partition", p.to_string())];
            metrics::gauge!(crate::metrics::CONSUMER_LAG, &labels).set(0.0);
        }
        self.joined.store(false, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::ASSIGNED_PARTITIONS).set(a.len() as f64);
    }

    /// Whether the member holds an assignment (possibly empty).
    pub(crate) fn joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }

    /// The assigned partitions.
    pub(crate) fn assigned(&self) -> BTreeMap<(String, i32), PartitionStatus> {
        self.assigned.lock().clone()
    }

    /// librdkafka's statistics: broker states, and per assigned partition its
    /// committed offset, end and lag, also set as gauges.
    pub(crate) fn statistics(&self, stats: &rdkafka::Statistics) {
        // Bootstrap entries (`nodeid` -1) are not brokers of the cluster.
        let brokers = || stats.brokers.values().filter(|b| b.nodeid >= 0);
        let up = brokers().filter(|b| b.state == "UP").count();
        let known = brokers().count();
        self.brokers_up.store(up, Ordering::Relaxed);
        self.brokers_known.store(known, Ordering::Relaxed);
        self.stats_at.store(self.now_ms(), Ordering::Relaxed);
        let mut assigned = self.assigned.lock();
        for ((topic, partition), st) in assigned.iter_mut() {
            let Some(p) = stats
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(partition))
            else {
                continue;
            };
            let known = |v: i64| (v >= 0).then_some(v);
            st.committed = known(p.committed_offset);
            st.high = known(p.hi_offset);
            st.lag = known(p.consumer_lag);
            let labels = [
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            if let Some(lag) = st.lag {
                metrics::gauge!(crate::metrics::CONSUMER_LAG, &labels).set(lag as f64);
            }
            if let Some(c) = st.committed {
                metrics::gauge!(crate::metrics::COMMITTED_OFFSET, &labels).set(c as f64);
            }
        }
    }

    /// Brokers up in the last statistics, and how old they are (`None`
    /// before the first).
    pub(crate) fn brokers(&self) -> (usize, usize, Option<Duration>) {
        let at = self.stats_at.load(Ordering::Relaxed);
        let age = (at != u64::MAX).then(|| Duration::from_millis(self.now_ms().saturating_sub(at)));
        (
            self.brokers_up.load(Ordering::Relaxed),
            self.brokers_known.load(Ordering::Relaxed),
            age,
        )
    }

    /// Messages in flight at the loop's last round, and the slow ones.
    pub(crate) fn in_flight(&self) -> (usize, Vec<InFlight>) {
        (
            self.in_flight.load(Ordering::Relaxed),
            self.slow.lock().clone(),
        )
    }

    /// The loop's list of messages in flight for long.
    pub(crate) fn set_slow(&self, slow: Vec<InFlight>) {
        *self.slow.lock() = slow;
    }

    /// A message failed for good.
    pub(crate) fn failed(&self, f: FailureRecord) {
        let mut q = self.failures.lock();
        if q.len() == FAILURES_KEPT {
            q.pop_front();
        }
        q.push_back(f);
    }

    /// The last failures, newest first.
    pub(crate) fn failures(&self) -> Vec<FailureRecord> {
        self.failures.lock().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(offset: i64) -> FailureRecord {
        FailureRecord {
            at: SystemTime::now(),
            topic: "t".into(),
            partition: 0,
            offset,
            handler: None,
            kind: "handler",
            error: "e".into(),
        }
    }

    #[test]
    fn keeps_the_last_failures_newest_first() {
        let s = Status::default();
        for o in 0..25 {
            s.failed(failure(o));
        }
        let f = s.failures();
        assert_eq!(f.len(), FAILURES_KEPT);
        assert_eq!(f[0].offset, 24);
        assert_eq!(f[FAILURES_KEPT - 1].offset, 5);
    }

    #[test]
    fn a_stopped_loop_says_why_and_a_revoke_leaves_the_group_state() {
        let s = Status::default();
        s.beat(3);
        assert!(s.since_beat().unwrap() < Duration::from_secs(1));
        s.assign([("t", 0), ("t", 1)].into_iter());
        assert!(s.joined());
        s.revoke([("t", 0)].into_iter());
        assert!(!s.joined());
        assert_eq!(s.assigned().len(), 1);
        s.stop("broker gone".into());
        assert_eq!(s.since_beat(), Err("broker gone".into()));
    }
}
