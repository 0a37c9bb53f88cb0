//! The order service with Avro payloads: the same topics, events, fields and
//! dead-letter rule as `orders.rs`, but `order.placed` arrives Avro-encoded in
//! the Confluent wire format and `order.accepted` is replied the same way,
//! through a schema registry.
//!
//! ```sh
//! # With nothing installed: a mock Kafka cluster, an in-process dev schema
//! # registry, 100 sample orders, a summary.
//! cargo run --example orders_avro
//!
//! # As a service, until Ctrl-C or SIGTERM:
//! SPINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 SPINE_SCHEMA_REGISTRY_URL=http://127.0.0.1:8081 \
//!     cargo run --example orders_avro
//! ```
//!
//! At startup it registers its reply schema under `orders.accepted-value`
//! (`auto_register` is on for this example).

#[path = "common/demo.rs"]
mod demo;

use apache_avro::AvroSchema;
use spine::avro::registry::DevRegistry;
use spine::avro::{AvroCodec, RegistryClient};
use spine::prelude::*;
use spine::Config;

/// An order was placed.
#[derive(Debug, Clone, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
pub struct OrderPlaced {
    /// Unique id of the order.
    pub order_id: String,
    /// Who placed it.
    pub customer: String,
    /// Total, in cents.
    pub amount_cents: i64,
}

/// The reply: the order was accepted.
#[derive(Debug, Clone, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
pub struct OrderAccepted {
    /// The order's id.
    pub order_id: String,
    /// Always true: rejected orders get no reply, they are dead-lettered.
    pub accepted: bool,
}

/// Accepts an order, or fails it when its amount is negative. The reply is
/// keyed by customer, like the order, so a customer's replies keep their order.
#[on(event = "order.placed", topic = "orders")]
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
    Ok(spine::avro::reply("orders.accepted", "order.accepted", reply).with_key(order.customer))
}

/// Marks the example's topics Avro and turns `auto_register` on, unless
/// `spine.toml` says otherwise.
fn avro_config(mut config: Config) -> Config {
    for topic in ["orders", "orders.accepted"] {
        config
            .topics
            .entry(topic.to_owned())
            .or_default()
            .codec
            .get_or_insert_with(|| "avro".to_owned());
    }
    config.schema_registry.auto_register = true;
    if config.app.name == spine::config::AppConfig::default().name {
        config.app.name = "orders-service".to_owned();
    }
    config
}

/// Registers the reply schema, as the example promises to at startup.
async fn register_reply_schema(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = RegistryClient::new(url, Default::default())?;
    let schema = serde_json::to_string(&OrderAccepted::get_schema())?;
    let id = client.register("orders.accepted-value", &schema).await?;
    tracing::info!(
        id,
        "registered the order.accepted schema under orders.accepted-value"
    );
    Ok(())
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
    let config = avro_config(Config::load()?);
    if config.bootstrap_servers().is_some() {
        let Some(url) = config.schema_registry.url.clone() else {
            return Err(
                "SPINE_BOOTSTRAP_SERVERS is set but no schema registry is: set \
                        SPINE_SCHEMA_REGISTRY_URL (or [schema_registry] url in spine.toml)"
                    .into(),
            );
        };
        register_reply_schema(&url).await?;
        app(config)?.run().await?;
        return Ok(());
    }
    demo(config).await
}

/// No broker configured: a mock cluster and an in-process dev registry, a
/// batch of Avro orders, a summary.
async fn demo(mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let count = demo::count();
    let _mock = demo::mock_cluster(&mut config)?;
    let registry = DevRegistry::new().start("127.0.0.1:0".parse()?).await?;
    println!("Dev schema registry at {}.", registry.url());
    config.schema_registry.url = Some(registry.url());
    register_reply_schema(&registry.url()).await?;

    let app = app(config.clone())?;
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let running = tokio::spawn(app.run_until(std::future::pending()));

    // A producer on the same registry: it registers `orders-value` and frames
    // each order in the Confluent wire format.
    let encoder = AvroCodec::from_config(&config)?;
    let schema = serde_json::to_string(&OrderPlaced::get_schema())?;
    let publisher = spine::Publisher::new(&config)?;
    for i in 0..count {
        let (order_id, customer, amount_cents) = demo::order(i);
        let order = OrderPlaced {
            order_id,
            customer,
            amount_cents,
        };
        let bytes = encoder
            .encode_value("orders", &order, Some(&schema))
            .await?;
        publisher
            .publish_bytes(
                "orders",
                "order.placed",
                Some(order.order_id.as_bytes()),
                &bytes,
                "application/avro",
            )
            .await?;
    }
    demo::finish(count, stats, stop, running).await
}
