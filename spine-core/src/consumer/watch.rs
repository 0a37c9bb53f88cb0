//! In-flight messages that take long: when each started and what it waits
//! for, so that a stuck partition is never silent. A message in flight for
//! longer than `dispatch.in_flight_warning` is logged at WARN, then again
//! each time as long passes. Messages that finish on the fast path without
//! publishing are never entered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an in-flight message waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// Its key's (or partition's) turn: an earlier message of the lane runs.
    Lane,
    /// Its handler (or the schema registry, or its retries' backoff).
    Handler,
    /// The broker's acknowledgement of what it published.
    Acks,
    /// Its aggregate, which holds the part until it completes or expires.
    Aggregate,
    /// Its key is parked: slow retries until it succeeds or `park_timeout`.
    Parked,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Lane => "an earlier message with the same key (its lane)",
            Stage::Handler => "its handler (or the registry, or a retry's backoff)",
            Stage::Acks => "the broker's acknowledgement of what it published",
            Stage::Aggregate => "its aggregate to complete or expire",
            Stage::Parked => "its parked key's slow retries (retry.park_timeout)",
        }
    }
}

/// (slot, slot generation, offset): one in-flight message.
pub(super) type Key = (usize, u64, i64);

struct Entry {
    since: Instant,
    stage: Stage,
    topic: Arc<str>,
    partition: i32,
    handler: Option<Cow<'static, str>>,
    warned: Option<Instant>,
}

pub(super) struct Watch {
    after: Duration,
    entries: HashMap<Key, Entry>,
}

impl Watch {
    pub(super) fn new(after: Duration) -> Self {
        Watch {
            after,
            entries: HashMap::new(),
        }
    }

    /// How often [`Watch::warn`] should run.
    pub(super) fn period(&self) -> Duration {
        (self.after / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    /// The message entered `stage` (its clock keeps running from its first).
    pub(super) fn enter(
        &mut self,
        key: Key,
        stage: Stage,
        topic: &Arc<str>,
        partition: i32,
        handler: Option<Cow<'static, str>>,
    ) {
        let e = self.entries.entry(key).or_insert_with(|| Entry {
            since: Instant::now(),
            stage,
            topic: topic.clone(),
            partition,
            handler: None,
            warned: None,
        });
        e.stage = stage;
        if handler.is_some() {
            e.handler = handler;
        }
    }

    /// The message finished.
    pub(super) fn leave(&mut self, key: Key) {
        self.entries.remove(&key);
    }

    /// The `n` messages in flight the longest, for the status page.
    pub(super) fn oldest(&self, n: usize) -> Vec<crate::status::InFlight> {
        let now = Instant::now();
        let mut all: Vec<_> = self
            .entries
            .iter()
            .map(|((_, _, offset), e)| crate::status::InFlight {
                topic: e.topic.to_string(),
                partition: e.partition,
                offset: *offset,
                handler: e.handler.as_deref().map(str::to_owned),
                waits_for: e.stage.describe(),
                for_: now.duration_since(e.since),
            })
            .collect();
        all.sort_by_key(|m| std::cmp::Reverse(m.for_));
        all.truncate(n);
        all
    }

    /// Warns about each message in flight for longer than the threshold,
    /// again after each further threshold.
    pub(super) fn warn(&mut self) {
        let now = Instant::now();
        for ((_, _, offset), e) in &mut self.entries {
            let due = match e.warned {
                None => now.duration_since(e.since) >= self.after,
                Some(w) => now.duration_since(w) >= self.after,
            };
            if !due {
                continue;
            }
            e.warned = Some(now);
            tracing::warn!(
                topic = %e.topic,
                partition = e.partition,
                offset,
                handler = e.handler.as_deref(),
                in_flight_secs = now.duration_since(e.since).as_secs_f64(),
                waits_for = e.stage.describe(),
                "message in flight for longer than dispatch.in_flight_warning; its partition commits no further until it finishes"
            );
            metrics::counter!(crate::metrics::SLOW_MESSAGES, "topic" => e.topic.to_string())
                .increment(1);
        }
    }
}
