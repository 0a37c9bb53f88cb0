//! Batch handlers against one-message handlers doing the same work.
//!
//! ```sh
//! scripts/bench --batch                        # starts nisshi
//! scripts/bench --batch --runs 5 --messages 100000
//! ```
//!
//! One partition, 1,000 keys. Every call takes a connection from a pool of
//! 10 (sqlx's default pool size) and holds it for a fixed 1 ms (a timer: the
//! stand-in for a database round trip), then decodes and records each of its
//! orders, checking per-key order over the whole run:
//!
//! | side    | handler | settings |
//! |---------|---------|----------|
//! | `batch` | `#[on(topic, batch(max = 500, linger = "20ms"))]`, `Vec<OrderPlaced>` | `max_in_flight` 1,000 (a batch fills while the one before runs) |
//! | `one`   | `#[on(event)]`, one `OrderPlaced` per call | the defaults (`max_in_flight` 1,024, key order) |
//!
//! The one-message side keeps all 10 connections busy; a batch handler runs
//! one batch per partition at a time (that is what keeps key order across
//! batches), so it uses one. Without the pool, 1,024 one-message calls would
//! overlap their 1 ms waits, which no database allows. Throughput is from the
//! first handled message to the last.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{arg_or, bootstrap, compare, spine_config, KeyOrder, Progress, Sample, KEYS};
use spine::prelude::*;

/// The fixed cost of one call.
const ROUND_TRIP: Duration = Duration::from_millis(1);
/// Connections in the pool.
const POOL: usize = 10;

/// The database's connection pool: a call holds a connection for its round trip.
struct Pool(tokio::sync::Semaphore);

impl Pool {
    async fn round_trip(&self) {
        let _conn = self.0.acquire().await.expect("pool open");
        tokio::time::sleep(ROUND_TRIP).await;
    }
}

fn number(o: &common::OrderPlaced) -> u64 {
    o.order_id["order-".len()..].parse().expect("order number")
}

#[on(topic = "bench.batch", batch(max = 500, linger = "20ms"))]
async fn save_batch(
    orders: Vec<common::OrderPlaced>,
    p: State<Arc<Progress>>,
    order: State<Arc<KeyOrder>>,
    pool: State<Pool>,
) {
    pool.round_trip().await;
    for o in &orders {
        order.arrived(number(o));
        if p.record(o) {
            p.done.notify_one();
        }
    }
}

#[on(event = "order.placed")]
async fn save_one(
    o: common::OrderPlaced,
    p: State<Arc<Progress>>,
    order: State<Arc<KeyOrder>>,
    pool: State<Pool>,
) {
    pool.round_trip().await;
    order.arrived(number(&o));
    if p.record(&o) {
        p.done.notify_one();
    }
}

async fn side(topic: &str, want: u64, side: &str) -> Sample {
    let progress = Progress::new(want);
    let order = KeyOrder::new();
    let mut config = spine_config(topic);
    let handlers = match side {
        "batch" => {
            config.dispatch.max_in_flight = 1000;
            spine::handlers![save_batch]
        }
        "one" => spine::handlers![save_one],
        other => panic!("unknown side {other}"),
    };
    let app = Spine::builder()
        .config(config)
        .state(progress.clone())
        .state(order.clone())
        .state(Pool(tokio::sync::Semaphore::new(POOL)))
        .handlers(handlers)
        .build()
        .expect("app");
    let p = progress.clone();
    app.run_until(async move { p.done.notified().await })
        .await
        .expect("spine run");
    let wrong = order.out_of_order.load(Ordering::Relaxed);
    assert_eq!(
        wrong, 0,
        "{side}: {wrong} orders arrived before an earlier one of their key"
    );
    progress.sample()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages: u64 = arg_or(&args, "--messages", 100_000);
    if common::child(&args, |name, topic| async move {
        side(&topic, messages, &name).await
    }) {
        return;
    }
    let runs: usize = arg_or(&args, "--runs", 5);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // The batch handler names its topic, so it must be new: scripts/bench
    // starts a fresh broker (creating it on a broker that has it fails).
    let topic = "bench.batch";
    let started = Instant::now();
    let checksum = rt.block_on(common::produce_keyed(
        topic,
        1,
        messages,
        |o| o.customer.clone(),
        |o| serde_json::to_vec(o).expect("json"),
    ));
    println!(
        "Produced {messages} orders (1 partition, {KEYS} keys) to {topic} on {} in {:.1}s.",
        bootstrap(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "Each call holds one of {POOL} connections for {ROUND_TRIP:?}; batch: max 500, linger 20 ms, \
         max_in_flight 1,000; one: the defaults.\n"
    );
    compare(
        &["batch", "one"],
        &[(0, 1)],
        runs,
        topic,
        messages,
        checksum,
        &[],
    )
    .save(
        "batch",
        &format!("{ROUND_TRIP:?} per call on a pool of {POOL}: {messages} messages"),
        None,
    );
}
