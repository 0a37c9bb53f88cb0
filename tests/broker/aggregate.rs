//! End-to-end aggregation on a real broker (nisshi, started by
//! `scripts/test`): orders and payments joined by order id; an aggregate that
//! completes; one that expires to the dead-letter topic with the parts it had;
//! and a crash in the middle, after which a restart completes every aggregate.
//! Held parts must not be committed before their aggregate is done with.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::*;
use serde_json::json;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;
use spine::Aggregate;

#[derive(Debug, Deserialize, Serialize)]
pub struct OrderPlaced {
    order_id: String,
    customer: String,
    amount_cents: i64,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct PaymentReceived {
    order_id: String,
    amount_cents: i64,
}

#[derive(Debug, Deserialize)]
pub struct PaidOrder {
    order: OrderPlaced,
    payment: PaymentReceived,
}

#[on]
async fn settle(p: PaidOrder, t: State<Topics>) -> Reply {
    Reply::to(
        t.paid.clone(),
        "order.paid",
        json!({
            "order_id": p.order.order_id,
            "amount_cents": p.order.amount_cents,
            "paid_cents": p.payment.amount_cents,
        }),
    )
}

/// Each test has its own topics: tests run at once.
#[derive(Clone)]
pub struct Topics {
    orders: String,
    payments: String,
    paid: String,
    dlq: String,
}

impl Topics {
    fn new(test: &str) -> Topics {
        Topics {
            orders: format!("{test}.orders"),
            payments: format!("{test}.payments"),
            paid: format!("{test}.paid"),
            dlq: format!("{test}.paid.dlq"),
        }
    }
}

fn app(t: &Topics, group: &str, timeout: Duration) -> spine::App {
    Spine::builder()
        .config(config(group))
        .state(t.clone())
        .aggregate(
            Aggregate::new("order_paid")
                .part::<OrderPlaced>("order", &t.orders, "order.placed")
                .part::<PaymentReceived>("payment", &t.payments, "payment.received")
                .by_field("order_id")
                .timeout(timeout)
                .dead_letter_topic(&t.dlq)
                .handlers(spine::handlers![settle]),
        )
        .build()
        .expect("app builds")
}

async fn setup(t: &Topics, group: &str) {
    create_topics(&[&t.orders, &t.payments, &t.paid, &t.dlq], 2).await;
    start_group_at_end(group, &t.orders);
    start_group_at_end(group, &t.payments);
}

async fn order(t: &Topics, p: &rdkafka::producer::FutureProducer, id: &str, cents: i64) {
    let body = json!({ "order_id": id, "customer": "c-1", "amount_cents": cents });
    produce_event(p, &t.orders, "order.placed", Some(id), &body).await;
}

async fn payment(t: &Topics, p: &rdkafka::producer::FutureProducer, id: &str, cents: i64) {
    let body = json!({ "order_id": id, "amount_cents": cents });
    produce_event(p, &t.payments, "payment.received", Some(id), &body).await;
}

/// `order.paid` records of this run, by order id.
fn paid(t: &Topics, run: &str) -> BTreeMap<String, serde_json::Value> {
    drain_topic(&t.paid, Duration::from_millis(500))
        .iter()
        .map(json)
        .filter(|v| v["order_id"].as_str().is_some_and(|id| id.starts_with(run)))
        .map(|v| (v["order_id"].as_str().unwrap().to_owned(), v))
        .collect()
}

fn sum(offsets: &HashMap<i32, i64>) -> i64 {
    offsets.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_payments_join_and_commit_only_when_complete() {
    let t = Topics::new("agg1");
    let group = unique("agg-complete");
    setup(&t, &group).await;
    let run = unique("run");
    let app = app(&t, &group, Duration::from_secs(30));
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let task = tokio::spawn(app.run_until(std::future::pending()));

    let p = producer();
    let before = sum(&committed(&group, &t.orders, 2));
    for i in 0..20 {
        order(&t, &p, &format!("{run}-{i}"), 100 + i).await;
    }
    eventually(Duration::from_secs(60), "orders consumed", || {
        stats.snapshot().consumed >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // several commit intervals
    assert_eq!(
        sum(&committed(&group, &t.orders, 2)),
        before,
        "orders held in open aggregates are not committed"
    );
    for i in 0..20 {
        payment(&t, &p, &format!("{run}-{i}"), 100 + i).await;
    }
    eventually(Duration::from_secs(60), "aggregates completed", || {
        stats.snapshot().aggregates_completed >= 20
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let got = paid(&t, &run);
    assert_eq!(got.len(), 20, "{got:?}");
    for (id, v) in &got {
        let i: i64 = id.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(v["amount_cents"], 100 + i);
        assert_eq!(v["paid_cents"], 100 + i);
    }
    for topic in [&t.orders, &t.payments] {
        assert_eq!(
            committed(&group, topic, 2),
            end_offsets(topic),
            "{topic}: everything committed once the aggregates completed"
        );
    }
    assert_eq!(stats.snapshot().aggregates_expired, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_aggregate_expires_to_the_dead_letter_topic() {
    let t = Topics::new("agg2");
    let group = unique("agg-expire");
    setup(&t, &group).await;
    let run = unique("run");
    let app = app(&t, &group, Duration::from_secs(1));
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let task = tokio::spawn(app.run_until(std::future::pending()));

    let p = producer();
    for i in 0..3 {
        order(&t, &p, &format!("{run}-{i}"), 500).await;
    }
    eventually(Duration::from_secs(60), "aggregates expired", || {
        stats.snapshot().aggregates_expired >= 3
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let dead: Vec<_> = drain_topic(&t.dlq, Duration::from_millis(500))
        .into_iter()
        .filter(|m| {
            json(m)["order_id"]
                .as_str()
                .is_some_and(|id| id.starts_with(&run))
        })
        .collect();
    assert_eq!(dead.len(), 3, "one dead letter per held part");
    for m in &dead {
        assert_eq!(
            header(m, dlq::ERROR_CODE).as_deref(),
            Some("aggregate.expired")
        );
        assert_eq!(header(m, dlq::ERROR_KIND).as_deref(), Some("aggregate"));
        assert_eq!(header(m, dlq::TOPIC).as_deref(), Some(t.orders.as_str()));
        assert_eq!(header(m, "spine.aggregate.parts").as_deref(), Some("order"));
        let id = json(m)["order_id"].as_str().unwrap().to_owned();
        assert_eq!(header(m, "spine.aggregate.id"), Some(id));
        let msg = header(m, dlq::ERROR_MESSAGE).unwrap();
        assert!(msg.contains("had [order], missing [payment]"), "{msg}");
    }
    assert!(paid(&t, &run).is_empty(), "nothing completed");
    assert_eq!(
        committed(&group, &t.orders, 2),
        end_offsets(&t.orders),
        "expired parts are committed once dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_aggregation_loses_nothing() {
    let t = Topics::new("agg3");
    let group = unique("agg-crash");
    setup(&t, &group).await;
    let run = unique("run");
    let p = producer();
    for i in 0..10 {
        order(&t, &p, &format!("{run}-{i}"), 700 + i).await;
    }
    // Half the payments arrive before the crash: those aggregates complete.
    for i in 0..5 {
        payment(&t, &p, &format!("{run}-{i}"), 700 + i).await;
    }
    let first = app(&t, &group, Duration::from_secs(60));
    let stats = first.stats();
    let task = tokio::spawn(first.run_until(std::future::pending()));
    eventually(Duration::from_secs(60), "the first half completed", || {
        stats.snapshot().aggregates_completed >= 5
    })
    .await;
    eventually(Duration::from_secs(10), "every part consumed", || {
        stats.snapshot().consumed >= 15
    })
    .await;
    // Crash: no drain, no final commit.
    task.abort();
    let _ = task.await;

    for i in 5..10 {
        payment(&t, &p, &format!("{run}-{i}"), 700 + i).await;
    }
    let second = app(&t, &group, Duration::from_secs(60));
    let (stats, stop) = (second.stats(), second.shutdown_handle());
    let task = tokio::spawn(second.run_until(std::future::pending()));
    eventually(
        Duration::from_secs(90),
        "the rest completed after the restart",
        || stats.snapshot().aggregates_completed >= 5,
    )
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let got = paid(&t, &run);
    let ids: Vec<String> = (0..10).map(|i| format!("{run}-{i}")).collect();
    for id in &ids {
        assert!(got.contains_key(id), "{id} completed; got {:?}", got.keys());
    }
    for (id, v) in &got {
        assert_eq!(v["amount_cents"], v["paid_cents"], "{id}");
    }
    for topic in [&t.orders, &t.payments] {
        assert_eq!(committed(&group, topic, 2), end_offsets(topic), "{topic}");
    }
}
