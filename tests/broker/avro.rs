//! Avro end to end, on the test broker with the dev registry over HTTP: wire
//! compatibility with Python's confluent-kafka (its AvroSerializer writes what
//! Spine reads; Spine writes what its AvroDeserializer reads), and a registry
//! outage during which messages wait, then are all handled.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use apache_avro::AvroSchema;
use spine::avro::registry::{DevRegistry, DevRegistryHandle};
use spine::avro::{AvroCodec, CodecOptions, RegistryClient};
use spine::prelude::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
struct OrderPlaced {
    order_id: String,
    customer: String,
    amount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "shop")]
struct OrderAccepted {
    order_id: String,
    accepted: bool,
}

#[derive(Default)]
struct Seen(Mutex<Vec<OrderPlaced>>);

/// Takes every `order.placed` on the test's Avro topic; replies Avro.
#[on(event = "order.placed")]
async fn take(order: OrderPlaced, seen: State<Arc<Seen>>, meta: Meta) -> Reply {
    seen.0 .0.lock().unwrap().push(order.clone());
    let reply = OrderAccepted {
        order_id: order.order_id,
        accepted: true,
    };
    spine::avro::reply(format!("{}.accepted", meta.topic), "order.accepted", reply)
}

async fn registry() -> DevRegistryHandle {
    DevRegistry::new()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn avro_config(group: &str, topic: &str, registry: &str) -> spine::Config {
    let mut cfg = config(group);
    cfg.app.topics = vec![topic.to_owned()];
    cfg.schema_registry.url = Some(registry.to_owned());
    cfg.schema_registry.auto_register = true;
    for t in [topic.to_owned(), format!("{topic}.accepted")] {
        cfg.topics.insert(
            t,
            spine::config::TopicConfig {
                codec: Some("avro".into()),
                ..Default::default()
            },
        );
    }
    cfg
}

fn app(cfg: spine::Config, seen: Arc<Seen>) -> spine::App {
    Spine::builder()
        .config(cfg)
        .state(seen)
        .handlers(spine::handlers![take])
        .build()
        .expect("app builds")
}

// Multi-threaded: the dev registry must keep serving while the Python
// clients (blocking child processes) talk to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_avro_producers_and_consumers_interoperate_with_spine() {
    let registry = registry().await;
    let topic = unique("py-avro");
    let accepted = format!("{topic}.accepted");
    create_topics(&[&topic, &accepted], 2).await;
    let run = unique("run");

    // confluent-kafka's AvroSerializer registers its schema and writes 20 orders.
    let out = Command::new(python())
        .arg(py_script("avro_produce.py"))
        .args(["--bootstrap", &bootstrap(), "--registry", &registry.url()])
        .args(["--topic", &topic, "--run", &run, "--count", "20"])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let seen = Arc::new(Seen::default());
    let app = app(
        avro_config(&unique("py-avro"), &topic, &registry.url()),
        seen.clone(),
    );
    let stop = app.shutdown_handle();
    let task = tokio::spawn(app.run_until(std::future::pending()));
    eventually(Duration::from_secs(30), "20 Avro orders decoded", || {
        seen.0.lock().unwrap().len() >= 20
    })
    .await;

    let mut got = seen.0.lock().unwrap().clone();
    got.sort_by_key(|o| o.order_id[run.len() + 1..].parse::<u32>().unwrap());
    for (i, o) in got.iter().enumerate() {
        assert_eq!(
            o,
            &OrderPlaced {
                order_id: format!("{run}-{i}"),
                customer: format!("py-{}", i % 3),
                amount_cents: 1000 + i as i64,
            }
        );
    }

    // The other way: Spine's Avro replies, decoded by confluent-kafka's AvroDeserializer.
    let out = Command::new(python())
        .arg(py_script("avro_consume.py"))
        .args(["--bootstrap", &bootstrap(), "--registry", &registry.url()])
        .args(["--topic", &accepted, "--run", &run, "--count", "20"])
        .output()
        .expect("python runs");
    stop.trigger();
    task.await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "python consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 20);
    for r in replies {
        assert_eq!(r["record"]["accepted"], true);
        assert!(r["record"]["order_id"].as_str().unwrap().starts_with(&run));
        assert_eq!(r["ce_type"], "order.accepted");
    }
}

#[tokio::test]
async fn messages_wait_for_a_registry_outage_and_none_is_lost() {
    let dir = std::env::temp_dir().join(format!("spine-e2e-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("registry.json");
    let _ = std::fs::remove_file(&state);
    let registry = DevRegistry::new()
        .persist_to(&state)
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (addr, url) = (registry.addr(), registry.url());
    let topic = unique("outage");
    create_topics(&[&topic, &format!("{topic}.accepted")], 1).await;
    let run = unique("run");

    // Frame 10 orders while the registry is up, then take it down.
    let writer = AvroCodec::new(
        RegistryClient::new(&url, Default::default()).unwrap(),
        CodecOptions {
            auto_register: true,
            ..Default::default()
        },
    );
    let schema = serde_json::to_string(&OrderPlaced::get_schema()).unwrap();
    let p = producer();
    for i in 0..10 {
        let order = OrderPlaced {
            order_id: format!("{run}-{i}"),
            customer: "c".into(),
            amount_cents: i,
        };
        let bytes = writer
            .encode_value(&topic, &order, Some(&schema))
            .await
            .unwrap();
        produce(
            &p,
            &topic,
            Some(&order.order_id),
            &bytes,
            &[("ce_type", "order.placed")],
        )
        .await;
    }
    registry.stop().await;

    let group = unique("outage");
    let seen = Arc::new(Seen::default());
    let app = app(avro_config(&group, &topic, &url), seen.clone());
    let stats = app.stats();
    let stop = app.shutdown_handle();
    let task = tokio::spawn(app.run_until(std::future::pending()));
    eventually(Duration::from_secs(30), "the messages are consumed", || {
        stats.snapshot().consumed >= 10
    })
    .await;
    // Positive evidence that they are held: they waited for the registry,
    // and asked it again after a backoff.
    eventually(
        Duration::from_secs(30),
        "the messages wait for the registry",
        || stats.snapshot().codec_waits >= 2,
    )
    .await;
    let s = stats.snapshot();
    assert_eq!(
        (s.handled, s.dead_lettered),
        (0, 0),
        "nothing handled, nothing dead-lettered: {s:?}"
    );
    assert!(
        committed(&group, &topic, 1).get(&0).copied().unwrap_or(0) == 0,
        "no offset committed while the registry is down"
    );

    let _back = DevRegistry::new()
        .persist_to(&state)
        .start(addr)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "all handled after the registry returns",
        || seen.0.lock().unwrap().len() >= 10,
    )
    .await;
    eventually(Duration::from_secs(10), "committed to the end", || {
        committed(&group, &topic, 1).get(&0) == Some(&10)
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    assert_eq!(stats.snapshot().dead_lettered, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
