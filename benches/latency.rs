//! End-to-end latency: from the producer's send to the handler's start.
//!
//! ```sh
//! scripts/bench --latency                       # 5 runs, 60 s each, per side
//! scripts/bench --latency --runs 3 --seconds 30
//! ```
//!
//! A producer sends 5,000 msgs/s (5 every millisecond) for `--seconds`; each
//! message carries its send time (the wall clock, on the same machine). Two
//! sides, each in its own child process, out of the box:
//! - `raw`: an rdkafka `StreamConsumer` loop with librdkafka's defaults,
//!   timing each message as it is received;
//! - `raw-tuned`: the same loop with the consumer settings Spine sets by
//!   default (`fetch.wait.max.ms` 10, `fetch.queue.backoff.ms` 20,
//!   `queued.min.messages` 40000, `queued.max.messages.kbytes` 16384), so
//!   that `spine` against it is the framework's own cost;
//! - `spine`: one `#[on]` handler with Spine's defaults, timing each message
//!   as the handler starts.
//!
//! Before the measured stream, the producer sends warm-up messages until the
//! child has seen one (so that joining the group is not measured). Each run
//! reports p50, p99, p99.9 and the maximum, in microseconds; the summary
//! gives each side's median over the runs, and writes `latency.json` and
//! `latency.png` (latency by percentile, the runs' median) to `target/bench`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{arg, bootstrap};
use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message};
use serde::{Deserialize, Serialize};
use spine::prelude::*;
use std::sync::Mutex;

const SIDES: [&str; 3] = ["raw", "raw-tuned", "spine"];
const RATE_PER_MS: u64 = 5;

#[derive(Serialize, Deserialize)]
struct Stamp {
    /// Microseconds since the epoch at send.
    sent_us: u64,
    /// A warm-up message: not measured; the first one seen says "ready".
    warm: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What a child collects: latencies of the measured messages.
struct Latencies {
    want: u64,
    ready: std::sync::atomic::AtomicBool,
    micros: Mutex<Vec<u64>>,
    done: tokio::sync::Notify,
}

impl Latencies {
    fn seen(&self, s: &Stamp) {
        let latency = now_us().saturating_sub(s.sent_us);
        if s.warm {
            if !self.ready.swap(true, std::sync::atomic::Ordering::Relaxed) {
                println!("ready");
                let _ = std::io::stdout().flush();
            }
            return;
        }
        let mut m = self.micros.lock().expect("latencies");
        m.push(latency);
        if m.len() as u64 == self.want {
            self.done.notify_one();
        }
    }

    fn report(&self) -> String {
        let mut m = self.micros.lock().expect("latencies").clone();
        m.sort_unstable();
        let at = |q: f64| m[((m.len() as f64 * q) as usize).min(m.len() - 1)];
        let dist: Vec<String> = common::report::nines()
            .into_iter()
            .map(|x| at(common::report::quantile(x)).to_string())
            .collect();
        format!(
            "n={} p50={} p99={} p999={} max={} dist={}",
            m.len(),
            at(0.50),
            at(0.99),
            at(0.999),
            m[m.len() - 1],
            dist.join(",")
        )
    }
}

#[on(event = "stamp")]
async fn stamped(s: Stamp, l: State<Arc<Latencies>>) {
    l.seen(&s);
}

async fn child(side: &str, topic: &str, want: u64) -> String {
    let lat = Arc::new(Latencies {
        want,
        ready: Default::default(),
        micros: Mutex::new(Vec::with_capacity(want as usize)),
        done: tokio::sync::Notify::new(),
    });
    let group = format!("latency-{side}-{}", uuid::Uuid::new_v4());
    match side {
        "raw" | "raw-tuned" => {
            let mut cc = ClientConfig::new();
            cc.set("bootstrap.servers", bootstrap())
                .set("group.id", &group)
                .set("enable.auto.commit", "false");
            if side == "raw-tuned" {
                // Spine's defaults (spine-core's consumer/mod.rs).
                cc.set("fetch.wait.max.ms", "10")
                    .set("fetch.queue.backoff.ms", "20")
                    .set("queued.min.messages", "40000")
                    .set("queued.max.messages.kbytes", "16384");
            }
            let consumer: StreamConsumer = cc.create().expect("consumer");
            consumer.subscribe(&[topic]).expect("subscribe");
            let mut stream = consumer.stream();
            let done = lat.done.notified();
            tokio::pin!(done);
            loop {
                tokio::select! {
                    _ = &mut done => break,
                    Some(Ok(m)) = stream.next() => {
                        if let Some(s) = m.payload().and_then(|p| serde_json::from_slice::<Stamp>(p).ok()) {
                            lat.seen(&s);
                        }
                    }
                }
            }
        }
        _ => {
            let mut config = spine::Config::default();
            config.app.name = "latency".into();
            config.app.group = Some(group);
            config.app.topics = vec![topic.to_owned()];
            config.set_kafka("bootstrap.servers", bootstrap());
            let app = Spine::builder()
                .config(config)
                .state(lat.clone())
                .handlers(spine::handlers![stamped])
                .build()
                .expect("app");
            let l = lat.clone();
            app.run_until(async move { l.done.notified().await })
                .await
                .expect("spine run");
        }
    }
    lat.report()
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

fn send(p: &FutureProducer, topic: &str, warm: bool) {
    let body = serde_json::to_vec(&Stamp {
        sent_us: now_us(),
        warm,
    })
    .expect("json");
    let rec = FutureRecord::<(), _>::to(topic).payload(&body).headers(
        rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "ce_type",
            value: Some("stamp"),
        }),
    );
    // Fire and forget: the delivery future is not needed.
    drop(p.send_result(rec));
}

/// One run of one side: the child, warmed up, then `seconds` of the stream.
fn run(side: &str, seconds: u64, rt: &tokio::runtime::Runtime) -> Vec<(String, String)> {
    let topic = format!(
        "bench.latency.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .expect("admin");
        admin
            .create_topics(
                [&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topic");
    });
    let want = seconds * 1000 * RATE_PER_MS;
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--child",
            side,
            "--topic",
            &topic,
            "--messages",
            &want.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let p = producer();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let warming = {
        let (p, topic, ready) = (p.clone(), topic.clone(), ready.clone());
        std::thread::spawn(move || {
            while !ready.load(std::sync::atomic::Ordering::Relaxed) {
                send(&p, &topic, true);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    match lines.next() {
        Some(Ok(l)) if l == "ready" => {}
        other => panic!("{side}: no ready line: {other:?}"),
    }
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    warming.join().expect("warm-up");
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..seconds * 1000 {
            tick.tick().await;
            for _ in 0..RATE_PER_MS {
                send(&p, &topic, false);
            }
        }
        let _ = p.flush(Duration::from_secs(10));
    });
    let report = lines
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("{side}: no report"));
    let _ = child.wait();
    report
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(side) = arg(&args, "--child") {
        let topic = arg(&args, "--topic").expect("--topic");
        let want: u64 = arg(&args, "--messages")
            .and_then(|v| v.parse().ok())
            .expect("--messages");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        println!("{}", rt.block_on(child(&side, &topic, want)));
        return;
    }
    let runs: usize = arg(&args, "--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seconds: u64 = arg(&args, "--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "{} msgs/s for {seconds} s per run, produce → handler start, µs (broker {}):",
        RATE_PER_MS * 1000,
        bootstrap()
    );
    println!(
        "{:<6} {:>3} {:>9} {:>9} {:>9} {:>9}",
        "side", "run", "p50", "p99", "p99.9", "max"
    );
    let mut all: Vec<Vec<Vec<(String, String)>>> = vec![Vec::new(); SIDES.len()];
    for r in 0..runs {
        for k in 0..SIDES.len() {
            let i = (r + k) % SIDES.len();
            let got = run(SIDES[i], seconds, &rt);
            let v = |name: &str| field(&got, name);
            println!(
                "{:<6} {:>3} {:>9} {:>9} {:>9} {:>9}",
                SIDES[i],
                r + 1,
                v("p50"),
                v("p99"),
                v("p999"),
                v("max")
            );
            all[i].push(got);
        }
    }
    println!("\nSummary: median over {runs} runs (range), µs:");
    let mut json_sides = Vec::new();
    let mut curves = Vec::new();
    for (i, side) in SIDES.iter().enumerate() {
        let col = |name: &str| {
            let mut v: Vec<u64> = all[i].iter().map(|g| field(g, name)).collect();
            v.sort_unstable();
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let show = |(m, lo, hi): (u64, u64, u64)| format!("{m} ({lo}–{hi})");
        println!(
            "  {side:<9} p50 {}  p99 {}  p99.9 {}",
            show(col("p50")),
            show(col("p99")),
            show(col("p999"))
        );
        // The curve: at each percentile, the median over the runs.
        let dists: Vec<Vec<u64>> = all[i]
            .iter()
            .map(|g| {
                let d = g.iter().find(|(k, _)| k == "dist").map_or("", |(_, v)| v);
                d.split(',').filter_map(|x| x.parse().ok()).collect()
            })
            .collect();
        let millis: Vec<f64> = (0..common::report::nines().len())
            .map(|j| {
                let mut at: Vec<u64> = dists.iter().filter_map(|d| d.get(j).copied()).collect();
                at.sort_unstable();
                at.get(at.len() / 2).copied().unwrap_or(0) as f64 / 1e3
            })
            .collect();
        let stat = |name: &str| {
            let (m, lo, hi) = col(name);
            serde_json::json!({"median": m, "min": lo, "max": hi})
        };
        json_sides.push(serde_json::json!({
            "side": side,
            "p50_us": stat("p50"),
            "p99_us": stat("p99"),
            "p999_us": stat("p999"),
            "max_us": stat("max"),
            "curve_ms": {"nines": common::report::nines(), "millis": millis},
        }));
        curves.push(common::report::Curve {
            side: side.to_string(),
            millis,
        });
    }
    let title = format!(
        "Produce → handler start at {} msgs/s, {runs} × {seconds} s",
        RATE_PER_MS * 1000
    );
    common::report::write_json(
        "latency",
        &serde_json::json!({
            "bench": "latency",
            "title": title,
            "rate_per_s": RATE_PER_MS * 1000,
            "seconds": seconds,
            "runs_per_side": runs,
            "sides": json_sides,
        }),
    );
    common::report::latency_chart("latency", &title, &curves);
}

/// A numeric field of a child's report line (0 if absent).
fn field(got: &[(String, String)], name: &str) -> u64 {
    got.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
