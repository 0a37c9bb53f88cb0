//! The service's HTTP listener (feature `http`, `[http] listen`): one axum
//! server beside the consumer, stopped with it. It owns the routes of the
//! operations surface:
//! - `GET /metrics`: Prometheus text (`prometheus`);
//! - `GET /health/live`, `GET /health/ready`: the probes (`health`);
//! - `GET /routes`, `GET /asyncapi.json`: what the app handles;
//! - `GET /`: the status page (`page`);
//!
//! and the handlers served over HTTP (`api`), with their OpenAPI document
//! (`openapi`, `GET /openapi.json`) and page (`docs`, `GET /docs`), behind
//! `[http.auth]` (`auth`), over TLS when `[http.tls]` is set (`tls`). Every
//! error is a JSON [`problem::Problem`].

mod api;
mod auth;
mod docs;
mod health;
mod openapi;
mod ops;
mod page;
pub(crate) mod problem;
mod prometheus;
mod tls;

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
    let auth = auth::Auth::from_config(&shared.config.http.auth)?.map(Arc::new);
    let endpoints = api::endpoint::resolve(&shared.config, &shared.table)?;
    let tls = shared
        .config
        .http
        .tls
        .as_ref()
        .map(tls::server_config)
        .transpose()?;
    let document = Arc::new(openapi::document(&shared.config, version, &endpoints));
    let served: Vec<String> = endpoints.iter().map(api::Endpoint::route).collect();
    let ops = Ops {
        prometheus: prometheus::install(),
        shared: shared.clone(),
        version,
        openapi: document,
    };
    let api = Arc::new(api::Api::new(shared, auth.clone()));
    // The fallbacks go on last, so that they answer for the endpoints' paths too.
    let router = router(ops, auth)
        .merge(api::router(api, &endpoints))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = match tls {
        None => tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the HTTP listener failed");
            }
        }),
        Some(config) => {
            let std_listener = listener.into_std().map_err(|e| {
                Error::config("http.listen", format!("cannot listen on {addr}: {e}"))
            })?;
            let server = axum_server::from_tcp_rustls(
                std_listener,
                axum_server::tls_rustls::RustlsConfig::from_config(config),
            )
            .map_err(|e| Error::config("http.listen", format!("cannot listen on {addr}: {e}")))?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                let _ = rx.await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            tokio::spawn(async move {
                if let Err(e) = server
                    .handle(handle)
                    .serve(router.into_make_service())
                    .await
                {
                    tracing::error!(error = %e, "the HTTPS listener failed");
                }
            })
        }
    };
    tracing::info!(
        address = %local,
        scheme,
        endpoints = %served.join(", "),
        "HTTP listening: /metrics, /health/live, /health/ready, /routes, /asyncapi.json, /openapi.json, /docs, /"
    );
    Ok(Some(Listener { stop: tx, task }))
}

/// The OpenAPI document of an app's endpoints, as `/openapi.json` serves it.
pub(crate) fn openapi_document(
    shared: &Shared,
    version: Option<&str>,
) -> Result<serde_json::Value, Error> {
    let endpoints = api::endpoint::resolve(&shared.config, &shared.table)?;
    Ok(openapi::document(&shared.config, version, &endpoints))
}

fn router(ops: Ops, auth: Option<Arc<auth::Auth>>) -> Router {
    let router = Router::new()
        .route("/", get(page::status_page))
        .route("/metrics", get(prometheus::metrics))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/routes", get(routes))
        .route("/asyncapi.json", get(asyncapi))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs::page));
    let router = match auth.filter(|a| a.protect_operations) {
        Some(auth) => router.route_layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let auth = auth.clone();
                async move {
                    match auth.check(req.headers(), &[]) {
                        Ok(()) => next.run(req).await,
                        Err(p) => p.into_response(),
                    }
                }
            },
        )),
        None => router,
    };
    router.with_state(ops)
}

async fn openapi_json(State(ops): State<Ops>) -> impl IntoResponse {
    Json(ops.openapi.as_ref().clone())
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
