//! The dispatch path without Kafka, through `spine::testing::TestApp`:
//! replies and their headers, emitted events, retries, dead letters, error
//! events, routing rules, startup errors, middleware, request-reply helpers.
//! (What reaches `tracing` is tested in tests/tracing_capture.rs.)

use std::sync::{Arc, Mutex};

use serde_json::json;
use spine::headers::{self, dead_letter as dlq};
use spine::middleware::{MessageInfo, Middleware, Outcome};
use spine::prelude::*;
use spine::testing::{TestApp, TestMessage};
use spine::{Config, Error};

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    id: String,
    amount: i64,
}

#[on(event = "order.placed", topic = "orders")]
async fn accept(o: Order, ctx: Context) -> Result<Reply, HandlerError> {
    if o.amount < 0 {
        return Err(HandlerError::msg("negative amount").fatal());
    }
    if o.amount == 0 {
        return Err(HandlerError::msg("zero amount, maybe later"));
    }
    ctx.emit("audit", "order.seen", &json!({ "id": o.id }))
        .await?;
    Ok(Reply::to(
        "orders.accepted",
        "order.accepted",
        json!({ "id": o.id, "accepted": true }),
    ))
}

fn quick_retries() -> Config {
    Config::from_toml("[retry]\nattempts = 3\nbackoff = \"1ms\"\nmax_backoff = \"2ms\"").unwrap()
}

fn app(builder: spine::Builder) -> TestApp {
    TestApp::new(builder).expect("app builds")
}

#[tokio::test]
async fn replies_and_emitted_events_carry_the_conversation() {
    let app = app(Spine::builder().handlers(spine::handlers![accept]));
    let msg = TestMessage::json("orders", "order.placed", &json!({"id": "o-1", "amount": 5}))
        .key("o-1")
        .header(headers::CE_ID, "in-1")
        .header(headers::CE_CORRELATION_ID, "conv-1");
    let out = app.send_message(msg).await;
    assert_eq!(out.replies.len(), 1);
    let reply = &out.replies[0];
    assert_eq!(reply.topic, "orders.accepted");
    assert_eq!(reply.event(), Some("order.accepted"));
    assert_eq!(reply.key.as_deref(), Some(&b"o-1"[..]));
    assert_eq!(reply.header(headers::CE_SOURCE), Some("spine-app"));
    assert_eq!(reply.header(headers::CE_CORRELATION_ID), Some("conv-1"));
    assert_eq!(reply.header(headers::CE_CAUSATION_ID), Some("in-1"));
    assert_eq!(reply.json::<serde_json::Value>().unwrap()["accepted"], true);

    assert_eq!(out.emitted.len(), 1);
    let seen = &out.emitted[0];
    assert_eq!(
        (seen.topic.as_str(), seen.event()),
        ("audit", Some("order.seen"))
    );
    assert_eq!(seen.header(headers::CE_CAUSATION_ID), Some("in-1"));
    assert!(out.dead_letters.is_empty());
    assert_eq!(app.stats().handled, 1);
}

#[tokio::test]
async fn retryable_errors_are_retried_then_dead_lettered_fatal_ones_at_once() {
    let app = app(Spine::builder()
        .config(quick_retries())
        .handlers(spine::handlers![accept]));

    let out = app
        .send("orders", "order.placed", &json!({"id": "o-0", "amount": 0}))
        .await;
    assert!(out.replies.is_empty());
    let d = &out.dead_letters[0];
    assert_eq!(d.topic, "orders.dlq");
    assert_eq!(d.header(dlq::ERROR_KIND), Some("handler"));
    assert_eq!(d.header(dlq::ATTEMPTS), Some("3"));
    assert_eq!(
        d.header(dlq::ERROR_MESSAGE),
        Some("zero amount, maybe later")
    );
    assert_eq!(d.header(dlq::HANDLER), Some("accept"));
    assert_eq!(
        d.json::<Order>().unwrap().id,
        "o-0",
        "the original payload is kept"
    );

    let out = app
        .send(
            "orders",
            "order.placed",
            &json!({"id": "o-n", "amount": -1}),
        )
        .await;
    assert_eq!(
        out.dead_letters[0].header(dlq::ATTEMPTS),
        Some("1"),
        "fatal: no retries"
    );

    let out = app
        .send_message(
            TestMessage::raw("orders", "{\"id\": 3}").header(headers::CE_TYPE, "order.placed"),
        )
        .await;
    let d = &out.dead_letters[0];
    assert_eq!(d.header(dlq::ERROR_KIND), Some("decode"));
    assert_eq!(
        d.header(dlq::ATTEMPTS),
        Some("1"),
        "decode errors are not retried"
    );
    let why = d.header(dlq::ERROR_MESSAGE).unwrap();
    assert!(
        why.contains("testing::Order") && why.contains("at `id`"),
        "{why}"
    );

    let s = app.stats();
    assert_eq!(
        (s.dead_lettered, s.retried, s.failed_attempts),
        (3, 2, 5),
        "{s:?}"
    );
}

#[tokio::test]
async fn failed_messages_can_emit_error_events() {
    let mut cfg = quick_retries();
    cfg.error_events.enabled = true;
    let app = app(Spine::builder()
        .config(cfg)
        .handlers(spine::handlers![accept]));
    let out = app
        .send(
            "orders",
            "order.placed",
            &json!({"id": "o-n", "amount": -1}),
        )
        .await;
    assert_eq!(out.error_events.len(), 1);
    let e = &out.error_events[0];
    assert_eq!(e.topic, "orders.errors");
    assert_eq!(e.event(), Some("event.error.order.placed"));
    let body: serde_json::Value = e.json().unwrap();
    assert_eq!(body["error"], "negative amount");
    assert_eq!(body["kind"], "handler");
    assert_eq!(body["handler"], "accept");
    assert_eq!(body["payload"]["id"], "o-n");
    assert_eq!(
        out.dead_letters.len(),
        1,
        "error events come in addition to the dead letter"
    );
}

#[on(event = "placed", topic = "t")]
async fn specific(_v: serde_json::Value) -> Reply {
    Reply::to("out", "by", "specific")
}

#[on(event = "placed")]
async fn by_event(_v: serde_json::Value) -> Reply {
    Reply::to("out", "by", "by_event")
}

#[on(topic = "t")]
async fn by_topic(_v: serde_json::Value) -> Reply {
    Reply::to("out", "by", "by_topic")
}

async fn who(app: &TestApp, topic: &str, event: &str) -> String {
    let out = app.send(topic, event, &json!({})).await;
    out.replies[0].json().unwrap()
}

#[tokio::test]
async fn precedence_is_topic_event_then_event_then_topic() {
    let mut cfg = Config::default();
    cfg.app.topics = vec!["u".into()];
    let app = app(Spine::builder()
        .config(cfg)
        .handlers(spine::handlers![by_topic, by_event, specific]));
    assert_eq!(who(&app, "t", "placed").await, "specific");
    assert_eq!(who(&app, "u", "placed").await, "by_event");
    assert_eq!(who(&app, "t", "other").await, "by_topic");
    let out = app.send("u", "other", &json!({})).await;
    assert!(
        out.replies.is_empty() && out.dead_letters.is_empty(),
        "skipped by default"
    );
    assert_eq!(app.stats().skipped, 1);
}

#[on(event = "placed", topic = "t")]
async fn specific_again(_v: serde_json::Value) {}

#[tokio::test]
async fn two_handlers_for_one_key_fail_startup_naming_both() {
    let err = TestApp::new(Spine::builder().handlers(spine::handlers![specific, specific_again]))
        .err()
        .expect("duplicate routes are rejected");
    let Error::DuplicateRoute {
        first,
        second,
        first_location,
        second_location,
        ..
    } = &err
    else {
        panic!("expected DuplicateRoute, got {err:?}");
    };
    assert_eq!((&**first, &**second), ("specific", "specific_again"));
    assert!(
        first_location.starts_with("tests/handlers/testing.rs:"),
        "{first_location}"
    );
    assert!(
        second_location.starts_with("tests/handlers/testing.rs:"),
        "{second_location}"
    );
    let text = err.to_string();
    assert!(
        text.contains("fan_out"),
        "the message says how to fix it: {text}"
    );
}

#[on(event = "fan", topic = "t", fan_out)]
async fn fan_a(_v: serde_json::Value) -> Reply {
    Reply::to("out", "a", ())
}

#[on(event = "fan", topic = "t", fan_out)]
async fn fan_b(_v: serde_json::Value) -> Reply {
    Reply::to("out", "b", ())
}

#[tokio::test]
async fn fan_out_runs_every_handler() {
    let app = app(Spine::builder().handlers(spine::handlers![fan_a, fan_b]));
    let out = app.send("t", "fan", &json!({})).await;
    let events: Vec<_> = out.replies.iter().filter_map(|r| r.event()).collect();
    assert_eq!(events, ["a", "b"]);
}

struct Db {
    name: &'static str,
}

#[on(event = "q", topic = "t")]
async fn uses_state(_v: serde_json::Value, db: State<Db>, meta: Meta) -> Reply {
    Reply::to(
        "out",
        "r",
        json!({ "db": db.name, "offset": meta.offset, "event": meta.event }),
    )
}

#[tokio::test]
async fn state_is_checked_at_startup_and_given_to_handlers() {
    let err = TestApp::new(Spine::builder().handlers(spine::handlers![uses_state]))
        .err()
        .unwrap();
    match &err {
        Error::MissingState { handler, state, .. } => {
            assert_eq!(*handler, "uses_state");
            assert!(state.ends_with("Db"), "{state}");
        }
        other => panic!("expected MissingState, got {other:?}"),
    }
    assert!(err.to_string().contains(".state("), "{err}");

    let app = app(Spine::builder()
        .state(Db { name: "main" })
        .handlers(spine::handlers![uses_state]));
    let out = app.send("t", "q", &json!({})).await;
    let body: serde_json::Value = out.replies[0].json().unwrap();
    assert_eq!(body, json!({"db": "main", "offset": 0, "event": "q"}));
}

#[on(event = "by.key", topic = "keyed")]
async fn keyed(_v: serde_json::Value) -> Reply {
    Reply::to("out", "ok", "keyed")
}

#[on(event = "by.field", topic = "fielded")]
async fn fielded(v: serde_json::Value) -> Reply {
    Reply::to("out", "ok", v["n"].clone())
}

#[tokio::test]
async fn event_names_can_come_from_the_key_or_a_json_field() {
    let cfg = Config::from_toml(
        "[topics.keyed]\nevent = \"key\"\n[topics.fielded]\nevent = \"field:type\"\nunknown_event = \"dead_letter\"",
    )
    .unwrap();
    let app = app(Spine::builder()
        .config(cfg)
        .handlers(spine::handlers![keyed, fielded]));
    let out = app
        .send_message(TestMessage::raw("keyed", "{}").key("by.key"))
        .await;
    assert_eq!(out.replies.len(), 1);
    let out = app
        .send_message(TestMessage::raw("fielded", r#"{"type":"by.field","n":7}"#))
        .await;
    assert_eq!(out.replies[0].json::<i64>().unwrap(), 7);
    let out = app
        .send_message(TestMessage::raw("fielded", r#"{"n":7}"#))
        .await;
    assert_eq!(
        out.dead_letters[0].header(dlq::ERROR_KIND),
        Some("unknown_event")
    );
    let why = out.dead_letters[0].header(dlq::ERROR_MESSAGE).unwrap();
    assert!(why.contains("field:type"), "{why}");
}

#[on(event = "maybe", topic = "t")]
async fn tombstones(v: Option<Order>) -> Reply {
    Reply::to("out", "was", v.is_some())
}

#[tokio::test]
async fn a_missing_payload_decodes_as_none() {
    let app = app(Spine::builder().handlers(spine::handlers![tombstones]));
    let out = app
        .send_message(
            TestMessage::tombstone("t")
                .key("o-1")
                .header(headers::CE_TYPE, "maybe"),
        )
        .await;
    assert!(
        !out.replies[0].json::<bool>().unwrap(),
        "a tombstone is None"
    );
    let out = app
        .send("t", "maybe", &json!({"id": "o-1", "amount": 1}))
        .await;
    assert!(out.replies[0].json::<bool>().unwrap());
}

#[derive(Default)]
struct Recording(Mutex<Vec<String>>);

struct Record(Arc<Recording>);

impl Middleware for Record {
    fn before(&self, msg: &MessageInfo<'_>) {
        self.0
             .0
            .lock()
            .unwrap()
            .push(format!("before {:?} {:?}", msg.event, msg.handler));
    }
    fn after(&self, _msg: &MessageInfo<'_>, outcome: &Outcome<'_>) {
        let line = match outcome {
            Outcome::Handled { replies } => format!("handled {replies}"),
            Outcome::Retrying { attempt, .. } => format!("retrying {attempt}"),
            Outcome::DeadLettered { kind, attempts, .. } => format!("dead {kind} {attempts}"),
            Outcome::Skipped => "skipped".into(),
            other => format!("{other:?}"),
        };
        self.0 .0.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn middleware_sees_every_message_and_every_outcome() {
    let log = Arc::new(Recording::default());
    let app = app(Spine::builder()
        .config(quick_retries())
        .middleware(Record(log.clone()))
        .middleware(spine::middleware::Logging)
        .handlers(spine::handlers![accept]));
    app.send("orders", "order.placed", &json!({"id": "a", "amount": 1}))
        .await;
    app.send("orders", "order.placed", &json!({"id": "b", "amount": 0}))
        .await;
    app.send("orders", "nobody", &json!({})).await;
    let got = log.0.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            "before Some(\"order.placed\") Some(\"accept\")",
            "handled 1",
            "before Some(\"order.placed\") Some(\"accept\")",
            "retrying 1",
            "retrying 2",
            "dead handler 3",
            "before Some(\"nobody\") None",
            "skipped",
        ]
    );
}

#[tokio::test]
async fn an_app_needs_topics() {
    #[on(event = "lonely")]
    async fn lonely(_v: serde_json::Value) {}
    let err = TestApp::new(Spine::builder().handlers(spine::handlers![lonely]))
        .err()
        .unwrap();
    assert!(matches!(err, Error::NoTopics), "{err:?}");
    assert!(err.to_string().contains("[app] topics"), "{err}");
}

#[tokio::test]
async fn build_rejects_a_missing_broker_and_bad_kafka_properties() {
    let err = Spine::builder()
        .config(Config::default())
        .handlers(spine::handlers![accept])
        .build()
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("kafka.bootstrap.servers") && text.contains("SPINE_BOOTSTRAP_SERVERS"),
        "{text}"
    );

    let mut cfg = Config::default();
    cfg.set_kafka("bootstrap.servers", "127.0.0.1:1")
        .set_kafka("sesion.timeout.ms", "6000");
    let err = Spine::builder()
        .config(cfg)
        .handlers(spine::handlers![accept])
        .build()
        .err()
        .unwrap();
    match err {
        Error::Config { key, reason } => {
            assert_eq!(key, "kafka.sesion.timeout.ms");
            assert!(
                reason.contains("No such configuration property"),
                "{reason}"
            );
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[on(event = "price.requested", topic = "prices")]
async fn quote_price(req: serde_json::Value) -> Reply {
    spine::respond("price.quoted", json!({ "sku": req["sku"], "cents": 499 }))
}

#[tokio::test]
async fn respond_answers_on_the_requests_reply_topic_with_its_id() {
    let app = app(Spine::builder().handlers(spine::handlers![quote_price]));
    let msg = TestMessage::json("prices", "price.requested", &json!({"sku": "s-1"}))
        .header(headers::CE_ID, "req-7")
        .header(headers::REPLY_TO, "shop.replies")
        .header(headers::REQUEST_ID, "req-7");
    let out = app.send_message(msg).await;
    assert_eq!(out.replies.len(), 1);
    let r = &out.replies[0];
    assert_eq!(r.topic, "shop.replies");
    assert_eq!(r.event(), Some("price.quoted"));
    assert_eq!(r.header(headers::REQUEST_ID), Some("req-7"));
    assert_eq!(r.header(headers::CE_CAUSATION_ID), Some("req-7"));
    assert_eq!(r.json::<serde_json::Value>().unwrap()["cents"], 499);
}

#[tokio::test]
async fn respond_to_a_message_that_is_not_a_request_is_dead_lettered() {
    let app = app(Spine::builder().handlers(spine::handlers![quote_price]));
    let out = app
        .send("prices", "price.requested", &json!({"sku": "s-1"}))
        .await;
    assert!(out.replies.is_empty());
    assert_eq!(out.dead_letters.len(), 1);
    let d = &out.dead_letters[0];
    assert_eq!(d.header(dlq::ERROR_KIND), Some("encode"));
    assert!(d
        .header(dlq::ERROR_MESSAGE)
        .unwrap()
        .contains("has no `spine.reply.to` header"));
}

#[on(event = "ask", topic = "asks")]
async fn ask_under_test(_v: serde_json::Value, ctx: Context) -> Reply {
    let r: Result<serde_json::Value, spine::RequestError> =
        ctx.request("prices", "price.requested", &json!({})).await;
    let err = r.expect_err("TestApp has no broker to request through");
    Reply::to("asks.out", "failed", json!({ "error": err.to_string() }))
}

#[tokio::test]
async fn requests_under_test_app_fail_with_a_named_error() {
    let app = app(Spine::builder().handlers(spine::handlers![ask_under_test]));
    let out = app.send("asks", "ask", &json!({})).await;
    let v: serde_json::Value = out.replies[0].json().unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("requests need a Kafka broker"),
        "{v}"
    );
}

#[on(event = "cart.checked_out", topic = "carts")]
async fn checkout(cart: serde_json::Value, ctx: Context) -> Result<Reply, HandlerError> {
    let price: serde_json::Value = ctx
        .request("prices", "price.requested", &json!({ "sku": cart["sku"] }))
        .await?;
    Ok(Reply::to(
        "carts.priced",
        "cart.priced",
        price["cents"].clone(),
    ))
}

#[tokio::test]
async fn a_test_app_answers_requests_with_a_stub() {
    let app = app(Spine::builder().handlers(spine::handlers![checkout]));
    let out = app
        .send("carts", "cart.checked_out", &json!({"sku": "s-1"}))
        .await;
    let msg = out.dead_letters[0]
        .header(dlq::ERROR_MESSAGE)
        .unwrap_or_default()
        .to_owned();
    assert!(
        msg.contains(r#"app.respond("prices", "price.requested""#),
        "says what to do: {msg}"
    );

    app.respond("prices", "price.requested", |req: serde_json::Value| {
        assert_eq!(req["sku"], "s-1");
        json!({ "cents": 499 })
    });
    let out = app
        .send("carts", "cart.checked_out", &json!({"sku": "s-1"}))
        .await;
    assert_eq!(out.replies[0].json::<i64>().unwrap(), 499);
    assert_eq!(out.emitted.len(), 1, "the request is recorded");
    assert_eq!(out.emitted[0].kind, spine::SentKind::Request);
    assert_eq!(out.emitted[0].event(), Some("price.requested"));
}

#[on(event = "placed", topic = "pb", codec = "protobuf")]
async fn protobuf_order(_v: serde_json::Value) {}

#[tokio::test]
async fn an_unknown_codec_fails_build_naming_the_handler_and_its_line() {
    let err = TestApp::new(Spine::builder().handlers(spine::handlers![protobuf_order]))
        .err()
        .expect("no protobuf codec is installed");
    let Error::Config { key, reason } = &err else {
        panic!("expected a config error, got {err:?}");
    };
    assert_eq!(key, "topics.pb.codec");
    assert!(
        reason.contains("handler `protobuf_order` at tests/handlers/testing.rs:")
            && reason.contains("codec = \"protobuf\"")
            && reason.contains("Builder::codec(\"protobuf\""),
        "{reason}"
    );
}
