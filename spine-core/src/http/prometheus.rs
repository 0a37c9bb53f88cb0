//! `GET /metrics`: the Prometheus text format, rendered by
//! `metrics-exporter-prometheus`'s recorder. Spine installs it when the
//! listener starts and no recorder is installed yet; an app that installed
//! its own keeps it (then `/metrics` says so, with 404).

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::ops::Ops;
use crate::metrics as m;

/// The handle of the recorder Spine installed, shared by every app of the
/// process (a recorder is process-wide); `None` if another was there first.
pub(super) fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(m::HANDLER_DURATION.to_owned()),
                    &[
                        0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    m::describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::info!(
                        "a metrics recorder is already installed: Spine's counters go to it, and /metrics answers 404"
                    );
                    None
                }
            }
        })
        .clone()
}

pub(super) async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    for t in ops.shared.table.topics() {
        t.metrics.sync();
    }
    match &ops.prometheus {
        Some(h) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "the app installed a metrics recorder of its own; Spine's metrics go there\n"
                .to_owned(),
        ),
    }
}
