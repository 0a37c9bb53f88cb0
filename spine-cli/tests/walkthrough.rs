//! The README's "your first service in five minutes", step by step, as a user
//! would type it: `spine new`, `spine dev`, `spine schemas register`,
//! `cargo run`, `spine send`, `spine tail` shows the reply.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{free_port, signal, spine, text, workspace};

#[test]
fn first_service_in_five_minutes() {
    let tmp = tempfile::tempdir().unwrap();
    // 1. spine new (no --spine-path: the CLI depends on its own checkout)
    let out = spine(tmp.path())
        .args(["new", "orders-service", "--template", "avro"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let krate = tmp.path().join("orders-service");
    std::fs::copy(workspace().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    // Build first, so the service starts at once later.
    let target = workspace().join("target").join("generated");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));

    // 2. spine dev (in the service's directory: it creates spine.toml's topics)
    let (broker, registry) = (free_port(), free_port());
    let mut dev = spine(&krate)
        .args([
            "dev",
            "--broker-port",
            &broker.to_string(),
            "--registry-port",
            &registry.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    // Kept open until the end: `spine dev` prints on its way out.
    let mut dev_out = BufReader::new(dev.stdout.take().unwrap()).lines();
    for line in dev_out.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ready.") {
            break;
        }
    }
    assert!(
        banner.contains("orders:3") && banner.contains("orders.accepted:3"),
        "{banner}"
    );
    let bootstrap = format!("127.0.0.1:{broker}");
    let url = format!("http://127.0.0.1:{registry}");

    // 3. spine schemas register
    let out = spine(&krate)
        .args(["schemas", "register", "--registry", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("orders-value") && text(&out).contains("orders.accepted-value"),
        "{}",
        text(&out)
    );

    // 4. cargo run
    let log = std::fs::File::create(tmp.path().join("service.log")).unwrap();
    let http = free_port();
    let mut service = Command::new(target.join("debug").join("orders-service"))
        .current_dir(&krate)
        .env("SPINE_BOOTSTRAP_SERVERS", &bootstrap)
        .env("SPINE_SCHEMA_REGISTRY_URL", &url)
        .env("SPINE_HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // The generated spine.toml turns the HTTP listener on: it becomes ready
    // (group joined, broker up, registry answering).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let answer = http_get(http, "/health/ready");
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the generated service never got ready: {answer}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // 5. spine send
    let out = spine(&krate)
        .args([
            "send",
            "orders",
            "order.placed",
            r#"{"order_id": "o-1", "amount_cents": 100}"#,
            "--key",
            "o-1",
        ])
        .args(["--bootstrap-servers", &bootstrap, "--registry", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // 6. spine tail shows the reply
    let out = spine(&krate)
        .args([
            "tail",
            "orders.accepted",
            "--from-beginning",
            "--count",
            "1",
            "--timeout",
            "90s",
        ])
        .args(["--bootstrap-servers", &bootstrap, "--registry", &url])
        .output()
        .unwrap();
    let t = text(&out);
    let service_status = signal(&mut service, "-TERM");
    let dev_status = signal(&mut dev, "-INT");
    let log = std::fs::read_to_string(tmp.path().join("service.log")).unwrap_or_default();
    assert!(out.status.success(), "{t}\nservice log:\n{log}");
    assert!(t.contains("order.accepted"), "{t}");
    assert!(
        t.contains(r#""order_id":"o-1""#) && t.contains(r#""accepted":true"#),
        "decoded from Avro: {t}"
    );
    assert!(
        service_status.success(),
        "SIGTERM stops the service cleanly\n{log}"
    );
    assert!(dev_status.success(), "Ctrl-C stops spine dev cleanly");
    let rest: Vec<String> = dev_out.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.starts_with("Stopping")), "{rest:?}");
}

/// A plain HTTP/1.1 GET on loopback; the whole answer, or the error.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    match s
        .write_all(request.as_bytes())
        .and_then(|_| s.read_to_string(&mut out))
    {
        Ok(_) => out,
        Err(e) => e.to_string(),
    }
}
