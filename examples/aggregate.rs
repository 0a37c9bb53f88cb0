//! Joins `order.placed` on topic `orders` (the orders example's events) with
//! `payment.received` on topic `payments`, by `order_id`, and publishes
//! `order.paid` to `orders.paid`. An order with no payment within 10 seconds
//! expires: its parts go to `orders.paid.dlq` as `aggregate.expired`.
//!
//! ```sh
//! # With nothing installed: an in-process mock Kafka cluster, sample orders
//! # and payments (every fifth order is never paid), a summary, exit. It
//! # waits for the unpaid orders to expire (10 s; set
//! # SPINE_AGGREGATIONS__ORDER_PAID__TIMEOUT=1s to shorten it).
//! cargo run --example aggregate
//!
//! # As a long-lived service against a broker, until Ctrl-C or SIGTERM:
//! SPINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example aggregate
//! ```
//!
//! The offsets of orders and payments waiting in an open aggregate are not
//! committed until it completes or expires: a crash re-delivers them.

use std::time::{Duration, Instant};

use spine::dev::MockKafka;
use spine::prelude::*;
use spine::{Aggregate, Config, Publisher};

/// An order was placed (the same JSON as in `examples/orders.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// Unique id of the order.
    pub order_id: String,
    /// Who placed it.
    pub customer: String,
    /// Total, in cents.
    pub amount_cents: i64,
}

/// A payment for an order arrived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentReceived {
    /// The order it pays.
    pub order_id: String,
    /// Amount paid, in cents.
    pub amount_cents: i64,
}

/// The joined value: one field per part.
#[derive(Debug, Deserialize)]
pub struct PaidOrder {
    /// The `order` part.
    pub order: OrderPlaced,
    /// The `payment` part.
    pub payment: PaymentReceived,
}

/// What is published once an order is paid.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrderPaid {
    /// The order's id.
    pub order_id: String,
    /// The order's total, in cents.
    pub amount_cents: i64,
    /// What was paid, in cents.
    pub paid_cents: i64,
}

/// Handles each completed aggregate.
#[on]
async fn order_paid(p: PaidOrder) -> Reply {
    let paid = OrderPaid {
        order_id: p.order.order_id.clone(),
        amount_cents: p.order.amount_cents,
        paid_cents: p.payment.amount_cents,
    };
    Reply::to("orders.paid", "order.paid", paid).with_key(p.order.order_id)
}

fn app(config: Config) -> Result<spine::App, spine::Error> {
    Spine::builder()
        .config(config)
        .aggregate(
            Aggregate::new("order_paid")
                .part::<OrderPlaced>("order", "orders", "order.placed")
                .part::<PaymentReceived>("payment", "payments", "payment.received")
                .by_field("order_id")
                .timeout(Duration::from_secs(10))
                .dead_letter_topic("orders.paid.dlq")
                .handlers(spine::handlers![order_paid]),
        )
        .build()
}

#[tokio::main]
async fn main() {
    spine::init_tracing();
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::load()?;
    if config.app.name == spine::config::AppConfig::default().name {
        config.app.name = "payments-join".to_owned();
    }
    if config.bootstrap_servers().is_some() {
        app(config)?.run().await?;
        return Ok(());
    }
    demo(config).await
}

/// No broker configured: run on librdkafka's mock cluster, publish sample
/// orders and payments, wait until every aggregate completed or expired,
/// print a summary and exit.
async fn demo(mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockKafka::start(1)?;
    for topic in [
        "orders",
        "payments",
        "orders.paid",
        "orders.paid.dlq",
        "orders.dlq",
        "payments.dlq",
    ] {
        mock.create_topic(topic, 3)?;
    }
    config.set_kafka("bootstrap.servers", mock.bootstrap_servers());
    println!(
        "No SPINE_BOOTSTRAP_SERVERS set: running on an in-process mock Kafka cluster ({}).",
        mock.bootstrap_servers()
    );
    let app = app(config.clone())?;
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let running = tokio::spawn(app.run_until(std::future::pending()));

    let count: u64 = std::env::var("AGGREGATE_DEMO_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let publisher = Publisher::new(&config)?;
    let mut payments = 0;
    for i in 0..count {
        let order_id = format!("order-{i}");
        let amount_cents = 1_000 + i as i64;
        let order = OrderPlaced {
            order_id: order_id.clone(),
            customer: format!("customer-{}", i % 7),
            amount_cents,
        };
        publisher
            .publish("orders", "order.placed", Some(&order_id), &order)
            .await?;
        if i % 5 != 4 {
            let payment = PaymentReceived {
                order_id: order_id.clone(),
                amount_cents,
            };
            publisher
                .publish("payments", "payment.received", Some(&order_id), &payment)
                .await?;
            payments += 1;
        }
    }
    println!(
        "Published {count} orders and {payments} payments; waiting for the {} unpaid orders to expire.",
        count - payments
    );
    let started = Instant::now();
    loop {
        let s = stats.snapshot();
        if s.aggregates_completed + s.aggregates_expired >= count {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            stop.trigger();
            return Err(format!(
                "timed out: {} of {count} aggregates finished",
                s.aggregates_completed + s.aggregates_expired
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.trigger();
    running.await??;
    let s = stats.snapshot();
    println!(
        "Summary: orders {count}, payments {payments}, paid {} (to orders.paid), expired {} (to orders.paid.dlq).",
        s.aggregates_completed, s.aggregates_expired
    );
    Ok(())
}
