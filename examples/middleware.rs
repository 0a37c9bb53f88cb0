//! Middleware: a metrics layer that counts outcomes per event and measures
//! handler latency, next to the built-in `Logging` layer. Runs in-process with
//! `TestApp`, so it needs no broker:
//!
//! ```sh
//! cargo run --example middleware
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spine::middleware::{Logging, MessageInfo, Middleware, Outcome};
use spine::prelude::*;
use spine::testing::TestApp;

/// Counts outcomes by (event, outcome) and keeps the slowest handling time.
#[derive(Default)]
struct OutcomeMetrics {
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
    started: Mutex<BTreeMap<(String, i32, i64), Instant>>,
    slowest: Mutex<Duration>,
}

impl Middleware for OutcomeMetrics {
    fn before(&self, msg: &MessageInfo<'_>) {
        let key = (msg.topic.to_owned(), msg.partition, msg.offset);
        self.started.lock().unwrap().insert(key, Instant::now());
    }

    fn after(&self, msg: &MessageInfo<'_>, outcome: &Outcome<'_>) {
        let name = match outcome {
            Outcome::Handled { .. } => "handled",
            Outcome::Skipped => "skipped",
            Outcome::Retrying { .. } => "retried",
            Outcome::DeadLettered { .. } => "dead_lettered",
            _ => "other",
        };
        let event = msg.event.unwrap_or("-").to_owned();
        *self
            .counts
            .lock()
            .unwrap()
            .entry((event, name))
            .or_default() += 1;
        if !matches!(outcome, Outcome::Retrying { .. }) {
            let key = (msg.topic.to_owned(), msg.partition, msg.offset);
            if let Some(t) = self.started.lock().unwrap().remove(&key) {
                let mut slowest = self.slowest.lock().unwrap();
                *slowest = (*slowest).max(t.elapsed());
            }
        }
    }
}

#[derive(Deserialize)]
struct Ping {
    n: i64,
}

#[on(event = "ping", topic = "pings")]
async fn ping(p: Ping) -> Result<Reply, HandlerError> {
    tokio::time::sleep(Duration::from_millis(p.n.unsigned_abs() % 5)).await;
    if p.n < 0 {
        return Err(HandlerError::msg("negative ping").fatal());
    }
    Ok(Reply::to("pongs", "pong", serde_json::json!({ "n": p.n })))
}

#[tokio::main]
async fn main() -> Result<(), spine::Error> {
    spine::init_tracing();
    let metrics = Arc::new(OutcomeMetrics::default());
    let app = TestApp::new(
        Spine::builder()
            .handlers(spine::handlers![ping])
            .middleware(Logging)
            .middleware(metrics.clone()),
    )?;
    for n in [1, 2, -3, 4] {
        app.send("pings", "ping", &serde_json::json!({ "n": n }))
            .await;
    }
    app.send("pings", "unknown", &serde_json::json!({})).await;

    for ((event, outcome), count) in metrics.counts.lock().unwrap().iter() {
        println!("{event:<8} {outcome:<14} {count}");
    }
    println!("slowest: {:?}", *metrics.slowest.lock().unwrap());
    Ok(())
}
