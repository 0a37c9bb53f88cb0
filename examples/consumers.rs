//! Named consumers: two apps in one binary, each in its own consumer group,
//! under one command line (`spine::run_many`), as guillotina_kafka's
//! `kafka-consumer --name` runs one of several:
//!
//! ```sh
//! cargo run --example consumers -- consumers                  # lists them
//! cargo run --example consumers -- run                        # runs both
//! cargo run --example consumers -- run --consumer audit --group audit-replay --topics orders.eu
//! ```
//!
//! Both handle `order.placed` on the topics they are given (`[app] topics`,
//! `[consumers.<name>] topics` or `--topics`); `orders` replies
//! `order.accepted` and `audit` replies `order.audited`, each to
//! `<topic>.<consumer>`.

use spine::prelude::*;

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    order_id: String,
}

#[on(event = "order.placed")]
async fn accept(order: Order, meta: Meta) -> Reply {
    Reply::to(format!("{}.orders", meta.topic), "order.accepted", order)
}

#[on(event = "order.placed")]
async fn audit(order: Order, meta: Meta) -> Reply {
    Reply::to(format!("{}.audit", meta.topic), "order.audited", order)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    spine::init_tracing();
    spine::run_many([
        (
            "orders",
            Spine::builder().handlers(spine::handlers![accept]),
        ),
        ("audit", Spine::builder().handlers(spine::handlers![audit])),
    ])
    .await
}
