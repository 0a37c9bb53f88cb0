//! The dev schema registry, tested as a server over HTTP with the registry
//! client Spine itself uses.

use spine_kafka_avro::registry::{CompatibilityLevel, DevRegistry, RegistryClient, RegistryError};

fn order(extra: &str) -> String {
    format!(
        r#"{{"type":"record","name":"Order","namespace":"shop","fields":[{{"name":"id","type":"string"}}{extra}]}}"#
    )
}

async fn start() -> (
    spine_kafka_avro::registry::DevRegistryHandle,
    RegistryClient,
) {
    let handle = DevRegistry::new()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("starts");
    let client = RegistryClient::new(&handle.url(), Default::default()).unwrap();
    (handle, client)
}

#[tokio::test]
async fn registers_lists_and_looks_up_schemas() {
    let (_h, c) = start().await;
    assert!(c.subjects().await.unwrap().is_empty());
    let v1 = order("");
    let id1 = c.register("orders-value", &v1).await.unwrap();
    assert_eq!(
        c.register("orders-value", &v1).await.unwrap(),
        id1,
        "same schema, same id"
    );
    // The same schema with different whitespace is the same schema.
    let spaced = v1.replace(',', " , ");
    assert_eq!(c.register("orders-value", &spaced).await.unwrap(), id1);
    assert_eq!(c.versions("orders-value").await.unwrap(), [1]);

    let v2 = order(r#",{"name":"note","type":"string","default":""}"#);
    let id2 = c.register("orders-value", &v2).await.unwrap();
    assert_ne!(id1, id2);
    assert_eq!(c.versions("orders-value").await.unwrap(), [1, 2]);
    // Another subject with a known schema reuses its id.
    assert_eq!(c.register("audit-value", &v2).await.unwrap(), id2);
    assert_eq!(c.subjects().await.unwrap(), ["audit-value", "orders-value"]);

    let latest = c.version("orders-value", "latest").await.unwrap();
    assert_eq!((latest.version, latest.id), (2, id2));
    assert_eq!(c.version("orders-value", "1").await.unwrap().id, id1);
    assert_eq!(c.schema_by_id(id1).await.unwrap().schema, v1);
    let found = c.lookup("orders-value", &v2).await.unwrap();
    assert_eq!((found.version, found.id), (2, id2));
}

fn code(e: RegistryError) -> u32 {
    match e {
        RegistryError::NotFound { code, .. } => code,
        RegistryError::Incompatible { .. } => 409,
        RegistryError::InvalidSchema { .. } => 42201,
        other => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn answers_with_confluent_error_codes() {
    let (_h, c) = start().await;
    assert_eq!(code(c.versions("nope").await.unwrap_err()), 40401);
    assert_eq!(code(c.version("nope", "1").await.unwrap_err()), 40401);
    c.register("s", &order("")).await.unwrap();
    assert_eq!(code(c.version("s", "7").await.unwrap_err()), 40402);
    assert_eq!(code(c.version("s", "seven").await.unwrap_err()), 40402);
    assert_eq!(code(c.schema_by_id(99).await.unwrap_err()), 40403);
    assert_eq!(
        code(
            c.lookup("s", &order(r#",{"name":"x","type":"int"}"#))
                .await
                .unwrap_err()
        ),
        40403
    );
    assert_eq!(code(c.lookup("nope", &order("")).await.unwrap_err()), 40401);
    assert_eq!(
        code(c.register("s", "{not a schema").await.unwrap_err()),
        42201
    );
    assert_eq!(
        code(
            c.register("s", &order(r#",{"name":"amount","type":"long"}"#))
                .await
                .unwrap_err()
        ),
        409
    );
    let e = c
        .register("s", &order(r#",{"name":"amount","type":"long"}"#))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("field `amount`"),
        "the 409 names the field: {e}"
    );
}

#[tokio::test]
async fn deleting_a_subject_forgets_its_versions() {
    let (_h, c) = start().await;
    let id = c.register("s", &order("")).await.unwrap();
    assert_eq!(c.delete_subject("s").await.unwrap(), [1]);
    assert_eq!(code(c.versions("s").await.unwrap_err()), 40401);
    assert_eq!(
        c.schema_by_id(id).await.unwrap().schema,
        order(""),
        "ids stay resolvable"
    );
    // After deletion, an incompatible schema is a fresh start.
    c.register("s", &order(r#",{"name":"amount","type":"long"}"#))
        .await
        .unwrap();
}

#[tokio::test]
async fn compatibility_levels_are_configurable_globally_and_per_subject() {
    let (_h, c) = start().await;
    assert_eq!(
        c.compatibility(None).await.unwrap(),
        CompatibilityLevel::Backward
    );
    c.register("s", &order("")).await.unwrap();
    let no_default = order(r#",{"name":"amount","type":"long"}"#);
    let check = c
        .check_compatibility("s", "latest", &no_default)
        .await
        .unwrap();
    assert!(!check.is_compatible);
    assert!(check.messages[0].contains("amount"), "{check:?}");

    c.set_compatibility(Some("s"), CompatibilityLevel::Forward)
        .await
        .unwrap();
    assert_eq!(
        c.compatibility(Some("s")).await.unwrap(),
        CompatibilityLevel::Forward
    );
    assert_eq!(
        c.compatibility(Some("other")).await.unwrap(),
        CompatibilityLevel::Backward
    );
    assert!(
        c.check_compatibility("s", "1", &no_default)
            .await
            .unwrap()
            .is_compatible
    );
    c.register("s", &no_default).await.unwrap();

    c.set_compatibility(None, CompatibilityLevel::None)
        .await
        .unwrap();
    c.register("t", &order("")).await.unwrap();
    c.register("t", r#"{"type":"string"}"#).await.unwrap();
    assert_eq!(c.versions("t").await.unwrap(), [1, 2]);

    c.set_compatibility(Some("u"), CompatibilityLevel::FullTransitive)
        .await
        .unwrap();
    c.register("u", &order("")).await.unwrap();
    let with_default = order(r#",{"name":"n","type":"int","default":0}"#);
    c.register("u", &with_default).await.unwrap();
    assert_eq!(code(c.register("u", &no_default).await.unwrap_err()), 409);
}

#[tokio::test]
async fn state_survives_a_restart_when_persisted() {
    let dir = std::env::temp_dir().join(format!("spine-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("registry.json");
    let _ = std::fs::remove_file(&file);
    let start = || async {
        let h = DevRegistry::new()
            .persist_to(&file)
            .start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let c = RegistryClient::new(&h.url(), Default::default()).unwrap();
        (h, c)
    };
    let (h, c) = start().await;
    let id = c.register("s", &order("")).await.unwrap();
    c.set_compatibility(Some("s"), CompatibilityLevel::Full)
        .await
        .unwrap();
    h.stop().await;
    let (_h, c) = start().await;
    assert_eq!(c.register("s", &order("")).await.unwrap(), id);
    assert_eq!(
        c.compatibility(Some("s")).await.unwrap(),
        CompatibilityLevel::Full
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stopped_registry_is_reported_as_transient() {
    let (h, c) = start().await;
    h.stop().await;
    let e = c.schema_by_id(1).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
}

#[tokio::test]
async fn a_registry_answering_5xx_is_transient_and_404_is_not() {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/schemas/ids/1",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }),
        )
        .route(
            "/schemas/ids/2",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = RegistryClient::new(&url, Default::default()).unwrap();
    assert!(c.schema_by_id(1).await.unwrap_err().is_transient());
    assert!(c.schema_by_id(2).await.unwrap_err().is_transient());
    let e = c.schema_by_id(3).await.unwrap_err();
    assert!(
        !e.is_transient() && matches!(e, RegistryError::NotFound { .. }),
        "{e}"
    );
}
