//! End-to-end: routing, replies, dead-lettering and commits on a real broker
//! (nisshi, started by `scripts/test`).
//!
//! Every message carries this run's id and assertions only look at records
//! with it, so the tests also pass against a long-lived development broker.

use std::time::Duration;

use crate::support::*;
use spine::headers::{self, dead_letter as dlq};
use spine::prelude::*;

#[derive(Debug, Deserialize, Serialize)]
struct Probe {
    run: String,
    id: u32,
}

fn routed(handler: &str, p: &Probe) -> Reply {
    Reply::to(
        "routing.out",
        "routed",
        serde_json::json!({ "run": p.run, "id": p.id, "handler": handler }),
    )
}

#[on(event = "placed", topic = "routing.a")]
async fn a_placed(p: Probe) -> Reply {
    routed("a_placed", &p)
}

#[on(event = "placed")]
async fn any_placed(p: Probe) -> Reply {
    routed("any_placed", &p)
}

#[on(topic = "routing.a")]
async fn a_any(p: Probe) -> Reply {
    routed("a_any", &p)
}

#[on(topic = "routing.b")]
async fn b_any(p: Probe) -> Reply {
    routed("b_any", &p)
}

#[tokio::test]
async fn routes_by_topic_and_event_with_precedence() {
    create_topics(&["routing.a", "routing.b", "routing.out"], 2).await;
    let run = unique("run");
    let (_, stop, task) = run_app(
        Spine::builder()
            .config(config(&unique("routing")))
            .handlers(spine::handlers![a_placed, any_placed, a_any, b_any]),
    );

    let p = producer();
    let cases = [
        ("routing.a", "placed", "a_placed"), // (topic, event) beats (*, event)
        ("routing.a", "other", "a_any"),     // (topic, *) catches the rest
        ("routing.b", "placed", "any_placed"), // (*, event) beats (topic, *)
        ("routing.b", "other", "b_any"),
    ];
    for (id, (topic, event, _)) in cases.iter().enumerate() {
        let probe = serde_json::json!({ "run": run, "id": id });
        produce_event(&p, topic, event, Some("k"), &probe).await;
    }

    let mut got = std::collections::BTreeMap::new();
    eventually(Duration::from_secs(30), "four routed replies", || {
        for m in drain_topic("routing.out", Duration::from_millis(300)) {
            let v = json(&m);
            if v["run"] == run.as_str() {
                got.insert(
                    v["id"].as_u64().unwrap() as usize,
                    v["handler"].as_str().unwrap().to_owned(),
                );
            }
        }
        got.len() == cases.len()
    })
    .await;
    for (id, (topic, event, handler)) in cases.iter().enumerate() {
        assert_eq!(
            got[&id], *handler,
            "{topic}/{event} went to the wrong handler"
        );
    }
    stop.trigger();
    task.await.unwrap().unwrap();
}

#[derive(Debug, Deserialize)]
struct Order {
    run: String,
    order_id: String,
    amount_cents: i64,
}

#[on(event = "order.placed", topic = "poison.in")]
async fn take_order(order: Order, meta: Meta) -> Result<Reply, HandlerError> {
    if order.amount_cents < 0 {
        return Err(HandlerError::msg(format!(
            "negative amount in {}",
            order.order_id
        )));
    }
    Ok(Reply::to(
        "poison.out",
        "order.accepted",
        serde_json::json!({ "run": order.run, "order_id": order.order_id, "offset": meta.offset }),
    ))
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_topic_and_later_offsets_commit() {
    create_topics(&["poison.in", "poison.out", "poison.in.dlq"], 1).await;
    let run = unique("run");
    let group = unique("poison");
    let start = end_offsets("poison.in")[&0];
    start_group_at_end(&group, "poison.in");
    let p = producer();
    let order = |id: &str, amount: i64| {
        serde_json::to_vec(&serde_json::json!({"run": run, "order_id": id, "amount_cents": amount}))
            .unwrap()
    };
    let ce = [("ce_type", "order.placed"), ("ce_id", "evt-1")];
    produce(&p, "poison.in", Some("a"), &order("good-1", 100), &ce).await;
    produce(&p, "poison.in", Some("a"), b"{not json", &ce).await;
    produce(
        &p,
        "poison.in",
        Some("a"),
        br#"{"run":"x","order_id":"o","amount_cents":"ten"}"#,
        &ce,
    )
    .await;
    produce(&p, "poison.in", Some("a"), &order("negative", -5), &ce).await;
    produce(&p, "poison.in", Some("a"), &order("good-2", 200), &ce).await;
    let end = start + 5;

    let mut cfg = config(&group);
    cfg.dispatch.max_in_flight = 8;
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![take_order]),
    );
    eventually(Duration::from_secs(30), "all five finished", || {
        let s = stats.snapshot();
        s.handled + s.dead_lettered >= 5
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "offsets committed to the end",
        || committed(&group, "poison.in", 1).get(&0) == Some(&end),
    )
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let s = stats.snapshot();
    assert_eq!((s.handled, s.dead_lettered), (2, 3), "{s:?}");
    assert_eq!(
        s.retried, 2,
        "only the handler error is retried (3 attempts)"
    );

    let dead: Vec<_> = read_topic("poison.in.dlq", usize::MAX, Duration::from_secs(3))
        .into_iter()
        .filter(|m| {
            header(m, dlq::OFFSET)
                .and_then(|o| o.parse::<i64>().ok())
                .is_some_and(|o| o >= start)
        })
        .collect();
    assert_eq!(dead.len(), 3, "three dead letters for this run");
    let by_offset = |o: i64| {
        dead.iter()
            .find(|m| header(m, dlq::OFFSET) == Some(o.to_string()))
            .unwrap_or_else(|| panic!("no dead letter for offset {o}"))
    };
    let malformed = by_offset(start + 1);
    assert_eq!(header(malformed, dlq::TOPIC).as_deref(), Some("poison.in"));
    assert_eq!(header(malformed, dlq::PARTITION).as_deref(), Some("0"));
    assert_eq!(
        header(malformed, dlq::ERROR_KIND).as_deref(),
        Some("decode")
    );
    assert_eq!(header(malformed, dlq::ATTEMPTS).as_deref(), Some("1"));
    assert_eq!(
        header(malformed, dlq::HANDLER).as_deref(),
        Some("take_order")
    );
    assert_eq!(
        header(malformed, dlq::EVENT).as_deref(),
        Some("order.placed")
    );
    assert_eq!(
        header(malformed, headers::CE_ID).as_deref(),
        Some("evt-1"),
        "original headers kept"
    );
    assert_eq!(
        malformed.payload(),
        Some(&b"{not json"[..]),
        "original payload kept"
    );
    use rdkafka::Message;
    assert_eq!(malformed.key(), Some(&b"a"[..]));
    let wrong_type = by_offset(start + 2);
    assert_eq!(
        header(wrong_type, dlq::ERROR_KIND).as_deref(),
        Some("decode")
    );
    let msg = header(wrong_type, dlq::ERROR_MESSAGE).unwrap();
    assert!(
        msg.contains("Order") && msg.contains("amount_cents"),
        "{msg}"
    );
    let failing = by_offset(start + 3);
    assert_eq!(header(failing, dlq::ERROR_KIND).as_deref(), Some("handler"));
    assert_eq!(header(failing, dlq::ATTEMPTS).as_deref(), Some("3"));
    assert_eq!(
        header(failing, dlq::ERROR_MESSAGE).as_deref(),
        Some("negative amount in negative")
    );

    let replies: Vec<_> = read_topic("poison.out", usize::MAX, Duration::from_secs(3))
        .iter()
        .map(json)
        .filter(|v| v["run"] == run.as_str())
        .collect();
    let ids: Vec<_> = replies
        .iter()
        .map(|v| v["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["good-1", "good-2"]);
    assert_eq!(replies[1]["offset"], start + 4);
}

#[on(event = "ping", topic = "replies.in")]
async fn pong(p: Probe) -> Reply {
    Reply::to(
        "replies.out",
        "pong",
        serde_json::json!({ "run": p.run, "id": p.id }),
    )
}

#[tokio::test]
async fn replies_carry_the_conversation_headers() {
    create_topics(&["replies.in", "replies.out"], 1).await;
    let run = unique("run");
    let (_, stop, task) = run_app(
        Spine::builder()
            .config(config(&unique("replies")))
            .handlers(spine::handlers![pong]),
    );
    let body = serde_json::to_vec(&serde_json::json!({"run": run, "id": 7})).unwrap();
    produce(
        &producer(),
        "replies.in",
        Some("key-7"),
        &body,
        &[
            ("ce_type", "ping"),
            ("ce_id", "in-123"),
            ("ce_correlationid", "conv-9"),
        ],
    )
    .await;

    let mut reply = None;
    eventually(Duration::from_secs(30), "the pong reply", || {
        reply = drain_topic("replies.out", Duration::from_millis(300))
            .into_iter()
            .find(|m| json(m)["run"] == run.as_str());
        reply.is_some()
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let reply = reply.unwrap();
    use rdkafka::Message;
    assert_eq!(
        reply.key(),
        Some(&b"key-7"[..]),
        "replies keep the incoming key"
    );
    assert_eq!(header(&reply, headers::CE_TYPE).as_deref(), Some("pong"));
    assert_eq!(
        header(&reply, headers::CE_SOURCE).as_deref(),
        Some("spine-test")
    );
    assert_eq!(
        header(&reply, headers::CE_SPECVERSION).as_deref(),
        Some("1.0")
    );
    assert_eq!(
        header(&reply, headers::CE_CORRELATION_ID).as_deref(),
        Some("conv-9")
    );
    assert_eq!(
        header(&reply, headers::CE_CAUSATION_ID).as_deref(),
        Some("in-123")
    );
    let id = header(&reply, headers::CE_ID).unwrap();
    assert_ne!(id, "in-123");
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "ce_id is a fresh UUID: {id}"
    );

    // An independent client (Python's confluent-kafka) sees the same headers.
    let seen = read_with_python(&bootstrap(), "replies.out", &run);
    assert_eq!(seen["key"], "key-7");
    assert_eq!(seen["headers"]["ce_type"], "pong");
    assert_eq!(seen["headers"]["ce_correlationid"], "conv-9");
    assert_eq!(seen["headers"]["ce_causationid"], "in-123");
    assert_eq!(seen["headers"]["ce_id"], id.as_str());
    assert_eq!(seen["value"]["id"], 7);
}

/// On every subscribed topic, so that each test run has a topic of its own.
#[on(event = "known")]
async fn known_only(_p: serde_json::Value) {}

#[tokio::test]
async fn unknown_events_are_skipped_or_dead_lettered_and_always_committed() {
    // Topics of this run only, so that the counts are exact.
    let topic = unique("unknown.dlq");
    let dlq_topic = format!("{topic}.dlq");
    create_topics(&[&topic, &dlq_topic], 1).await;
    let group = unique("unknown");
    let run = unique("run");
    let mut cfg = config(&group);
    cfg.app.topics = vec![topic.clone()];
    cfg.topics.insert(
        topic.clone(),
        spine::config::TopicConfig {
            unknown_event: Some(spine::config::UnknownEvent::DeadLetter),
            ..Default::default()
        },
    );
    let p = producer();
    let body = serde_json::json!({ "run": run });
    produce_event(&p, &topic, "mystery", None, &body).await;
    produce_event(&p, &topic, "known", None, &body).await;
    let end = end_offsets(&topic)[&0];

    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![known_only]),
    );
    eventually(Duration::from_secs(30), "committed to the end", || {
        committed(&group, &topic, 1).get(&0) == Some(&end)
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    let s = stats.snapshot();
    assert_eq!((s.handled, s.dead_lettered), (1, 1), "{s:?}");
    let dead = read_topic(&dlq_topic, 1, Duration::from_secs(10));
    let ours: Vec<_> = dead
        .iter()
        .filter(|m| json(m)["run"] == run.as_str())
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(
        header(ours[0], dlq::ERROR_KIND).as_deref(),
        Some("unknown_event")
    );
    assert_eq!(header(ours[0], dlq::EVENT).as_deref(), Some("mystery"));
}

#[on(event = "skip.known")]
async fn skip_known(_p: serde_json::Value) {}

#[tokio::test]
async fn skipped_unknown_events_still_advance_the_committed_offset() {
    let topic = unique("skip.in");
    create_topics(&[&topic], 1).await;
    let group = unique("skip");
    let mut cfg = config(&group);
    cfg.app.topics = vec![topic.clone()];
    let p = producer();
    for i in 0..5 {
        produce_event(
            &p,
            &topic,
            &format!("nobody.handles.{i}"),
            None,
            &serde_json::json!({}),
        )
        .await;
    }
    produce(&p, &topic, None, b"{}", &[]).await; // no event name at all
    let end = end_offsets(&topic)[&0];
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![skip_known]),
    );
    eventually(Duration::from_secs(30), "committed to the end", || {
        committed(&group, &topic, 1).get(&0) == Some(&end)
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    let s = stats.snapshot();
    assert_eq!((s.skipped, s.dead_lettered, s.handled), (6, 0, 0), "{s:?}");
}
