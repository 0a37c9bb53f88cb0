//! End-to-end delivery guarantees on a real broker: per-key order under
//! concurrency, backpressure, retries, emitted events, and graceful shutdown
//! committing exactly what was handled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::support::*;
use spine::config::OrderingPolicy as Order;
use spine::prelude::*;

#[derive(Debug, Deserialize, Serialize)]
struct Step {
    run: String,
    key: String,
    seq: u32,
}

/// What handlers saw, shared through `State`.
#[derive(Default)]
struct Recorder {
    active: AtomicUsize,
    max_active: AtomicUsize,
    log: Mutex<Vec<(String, u32)>>,
}

impl Recorder {
    fn enter(&self) {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self, s: &Step) {
        self.log.lock().unwrap().push((s.key.clone(), s.seq));
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
    fn handled(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

async fn produce_steps(topic: &str, run: &str, keys: usize, per_key: u32) {
    let p = producer();
    for seq in 0..per_key {
        for k in 0..keys {
            let key = format!("key-{k}");
            let step = serde_json::json!({ "run": run, "key": key, "seq": seq });
            produce_event(&p, topic, "step", Some(&key), &step).await;
        }
    }
}

#[tokio::test]
async fn key_ordering_holds_under_concurrency() {
    let topic = unique("order");
    create_topics(&[&topic], 2).await;
    let run = unique("run");
    // More keys (48) than the in-flight bound (16), so that the bound is
    // what limits concurrency and its assertion can fail.
    produce_steps(&topic, &run, 48, 5).await;

    let recorder = std::sync::Arc::new(Recorder::default());
    run_shared(
        &topic,
        &unique("order"),
        Order::Key,
        16,
        recorder.clone(),
        240,
    )
    .await;

    let log = recorder.log.lock().unwrap().clone();
    assert_eq!(log.len(), 240);
    let mut last: BTreeMap<String, u32> = BTreeMap::new();
    for (key, seq) in &log {
        if let Some(prev) = last.insert(key.clone(), *seq) {
            assert!(
                *seq == prev + 1,
                "key {key}: seq {seq} handled after {prev}; log: {log:?}"
            );
        } else {
            assert_eq!(*seq, 0, "key {key} started at {seq}");
        }
    }
    let max = recorder.max_active.load(Ordering::SeqCst);
    assert!(
        max > 1,
        "different keys should run concurrently, max active was {max}"
    );
    assert!(max <= 16, "max_in_flight is 16, max active was {max}");
}

/// Sleeps a pseudo-random 1-12 ms so that concurrent messages finish out of
/// order, recording what it saw in a recorder the test holds too.
#[on(event = "step")]
async fn slow_step_shared(s: Step, rec: State<std::sync::Arc<Recorder>>) {
    rec.enter();
    let ms = 1 + (s.seq * 7 + s.key.len() as u32 * 13) % 12;
    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
    rec.leave(&s);
}

/// Runs an app of `slow_step_shared` on `topic` until the recorder has seen
/// `want` messages, then stops it gracefully.
async fn run_shared(
    topic: &str,
    group: &str,
    ordering: Order,
    max_in_flight: usize,
    recorder: std::sync::Arc<Recorder>,
    want: usize,
) -> spine::StatsSnapshot {
    let mut cfg = config(group);
    cfg.app.topics = vec![topic.to_owned()];
    cfg.dispatch.ordering = ordering;
    cfg.dispatch.max_in_flight = max_in_flight;
    let app = Spine::builder()
        .config(cfg)
        .state(recorder.clone())
        .handlers(spine::handlers![slow_step_shared])
        .build()
        .unwrap();
    let stop = app.shutdown_handle();
    let stats = app.stats();
    let task = tokio::spawn(app.run_until(std::future::pending()));
    eventually(Duration::from_secs(60), "all steps handled", || {
        recorder.handled() >= want
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    stats.snapshot()
}

#[tokio::test]
async fn partition_ordering_runs_one_message_at_a_time_per_partition() {
    let topic = unique("part");
    create_topics(&[&topic], 1).await;
    let run = unique("run");
    produce_steps(&topic, &run, 4, 10).await;
    let recorder = std::sync::Arc::new(Recorder::default());
    run_shared(
        &topic,
        &unique("part"),
        Order::Partition,
        32,
        recorder.clone(),
        40,
    )
    .await;
    assert_eq!(recorder.max_active.load(Ordering::SeqCst), 1);
    let log = recorder.log.lock().unwrap();
    let order: Vec<_> = log.iter().map(|(k, s)| format!("{k}/{s}")).collect();
    let mut expected = Vec::new();
    for seq in 0..10 {
        for k in 0..4 {
            expected.push(format!("key-{k}/{seq}"));
        }
    }
    assert_eq!(
        order, expected,
        "one partition, partition ordering: exactly the produced order"
    );
}

#[tokio::test]
async fn backpressure_bounds_work_in_flight() {
    let topic = unique("bp");
    create_topics(&[&topic], 2).await;
    let run = unique("run");
    produce_steps(&topic, &run, 20, 3).await;
    let recorder = std::sync::Arc::new(Recorder::default());
    let stats = run_shared(
        &topic,
        &unique("bp"),
        Order::Unordered,
        4,
        recorder.clone(),
        60,
    )
    .await;
    let max = recorder.max_active.load(Ordering::SeqCst);
    assert!(
        max <= 4,
        "max_in_flight is 4, but {max} handlers ran at once"
    );
    assert!(
        max >= 2,
        "ordering none should run several at once, max was {max}"
    );
    assert!(
        stats.backpressure_pauses >= 1,
        "fetching never paused: {stats:?}"
    );
    assert_eq!(recorder.handled(), 60);
}

#[derive(Default)]
struct Flaky {
    attempts: Mutex<BTreeMap<u32, u32>>,
}

/// Fails the first two attempts of every message.
#[on(event = "flaky")]
async fn flaky(s: Step, f: State<std::sync::Arc<Flaky>>, ctx: Context) -> Result<(), HandlerError> {
    let n = {
        let mut a = f.attempts.lock().unwrap();
        let n = a.entry(s.seq).or_default();
        *n += 1;
        *n
    };
    if n < 3 {
        return Err(HandlerError::msg(format!("attempt {n} fails")));
    }
    // Emitted events are delivered before the offset commits.
    ctx.emit(
        "flaky.out",
        "flaky.done",
        &serde_json::json!({ "run": s.run, "seq": s.seq }),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn transient_failures_are_retried_and_emitted_events_delivered() {
    let topic = unique("flaky");
    create_topics(&[&topic, "flaky.out"], 1).await;
    let run = unique("run");
    let group = unique("flaky");
    let p = producer();
    for seq in 0..5 {
        let step = serde_json::json!({ "run": run, "key": "k", "seq": seq });
        produce_event(&p, &topic, "flaky", Some("k"), &step).await;
    }
    let flaky_state = std::sync::Arc::new(Flaky::default());
    let mut cfg = config(&group);
    cfg.app.topics = vec![topic.clone()];
    let app = Spine::builder()
        .config(cfg)
        .state(flaky_state.clone())
        .handlers(spine::handlers![flaky])
        .build()
        .unwrap();
    let stats = app.stats();
    let stop = app.shutdown_handle();
    let task = tokio::spawn(app.run_until(std::future::pending()));
    eventually(Duration::from_secs(30), "committed to the end", || {
        committed(&group, &topic, 1).get(&0) == Some(&5)
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    let s = stats.snapshot();
    assert_eq!((s.handled, s.retried, s.dead_lettered), (5, 10, 0), "{s:?}");
    let done: BTreeSet<u64> = read_topic("flaky.out", usize::MAX, Duration::from_secs(3))
        .iter()
        .map(json)
        .filter(|v| v["run"] == run.as_str())
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(done, (0..5).collect());
    let emitted = read_topic("flaky.out", usize::MAX, Duration::from_secs(1));
    let one = emitted
        .iter()
        .find(|m| json(m)["run"] == run.as_str())
        .unwrap();
    assert_eq!(header(one, "ce_type").as_deref(), Some("flaky.done"));
    assert!(header(one, "ce_causationid").is_some());
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_work_and_commits_exactly_what_was_handled() {
    let topic = unique("shutdown");
    create_topics(&[&topic], 1).await;
    let run = unique("run");
    produce_steps(&topic, &run, 200, 1).await;
    let group = unique("shutdown");

    // First run: stop after a few messages, while others are in flight.
    let first = std::sync::Arc::new(Recorder::default());
    run_shared(&topic, &group, Order::Unordered, 8, first.clone(), 5).await;
    assert_eq!(
        first.active.load(Ordering::SeqCst),
        0,
        "shutdown waited for in-flight handlers"
    );

    let handled: BTreeSet<u32> = first
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k[4..].parse().unwrap())
        .collect();
    let committed_at = committed(&group, &topic, 1)[&0];
    assert_eq!(
        committed_at as usize,
        handled.len(),
        "the committed offset is exactly the number handled (one per key, one partition)"
    );
    assert_eq!(
        handled,
        (0..committed_at as u32).collect(),
        "a contiguous prefix was handled"
    );
    assert!(committed_at < 200, "the test should stop part-way");

    // Second run, same group: picks up where the first stopped, no re-handling.
    let second = std::sync::Arc::new(Recorder::default());
    let remaining = 200 - committed_at as usize;
    run_shared(
        &topic,
        &group,
        Order::Unordered,
        8,
        second.clone(),
        remaining,
    )
    .await;
    let again: BTreeSet<u32> = second
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k[4..].parse().unwrap())
        .collect();
    assert!(
        handled.is_disjoint(&again),
        "nothing handled twice after a graceful shutdown"
    );
    assert_eq!(handled.len() + again.len(), 200);
}
