//! Avro throughput: Spine against a hand-written loop doing the same work, in
//! one run, on the same broker and the same pre-produced topic of Avro orders
//! in the Confluent wire format.
//!
//! ```sh
//! scripts/bench --avro                     # starts nisshi, then runs this
//! ```
//!
//! | side         | what it does per message                                       |
//! |--------------|----------------------------------------------------------------|
//! | `raw-avro`   | StreamConsumer loop: strip the 5-byte header, decode with the  |
//! |              | writer schema resolved to the reader's (apache-avro, schema    |
//! |              | already in hand), deserialize into the struct                  |
//! | `spine-avro` | one `#[on]` handler on a `codec = "avro"` topic                |
//!
//! The parent starts an in-process dev schema registry; Spine fetches the
//! writer schema from it (the registry calls are reported: one per schema id
//! is expected). Settings as in `throughput.rs`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::{AvroSchema, Schema};
use common::{
    arg, arg_or, bootstrap, compare, raw_consumer_config, spine_config, OrderPlaced, Progress,
    Sample,
};
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use spine::avro::{AvroCodec, RegistryClient};
use spine::config::TopicConfig;
use spine::prelude::*;

const SIDES: [&str; 2] = ["raw-avro", "spine-avro"];

/// The baseline: rdkafka, then apache-avro decode and resolution into the struct.
async fn raw_side(topic: &str, want: u64, registry: &str) -> Sample {
    // The schema in hand before the clock starts: one fetch, outside the loop.
    let client = RegistryClient::new(registry, Default::default()).expect("client");
    let latest = client
        .version(&format!("{topic}-value"), "latest")
        .await
        .expect("schema");
    let writer = Schema::parse_str(&latest.schema).expect("writer schema");
    let reader_schema = OrderPlaced::get_schema();
    let reader = GenericDatumReader::builder(&writer)
        .reader_schema(&reader_schema)
        .build()
        .expect("resolving reader");

    let consumer: StreamConsumer = raw_consumer_config("raw-avro").create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut stream = consumer.stream();
    let progress = Progress::new(want);
    loop {
        match stream.next().await {
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or_default();
                let (_id, mut body) = spine::avro::wire::split(payload).expect("framed");
                let value = reader.read_value(&mut body).expect("decodes");
                let o: OrderPlaced = apache_avro::from_value(&value).expect("deserializes");
                if progress.record(&o) {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("raw: consumer error {e}"),
            None => break,
        }
    }
    progress.sample()
}

#[on]
async fn count_order(o: OrderPlaced, p: State<Arc<Progress>>) {
    if p.record(&o) {
        p.done.notify_one();
    }
}

/// The same work through Spine: one handler on an Avro topic.
async fn spine_side(topic: &str, want: u64, registry: &str) -> Sample {
    let mut config = spine_config(topic);
    config.schema_registry.url = Some(registry.to_owned());
    config.topics.insert(
        topic.to_owned(),
        TopicConfig {
            codec: Some("avro".into()),
            ..Default::default()
        },
    );
    if let Ok(d) = std::env::var("BENCH_RDKAFKA_DEBUG") {
        config.set_kafka("debug", d).set_kafka("log_level", "7");
    }
    let codec = Arc::new(AvroCodec::from_config(&config).expect("codec"));
    let shared = codec.clone();
    let progress = Progress::new(want);
    let app = Spine::builder()
        .config(config)
        .codec("avro", move |_| Ok(shared.clone()))
        .state(progress.clone())
        .handlers(spine::handlers![count_order])
        .build()
        .expect("app");
    let p = progress.clone();
    let stats = app.stats();
    let watch = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            eprintln!("spine-avro child: {:?}", stats.snapshot());
        }
    });
    app.run_until(async move { p.done.notified().await })
        .await
        .expect("spine run");
    watch.abort();
    Sample {
        registry_calls: codec.client().calls(),
        ..progress.sample()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages: u64 = arg_or(&args, "--messages", 200_000);
    let registry = arg(&args, "--registry");
    if common::child(&args, |side, topic| async move {
        let registry = registry.expect("--registry");
        match side.as_str() {
            "raw-avro" => raw_side(&topic, messages, &registry).await,
            "spine-avro" => spine_side(&topic, messages, &registry).await,
            other => panic!("unknown side {other}; expected one of {SIDES:?}"),
        }
    }) {
        return;
    }
    let runs: usize = arg_or(&args, "--runs", 8);
    let topic = format!(
        "bench.avro.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // The registry serves the children from this process's runtime.
    let registry = rt
        .block_on(spine::avro::DevRegistry::new().start("127.0.0.1:0".parse().unwrap()))
        .expect("dev registry");
    println!(
        "Producing {messages} Avro orders to {topic} on {} (registry {}) ...",
        bootstrap(),
        registry.url()
    );
    let started = Instant::now();
    let checksum = rt.block_on(async {
        let codec = AvroCodec::new(
            RegistryClient::new(&registry.url(), Default::default()).expect("client"),
            spine::avro::CodecOptions {
                auto_register: true,
                ..Default::default()
            },
        );
        let schema = serde_json::to_string(&OrderPlaced::get_schema()).expect("schema");
        // Registers the schema and caches the encoder.
        codec
            .encode_value(&topic, &common::order(0), Some(&schema))
            .await
            .expect("encodes");
        let encode = |o: &OrderPlaced| {
            futures::executor::block_on(codec.encode_value(&topic, o, Some(&schema)))
                .expect("encodes")
        };
        common::produce(&topic, messages, encode).await
    });
    println!(
        "Produced in {:.1}s. {runs} runs per side, in rotating order.\n",
        started.elapsed().as_secs_f64()
    );
    let extra = ["--registry".to_owned(), registry.url()];
    let _guard = rt.enter();
    compare(&SIDES, &[(1, 0)], runs, &topic, messages, checksum, &extra).save(
        "avro",
        &format!("Avro: {messages} messages, Spine vs raw"),
        None,
    );
    drop(registry);
}
