//! [`Tx`]: the inbox database's transaction of the message being handled
//! (feature `inbox`).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::MappedMutexGuard;

use crate::dispatch::extract::{FromRecord, Scope};
use crate::error::HandlerError;
use crate::outbound::outbox::{self, Pending};

/// The transaction the inbox records this message in. What the handler
/// writes with it commits together with the message's inbox row and the
/// outbox rows of its replies and emitted events, or not at all: a failed
/// attempt is rolled back, and so is a re-delivery the inbox skips.
///
/// Needs `[inbox] url`. Queries use `$1, $2, ...` placeholders, which both
/// SQLite and PostgreSQL read.
///
/// ```no_run
/// use spine_kafka_core::{HandlerError, Tx};
///
/// async fn save(order: serde_json::Value, tx: Tx) -> Result<(), HandlerError> {
///     let mut db = tx.conn().await?;
///     sqlx::query("INSERT INTO orders (order_id) VALUES ($1)")
///         .bind(order["order_id"].as_str().unwrap_or_default().to_owned())
///         .execute(&mut *db)
///         .await?;
///     Ok(())
/// }
/// ```
pub struct Tx(Arc<Pending>);

/// The connection of a [`Tx`], locked for one use: run queries on `&mut *conn`.
pub struct TxConn<'a>(MappedMutexGuard<'a, Transaction<'static, Any>>);

impl Deref for TxConn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.0
    }
}

impl DerefMut for TxConn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.0
    }
}

impl Tx {
    /// The transaction's connection; the transaction begins on first use.
    /// A database that cannot be reached fails the attempt (retryable).
    pub async fn conn(&self) -> Result<TxConn<'_>, HandlerError> {
        let mut guard = self.0.tx.lock().await;
        if guard.is_none() {
            let tx = self.0.outbox.store.pool.begin().await.map_err(|e| {
                HandlerError::msg(format!("cannot begin the inbox transaction: {e}"))
            })?;
            *guard = Some(tx);
        }
        Ok(TxConn(tokio::sync::MutexGuard::map(guard, |t| {
            t.as_mut().expect("begun above")
        })))
    }
}

impl FromRecord for Tx {
    fn from_record(_scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        outbox::current().map(Tx).ok_or_else(|| {
            HandlerError::msg(
                "this handler takes `Tx`, which needs the inbox: set `[inbox] url` \
                 (\"sqlite://spine.db\" or \"postgres://...\") in spine.toml",
            )
            .fatal()
        })
    }
}
