//! Handler-level tests, in one test binary: the dispatch path without Kafka,
//! through `spine::testing::TestApp` (replies, dead letters, routing,
//! middleware, request stubs, panics), `#[pipeline]`, aggregation, and Avro against the
//! dev registry served over HTTP on loopback, with `schema_registry_converter`
//! on the other side. No broker needed: a plain
//! `cargo test --test handlers` runs them.

mod aggregate;
mod avro;
mod batch;
mod interop;
mod panic;
mod pipeline;
mod testing;
