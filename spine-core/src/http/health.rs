//! The probes. `/health/live` is a time-to-live on the consumer loop's
//! rounds (as Karafka's liveness listener): the loop goes round at least
//! every second while it runs, whether it is taking messages or deliberately
//! not (backpressure, a parked key, an empty topic), so only a loop that is
//! stuck (a handler blocking its thread) or has ended fails it.
//! `/health/ready` checks what the app needs to do its work: its group, a
//! broker, and the schema registry when a topic uses Avro.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::ops::Ops;

/// Statistics older than this mean librdkafka is not reporting.
const STATS_STALE: Duration = Duration::from_secs(5);
/// How long the readiness probe waits for the schema registry.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn live(State(ops): State<Ops>) -> Response {
    let ttl = ops.shared.config.http.liveness_ttl;
    match ops.shared.status.since_beat() {
        Ok(d) if d <= ttl => Json(json!({
            "status": "up",
            "last_round_ms": d.as_millis() as u64,
        }))
        .into_response(),
        Ok(d) => down(format!(
            "the consumer loop has not gone round for {:.1} s (http.liveness_ttl is {} s): \
             a handler may be blocking its thread; run such work in tokio::task::spawn_blocking",
            d.as_secs_f64(),
            ttl.as_secs()
        )),
        Err(why) => down(why),
    }
}

fn down(reason: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "down", "reason": reason })),
    )
        .into_response()
}

/// One readiness check: its name, whether it passes, and what it saw.
fn check(name: &str, ok: bool, detail: String) -> (String, bool, Value) {
    (name.to_owned(), ok, json!({ "ok": ok, "detail": detail }))
}

pub(super) async fn ready(State(ops): State<Ops>) -> Response {
    let status = &ops.shared.status;
    let mut checks = Vec::new();

    let assigned = status.assigned().len();
    checks.push(if !status.joined() {
        check(
            "group",
            false,
            format!(
                "not in group `{}` yet (joining, or rebalancing)",
                ops.shared.config.group_id()
            ),
        )
    } else if assigned == 0 {
        check(
            "group",
            true,
            "joined, with no partition assigned: the group has more members than the topics \
             have partitions; this member takes over if another leaves"
                .to_owned(),
        )
    } else {
        check(
            "group",
            true,
            format!("joined, {assigned} partitions assigned"),
        )
    });

    let (up, known, age) = status.brokers();
    let bootstrap = ops.shared.config.bootstrap_servers().unwrap_or("?");
    checks.push(match age {
        None => check(
            "broker",
            false,
            format!("no word from librdkafka yet about {bootstrap}"),
        ),
        Some(age) if age > STATS_STALE => check(
            "broker",
            false,
            format!("librdkafka has not reported for {} s", age.as_secs()),
        ),
        Some(_) if up == 0 => check(
            "broker",
            false,
            format!("no broker reachable ({bootstrap}); librdkafka keeps retrying"),
        ),
        Some(_) => check("broker", true, format!("{up} of {known} brokers up")),
    });

    // Each codec once (Avro: the schema registry).
    let mut codecs: Vec<std::sync::Arc<dyn crate::codec::PayloadCodec>> = Vec::new();
    for t in ops.shared.table.topics() {
        if let Some(c) = &t.codec {
            if !codecs.iter().any(|k| std::sync::Arc::ptr_eq(k, c)) {
                codecs.push(c.clone());
            }
        }
    }
    for c in codecs {
        let answer = tokio::time::timeout(REGISTRY_TIMEOUT, c.check()).await;
        checks.push(match answer {
            Ok(Ok(())) => check("schema_registry", true, "answers".to_owned()),
            Ok(Err(e)) => check("schema_registry", false, e),
            Err(_) => check(
                "schema_registry",
                false,
                format!("no answer within {} s", REGISTRY_TIMEOUT.as_secs()),
            ),
        });
    }

    let all = checks.iter().all(|(_, ok, _)| *ok);
    let body = json!({
        "status": if all { "ready" } else { "not_ready" },
        "checks": checks.into_iter().map(|(n, _, v)| (n, v)).collect::<serde_json::Map<_, _>>(),
    });
    let code = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
