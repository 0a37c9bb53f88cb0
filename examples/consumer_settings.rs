//! A service whose settings live in a database row, as seed 004 keeps its
//! `consumer_configs`: the input topics, the output topics and metadata its
//! handler reads through `Settings`, `max_in_flight`, `enabled`. Change the
//! row while it runs and the change is applied within seconds, and logged.
//!
//! ```sh
//! spine config set enricher topics_input orders --db sqlite://settings.db
//! spine config set enricher topics_output orders.enriched --db sqlite://settings.db
//! spine config set enricher metadata '{"region": "eu"}' --db sqlite://settings.db
//! SPINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 SPINE_APP__NAME=enricher \
//!   SPINE_APP__CONFIG_SOURCE=sqlite://settings.db \
//!   cargo run --example consumer_settings --features config-db
//! # meanwhile, elsewhere:
//! spine config set enricher metadata '{"region": "us"}' --db sqlite://settings.db
//! spine config set enricher enabled false --db sqlite://settings.db
//! ```

use spine::prelude::*;

/// An order was placed.
#[derive(Debug, Deserialize)]
pub struct OrderPlaced {
    /// Unique id of the order.
    pub order_id: String,
}

/// The order, with the region the consumer's metadata names.
#[derive(Debug, Serialize)]
pub struct OrderEnriched {
    /// The order's id.
    pub order_id: String,
    /// `metadata.region` of the consumer's row.
    pub region: String,
}

/// Sends each order on to every output topic of the consumer's row, tagged
/// with the region of its metadata.
#[on(event = "order.placed")]
async fn enrich(order: OrderPlaced, settings: Settings, ctx: Context) -> Result<(), HandlerError> {
    let region = settings
        .metadata("region")
        .and_then(|r| r.as_str())
        .unwrap_or("unknown");
    let enriched = OrderEnriched {
        order_id: order.order_id,
        region: region.to_owned(),
    };
    for topic in settings.topics_output() {
        ctx.emit(topic, "order.enriched", &enriched).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    spine::init_tracing();
    spine::run(Spine::builder().handlers(spine::handlers![enrich])).await
}
