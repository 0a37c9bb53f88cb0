//! Avro payloads through the dispatch path (no Kafka, `TestApp`), against the
//! dev schema registry served over HTTP: decoding with writer-to-reader
//! resolution, replies in the wire format, record-name routing, every bad
//! input named and dead-lettered, and a registry outage that holds messages
//! instead of losing them.

use std::sync::Arc;
use std::time::Duration;

use apache_avro::AvroSchema;
use spine::avro::registry::{CompatibilityLevel, DevRegistry, DevRegistryHandle};
use spine::avro::{AvroCodec, CodecOptions, RegistryClient};
use spine::config::SubjectStrategy;
use spine::headers::{self, dead_letter as dlq};
use spine::prelude::*;
use spine::testing::{TestApp, TestMessage};
use spine::Config;

/// The handler's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
struct OrderPlaced {
    order_id: String,
    customer: String,
    amount_cents: i64,
}

/// The reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
struct OrderAccepted {
    order_id: String,
    accepted: bool,
}

#[on(event = "order.placed", topic = "orders")]
async fn accept(order: OrderPlaced) -> Result<Reply, HandlerError> {
    if order.amount_cents < 0 {
        return Err(HandlerError::msg("negative amount").fatal());
    }
    let reply = OrderAccepted {
        order_id: order.order_id,
        accepted: true,
    };
    Ok(spine::avro::reply(
        "orders.accepted",
        "order.accepted",
        reply,
    ))
}

async fn registry() -> (DevRegistryHandle, RegistryClient) {
    let h = DevRegistry::new()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = RegistryClient::new(&h.url(), Default::default()).unwrap();
    (h, c)
}

fn config(url: &str) -> Config {
    let mut c = Config::from_toml(
        r#"
        [schema_registry]
        auto_register = true
        [topics.orders]
        codec = "avro"
        [topics."orders.accepted"]
        codec = "avro"
        [retry]
        backoff = "1ms"
        max_backoff = "2ms"
        "#,
    )
    .unwrap();
    c.schema_registry.url = Some(url.to_owned());
    c
}

/// A producer-side codec that registers what it writes.
fn producer(url: &str) -> AvroCodec {
    AvroCodec::new(
        RegistryClient::new(url, Default::default()).unwrap(),
        CodecOptions {
            auto_register: true,
            ..Default::default()
        },
    )
}

fn schema_of<T: AvroSchema>() -> String {
    serde_json::to_string(&T::get_schema()).unwrap()
}

async fn framed<T: Serialize + AvroSchema>(url: &str, topic: &str, value: &T) -> Vec<u8> {
    producer(url)
        .encode_value(topic, value, Some(&schema_of::<T>()))
        .await
        .expect("encodes")
}

fn order(id: &str, amount: i64) -> OrderPlaced {
    OrderPlaced {
        order_id: id.into(),
        customer: "c".into(),
        amount_cents: amount,
    }
}

fn placed(bytes: Vec<u8>) -> TestMessage {
    TestMessage::raw("orders", bytes).header(headers::CE_TYPE, "order.placed")
}

/// The app, with a codec the test can inspect.
fn app(
    cfg: Config,
    handlers: impl IntoIterator<Item = spine::HandlerDescriptor>,
) -> (TestApp, Arc<AvroCodec>) {
    let codec = Arc::new(AvroCodec::from_config(&cfg).unwrap());
    let shared = codec.clone();
    let app = TestApp::new(
        Spine::builder()
            .config(cfg)
            .codec("avro", move |_| Ok(shared.clone()))
            .handlers(handlers),
    )
    .unwrap();
    (app, codec)
}

#[tokio::test]
async fn decodes_into_the_handler_type_and_replies_in_the_wire_format() {
    let (reg, client) = registry().await;
    let (app, codec) = app(config(&reg.url()), spine::handlers![accept]);
    let bytes = framed(&reg.url(), "orders", &order("o-1", 250)).await;
    let out = app.send_message(placed(bytes.clone())).await;
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    let reply = &out.replies[0];
    assert_eq!(reply.topic, "orders.accepted");
    assert_eq!(
        reply.header(headers::CONTENT_TYPE),
        Some("application/avro")
    );
    let payload = reply.payload.as_deref().unwrap();
    assert_eq!(payload[0], 0, "magic byte");
    let accepted: OrderAccepted = codec.decode_value(payload).await.unwrap();
    assert_eq!(
        accepted,
        OrderAccepted {
            order_id: "o-1".into(),
            accepted: true
        }
    );
    // The reply schema was registered under the topic's subject (auto_register).
    let subjects = client.subjects().await.unwrap();
    assert!(
        subjects.contains(&"orders.accepted-value".to_owned()),
        "{subjects:?}"
    );

    // After warm-up, messages cost no registry call.
    let calls = codec.client().calls();
    for i in 0..20 {
        let bytes = framed(&reg.url(), "orders", &order(&format!("o-{i}"), 1)).await;
        assert_eq!(app.send_message(placed(bytes)).await.replies.len(), 1);
    }
    assert_eq!(codec.client().calls(), calls, "schemas are cached");
}

/// What an older producer writes: no `customer`, an `int` amount, an extra field.
#[derive(Serialize, AvroSchema)]
#[avro(namespace = "shop")]
#[serde(rename = "OrderPlaced")]
struct OrderPlacedV0 {
    order_id: String,
    amount_cents: i32,
    coupon: String,
}

/// The reader for V0 data: `customer` has a default.
#[derive(Debug, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
#[serde(rename = "OrderPlaced")]
struct OrderPlacedV2 {
    order_id: String,
    #[avro(default = r#""anonymous""#)]
    customer: String,
    amount_cents: i64,
}

#[on(event = "order.placed", topic = "legacy")]
async fn legacy(order: OrderPlacedV2) -> Reply {
    Reply::to(
        "legacy.out",
        "seen",
        serde_json::json!({
            "id": order.order_id, "customer": order.customer, "amount": order.amount_cents
        }),
    )
}

/// The test config with topic `legacy` on the Avro codec too.
fn legacy_config(url: &str) -> Config {
    let mut cfg = config(url);
    cfg.topics.insert(
        "legacy".into(),
        spine::config::TopicConfig {
            codec: Some("avro".into()),
            ..Default::default()
        },
    );
    cfg
}

#[tokio::test]
async fn writer_schemas_resolve_to_the_reader_type() {
    let (reg, _) = registry().await;
    let cfg = legacy_config(&reg.url());
    let (app, _) = app(cfg, spine::handlers![legacy]);
    let v0 = OrderPlacedV0 {
        order_id: "o".into(),
        amount_cents: 7,
        coupon: "XMAS".into(),
    };
    let bytes = framed(&reg.url(), "legacy", &v0).await;
    let out = app
        .send_message(TestMessage::raw("legacy", bytes).header(headers::CE_TYPE, "order.placed"))
        .await;
    assert!(
        out.dead_letters.is_empty(),
        "{:?}",
        out.dead_letters.first().map(|d| d.headers.clone())
    );
    let seen: serde_json::Value = out.replies[0].json().unwrap();
    assert_eq!(
        seen,
        serde_json::json!({"id": "o", "customer": "anonymous", "amount": 7}),
        "added field takes its default, removed field is skipped, int is promoted to long"
    );
}

/// The reader of a shipment: its weight is `["null", "long"]`.
#[derive(Debug, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
struct Shipment {
    id: String,
    weight: Option<i64>,
}

#[on(event = "shipment.weighed", topic = "legacy")]
async fn weighed(s: Shipment) -> Reply {
    Reply::to(
        "weights",
        "weight",
        serde_json::json!({ "id": s.id, "weight": s.weight }),
    )
}

#[tokio::test]
async fn a_writer_union_branch_the_reader_lacks_fails_only_the_records_that_carry_it() {
    let (reg, client) = registry().await;
    let cfg = legacy_config(&reg.url());
    let (app, _) = app(cfg, spine::handlers![weighed]);
    // The writer's weight may also be a string, a branch the reader lacks.
    let writer = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"Shipment","namespace":"shop","fields":[
            {"name":"id","type":"string"},{"name":"weight","type":["null","long","string"]}]}"#,
    )
    .unwrap();
    client
        .set_compatibility(Some("shipments-value"), CompatibilityLevel::None)
        .await
        .unwrap();
    let id = client
        .register("shipments-value", &writer.canonical_form())
        .await
        .unwrap();
    use apache_avro::types::Value;
    let frame = |shipment: &str, branch: u32, weight: Value| {
        let record = Value::Record(vec![
            ("id".into(), Value::String(shipment.into())),
            ("weight".into(), Value::Union(branch, Box::new(weight))),
        ]);
        let mut bytes = vec![0];
        bytes.extend_from_slice(&id.to_be_bytes());
        let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&writer)
            .build()
            .unwrap()
            .write_value_to_vec(record)
            .unwrap();
        bytes.extend(datum);
        TestMessage::raw("legacy", bytes).header(headers::CE_TYPE, "shipment.weighed")
    };
    let mut seen = Vec::new();
    for m in [
        frame("s-null", 0, Value::Null),
        frame("s-long", 1, Value::Long(12)),
    ] {
        let out = app.send_message(m).await;
        assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
        seen.push(out.replies[0].json::<serde_json::Value>().unwrap());
    }
    assert_eq!(
        seen,
        [
            serde_json::json!({"id": "s-null", "weight": null}),
            serde_json::json!({"id": "s-long", "weight": 12}),
        ],
        "records on the branches both schemas have are read"
    );
    let out = app
        .send_message(frame("s-string", 2, Value::String("heavy".into())))
        .await;
    assert!(out.replies.is_empty());
    let d = &out.dead_letters[0];
    assert_eq!(d.header(dlq::ERROR_CODE), Some("avro.incompatible"));
    assert_eq!(d.header("spine.dlq.avro.field"), Some("weight"));
    let message = d.header(dlq::ERROR_MESSAGE).unwrap();
    assert!(
        message.contains("missing union branch") && message.contains("`string`"),
        "names the branch: {message}"
    );
    // And after it, the other branches still read.
    let out = app.send_message(frame("s-after", 1, Value::Long(3))).await;
    assert_eq!(
        out.replies[0].json::<serde_json::Value>().unwrap()["id"],
        "s-after"
    );
}

/// A writer whose amount is a string: no resolution rule makes it a long.
#[derive(Serialize, AvroSchema)]
#[avro(namespace = "shop")]
#[serde(rename = "OrderPlaced")]
struct OrderPlacedBad {
    order_id: String,
    customer: String,
    amount_cents: String,
}

#[tokio::test]
async fn bad_input_gets_a_named_error_and_the_dead_letter_topic() {
    let (reg, client) = registry().await;
    let (app, _) = app(config(&reg.url()), spine::handlers![accept]);
    let good = framed(&reg.url(), "orders", &order("o", 1)).await;

    let dead = |out: spine::testing::TestOutcome| {
        assert!(out.replies.is_empty());
        assert_eq!(out.dead_letters.len(), 1, "one dead letter");
        out.dead_letters.into_iter().next().unwrap()
    };
    let d = dead(app.send_message(placed(b"{\"json\":true}".to_vec())).await);
    assert_eq!(d.header(dlq::ERROR_KIND), Some("decode"));
    assert_eq!(d.header(dlq::ERROR_CODE), Some("avro.wrong_magic"));
    assert_eq!(d.header(dlq::ATTEMPTS), Some("1"));

    let d = dead(app.send_message(placed(vec![0, 0, 1])).await);
    assert_eq!(d.header(dlq::ERROR_CODE), Some("avro.too_short"));

    let truncated = good[..good.len() - 3].to_vec();
    let d = dead(app.send_message(placed(truncated)).await);
    assert_eq!(d.header(dlq::ERROR_CODE), Some("avro.corrupt"));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    let d = dead(app.send_message(placed(trailing)).await);
    assert_eq!(d.header(dlq::ERROR_CODE), Some("avro.corrupt"));

    let mut unknown = good.clone();
    unknown[1..5].copy_from_slice(&4242u32.to_be_bytes());
    let d = dead(app.send_message(placed(unknown)).await);
    assert_eq!(d.header(dlq::ERROR_CODE), Some("avro.schema_not_found"));
    assert_eq!(d.header("spine.dlq.avro.schema_id"), Some("4242"));

    // An incompatible writer: registered under another subject, so the
    // registry's own check does not stop it.
    client
        .set_compatibility(Some("elsewhere-value"), CompatibilityLevel::None)
        .await
        .unwrap();
    let bad = OrderPlacedBad {
        order_id: "o".into(),
        customer: "c".into(),
        amount_cents: "ten".into(),
    };
    let bytes = framed(&reg.url(), "elsewhere", &bad).await;
    let d = dead(app.send_message(placed(bytes)).await);
    assert_eq!(d.header(dlq::ERROR_CODE), Some("avro.incompatible"));
    assert_eq!(d.header("spine.dlq.avro.field"), Some("amount_cents"));
    let writer_fp = d.header("spine.dlq.avro.writer_fingerprint").unwrap();
    let reader_fp = d.header("spine.dlq.avro.reader_fingerprint").unwrap();
    assert_eq!(writer_fp.len(), 16, "Rabin fingerprints, hex: {writer_fp}");
    assert_ne!(writer_fp, reader_fp);
    assert_eq!(app.stats().dead_lettered, 6);

    // None of that stops good messages.
    assert_eq!(app.send_message(placed(good)).await.replies.len(), 1);
}

#[tokio::test]
async fn a_registry_outage_holds_messages_until_it_returns() {
    let dir = std::env::temp_dir().join(format!("spine-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("registry.json");
    let _ = std::fs::remove_file(&state);
    let reg = DevRegistry::new()
        .persist_to(&state)
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = reg.addr();
    let url = reg.url();
    let bytes = framed(&url, "orders", &order("o-1", 5)).await;
    reg.stop().await;

    let (app, _) = app(config(&url), spine::handlers![accept]);
    let app = Arc::new(app);
    let pending = tokio::spawn({
        let app = app.clone();
        async move { app.send_message(placed(bytes)).await }
    });
    // Positive evidence first: the message has waited for the registry, and
    // more than once (it backs off and asks again).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.stats().codec_waits < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no codec wait: {:?}",
            app.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !pending.is_finished(),
        "the message waits for the registry, it is not dead-lettered"
    );
    assert_eq!(app.stats().dead_lettered, 0);

    let _back = DevRegistry::new()
        .persist_to(&state)
        .start(addr)
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("resumes")
        .unwrap();
    assert_eq!(out.replies.len(), 1, "handled once the registry is back");
    assert!(out.dead_letters.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Debug, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
struct OrderCancelled {
    order_id: String,
    reason: String,
}

#[on(event = "shop.OrderPlaced", topic = "mixed")]
async fn mixed_placed(o: OrderPlaced) -> Reply {
    Reply::to("out", "placed", o.order_id)
}

#[on(event = "shop.OrderCancelled", topic = "mixed")]
async fn mixed_cancelled(o: OrderCancelled) -> Reply {
    Reply::to("out", "cancelled", o.reason)
}

#[tokio::test]
async fn record_names_route_several_types_on_one_topic() {
    let (reg, client) = registry().await;
    let mut cfg = config(&reg.url());
    cfg.topics.insert(
        "mixed".into(),
        spine::config::TopicConfig {
            codec: Some("avro".into()),
            event: Some(spine::config::EventSource::Record),
            subject_strategy: Some(SubjectStrategy::TopicRecord),
            ..Default::default()
        },
    );
    let (app, _) = app(cfg.clone(), spine::handlers![mixed_placed, mixed_cancelled]);
    let writer = AvroCodec::from_config(&cfg).unwrap();
    let a = writer
        .encode_value("mixed", &order("o-9", 1), Some(&schema_of::<OrderPlaced>()))
        .await
        .unwrap();
    let cancel = OrderCancelled {
        order_id: "o-9".into(),
        reason: "changed mind".into(),
    };
    let b = writer
        .encode_value("mixed", &cancel, Some(&schema_of::<OrderCancelled>()))
        .await
        .unwrap();
    // No ce_type header: the record name is the event.
    let out = app.send_message(TestMessage::raw("mixed", a)).await;
    assert_eq!(out.replies[0].event(), Some("placed"));
    let out = app.send_message(TestMessage::raw("mixed", b)).await;
    assert_eq!(out.replies[0].event(), Some("cancelled"));
    assert_eq!(out.replies[0].json::<String>().unwrap(), "changed mind");
    let subjects = client.subjects().await.unwrap();
    assert!(
        subjects.contains(&"mixed-shop.OrderPlaced".to_owned()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"mixed-shop.OrderCancelled".to_owned()),
        "{subjects:?}"
    );
    // A malformed payload cannot be routed, and says why.
    let out = app
        .send_message(TestMessage::raw("mixed", b"garbage".to_vec()))
        .await;
    assert_eq!(
        out.dead_letters[0].header(dlq::ERROR_CODE),
        Some("avro.wrong_magic")
    );
}

#[tokio::test]
async fn reply_schemas_must_be_registered_unless_auto_register_is_on() {
    let (reg, client) = registry().await;
    let mut cfg = config(&reg.url());
    cfg.schema_registry.auto_register = false;
    let (app, _) = app(cfg, spine::handlers![accept]);
    let bytes = framed(&reg.url(), "orders", &order("o", 1)).await;
    let out = app.send_message(placed(bytes.clone())).await;
    let d = &out.dead_letters[0];
    assert_eq!(d.header(dlq::ERROR_KIND), Some("encode"));
    assert!(
        d.header(dlq::ERROR_MESSAGE)
            .unwrap()
            .contains("auto_register"),
        "{:?}",
        d.headers
    );

    client
        .register("orders.accepted-value", &schema_of::<OrderAccepted>())
        .await
        .unwrap();
    let out = app.send_message(placed(bytes)).await;
    assert_eq!(
        out.replies.len(),
        1,
        "registered by someone else: now it encodes"
    );
}

#[on(event = "order.placed", topic = "orders", fan_out)]
async fn fan_a(o: OrderPlaced) -> Reply {
    Reply::to("out", "a", o.amount_cents)
}

#[on(event = "order.placed", topic = "orders", fan_out)]
async fn fan_b(o: OrderPlaced) -> Reply {
    Reply::to("out", "b", o.amount_cents)
}

#[tokio::test]
async fn fan_out_handlers_share_one_decode_and_one_schema_fetch() {
    let (reg, _) = registry().await;
    let (app, codec) = app(config(&reg.url()), spine::handlers![fan_a, fan_b]);
    let bytes = framed(&reg.url(), "orders", &order("o", 3)).await;
    let out = app.send_message(placed(bytes)).await;
    let events: Vec<_> = out.replies.iter().filter_map(|r| r.event()).collect();
    assert_eq!(events, ["a", "b"]);
    assert_eq!(codec.client().calls(), 1, "one fetch of the writer schema");
}

#[on(topic = "orders", codec = "avro")]
async fn declared(o: OrderPlaced) -> Reply {
    Reply::to("out", "ok", o.order_id)
}

#[tokio::test]
async fn a_handler_can_mark_its_topic_avro() {
    let (reg, _) = registry().await;
    let mut cfg = Config::default();
    cfg.schema_registry.url = Some(reg.url());
    let (app, _) = app(cfg, spine::handlers![declared]);
    let bytes = framed(&reg.url(), "orders", &order("o-7", 3)).await;
    let out = app.send_message(placed(bytes)).await;
    assert_eq!(out.replies[0].json::<String>().unwrap(), "o-7");

    let err = TestApp::new(Spine::builder().handlers(spine::handlers![declared]))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("SPINE_SCHEMA_REGISTRY_URL"),
        "{err}"
    );
}

#[on(event = "anywhere", codec = "avro")]
async fn topicless(_o: OrderPlaced) {}

#[tokio::test]
async fn a_codec_on_a_handler_without_a_topic_is_refused() {
    let mut cfg = Config::default();
    cfg.app.topics = vec!["t".into()];
    cfg.schema_registry.url = Some("http://127.0.0.1:9".into());
    let err = TestApp::new(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![topicless]),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("[topics.<name>] codec"), "{err}");
}
