//! `spine config list | get | set --db URL` on SQLite (a file) and on
//! PostgreSQL (the machine's server, or `SPINE_TEST_DATABASE_URL`;
//! `scripts/test` starts one if none answers): values are checked before
//! they are written, a refused value leaves the row as it was, and the
//! tables show what is stored.

mod common;

use std::process::{Command, Output};

use common::text;

fn spine(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spine"))
        .arg("config")
        .args(args)
        .args(["--db", db])
        .env_remove("SPINE_APP__CONFIG_SOURCE")
        .output()
        .expect("spine runs")
}

fn ok(db: &str, args: &[&str]) -> String {
    let out = spine(db, args);
    assert!(
        out.status.success(),
        "spine config {args:?}: {}",
        text(&out)
    );
    text(&out)
}

fn refused(db: &str, args: &[&str]) -> String {
    let out = spine(db, args);
    assert!(
        !out.status.success(),
        "spine config {args:?} should fail: {}",
        text(&out)
    );
    text(&out)
}

/// The row of `name` as (column, value) pairs, from `get`'s table.
fn row(db: &str, name: &str) -> Vec<(String, String)> {
    ok(db, &["get", name])
        .lines()
        .filter_map(|l| {
            // Borders only: `│ column   value │`.
            let inner = l.trim().strip_prefix('│')?.strip_suffix('│')?.trim();
            let (column, value) = inner.split_once(char::is_whitespace)?;
            Some((column.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn value(db: &str, name: &str, column: &str) -> String {
    row(db, name)
        .into_iter()
        .find(|(c, _)| c == column)
        .unwrap_or_else(|| panic!("no {column} in `get {name}`"))
        .1
}

async fn database(kind: &str, dir: &tempfile::TempDir) -> String {
    if kind == "sqlite" {
        return format!("sqlite://{}", dir.path().join("configs.db").display());
    }
    sqlx::any::install_default_drivers();
    let admin = std::env::var("SPINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap_or_else(|e| {
        panic!("no PostgreSQL at {admin}: {e}. Run scripts/test, which starts one")
    });
    let db = format!("spine_cli_config_{}", std::process::id());
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute(&pool)
        .await;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&pool)
        .await
        .expect("create the test database");
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{db}")
}

async fn manages_rows(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(kind, &dir).await;
    assert!(ok(&db, &["list"]).contains("no consumer configs"));
    let missing = refused(&db, &["get", "orders"]);
    assert!(
        missing.contains("no consumer config named `orders`"),
        "{missing}"
    );

    ok(&db, &["set", "orders", "max_in_flight", "64"]);
    ok(
        &db,
        &["set", "orders", "topics_input", "orders,orders.retry"],
    );
    ok(&db, &["set", "orders", "metadata", r#"{"region": "eu"}"#]);
    ok(&db, &["set", "orders", "enabled", "false"]);
    ok(&db, &["set", "audit", "timeout", "30s"]);
    assert_eq!(value(&db, "orders", "max_in_flight"), "64");
    assert_eq!(
        value(&db, "orders", "topics_input"),
        r#"["orders","orders.retry"]"#
    );
    assert_eq!(value(&db, "orders", "metadata"), r#"{"region": "eu"}"#);
    assert_eq!(value(&db, "orders", "enabled"), "0");
    assert_eq!(value(&db, "orders", "check"), "ok");
    assert_eq!(value(&db, "audit", "timeout"), "30s");

    // Refused before writing: the column and the reason, and the row stays.
    for (column, bad, says) in [
        ("max_in_flight", "0", "at least 1"),
        ("metadata", "[1, 2]", "JSON object"),
        ("topics_output", "a b", "not a topic name"),
        ("bootstrap_servers", "kafka", "host:port"),
        ("timeout", "later", "duration"),
        ("colour", "red", "no column `colour`"),
    ] {
        let e = refused(&db, &["set", "orders", column, bad]);
        assert!(e.contains(says), "set {column} {bad}: {e}");
        assert!(e.contains("orders"), "names the consumer: {e}");
    }
    assert_eq!(value(&db, "orders", "max_in_flight"), "64");

    // `null` clears a column: the service's file decides again.
    ok(&db, &["set", "orders", "max_in_flight", "null"]);
    assert_eq!(value(&db, "orders", "max_in_flight"), "-");

    let list = ok(&db, &["list"]);
    let lines: Vec<&str> = list.lines().filter(|l| l.contains("│")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("audit") && l.contains("30s")),
        "{list}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("orders") && l.contains("orders.retry") && l.contains("ok")),
        "{list}"
    );
}

#[tokio::test]
async fn config_on_sqlite() {
    manages_rows("sqlite").await;
}

#[tokio::test]
async fn config_on_postgres() {
    manages_rows("postgres").await;
}
