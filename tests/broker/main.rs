//! The end-to-end tests that need a Kafka-protocol broker, in one test binary:
//! routing, replies, dead letters and commits; delivery guarantees; Avro with
//! the dev registry and Python's confluent-kafka; pipelines; aggregation;
//! request-reply; replay; panicking handlers; records refused for good and a
//! paused broker.
//!
//! They need a broker: `scripts/test` installs nisshi, starts it on a free
//! loopback port and sets `SPINE_TEST_BOOTSTRAP`. Without it every test here
//! fails at once, saying so (`support::bootstrap`). Each test uses topics and
//! groups of its own, so they run in parallel.

#[path = "../support/mod.rs"]
mod support;

mod aggregate;
mod avro;
mod batch;
mod delivery;
mod dispatch;
mod faults;
mod fetch;
mod hooks;
mod panic;
mod park;
mod pipeline;
mod publish;
mod replay;
mod request;
mod trace;
