//! Interoperability with `schema_registry_converter`, the Rust ecosystem's
//! usual Confluent client, both ways, against Spine's dev registry over HTTP:
//! its async Avro encoder writes a record a Spine handler decodes; Spine's
//! reply is read by its decoder; its registry client registers and fetches
//! schemas on the dev registry. (Spine keeps its own registry client; the
//! README says why.)

use apache_avro::types::Value;
use apache_avro::AvroSchema;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{
    get_all_subjects, get_schema_by_id, get_schema_by_subject_and_version, post_schema, SrSettings,
};
use schema_registry_converter::avro_common::get_supplied_schema_for;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use spine::avro::registry::DevRegistry;
use spine::headers;
use spine::prelude::*;
use spine::testing::{TestApp, TestMessage};
use spine::Config;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "interop")]
struct Shipment {
    shipment_id: String,
    weight_grams: i64,
    express: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "interop")]
struct ShipmentBooked {
    shipment_id: String,
    price_cents: i64,
}

#[on(event = "shipment.requested", topic = "shipments", codec = "avro")]
async fn book(s: Shipment) -> Reply {
    let price_cents = s.weight_grams / 10 + if s.express { 500 } else { 0 };
    spine::avro::reply(
        "shipments.booked",
        "shipment.booked",
        ShipmentBooked {
            shipment_id: s.shipment_id,
            price_cents,
        },
    )
}

fn config(url: &str) -> Config {
    let mut c = Config::from_toml(
        r#"
        [schema_registry]
        auto_register = true
        [topics."shipments.booked"]
        codec = "avro"
        "#,
    )
    .unwrap();
    c.schema_registry.url = Some(url.to_owned());
    c
}

#[tokio::test]
async fn schema_registry_converter_and_spine_read_each_other_through_the_dev_registry() {
    let registry = DevRegistry::new()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sr = SrSettings::new(registry.url());

    // Its encoder registers the writer schema and writes the wire format.
    let sent = Shipment {
        shipment_id: "s-42".into(),
        weight_grams: 12_345,
        express: true,
    };
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "shipments".into(),
        false,
        get_supplied_schema_for::<Shipment>(),
    );
    let bytes = AvroEncoder::new(sr.clone())
        .encode_struct(&sent, &strategy)
        .await
        .expect("schema_registry_converter encodes through the dev registry");
    assert_eq!(bytes[0], 0, "Confluent magic byte");

    // A Spine handler decodes it into its own type and replies in Avro.
    let app = TestApp::new(
        Spine::builder()
            .config(config(&registry.url()))
            .handlers(spine::handlers![book]),
    )
    .unwrap();
    let out = app
        .send_message(
            TestMessage::raw("shipments", bytes).header(headers::CE_TYPE, "shipment.requested"),
        )
        .await;
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(out.replies.len(), 1);
    let reply = out.replies[0].payload.clone().expect("an Avro payload");

    // Its decoder reads Spine's reply, fetching the schema Spine registered.
    let decoded = AvroDecoder::new(sr.clone())
        .decode(Some(&reply))
        .await
        .expect("schema_registry_converter decodes Spine's reply");
    let Value::Record(fields) = decoded.value else {
        panic!("a record, got {:?}", decoded.value);
    };
    assert_eq!(
        fields,
        vec![
            ("shipment_id".to_owned(), Value::String("s-42".into())),
            ("price_cents".to_owned(), Value::Long(1_734)),
        ]
    );
    assert_eq!(
        decoded.name.map(|n| n.fullname(None)).as_deref(),
        Some("interop.ShipmentBooked")
    );

    // Its registry client: register, then fetch by subject, by id, and list.
    let supplied = get_supplied_schema_for::<ShipmentBooked>();
    let registered = post_schema(&sr, "audit-value".into(), supplied)
        .await
        .expect("registers on the dev registry");
    let latest = get_schema_by_subject_and_version(&sr, "audit-value", None)
        .await
        .expect("fetches the latest version");
    assert_eq!(latest.id, registered.id);
    let by_id = get_schema_by_id(registered.id, &sr).await.expect("by id");
    assert_eq!(
        apache_avro::Schema::parse_str(&by_id.schema).unwrap(),
        ShipmentBooked::get_schema()
    );
    let subjects = get_all_subjects(&sr).await.expect("lists subjects");
    for s in ["shipments-value", "shipments.booked-value", "audit-value"] {
        assert!(subjects.iter().any(|x| x == s), "{s} in {subjects:?}");
    }
    registry.stop().await;
}
