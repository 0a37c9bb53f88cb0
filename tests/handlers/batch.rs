//! Batch handlers through `TestApp::send_batch`: a batch arrives whole and in
//! order with one `Meta` per payload, is retried as a unit, and when its
//! retries are exhausted every message is dead-lettered with the batch's
//! error; a message that does not decode fails alone; a single `send` is a
//! batch of one; a batch's replies are published. Misuse the macro cannot
//! see is refused at build.

use std::sync::{Arc, Mutex};

use serde_json::json;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;
use spine::testing::{TestApp, TestMessage};
use spine::Config;

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    order_id: String,
}

/// Every call's order ids and offsets, and how many calls to fail.
#[derive(Default)]
struct Calls {
    seen: Mutex<Vec<Vec<(String, i64)>>>,
    fail_first: usize,
}

#[on(topic = "orders", batch(max = 100, linger = "5ms"))]
async fn save(
    orders: Vec<Order>,
    metas: Vec<Meta>,
    calls: State<Calls>,
) -> Result<Vec<Reply>, HandlerError> {
    assert_eq!(orders.len(), metas.len(), "one Meta per payload");
    let call: Vec<(String, i64)> = orders
        .iter()
        .zip(&metas)
        .map(|(o, m)| (o.order_id.clone(), m.offset))
        .collect();
    let n = {
        let mut seen = calls.seen.lock().unwrap();
        seen.push(call);
        seen.len()
    };
    if n <= calls.fail_first || orders.iter().any(|o| o.order_id == "poison") {
        return Err(HandlerError::msg(format!("database said no (call {n})")));
    }
    Ok(vec![Reply::to(
        "orders.saved",
        "orders.saved",
        json!({ "count": orders.len() }),
    )])
}

fn app(fail_first: usize) -> (TestApp, Arc<Calls>) {
    let config =
        Config::from_toml("[retry]\nattempts = 3\nbackoff = \"1ms\"\nmax_backoff = \"1ms\"")
            .unwrap();
    let calls = Arc::new(Calls {
        fail_first,
        ..Calls::default()
    });
    let app = TestApp::new(
        Spine::builder()
            .config(config)
            .state_arc(calls.clone())
            .handlers(spine::handlers![save]),
    )
    .unwrap();
    (app, calls)
}

fn order(id: &str) -> TestMessage {
    TestMessage::json("orders", "order.placed", &json!({ "order_id": id })).key(id.to_owned())
}

fn ids(call: &[(String, i64)]) -> Vec<&str> {
    call.iter().map(|(id, _)| id.as_str()).collect()
}

fn seen(calls: &Calls) -> Vec<Vec<(String, i64)>> {
    calls.seen.lock().unwrap().clone()
}

#[tokio::test]
async fn a_batch_arrives_whole_and_in_order_with_its_metas() {
    let (app, calls) = app(0);
    let out = app
        .send_batch(["a", "b", "c", "d"].map(order).to_vec())
        .await;
    let calls = seen(&calls);
    assert_eq!(calls.len(), 1, "one call for the batch");
    assert_eq!(ids(&calls[0]), ["a", "b", "c", "d"]);
    let offsets: Vec<i64> = calls[0].iter().map(|c| c.1).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(out.dead_letters.is_empty());
    assert_eq!(out.replies.len(), 1, "the batch's reply");
    assert_eq!(
        out.replies[0].json::<serde_json::Value>().unwrap()["count"],
        4
    );
    assert_eq!(app.stats().handled, 4);
}

#[tokio::test]
async fn a_failed_batch_is_retried_as_a_unit() {
    let (app, calls) = app(1);
    let out = app.send_batch(["a", "b", "c"].map(order).to_vec()).await;
    let calls = seen(&calls);
    assert_eq!(calls.len(), 2, "the first call failed, the second took");
    assert_eq!(calls[0], calls[1], "the same batch, the same offsets");
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    let s = app.stats();
    assert_eq!((s.handled, s.retried, s.dead_lettered), (3, 1, 0), "{s:?}");
}

#[tokio::test]
async fn an_exhausted_batch_dead_letters_each_message_with_its_error() {
    let (app, calls) = app(0);
    let out = app
        .send_batch(["a", "poison", "c"].map(order).to_vec())
        .await;
    assert_eq!(seen(&calls).len(), 3, "[retry] attempts = 3");
    let mut dead: Vec<String> = out
        .dead_letters
        .iter()
        .map(|d| {
            assert_eq!(d.header(dlq::ATTEMPTS), Some("3"));
            assert_eq!(d.header(dlq::HANDLER), Some("save"));
            assert_eq!(d.header(dlq::ERROR_KIND), Some("handler"));
            assert_eq!(
                d.header(dlq::ERROR_MESSAGE),
                Some("database said no (call 3)")
            );
            d.json::<serde_json::Value>().unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    dead.sort();
    assert_eq!(dead, ["a", "c", "poison"], "every message of the batch");
    assert!(out.replies.is_empty());
    assert_eq!(app.stats().dead_lettered, 3);
}

#[tokio::test]
async fn a_message_that_does_not_decode_fails_alone() {
    let (app, calls) = app(0);
    let mut batch = vec![order("a"), order("b"), order("c")];
    batch[1] = TestMessage::raw("orders", "{not json").key("b");
    let out = app.send_batch(batch).await;
    let calls = seen(&calls);
    assert_eq!(calls.len(), 1);
    assert_eq!(ids(&calls[0]), ["a", "c"], "the others ran, in order");
    assert_eq!(out.dead_letters.len(), 1);
    let d = &out.dead_letters[0];
    assert_eq!(d.key.as_deref(), Some(&b"b"[..]));
    assert_eq!(d.header(dlq::ERROR_KIND), Some("decode"));
    assert_eq!(out.replies.len(), 1);
    let s = app.stats();
    assert_eq!((s.handled, s.dead_lettered), (2, 1), "{s:?}");
}

#[tokio::test]
async fn one_message_sent_alone_is_a_batch_of_one() {
    let (app, calls) = app(0);
    let out = app
        .send("orders", "order.placed", &json!({ "order_id": "solo" }))
        .await;
    assert_eq!(ids(&seen(&calls)[0]), ["solo"]);
    assert_eq!(out.replies.len(), 1);
}

#[on(event = "order.cancelled")]
async fn cancel(_order: Order) {}

#[tokio::test]
async fn a_batch_handler_owns_its_topic() {
    let err = TestApp::new(
        Spine::builder()
            .state(Calls::default())
            .handlers(spine::handlers![save, cancel]),
    )
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("save") && text.contains("cancel") && text.contains("every event"),
        "{text}"
    );
}

#[tokio::test]
async fn batches_cannot_park_yet() {
    let config = Config::from_toml("[topics.orders]\non_exhausted = \"park\"").unwrap();
    let err = TestApp::new(
        Spine::builder()
            .config(config)
            .state(Calls::default())
            .handlers(spine::handlers![save]),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("cannot park"), "{err}");
}
