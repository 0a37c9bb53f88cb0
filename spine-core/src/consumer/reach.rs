//! Whether the broker answers. librdkafka reports every failed connection
//! attempt, several times a second, at ERROR; an app that cannot reach its
//! broker logs one WARN naming the address and saying that it keeps trying,
//! and one INFO when the broker answers again. The attempts themselves go to
//! DEBUG.

use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::metrics as m;

pub(crate) struct Reach {
    bootstrap: String,
    down: AtomicBool,
}

impl Reach {
    pub(crate) fn new(bootstrap: &str) -> Reach {
        Reach {
            bootstrap: bootstrap.to_owned(),
            down: AtomicBool::new(false),
        }
    }

    /// Whether `e` says that brokers cannot be reached (not that one refused
    /// a request).
    pub(crate) fn is_unreachable(e: &KafkaError) -> bool {
        matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::Resolve
            )
        )
    }

    /// The broker cannot be reached: warns once per outage.
    pub(crate) fn lost(&self, reason: &str) {
        if self.down.swap(true, Ordering::Relaxed) {
            tracing::debug!(reason, "broker still unreachable");
            return;
        }
        metrics::counter!(m::BROKER_UNREACHABLE).increment(1);
        tracing::warn!(
            bootstrap = %self.bootstrap,
            reason,
            "cannot reach the Kafka broker; retrying until it answers (librdkafka reconnects \
             with backoff up to reconnect.backoff.max.ms); check bootstrap.servers and that \
             the broker is up"
        );
    }

    /// The broker answered (an assignment, a commit, a message): logs once
    /// after an outage.
    pub(crate) fn answered(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(bootstrap = %self.bootstrap, "the Kafka broker answers again");
        }
    }
}
