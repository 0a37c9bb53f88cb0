//! The order service: consumes `order.placed` events from topic `orders`,
//! replies `order.accepted` to `orders.accepted`, and rejects orders with a
//! negative amount; after the retries, those go to `orders.dlq`.
//!
//! ```sh
//! # With nothing installed: an in-process mock Kafka cluster, a batch of
//! # sample orders, a summary, exit.
//! cargo run --example orders
//!
//! # As a long-lived service against a broker, until Ctrl-C or SIGTERM:
//! SPINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example orders
//! ```
//!
//! Settings come from `spine.toml` (or `$SPINE_CONFIG`) and `SPINE_*`
//! variables. In demo mode, `ORDERS_DEMO_COUNT` sets the number of orders.
//! `examples/orders_avro.rs` is the same service with Avro payloads.

#[path = "common/demo.rs"]
mod demo;

use spine::prelude::*;
use spine::{Config, Publisher};

/// An order was placed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// Unique id of the order.
    pub order_id: String,
    /// Who placed it.
    pub customer: String,
    /// Total, in cents.
    pub amount_cents: i64,
}

/// The reply: the order was accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderAccepted {
    /// The order's id.
    pub order_id: String,
    /// Always true: rejected orders get no reply, they are dead-lettered.
    pub accepted: bool,
}

/// Accepts an order, or fails it when its amount is negative.
#[on(event = "order.placed", topic = "orders")]
async fn accept(order: OrderPlaced) -> Result<Reply, HandlerError> {
    if order.amount_cents < 0 {
        return Err(HandlerError::msg(format!(
            "order {} has a negative amount ({} cents)",
            order.order_id, order.amount_cents
        )));
    }
    let reply = OrderAccepted {
        order_id: order.order_id.clone(),
        accepted: true,
    };
    Ok(Reply::to("orders.accepted", "order.accepted", reply).with_key(order.order_id))
}

fn app(config: Config) -> Result<spine::App, spine::Error> {
    Spine::builder()
        .config(config)
        .handlers(spine::handlers![accept])
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
        config.app.name = "orders-service".to_owned();
    }
    if config.bootstrap_servers().is_some() {
        // A long-lived service: handle orders until SIGINT or SIGTERM.
        app(config)?.run().await?;
        return Ok(());
    }
    demo(config).await
}

/// No broker configured: run on librdkafka's mock cluster, handle a batch of
/// sample orders, print a summary and exit.
async fn demo(mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let count = demo::count();
    let _mock = demo::mock_cluster(&mut config)?;
    let app = app(config.clone())?;
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let running = tokio::spawn(app.run_until(std::future::pending()));

    let publisher = Publisher::new(&config)?;
    for i in 0..count {
        let (order_id, customer, amount_cents) = demo::order(i);
        let order = OrderPlaced {
            order_id,
            customer,
            amount_cents,
        };
        publisher
            .publish("orders", "order.placed", Some(&order.order_id), &order)
            .await?;
    }
    demo::finish(count, stats, stop, running).await
}
