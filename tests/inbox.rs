//! The database inbox and outbox (feature `inbox`), end to end on the real
//! broker, once on SQLite (a file) and once on PostgreSQL (the machine's
//! server, or `SPINE_TEST_DATABASE_URL`; `scripts/test` starts one if none
//! answers). Never skipped: without a database these tests fail, saying so.
//!
//! Effectively-once: the `orders_inbox` example takes 20,000 orders, 500 of
//! them sent twice with the same `ce_id`, and is SIGKILLed twice mid-stream
//! and restarted. Its table then holds exactly one row per order, the inbox
//! one row per `ce_id`, every order has its `order.accepted` reply, and the
//! re-sends are counted.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use spine::sqlx::{self, Row};
use support::*;

/// One test at a time: each drives a service hard.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ORDERS: usize = 20_000;
const RESENT: usize = 500;

/// The server's URL (a maintenance database) for PostgreSQL tests.
fn postgres_admin_url() -> String {
    std::env::var("SPINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, empty database: a SQLite file, or a new PostgreSQL database.
async fn fresh_database(kind: &str, name: &str) -> String {
    sqlx::any::install_default_drivers();
    match kind {
        "sqlite" => {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
        _ => {
            let admin = postgres_admin_url();
            let pool = sqlx::AnyPool::connect(&admin).await.unwrap_or_else(|e| {
                panic!(
                    "no PostgreSQL at {admin}: {e}. Run the tests with scripts/test, which starts \
                     one, or set SPINE_TEST_DATABASE_URL"
                )
            });
            let db = name.replace(['.', '-'], "_");
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&pool)
                .await
                .expect("create the test database");
            pool.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{db}")
        }
    }
}

/// Runs `sql` (one number) on the database, `None` while it cannot (the
/// service has not created the table yet).
async fn count(url: &str, sql: &str) -> Option<i64> {
    let pool = sqlx::AnyPool::connect(url).await.ok()?;
    let n = sqlx::query(sql)
        .fetch_one(&pool)
        .await
        .ok()
        .and_then(|r| r.try_get::<i64, _>(0).ok());
    pool.close().await;
    n
}

async fn strings(url: &str, sql: &str) -> Vec<String> {
    let pool = sqlx::AnyPool::connect(url).await.expect("database");
    let rows = sqlx::query(sql).fetch_all(&pool).await.expect(sql);
    pool.close().await;
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

/// Produces the orders, then re-sends `RESENT` of them with the same `ce_id`.
async fn produce_orders(topic: &str, run: &str) -> BTreeSet<String> {
    let producer = producer();
    let mut acks = Vec::new();
    let resent = (0..RESENT).map(|i| i * (ORDERS / RESENT));
    for i in (0..ORDERS).chain(resent) {
        let id = format!("{run}-{i}");
        let body = serde_json::json!({ "order_id": id, "customer": "c", "amount_cents": i });
        let body = serde_json::to_vec(&body).unwrap();
        let ce_id = format!("ce-{id}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_type",
                value: Some("order.placed"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(&ce_id),
            });
        loop {
            let rec = FutureRecord::to(topic)
                .key(&id)
                .payload(&body)
                .headers(headers.clone());
            match producer.send_result(rec) {
                Ok(ack) => break acks.push(ack),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for ack in acks {
        ack.await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("ack");
    }
    (0..ORDERS).map(|i| format!("{run}-{i}")).collect()
}

fn start(name: &str, group: &str, topic: &str, url: &str, port: u16) -> Service {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.log"));
    clean_env(&mut Command::new(example("orders_inbox")))
        .env("NO_COLOR", "1")
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap())
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_APP__TOPICS", format!("[{topic}]"))
        .env("SPINE_INBOX__URL", url)
        .env("SPINE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("SPINE_KAFKA__AUTO_OFFSET_RESET", "earliest")
        .env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("SPINE_KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .env("SPINE_DISPATCH__COMMIT_INTERVAL", "100ms")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .map(Service)
        .expect("start the orders_inbox example")
}

/// Waits until the service's table holds at least `rows` rows.
async fn wait_rows(url: &str, rows: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let n = count(url, "SELECT COUNT(*) FROM accepted_orders").await;
        if n.is_some_and(|n| n >= rows) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} rows within {timeout:?}; there are {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A counter's value on the service's /metrics, summed over its labels.
async fn metric(port: u16, name: &str) -> f64 {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn effectively_once(kind: &str) {
    let _turn = TURN.lock().await;
    let name = unique(&format!("inbox.{kind}"));
    let topic = name.clone();
    let accepted = format!("{topic}.accepted");
    create_topics(&[&topic, &accepted, &format!("{topic}.dlq")], 1).await;
    let url = fresh_database(kind, &name).await;
    let run = unique("run");
    let want = produce_orders(&topic, &run).await;
    let group = unique("inbox");
    let port = free_port();

    let mut service = start(&format!("{name}-1"), &group, &topic, &url, port);
    wait_rows(&url, 5_000, Duration::from_secs(240)).await;
    service.kill_9();
    let mut service = start(&format!("{name}-2"), &group, &topic, &url, port);
    wait_rows(&url, 12_000, Duration::from_secs(240)).await;
    service.kill_9();
    let mut service = start(&format!("{name}-3"), &group, &topic, &url, port);
    let total = (ORDERS + RESENT) as i64;
    eventually(Duration::from_secs(300), "every order committed", || {
        committed(&group, &topic, 1).get(&0) == Some(&total)
    })
    .await;
    // The re-sends are at the end of the partition: this instance met them all.
    let duplicates = metric(port, "spine_inbox_duplicates_total").await;
    // The outbox is drained before a clean stop.
    assert!(service.terminate().success());

    let rows = count(&url, "SELECT COUNT(*) FROM accepted_orders").await;
    let distinct = count(&url, "SELECT COUNT(DISTINCT order_id) FROM accepted_orders").await;
    assert_eq!(
        (rows, distinct),
        (Some(ORDERS as i64), Some(ORDERS as i64)),
        "one row per order, on {kind}"
    );
    let stored: BTreeSet<String> = strings(&url, "SELECT order_id FROM accepted_orders")
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, want, "the rows are the orders, by id");
    let ids = strings(
        &url,
        &format!("SELECT message_id FROM spine_inbox WHERE consumer = '{group}' AND status = 'processed'"),
    )
    .await;
    let ids: BTreeSet<String> = ids.into_iter().collect();
    let want_ids: BTreeSet<String> = want.iter().map(|id| format!("ce-{id}")).collect();
    assert_eq!(ids, want_ids, "one inbox row per ce_id");
    assert!(
        duplicates >= RESENT as f64,
        "the {RESENT} re-sends are counted: {duplicates}"
    );
    let unsent = count(
        &url,
        "SELECT COUNT(*) FROM spine_outbox WHERE sent_at IS NULL",
    )
    .await;
    assert_eq!(unsent, Some(0), "the outbox is drained");

    let replies: BTreeSet<String> = drain_topic(&accepted, Duration::from_secs(3))
        .iter()
        .filter_map(|m| json(m)["order_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(replies, want, "every order has its order.accepted event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effectively_once_on_sqlite_through_two_sigkills() {
    effectively_once("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effectively_once_on_postgres_through_two_sigkills() {
    effectively_once("postgres").await;
}
