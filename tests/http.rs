//! Handlers served over HTTP, end to end on the test broker:
//! - the `orders` example run as a service with `[http]` on: `POST /orders`
//!   replies and publishes what the Kafka path publishes (read back by
//!   Python's confluent-kafka), refuses bad requests with the documented
//!   kinds, checks API keys, JWTs and roles, serves its OpenAPI document
//!   (the same as its `openapi` command prints) and a `/docs` page whose
//!   form works in headless Chromium;
//! - schemathesis against that document (no 5xx, nothing off the document);
//! - HTTPS with a certificate made by rcgen;
//! - an app of the test's own: a path key, `publish = false`, `Meta`'s
//!   transport, `max_in_flight` and the request timeout.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use spine::prelude::*;
use support::*;

const WRITER_KEY: &str = "writer-5f1c0a9e";
const READER_KEY: &str = "reader-77ab31d2";
const JWT_SECRET: &str = "jwt-secret-9d2e4b1f7a";

/// A `spine.toml` for the orders service: the listener, the endpoint's
/// role, two API keys (a writer and a reader) and HS256 tokens.
fn orders_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("spine.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[http]
listen = "127.0.0.1:{port}"

[http.endpoints.accept]
roles = ["orders.write"]

[http.auth]
api_keys = {{ ORDERS_WRITER_KEY = ["orders.write"], ORDERS_READER_KEY = ["orders.read"] }}

[http.auth.jwt]
hs256_secret_env = "ORDERS_JWT_SECRET"
{extra}
"#
        ),
    )
    .unwrap();
    path
}

/// The orders service, running with [`orders_config`], in a directory of its
/// own. With `scheme = "https"` it serves TLS with a certificate made by
/// rcgen (`cert.pem` in `dir`); otherwise this returns once it listens.
struct Orders {
    _service: Service,
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    base: String,
}

async fn orders_service(name: &str, scheme: &str) -> Orders {
    create_topics(&["orders", "orders.accepted"], 1).await;
    let dir = tempdir(name);
    let port = free_port();
    let mut tls = String::new();
    if scheme == "https" {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
        tls = format!(
            "[http.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert_file.display(),
            key_file.display()
        );
    }
    let config = orders_config(&dir, port, &tls);
    let service = start_orders(&config, &format!("{name}.log"));
    let base = format!("http://127.0.0.1:{port}");
    if tls.is_empty() {
        wait_listening(&base).await;
    }
    Orders {
        _service: service,
        dir,
        config,
        port,
        base,
    }
}

fn orders_command(config: &Path, group: &str) -> Command {
    let mut cmd = Command::new(example("orders"));
    clean_env(&mut cmd)
        .env("SPINE_CONFIG", config)
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap())
        .env("SPINE_GROUP_ID", group)
        .env("SPINE_KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .env("ORDERS_WRITER_KEY", WRITER_KEY)
        .env("ORDERS_READER_KEY", READER_KEY)
        .env("ORDERS_JWT_SECRET", JWT_SECRET);
    cmd
}

fn start_orders(config: &Path, log: &str) -> Service {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(log);
    orders_command(config, &unique("orders-http"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .map(Service)
        .expect("start the orders example")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Waits until the listener answers `/health/live`.
async fn wait_listening(base: &str) {
    eventually_async(Duration::from_secs(30), "the listener answers", || async {
        matches!(client().get(format!("{base}/health/live")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
}

async fn eventually_async<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs `body` with `headers` (`content-type: application/json` unless
/// they say otherwise); the status, headers and JSON body.
async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client().post(url).body(body.to_owned());
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("the service answers");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, headers, json)
}

fn order(id: &str, amount: i64) -> String {
    json!({ "order_id": id, "customer": format!("c-{id}"), "amount_cents": amount }).to_string()
}

fn bearer(roles: &[&str], secret: &str) -> String {
    let claims = json!({ "sub": "tester", "exp": 4_000_000_000u64, "roles": roles });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_endpoint_replies_publishes_and_refuses_bad_requests() {
    let orders = orders_service("orders-http", "").await;
    let (base, config) = (&orders.base, &orders.config);
    let url = format!("{base}/orders");
    let writer = [("x-api-key", WRITER_KEY)];

    // A valid order: the reply, as the Kafka path makes it, published.
    let id = unique("http-order");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let ce_id = unique("ce");
    let (status, _, body) = post(
        &url,
        &[
            ("x-api-key", WRITER_KEY),
            ("traceparent", &traceparent),
            ("ce-id", &ce_id),
            ("ce-source", "tests/http.rs"),
        ],
        &order(&id, 1250),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["replies"],
        json!([{
            "topic": "orders.accepted",
            "event": "order.accepted",
            "key": format!("c-{id}"),
            "payload": { "order_id": id, "accepted": true },
        }])
    );
    let published = read_with_python(&bootstrap(), "orders.accepted", &id);
    assert_eq!(published["key"], format!("c-{id}"), "{published}");
    assert_eq!(published["headers"]["ce_type"], "order.accepted");
    assert_eq!(published["headers"]["ce_causationid"], ce_id.as_str());
    let tp = published["headers"]["traceparent"]
        .as_str()
        .unwrap_or_default();
    assert!(tp.starts_with(&format!("00-{trace_id}-")), "{published}");

    // A structured CloudEvent; then one of the wrong type.
    let id2 = unique("http-structured");
    let event = |ty: &str| {
        json!({ "specversion": "1.0", "id": unique("ce"), "source": "tests", "type": ty,
                "data": serde_json::from_str::<Value>(&order(&id2, 5)).unwrap() })
        .to_string()
    };
    let structured = [
        ("x-api-key", WRITER_KEY),
        ("content-type", "application/cloudevents+json"),
    ];
    let (status, _, v) = post(&url, &structured, &event("order.placed")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["replies"][0]["payload"]["order_id"], id2.as_str());
    let (status, _, v) = post(&url, &structured, &event("order.cancelled")).await;
    assert_eq!((status, &v["kind"]), (400, &json!("event")), "{v}");

    // A body that does not decode names the field; a negative amount is the
    // handler's error.
    let bad = json!({ "order_id": "x", "customer": "c", "amount_cents": "lots" }).to_string();
    let (status, _, body) = post(&url, &writer, &bad).await;
    assert_eq!((status, &body["kind"]), (400, &json!("decode")), "{body}");
    assert_eq!(body["field"], "amount_cents", "{body}");
    let (status, _, body) = post(&url, &writer, &order("neg-1", -5)).await;
    assert_eq!((status, &body["kind"]), (422, &json!("handler")), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("negative"),
        "{body}"
    );

    // Credentials: none, wrong, without the role; a token with and without it.
    let (status, headers, body) = post(&url, &[], &order("anon", 1)).await;
    assert_eq!(
        (status, &body["kind"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, _) = post(&url, &[("x-api-key", "not-a-key")], &order("w", 1)).await;
    assert_eq!(status, 401);
    let (status, _, body) = post(&url, &[("x-api-key", READER_KEY)], &order("r", 1)).await;
    assert_eq!(
        (status, &body["kind"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    let token = bearer(&["orders.write"], JWT_SECRET);
    let id3 = unique("http-jwt");
    let (status, _, body) = post(&url, &[("authorization", &token)], &order(&id3, 9)).await;
    assert_eq!(status, 200, "{body}");
    let reader_token = bearer(&["orders.read"], JWT_SECRET);
    let (status, _, _) = post(&url, &[("authorization", &reader_token)], &order("j", 1)).await;
    assert_eq!(status, 403);
    let forged = bearer(&["orders.write"], "another-secret");
    let (status, _, _) = post(&url, &[("authorization", &forged)], &order("f", 1)).await;
    assert_eq!(status, 401);

    // Unknown route and wrong method: JSON too.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["kind"],
        "method_not_allowed"
    );
    let (status, _, body) = post(&format!("{base}/nowhere"), &writer, "{}").await;
    assert_eq!((status, &body["kind"]), (404, &json!("not_found")));

    // The document, and the command that prints it.
    let doc: Value = client()
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let op = &doc["paths"]["/orders"]["post"];
    assert_eq!(op["operationId"], "accept");
    for code in ["200", "400", "401", "403", "422", "500", "503"] {
        assert!(op["responses"][code].is_object(), "response {code} in {op}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKey"]["name"],
        "X-API-Key"
    );
    assert_eq!(
        doc["components"]["schemas"]["OrderPlaced"]["properties"]["amount_cents"]["type"],
        "integer"
    );
    let printed = orders_command(config, "unused")
        .arg("openapi")
        .output()
        .unwrap();
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(
        printed, doc,
        "`orders openapi` prints what /openapi.json serves"
    );

    // The /docs page, in a real browser: fill the form, send, read the reply.
    let id4 = unique("http-docs");
    let out = Command::new(python())
        .arg(py_script("docs_form.py"))
        .args([
            &format!("{base}/docs"),
            "accept",
            &order(&id4, 300),
            WRITER_KEY,
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        page["status"].as_str().unwrap().starts_with("200"),
        "{page}"
    );
    let shown: Value = serde_json::from_str(page["result"].as_str().unwrap()).unwrap();
    assert_eq!(
        shown["replies"][0]["payload"]["order_id"],
        id4.as_str(),
        "{page}"
    );
    assert_eq!(page["operations"], json!(["op-accept"]));
    assert_eq!(
        read_with_python(&bootstrap(), "orders.accepted", &id4)["key"],
        format!("c-{id4}")
    );

    // The metrics say which transport the messages came by.
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |prefix: &str, labels: &[&str]| {
        text.lines()
            .find(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let handled = line(
        "spine_messages_handled_total{",
        &["transport=\"http\"", "topic=\"orders\""],
    );
    assert_eq!(handled, Some(4.0), "4 orders handled over HTTP:\n{text}");
    let ok = line(
        "spine_http_requests_total{",
        &["handler=\"accept\"", "status=\"200\""],
    );
    assert_eq!(ok, Some(4.0), "{text}");
    let refused = line("spine_http_requests_total{", &["status=\"403\""]);
    assert_eq!(refused, Some(2.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_nothing_off_the_document() {
    let orders = orders_service("orders-schemathesis", "").await;
    let (base, dir) = (&orders.base, &orders.dir);
    let st = Path::new(&python()).with_file_name("schemathesis");
    let report = dir.join("schemathesis.txt");
    let out = Command::new("timeout")
        .arg("300")
        .arg(&st)
        .args([
            "run",
            &format!("{base}/openapi.json"),
            "--url",
            base,
            "--header",
            &format!("X-API-Key: {WRITER_KEY}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "40",
            "--workers",
            "1",
            "--seed",
            "1",
            "--no-color",
        ])
        // Its cache (`.schemathesis/`) goes to the test's directory, not the repository.
        .current_dir(dir)
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&report, &text).unwrap();
    let _ = std::fs::copy(
        &report,
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-report.txt"),
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(
        text.contains("Tested: 1") && text.contains("No issues found"),
        "it tested the endpoint:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_is_served_over_tls() {
    let orders = orders_service("orders-tls", "https").await;
    let (port, cert_file) = (orders.port, orders.dir.join("cert.pem"));
    let id = unique("https-order");
    // Python's ssl, trusting only the test's certificate.
    let script = r#"
import http.client, json, ssl, sys, time
host, port, cafile, key, body = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
for _ in range(300):
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.request("POST", "/orders", body=body, headers={"content-type": "application/json", "x-api-key": key})
    except ConnectionRefusedError:
        time.sleep(0.1)
        continue
    r = conn.getresponse()
    print(json.dumps({"status": r.status, "body": json.load(r), "tls": conn.sock.version()}))
    break
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .args([
            "localhost",
            &port.to_string(),
            cert_file.to_str().unwrap(),
            WRITER_KEY,
            &order(&id, 42),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no answer over TLS: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"]["replies"][0]["payload"]["order_id"], id.as_str());
    assert!(
        v["tls"].as_str().unwrap_or_default().starts_with("TLSv1."),
        "{v}"
    );
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct Quote {
    sku: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Priced {
    sku: String,
    key: String,
    transport: String,
}

#[on(
    event = "quote.asked",
    topic = "quotes",
    replies(Priced),
    http(route = "POST /quotes/{key}", publish = false)
)]
async fn price(q: Quote, meta: Meta) -> Reply {
    let priced = Priced {
        sku: q.sku,
        key: meta.key_str().unwrap_or_default().to_owned(),
        transport: meta.transport.as_str().to_owned(),
    };
    Reply::to(QUOTED, "quote.priced", priced)
}

#[on(
    event = "quote.published",
    topic = "quotes",
    http = "POST /published/{key}"
)]
async fn published(q: Quote, meta: Meta) -> Reply {
    let key = meta.key_str().unwrap_or_default().to_owned();
    Reply::to(QUOTED, "quote.priced", json!({ "sku": q.sku, "key": key }))
}

/// Holds until the test lets it go; says when it started.
#[on(event = "slow", topic = "quotes", http = "POST /slow")]
async fn slow(q: Quote, gate: State<Gate>) {
    let _ = gate.started.send(q.sku.clone());
    let mut open = gate.open.subscribe();
    let _ = open.wait_for(|o| *o).await;
}

struct Gate {
    started: tokio::sync::mpsc::UnboundedSender<String>,
    open: tokio::sync::watch::Sender<bool>,
}

const QUOTED: &str = "quotes.priced.http";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_publish_false_and_the_bounds_of_an_app_of_its_own() {
    create_topics(&["quotes", QUOTED], 1).await;
    let port = free_port();
    let mut config = support::config(&unique("quotes-http"));
    config.http.listen = Some(format!("127.0.0.1:{port}"));
    config.http.max_in_flight = 1;
    config.http.request_timeout = Duration::from_millis(1500);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (open, _) = tokio::sync::watch::channel(false);
    let gate = Gate {
        started: started_tx,
        open: open.clone(),
    };
    let (_, stop, task) = run_app(
        Spine::builder()
            .config(config)
            .state(gate)
            .handlers(spine::handlers![price, published, slow]),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_listening(&base).await;

    // The path parameter is the key; `publish = false` returns the reply only.
    let hidden = unique("sku-hidden");
    let body = json!({ "sku": hidden }).to_string();
    let (status, _, v) = post(&format!("{base}/quotes/k-1"), &[], &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["replies"][0]["payload"],
        json!({ "sku": hidden, "key": "k-1", "transport": "http" })
    );
    // Then one that publishes, with the same key (so the same partition,
    // after it): once it is on the topic, the first one would be before it.
    let shown = unique("sku-shown");
    let (status, _, v) = post(
        &format!("{base}/published/k-1"),
        &[],
        &json!({ "sku": shown }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut want = 1;
    let bodies = loop {
        let records = read_topic(QUOTED, want, Duration::from_secs(20));
        let bodies: Vec<String> = records.iter().map(|m| json(m)["sku"].to_string()).collect();
        if bodies.iter().any(|b| b.contains(&shown)) {
            break bodies;
        }
        assert!(
            records.len() >= want,
            "the published reply never arrived: {bodies:?}"
        );
        want = records.len() + 1;
    };
    assert!(
        !bodies.iter().any(|b| b.contains(&hidden)),
        "publish = false published: {bodies:?}"
    );

    // max_in_flight = 1: while one request is in its handler, the next gets 503.
    let first = tokio::spawn({
        let url = format!("{base}/slow");
        async move { post(&url, &[], &json!({ "sku": "first" }).to_string()).await }
    });
    assert_eq!(started.recv().await.as_deref(), Some("first"));
    let (status, headers, v) = post(
        &format!("{base}/slow"),
        &[],
        &json!({ "sku": "second" }).to_string(),
    )
    .await;
    assert_eq!((status, &v["kind"]), (503, &json!("overloaded")), "{v}");
    assert_eq!(
        headers.get("retry-after").map(|h| h.to_str().unwrap()),
        Some("1")
    );
    // The held request times out (request_timeout 1.5 s), with 503 too.
    let (status, headers, v) = first.await.unwrap();
    assert_eq!((status, &v["kind"]), (503, &json!("timeout")), "{v}");
    assert!(headers.contains_key("retry-after"));
    open.send_replace(true);
    let (status, _, _) = post(
        &format!("{base}/slow"),
        &[],
        &json!({ "sku": "third" }).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        started.recv().await.as_deref(),
        Some("third"),
        "the timed-out call started once"
    );

    stop.trigger();
    task.await.unwrap().unwrap();
}

fn tempdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
