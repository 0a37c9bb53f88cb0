//! The `orders` example run as a real service on a real broker, and treated
//! the way production treats services:
//! - killed with SIGKILL part-way through 20,000 orders and restarted;
//! - three instances in one group on 6 partitions while a fourth joins, one
//!   gets SIGTERM and one SIGKILL, over 30,000 orders.
//!
//! Nothing may be lost, and each key keeps its order within an instance.
//! A test binary of its own: it runs child processes and kills them. Its two
//! tests take turns, so that neither shares the machine's two cores with the
//! other's services.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use support::*;

/// One test at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts the orders example as a service named `name` (its replies' `ce_source`).
fn start_service(bootstrap: &str, group: &str, name: &str, ordering: &str) -> Service {
    start_service_with(bootstrap, group, name, ordering, &[])
}

/// [`start_service`], with more settings in the environment (which
/// override the ones above).
fn start_service_with(
    bootstrap: &str,
    group: &str,
    name: &str,
    ordering: &str,
    env: &[(&str, &str)],
) -> Service {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.log"));
    let logfile = std::fs::File::create(log).expect("log file");
    clean_env(&mut Command::new(example("orders")))
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap)
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_APP__NAME", name)
        .env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("SPINE_KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .env("SPINE_DISPATCH__COMMIT_INTERVAL", "100ms")
        .env("SPINE_DISPATCH__ORDERING", ordering)
        .env("SPINE_RETRY__BACKOFF", "20ms")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .map(Service)
        .expect("start the orders example")
}

/// A reply (or dead letter) of this run, as the watcher saw it.
#[derive(Clone, Debug)]
struct Answer {
    order_id: String,
    /// The instance that published it (`ce_source`).
    source: String,
    at: Instant,
}

/// Reads every reply and dead letter of this run, per partition in order.
struct Watcher {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Reads from `from`: `Offset::End` on a broker that keeps earlier runs'
    /// records (then give it a second to find the ends).
    fn start(bootstrap: &str, run: &str, partitions: i32, from: Offset) -> Watcher {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, st, run, bootstrap) = (
            answers.clone(),
            stop.clone(),
            run.to_owned(),
            bootstrap.to_owned(),
        );
        let thread = std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", unique("watcher"))
                .set("fetch.wait.max.ms", "10")
                .create()
                .expect("watcher");
            let mut tpl = TopicPartitionList::new();
            for topic in ["orders.accepted", "orders.dlq"] {
                for p in 0..partitions {
                    tpl.add_partition_offset(topic, p, from).unwrap();
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
                    let source = m.headers().and_then(|h| {
                        rdkafka::message::Headers::iter(h)
                            .find(|h| h.key == "ce_source")
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    });
                    a.lock().unwrap().push(Answer {
                        order_id: id.to_owned(),
                        source: source.unwrap_or_default(),
                        at: Instant::now(),
                    });
                }
            }
        });
        Watcher {
            answers,
            stop,
            thread: Some(thread),
        }
    }

    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    fn distinct(&self) -> usize {
        let a = self.answers.lock().unwrap();
        a.iter().map(|a| &a.order_id).collect::<HashSet<_>>().len()
    }

    fn records(&self) -> usize {
        self.answers.lock().unwrap().len()
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

/// Sends one `order.placed` (keyed by `key`) without waiting for its ack.
async fn send_order(
    producer: &FutureProducer,
    key: &str,
    id: &str,
    amount: i64,
) -> rdkafka::producer::DeliveryFuture {
    let body = serde_json::to_vec(
        &serde_json::json!({"order_id": id, "customer": key, "amount_cents": amount}),
    )
    .unwrap();
    let headers = OwnedHeaders::new().insert(Header {
        key: "ce_type",
        value: Some("order.placed"),
    });
    loop {
        let rec = FutureRecord::to("orders")
            .key(key)
            .payload(&body)
            .headers(headers.clone());
        match producer.send_result(rec) {
            Ok(f) => return f,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await, // queue full
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_order() {
    let _turn = TURN.lock().await;
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
        pending.push(send_order(&producer, &id, &id, amount).await);
    }
    // The end of each partition, from the delivery reports.
    let mut end: HashMap<i32, i64> = HashMap::new();
    for f in pending {
        let d = f.await.expect("delivery").expect("delivered");
        let e = end.entry(d.partition).or_default();
        *e = (*e).max(d.offset + 1);
    }

    // From the end: earlier runs' records are of no interest.
    let watcher = Watcher::start(&bootstrap(), &run, 3, Offset::End);
    tokio::time::sleep(Duration::from_secs(1)).await; // let the watcher find the ends
                                                      // Commits every 100 ms, one message per partition at a time: the retries
                                                      // of the poison orders (one in 100, 20 + 40 ms of backoff each) pace the
                                                      // run, so that three commits land on every partition mid-stream.
    let mut first = start_service(&bootstrap(), &group, "orders-kill9-1", "partition");
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
    first.kill_9();
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

    let mut second = start_service(&bootstrap(), &group, "orders-kill9-2", "partition");
    wait_for(
        "every order handled after the restart",
        Duration::from_secs(240),
        || watcher.distinct() >= ORDERS,
    )
    .await;

    // Graceful stop: SIGTERM, exit code 0, everything committed.
    let code = second.terminate();
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
    let records = watcher.records();
    let answers = watcher.answers();
    let mut copies: HashMap<&str, u32> = HashMap::new();
    for a in &answers {
        *copies.entry(&a.order_id).or_default() += 1;
    }
    assert_eq!(
        copies.len(),
        ORDERS,
        "every order got a reply or a dead letter"
    );
    let duplicates = records - ORDERS;
    let max_copies = copies.values().max().copied().unwrap_or(0);
    assert!(
        duplicates as i64 <= bound.max(0),
        "{duplicates} duplicates, more than what was handled after the last commit ({bound})"
    );
    report(
        "kill9",
        format!(
            "kill -9 after 3 commits on each partition, {at_kill} of {ORDERS} orders answered: \
             every order answered; {duplicates} duplicate replies/dead letters ({:.2}%, bound: \
             {bound} handled after the last commit), at most {max_copies} copies of one order",
            duplicates as f64 * 100.0 / ORDERS as f64
        ),
    );
}

/// Prints a figure and keeps it for `scripts/test`, which prints these files
/// at the end of the run.
fn report(name: &str, text: String) {
    println!("{text}");
    let _ = std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-report.txt")),
        text,
    );
}

/// Polls the group's committed offsets until stopped; returns each
/// partition's offsets in the order they were seen.
fn watch_commits(
    bootstrap: String,
    group: String,
    partitions: i32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeMap<i32, Vec<i64>>> {
    std::thread::spawn(move || {
        let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            for (p, o) in committed_at(&bootstrap, &group, "orders", partitions) {
                let v = seen.entry(p).or_default();
                if v.last() != Some(&o) {
                    v.push(o);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        seen
    })
}

/// A broker of the test's own, where `orders` and the topics of its answers
/// have `partitions` partitions.
async fn orders_broker(partitions: i32) -> OwnBroker {
    let broker = OwnBroker::start();
    let topics = ["orders", "orders.accepted", "orders.dlq"];
    create_topics_at(&broker.bootstrap, &topics, partitions).await;
    broker
}

/// Sends this run's orders, one every `per_order`: customer `c` sends its
/// orders in sequence `s` (id `{run}-cust-{c:03}-{s:04}`). Ends with each
/// customer's partition.
fn send_paced(
    producer: FutureProducer,
    run: &str,
    orders: usize,
    customers: usize,
    per_order: Duration,
) -> tokio::task::JoinHandle<HashMap<String, i32>> {
    let run = run.to_owned();
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let started = Instant::now();
        for i in 0..orders {
            let (c, s) = (i % customers, i / customers);
            let key = format!("cust-{c:03}");
            let id = format!("{run}-{key}-{s:04}");
            pending.push((key.clone(), send_order(&producer, &key, &id, 100).await));
            if i % 50 == 49 {
                tokio::time::sleep_until((started + per_order * i as u32).into()).await;
            }
        }
        let mut partition_of = HashMap::new();
        for (key, f) in pending {
            let d = f.await.expect("delivery").expect("delivered");
            partition_of.insert(key, d.partition);
        }
        partition_of
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalances_lose_no_order_and_keep_each_key_in_order() {
    rebalances("rebalance", &[]).await;
}

/// The same group changes under librdkafka's cooperative protocol, where a
/// rebalance revokes only the partitions that move and the others keep
/// being handled through it: the setting the README recommends for large
/// groups, passed through `[kafka]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_rebalances_lose_no_order_and_keep_each_key_in_order() {
    let strategy = [(
        "SPINE_KAFKA__PARTITION_ASSIGNMENT_STRATEGY",
        "cooperative-sticky",
    )];
    rebalances("rebalance-cooperative", &strategy).await;
}

/// Three instances of the orders example, then a fourth joins, one leaves
/// on SIGTERM and one is killed, while 30,000 orders arrive; `env` is
/// every instance's extra settings, `name` the report's.
async fn rebalances(name: &str, env: &[(&str, &str)]) {
    let _turn = TURN.lock().await;
    const ORDERS: usize = 30_000;
    const CUSTOMERS: usize = 300;
    const PARTITIONS: i32 = 6;
    let broker = orders_broker(PARTITIONS).await;
    let bs = broker.bootstrap.clone();
    let run = unique("rebalance");
    let group = unique("orders-service");
    let watcher = Watcher::start(&bs, &run, PARTITIONS, Offset::Beginning);
    let stop_commits = Arc::new(AtomicBool::new(false));
    let commits = watch_commits(bs.clone(), group.clone(), PARTITIONS, stop_commits.clone());

    let mut instances: BTreeMap<&str, Service> = BTreeMap::new();
    for name in ["inst-a", "inst-b", "inst-c"] {
        instances.insert(name, start_service_with(&bs, &group, name, "key", env));
    }

    // The orders, paced at 1,000 a second (30 s) so that the group changes
    // happen mid-stream.
    let per_order = Duration::from_millis(1);
    let sender = send_paced(producer_at(&bs), &run, ORDERS, CUSTOMERS, per_order);

    // Who answers which partition, per the customers seen so far: each
    // customer's orders go to one partition, known from the first answers.
    let customer = |id: &str| id[run.len() + 1..run.len() + 9].to_owned();
    let seq = |id: &str| id[run.len() + 10..].parse::<u32>().unwrap();
    let sources = |answers: &[Answer]| -> HashSet<String> {
        answers.iter().map(|a| a.source.clone()).collect()
    };
    wait_for(
        "all three instances answering",
        Duration::from_secs(60),
        || sources(&watcher.answers()).len() == 3,
    )
    .await;

    // A fourth joins.
    instances.insert(
        "inst-d",
        start_service_with(&bs, &group, "inst-d", "key", env),
    );
    wait_for(
        "the fourth instance answering",
        Duration::from_secs(60),
        || sources(&watcher.answers()).contains("inst-d"),
    )
    .await;

    // One leaves gracefully: its revoke commits what it finished; exit 0.
    let code = instances.get_mut("inst-b").unwrap().terminate();
    assert!(code.success(), "SIGTERM: exit {code:?}");
    let after_b = watcher.records();
    wait_for("answers after inst-b left", Duration::from_secs(30), || {
        watcher.records() > after_b + 500
    })
    .await;

    // One is killed.
    let killed_at = Instant::now();
    instances.get_mut("inst-c").unwrap().kill_9();

    let partition_of = sender.await.unwrap();
    wait_for("every order answered", Duration::from_secs(180), || {
        watcher.distinct() >= ORDERS
    })
    .await;
    // Handoff: from the kill to the first answer for each of inst-c's
    // partitions by another instance.
    let answers = watcher.answers();
    // Its partitions: those it answered last before the kill.
    let mut last_before: HashMap<i32, &str> = HashMap::new();
    for a in answers.iter().filter(|a| a.at < killed_at) {
        last_before.insert(partition_of[&customer(&a.order_id)], &a.source);
    }
    let victim_partitions: HashSet<i32> = last_before
        .iter()
        .filter(|(_, s)| **s == "inst-c")
        .map(|(p, _)| *p)
        .collect();
    assert!(
        !victim_partitions.is_empty(),
        "inst-c owned no partition at its kill: {last_before:?}"
    );
    let mut handoff = Duration::ZERO;
    for p in &victim_partitions {
        let first = answers
            .iter()
            .find(|a| {
                a.at > killed_at
                    && a.source != "inst-c"
                    && partition_of[&customer(&a.order_id)] == *p
            })
            .unwrap_or_else(|| panic!("partition {p} never answered after the kill"));
        handoff = handoff.max(first.at - killed_at);
    }
    assert!(
        handoff <= Duration::from_secs(12),
        "inst-c's partitions were handled again after {handoff:?}, more than 2 × session.timeout.ms"
    );

    for name in ["inst-a", "inst-d"] {
        let code = instances.get_mut(name).unwrap().terminate();
        assert!(code.success(), "{name}: SIGTERM: exit {code:?}");
    }
    stop_commits.store(true, Ordering::Relaxed);
    let commits = commits.join().unwrap();

    // Every order answered, by id.
    let ids: HashSet<&str> = answers.iter().map(|a| a.order_id.as_str()).collect();
    assert_eq!(ids.len(), ORDERS);
    // Per instance and customer, the orders answered for the first time come
    // in sequence: a re-delivery after a rebalance may repeat, never reorder.
    let mut last: HashMap<(&str, String), (u32, HashSet<u32>)> = HashMap::new();
    for a in &answers {
        let (c, s) = (customer(&a.order_id), seq(&a.order_id));
        let (prev, done) = last.entry((&a.source, c.clone())).or_default();
        if done.insert(s) {
            assert!(
                done.len() == 1 || s > *prev,
                "{}: {c} #{s} answered after #{prev}",
                a.source
            );
            *prev = s;
        }
    }
    // No commit went backwards: nothing was committed by an old owner after
    // the new one moved on.
    for (p, offsets) in &commits {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {p}: committed offsets went backwards: {offsets:?}"
        );
    }
    let duplicates = answers.len() - ORDERS;
    let per_instance: BTreeMap<&str, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.source.as_str()).or_default() += 1;
        m
    });
    report(
        name,
        format!(
            "{name} (3 instances, a 4th joins, SIGTERM one, SIGKILL one; {PARTITIONS} \
             partitions, {ORDERS} orders): every order answered, key order kept per instance, \
             commits never went back; {duplicates} duplicates ({:.2}%); the killed instance's \
             {} partitions handled again after {:.1} s (session.timeout.ms 6 s); answers per \
             instance {per_instance:?}",
            duplicates as f64 * 100.0 / ORDERS as f64,
            victim_partitions.len(),
            handoff.as_secs_f64()
        ),
    );
    drop(broker);
}

/// Static membership (`group.instance.id` through `[kafka]`): an instance
/// restarted within `session.timeout.ms` takes its own partitions back, and
/// the other instance goes through no rebalance at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarted_in_time_moves_no_partition() {
    let _turn = TURN.lock().await;
    const ORDERS: usize = 6_000;
    const CUSTOMERS: usize = 120;
    const PARTITIONS: i32 = 6;
    let broker = orders_broker(PARTITIONS).await;
    let bs = broker.bootstrap.clone();
    let run = unique("static");
    let group = unique("orders-service");
    let watcher = Watcher::start(&bs, &run, PARTITIONS, Offset::Beginning);
    let member = |id: &'static str| {
        [
            ("SPINE_KAFKA__GROUP_INSTANCE_ID", id),
            ("SPINE_KAFKA__SESSION_TIMEOUT_MS", "30000"),
        ]
    };
    let mut a = start_service_with(&bs, &group, "static-a", "key", &member("member-a"));
    let mut b = start_service_with(&bs, &group, "static-b", "key", &member("member-b"));

    // 6,000 orders at 500 a second (12 s), so that the restart is mid-stream.
    let per_order = Duration::from_millis(2);
    let sender = send_paced(producer_at(&bs), &run, ORDERS, CUSTOMERS, per_order);
    let sources = |answers: &[Answer]| -> HashSet<String> {
        answers.iter().map(|a| a.source.clone()).collect()
    };
    wait_for("both instances answering", Duration::from_secs(60), || {
        let s = sources(&watcher.answers());
        s.contains("static-a") && s.contains("static-b")
    })
    .await;
    // A second of steady flow, so that the group's first rebalance (while
    // `static-b` joined) is well behind.
    let flowing = watcher.records();
    wait_for("answers after both joined", Duration::from_secs(30), || {
        watcher.records() > flowing + 500
    })
    .await;
    let revokes = |name: &str| {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.log"));
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("partitions revoked")
            .count()
    };
    let a_revokes = revokes("static-a");

    // The restart: the same `group.instance.id` under another name, so
    // that its answers can be told from the first process's.
    let code = b.terminate();
    assert!(code.success(), "static-b: SIGTERM: exit {code:?}");
    let restarted_at = Instant::now();
    let mut b2 = start_service_with(&bs, &group, "static-b2", "key", &member("member-b"));
    wait_for(
        "the restarted instance answering",
        Duration::from_secs(60),
        || sources(&watcher.answers()).contains("static-b2"),
    )
    .await;
    let back_after = restarted_at.elapsed();

    let partition_of = sender.await.unwrap();
    wait_for("every order answered", Duration::from_secs(120), || {
        watcher.distinct() >= ORDERS
    })
    .await;
    // Read before `static-a` stops: its own shutdown revokes.
    let a_revokes_after = revokes("static-a");
    for (name, service) in [("static-a", &mut a), ("static-b2", &mut b2)] {
        let code = service.terminate();
        assert!(code.success(), "{name}: SIGTERM: exit {code:?}");
    }

    let answers = watcher.answers();
    let ids: HashSet<&str> = answers.iter().map(|a| a.order_id.as_str()).collect();
    assert_eq!(ids.len(), ORDERS, "every order answered, by id");
    let customer = |id: &str| id[run.len() + 1..run.len() + 9].to_owned();
    let partition = |a: &Answer| partition_of[&customer(&a.order_id)];
    // Each partition's member before the restart: who answered it last.
    let mut owner: BTreeMap<i32, &str> = BTreeMap::new();
    for a in answers.iter().filter(|a| a.at < restarted_at) {
        owner.insert(partition(a), &a.source);
    }
    // From the restart on, each partition is answered by the same member
    // (`static-b2` being `static-b` again): none moved.
    for a in answers.iter().filter(|a| a.at >= restarted_at) {
        let p = partition(a);
        let member = if a.source == "static-b2" {
            "static-b"
        } else {
            a.source.as_str()
        };
        assert_eq!(
            Some(&member),
            owner.get(&p),
            "partition {p} answered by {} after the restart; before it, by {:?}",
            a.source,
            owner.get(&p)
        );
    }
    let b_parts = owner.values().filter(|m| **m == "static-b").count();
    assert!(b_parts > 0, "static-b owned no partition: {owner:?}");
    assert!(
        answers.iter().any(|a| a.source == "static-b2"),
        "the restarted member answered nothing"
    );
    assert_eq!(
        a_revokes, a_revokes_after,
        "static-a went through a rebalance while static-b restarted"
    );
    report(
        "static-membership",
        format!(
            "static membership (2 instances, one restarted with the same group.instance.id; \
             {PARTITIONS} partitions, {ORDERS} orders): every order answered, no partition \
             moved, the other instance saw no rebalance; the restarted one answered again \
             {:.1} s after its restart; {} duplicates",
            back_after.as_secs_f64(),
            answers.len() - ORDERS
        ),
    );
    drop(broker);
}
