//! Scale-out: 1, 2 and 3 instances of one consumer group on 6 partitions,
//! each running the I/O-bound handler of `io_bound.rs` (a 5 ms timer,
//! `max_in_flight` 100, key order).
//!
//! ```sh
//! scripts/bench --scale                         # starts nisshi
//! scripts/bench --scale --runs 5 --messages 300000
//! ```
//!
//! Each instance is a child process with the same group. For each run the
//! parent creates a topic of 6 partitions, starts the instances, and sends
//! warm-up events to every partition until every instance has reported one
//! and every partition has been seen, so that the group has settled before
//! the measured orders are produced (joins and rebalances are not measured).
//! It then produces `--messages` orders over 1,000 keys; each instance
//! reports how many it has handled every 100 ms, and once the instances
//! together have handled them all, the parent stops them and collects each
//! one's first and last arrival (wall clock), CPU time and peak RSS.
//!
//! Aggregate throughput is messages / (last arrival anywhere − first
//! arrival anywhere). One instance's bound is 100 / 5 ms = 20,000 msgs/s,
//! so `n` instances are bounded by `n` × 20,000: the work waits on a timer,
//! not on this machine's two cores. Efficiency is aggregate / (n × the one
//! instance's median). Per-key order is checked in each instance.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{arg, bootstrap, spine_config, KeyOrder, Progress};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use spine::prelude::*;

const PARTITIONS: i32 = 6;
const WAIT: Duration = Duration::from_millis(5);
const MAX_IN_FLIGHT: usize = 100;
const INSTANCES: [usize; 3] = [1, 2, 3];

#[on(event = "order.placed")]
async fn wait_on_io(o: common::OrderPlaced, p: State<Arc<Progress>>, order: State<Arc<KeyOrder>>) {
    let i: u64 = o.order_id["order-".len()..].parse().expect("order number");
    order.arrived(i);
    tokio::time::sleep(WAIT).await;
    p.record(&o);
}

/// A warm-up event: says which partition this instance owns.
#[on(event = "warm")]
async fn warm(_body: serde_json::Value, meta: Meta) {
    println!("warm {}", meta.partition);
    let _ = std::io::stdout().flush();
}

/// One instance: handles until the parent writes `stop`, reporting its
/// count every 100 ms, then its totals.
async fn instance(topic: &str, group: &str) {
    let progress = Progress::new(u64::MAX);
    let order = KeyOrder::new();
    let mut config = spine_config(topic);
    config.app.group = Some(group.to_owned());
    config.dispatch.max_in_flight = MAX_IN_FLIGHT;
    let app = Spine::builder()
        .config(config)
        .state(progress.clone())
        .state(order.clone())
        .handlers(spine::handlers![wait_on_io, warm])
        .build()
        .expect("app");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.trim() == "stop" {
                break;
            }
            line.clear();
        }
        let _ = stop_tx.send(());
    });
    let p = progress.clone();
    let reporter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            println!("seen {}", p.seen());
            let _ = std::io::stdout().flush();
        }
    });
    app.run_until(async move {
        let _ = stop_rx.await;
    })
    .await
    .expect("spine run");
    reporter.abort();
    let s = progress.sample();
    let (first, last) = progress.first_last_epoch_ns();
    println!(
        "done seen={} first_ns={first} last_ns={last} cpu_seconds={} peak_rss_kib={} out_of_order={}",
        s.messages,
        s.cpu_seconds,
        s.peak_rss_kib,
        order.out_of_order.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// What one instance reported at the end.
#[derive(Default, Clone, Copy)]
struct Totals {
    seen: u64,
    first_ns: u64,
    last_ns: u64,
    cpu_seconds: f64,
    peak_rss_kib: u64,
    out_of_order: u64,
}

impl Totals {
    fn parse(line: &str) -> Option<Totals> {
        let mut t = Totals::default();
        for kv in line.strip_prefix("done ")?.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "seen" => t.seen = v.parse().ok()?,
                "first_ns" => t.first_ns = v.parse().ok()?,
                "last_ns" => t.last_ns = v.parse().ok()?,
                "cpu_seconds" => t.cpu_seconds = v.parse().ok()?,
                "peak_rss_kib" => t.peak_rss_kib = v.parse().ok()?,
                "out_of_order" => t.out_of_order = v.parse().ok()?,
                _ => {}
            }
        }
        Some(t)
    }
}

/// One measured run of `n` instances.
struct RunResult {
    rate: f64,
    cpu_us: f64,
    rss_mib: f64,
    per_instance: Vec<u64>,
}

enum Line {
    Warm(usize, i32),
    Seen(usize, u64),
    Done(usize, Totals),
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

fn run(n: usize, messages: u64, rt: &tokio::runtime::Runtime) -> RunResult {
    let topic = format!(
        "bench.scale.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let group = format!("scale-{}", uuid::Uuid::new_v4());
    rt.block_on(common::create_topic(&topic, PARTITIONS));
    let (tx, rx) = mpsc::channel::<Line>();
    let mut children: Vec<(Child, ChildStdin)> = Vec::new();
    for i in 0..n {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(["--child", "instance", "--topic", &topic, "--group", &group])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("instance starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let parsed = if let Some(p) = line.strip_prefix("warm ") {
                    p.parse().ok().map(|p| Line::Warm(i, p))
                } else if let Some(s) = line.strip_prefix("seen ") {
                    s.parse().ok().map(|s| Line::Seen(i, s))
                } else {
                    Totals::parse(&line).map(|t| Line::Done(i, t))
                };
                if let Some(l) = parsed {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
            }
        });
        children.push((child, stdin));
    }
    // Warm up until every instance owns partitions and every partition is owned.
    let p = producer();
    let mut warm_instances = vec![false; n];
    let mut warm_partitions = [false; PARTITIONS as usize];
    let started = Instant::now();
    while !(warm_instances.iter().all(|w| *w) && warm_partitions.iter().all(|w| *w)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{n} instances: the group did not settle in 120 s (instances {warm_instances:?}, partitions {warm_partitions:?})"
        );
        for partition in 0..PARTITIONS {
            let rec = FutureRecord::<(), _>::to(&topic)
                .partition(partition)
                .payload("{}")
                .headers(OwnedHeaders::new().insert(Header {
                    key: "ce_type",
                    value: Some("warm"),
                }));
            drop(p.send_result(rec));
        }
        let _ = p.flush(Duration::from_secs(5));
        let until = Instant::now() + Duration::from_millis(200);
        while let Ok(l) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            if let Line::Warm(i, partition) = l {
                warm_instances[i] = true;
                warm_partitions[partition as usize] = true;
            }
        }
    }
    rt.block_on(common::produce_to(
        &topic,
        messages,
        |o| o.customer.clone(),
        |o| serde_json::to_vec(o).expect("json"),
    ));
    // Wait until the instances together have handled every order.
    let mut seen = vec![0u64; n];
    while seen.iter().sum::<u64>() < messages {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Line::Seen(i, s)) => seen[i] = s,
            Ok(_) => {}
            Err(e) => panic!("{n} instances: no progress in 60 s ({seen:?} of {messages}): {e}"),
        }
    }
    for (_, stdin) in &mut children {
        let _ = writeln!(stdin, "stop");
    }
    let mut totals: Vec<Option<Totals>> = vec![None; n];
    while totals.iter().any(Option::is_none) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Line::Done(i, t)) => totals[i] = Some(t),
            Ok(_) => {}
            Err(e) => panic!("{n} instances: not all stopped: {e}"),
        }
    }
    for (mut child, stdin) in children {
        drop(stdin);
        let _ = child.wait();
    }
    let totals: Vec<Totals> = totals.into_iter().flatten().collect();
    let handled: u64 = totals.iter().map(|t| t.seen).sum();
    assert_eq!(
        handled, messages,
        "{n} instances handled {handled} orders, not {messages}: a rebalance re-delivered some"
    );
    for (i, t) in totals.iter().enumerate() {
        assert_eq!(
            t.out_of_order, 0,
            "instance {i} handled {} orders before an earlier one of their key",
            t.out_of_order
        );
    }
    let first = totals
        .iter()
        .filter(|t| t.seen > 0)
        .map(|t| t.first_ns)
        .min()
        .unwrap_or(0);
    let last = totals.iter().map(|t| t.last_ns).max().unwrap_or(0);
    RunResult {
        rate: messages as f64 / ((last - first) as f64 / 1e9),
        cpu_us: totals.iter().map(|t| t.cpu_seconds).sum::<f64>() * 1e6 / messages as f64,
        rss_mib: totals.iter().map(|t| t.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        per_instance: totals.iter().map(|t| t.seen).collect(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if arg(&args, "--child").is_some() {
        if std::env::var_os("RUST_LOG").is_some() {
            spine::init_tracing();
        }
        let topic = arg(&args, "--topic").expect("--topic");
        let group = arg(&args, "--group").expect("--group");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(instance(&topic, &group));
        return;
    }
    let runs: usize = arg(&args, "--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let messages: u64 = arg(&args, "--messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bound = MAX_IN_FLIGHT as f64 / WAIT.as_secs_f64();
    println!(
        "{messages} orders over {} keys on {PARTITIONS} partitions (broker {}); a {WAIT:?} handler, \
         max_in_flight {MAX_IN_FLIGHT}: each instance's bound is {bound:.0} msgs/s.\n",
        common::KEYS,
        bootstrap()
    );
    println!(
        "{:<9} {:>3} {:>12} {:>11} {:>13}  handled per instance",
        "instances", "run", "msgs/s", "CPU µs/msg", "peak RSS MiB"
    );
    let mut results: Vec<Vec<RunResult>> = INSTANCES.iter().map(|_| Vec::new()).collect();
    for r in 0..runs {
        for k in 0..INSTANCES.len() {
            let i = (r + k) % INSTANCES.len();
            let got = run(INSTANCES[i], messages, &rt);
            println!(
                "{:<9} {:>3} {:>12.0} {:>11.3} {:>13.1}  {:?}",
                INSTANCES[i],
                r + 1,
                got.rate,
                got.cpu_us,
                got.rss_mib,
                got.per_instance
            );
            results[i].push(got);
        }
    }
    let one = median(results[0].iter().map(|r| r.rate).collect());
    println!("\nSummary: {runs} runs each (median, range):");
    let mut bars = Vec::new();
    let mut json_sides = Vec::new();
    for (i, n) in INSTANCES.iter().enumerate() {
        let rates: Vec<f64> = results[i].iter().map(|r| r.rate).collect();
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let rate = median(rates.clone());
        let cpu = median(results[i].iter().map(|r| r.cpu_us).collect());
        let rss = median(results[i].iter().map(|r| r.rss_mib).collect());
        let efficiency = rate / (*n as f64 * one);
        println!(
            "  {n} instance(s): {rate:>7.0} msgs/s ({lo:.0}–{hi:.0}), {:.0} per instance, \
             efficiency {efficiency:.2}, {:.2} of the bound; {cpu:.3} CPU µs/msg, peak RSS {rss:.1} MiB",
            rate / *n as f64,
            rate / (*n as f64 * bound),
        );
        bars.push(common::report::Bar {
            side: format!("{n} instance{}", if *n == 1 { "" } else { "s" }),
            median: rate,
            min: lo,
            max: hi,
        });
        json_sides.push(serde_json::json!({
            "instances": n,
            "msgs_per_s": {"median": rate, "min": lo, "max": hi, "runs": rates},
            "per_instance_msgs_per_s": rate / *n as f64,
            "efficiency": efficiency,
            "of_bound": rate / (*n as f64 * bound),
            "cpu_us_per_msg": cpu,
            "peak_rss_mib": rss,
        }));
    }
    let title =
        format!("Scale-out: a 5 ms handler on {PARTITIONS} partitions, {messages} messages");
    common::report::write_json(
        "scale_out",
        &serde_json::json!({
            "bench": "scale_out",
            "title": title,
            "messages": messages,
            "partitions": PARTITIONS,
            "bound_per_instance": bound,
            "runs": runs,
            "instances": json_sides,
        }),
    );
    common::report::throughput_chart("scale_out", &title, &bars, None);
}
