//! [`Ops`]: what the routes of the operations surface read.

use std::sync::Arc;

use crate::dispatch::Shared;

/// The app's shared state, the Prometheus handle (when Spine's recorder is
/// the one installed) and the app's version.
#[derive(Clone)]
pub(crate) struct Ops {
    pub(super) shared: Arc<Shared>,
    pub(super) prometheus: Option<::metrics_exporter_prometheus::PrometheusHandle>,
    pub(super) version: Option<&'static str>,
    /// The endpoints' OpenAPI document, made once at start.
    pub(super) openapi: Arc<serde_json::Value>,
}
