//! End-to-end: a batch handler on 2 partitions drains a backlog of 2,000
//! orders over 40 keys. Every batch holds messages of one partition in
//! offset order, batches of a partition follow each other, key order holds
//! across batches, no batch is larger than `max_in_flight` (it counts
//! messages), the one batch that holds a poison order is retried as a unit
//! and then every message of it is dead-lettered, every other order is
//! handled exactly once (by id), and offsets commit to the end. Under
//! `ordering = "none"`, a partition's batches overlap.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    order_id: String,
    seq: u32,
}

/// One call: whether it succeeded, and per message (partition, offset, key,
/// seq, id).
type Call = (bool, Vec<(i32, i64, String, u32, String)>);

#[derive(Default)]
struct Calls {
    list: Mutex<Vec<Call>>,
}

#[on(topic = "batch.orders", batch(max = 100, linger = "20ms"))]
async fn save(
    orders: Vec<Order>,
    metas: Vec<Meta>,
    calls: State<Calls>,
) -> Result<(), HandlerError> {
    // A stand-in for a database round trip per batch.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let ok = !orders.iter().any(|o| o.order_id.ends_with("-0777"));
    let call = orders
        .iter()
        .zip(&metas)
        .map(|(o, m)| {
            let key = m.key_str().unwrap_or_default().to_owned();
            (m.partition, m.offset, key, o.seq, o.order_id.clone())
        })
        .collect();
    calls.list.lock().unwrap().push((ok, call));
    if ok {
        Ok(())
    } else {
        Err(HandlerError::msg("the database refused the batch"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keep_partition_and_key_order_and_fail_as_a_unit() {
    let topic = "batch.orders";
    // The handler names its topic, so each run uses a group of its own and
    // starts from the end of the topic.
    create_topics(&[topic], 2).await;
    create_topics(&[&format!("{topic}.dlq")], 1).await;
    let run = unique("run");
    let group = unique("batch");
    start_group_at_end(&group, topic);
    // The backlog first: batches then fill up to what max_in_flight allows.
    let mut seqs: HashMap<String, u32> = HashMap::new();
    let records: Vec<(String, Vec<u8>)> = (0..2000)
        .map(|i| {
            let key = format!("k{}", i % 40);
            let seq = seqs.entry(key.clone()).or_default();
            *seq += 1;
            let id = format!("{run}-{i:04}");
            let body = serde_json::json!({ "order_id": id, "seq": *seq });
            (key, serde_json::to_vec(&body).unwrap())
        })
        .collect();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (p, o) in produce_keyed(topic, "order.placed", records).await {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }

    let calls = Arc::new(Calls::default());
    let mut cfg = config(&group);
    cfg.app.topics = vec![topic.to_owned()];
    cfg.dispatch.max_in_flight = 60;
    let app = Spine::builder()
        .config(cfg)
        .state_arc(calls.clone())
        .handlers(spine::handlers![save]);
    run_to_end(app, &group, topic, &ends).await;

    let calls: Vec<Call> = calls
        .list
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, c)| c.iter().all(|m| m.4.starts_with(&run)))
        .cloned()
        .collect();
    // One partition per batch, in offset order; a partition's batches in order.
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_seq: HashMap<String, u32> = HashMap::new();
    let mut handled: Vec<String> = Vec::new();
    let mut failed: Vec<&Call> = Vec::new();
    for call in &calls {
        let (ok, msgs) = call;
        let p = msgs[0].0;
        assert!(msgs.iter().all(|m| m.0 == p), "a batch holds one partition");
        assert!(msgs.windows(2).all(|w| w[0].1 < w[1].1), "offset order");
        assert!(
            msgs.len() <= 60,
            "max_in_flight = 60 counts messages: {}",
            msgs.len()
        );
        if !ok {
            failed.push(call);
            continue;
        }
        if let Some(prev) = last_offset.get(&p) {
            assert!(
                msgs[0].1 > *prev,
                "partition {p}: a batch after the one before"
            );
        }
        last_offset.insert(p, msgs.last().unwrap().1);
        for (_, _, key, seq, id) in msgs {
            let prev = last_seq.insert(key.clone(), *seq);
            assert!(prev < Some(*seq), "key {key}: seq {seq} after {prev:?}");
            handled.push(id.clone());
        }
    }
    let biggest = calls.iter().map(|c| c.1.len()).max().unwrap();
    eprintln!("{} calls, biggest batch {biggest}", calls.len());
    assert!(
        biggest >= 10,
        "the backlog was batched: biggest batch {biggest}"
    );

    // The poison's batch ran 3 times ([retry] attempts = 3), the same batch
    // each time, and each of its messages went to the dead-letter topic.
    assert_eq!(failed.len(), 3, "three attempts of one batch");
    assert!(failed.iter().all(|c| c.1 == failed[0].1));
    let failed_ids: BTreeSet<String> = failed[0].1.iter().map(|m| m.4.clone()).collect();
    assert!(failed_ids.contains(&format!("{run}-0777")));
    let mut dead_ids: BTreeSet<String> = BTreeSet::new();
    eventually(Duration::from_secs(20), "the batch's dead letters", || {
        for m in drain_topic(&format!("{topic}.dlq"), Duration::from_millis(200)) {
            let id = json(&m)["order_id"].as_str().unwrap_or_default().to_owned();
            if id.starts_with(&run) {
                assert_eq!(header(&m, dlq::ATTEMPTS).as_deref(), Some("3"));
                assert_eq!(header(&m, dlq::HANDLER).as_deref(), Some("save"));
                dead_ids.insert(id);
            }
        }
        dead_ids.len() >= failed_ids.len()
    })
    .await;
    assert_eq!(
        dead_ids, failed_ids,
        "the batch's messages, each dead-lettered"
    );

    // Every other order handled exactly once.
    let all: BTreeSet<String> = (0..2000).map(|i| format!("{run}-{i:04}")).collect();
    let once: BTreeSet<String> = handled.iter().cloned().collect();
    assert_eq!(once.len(), handled.len(), "no order handled twice");
    let expected: BTreeSet<String> = all.difference(&failed_ids).cloned().collect();
    assert_eq!(once, expected);
}

/// One call of `save_slowly`: when it started and ended, and its messages'
/// (partition, offset, id).
type Timed = (Instant, Instant, Vec<(i32, i64, String)>);

#[derive(Default)]
struct TimedCalls {
    list: Mutex<Vec<Timed>>,
}

#[on(topic = "batch.unordered", batch(max = 10, linger = "20ms"))]
async fn save_slowly(orders: Vec<Order>, metas: Vec<Meta>, calls: State<TimedCalls>) {
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let msgs = orders
        .iter()
        .zip(&metas)
        .map(|(o, m)| (m.partition, m.offset, o.order_id.clone()))
        .collect();
    calls
        .list
        .lock()
        .unwrap()
        .push((started, Instant::now(), msgs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ordering_a_partitions_batches_overlap() {
    let topic = "batch.unordered";
    create_topics(&[topic], 1).await;
    let run = unique("run");
    let group = unique("batch-unordered");
    start_group_at_end(&group, topic);
    let records: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            let id = format!("{run}-{i:04}");
            let body = serde_json::json!({ "order_id": id, "seq": i });
            (format!("k{}", i % 7), serde_json::to_vec(&body).unwrap())
        })
        .collect();
    let ends: HashMap<i32, i64> = produce_keyed(topic, "order.placed", records)
        .await
        .into_iter()
        .map(|(p, o)| (p, o + 1))
        .max()
        .into_iter()
        .collect();

    let calls = Arc::new(TimedCalls::default());
    let mut cfg = config(&group);
    cfg.app.topics = vec![topic.to_owned()];
    cfg.dispatch.ordering = spine::config::OrderingPolicy::Unordered;
    cfg.dispatch.max_in_flight = 100;
    let app = Spine::builder()
        .config(cfg)
        .state_arc(calls.clone())
        .handlers(spine::handlers![save_slowly]);
    run_to_end(app, &group, topic, &ends).await;

    let calls: Vec<Timed> = calls
        .list
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, m)| m.iter().all(|m| m.2.starts_with(&run)))
        .cloned()
        .collect();
    let mut handled: Vec<&str> = Vec::new();
    for (_, _, msgs) in &calls {
        assert!(msgs.windows(2).all(|w| w[0].1 < w[1].1), "offset order");
        handled.extend(msgs.iter().map(|m| m.2.as_str()));
    }
    let once: BTreeSet<&str> = handled.iter().copied().collect();
    assert_eq!(once.len(), handled.len(), "no order handled twice");
    let all: Vec<String> = (0..200).map(|i| format!("{run}-{i:04}")).collect();
    assert_eq!(once, all.iter().map(String::as_str).collect());
    // Batches of the one partition ran at the same time: one started
    // before another ended.
    let overlapping = calls
        .iter()
        .enumerate()
        .flat_map(|(i, a)| calls[i + 1..].iter().map(move |b| (a, b)))
        .filter(|(a, b)| a.0 < b.1 && b.0 < a.1)
        .count();
    eprintln!("{} batches, {overlapping} overlapping pairs", calls.len());
    assert!(
        overlapping > 0,
        "a partition's batches overlap under ordering = \"none\""
    );
}

/// Runs the app until the group's committed offsets are `ends` (one entry
/// per partition of `topic`), then stops it.
async fn run_to_end(app: spine::Builder, group: &str, topic: &str, ends: &HashMap<i32, i64>) {
    let (_, stop, task) = run_app(app);
    eventually(
        Duration::from_secs(60),
        "offsets committed to the end",
        || committed(group, topic, ends.len() as i32) == *ends,
    )
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
}
