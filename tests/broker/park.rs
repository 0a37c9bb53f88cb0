//! End-to-end: `[retry] on_exhausted = "park"`. A key whose message keeps
//! failing is parked: its later messages wait behind it in order while every
//! other key flows; the committed offset stays below it; when the poison
//! condition is fixed its backlog drains in order, and after `park_timeout`
//! the message is dead-lettered and the backlog drains. Past `max_parked`
//! the partition pauses, and resumes without losing a message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::Message;

use crate::support::*;
use spine::config::{Config, OnExhausted};
use spine::prelude::*;

#[derive(Debug, Deserialize, Serialize)]
struct Step {
    key: String,
    seq: u32,
}

/// The poison condition and what the handler saw.
#[derive(Default)]
struct Poison {
    key: Mutex<String>,
    /// Only this sequence number of the poison key fails (all when `None`).
    only_seq: Mutex<Option<u32>>,
    on: AtomicBool,
    failures: AtomicUsize,
    handled: Mutex<Vec<(String, u32)>>,
}

impl Poison {
    fn new(key: &str, only_seq: Option<u32>) -> Arc<Poison> {
        let p = Poison::default();
        *p.key.lock().unwrap() = key.to_owned();
        *p.only_seq.lock().unwrap() = only_seq;
        p.on.store(true, Ordering::SeqCst);
        Arc::new(p)
    }

    fn handled(&self) -> Vec<(String, u32)> {
        self.handled.lock().unwrap().clone()
    }

    fn handled_keys(&self) -> BTreeSet<String> {
        self.handled().into_iter().map(|(k, _)| k).collect()
    }

    /// Waits until the parked key failed again on the slow schedule.
    async fn retried_slowly(&self) {
        eventually(
            Duration::from_secs(10),
            "slow retries of the parked key",
            || self.failures.load(Ordering::SeqCst) >= 5,
        )
        .await;
    }
}

/// Runs the app of these tests: the `step` handler and the poison state.
fn start(cfg: Config, poison: &Arc<Poison>) -> Running {
    run_app(
        Spine::builder()
            .config(cfg)
            .state(poison.clone())
            .handlers(spine::handlers![step]),
    )
}

#[on(event = "step")]
async fn step(s: Step, poison: State<Arc<Poison>>) -> Result<(), HandlerError> {
    tokio::task::yield_now().await;
    let poisoned = poison.on.load(Ordering::SeqCst)
        && *poison.key.lock().unwrap() == s.key
        && poison.only_seq.lock().unwrap().is_none_or(|q| q == s.seq);
    if poisoned {
        poison.failures.fetch_add(1, Ordering::SeqCst);
        return Err(HandlerError::msg(format!(
            "{} #{} is poison for now",
            s.key, s.seq
        )));
    }
    poison.handled.lock().unwrap().push((s.key, s.seq));
    Ok(())
}

/// Produces `steps` in order, keyed by their key; returns each one's
/// (partition, offset).
async fn produce_steps(topic: &str, steps: &[(String, u32)]) -> Vec<(i32, i64)> {
    let records = steps.iter().map(|(key, seq)| {
        let body = serde_json::to_vec(&serde_json::json!({ "key": key, "seq": seq })).unwrap();
        (key.clone(), body)
    });
    produce_keyed(topic, "step", records).await
}

fn park_config(group: &str, topic: &str) -> Config {
    let mut cfg = config(group);
    cfg.app.topics = vec![topic.to_owned()];
    cfg.retry.attempts = 2;
    cfg.retry.on_exhausted = OnExhausted::Park;
    cfg.retry.park_backoff = Duration::from_millis(50);
    cfg.retry.park_max_backoff = Duration::from_millis(200);
    cfg.retry.park_timeout = Duration::from_secs(600);
    cfg
}

/// Each key's sequence numbers, in the order they were handled.
fn by_key(handled: &[(String, u32)]) -> BTreeMap<String, Vec<u32>> {
    let mut m: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (k, s) in handled {
        m.entry(k.clone()).or_default().push(*s);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_key_parks_while_the_other_999_flow_then_drains_in_order() {
    let topic = unique("park.keys");
    create_topics(&[&topic], 2).await;
    create_topics(&[&format!("{topic}.dlq")], 1).await;
    let group = unique("park");
    let keys: Vec<String> = (0..1000).map(|k| format!("key-{k:04}")).collect();
    let poison_key = "key-0500".to_owned();
    let steps: Vec<(String, u32)> = (0..3)
        .flat_map(|seq| keys.iter().map(move |k| (k.clone(), seq)))
        .collect();
    let at = produce_steps(&topic, &steps).await;
    let first_poison = steps.iter().position(|(k, _)| *k == poison_key).unwrap();
    let (poison_partition, poison_offset) = at[first_poison];
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (p, o) in &at {
        let e = ends.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }

    let poison = Poison::new(&poison_key, None);
    let mut cfg = park_config(&group, &topic);
    // Smaller than the poison key's backlog plus itself: if parked messages
    // counted against it, nothing else could run.
    cfg.dispatch.max_in_flight = 2;
    let (stats, stop, task) = start(cfg, &poison);

    // Every message of the other 999 keys is handled while the key is parked.
    let others: BTreeSet<(String, u32)> = steps
        .iter()
        .filter(|(k, _)| *k != poison_key)
        .cloned()
        .collect();
    eventually(
        Duration::from_secs(60),
        "the other 999 keys handled",
        || {
            let seen: BTreeSet<_> = poison.handled().into_iter().collect();
            others.is_subset(&seen)
        },
    )
    .await;
    // Still parked, retried on the slow schedule, never dead-lettered.
    poison.retried_slowly().await;
    let s = stats.snapshot();
    assert_eq!((s.parks, s.unparks, s.dead_lettered), (1, 0, 0), "{s:?}");
    assert!(!poison.handled_keys().contains(&poison_key));
    // The other partition commits to its end; the poison's stops at it.
    let other_partition = 1 - poison_partition;
    eventually(
        Duration::from_secs(10),
        "commits up to the parked offset",
        || {
            let c = committed(&group, &topic, 2);
            c.get(&other_partition) == ends.get(&other_partition)
                && c.get(&poison_partition) == Some(&poison_offset)
        },
    )
    .await;

    // The poison condition is fixed: the key's backlog drains, in order.
    poison.on.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(30), "the parked key drains", || {
        by_key(&poison.handled()).get(&poison_key).map(Vec::len) == Some(3)
    })
    .await;
    eventually(Duration::from_secs(10), "commits to the end", || {
        committed(&group, &topic, 2) == ends
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let handled = poison.handled();
    let mut ids: Vec<_> = handled.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3000, "every message handled");
    for (key, seqs) in by_key(&handled) {
        assert_eq!(seqs, vec![0, 1, 2], "key {key} out of order");
    }
    let s = stats.snapshot();
    assert_eq!((s.parks, s.unparks, s.dead_lettered), (1, 1, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_park_timeout_the_message_is_dead_lettered_and_its_key_drains() {
    let topic = unique("park.timeout");
    let dlq = format!("{topic}.dlq");
    create_topics(&[&topic, &dlq], 1).await;
    let steps: Vec<(String, u32)> = (0..3)
        .flat_map(|seq| (0..10).map(move |k| (format!("key-{k}"), seq)))
        .collect();
    produce_steps(&topic, &steps).await;

    // Only key-3's first message is poison.
    let poison = Poison::new("key-3", Some(0));
    let mut cfg = park_config(&unique("park"), &topic);
    cfg.retry.park_timeout = Duration::from_millis(400);
    let (stats, stop, task) = start(cfg, &poison);
    let dead = read_topic(&dlq, 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key(), Some(&b"key-3"[..]));
    assert_eq!(json(&dead[0])["seq"], 0);
    eventually(
        Duration::from_secs(30),
        "every other message handled",
        || poison.handled().len() == 29,
    )
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let keys = by_key(&poison.handled());
    assert_eq!(keys["key-3"], vec![1, 2], "the backlog drains in order");
    for (key, seqs) in keys.iter().filter(|(k, _)| *k != "key-3") {
        assert_eq!(seqs, &vec![0, 1, 2], "key {key} out of order");
    }
    let s = stats.snapshot();
    assert_eq!((s.parks, s.unparks, s.dead_lettered), (1, 1, 1), "{s:?}");
    assert!(
        poison.failures.load(Ordering::SeqCst) >= 3,
        "retried while parked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_parked_the_partition_pauses_and_resumes_without_loss() {
    let topic = unique("park.max");
    create_topics(&[&topic], 1).await;
    // p0, k0, p1, k1, ...: the poison key alternates with 40 other keys.
    let steps: Vec<(String, u32)> = (0..40)
        .flat_map(|i| [("poison".to_owned(), i), (format!("key-{i:02}"), 0)])
        .collect();
    produce_steps(&topic, &steps).await;

    let poison = Poison::new("poison", None);
    let mut cfg = park_config(&unique("park"), &topic);
    cfg.retry.max_parked = 5;
    cfg.dispatch.max_in_flight = 4;
    let (stats, stop, task) = start(cfg, &poison);
    // Behind the parked p0, p1..p5 fill max_parked; the keys between them
    // are handled, then the partition pauses at p5.
    let before: BTreeSet<String> = (0..5).map(|i| format!("key-{i:02}")).collect();
    eventually(Duration::from_secs(30), "the keys before the bound", || {
        before.is_subset(&poison.handled_keys())
    })
    .await;
    poison.retried_slowly().await;
    assert_eq!(
        poison.handled_keys(),
        before,
        "nothing after the sixth poison message is taken while paused"
    );
    assert_eq!(stats.snapshot().consumed, 11, "p0..p5 and k0..k4");

    // Unparked: the partition resumes where it paused and nothing is lost.
    poison.on.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(30), "all 80 messages handled", || {
        poison.handled().len() == 80
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    let keys = by_key(&poison.handled());
    assert_eq!(keys["poison"], (0..40).collect::<Vec<_>>());
    assert_eq!(keys.len(), 41);
    let s = stats.snapshot();
    assert_eq!((s.parks, s.unparks, s.dead_lettered), (1, 1, 0), "{s:?}");
}
