//! Graceful shutdown when the broker is gone: the orders example, run as a
//! service process with `spine::run`, against a broker (nisshi) of the test's
//! own that the test kills. A SIGTERM must end the process within
//! `shutdown_timeout + commit_timeout`, with exit status 3 and one log line
//! naming the offsets handled but not committed; a second SIGTERM ends it at
//! once; a broker lost during a rebalance hangs no instance.
//! A binary of its own: each test runs child processes, sends them signals,
//! and kills a broker.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The service commits only at shutdown (`commit_interval` of an hour), so
/// that what it handled is still uncommitted when the broker goes.
fn start_service(bootstrap: &str, group: &str, log: &Path, env: &[(&str, &str)]) -> Child {
    let logfile = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(example("orders"));
    clean_env(&mut cmd)
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap)
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("SPINE_KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .env("SPINE_DISPATCH__COMMIT_INTERVAL", "1h");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .expect("start the orders example")
}

fn log_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.log", unique(name)))
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Waits for the process to exit; a process still running after `limit` is
/// killed and the test fails: it hung.
fn exit_within(child: &mut Child, limit: Duration, log_file: &Path) -> (ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "still running {limit:?} after SIGTERM: it hangs. Its log:\n{}",
                log(log_file)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_for_log(path: &Path, needle: &str, timeout: Duration) {
    eventually(
        timeout,
        &format!("`{needle}` in {}", path.display()),
        || log(path).contains(needle),
    )
    .await;
}

/// Produces orders `ids` and waits until each has its reply: handled.
async fn handle_orders(bootstrap: &str, ids: &[String]) {
    let producer = producer_at(bootstrap);
    for id in ids {
        produce_event(
            &producer,
            "orders",
            "order.placed",
            Some(id),
            &serde_json::json!({"order_id": id, "customer": "c", "amount_cents": 100}),
        )
        .await;
    }
    let replies = read_topic_at(
        bootstrap,
        "orders.accepted",
        ids.len(),
        Duration::from_secs(60),
    );
    let answered: BTreeSet<String> = replies
        .iter()
        .filter_map(|m| json(m)["order_id"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        answered, want,
        "every order answered before the broker goes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_broker_is_down_exits_within_the_bound_with_status_3() {
    let mut broker = OwnBroker::start();
    create_topics_at(
        &broker.bootstrap,
        &["orders", "orders.accepted", "orders.dlq"],
        1,
    )
    .await;
    let path = log_path("shutdown-broker-down");
    let mut service = start_service(
        &broker.bootstrap,
        &unique("orders-service"),
        &path,
        &[
            ("SPINE_DISPATCH__SHUTDOWN_TIMEOUT", "5s"),
            ("SPINE_DISPATCH__COMMIT_TIMEOUT", "2s"),
        ],
    );
    let ids: Vec<String> = (0..5).map(|i| unique(&format!("down{i}"))).collect();
    handle_orders(&broker.bootstrap, &ids).await;

    broker.kill();
    sigterm(&service);
    // The bound: shutdown_timeout (5 s) + commit_timeout (2 s), plus 3 s for
    // the process to start its stop and exit.
    let (status, took) = exit_within(&mut service, Duration::from_secs(10), &path);
    let text = log(&path);
    assert_eq!(status.code(), Some(3), "took {took:?}; log:\n{text}");
    assert!(
        text.contains("stopped without committing handled messages"),
        "{text}"
    );
    // Offsets 0..4 were handled and never committed.
    assert!(
        text.contains("orders[0] ..5"),
        "names partition and offsets: {text}"
    );
    assert_eq!(
        text.matches("shutdown incomplete").count(),
        1,
        "logged once: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_at_once() {
    let mut broker = OwnBroker::start();
    create_topics_at(
        &broker.bootstrap,
        &["orders", "orders.accepted", "orders.dlq"],
        1,
    )
    .await;
    let path = log_path("shutdown-second-signal");
    let mut service = start_service(
        &broker.bootstrap,
        &unique("orders-service"),
        &path,
        // Long enough that only the second signal can end it soon.
        &[
            ("SPINE_DISPATCH__SHUTDOWN_TIMEOUT", "60s"),
            ("SPINE_DISPATCH__COMMIT_TIMEOUT", "60s"),
        ],
    );
    let ids: Vec<String> = (0..3).map(|i| unique(&format!("twice{i}"))).collect();
    handle_orders(&broker.bootstrap, &ids).await;

    broker.kill();
    sigterm(&service);
    wait_for_log(&path, "shutdown signal received", Duration::from_secs(10)).await;
    sigterm(&service);
    let (status, took) = exit_within(&mut service, Duration::from_secs(3), &path);
    let text = log(&path);
    assert_eq!(status.code(), Some(3), "took {took:?}; log:\n{text}");
    assert!(text.contains("forced stop"), "{text}");
    assert!(text.contains("orders[0] ..3"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_going_down_during_a_rebalance_hangs_no_instance() {
    let mut broker = OwnBroker::start();
    create_topics_at(
        &broker.bootstrap,
        &["orders", "orders.accepted", "orders.dlq"],
        4,
    )
    .await;
    let group = unique("orders-service");
    let env = [
        ("SPINE_DISPATCH__SHUTDOWN_TIMEOUT", "5s"),
        ("SPINE_DISPATCH__COMMIT_TIMEOUT", "2s"),
    ];
    let (first_log, second_log) = (log_path("rebalance-1"), log_path("rebalance-2"));
    let mut first = start_service(&broker.bootstrap, &group, &first_log, &env);
    wait_for_log(&first_log, "partitions assigned", Duration::from_secs(30)).await;
    let ids: Vec<String> = (0..8).map(|i| unique(&format!("rebalance{i}"))).collect();
    handle_orders(&broker.bootstrap, &ids).await;

    // A second member joins: the first gives up its partitions, and the
    // broker dies while the group is rebalancing.
    let mut second = start_service(&broker.bootstrap, &group, &second_log, &env);
    wait_for_log(&first_log, "partitions revoked", Duration::from_secs(30)).await;
    broker.kill();

    sigterm(&first);
    sigterm(&second);
    for (child, path) in [(&mut first, &first_log), (&mut second, &second_log)] {
        let (status, took) = exit_within(child, Duration::from_secs(10), path);
        // 0 if everything handled was committed before the broker went, 3
        // if not; never a hang.
        assert!(
            matches!(status.code(), Some(0 | 3)),
            "{status:?} after {took:?}; log:\n{}",
            log(path)
        );
    }
}
