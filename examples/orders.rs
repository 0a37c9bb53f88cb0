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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    /// Unique id of the order.
    pub order_id: String,
    /// Who placed it.
    pub customer: String,
    /// Total, in cents.
    pub amount_cents: i64,
}

/// The reply: the order was accepted.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderAccepted {
    /// The order's id.
    pub order_id: String,
    /// Always true: rejected orders get no reply, they are dead-lettered.
    pub accepted: bool,
}

/// Accepts an order, or fails it when its amount is negative. The reply is
/// keyed by customer, like the order, so a customer's replies keep their order.
/// Served over HTTP too, when `[http] listen` is set: the same handler, the
/// same reply, published the same way.
#[on(
    event = "order.placed",
    topic = "orders",
    replies(OrderAccepted),
    http(route = "POST /orders", summary = "Place an order")
)]
async fn accept(order: OrderPlaced) -> Result<Reply, HandlerError> {
    if order.amount_cents < 0 {
        return Err(HandlerError::msg(format!(
            "order {} has a negative amount ({} cents)",
            order.order_id, order.amount_cents
        )));
    }
    let reply = OrderAccepted {
        order_id: order.order_id,
        accepted: true,
    };
    Ok(Reply::to("orders.accepted", "order.accepted", reply).with_key(order.customer))
}

fn builder(config: Config) -> spine::Builder {
    Spine::builder()
        .config(config)
        .version(env!("CARGO_PKG_VERSION"))
        .handlers(spine::handlers![accept])
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    spine::init_tracing();
    let mut config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if config.app.name == spine::config::AppConfig::default().name {
        config.app.name = "orders-service".to_owned();
    }
    if config.bootstrap_servers().is_some() {
        // A long-lived service with the service command line: it handles
        // orders until SIGINT or SIGTERM (`orders routes`, `orders asyncapi`
        // and `orders --help` work too). Exit status 3: it stopped without
        // committing orders it handled, which are handled again at restart.
        return spine::run(builder(config)).await;
    }
    match demo(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// No broker configured: run on librdkafka's mock cluster, handle a batch of
/// sample orders, print a summary and exit.
async fn demo(mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let count = demo::count();
    let _mock = demo::mock_cluster(&mut config)?;
    let app = builder(config.clone()).build()?;
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
