//! End-to-end: a reply that can never be published fails its own message
//! (kind `publish`, dead-lettered) instead of pinning the partition; a broker
//! that pauses is waited for, and nothing is dead-lettered. Each test reads
//! what was published with an independent consumer, and the group's
//! committed offsets at the end. Multi-threaded runtimes: the readers block.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::Message;

use crate::support::*;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;

#[derive(Debug, Deserialize, Serialize)]
struct Ask {
    id: String,
    /// Where the reply goes (the test's own out topic, or a bad one).
    to: String,
    /// Bytes of padding in the reply.
    pad: usize,
}

#[on(event = "ask")]
async fn answer(a: Ask) -> Reply {
    Reply::to(
        a.to.clone(),
        "answer",
        serde_json::json!({ "id": a.id, "pad": "x".repeat(a.pad) }),
    )
}

/// Produces asks, keyed by id, to a fresh one-partition topic, one at a
/// time, so that the last lands at offset `asks.len() - 1`.
async fn ask_all(bootstrap: &str, topic: &str, asks: &[(String, String, usize)]) {
    let p = producer_at(bootstrap);
    for (id, to, pad) in asks {
        let body =
            serde_json::to_vec(&serde_json::json!({ "id": id, "to": to, "pad": pad })).unwrap();
        produce(&p, topic, Some(id), &body, &[("ce_type", "ask")]).await;
    }
}

fn ids(msgs: &[rdkafka::message::OwnedMessage]) -> BTreeSet<String> {
    msgs.iter()
        .filter_map(|m| json(m)["id"].as_str().map(str::to_owned))
        .collect()
}

/// Ten asks, one of which gets a reply that can never be published (`to`,
/// `pad`): that one is dead-lettered with kind `publish`, the others'
/// replies arrive, and the offsets commit past it.
async fn one_reply_refused(bad_to: Option<&str>, bad_pad: usize, refused_topic_word: &str) {
    let (input, out) = (unique("publish.in"), unique("publish.out"));
    create_topics(&[&input, &out, &format!("{input}.dlq")], 1).await;
    let group = unique("publish");
    let mut cfg = config(&group);
    cfg.app.topics = vec![input.clone()];
    // An unknown topic is given up after this long (librdkafka's default is 30 s).
    cfg.set_kafka("topic.metadata.propagation.max.ms", "2000")
        .set_kafka("auto.offset.reset", "earliest");
    let run = unique("run");
    let asks: Vec<(String, String, usize)> = (0..10)
        .map(|i| {
            let id = format!("{run}-{i}");
            match i {
                4 => (id, bad_to.unwrap_or(&out).to_owned(), bad_pad),
                _ => (id, out.clone(), 10),
            }
        })
        .collect();
    ask_all(&bootstrap(), &input, &asks).await;
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![answer]),
    );

    let bad = &asks[4].0;
    let dead = read_topic(&format!("{input}.dlq"), 1, Duration::from_secs(60));
    assert_eq!(dead.len(), 1, "one dead letter; {:?}", stats.snapshot());
    let d = &dead[0];
    assert_eq!(d.key(), Some(bad.as_bytes()), "the original message");
    assert_eq!(header(d, dlq::ERROR_KIND).as_deref(), Some("publish"));
    let message = header(d, dlq::ERROR_MESSAGE).unwrap();
    assert!(
        message.contains("refused a reply") && message.contains(refused_topic_word),
        "names the topic and the error: {message}"
    );
    assert_eq!(
        header(d, dlq::PUBLISH_TOPIC).as_deref(),
        Some(bad_to.unwrap_or(&out))
    );

    let want: BTreeSet<String> = asks
        .iter()
        .map(|(id, _, _)| id.clone())
        .filter(|id| id != bad)
        .collect();
    let replies = read_topic(&out, want.len(), Duration::from_secs(30));
    assert_eq!(ids(&replies), want, "every other reply published");
    eventually(Duration::from_secs(20), "offsets committed past it", || {
        committed(&group, &input, 1).get(&0) == Some(&10)
    })
    .await;
    let s = stats.snapshot();
    assert_eq!(
        (s.handled, s.replied, s.dead_lettered, s.publish_failed),
        (9, 9, 1, 1),
        "{s:?}"
    );
    stop.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_the_size_limit_dead_letters_its_message_and_the_rest_commits() {
    // 3 MB, over librdkafka's message.max.bytes of 1,000,000.
    one_reply_refused(None, 3_000_000, "MessageSizeTooLarge").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_an_invalid_topic_dead_letters_its_message_and_the_rest_commits() {
    // The test broker has no ACLs; a name Kafka forbids stands in for a
    // topic the app may not write to.
    one_reply_refused(Some("no such/topic!"), 10, "no such/topic!").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_broker_is_waited_for_and_nothing_is_dead_lettered() {
    let broker = OwnBroker::start();
    let (input, out) = ("pause.in", "pause.out");
    create_topics_at(&broker.bootstrap, &[input, out, "pause.in.dlq"], 1).await;
    let group = unique("pause");
    let mut cfg = config(&group);
    // The 10 s pause outlasts the 6 s session: the member times out and
    // rejoins once the broker is back.
    cfg.set_kafka("bootstrap.servers", &broker.bootstrap)
        .set_kafka("auto.offset.reset", "earliest");
    cfg.app.topics = vec![input.to_owned()];
    let run = unique("run");
    let asks: Vec<(String, String, usize)> = (0..30)
        .map(|i| (format!("{run}-{i}"), out.to_owned(), 10))
        .collect();
    ask_all(&broker.bootstrap, input, &asks[..10]).await;
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![answer]),
    );
    let first = read_topic_at(&broker.bootstrap, out, 10, Duration::from_secs(30));
    assert_eq!(first.len(), 10, "handled before the pause");

    // Twenty more are on their way when the broker stops answering.
    let producer = producer_at(&broker.bootstrap);
    let mut pending = Vec::new();
    for (id, to, pad) in &asks[10..] {
        let body =
            serde_json::to_vec(&serde_json::json!({ "id": id, "to": to, "pad": pad })).unwrap();
        let rec = rdkafka::producer::FutureRecord::to(input)
            .key(id)
            .payload(&body)
            .headers(
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "ce_type",
                    value: Some("ask"),
                }),
            );
        pending.push(producer.send_result(rec).expect("queued"));
    }
    broker.pause();
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.resume();
    for p in pending {
        p.await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("produced after the pause");
    }

    let want: BTreeSet<String> = asks.iter().map(|(id, _, _)| id.clone()).collect();
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 30 replies after 60 s; {:?}",
            seen.len(),
            stats.snapshot()
        );
        let read = read_topic_at(
            &broker.bootstrap,
            out,
            usize::MAX,
            Duration::from_millis(500),
        );
        seen.extend(ids(&read));
    }
    // 30 records at offsets 0..=29.
    let ends = HashMap::from([(0, 30)]);
    eventually(
        Duration::from_secs(30),
        "offsets committed to the end",
        || committed_at(&broker.bootstrap, &group, input, 1) == ends,
    )
    .await;
    assert_eq!(stats.snapshot().dead_lettered, 0);
    let dead = read_topic_at(
        &broker.bootstrap,
        "pause.in.dlq",
        usize::MAX,
        Duration::from_secs(1),
    );
    assert!(dead.is_empty(), "nothing dead-lettered: {}", dead.len());
    stop.trigger();
    task.await.unwrap().unwrap();
}
