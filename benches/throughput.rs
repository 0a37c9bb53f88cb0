//! Throughput of Spine against hand-written rdkafka loops, in one run, on the
//! same broker and the same pre-produced topic of JSON orders.
//!
//! ```sh
//! scripts/bench                          # starts nisshi, then runs this
//! scripts/bench --runs 8 --messages 200000
//! ```
//!
//! Four sides, each in its own child process (so peak RSS and CPU time are
//! its own), `--runs` times each in rotating order:
//!
//! | side          | what it does per message                                      |
//! |---------------|---------------------------------------------------------------|
//! | `raw`         | StreamConsumer loop: decode the JSON payload into the struct  |
//! | `spine`       | one `#[on]` handler for the topic, taking the decoded struct  |
//! | `raw-event`   | the raw loop, plus reading the `ce_type` header to route      |
//! | `spine-event` | one `#[on(event = "order.placed")]` handler (routes by header)|
//! | `spine-http`  | `spine-event` with `[http] listen` on, and `/metrics` scraped every second |
//!
//! `spine` vs `raw` is the framework's own cost. The `-event` pair adds
//! routing by CloudEvents header, which costs the same in both: librdkafka
//! parses (and allocates) a message's headers on first access.
//!
//! Every consumer uses `fetch.wait.max.ms=10` (with librdkafka's default,
//! the broker's fetch wait caps any fast consumer and the bench would measure the
//! broker) and `fetch.queue.backoff.ms=20`, Spine's default (librdkafka's 1 s
//! stalls any consumer that is slower than the fetcher). Throughput is
//! measured from the first message to the last, so group joins do not count;
//! CPU time likewise. A run "stalls" if any gap between two messages is a
//! second or more.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{
    arg, bootstrap, compare, raw_consumer_config, spine_config, OrderPlaced, Progress, Sample,
};
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use spine::prelude::*;

const SIDES: [&str; 5] = ["raw", "spine", "raw-event", "spine-event", "spine-http"];

/// The baseline: a StreamConsumer loop that decodes each payload, and with
/// `by_event` first checks the `ce_type` header as a hand-written router must.
async fn raw_side(topic: &str, want: u64, by_event: bool) -> Sample {
    let consumer: StreamConsumer = raw_consumer_config("raw").create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut stream = consumer.stream();
    let progress = Progress::new(want);
    loop {
        match stream.next().await {
            Some(Ok(m)) => {
                if by_event {
                    let event = m.headers().and_then(|h| {
                        h.iter()
                            .filter(|h| h.key == "ce_type")
                            .last()
                            .and_then(|h| h.value)
                    });
                    if event != Some(&b"order.placed"[..]) {
                        continue;
                    }
                }
                let o: OrderPlaced = match serde_json::from_slice(m.payload().unwrap_or_default()) {
                    Ok(o) => o,
                    Err(e) => panic!("bad payload: {e}"),
                };
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

/// Every event of the subscribed topic: routing does not need the event name.
#[on]
async fn count_any(o: OrderPlaced, p: State<Arc<Progress>>) {
    if p.record(&o) {
        p.done.notify_one();
    }
}

/// Routed by the `ce_type` header.
#[on(event = "order.placed")]
async fn count_placed(o: OrderPlaced, p: State<Arc<Progress>>) {
    if p.record(&o) {
        p.done.notify_one();
    }
}

/// The same work through Spine: one handler, the app's defaults; with
/// `http`, the operations surface on and Prometheus' scrape every second.
async fn spine_side(topic: &str, want: u64, by_event: bool, http: bool) -> Sample {
    let progress = Progress::new(want);
    let handlers = if by_event {
        spine::handlers![count_placed]
    } else {
        spine::handlers![count_any]
    };
    let mut config = spine_config(topic);
    let scraper = http.then(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        config.http.listen = Some(format!("127.0.0.1:{port}"));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{port}/metrics");
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let scraped = client.get(&url).send().await;
                if let Ok(r) = scraped {
                    let _ = r.text().await;
                }
            }
        })
    });
    let app = Spine::builder()
        .config(config)
        .state(progress.clone())
        .handlers(handlers)
        .build()
        .expect("app");
    let p = progress.clone();
    app.run_until(async move { p.done.notified().await })
        .await
        .expect("spine run");
    if let Some(s) = scraper {
        s.abort();
    }
    progress.sample()
}

fn child(side: &str, topic: &str, messages: u64) -> Sample {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        match side {
            "raw" => raw_side(topic, messages, false).await,
            "raw-event" => raw_side(topic, messages, true).await,
            "spine" => spine_side(topic, messages, false, false).await,
            "spine-event" => spine_side(topic, messages, true, false).await,
            "spine-http" => spine_side(topic, messages, true, true).await,
            other => panic!("unknown side {other}; expected one of {SIDES:?}"),
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages: u64 = arg(&args, "--messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    if let Some(side) = arg(&args, "--child") {
        if std::env::var_os("RUST_LOG").is_some() {
            spine::init_tracing();
        }
        let topic = arg(&args, "--topic").expect("--topic");
        println!("{}", child(&side, &topic, messages).print());
        return;
    }
    let runs: usize = arg(&args, "--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let topic = format!(
        "bench.orders.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    println!(
        "Producing {messages} JSON orders to {topic} on {} ...",
        bootstrap()
    );
    let started = Instant::now();
    let checksum = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(common::produce(&topic, messages, |o| {
            serde_json::to_vec(o).expect("json")
        }));
    println!(
        "Produced in {:.1}s. {runs} runs per side, in rotating order.\n",
        started.elapsed().as_secs_f64()
    );
    compare(
        &SIDES,
        &[(1, 0), (3, 2), (4, 3)],
        runs,
        &topic,
        messages,
        checksum,
        &[],
    )
    .save(
        "throughput",
        &format!("JSON: {messages} messages, Spine vs raw rdkafka loops"),
        None,
    );
}
