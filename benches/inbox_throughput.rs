//! The database inbox's throughput (feature `inbox`), per store, against the
//! same app without an inbox, in one run, on the same pre-produced topic of
//! JSON orders.
//!
//! ```sh
//! scripts/bench --inbox                    # starts nisshi (and PostgreSQL if none answers)
//! scripts/bench --inbox --runs 5 --messages 20000
//! ```
//!
//! Five sides, each in its own child process with a fresh consumer group and
//! a fresh database (a SQLite file, or a new PostgreSQL database), `--runs`
//! times each in rotating order. Every side runs the same one-handler app
//! (`#[on(event = "order.placed")]`, the decoded order counted):
//!
//! | side              | what the inbox does per message                              |
//! |-------------------|--------------------------------------------------------------|
//! | `spine`           | nothing: no inbox (the baseline)                             |
//! | `dedupe-sqlite`   | one transaction: the id looked up, the handler, the id stored |
//! | `queue-sqlite`    | the message stored `pending`; a worker claims, handles, marks |
//! | `dedupe-postgres` | as `dedupe-sqlite`, on PostgreSQL                            |
//! | `queue-postgres`  | as `queue-sqlite`, on PostgreSQL                             |
//!
//! Throughput is measured from the first handled message to the last, as in
//! the other benches. PostgreSQL is `SPINE_BENCH_DATABASE_URL`, else the
//! machine's server on 127.0.0.1:5432; its own CPU is not in the figures.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{arg_or, bootstrap, compare, spine_config, Progress, Sample};
use spine::prelude::*;
use spine::sqlx;

const SIDES: [&str; 5] = [
    "spine",
    "dedupe-sqlite",
    "queue-sqlite",
    "dedupe-postgres",
    "queue-postgres",
];

#[on(event = "order.placed")]
async fn count_placed(o: common::OrderPlaced, p: State<Arc<Progress>>) {
    if p.record(&o) {
        p.done.notify_one();
    }
}

/// The PostgreSQL server's maintenance database.
fn postgres_admin_url() -> String {
    std::env::var("SPINE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database for one child: its URL, and the PostgreSQL database to
/// drop afterwards.
async fn fresh_database(store: &str) -> (String, Option<String>) {
    let name = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    if store == "sqlite" {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-inbox");
        std::fs::create_dir_all(&dir).expect("bench directory");
        return (format!("sqlite://{}/{name}.db", dir.display()), None);
    }
    sqlx::any::install_default_drivers();
    let admin = postgres_admin_url();
    let pool = sqlx::AnyPool::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("no PostgreSQL at {admin}: {e}; run scripts/bench --inbox"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create the bench database");
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    (format!("{base}/{name}"), Some(name))
}

async fn drop_database(name: &str) {
    if let Ok(pool) = sqlx::AnyPool::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

async fn side(topic: &str, want: u64, side: &str) -> Sample {
    let progress = Progress::new(want);
    let mut config = spine_config(topic);
    let mut drop_after = None;
    if let Some((mode, store)) = side.split_once('-') {
        let (url, db) = fresh_database(store).await;
        drop_after = db;
        config.inbox.url = Some(url);
        config.inbox.mode = match mode {
            "dedupe" => spine::config::InboxMode::Dedupe,
            "queue" => spine::config::InboxMode::Queue,
            other => panic!("unknown inbox mode {other}"),
        };
    }
    let app = Spine::builder()
        .config(config)
        .state(progress.clone())
        .handlers(spine::handlers![count_placed])
        .build()
        .expect("app");
    let p = progress.clone();
    app.run_until(async move { p.done.notified().await })
        .await
        .expect("spine run");
    let sample = progress.sample();
    if let Some(db) = drop_after {
        drop_database(&db).await;
    }
    sample
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages: u64 = arg_or(&args, "--messages", 20_000);
    if common::child(&args, |name, topic| async move {
        assert!(
            SIDES.contains(&name.as_str()),
            "unknown side {name}; expected one of {SIDES:?}"
        );
        side(&topic, messages, &name).await
    }) {
        return;
    }
    let runs: usize = arg_or(&args, "--runs", 5);
    let topic = format!(
        "bench.inbox.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    println!(
        "Producing {messages} JSON orders to {topic} on {}; PostgreSQL at {} ...",
        bootstrap(),
        postgres_admin_url()
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
        &[(1, 0), (2, 0), (3, 0), (4, 0)],
        runs,
        &topic,
        messages,
        checksum,
        &[],
    )
    .save(
        "inbox",
        &format!("The database inbox: {messages} JSON messages"),
        None,
    );
}
