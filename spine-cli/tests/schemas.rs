//! `spine schemas register|check|list` against the dev schema registry, over
//! HTTP: a first registration, idempotence, a compatible change, an
//! incompatible one (non-zero exit naming the field), a dry run, a type shared
//! between files, and secrets never printed.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use spine_kafka_avro::registry::{Auth, DevRegistry, DevRegistryHandle, RegistryClient};

use common::text;

fn spine(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spine"))
        .args(args)
        .current_dir(dir)
        .env_remove("SPINE_SCHEMA_REGISTRY_URL")
        .output()
        .expect("spine runs")
}

async fn registry() -> DevRegistryHandle {
    DevRegistry::new()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("dev registry")
}

const ORDER_V1: &str = r#"{"type": "record", "name": "OrderPlaced", "namespace": "shop",
  "fields": [{"name": "order_id", "type": "string"}, {"name": "amount_cents", "type": "long"}]}"#;
const ORDER_V2_COMPATIBLE: &str = r#"{"type": "record", "name": "OrderPlaced", "namespace": "shop",
  "fields": [{"name": "order_id", "type": "string"}, {"name": "amount_cents", "type": "long"},
             {"name": "currency", "type": "string", "default": "EUR"}]}"#;
const ORDER_V3_INCOMPATIBLE: &str = r#"{"type": "record", "name": "OrderPlaced", "namespace": "shop",
  "fields": [{"name": "order_id", "type": "string"}, {"name": "amount_cents", "type": "long"},
             {"name": "currency", "type": "string", "default": "EUR"}, {"name": "coupon", "type": "string"}]}"#;
const ADDRESS: &str = r#"{"type": "record", "name": "Address", "namespace": "shop",
  "fields": [{"name": "city", "type": "string"}]}"#;
const SHIPMENT: &str = r#"{"type": "record", "name": "Shipment", "namespace": "shop",
  "fields": [{"name": "to", "type": "Address"}, {"name": "from", "type": "shop.Address"}]}"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::write(dir.join("schemas").join(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_check_list_on_a_running_registry() {
    let reg = registry().await;
    let url = reg.url();
    let client = RegistryClient::new(&url, Auth::None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "orders.avsc", ORDER_V1);
    write(dir, "address.avsc", ADDRESS);
    write(dir, "shipments.avsc", SHIPMENT);

    // A dry run changes nothing.
    let out = spine(
        &["schemas", "register", "--registry", &url, "--dry-run"],
        dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("new (not registered)"),
        "{}",
        text(&out)
    );
    assert!(
        client.subjects().await.unwrap().is_empty(),
        "dry run registered nothing"
    );

    // First registration.
    let out = spine(&["schemas", "register", "--registry", &url], dir);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let mut subjects = client.subjects().await.unwrap();
    subjects.sort();
    assert_eq!(subjects, ["orders-value", "shipments-value"], "{t}");
    assert!(
        t.contains("shared type, inlined into shipments.avsc"),
        "{t}"
    );
    // The shared type was inlined: the registered schema is self-contained.
    let shipment = client.version("shipments-value", "latest").await.unwrap();
    assert!(shipment.schema.contains("\"city\""), "{}", shipment.schema);

    // Idempotent: everything unchanged.
    let out = spine(&["schemas", "register", "--registry", &url], dir);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(t.matches("unchanged").count(), 2, "{t}");
    assert!(!t.contains("│ new"), "{t}");

    // A compatible change: a field with a default.
    write(dir, "orders.avsc", ORDER_V2_COMPATIBLE);
    let out = spine(&["schemas", "check", "--registry", &url], dir);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        client.versions("orders-value").await.unwrap(),
        [1],
        "check registers nothing"
    );
    let out = spine(&["schemas", "register", "--registry", &url], dir);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(client.versions("orders-value").await.unwrap(), [1, 2]);

    // An incompatible change: a field without a default (BACKWARD).
    write(dir, "orders.avsc", ORDER_V3_INCOMPATIBLE);
    let out = spine(&["schemas", "register", "--registry", &url], dir);
    let t = text(&out);
    assert!(!out.status.success(), "must fail: {t}");
    assert!(t.contains("orders.avsc"), "names the file: {t}");
    assert!(t.contains("coupon"), "names the field: {t}");
    assert!(t.contains("BACKWARD"), "names the rule: {t}");
    assert_eq!(
        client.versions("orders-value").await.unwrap(),
        [1, 2],
        "nothing registered"
    );

    // List.
    let out = spine(&["schemas", "list", "--registry", &url], dir);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("orders-value") && t.contains("shipments-value"),
        "{t}"
    );
    assert!(t.contains("2 subjects"), "{t}");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_strategy_invalid_files_and_secrets() {
    let reg = registry().await;
    let url = reg.url();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "orders.avsc", ORDER_V1);
    write(
        dir,
        "broken.avsc",
        r#"{"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "nope"}]}"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_spine"))
        .args([
            "schemas",
            "register",
            "--registry",
            &url,
            "--strategy",
            "record",
            "--token",
            "s3cr3t-token",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "an invalid file fails the run: {t}");
    assert!(t.contains("broken.avsc") && t.contains("invalid"), "{t}");
    assert!(
        t.contains("shop.OrderPlaced"),
        "record strategy subject: {t}"
    );
    assert!(
        !t.contains("s3cr3t-token"),
        "the token is never printed: {t}"
    );
    let help = spine(&["schemas", "register", "--help"], dir);
    assert!(!text(&help).contains("s3cr3t"));
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spine_toml_maps_a_file_to_its_topic() {
    let reg = registry().await;
    let url = reg.url();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "order_placed.avsc", ORDER_V1);
    std::fs::write(
        dir.join("spine.toml"),
        format!("[schema_registry]\nurl = \"{url}\"\n\n[topics.\"shop.orders\"]\nschema = \"schemas/order_placed.avsc\"\n"),
    )
    .unwrap();
    // No --registry: the URL comes from spine.toml too.
    let out = spine(&["schemas", "register"], dir);
    assert!(out.status.success(), "{}", text(&out));
    let client = RegistryClient::new(&url, Auth::None).unwrap();
    assert_eq!(client.subjects().await.unwrap(), ["shop.orders-value"]);
    reg.stop().await;
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = std::env::temp_dir();
    for args in [
        vec!["--help"],
        vec!["new", "--help"],
        vec!["schemas", "register", "--help"],
        vec!["schemas", "check", "--help"],
        vec!["schemas", "list", "--help"],
        vec!["offsets", "reset", "--help"],
        vec!["dev", "--help"],
        vec!["send", "--help"],
        vec!["tail", "--help"],
    ] {
        let out = spine(&args, &dir);
        let t = text(&out);
        assert!(out.status.success(), "{args:?}: {t}");
        assert!(
            t.contains("Example") || t.contains("first service"),
            "{args:?} has an example: {t}"
        );
    }
}
