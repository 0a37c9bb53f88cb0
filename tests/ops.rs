//! The operations surface of the `orders` example, run as a service with
//! `[http] listen` on a broker of the test's own: `/metrics` parsed by
//! Prometheus' own Python parser, the probes while the broker goes away and
//! comes back, `/routes`, `/asyncapi.json`, and the status page rendered by
//! a real headless browser (Debian's chromium, which `scripts/test` installs),
//! and the probes of the Kubernetes manifest in deploy/.
//! A test binary of its own: it starts and stops a broker.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

fn start_orders(bootstrap: &str, group: &str, http_port: u16) -> Service {
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("orders-ops.log");
    clean_env(&mut Command::new(example("orders")))
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap)
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("SPINE_KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .env("SPINE_KAFKA__RECONNECT_BACKOFF_MAX_MS", "500")
        .env("SPINE_RETRY__BACKOFF", "10ms")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .map(Service)
        .expect("start the orders example")
}

/// GET `url`: the status and the body (status 0 when nothing answers).
async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    match client.get(url).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

async fn get_json(url: &str) -> (u16, Value) {
    let (code, body) = get(url).await;
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Waits until GET `url` answers `code`; returns the body.
async fn wait_status(url: &str, code: u16, timeout: Duration) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (c, body) = get_json(url).await;
        if c == code {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} answered {c} ({body}), not {code}, for {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/metrics`, parsed by prometheus_client's parser.
async fn metrics(base: &str) -> Value {
    let (code, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200, "{text}");
    let mut child = Command::new(python())
        .arg(py_script("parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(m: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    m[family]["samples"]
        .as_array()?
        .iter()
        .find(|s| {
            s["name"] == name
                && labels
                    .iter()
                    .all(|(k, v)| s["labels"][*k].as_str() == Some(*v))
        })
        .and_then(|s| s["value"].as_f64())
}

/// The page as the browser built it (`--dump-dom`).
fn render(url: &str) -> String {
    let chromium = std::env::var("SPINE_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {chromium} ({e}): scripts/test installs Debian's chromium package; \
                 or set SPINE_TEST_CHROMIUM"
            )
        });
    assert!(out.status.success(), "{chromium} failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// deploy/kubernetes.yaml, read back: checks that its probes, container
/// port, `SPINE_HTTP__LISTEN`, scrape annotations and grace period agree,
/// and returns the paths it expects the service to serve (liveness,
/// readiness, scrape).
fn manifest_paths() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes.yaml"
    ))
    .expect("deploy/kubernetes.yaml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("the manifest parses");
    let pod = &docs[0]["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let port_named = |name: &str| {
        c["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
    };
    let listen = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("SPINE_HTTP__LISTEN"))
        .and_then(|e| e["value"].as_str())
        .expect("SPINE_HTTP__LISTEN in the manifest");
    let listen_port: i64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let mut paths = Vec::new();
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &c[probe]["httpGet"];
        let port = match get["port"].as_str() {
            Some(name) => port_named(name),
            None => get["port"].as_i64(),
        };
        assert_eq!(port, Some(listen_port), "{probe} port is the listener's");
        paths.push(get["path"].as_str().unwrap().to_owned());
    }
    assert_eq!(paths, ["/health/live", "/health/ready"]);
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(
        annotations["prometheus.io/port"].as_str(),
        Some(listen_port.to_string().as_str())
    );
    paths.push(
        annotations["prometheus.io/path"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    let d = spine::Config::default().dispatch;
    assert!(
        grace as u64 > (d.shutdown_timeout + d.commit_timeout).as_secs(),
        "terminationGracePeriodSeconds {grace} leaves the shutdown no time to commit"
    );
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_service_serves_metrics_probes_routes_and_a_status_page() {
    let mut broker = OwnBroker::start();
    let bs = broker.bootstrap.clone();
    let topics = ["orders", "orders.accepted", "orders.dlq"];
    create_topics_at(&bs, &topics, 3).await;
    let http = free_port();
    let base = format!("http://127.0.0.1:{http}");
    let group = unique("orders-ops");
    let mut service = start_orders(&bs, &group, http);

    // Ready once it joined its group and librdkafka reports the broker up.
    let ready = wait_status(
        &format!("{base}/health/ready"),
        200,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(ready["checks"]["group"]["ok"], true, "{ready}");
    assert_eq!(ready["checks"]["broker"]["ok"], true, "{ready}");
    let (live, body) = get_json(&format!("{base}/health/live")).await;
    assert_eq!(live, 200, "{body}");

    // 40 orders, 4 of them with a negative amount (dead-lettered).
    let run = unique("ops");
    let p = producer_at(&bs);
    let mut good = BTreeSet::new();
    let mut poison = BTreeSet::new();
    for i in 0..40 {
        let id = format!("{run}-{i:02}");
        let amount = if i % 10 == 7 { -1 } else { 100 };
        let body = serde_json::json!({"order_id": id, "customer": "c", "amount_cents": amount});
        produce(
            &p,
            "orders",
            Some(&id),
            &serde_json::to_vec(&body).unwrap(),
            &[("ce_type", "order.placed")],
        )
        .await;
        if amount < 0 {
            poison.insert(id);
        } else {
            good.insert(id);
        }
    }
    let replies = read_topic_at(&bs, "orders.accepted", good.len(), Duration::from_secs(60));
    let answered: BTreeSet<String> = replies
        .iter()
        .map(|m| json(m)["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(answered, good, "every good order answered, by id");
    let dead = read_topic_at(&bs, "orders.dlq", poison.len(), Duration::from_secs(60));
    assert_eq!(dead.len(), poison.len());

    // Trace context survives the hop: an order with a traceparent gets a
    // reply in the same trace, as an independent client reads it.
    let traced = format!("{run}-traced");
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4736";
    let body = serde_json::json!({"order_id": traced, "customer": "c", "amount_cents": 1});
    produce(
        &p,
        "orders",
        Some(&traced),
        &serde_json::to_vec(&body).unwrap(),
        &[
            ("ce_type", "order.placed"),
            ("traceparent", &format!("00-{trace_id}-1000000000000001-01")),
        ],
    )
    .await;
    let reply = read_with_python(&bs, "orders.accepted", &traced);
    let tp = reply["headers"]["traceparent"].as_str().unwrap_or_default();
    assert!(
        tp.starts_with(&format!("00-{trace_id}-")) && !tp.contains("1000000000000001"),
        "the reply continues the trace with its own parent id: {reply}"
    );
    good.insert(traced);

    // /metrics: the counters say what happened, with HELP text and types.
    let orders = [("topic", "orders")];
    let mut m = metrics(&base).await;
    for _ in 0..50 {
        let handled = sample(
            &m,
            "spine_messages_handled",
            "spine_messages_handled_total",
            &orders,
        );
        if handled == Some(good.len() as f64)
            && sample(&m, "spine_consumer_lag", "spine_consumer_lag", &orders).is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // the next statistics
        m = metrics(&base).await;
    }
    let handled = sample(
        &m,
        "spine_messages_handled",
        "spine_messages_handled_total",
        &orders,
    );
    assert_eq!(handled, Some(good.len() as f64), "handled counter");
    let dead_lettered = sample(
        &m,
        "spine_messages_dead_lettered",
        "spine_messages_dead_lettered_total",
        &[("topic", "orders"), ("kind", "handler")],
    );
    assert_eq!(dead_lettered, Some(poison.len() as f64));
    let retried = sample(
        &m,
        "spine_messages_retried",
        "spine_messages_retried_total",
        &[("topic", "orders"), ("kind", "handler")],
    );
    assert_eq!(retried, Some(2.0 * poison.len() as f64), "3 attempts each");
    assert_eq!(m["spine_handler_duration_seconds"]["type"], "histogram");
    let timed = sample(
        &m,
        "spine_handler_duration_seconds",
        "spine_handler_duration_seconds_count",
        &[
            ("topic", "orders"),
            ("event", "order.placed"),
            ("handler", "accept"),
        ],
    );
    assert_eq!(timed, Some(41.0), "one duration per order");
    assert_eq!(
        sample(
            &m,
            "spine_assigned_partitions",
            "spine_assigned_partitions",
            &[]
        ),
        Some(3.0)
    );
    for p in ["0", "1", "2"] {
        let at = [("topic", "orders"), ("partition", p)];
        assert!(
            sample(&m, "spine_consumer_lag", "spine_consumer_lag", &at).is_some(),
            "lag of partition {p}: {}",
            m["spine_consumer_lag"]
        );
        assert!(
            sample(&m, "spine_committed_offset", "spine_committed_offset", &at).is_some(),
            "committed offset of partition {p}"
        );
    }
    for (family, f) in m.as_object().unwrap() {
        if family.starts_with("spine_") {
            assert!(
                f["help"].as_str().is_some_and(|h| !h.is_empty()),
                "{family} has a HELP line"
            );
        }
    }

    // The Kubernetes manifest in deploy/ points at what the service serves.
    for path in manifest_paths() {
        let (code, body) = get(&format!("{base}{path}")).await;
        assert_eq!(code, 200, "{path} from deploy/kubernetes.yaml: {body}");
    }

    // /routes and /asyncapi.json.
    let (code, routes) = get_json(&format!("{base}/routes")).await;
    assert_eq!(code, 200);
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["topic"] == "orders"
                && r["event"] == "order.placed"
                && r["handler"] == "accept"),
        "{routes}"
    );
    let (code, doc) = get_json(&format!("{base}/asyncapi.json")).await;
    assert_eq!(code, 200);
    assert!(doc["asyncapi"].is_string(), "{doc}");

    // The status page, as the browser renders it.
    let dom = render(&format!("{base}/"));
    assert!(dom.contains("orders-service"), "{dom}");
    assert!(dom.contains("id=\"partitions\""), "{dom}");
    for id in &poison {
        assert!(dom.contains(id.as_str()), "failure of {id} listed: {dom}");
    }
    let topic_row = format!(
        "<td>orders</td><td class=\"n\">41</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
        good.len(),
        poison.len()
    );
    assert!(dom.contains(&topic_row), "counts by topic: {dom}");
    assert!(!dom.contains("amount_cents"), "no payloads on the page");

    // Three more instances: four members on three partitions. The one left
    // without a partition is ready all the same, and says why.
    let mut others = Vec::new();
    let mut ports = vec![http];
    for _ in 0..3 {
        let port = free_port();
        others.push(start_orders(&bs, &group, port));
        ports.push(port);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    'idle: loop {
        for port in &ports {
            let (code, body) = get_json(&format!("http://127.0.0.1:{port}/health/ready")).await;
            let detail = body["checks"]["group"]["detail"]
                .as_str()
                .unwrap_or_default();
            if code == 200 && detail.contains("no partition assigned") {
                break 'idle;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no member reported an empty assignment as ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for mut o in others {
        o.terminate();
    }

    // The broker goes away: not ready, still live.
    broker.kill();
    let down = wait_status(
        &format!("{base}/health/ready"),
        503,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(down["checks"]["broker"]["ok"], false, "{down}");
    let (live, body) = get_json(&format!("{base}/health/live")).await;
    assert_eq!(live, 200, "live while the broker is away: {body}");

    // It comes back on the same address: ready again.
    let addr: std::net::SocketAddr = bs.parse().unwrap();
    let _broker = OwnBroker::behind(addr, addr.port());
    create_topics_at(&bs, &topics, 3).await;
    wait_status(
        &format!("{base}/health/ready"),
        200,
        Duration::from_secs(90),
    )
    .await;
    let (live, body) = get_json(&format!("{base}/health/live")).await;
    assert_eq!(live, 200, "{body}");

    let code = service.terminate();
    assert!(code.success(), "SIGTERM: exit {code:?}");
}
