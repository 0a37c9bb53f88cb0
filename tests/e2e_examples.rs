//! The pipeline and aggregate examples as long-lived services on a real
//! broker (nisshi, started by `scripts/test`): events in, results out, and a
//! clean exit on SIGTERM. A test binary of their own, so that nothing else
//! writes to their topics meanwhile.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join(name)
}

fn start(name: &str, group: &str, extra: &[(&str, &str)]) -> Child {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-service.log"));
    let mut cmd = Command::new(example(name));
    for (k, _) in std::env::vars() {
        if k.starts_with("SPINE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info")
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap())
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("SPINE_KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .env("SPINE_DISPATCH__COMMIT_INTERVAL", "200ms");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("start the {name} example: {e}"))
}

fn sigterm(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert!(
        code.success(),
        "SIGTERM must end the service with exit code 0, got {code:?}"
    );
}

/// Records of `topic` whose JSON field `field` starts with `run`, read until
/// `want` of them arrived or `timeout` passed.
fn collect(
    topic: &str,
    field: &str,
    run: &str,
    want: usize,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<_> = drain_topic(topic, Duration::from_millis(500))
            .iter()
            .map(json)
            .filter(|v| v[field].as_str().is_some_and(|s| s.starts_with(run)))
            .collect();
        if got.len() >= want || Instant::now() > deadline {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_service_enriches_texts_through_a_request() {
    create_topics(
        &[
            "texts",
            "text.stats",
            "texts.enriched",
            "pipeline-example.replies",
        ],
        2,
    )
    .await;
    let group = unique("pipeline-service");
    start_group_at_end(&group, "texts");
    start_group_at_end(&group, "text.stats");
    let service = start("pipeline", &group, &[]);
    let run = unique("run");
    let p = producer();
    for (i, text) in ["  Hello   WORLD ", "   ", "one two three"]
        .iter()
        .enumerate()
    {
        let id = format!("{run}-{i}");
        produce_event(
            &p,
            "texts",
            "text.submitted",
            Some(&id),
            &json!({ "id": id, "text": text }),
        )
        .await;
    }
    let got = collect("texts.enriched", "id", &run, 2, Duration::from_secs(90));
    sigterm(service);
    let mut got = got;
    got.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(
        got.len(),
        2,
        "the blank text ends in the first step: {got:?}"
    );
    assert_eq!(got[0]["text"], "hello world");
    assert_eq!(got[0]["stats"], json!({ "words": 2, "longest": "hello" }));
    assert_eq!(got[1]["text"], "one two three");
    assert_eq!(got[1]["stats"]["words"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_service_joins_orders_with_payments() {
    create_topics(&["orders", "payments", "orders.paid", "orders.paid.dlq"], 3).await;
    let group = unique("aggregate-service");
    start_group_at_end(&group, "orders");
    start_group_at_end(&group, "payments");
    let service = start(
        "aggregate",
        &group,
        &[("SPINE_AGGREGATIONS__ORDER_PAID__TIMEOUT", "3s")],
    );
    let run = unique("run");
    let p = producer();
    for i in 0..6 {
        let id = format!("{run}-{i}");
        let order = json!({ "order_id": id, "customer": "c", "amount_cents": 100 * i });
        produce_event(&p, "orders", "order.placed", Some(&id), &order).await;
        if i != 5 {
            let payment = json!({ "order_id": id, "amount_cents": 100 * i });
            produce_event(&p, "payments", "payment.received", Some(&id), &payment).await;
        }
    }
    let paid = collect("orders.paid", "order_id", &run, 5, Duration::from_secs(90));
    let expired = collect(
        "orders.paid.dlq",
        "order_id",
        &run,
        1,
        Duration::from_secs(60),
    );
    sigterm(service);
    assert_eq!(paid.len(), 5, "{paid:?}");
    for v in &paid {
        assert_eq!(v["amount_cents"], v["paid_cents"]);
    }
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["order_id"], format!("{run}-5"));
}
