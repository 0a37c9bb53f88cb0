//! The examples, run as real processes. The main one (`orders`) in demo mode
//! on the embedded mock cluster, and as a service on the test broker, killed with
//! SIGKILL part-way through 20,000 orders and restarted: nothing may be lost.
//! A test binary of its own: it runs child processes and kills them, and its
//! 20,000-order run should not share the machine's two cores with other tests.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use support::*;

/// Runs an example in demo mode (no broker configured) with `env`, checks
/// that it exits 0, and returns its stdout.
fn demo(name: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(example(name));
    clean_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn demo_mode_runs_on_the_embedded_mock_cluster() {
    let stdout = demo("orders", &[("ORDERS_DEMO_COUNT", "50")]);
    assert!(
        stdout.contains("Summary: consumed 50, handled 45, replied 45, dead-lettered 5"),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn avro_demo_mode_runs_with_the_mock_cluster_and_the_dev_registry() {
    let stdout = demo("orders_avro", &[("ORDERS_DEMO_COUNT", "50")]);
    assert!(
        stdout.contains("Dev schema registry at http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Summary: consumed 50, handled 45, replied 45, dead-lettered 5"),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn pipeline_demo_normalises_enriches_by_request_and_publishes() {
    let stdout = demo("pipeline", &[("PIPELINE_DEMO_COUNT", "20")]);
    // Every fifth sample is blank: the first step ends those.
    assert!(
        stdout.contains(
            "Summary: submitted 20, enriched 16 (to texts.enriched), skipped 4 blank, dead-lettered 0."
        ),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn aggregate_demo_pays_orders_and_expires_the_unpaid() {
    // The config override of the example's 10 s timeout.
    let stdout = demo(
        "aggregate",
        &[
            ("AGGREGATE_DEMO_COUNT", "20"),
            ("SPINE_AGGREGATIONS__ORDER_PAID__TIMEOUT", "1s"),
        ],
    );
    assert!(
        stdout.contains(
            "Summary: orders 20, payments 16, paid 16 (to orders.paid), expired 4 (to orders.paid.dlq)."
        ),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn middleware_example_counts_every_outcome() {
    let stdout = demo("middleware", &[]);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec!["ping", "handled", "3"]), "{stdout}");
    assert!(
        lines.contains(&vec!["ping", "dead_lettered", "1"]),
        "{stdout}"
    );
    assert!(lines.contains(&vec!["unknown", "skipped", "1"]), "{stdout}");
}

fn start_service(group: &str, log: &str) -> Child {
    let logfile = std::fs::File::create(log).expect("log file");
    clean_env(&mut Command::new(example("orders")))
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap())
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("SPINE_KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .env("SPINE_DISPATCH__COMMIT_INTERVAL", "100ms")
        .env("SPINE_DISPATCH__ORDERING", "partition")
        .env("SPINE_RETRY__BACKOFF", "20ms")
        .stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .expect("start the orders example")
}

/// Counts, per order id of this run, the replies and dead letters seen so far.
struct Watcher {
    seen: Arc<Mutex<HashMap<String, u32>>>,
    records: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(run: &str) -> Watcher {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let records = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, r, st, run) = (seen.clone(), records.clone(), stop.clone(), run.to_owned());
        let thread = std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap())
                .set("group.id", unique("watcher"))
                .set("fetch.wait.max.ms", "10")
                .create()
                .expect("watcher");
            let mut tpl = TopicPartitionList::new();
            for topic in ["orders.accepted", "orders.dlq"] {
                for p in 0..3 {
                    // From the end: earlier runs' records are of no interest.
                    tpl.add_partition_offset(topic, p, Offset::End).unwrap();
                }
            }
            consumer.assign(&tpl).unwrap();
            while !st.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let Ok(v) =
                    serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
                else {
                    continue;
                };
                let Some(id) = v["order_id"].as_str() else {
                    continue;
                };
                if id.starts_with(&run) {
                    *s.lock().unwrap().entry(id.to_owned()).or_default() += 1;
                    *r.lock().unwrap() += 1;
                }
            }
        });
        Watcher {
            seen,
            records,
            stop,
            thread: Some(thread),
        }
    }

    fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_order() {
    const ORDERS: usize = 20_000;
    create_topics(&["orders", "orders.accepted", "orders.dlq"], 3).await;
    let run = unique("kill9");
    let group = unique("orders-service");
    start_group_at_end(&group, "orders");
    let starts = committed(&group, "orders", 3);

    let producer = producer();
    let mut pending = Vec::with_capacity(ORDERS);
    for i in 0..ORDERS {
        let id = format!("{run}-{i}");
        let amount = if i % 100 == 99 { -1 } else { 100 + i as i64 };
        let body = serde_json::to_vec(
            &serde_json::json!({"order_id": id, "customer": "c", "amount_cents": amount}),
        )
        .unwrap();
        let headers = OwnedHeaders::new().insert(Header {
            key: "ce_type",
            value: Some("order.placed"),
        });
        loop {
            let rec = FutureRecord::to("orders")
                .key(&id)
                .payload(&body)
                .headers(headers.clone());
            match producer.send_result(rec) {
                Ok(f) => break pending.push(f),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await, // queue full
            }
        }
    }
    // The end of each partition, from the delivery reports.
    let mut end: HashMap<i32, i64> = HashMap::new();
    for f in pending {
        let d = f.await.expect("delivery").expect("delivered");
        let e = end.entry(d.partition).or_default();
        *e = (*e).max(d.offset + 1);
    }

    let watcher = Watcher::start(&run);
    tokio::time::sleep(Duration::from_secs(1)).await; // let the watcher find the ends
    let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // Commits every 100 ms, one message per partition at a time: the retries
    // of the poison orders (one in 100, 20 + 40 ms of backoff each) pace the
    // run, so that three commits land on every partition mid-stream.
    let mut first = start_service(&group, log_dir.join("orders-kill9-1.log").to_str().unwrap());
    // SIGKILL once the group's committed offset moved three times on every
    // partition.
    let mut moves: HashMap<i32, (i64, u32)> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(moves.len() == 3 && moves.values().all(|(_, n)| *n >= 3)) {
        assert!(Instant::now() < deadline, "commits did not move: {moves:?}");
        for (p, o) in committed(&group, "orders", 3) {
            let m = moves.entry(p).or_insert((o, 0));
            if m.0 != o {
                *m = (o, m.1 + 1);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    first.wait().unwrap();
    let committed_at_kill: i64 = committed(&group, "orders", 3).values().sum();
    tokio::time::sleep(Duration::from_millis(500)).await; // its last replies arrive
    let at_kill = watcher.distinct();
    assert!(
        at_kill < ORDERS,
        "killed too late to test anything: {at_kill} done"
    );
    // What the second instance handles again: what the first handled after its
    // last commit (orders answered minus the committed offsets, whose
    // partitions started at their ends).
    let start_sum: i64 = starts.values().sum();
    let bound = at_kill as i64 - (committed_at_kill - start_sum);

    let mut second = start_service(&group, log_dir.join("orders-kill9-2.log").to_str().unwrap());
    wait_for(
        "every order handled after the restart",
        Duration::from_secs(240),
        || watcher.distinct() >= ORDERS,
    )
    .await;

    // Graceful stop: SIGTERM, exit code 0, everything committed.
    let status = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = second.wait().unwrap();
    assert!(
        code.success(),
        "SIGTERM must end the service with exit code 0, got {code:?}"
    );
    let committed = committed(&group, "orders", 3);
    for (p, high) in &end {
        assert_eq!(
            committed.get(p),
            Some(high),
            "partition {p}: committed {committed:?}, end {end:?}"
        );
    }
    assert_eq!(end.len(), 3, "orders went to every partition");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = *watcher.records.lock().unwrap();
    let seen = watcher.seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        ORDERS,
        "every order got a reply or a dead letter"
    );
    let duplicates = records - ORDERS as u64;
    let max_copies = seen.values().max().copied().unwrap_or(0);
    assert!(
        duplicates as i64 <= bound.max(0),
        "{duplicates} duplicates, more than what was handled after the last commit ({bound})"
    );
    let report = format!(
        "kill -9 after 3 commits on each partition, {at_kill} of {ORDERS} orders answered: every \
         order answered; {duplicates} duplicate replies/dead letters ({:.2}%, bound: {bound} \
         handled after the last commit), at most {max_copies} copies of one order",
        duplicates as f64 * 100.0 / ORDERS as f64
    );
    println!("{report}");
    // scripts/test prints this file at the end of the run.
    let _ = std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kill9-report.txt"),
        report,
    );
}
