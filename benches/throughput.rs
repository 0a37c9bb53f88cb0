//! Throughput of Spine against hand-written rdkafka loops, in one run, on the
//! same broker and the same pre-produced topic of JSON orders.
//!
//! ```sh
//! scripts/bench                          # starts tansu, then runs this
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
//!
//! `spine` vs `raw` is the framework's own cost. The `-event` pair adds
//! routing by CloudEvents header, which costs the same in both: librdkafka
//! parses (and allocates) a message's headers on first access.
//!
//! Every consumer uses `fetch.wait.max.ms=10` (with librdkafka's default,
//! tansu's fetch wait caps any fast consumer and the bench would measure the
//! broker) and `fetch.queue.backoff.ms=20`, Spine's default (librdkafka's 1 s
//! stalls any consumer that is slower than the fetcher). Throughput is
//! measured from the first message to the last, so group joins do not count;
//! CPU time likewise. A run "stalls" if any gap between two messages is a
//! second or more.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde::Deserialize;
use spine::prelude::*;

const STALL: Duration = Duration::from_secs(1);
const SIDES: [&str; 4] = ["raw", "spine", "raw-event", "spine-event"];

/// The payload every side decodes (~90 bytes of JSON).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct OrderPlaced {
    order_id: String,
    customer: String,
    amount_cents: i64,
}

fn bootstrap() -> String {
    std::env::var("SPINE_BENCH_BOOTSTRAP").unwrap_or_else(|_| {
        eprintln!(
            "SPINE_BENCH_BOOTSTRAP is not set: run the benchmark with `scripts/bench`, which starts \
             a tansu broker, or point SPINE_BENCH_BOOTSTRAP at a broker you started yourself."
        );
        std::process::exit(2)
    })
}

/// What one child reports on stdout, as `key=value` pairs.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    messages: u64,
    checksum: u64,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_kib: u64,
    max_gap_ms: f64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
    fn cpu_us_per_msg(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.messages as f64
    }
    fn stalled(&self) -> bool {
        self.max_gap_ms >= STALL.as_secs_f64() * 1e3
    }
    fn print(&self) -> String {
        format!(
            "messages={} checksum={} seconds={} cpu_seconds={} peak_rss_kib={} max_gap_ms={}",
            self.messages,
            self.checksum,
            self.seconds,
            self.cpu_seconds,
            self.peak_rss_kib,
            self.max_gap_ms
        )
    }
    fn parse(line: &str) -> Option<Sample> {
        let mut s = Sample::default();
        for kv in line.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "messages" => s.messages = v.parse().ok()?,
                "checksum" => s.checksum = v.parse().ok()?,
                "seconds" => s.seconds = v.parse().ok()?,
                "cpu_seconds" => s.cpu_seconds = v.parse().ok()?,
                "peak_rss_kib" => s.peak_rss_kib = v.parse().ok()?,
                "max_gap_ms" => s.max_gap_ms = v.parse().ok()?,
                _ => {}
            }
        }
        (s.messages > 0).then_some(s)
    }
}

/// CPU time (user + system, all threads) and peak RSS of this process.
fn rusage() -> (f64, u64) {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime) + t(ru.ru_stime), ru.ru_maxrss as u64)
}

/// The librdkafka settings every side shares.
fn consumer_properties() -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", bootstrap()),
        ("auto.offset.reset", "earliest".into()),
        ("fetch.wait.max.ms", "10".into()),
        ("fetch.queue.backoff.ms", "20".into()),
        ("session.timeout.ms", "6000".into()),
    ]
}

/// The per-message bookkeeping every side does identically: count, checksum,
/// first and last arrival, largest gap between two arrivals.
struct Progress {
    want: u64,
    base: Instant,
    seen: AtomicU64,
    sum: AtomicU64,
    first_ns: AtomicU64,
    first_cpu_us: AtomicU64,
    last_ns: AtomicU64,
    max_gap_ns: AtomicU64,
    done: tokio::sync::Notify,
}

impl Progress {
    fn new(want: u64) -> Arc<Progress> {
        Arc::new(Progress {
            want,
            base: Instant::now(),
            seen: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            first_cpu_us: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            max_gap_ns: AtomicU64::new(0),
            done: tokio::sync::Notify::new(),
        })
    }

    /// Records one decoded order; returns true on the last wanted one.
    fn record(&self, o: &OrderPlaced) -> bool {
        let now = self.base.elapsed().as_nanos() as u64;
        let prev = self.last_ns.swap(now, Ordering::Relaxed);
        if self.first_ns.load(Ordering::Relaxed) == u64::MAX {
            self.first_ns.store(now, Ordering::Relaxed);
            self.first_cpu_us
                .store((rusage().0 * 1e6) as u64, Ordering::Relaxed);
        } else {
            self.max_gap_ns
                .fetch_max(now.saturating_sub(prev), Ordering::Relaxed);
        }
        self.sum.fetch_add(o.amount_cents as u64, Ordering::Relaxed);
        self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.want
    }

    fn sample(&self) -> Sample {
        let (cpu, rss) = rusage();
        let first = self.first_ns.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Relaxed);
        Sample {
            messages: self.seen.load(Ordering::Relaxed),
            checksum: self.sum.load(Ordering::Relaxed),
            seconds: last.saturating_sub(first) as f64 / 1e9,
            // From the first message to the last: startup is not per-message work.
            cpu_seconds: cpu - self.first_cpu_us.load(Ordering::Relaxed) as f64 / 1e6,
            peak_rss_kib: rss,
            max_gap_ms: self.max_gap_ns.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The baseline: a StreamConsumer loop that decodes each payload, and with
/// `by_event` first checks the `ce_type` header as a hand-written router must.
async fn raw_side(topic: &str, want: u64, by_event: bool) -> Sample {
    let mut cc = ClientConfig::new();
    for (k, v) in consumer_properties() {
        cc.set(k, v);
    }
    cc.set("group.id", format!("raw-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false");
    let consumer: StreamConsumer = cc.create().expect("consumer");
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

/// The same work through Spine: one handler, the app's defaults.
async fn spine_side(topic: &str, want: u64, by_event: bool) -> Sample {
    let mut config = spine::Config::default();
    config.app.name = "bench".into();
    config.app.group = Some(format!("spine-{}", uuid::Uuid::new_v4()));
    config.app.topics = vec![topic.to_owned()];
    for (k, v) in consumer_properties() {
        config.set_kafka(k, v);
    }
    let progress = Progress::new(want);
    let handlers = if by_event {
        spine::handlers![count_placed]
    } else {
        spine::handlers![count_any]
    };
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
    progress.sample()
}

/// Produces the topic; returns the checksum every side must reproduce.
async fn produce(topic: &str, messages: u64) -> u64 {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin");
    let new = NewTopic::new(topic, 3, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("create topic")
    {
        r.map_err(|(t, e)| format!("create {t}: {e}"))
            .expect("topic");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let mut pending = Vec::new();
    let mut checksum = 0u64;
    for i in 0..messages {
        let id = format!("order-{i:08}");
        let amount = 1000 + i % 5000;
        checksum += amount;
        let body = format!(
            r#"{{"order_id":"{id}","customer":"customer-{:04}","amount_cents":{amount}}}"#,
            i % 1000
        );
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_type",
                value: Some("order.placed"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(id.as_str()),
            });
        loop {
            let rec = FutureRecord::to(topic)
                .key(&id)
                .payload(&body)
                .headers(headers.clone());
            match producer.send_result(rec) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await, // queue full
            }
        }
        if pending.len() >= 50_000 {
            for f in pending.drain(..) {
                f.await.expect("delivery").expect("delivered");
            }
        }
    }
    for f in pending {
        f.await.expect("delivery").expect("delivered");
    }
    checksum
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn run_child(side: &str, topic: &str, messages: u64) -> Sample {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--child",
            side,
            "--topic",
            topic,
            "--messages",
            &messages.to_string(),
        ])
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().find_map(Sample::parse).unwrap_or_else(|| {
        panic!(
            "{side} child reported nothing (exit {:?}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Summary {
    rate: f64,
    rate_min: f64,
    rate_max: f64,
    cpu_us: f64,
    rss_mib: f64,
    stalls: usize,
}

fn summarize(samples: &[Sample]) -> Summary {
    let mut rates: Vec<f64> = samples.iter().map(Sample::rate).collect();
    let mut cpu: Vec<f64> = samples.iter().map(Sample::cpu_us_per_msg).collect();
    let mut rss: Vec<f64> = samples
        .iter()
        .map(|s| s.peak_rss_kib as f64 / 1024.0)
        .collect();
    Summary {
        rate_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        rate_max: rates.iter().copied().fold(0.0, f64::max),
        rate: median(&mut rates),
        cpu_us: median(&mut cpu),
        rss_mib: median(&mut rss),
        stalls: samples.iter().filter(|s| s.stalled()).count(),
    }
}

fn child(side: &str, topic: &str, messages: u64) -> Sample {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        match side {
            "raw" => raw_side(topic, messages, false).await,
            "raw-event" => raw_side(topic, messages, true).await,
            "spine" => spine_side(topic, messages, false).await,
            "spine-event" => spine_side(topic, messages, true).await,
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
        .block_on(produce(&topic, messages));
    println!(
        "Produced in {:.1}s. {runs} runs per side, in rotating order.\n",
        started.elapsed().as_secs_f64()
    );

    println!(
        "{:<12} {:>3} {:>12} {:>11} {:>13} {:>11}",
        "side", "run", "msgs/s", "CPU µs/msg", "peak RSS MiB", "max gap ms"
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); SIDES.len()];
    for run in 0..runs {
        // Rotate the order so that no side always goes first.
        for k in 0..SIDES.len() {
            let i = (run + k) % SIDES.len();
            let s = run_child(SIDES[i], &topic, messages);
            assert_eq!(
                s.checksum, checksum,
                "{} decoded different orders",
                SIDES[i]
            );
            println!(
                "{:<12} {:>3} {:>12.0} {:>11.3} {:>13.1} {:>11.1}{}",
                SIDES[i],
                run + 1,
                s.rate(),
                s.cpu_us_per_msg(),
                s.peak_rss_kib as f64 / 1024.0,
                s.max_gap_ms,
                if s.stalled() { "  STALL" } else { "" }
            );
            samples[i].push(s);
        }
    }
    let sums: Vec<Summary> = samples.iter().map(|s| summarize(s)).collect();
    println!("\nSummary: {runs} runs per side, {messages} messages per run (median, range):");
    for (name, x) in SIDES.iter().zip(&sums) {
        println!(
            "  {name:<12} {:>9.0} msgs/s ({:.0}–{:.0}), {:.3} CPU µs/msg, peak RSS {:.1} MiB, {} stalls",
            x.rate, x.rate_min, x.rate_max, x.cpu_us, x.rss_mib, x.stalls
        );
    }
    for (a, b) in [(1, 0), (3, 2)] {
        println!(
            "  {} / {}: throughput {:.2}×, CPU per message {:.2}×, peak RSS {:.2}×",
            SIDES[a],
            SIDES[b],
            sums[a].rate / sums[b].rate,
            sums[a].cpu_us / sums[b].cpu_us,
            sums[a].rss_mib / sums[b].rss_mib
        );
    }
}
