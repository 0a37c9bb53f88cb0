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
    start_with(name, group, topic, url, port, &[])
}

/// The `orders_inbox` example's command line, on this group and database.
fn orders_inbox(group: &str, url: &str) -> Command {
    let mut cmd = Command::new(example("orders_inbox"));
    clean_env(&mut cmd)
        .env("NO_COLOR", "1")
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap())
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_INBOX__URL", url);
    cmd
}

fn start_with(
    name: &str,
    group: &str,
    topic: &str,
    url: &str,
    port: u16,
    env: &[(&str, &str)],
) -> Service {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.log"));
    orders_inbox(group, url)
        .envs(env.iter().copied())
        .env("SPINE_APP__TOPICS", format!("[{topic}]"))
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

// ---- Queue mode -----------------------------------------------------------

use spine::prelude::*;

#[derive(Debug, Deserialize)]
struct Job {
    id: String,
    /// `ok`, `flaky` (fails its first two attempts) or `bad` (always fails).
    kind: String,
}

/// Attempts per job id, across the test's apps.
static ATTEMPTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[on(event = "job")]
async fn job(j: Job, tx: Tx) -> Result<(), HandlerError> {
    let mut db = tx.conn().await?;
    // Written on every attempt: a failed attempt's row must be rolled back.
    sqlx::query("INSERT INTO jobs_done (id) VALUES ($1)")
        .bind(&j.id)
        .execute(&mut *db)
        .await?;
    let attempt = {
        let mut seen = ATTEMPTS.lock().unwrap();
        seen.push(j.id.clone());
        seen.iter().filter(|id| **id == j.id).count()
    };
    match j.kind.as_str() {
        "flaky" if attempt < 3 => Err(HandlerError::msg(format!("not yet ({attempt})"))),
        "bad" => Err(HandlerError::msg("always fails")),
        _ => Ok(()),
    }
}

/// Waits until `f` holds of the inbox's rows.
async fn wait_inbox(
    inbox: &spine::inbox::Inbox,
    what: &str,
    f: impl Fn(&[spine::inbox::InboxRow]) -> bool,
) -> Vec<spine::inbox::InboxRow> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = inbox.list(None, 1000).await.expect("inbox rows");
        if f(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "{what}; rows: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn queue_mode(kind: &str) {
    let _turn = TURN.lock().await;
    let name = unique(&format!("queue.{kind}"));
    let topic = name.clone();
    let dlq = format!("{topic}.dlq");
    create_topics(&[&topic, &dlq], 1).await;
    let url = fresh_database(kind, &name).await;
    {
        let pool = sqlx::AnyPool::connect(&format!(
            "{url}{}",
            if kind == "sqlite" { "?mode=rwc" } else { "" }
        ))
        .await
        .unwrap();
        sqlx::query("CREATE TABLE jobs_done (id TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let run = unique("job");
    let jobs: Vec<(String, &str)> = (0..12)
        .map(|i| {
            let kind = ["ok", "ok", "flaky", "bad"][i % 4];
            (format!("{run}-{i}-{kind}"), kind)
        })
        .collect();
    let p = producer();
    for (id, kind) in &jobs {
        let body = serde_json::json!({ "id": id, "kind": kind });
        produce_event(&p, &topic, "job", Some(id), &body).await;
    }
    let group = unique("queue");
    let mut cfg = config(&group);
    cfg.app.topics = vec![topic.clone()];
    cfg.set_kafka("auto.offset.reset", "earliest");
    cfg.inbox.url = Some(url.clone());
    cfg.inbox.mode = spine::config::InboxMode::Queue;
    cfg.inbox.max_attempts = 3;
    cfg.inbox.backoff = Duration::from_millis(100);
    cfg.inbox.max_backoff = Duration::from_millis(300);
    let (_stats, stop, task) = run_app(
        Spine::builder()
            .config(cfg.clone())
            .handlers(spine::handlers![job]),
    );
    let inbox = spine::inbox::Inbox::open(&cfg).await.unwrap();
    let finished = |rows: &[spine::inbox::InboxRow]| {
        rows.len() == jobs.len()
            && rows
                .iter()
                .all(|r| r.status == "processed" || r.status == "dead")
    };
    let rows = wait_inbox(&inbox, "every job processed or dead", finished).await;
    // The offsets were committed as soon as the rows were stored.
    assert_eq!(
        committed(&group, &topic, 1).get(&0),
        Some(&(jobs.len() as i64))
    );

    for (id, kind) in &jobs {
        let r = rows
            .iter()
            .find(|r| r.key.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("a row for {id}"));
        let want = match *kind {
            "ok" => ("processed", 1, None),
            "flaky" => ("processed", 3, Some("not yet (2)")),
            _ => ("dead", 3, Some("always fails")),
        };
        assert_eq!(r.status, want.0, "{r:?}");
        assert_eq!(r.attempts, want.1, "{r:?}");
        if let Some(err) = want.2 {
            if r.status == "dead" {
                assert!(r.last_error.as_deref().unwrap_or("").contains(err), "{r:?}");
            }
        }
        assert_eq!(r.event.as_deref(), Some("job"));
    }
    // Only the successful attempts' writes are kept.
    let done: BTreeSet<String> = strings(&url, "SELECT id FROM jobs_done")
        .await
        .into_iter()
        .collect();
    let want_done: BTreeSet<String> = jobs
        .iter()
        .filter(|(_, k)| *k != "bad")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(done, want_done);
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM jobs_done").await,
        Some(want_done.len() as i64),
        "one row per job: failed attempts rolled back"
    );
    // The dead ones were dead-lettered, through the outbox.
    let bad: BTreeSet<String> = jobs
        .iter()
        .filter(|(_, k)| *k == "bad")
        .map(|(id, _)| id.clone())
        .collect();
    let dead = read_topic(&dlq, bad.len(), Duration::from_secs(30));
    let dead: BTreeSet<String> = dead
        .iter()
        .filter_map(|m| json(m)["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(dead, bad);

    // `retry --status dead`: they get three attempts again, and die again.
    let before = ATTEMPTS.lock().unwrap().len();
    assert_eq!(
        inbox.retry(None, Some("dead")).await.unwrap(),
        bad.len() as u64
    );
    wait_inbox(&inbox, "the retried rows dead again", |rows| {
        ATTEMPTS.lock().unwrap().len() >= before + 3 * bad.len() && finished(rows)
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_retries_to_processed_or_dead_on_sqlite() {
    queue_mode("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_retries_to_processed_or_dead_on_postgres() {
    queue_mode("postgres").await;
}

// ---- The service's `inbox` commands ---------------------------------------

/// Runs `orders_inbox inbox <args>`, which must succeed; its output.
fn inbox_command(group: &str, url: &str, args: &[&str]) -> String {
    let out = orders_inbox(group, url)
        .arg("inbox")
        .args(args)
        .output()
        .expect("run orders_inbox inbox");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "inbox {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The rows of `inbox list` (a table): (id, status, attempts, key) by key.
fn listed(table: &str) -> std::collections::BTreeMap<String, (i64, String, i64)> {
    table
        .lines()
        .filter_map(|l| {
            // │ id  status  attempts  topic  partition  offset  key  event  ... │
            let cells: Vec<&str> = l.trim_matches(['│', ' ']).split_whitespace().collect();
            let id = cells.first()?.parse::<i64>().ok()?;
            let attempts = cells.get(2)?.parse::<i64>().ok()?;
            Some((
                cells.get(6)?.to_string(),
                (id, cells[1].to_owned(), attempts),
            ))
        })
        .collect()
}

/// Queue mode through the example's own command line: orders with a
/// negative amount fail every attempt and end `dead`; `inbox list`, `show`,
/// `retry` and `purge` show and manage them.
async fn inbox_commands(kind: &str) {
    let _turn = TURN.lock().await;
    let name = unique(&format!("inboxcli.{kind}"));
    let topic = name.clone();
    let dlq = format!("{topic}.dlq");
    create_topics(&[&topic, &format!("{topic}.accepted"), &dlq], 1).await;
    let url = fresh_database(kind, &name).await;
    let group = unique("inboxcli");
    let run = unique("o");
    let p = producer();
    let orders: Vec<(String, i64)> = (0..6)
        .map(|i| (format!("{run}-{i}"), if i % 3 == 2 { -5 } else { 100 }))
        .collect();
    for (id, amount) in &orders {
        let body = serde_json::json!({ "order_id": id, "customer": "c", "amount_cents": amount });
        produce_event(&p, &topic, "order.placed", Some(id), &body).await;
    }
    let bad: BTreeSet<String> = orders
        .iter()
        .filter(|(_, a)| *a < 0)
        .map(|(id, _)| id.clone())
        .collect();
    let env = [
        ("SPINE_INBOX__MODE", "queue"),
        ("SPINE_INBOX__MAX_ATTEMPTS", "2"),
        ("SPINE_INBOX__BACKOFF", "100ms"),
    ];
    let mut service = start_with(&name, &group, &topic, &url, free_port(), &env);

    let deadline = Instant::now() + Duration::from_secs(90);
    let rows = loop {
        let rows = listed(&inbox_command(&group, &url, &["list"]));
        let done = rows.len() == orders.len()
            && rows
                .values()
                .all(|(_, s, _)| s == "processed" || s == "dead");
        if done {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "every order processed or dead: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (id, _) in &orders {
        let (_, status, attempts) = &rows[id];
        let want = if bad.contains(id) {
            ("dead", 2)
        } else {
            ("processed", 1)
        };
        assert_eq!((status.as_str(), *attempts), want, "order {id}");
    }
    let dead = listed(&inbox_command(&group, &url, &["list", "--status", "dead"]));
    assert_eq!(dead.keys().cloned().collect::<BTreeSet<_>>(), bad);
    let limited = listed(&inbox_command(&group, &url, &["list", "--limit", "2"]));
    assert_eq!(limited.len(), 2);

    // `show`: the row's error, headers and payload.
    let one = bad.iter().next().unwrap();
    let shown = inbox_command(&group, &url, &["show", &rows[one].0.to_string()]);
    for want in [
        "dead",
        "negative amount",
        "header ce_type",
        "order.placed",
        one.as_str(),
    ] {
        assert!(shown.contains(want), "`inbox show` has {want:?}:\n{shown}");
    }

    // `retry --status dead`: both go round again and are dead-lettered twice.
    let retried = inbox_command(&group, &url, &["retry", "--status", "dead"]);
    assert!(retried.contains(&format!(" {} ", bad.len())), "{retried}");
    let letters = read_topic(&dlq, 2 * bad.len(), Duration::from_secs(60));
    let mut ids: Vec<String> = letters
        .iter()
        .filter_map(|m| json(m)["order_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    let mut want: Vec<String> = bad.iter().flat_map(|id| [id.clone(), id.clone()]).collect();
    want.sort();
    assert_eq!(ids, want, "each bad order dead-lettered once per round");
    // `retry ID` of a processed row: nothing to retry, and it says so.
    let good = orders.iter().find(|(id, _)| !bad.contains(id)).unwrap();
    let out = orders_inbox(&group, &url)
        .args(["inbox", "retry", &rows[&good.0].0.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to retry"));
    assert!(service.terminate().success());

    // `purge`: processed and dead rows older than 0 s go.
    let purged = inbox_command(&group, &url, &["purge", "--older-than", "0s"]);
    assert!(purged.contains(&format!(" {} ", orders.len())), "{purged}");
    assert!(listed(&inbox_command(&group, &url, &["list"])).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_commands_list_show_retry_and_purge_on_sqlite() {
    inbox_commands("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_commands_list_show_retry_and_purge_on_postgres() {
    inbox_commands("postgres").await;
}
