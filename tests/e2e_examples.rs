//! The pipeline, aggregate and named-consumers examples as long-lived
//! services on a real broker (nisshi, started by `scripts/test`): events in,
//! results out, and a clean exit on SIGTERM. A test binary of their own, so that nothing else
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
    start_with(name, "service", group, extra, &[])
}

/// The example `name` with these environment variables and arguments,
/// logging to `<name>-<log>.log` in the tests' temporary directory.
fn start_with(name: &str, log: &str, group: &str, extra: &[(&str, &str)], args: &[&str]) -> Child {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{log}.log"));
    let mut cmd = Command::new(example(name));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPINE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
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

/// Orders produced to `topic`, ids `<run>-0..n`.
async fn place_orders(topic: &str, run: &str, n: usize) -> Vec<String> {
    let p = producer();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{run}-{i}");
        produce_event(
            &p,
            topic,
            "order.placed",
            Some(&id),
            &json!({ "order_id": id }),
        )
        .await;
        ids.push(id);
    }
    ids
}

fn order_ids(got: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = got
        .iter()
        .map(|v| v["order_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_consumers_run_together_or_one_at_a_time_with_overrides() {
    let (topic, other) = (unique("named.orders"), unique("named.other"));
    let outs = [
        format!("{topic}.orders"),
        format!("{topic}.audit"),
        format!("{other}.orders"),
        format!("{other}.audit"),
    ];
    let mut all: Vec<&str> = vec![&topic, &other];
    all.extend(outs.iter().map(String::as_str));
    create_topics(&all, 1).await;
    let group = unique("named");
    let topics_env = format!("[{topic}]");
    let env = [
        ("SPINE_APP__TOPICS", topics_env.as_str()),
        ("SPINE_KAFKA__AUTO_OFFSET_RESET", "earliest"),
    ];

    // `consumers` lists both, each in its own group.
    let listed = Command::new(example("consumers"))
        .arg("consumers")
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap())
        .env("SPINE_GROUP_ID", &group)
        .env("SPINE_APP__TOPICS", &topics_env)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{table}");
    for (name, handler) in [("orders", "accept"), ("audit", "audit")] {
        let row = table
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("a row for {name}: {table}"));
        assert!(row.contains(&format!("{group}.{name}")), "{row}");
        assert!(row.contains(&topic) && row.contains(handler), "{row}");
    }

    // `run` without --consumer runs both: each replies to every order.
    let run = unique("both");
    let ids = place_orders(&topic, &run, 5).await;
    let service = start_with("consumers", "both", &group, &env, &["run"]);
    let accepted = collect(&outs[0], "order_id", &run, 5, Duration::from_secs(90));
    let audited = collect(&outs[1], "order_id", &run, 5, Duration::from_secs(90));
    sigterm(service);
    assert_eq!(order_ids(&accepted), ids, "orders handled every order");
    assert_eq!(order_ids(&audited), ids, "audit handled every order");

    // `run --consumer audit --group G --topics other`: only audit, in group G,
    // on `other` instead of the configured topic.
    let run = unique("one");
    let ids = place_orders(&other, &run, 5).await;
    let own_group = unique("named.audit.own");
    let service = start_with(
        "consumers",
        "one",
        &group,
        &env,
        &[
            "run",
            "--consumer",
            "audit",
            "--group",
            &own_group,
            "--topics",
            &other,
        ],
    );
    let audited = collect(&outs[3], "order_id", &run, 5, Duration::from_secs(90));
    assert_eq!(
        order_ids(&audited),
        ids,
        "audit handled the overridden topic"
    );
    eventually(
        Duration::from_secs(30),
        "audit committed in its own group",
        || committed(&own_group, &other, 1).get(&0) == Some(&5),
    )
    .await;
    sigterm(service);
    // Each app logs its routes when it is built: only audit was.
    let log = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("consumers-one.log"),
    )
    .unwrap();
    assert!(log.contains("handler=audit"), "{log}");
    assert!(
        !log.contains("handler=accept"),
        "orders was not built: {log}"
    );
}
