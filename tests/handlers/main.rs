//! Handler-level tests, in one test binary: the dispatch path without Kafka,
//! through `spine::testing::TestApp` (replies, dead letters, routing,
//! middleware, request stubs), `#[pipeline]`, aggregation, and Avro against the
//! dev registry served over HTTP on loopback. No broker needed: a plain
//! `cargo test --test handlers` runs them.

mod aggregate;
mod avro;
mod pipeline;
mod testing;
