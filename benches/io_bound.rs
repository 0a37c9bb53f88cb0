//! I/O-bound handlers: how close key-ordered concurrency comes to its bound.
//!
//! ```sh
//! scripts/bench --io                         # starts nisshi
//! scripts/bench --io --runs 5 --messages 100000
//! ```
//!
//! One partition, 1,000 keys (`customer-0000` … `customer-0999`, each key's
//! orders in sequence), a handler that awaits a 5 ms timer, `max_in_flight`
//! 100. At most 100 handlers wait at once, so the bound is 100 / 5 ms =
//! 20,000 msgs/s. Each side runs in its own child process:
//!
//! | side        | `[dispatch] ordering` | bound |
//! |-------------|-----------------------|-------|
//! | `key`       | `key` (the default)   | 20,000 msgs/s |
//! | `none`      | `none`                | 20,000 msgs/s |
//! | `partition` | `partition`           | 200 msgs/s (one at a time); on its own topic of `--partition-messages` (default 2,000) |
//! | `timer`     | no Kafka: 100 tasks, each awaiting the 5 ms timer in a loop | what tokio's timer allows |
//!
//! `timer` is the ceiling a handler that awaits a 5 ms timer can reach on
//! this machine at all: tokio's timer wheel ticks in whole milliseconds and
//! rounds a deadline up, so a 5 ms sleep lasts about 6 ms.
//!
//! The handler checks per-key order over the whole run: an order that
//! arrives before an earlier one of its key is counted, and the `key` and
//! `partition` sides fail the run if any is. Throughput is from the first
//! handled message to the last, as in the other benches.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{arg_or, bootstrap, compare, spine_config, KeyOrder, Progress, Sample, KEYS};
use spine::config::OrderingPolicy;
use spine::prelude::*;

const WAIT: Duration = Duration::from_millis(5);
const MAX_IN_FLIGHT: usize = 100;

#[on(event = "order.placed")]
async fn wait_on_io(o: common::OrderPlaced, p: State<Arc<Progress>>, order: State<Arc<KeyOrder>>) {
    let i: u64 = o.order_id["order-".len()..].parse().expect("order number");
    order.arrived(i);
    tokio::time::sleep(WAIT).await;
    if p.record(&o) {
        p.done.notify_one();
    }
}

/// No Kafka: `MAX_IN_FLIGHT` tasks await the timer and record orders
/// `0..want` between them, as the handlers would.
async fn timer(want: u64) -> Sample {
    let progress = Progress::new(want);
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..MAX_IN_FLIGHT)
        .map(|_| {
            let (p, next) = (progress.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= want {
                        return;
                    }
                    tokio::time::sleep(WAIT).await;
                    p.record(&common::order(i));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("timer task");
    }
    progress.sample()
}

async fn side(topic: &str, want: u64, side: &str) -> Sample {
    if side == "timer" {
        return timer(want).await;
    }
    let progress = Progress::new(want);
    let order = KeyOrder::new();
    let mut config = spine_config(topic);
    config.dispatch.max_in_flight = MAX_IN_FLIGHT;
    config.dispatch.ordering = match side {
        "key" => OrderingPolicy::Key,
        "partition" => OrderingPolicy::Partition,
        "none" => OrderingPolicy::Unordered,
        other => panic!("unknown side {other}"),
    };
    let app = Spine::builder()
        .config(config)
        .state(progress.clone())
        .state(order.clone())
        .handlers(spine::handlers![wait_on_io])
        .build()
        .expect("app");
    let p = progress.clone();
    app.run_until(async move { p.done.notified().await })
        .await
        .expect("spine run");
    let wrong = order.out_of_order.load(Ordering::Relaxed);
    if side != "none" {
        assert_eq!(
            wrong, 0,
            "{side}: {wrong} orders arrived before an earlier one of their key"
        );
    } else {
        eprintln!("none: {wrong} orders arrived before an earlier one of their key (allowed)");
    }
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
    let partition_messages: u64 = arg_or(&args, "--partition-messages", 2_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let produce = |messages: u64| {
        let topic = format!(
            "bench.io.{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let started = Instant::now();
        let checksum = rt.block_on(common::produce_keyed(
            &topic,
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
        (topic, checksum)
    };
    let bound = MAX_IN_FLIGHT as f64 / WAIT.as_secs_f64();
    println!(
        "A handler awaiting {WAIT:?}, max_in_flight {MAX_IN_FLIGHT}: the bound is {bound:.0} msgs/s \
         (key, none), {:.0} msgs/s (partition).\n",
        1.0 / WAIT.as_secs_f64()
    );
    let (topic, checksum) = produce(messages);
    compare(
        &["key", "none", "timer"],
        &[(0, 2), (1, 2), (0, 1)],
        runs,
        &topic,
        messages,
        checksum,
        &[],
    )
    .save(
        "io_bound",
        &format!("A 5 ms handler, max_in_flight {MAX_IN_FLIGHT}: {messages} messages"),
        Some(("bound", bound)),
    );
    println!();
    let (topic, checksum) = produce(partition_messages);
    compare(
        &["partition"],
        &[],
        runs,
        &topic,
        partition_messages,
        checksum,
        &[],
    )
    .save(
        "io_bound-partition",
        &format!("ordering = partition: {partition_messages} messages"),
        Some(("bound", 1.0 / WAIT.as_secs_f64())),
    );
}
