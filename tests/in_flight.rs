//! A message in flight for longer than `dispatch.in_flight_warning` is logged
//! at WARN with its coordinates, its handler and what it waits for, then
//! again as long passes. On the real broker (`scripts/test` starts it).
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

/// WARN events: their message and fields, as `name=value` text.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

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
        if *event.metadata().level() == tracing::Level::WARN {
            let mut line = String::new();
            event.record(&mut Visitor(&mut line));
            self.0.lock().unwrap().push(line);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_held_past_the_threshold_is_warned_about_with_what_it_waits_for() {
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(warnings.clone()))
        .expect("the only subscriber of this binary");
    let input = unique("in_flight.in");
    create_topics(&[&input, "in_flight.out"], 1).await;
    let group = unique("in-flight");
    let mut cfg = config(&group);
    cfg.app.topics = vec![input.clone()];
    cfg.dispatch.in_flight_warning = Duration::from_millis(300);
    cfg.set_kafka("auto.offset.reset", "earliest");
    let p = producer();
    let job = |id: &str, millis: u64| {
        serde_json::to_vec(&serde_json::json!({"id": id, "millis": millis})).unwrap()
    };
    produce(
        &p,
        &input,
        Some("a"),
        &job("quick", 0),
        &[("ce_type", "job")],
    )
    .await;
    produce(
        &p,
        &input,
        Some("b"),
        &job("slow", 2_000),
        &[("ce_type", "job")],
    )
    .await;

    let app = Spine::builder()
        .config(cfg)
        .handlers(spine::handlers![slowpoke])
        .build()
        .unwrap();
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let task = tokio::spawn(app.run_until(std::future::pending()));
    eventually(Duration::from_secs(30), "both jobs handled", || {
        stats.snapshot().handled == 2
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let about_slow: Vec<String> = warnings
        .0
        .lock()
        .unwrap()
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
    let all = warnings.0.lock().unwrap().clone();
    assert!(
        !all.iter()
            .any(|w| w.contains("in flight for longer") && w.contains("offset=0 ")),
        "the quick job is never warned about: {all:#?}"
    );
}
