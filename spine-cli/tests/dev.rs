//! `spine dev`: a broker on the fixed bootstrap port (librdkafka's mock behind
//! a forwarder) and the dev registry, with schemas registered at startup;
//! produce and consume through it, query the registry, then Ctrl-C.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use spine_kafka_avro::registry::{Auth, RegistryClient};

use common::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_kafka_and_a_registry_until_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("schemas")).unwrap();
    std::fs::write(
        tmp.path().join("schemas/demo.avsc"),
        r#"{"type": "record", "name": "Demo", "fields": [{"name": "n", "type": "long"}]}"#,
    )
    .unwrap();
    let (broker, registry) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_spine"))
        .args([
            "dev",
            "--broker-port",
            &broker.to_string(),
            "--registry-port",
            &registry.to_string(),
        ])
        .args(["--topic", "demo:2", "--register", "schemas"])
        .current_dir(tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ready.") {
            break;
        }
    }
    assert!(
        banner.contains(&format!("\"bootstrap.servers\" = \"127.0.0.1:{broker}\"")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("url = \"http://127.0.0.1:{registry}\"")),
        "{banner}"
    );
    assert!(
        banner.contains("demo-value"),
        "registered at startup: {banner}"
    );

    let bootstrap = format!("127.0.0.1:{broker}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<(), _>::to("demo")
                .payload("hello")
                .partition(1),
            Duration::from_secs(10),
        )
        .await
        .expect("produced through the fixed port");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "dev-test")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("demo", 1, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            got = m.payload().map(|p| String::from_utf8_lossy(p).into_owned());
        }
    }
    assert_eq!(got.as_deref(), Some("hello"));

    let client = RegistryClient::new(&format!("http://127.0.0.1:{registry}"), Auth::None).unwrap();
    assert_eq!(client.subjects().await.unwrap(), ["demo-value"]);

    drop(consumer);
    drop(producer);
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "Ctrl-C stops it cleanly: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.starts_with("Stopping")), "{rest:?}");
}

/// `spine dev` on free ports; returns the child and the registry's URL once
/// it says it is ready.
fn start_dev(dir: &std::path::Path) -> (std::process::Child, String) {
    let (broker, registry) = (free_port(), free_port());
    let mut child = common::spine(dir)
        .args(["dev", "--broker-port", &broker.to_string()])
        .args(["--registry-port", &registry.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.map_while(Result::ok).any(|l| l.starts_with("Ready."));
    assert!(ready, "spine dev never said Ready.");
    (child, format!("http://127.0.0.1:{registry}"))
}

/// The schema changes of issue 15 that the dev registry once waved through,
/// each refused by `spine schemas register` at every level that forbids it,
/// with a message naming the rule and the field, branch or symbol; and the
/// rename with an alias, once refused, accepted under BACKWARD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_register_refuses_each_incompatible_change_against_spine_dev() {
    use spine_kafka_avro::registry::CompatibilityLevel as L;
    let record = |fields: &str| {
        format!(r#"{{"type":"record","name":"T","namespace":"ex","fields":[{fields}]}}"#)
    };
    let a = r#"{"name":"a","type":"int"}"#;
    let nullable = r#"{"name":"a","type":["null","int"],"default":null}"#;
    let u2 = r#"{"name":"u","type":["int","string"]}"#;
    let u3 = r#"{"name":"u","type":["int","string","boolean"]}"#;
    let e2 = r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}}"#;
    let e3 = r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","Z"]}}"#;
    let ab = r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#;
    let t = record(a);
    // (case, v1, v2, the levels that refuse it, what the refusal names)
    type Case<'a> = (&'a str, String, String, Vec<L>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        ("drop_nullable", record(nullable), record(a), vec![L::Backward, L::Full], vec!["missing union branch", "field `a`", "`null`"]),
        ("make_nullable", record(a), record(nullable), vec![L::Forward, L::Full], vec!["missing union branch", "field `a`", "`null`"]),
        ("union_widen", record(u2), record(u3), vec![L::Forward, L::Full], vec!["missing union branch", "field `u`", "`boolean`"]),
        ("union_narrow", record(u3), record(u2), vec![L::Backward, L::Full], vec!["missing union branch", "field `u`", "`boolean`"]),
        ("enum_add_symbol", record(e2), record(e3), vec![L::Forward, L::Full], vec!["missing enum symbol", "field `e`", "`Z`"]),
        ("enum_remove_symbol", record(e3), record(e2), vec![L::Backward, L::Full], vec!["missing enum symbol", "field `e`", "`Z`"]),
        ("remove_field_no_default", record(ab), record(a), vec![L::Forward, L::Full], vec!["missing default", "field `b`"]),
        ("record_to_union_with_record", t.clone(), format!(r#"["null",{t}]"#), vec![L::Forward, L::Full], vec!["missing union branch", "`null`"]),
        (
            "rename_record_with_alias",
            t.clone(),
            r#"{"type":"record","name":"T2","namespace":"ex","aliases":["ex.T"],"fields":[{"name":"a","type":"int"}]}"#.to_owned(),
            vec![L::Forward, L::Full],
            vec!["name mismatch", "`ex.T2`"],
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("schemas")).unwrap();
    let (mut dev, url) = start_dev(tmp.path());
    let client = RegistryClient::new(&url, Auth::None).unwrap();
    let register = |dir: &std::path::Path| {
        common::spine(dir)
            .args(["schemas", "register", "--registry", &url])
            .output()
            .unwrap()
    };
    for (name, v1, v2, levels, words) in &cases {
        // One directory per case, so that each run registers one subject.
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        let file = dir.join("schemas").join(format!("{name}.avsc"));
        let subject = format!("{name}-value");
        std::fs::write(&file, v1).unwrap();
        client
            .set_compatibility(Some(&subject), L::None)
            .await
            .unwrap();
        let out = register(&dir);
        assert!(
            out.status.success(),
            "{name}: v1 registers: {}",
            common::text(&out)
        );
        std::fs::write(&file, v2).unwrap();
        for level in levels {
            client
                .set_compatibility(Some(&subject), *level)
                .await
                .unwrap();
            let out = register(&dir);
            let t = common::text(&out);
            assert!(
                !out.status.success(),
                "{name} under {level:?} must be refused: {t}"
            );
            for w in words {
                assert!(
                    t.contains(w),
                    "{name} under {level:?}: the message names {w}: {t}"
                );
            }
            assert_eq!(
                client.versions(&subject).await.unwrap(),
                [1],
                "{name} under {level:?}: nothing registered"
            );
        }
    }
    // The reader's alias matches the writer's name: BACKWARD accepts it.
    let dir = tmp.path().join("rename_record_with_alias");
    client
        .set_compatibility(Some("rename_record_with_alias-value"), L::Backward)
        .await
        .unwrap();
    let out = register(&dir);
    assert!(out.status.success(), "{}", common::text(&out));
    assert_eq!(
        client
            .versions("rename_record_with_alias-value")
            .await
            .unwrap(),
        [1, 2]
    );
    common::signal(&mut dev, "-INT");
}
