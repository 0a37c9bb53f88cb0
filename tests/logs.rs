//! What the consumer logs when something is slow or gone, on the real
//! broker (`scripts/test` starts it): a message in flight for longer than
//! `dispatch.in_flight_warning`, warned about with its coordinates, its
//! handler and what it waits for; a broker that cannot be reached, said once,
//! naming the address, instead of one ERROR per connection attempt.
//! A test binary of its own: it installs a global `tracing` subscriber to
//! read what the consumer task logs.

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spine::prelude::*;
use support::*;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::Layer;

/// Produces a job that takes `millis`, keyed `key`, to `topic`.
async fn job(topic: &str, key: &str, id: &str, millis: u64) {
    let body = serde_json::to_vec(&serde_json::json!({"id": id, "millis": millis})).unwrap();
    produce(&producer(), topic, Some(key), &body, &[("ce_type", "job")]).await;
}

#[derive(Debug, Deserialize)]
struct Job {
    id: String,
    millis: u64,
}

#[on(event = "job")]
async fn slowpoke(job: Job) -> Reply {
    tokio::time::sleep(Duration::from_millis(job.millis)).await;
    Reply::to("in_flight.out", "done", serde_json::json!({ "id": job.id }))
}

/// Events at INFO and above: their level, message and fields, as
/// `LEVEL name=value ...` text; shared by the tests of this binary.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

fn captured() -> &'static Warnings {
    static CAPTURE: std::sync::OnceLock<Warnings> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let w = Warnings::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(w.clone()))
            .expect("the only subscriber of this binary");
        w
    })
}

impl Warnings {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", f.name(), v));
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.0.push_str(&format!("{}={} ", f.name(), v));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
        if *event.metadata().level() <= tracing::Level::INFO {
            let mut line = format!("{} ", event.metadata().level());
            event.record(&mut Visitor(&mut line));
            self.0.lock().unwrap().push(line);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_held_past_the_threshold_is_warned_about_with_what_it_waits_for() {
    let warnings = captured();
    let input = unique("in_flight.in");
    create_topics(&[&input, "in_flight.out"], 1).await;
    let group = unique("in-flight");
    let mut cfg = config(&group);
    cfg.app.topics = vec![input.clone()];
    cfg.dispatch.in_flight_warning = Duration::from_millis(300);
    cfg.set_kafka("auto.offset.reset", "earliest");
    job(&input, "a", "quick", 0).await;
    job(&input, "b", "slow", 2_000).await;

    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![slowpoke]),
    );
    eventually(Duration::from_secs(30), "both jobs handled", || {
        stats.snapshot().handled == 2
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let about_slow: Vec<String> = warnings
        .lines()
        .iter()
        .filter(|w| w.contains("in flight for longer") && w.contains("offset=1 "))
        .cloned()
        .collect();
    assert!(
        about_slow.len() >= 2,
        "warned once past 300 ms, then again: {about_slow:#?}"
    );
    let first = &about_slow[0];
    for want in [
        format!("topic={input} "),
        "partition=0 ".to_owned(),
        "handler=slowpoke ".to_owned(),
        "waits_for=its handler".to_owned(),
    ] {
        assert!(first.contains(&want), "{want} in {first}");
    }
    let all = warnings.lines();
    assert!(
        !all.iter()
            .any(|w| w.contains("in flight for longer") && w.contains("offset=0 ")),
        "the quick job is never warned about: {all:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_at_start_is_said_once_and_consumed_from_when_it_comes_up() {
    let warnings = captured();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let group = unique("down-at-start");
    let mut cfg = config(&group);
    cfg.set_kafka("bootstrap.servers", &address)
        .set_kafka("auto.offset.reset", "earliest");
    cfg.app.topics = vec!["late.in".to_owned()];
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![slowpoke]),
    );

    let unreachable = |w: &str| w.contains("cannot reach the Kafka broker") && w.contains(&address);
    eventually(
        Duration::from_secs(30),
        "the unreachable broker named",
        || warnings.lines().iter().any(|w| unreachable(w)),
    )
    .await;
    // librdkafka retries several times a second meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!task.is_finished(), "no crash: still running");

    let broker = OwnBroker::behind(address.parse().unwrap(), port);
    create_topics_at(&broker.bootstrap, &["late.in", "in_flight.out"], 1).await;
    let p = producer_at(&broker.bootstrap);
    let body = serde_json::to_vec(&serde_json::json!({"id": "late", "millis": 0})).unwrap();
    produce(&p, "late.in", None, &body, &[("ce_type", "job")]).await;
    eventually(
        Duration::from_secs(60),
        "the job handled once the broker is up",
        || stats.snapshot().handled == 1,
    )
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let lines = warnings.lines();
    let said: Vec<&String> = lines.iter().filter(|w| unreachable(w)).collect();
    assert_eq!(said.len(), 1, "said once, not per attempt: {said:#?}");
    assert!(said[0].starts_with("WARN"), "{}", said[0]);
    let errors: Vec<&String> = lines
        .iter()
        .filter(|w| w.starts_with("ERROR") && w.contains(&address))
        .collect();
    assert!(
        errors.is_empty(),
        "no ERROR per connection attempt: {errors:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|w| w.contains("the Kafka broker answers again")),
        "and said when it answered"
    );
}

/// A fresh group on `input`, with the smallest poll interval librdkafka
/// allows with a 6 s session.
fn max_poll_config(input: &str, group: &str) -> spine::Config {
    let mut cfg = config(&unique(group));
    cfg.app.topics = vec![input.to_owned()];
    cfg.set_kafka("max.poll.interval.ms", "6000")
        .set_kafka("auto.offset.reset", "earliest");
    cfg
}

/// librdkafka never said the member left for exceeding max.poll.interval.ms.
fn assert_stayed_in_group(warnings: &Warnings) {
    let lines = warnings.lines();
    let left: Vec<&String> = lines
        .iter()
        .filter(|w| w.contains("MAXPOLL") || w.contains("maximum poll interval"))
        .collect();
    assert!(
        left.is_empty(),
        "the instance stayed in its group: {left:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_awaiting_past_max_poll_interval_keeps_the_instance_in_its_group() {
    let warnings = captured();
    let input = unique("maxpoll.in");
    create_topics(&[&input, "in_flight.out"], 1).await;
    let cfg = max_poll_config(&input, "maxpoll");
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![slowpoke]),
    );
    // Different keys: the slow one does not hold the other back.
    job(&input, "slow", "slow", 9_000).await;
    eventually(Duration::from_secs(30), "the slow job started", || {
        stats.snapshot().consumed == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    // Past max.poll.interval.ms since the slow job started: the loop still
    // polls, so a job produced now is handled at once.
    job(&input, "quick", "quick", 0).await;
    eventually(
        Duration::from_secs(5),
        "the quick job handled while the slow one runs",
        || stats.snapshot().handled == 1,
    )
    .await;
    eventually(Duration::from_secs(10), "the slow job handled", || {
        stats.snapshot().handled == 2
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    assert_stayed_in_group(warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_held_past_max_poll_interval_pauses_and_stays_in_the_group() {
    let warnings = captured();
    let input = unique("stall.in");
    create_topics(&[&input, "in_flight.out"], 1).await;
    let mut cfg = max_poll_config(&input, "stall");
    // One message at a time, held for 9 s: past the 6 s poll interval, so
    // the loop must pause its partitions at 3 s to keep polling.
    cfg.dispatch.max_in_flight = 1;
    let (stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![slowpoke]),
    );
    job(&input, "slow", "stalled-slow", 9_000).await;
    let paused = |w: &str| w.contains("partitions paused so that the consumer keeps polling");
    eventually(Duration::from_secs(30), "the partitions paused", || {
        warnings.lines().iter().any(|w| paused(w))
    })
    .await;
    // Produced while paused: fetched and handled once the slow job is done.
    job(&input, "quick", "stalled-quick", 0).await;
    eventually(Duration::from_secs(30), "both jobs handled", || {
        stats.snapshot().handled == 2
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    assert_stayed_in_group(warnings);
    assert_eq!(stats.snapshot().consumed, 2, "each job taken once");
}
