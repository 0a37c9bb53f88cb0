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
