//! End-to-end under network faults, through `spine::testing::FaultProxy`: a
//! broker of the test's own advertises the proxy's address, so every
//! connection of the app (and of the test's clients) goes through it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::support::*;
use spine::prelude::*;
use spine::testing::FaultProxy;

#[derive(Debug, Deserialize)]
struct Order {
    order_id: String,
}

#[on(event = "order.placed")]
async fn slow_accept(order: Order) -> Reply {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Reply::to(
        "faults.out",
        "order.accepted",
        serde_json::json!({ "order_id": order.order_id }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_for_10_s_mid_stream_lose_nothing() {
    let port = free_port();
    let proxy = FaultProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        format!("127.0.0.1:{port}").parse().unwrap(),
    )
    .await
    .unwrap();
    let broker = OwnBroker::behind(proxy.addr(), port);
    let input = "faults.in";
    create_topics_at(
        &broker.bootstrap,
        &[input, "faults.out", "faults.in.dlq"],
        3,
    )
    .await;
    let run = unique("run");
    let ids: Vec<String> = (0..3000).map(|i| format!("{run}-{i:04}")).collect();
    let producer = producer_at(&broker.bootstrap);
    let mut acks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let body = serde_json::to_vec(&serde_json::json!({ "order_id": id })).unwrap();
        let key = format!("k{}", i % 20);
        let rec =
            FutureRecord::to(input)
                .key(&key)
                .payload(&body)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "ce_type",
                    value: Some("order.placed"),
                }));
        acks.push(producer.send_result(rec).expect("queued"));
    }
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for a in acks {
        let d = a.await.unwrap().map_err(|(e, _)| e).unwrap();
        let e = ends.entry(d.partition).or_default();
        *e = (*e).max(d.offset + 1);
    }

    let group = unique("faults");
    let mut cfg = config(&group);
    cfg.set_kafka("bootstrap.servers", &broker.bootstrap)
        .set_kafka("auto.offset.reset", "earliest");
    cfg.app.topics = vec![input.to_owned()];
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![slow_accept]),
    );

    // Mid-stream: some handled, most not.
    eventually(Duration::from_secs(60), "the first 300 handled", || {
        stats.snapshot().handled >= 300
    })
    .await;
    let at_cut = stats.snapshot().handled;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!task.is_finished(), "the app keeps running through the cut");
    proxy.restore();
    let restored = Instant::now();

    let want: BTreeSet<String> = ids.iter().cloned().collect();
    let mut answered: BTreeMap<String, u32> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.len() < want.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} answered two minutes after the cut; {:?}",
            answered.len(),
            want.len(),
            stats.snapshot()
        );
        answered.clear();
        for m in read_topic_at(
            &broker.bootstrap,
            "faults.out",
            usize::MAX,
            Duration::from_secs(1),
        ) {
            if let Some(id) = json(&m)["order_id"].as_str() {
                *answered.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    let got: BTreeSet<String> = answered.keys().cloned().collect();
    assert_eq!(got, want, "every order answered");
    let ends: std::collections::HashMap<i32, i64> = ends.into_iter().collect();
    eventually(
        Duration::from_secs(60),
        "offsets committed to the end",
        || committed_at(&broker.bootstrap, &group, input, 3) == ends,
    )
    .await;
    let duplicates: u32 = answered.values().map(|n| n - 1).sum();
    eprintln!(
        "connections cut for 10 s after {at_cut} of 3000 orders: every order answered {:.1} s \
         after the restore; {duplicates} duplicate replies",
        restored.elapsed().as_secs_f64()
    );
    assert_eq!(stats.snapshot().dead_lettered, 0);
    stop.trigger();
    task.await.unwrap().unwrap();
}
