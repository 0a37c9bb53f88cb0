//! End-to-end: a handler that panics on one message among 1,000, and a
//! pipeline step that panics on one of 100. Each panic dead-letters its own
//! message (kind `panic`, with the panic's message), every other message is
//! handled, offsets commit to the end, and the app keeps running.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::Message;

use crate::support::*;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    order_id: String,
}

#[on(event = "order.placed")]
async fn flaky(order: Order) -> Reply {
    if order.order_id.ends_with("-0371") {
        panic!("handler bug on {}", order.order_id);
    }
    Reply::to(
        "panic.out",
        "order.accepted",
        serde_json::json!({ "order_id": order.order_id }),
    )
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Text {
    pub id: String,
}

#[pipeline(event = "text")]
mod relay {
    use super::*;

    pub async fn check(t: Text) -> Text {
        tokio::task::yield_now().await;
        if t.id.ends_with("-0042") {
            panic!("step bug on {}", t.id);
        }
        t
    }

    pub fn answer(t: Text) -> Reply {
        Reply::to(
            "panic.out",
            "text.relayed",
            serde_json::json!({ "order_id": t.id }),
        )
    }
}

/// Produces `ids` as events `event` on `topic`, keyed by id; returns the
/// offset after the last record of each partition.
async fn produce_all(topic: &str, event: &str, ids: &[String]) -> HashMap<i32, i64> {
    let records = ids.iter().map(|id| {
        let body = serde_json::to_vec(&serde_json::json!({ "order_id": id, "id": id })).unwrap();
        (id.clone(), body)
    });
    let mut ends = HashMap::new();
    for (partition, offset) in produce_keyed(topic, event, records).await {
        let end = ends.entry(partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_own_message_and_the_app_keeps_running() {
    let (orders, texts, out) = (unique("panic.orders"), unique("panic.texts"), "panic.out");
    create_topics(&[&orders, &texts, out], 3).await;
    create_topics(&[&format!("{orders}.dlq"), &format!("{texts}.dlq")], 1).await;
    let run = unique("run");
    let group = unique("panic");
    let mut cfg = config(&group);
    cfg.app.topics = vec![orders.clone(), texts.clone()];
    let (_, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![flaky, relay]),
    );

    let order_ids: Vec<String> = (0..1000).map(|i| format!("{run}-o-{i:04}")).collect();
    let text_ids: Vec<String> = (0..100).map(|i| format!("{run}-t-{i:04}")).collect();
    let order_ends = produce_all(&orders, "order.placed", &order_ids).await;
    let text_ends = produce_all(&texts, "text", &text_ids).await;

    // Every other message is handled: its reply arrives, by id.
    let poison = [format!("{run}-o-0371"), format!("{run}-t-0042")];
    let want: BTreeSet<String> = order_ids
        .iter()
        .chain(&text_ids)
        .filter(|id| !poison.contains(id))
        .cloned()
        .collect();
    let mut answered = BTreeSet::new();
    eventually(Duration::from_secs(60), "1,098 replies", || {
        for m in drain_topic(out, Duration::from_millis(200)) {
            if let Some(id) = json(&m)["order_id"].as_str() {
                if id.starts_with(&run) {
                    answered.insert(id.to_owned());
                }
            }
        }
        answered.len() >= want.len()
    })
    .await;
    assert_eq!(answered, want);

    // One dead letter per panic, with its kind and message.
    for (topic, id, message, step) in [
        (
            &orders,
            &poison[0],
            format!("panicked: handler bug on {}", poison[0]),
            None,
        ),
        (
            &texts,
            &poison[1],
            format!("step `check` failed: panicked: step bug on {}", poison[1]),
            Some("check"),
        ),
    ] {
        let dead = read_topic(&format!("{topic}.dlq"), 1, Duration::from_secs(20));
        assert_eq!(dead.len(), 1, "one dead letter on {topic}.dlq");
        let d = &dead[0];
        assert_eq!(d.key(), Some(id.as_bytes()));
        assert_eq!(header(d, dlq::ERROR_KIND).as_deref(), Some("panic"));
        assert_eq!(header(d, dlq::ERROR_MESSAGE), Some(message));
        assert_eq!(header(d, dlq::ATTEMPTS).as_deref(), Some("1"));
        assert_eq!(header(d, dlq::STEP).as_deref(), step);
    }

    // Offsets commit to the end of every partition.
    for (topic, ends) in [(&orders, &order_ends), (&texts, &text_ends)] {
        eventually(
            Duration::from_secs(20),
            "offsets committed to the end",
            || &committed(&group, topic, 3) == ends,
        )
        .await;
    }

    // Still running: a message produced now is handled too.
    assert!(!task.is_finished(), "the app is still running");
    let late = vec![format!("{run}-o-late")];
    produce_all(&orders, "order.placed", &late).await;
    eventually(Duration::from_secs(20), "the late order's reply", || {
        drain_topic(out, Duration::from_millis(200))
            .iter()
            .any(|m| json(m)["order_id"] == late[0].as_str())
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
}
