//! The settings a running app takes changes of without being rebuilt:
//! `max_in_flight`, the aggregation timeout, and what the `Settings`
//! extractor hands to handlers (metadata and output topics). The
//! consumer-config watcher (`[app] config_source`) writes them; the consumer
//! loop, aggregations and handlers read them. Unset, everything comes from
//! [`Config`](super::Config).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One app's live settings; shared by the builds of one supervised app.
#[derive(Default)]
pub(crate) struct Live {
    /// 0: the configuration's own.
    max_in_flight: AtomicUsize,
    /// Milliseconds; 0: each aggregation's own.
    aggregation_timeout_ms: AtomicU64,
    values: parking_lot::RwLock<Arc<LiveValues>>,
}

/// What handlers read through `Settings`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LiveValues {
    pub(crate) metadata: serde_json::Map<String, serde_json::Value>,
    pub(crate) topics_output: Vec<String>,
    pub(crate) max_in_flight: Option<usize>,
}

impl Live {
    /// `max_in_flight` set while running, if any.
    pub(crate) fn max_in_flight(&self) -> Option<usize> {
        match self.max_in_flight.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// The aggregation timeout set while running, if any.
    pub(crate) fn aggregation_timeout(&self) -> Option<Duration> {
        match self.aggregation_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub(crate) fn values(&self) -> Arc<LiveValues> {
        self.values.read().clone()
    }

    pub(crate) fn set(&self, values: LiveValues, aggregation_timeout: Option<Duration>) {
        self.max_in_flight
            .store(values.max_in_flight.unwrap_or(0), Ordering::Relaxed);
        let ms = aggregation_timeout.map_or(0, |d| d.as_millis().clamp(1, u64::MAX as u128) as u64);
        self.aggregation_timeout_ms.store(ms, Ordering::Relaxed);
        *self.values.write() = Arc::new(values);
    }
}
