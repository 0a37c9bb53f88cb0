//! What the throughput benchmarks share: the payload type, the per-message
//! bookkeeping every side does identically, producing the topic, running each
//! side in its own child process, and the summary.
#![allow(dead_code)] // each bench binary uses a subset

pub mod report;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

pub const STALL: Duration = Duration::from_secs(1);

/// The payload every side decodes.
#[derive(Debug, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "bench")]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer: String,
    pub amount_cents: i64,
}

/// Sample order `i`.
pub fn order(i: u64) -> OrderPlaced {
    OrderPlaced {
        order_id: format!("order-{i:08}"),
        customer: format!("customer-{:04}", i % 1000),
        amount_cents: (1000 + i % 5000) as i64,
    }
}

pub fn bootstrap() -> String {
    std::env::var("SPINE_BENCH_BOOTSTRAP").unwrap_or_else(|_| {
        eprintln!(
            "SPINE_BENCH_BOOTSTRAP is not set: run the benchmark with `scripts/bench`, which starts \
             the test broker (nisshi), or point SPINE_BENCH_BOOTSTRAP at a broker you started yourself."
        );
        std::process::exit(2)
    })
}

/// What one child reports on stdout, as `key=value` pairs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub messages: u64,
    pub checksum: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_kib: u64,
    pub max_gap_ms: f64,
    /// Schema registry requests made (Avro sides).
    pub registry_calls: u64,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
    pub fn cpu_us_per_msg(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.messages as f64
    }
    pub fn stalled(&self) -> bool {
        self.max_gap_ms >= STALL.as_secs_f64() * 1e3
    }
    pub fn print(&self) -> String {
        format!(
            "messages={} checksum={} seconds={} cpu_seconds={} peak_rss_kib={} max_gap_ms={} registry_calls={}",
            self.messages,
            self.checksum,
            self.seconds,
            self.cpu_seconds,
            self.peak_rss_kib,
            self.max_gap_ms,
            self.registry_calls
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
                "registry_calls" => s.registry_calls = v.parse().ok()?,
                _ => {}
            }
        }
        (s.messages > 0).then_some(s)
    }
}

/// CPU time (user + system, all threads) and peak RSS of this process.
pub fn rusage() -> (f64, u64) {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime) + t(ru.ru_stime), ru.ru_maxrss as u64)
}

/// The librdkafka settings every side shares.
pub fn consumer_properties() -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", bootstrap()),
        ("auto.offset.reset", "earliest".into()),
        ("fetch.wait.max.ms", "10".into()),
        ("fetch.queue.backoff.ms", "20".into()),
        ("session.timeout.ms", "6000".into()),
    ]
}

/// A raw consumer with the shared settings and a fresh group.
pub fn raw_consumer_config(prefix: &str) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in consumer_properties() {
        cc.set(k, v);
    }
    cc.set("group.id", format!("{prefix}-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false");
    cc
}

/// A Spine configuration with the shared settings and a fresh group.
pub fn spine_config(topic: &str) -> spine::Config {
    let mut config = spine::Config::default();
    config.app.name = "bench".into();
    config.app.group = Some(format!("spine-{}", uuid::Uuid::new_v4()));
    config.app.topics = vec![topic.to_owned()];
    for (k, v) in consumer_properties() {
        config.set_kafka(k, v);
    }
    config
}

/// The per-message bookkeeping every side does identically: count, checksum,
/// first and last arrival, largest gap between two arrivals.
pub struct Progress {
    want: u64,
    base: Instant,
    /// The wall clock at `base`, in ns since the epoch: processes compare
    /// their first and last arrivals by it.
    base_epoch_ns: u64,
    seen: AtomicU64,
    sum: AtomicU64,
    first_ns: AtomicU64,
    first_cpu_us: AtomicU64,
    last_ns: AtomicU64,
    max_gap_ns: AtomicU64,
    pub done: tokio::sync::Notify,
}

impl Progress {
    pub fn new(want: u64) -> Arc<Progress> {
        Arc::new(Progress {
            want,
            base: Instant::now(),
            base_epoch_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
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
    pub fn record(&self, o: &OrderPlaced) -> bool {
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

    /// How many orders were recorded so far.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// The first and last arrivals, in ns since the epoch.
    pub fn first_last_epoch_ns(&self) -> (u64, u64) {
        let first = self.first_ns.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Relaxed);
        (self.base_epoch_ns + first, self.base_epoch_ns + last)
    }

    pub fn sample(&self) -> Sample {
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
            registry_calls: 0,
        }
    }
}

/// Creates `topic` and produces `messages` orders, each encoded by `encode`,
/// with `ce_type` and `ce_id` headers. Returns the checksum every side must
/// reproduce.
pub async fn produce(topic: &str, messages: u64, encode: impl Fn(&OrderPlaced) -> Vec<u8>) -> u64 {
    produce_keyed(topic, 3, messages, |o| o.order_id.clone(), encode).await
}

/// [`produce`] to a new topic of `partitions` partitions, each order keyed
/// by `key`.
pub async fn produce_keyed(
    topic: &str,
    partitions: i32,
    messages: u64,
    key: impl Fn(&OrderPlaced) -> String,
    encode: impl Fn(&OrderPlaced) -> Vec<u8>,
) -> u64 {
    create_topic(topic, partitions).await;
    produce_to(topic, messages, key, encode).await
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("create topic")
    {
        r.map_err(|(t, e)| format!("create {t}: {e}"))
            .expect("topic");
    }
}

/// Produces `messages` orders to the existing `topic`, as [`produce_keyed`].
pub async fn produce_to(
    topic: &str,
    messages: u64,
    key: impl Fn(&OrderPlaced) -> String,
    encode: impl Fn(&OrderPlaced) -> Vec<u8>,
) -> u64 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let mut pending = Vec::new();
    let mut checksum = 0u64;
    for i in 0..messages {
        let o = order(i);
        checksum += o.amount_cents as u64;
        let body = encode(&o);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_type",
                value: Some("order.placed"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(o.order_id.as_str()),
            });
        let key = key(&o);
        loop {
            let rec = FutureRecord::to(topic)
                .key(&key)
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

pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// `name N` parsed, or `default` when it is absent or does not parse.
pub fn arg_or<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    arg(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// In a child process (`--child SIDE --topic TOPIC`, as [`compare`] starts
/// it): runs `side(SIDE, TOPIC)` on a runtime of its own, with tracing when
/// `RUST_LOG` is set, prints its sample for the parent, and returns true.
pub fn child<F, Fut>(args: &[String], side: F) -> bool
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = Sample>,
{
    let Some(name) = arg(args, "--child") else {
        return false;
    };
    if std::env::var_os("RUST_LOG").is_some() {
        spine::init_tracing();
    }
    let topic = arg(args, "--topic").expect("--topic");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("{}", rt.block_on(side(name, topic)).print());
    true
}

fn run_child(side: &str, topic: &str, messages: u64, extra: &[String]) -> Sample {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--child",
            side,
            "--topic",
            topic,
            "--messages",
            &messages.to_string(),
        ])
        .args(extra)
        .stderr(std::process::Stdio::inherit())
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

pub struct Summary {
    pub rate: f64,
    pub rate_min: f64,
    pub rate_max: f64,
    pub cpu_us: f64,
    pub rss_mib: f64,
    pub stalls: usize,
    pub registry_calls: u64,
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
        registry_calls: samples.iter().map(|s| s.registry_calls).max().unwrap_or(0),
    }
}

/// Runs every side `runs` times in rotating order, prints one line per run
/// and the summary, with the throughput, CPU and memory ratios of `pairs`
/// (indexes into `sides`: (framework, baseline)).
pub fn compare<'a>(
    sides: &[&'a str],
    pairs: &[(usize, usize)],
    runs: usize,
    topic: &str,
    messages: u64,
    checksum: u64,
    extra: &[String],
) -> Comparison<'a> {
    println!(
        "{:<12} {:>3} {:>12} {:>11} {:>13} {:>11}",
        "side", "run", "msgs/s", "CPU µs/msg", "peak RSS MiB", "max gap ms"
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); sides.len()];
    for run in 0..runs {
        // Rotate the order so that no side always goes first.
        for k in 0..sides.len() {
            let i = (run + k) % sides.len();
            let s = run_child(sides[i], topic, messages, extra);
            assert_eq!(
                s.checksum, checksum,
                "{} decoded different orders",
                sides[i]
            );
            println!(
                "{:<12} {:>3} {:>12.0} {:>11.3} {:>13.1} {:>11.1}{}",
                sides[i],
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
    for (name, x) in sides.iter().zip(&sums) {
        let calls = if x.registry_calls > 0 {
            format!(", {} registry calls", x.registry_calls)
        } else {
            String::new()
        };
        println!(
            "  {name:<12} {:>9.0} msgs/s ({:.0}–{:.0}), {:.3} CPU µs/msg, peak RSS {:.1} MiB, {} stalls{calls}",
            x.rate, x.rate_min, x.rate_max, x.cpu_us, x.rss_mib, x.stalls
        );
    }
    // In scientific notation below 0.1 (a database side against none is
    // about 1e-3×, which two decimals show as 0.00), two decimals otherwise.
    let ratio = |r: f64| {
        if r < 0.1 {
            format!("{r:.2e}")
        } else {
            format!("{r:.2}")
        }
    };
    for &(a, b) in pairs {
        println!(
            "  {} / {}: throughput {}×, CPU per message {:.2}×, peak RSS {:.2}×",
            sides[a],
            sides[b],
            ratio(sums[a].rate / sums[b].rate),
            sums[a].cpu_us / sums[b].cpu_us,
            sums[a].rss_mib / sums[b].rss_mib
        );
    }
    Comparison {
        sides: sides.to_vec(),
        pairs: pairs.to_vec(),
        messages,
        samples,
        sums,
    }
}

/// What [`compare`] measured, to save as JSON and a chart.
pub struct Comparison<'a> {
    pub sides: Vec<&'a str>,
    pub pairs: Vec<(usize, usize)>,
    pub messages: u64,
    pub samples: Vec<Vec<Sample>>,
    pub sums: Vec<Summary>,
}

impl Comparison<'_> {
    /// Writes `name.json` (every run, the medians and the pairs' ratios)
    /// and `name.png` (each side's median and range, and `bound` if given).
    pub fn save(&self, name: &str, title: &str, bound: Option<(&str, f64)>) {
        use serde_json::json;
        let sides: Vec<_> = self
            .sides
            .iter()
            .zip(&self.samples)
            .zip(&self.sums)
            .map(|((side, runs), x)| {
                json!({
                    "side": side,
                    "msgs_per_s": {"median": x.rate, "min": x.rate_min, "max": x.rate_max},
                    "cpu_us_per_msg": x.cpu_us,
                    "peak_rss_mib": x.rss_mib,
                    "stalls": x.stalls,
                    "runs": runs.iter().map(|s| json!({
                        "msgs_per_s": s.rate(),
                        "cpu_us_per_msg": s.cpu_us_per_msg(),
                        "peak_rss_mib": s.peak_rss_kib as f64 / 1024.0,
                        "max_gap_ms": s.max_gap_ms,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let pairs: Vec<_> = self
            .pairs
            .iter()
            .map(|&(a, b)| {
                let (x, y) = (&self.sums[a], &self.sums[b]);
                json!({
                    "side": self.sides[a],
                    "baseline": self.sides[b],
                    "throughput": x.rate / y.rate,
                    "cpu_per_message": x.cpu_us / y.cpu_us,
                    "peak_rss": x.rss_mib / y.rss_mib,
                })
            })
            .collect();
        report::write_json(
            name,
            &json!({
                "bench": name,
                "title": title,
                "messages": self.messages,
                "runs_per_side": self.samples.first().map_or(0, Vec::len),
                "sides": sides,
                "pairs": pairs,
                "bound": bound.map(|(label, v)| json!({"label": label, "msgs_per_s": v})),
            }),
        );
        let bars: Vec<report::Bar> = self
            .sides
            .iter()
            .zip(&self.sums)
            .map(|(side, x)| report::Bar {
                side: side.to_string(),
                median: x.rate,
                min: x.rate_min,
                max: x.rate_max,
            })
            .collect();
        report::throughput_chart(name, title, &bars, bound);
    }
}

/// Keys of the I/O-bound benches: `customer-0000` … `customer-0999`.
pub const KEYS: u64 = 1_000;

/// Per-key order: the last order number seen for each key.
pub struct KeyOrder {
    last: Vec<AtomicU64>,
    pub out_of_order: AtomicU64,
}

impl KeyOrder {
    pub fn new() -> Arc<KeyOrder> {
        Arc::new(KeyOrder {
            last: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            out_of_order: AtomicU64::new(0),
        })
    }

    /// Order `i` (of key `i % KEYS`) arrived.
    pub fn arrived(&self, i: u64) {
        // Stored as i + 1, so that 0 means "none yet".
        let prev = self.last[(i % KEYS) as usize].swap(i + 1, Ordering::Relaxed);
        if prev > i + 1 {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
    }
}
