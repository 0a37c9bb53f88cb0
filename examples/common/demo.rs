//! The demo mode shared by the order examples: a mock Kafka cluster, sample
//! orders (every tenth with a negative amount), and a summary once all are
//! finished.

use std::time::{Duration, Instant};

use spine::dev::MockKafka;
use spine::{Config, Shutdown, StatsHandle};

/// Orders to publish: `ORDERS_DEMO_COUNT`, default 100.
pub fn count() -> usize {
    std::env::var("ORDERS_DEMO_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

/// (order id, customer, amount in cents) of sample order `i`.
pub fn order(i: usize) -> (String, String, i64) {
    let amount = if i % 10 == 9 { -100 } else { 1_000 + i as i64 };
    (format!("order-{i}"), format!("customer-{}", i % 7), amount)
}

/// Starts the mock cluster with the example's topics and points `config` at it.
pub fn mock_cluster(config: &mut Config) -> Result<MockKafka, spine::Error> {
    let mock = MockKafka::start(1)?;
    for topic in ["orders", "orders.accepted", "orders.dlq"] {
        mock.create_topic(topic, 3)?;
    }
    config.set_kafka("bootstrap.servers", mock.bootstrap_servers());
    config.retry.backoff = Duration::from_millis(20);
    println!(
        "No SPINE_BOOTSTRAP_SERVERS set: running on an in-process mock Kafka cluster ({}).",
        mock.bootstrap_servers()
    );
    Ok(mock)
}

/// Waits until `count` orders are handled or dead-lettered, stops the app and
/// prints the summary.
pub async fn finish(
    count: usize,
    stats: StatsHandle,
    stop: Shutdown,
    running: tokio::task::JoinHandle<Result<(), spine::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let negative = (0..count).filter(|i| order(*i).2 < 0).count();
    println!("Published {count} orders ({negative} with a negative amount).");
    let started = Instant::now();
    loop {
        let s = stats.snapshot();
        if (s.handled + s.dead_lettered) as usize >= count {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            stop.trigger();
            return Err(format!(
                "timed out: only {} of {count} orders were finished",
                s.handled + s.dead_lettered
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.trigger();
    running.await??;
    let s = stats.snapshot();
    println!(
        "Summary: consumed {}, handled {}, replied {}, dead-lettered {} (to orders.dlq), retries {}.",
        s.consumed, s.handled, s.replied, s.dead_lettered, s.retried
    );
    Ok(())
}
