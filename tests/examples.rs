//! The examples, run as real processes in demo mode: on the embedded mock
//! cluster and the dev registry, with nothing installed. (`services.rs` runs
//! the `orders` example as a service on a real broker.)

mod support;

use std::process::Command;

use support::*;

/// Runs an example in demo mode (no broker configured) with `env`, checks
/// that it exits 0, and returns its stdout.
fn demo(name: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(example(name));
    clean_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn demo_mode_runs_on_the_embedded_mock_cluster() {
    let stdout = demo("orders", &[("ORDERS_DEMO_COUNT", "50")]);
    assert!(
        stdout.contains("Summary: consumed 50, handled 45, replied 45, dead-lettered 5"),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn logs_are_json_lines_with_telemetry_log_format_json() {
    let out = clean_env(&mut Command::new(example("orders")))
        .env("ORDERS_DEMO_COUNT", "20")
        .env("SPINE_TELEMETRY__LOG_FORMAT", "json")
        .output()
        .expect("example runs");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the demo logs something");
    let mut failed = 0;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "message failed" {
            // The event's fields sit beside its message, for log shippers.
            assert!(v["offset"].is_number() && v["topic"] == "orders", "{line}");
            failed += 1;
        }
    }
    assert_eq!(failed, 2, "two of 20 demo orders fail: {stderr}");
}

#[test]
fn avro_demo_mode_runs_with_the_mock_cluster_and_the_dev_registry() {
    let stdout = demo("orders_avro", &[("ORDERS_DEMO_COUNT", "50")]);
    assert!(
        stdout.contains("Dev schema registry at http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Summary: consumed 50, handled 45, replied 45, dead-lettered 5"),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn pipeline_demo_normalises_enriches_by_request_and_publishes() {
    let stdout = demo("pipeline", &[("PIPELINE_DEMO_COUNT", "20")]);
    // Every fifth sample is blank: the first step ends those.
    assert!(
        stdout.contains(
            "Summary: submitted 20, enriched 16 (to texts.enriched), skipped 4 blank, dead-lettered 0."
        ),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn aggregate_demo_pays_orders_and_expires_the_unpaid() {
    // The config override of the example's 10 s timeout.
    let stdout = demo(
        "aggregate",
        &[
            ("AGGREGATE_DEMO_COUNT", "20"),
            ("SPINE_AGGREGATIONS__ORDER_PAID__TIMEOUT", "1s"),
        ],
    );
    assert!(
        stdout.contains(
            "Summary: orders 20, payments 16, paid 16 (to orders.paid), expired 4 (to orders.paid.dlq)."
        ),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn middleware_example_counts_every_outcome() {
    let stdout = demo("middleware", &[]);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec!["ping", "handled", "3"]), "{stdout}");
    assert!(
        lines.contains(&vec!["ping", "dead_lettered", "1"]),
        "{stdout}"
    );
    assert!(lines.contains(&vec!["unknown", "skipped", "1"]), "{stdout}");
}
