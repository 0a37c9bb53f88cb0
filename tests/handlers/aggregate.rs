//! Aggregation through the in-process dispatch path: parts joined by id into
//! the handler's typed value, parts that do not decode or carry no id
//! dead-lettered at once, and declaration errors at startup.

use std::time::Duration;

use serde_json::json;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;
use spine::testing::TestApp;
use spine::{Aggregate, Error};

#[derive(Debug, Deserialize, Serialize)]
pub struct OrderPlaced {
    order_id: String,
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
async fn settle(p: PaidOrder, meta: Meta) -> Reply {
    Reply::to(
        "orders.paid",
        "order.paid",
        json!({
            "order_id": p.order.order_id,
            "amount_cents": p.order.amount_cents,
            "paid_cents": p.payment.amount_cents,
            "event": meta.event,
            "key": meta.key_str(),
        }),
    )
}

fn paid() -> Aggregate {
    Aggregate::new("order_paid")
        .part::<OrderPlaced>("order", "orders", "order.placed")
        .part::<PaymentReceived>("payment", "payments", "payment.received")
        .by_field("order_id")
        .timeout(Duration::from_secs(10))
        .dead_letter_topic("orders.paid.dlq")
        .handlers(spine::handlers![settle])
}

#[tokio::test]
async fn parts_from_two_topics_become_one_typed_value() {
    let app = TestApp::new(Spine::builder().aggregate(paid())).unwrap();
    let first = app
        .send(
            "payments",
            "payment.received",
            &json!({"order_id": "o-1", "amount_cents": 1200}),
        )
        .await;
    assert!(
        first.replies.is_empty() && first.dead_letters.is_empty(),
        "waits for the order"
    );
    // Another order's part does not complete o-1.
    let other = app
        .send(
            "orders",
            "order.placed",
            &json!({"order_id": "o-2", "amount_cents": 5}),
        )
        .await;
    assert!(other.replies.is_empty());
    let done = app
        .send(
            "orders",
            "order.placed",
            &json!({"order_id": "o-1", "amount_cents": 1200}),
        )
        .await;
    assert_eq!(done.replies.len(), 1);
    let v: serde_json::Value = done.replies[0].json().unwrap();
    assert_eq!(
        v,
        json!({"order_id": "o-1", "amount_cents": 1200, "paid_cents": 1200, "event": "order_paid", "key": "o-1"})
    );
    assert_eq!(done.replies[0].topic, "orders.paid");
}

#[tokio::test]
async fn a_part_that_does_not_decode_or_has_no_id_is_dead_lettered_at_once() {
    let app = TestApp::new(Spine::builder().aggregate(paid())).unwrap();
    let bad = app
        .send(
            "orders",
            "order.placed",
            &json!({"order_id": "o-3", "amount_cents": "lots"}),
        )
        .await;
    assert_eq!(bad.dead_letters.len(), 1);
    assert_eq!(bad.dead_letters[0].topic, "orders.dlq");
    assert_eq!(bad.dead_letters[0].header(dlq::ERROR_KIND), Some("decode"));

    let no_id = Aggregate::new("by_ref")
        .part::<serde_json::Value>("a", "left", "x")
        .part::<serde_json::Value>("b", "right", "y")
        .by_field("ref")
        .handlers(spine::handlers![settle]);
    let app = TestApp::new(Spine::builder().aggregate(no_id)).unwrap();
    let out = app.send("left", "x", &json!({"other": 1})).await;
    assert_eq!(out.dead_letters.len(), 1);
    let msg = out.dead_letters[0].header(dlq::ERROR_MESSAGE).unwrap();
    assert!(
        msg.contains("has no id: the payload needs field `ref`"),
        "{msg}"
    );
}

#[tokio::test]
async fn declaration_mistakes_fail_at_startup() {
    #[on(topic = "orders")]
    async fn routed(_p: PaidOrder) {}

    let cases: Vec<(Aggregate, &str)> = vec![
        (
            Aggregate::new("one")
                .part::<OrderPlaced>("order", "orders", "order.placed")
                .by_key()
                .handlers(spine::handlers![settle]),
            "at least two parts",
        ),
        (
            Aggregate::new("noid")
                .part::<OrderPlaced>("order", "orders", "order.placed")
                .part::<PaymentReceived>("payment", "payments", "payment.received")
                .handlers(spine::handlers![settle]),
            ".by_field(",
        ),
        (
            Aggregate::new("nohandler")
                .part::<OrderPlaced>("order", "orders", "order.placed")
                .part::<PaymentReceived>("payment", "payments", "payment.received")
                .by_key(),
            "no handler takes the completed aggregates",
        ),
        (
            Aggregate::new("routed")
                .part::<OrderPlaced>("order", "orders", "order.placed")
                .part::<PaymentReceived>("payment", "payments", "payment.received")
                .by_key()
                .handlers(spine::handlers![routed]),
            "without `topic` or `event`",
        ),
    ];
    for (agg, says) in cases {
        let err = match TestApp::new(Spine::builder().aggregate(agg)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected an error saying {says}"),
        };
        assert!(err.contains(says), "{err}");
    }
    // A part's route conflicts with a handler that is not fan-out.
    #[on(event = "order.placed", topic = "orders")]
    async fn accept(_o: OrderPlaced) {}
    match TestApp::new(
        Spine::builder()
            .handlers(spine::handlers![accept])
            .aggregate(paid()),
    ) {
        Err(Error::DuplicateRoute { first, second, .. }) => {
            let names = [&*first, &*second];
            assert!(names.contains(&"accept"));
            assert!(names.contains(&"aggregate order_paid (part order)"));
        }
        Err(other) => panic!("expected a duplicate route, got {other}"),
        Ok(_) => panic!("expected a duplicate route"),
    }
}
