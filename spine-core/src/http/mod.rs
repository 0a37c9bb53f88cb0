//! The service's HTTP listener (feature `http`, `[http] listen`): one axum
//! server beside the consumer, stopped with it. It owns the routes of the
//! operations surface:
//! - `GET /metrics`: Prometheus text (`prometheus`);
//! - `GET /health/live`, `GET /health/ready`: the probes (`health`);
//! - `GET /routes`, `GET /asyncapi.json`: what the app handles;
//! - `GET /`: the status page (`page`).
//!
//! Handlers over HTTP (a later addition) mount on the same router.

mod health;
mod ops;
mod page;
mod prometheus;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::dispatch::Shared;
use crate::error::Error;
use ops::Ops;

/// Installs Spine's Prometheus recorder unless one is installed already.
/// Whether Spine's recorder is the one installed (then the per-topic counts
/// are kept locally and synced into it at each scrape).
pub(crate) fn install_recorder() -> bool {
    prometheus::install().is_some()
}

/// A running listener; [`Listener::stop`] ends it.
pub(crate) struct Listener {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Stops accepting, finishes the requests in progress.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds `[http] listen` (a bind error fails the start, naming the address)
/// and serves the operations surface until stopped. `None` when unset.
pub(crate) async fn start(
    shared: Arc<Shared>,
    version: Option<&'static str>,
) -> Result<Option<Listener>, Error> {
    let Some(listen) = shared.config.http.listen.clone() else {
        return Ok(None);
    };
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| Error::config("http.listen", format!("`{listen}` is not an address")))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::config(
            "http.listen",
            format!(
                "cannot listen on {addr}: {e}; pick another port, or unset it to turn HTTP off"
            ),
        )
    })?;
    let local = listener.local_addr().unwrap_or(addr);
    let ops = Ops {
        prometheus: prometheus::install(),
        shared,
        version,
    };
    let router = router(ops);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP listener failed");
        }
    });
    tracing::info!(address = %local, "HTTP listening: /metrics, /health/live, /health/ready, /routes, /asyncapi.json, /");
    Ok(Some(Listener { stop: tx, task }))
}

fn router(ops: Ops) -> Router {
    Router::new()
        .route("/", get(page::status_page))
        .route("/metrics", get(prometheus::metrics))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/routes", get(routes))
        .route("/asyncapi.json", get(asyncapi))
        .with_state(ops)
}

/// The dispatch table, one object per (topic, event, handler).
async fn routes(State(ops): State<Ops>) -> impl IntoResponse {
    let rows: Vec<serde_json::Value> = ops
        .shared
        .table
        .describe()
        .iter()
        .map(|r| {
            serde_json::json!({
                "topic": r.topic,
                "event": r.event,
                "handler": r.display_name(),
                "payload": r.handler.payload,
                "codec": r.codec,
                "subscribed": r.subscribed,
                "source": r.handler.location(),
            })
        })
        .collect();
    Json(rows)
}

/// The AsyncAPI document, as the `asyncapi` command prints it.
async fn asyncapi(State(ops): State<Ops>) -> impl IntoResponse {
    let routes = ops.shared.table.describe();
    Json(crate::asyncapi::document(&ops.shared.config, &routes))
}
