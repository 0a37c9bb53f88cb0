//! The order service with the database inbox and outbox: effectively-once.
//! Each accepted order is written as a row through `Tx`, in the transaction
//! that records the message's `ce_id` in the inbox and its `order.accepted`
//! reply in the outbox. A re-delivered order (after a crash, a rebalance, or
//! a producer that sent it twice) is skipped, so the table holds one row per
//! order; the reply is published once the transaction commits.
//!
//! ```sh
//! # SQLite, a file; nothing to install:
//! SPINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 SPINE_INBOX__URL=sqlite://orders.db \
//!   SPINE_APP__TOPICS='[orders]' cargo run --example orders_inbox --features inbox
//! # PostgreSQL:
//! SPINE_INBOX__URL=postgres://postgres@127.0.0.1/orders ...
//! ```
//!
//! It reads `order.placed` on the topics of `[app] topics` and replies to
//! `<topic>.accepted`. With `[inbox] mode = "queue"` it stores each order
//! first and handles it from the table; `inbox list|show|retry|purge` show
//! and manage the rows:
//!
//! ```sh
//! cargo run --example orders_inbox --features inbox -- inbox list --status dead
//! ```

use spine::prelude::*;
use spine::sqlx;

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
    /// Always true.
    pub accepted: bool,
}

/// The service's own table. No unique key on `order_id` on purpose: one row
/// per order is the inbox's doing.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS accepted_orders (
    order_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    amount_cents BIGINT NOT NULL
)";

/// Accepts an order: one row, one reply. An order with a negative amount
/// fails (and, after the retries, is dead-lettered); its row is rolled back.
#[on(event = "order.placed")]
async fn accept(order: OrderPlaced, meta: Meta, tx: Tx) -> Result<Reply, HandlerError> {
    if order.amount_cents < 0 {
        return Err(HandlerError::msg(format!(
            "order {} has a negative amount ({} cents)",
            order.order_id, order.amount_cents
        )));
    }
    let mut db = tx.conn().await?;
    sqlx::query(
        "INSERT INTO accepted_orders (order_id, customer, amount_cents) VALUES ($1, $2, $3)",
    )
    .bind(&order.order_id)
    .bind(&order.customer)
    .bind(order.amount_cents)
    .execute(&mut *db)
    .await?;
    let reply = OrderAccepted {
        order_id: order.order_id,
        accepted: true,
    };
    Ok(Reply::to(
        format!("{}.accepted", meta.topic),
        "order.accepted",
        reply,
    ))
}

/// Creates the service's table in the inbox's database.
async fn create_table(url: &str) -> Result<(), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
        format!("{url}?mode=rwc")
    } else {
        url.to_owned()
    };
    let pool = sqlx::AnyPool::connect(&url).await?;
    // Two processes starting at once (the service and its `inbox` command)
    // may race on PostgreSQL's catalog; the loser finds the table made.
    let mut created = sqlx::query(CREATE).execute(&pool).await;
    if created.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        created = sqlx::query(CREATE).execute(&pool).await;
    }
    pool.close().await;
    created.map(|_| ())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    spine::init_tracing();
    let url = match spine::Config::load() {
        Ok(c) => c.inbox.url,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let Some(url) = url else {
        eprintln!("error: set [inbox] url (or SPINE_INBOX__URL), e.g. sqlite://orders.db");
        return std::process::ExitCode::FAILURE;
    };
    if let Err(e) = create_table(&url).await {
        eprintln!("error: cannot create the table in {url}: {e}");
        return std::process::ExitCode::FAILURE;
    }
    spine::run(Spine::builder().handlers(spine::handlers![accept])).await
}
