//! Helpers for the end-to-end tests: the broker (nisshi) started by `scripts/test`,
//! topic creation, producing, reading topics back with an independent consumer,
//! and reading a group's committed offsets.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spine::Config;

/// The broker address. Set by `scripts/test`, which starts the broker for the run.
pub fn bootstrap() -> String {
    std::env::var("SPINE_TEST_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "SPINE_TEST_BOOTSTRAP is not set. The end-to-end tests need a Kafka-protocol broker: \
             run them with `scripts/test`, which installs and starts nisshi, or start one with \
             `scripts/broker` and export SPINE_TEST_BOOTSTRAP=<host:port>"
        )
    })
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// An app configuration for tests: the test broker, a fresh group, fast
/// group joins (a short session timeout), quick retries
/// and commits.
pub fn config(group: &str) -> Config {
    let mut c = Config::from_toml(
        r#"
        [dispatch]
        commit_interval = "100ms"
        shutdown_timeout = "10s"
        [retry]
        attempts = 3
        backoff = "10ms"
        max_backoff = "50ms"
        "#,
    )
    .expect("test config parses");
    c.app.name = "spine-test".into();
    c.app.group = Some(group.to_owned());
    c.set_kafka("bootstrap.servers", bootstrap())
        .set_kafka("session.timeout.ms", "6000")
        .set_kafka("heartbeat.interval.ms", "500")
        .set_kafka("fetch.wait.max.ms", "10")
        .set_kafka("topic.metadata.refresh.interval.ms", "1000");
    c
}

fn client_config() -> ClientConfig {
    client_config_at(&bootstrap())
}

fn client_config_at(bootstrap: &str) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap);
    cc
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A broker (nisshi) of the test's own on a free loopback port, for tests
/// that stop the broker. `scripts/test` names the binary in
/// `SPINE_TEST_BROKER_BIN`.
/// Killed when dropped.
pub struct OwnBroker {
    child: std::process::Child,
    /// Its `host:port`.
    pub bootstrap: String,
}

impl OwnBroker {
    /// Starts it and waits until it accepts connections.
    pub fn start() -> OwnBroker {
        Self::advertising(None)
    }

    /// Starts it advertising `advertised` (a proxy's address) to clients, so
    /// that every connection after the bootstrap goes there. `bootstrap` is
    /// then the proxy's address too.
    pub fn behind(advertised: std::net::SocketAddr, port: u16) -> OwnBroker {
        let mut b = Self::advertising(Some((advertised, port)));
        b.bootstrap = advertised.to_string();
        b
    }

    fn advertising(proxy: Option<(std::net::SocketAddr, u16)>) -> OwnBroker {
        let bin = std::env::var("SPINE_TEST_BROKER_BIN").unwrap_or_else(|_| {
            panic!(
                "SPINE_TEST_BROKER_BIN is not set. This test stops a broker of its own: run it \
                 with `scripts/test`, which installs nisshi and sets it, or export \
                 SPINE_TEST_BROKER_BIN=~/.cache/spine/nisshi-0.8.1/bin/nisshi"
            )
        });
        let port = match proxy {
            Some((_, port)) => port,
            None => free_port(),
        };
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = match proxy {
            Some((addr, _)) => format!("tcp://{addr}"),
            None => url.clone(),
        };
        let child = std::process::Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://nisshi/"])
            .args(["--group-initial-rebalance-delay", "0s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the broker starts");
        let bootstrap = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not listen on {bootstrap}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnBroker { child, bootstrap }
    }

    /// Stops it in its tracks (SIGSTOP): connections stay open, nothing is
    /// answered, nothing is lost.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let sent = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {sig} the broker");
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates topics with `partitions` partitions each.
pub async fn create_topics(names: &[&str], partitions: i32) {
    create_topics_at(&bootstrap(), names, partitions).await;
}

/// [`create_topics`] on the broker at `bootstrap`.
pub async fn create_topics_at(bootstrap: &str, names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        client_config_at(bootstrap).create().expect("admin client");
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(topics.iter(), &AdminOptions::new())
        .await
        .expect("create topics");
    for r in results {
        match r {
            Ok(_) => {}
            // A developer's long-lived broker keeps topics between runs.
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, e)) => panic!("cannot create topic {name}: {e}"),
        }
    }
}

/// A plain producer, independent of Spine.
pub fn producer() -> FutureProducer {
    producer_at(&bootstrap())
}

/// [`producer`] for the broker at `bootstrap`.
pub fn producer_at(bootstrap: &str) -> FutureProducer {
    client_config_at(bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces one record and waits for the ack.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
    headers: &[(&str, &str)],
) {
    let h = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(*v),
        })
    });
    let mut rec = FutureRecord::<str, [u8]>::to(topic)
        .payload(payload)
        .headers(h);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    producer
        .send(rec, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Produces a JSON event with a `ce_type` header.
pub async fn produce_event(
    producer: &FutureProducer,
    topic: &str,
    event: &str,
    key: Option<&str>,
    payload: &serde_json::Value,
) {
    let body = serde_json::to_vec(payload).expect("json");
    produce(producer, topic, key, &body, &[("ce_type", event)]).await;
}

/// A consumer outside any group, assigned every partition of `topic` from the beginning.
fn reader(bootstrap: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = client_config_at(bootstrap)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("reader");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("tpl");
        }
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Reads `topic` from the beginning with a consumer outside any group until
/// `want` records arrived or `timeout` passed.
pub fn read_topic(topic: &str, want: usize, timeout: Duration) -> Vec<OwnedMessage> {
    read_topic_at(&bootstrap(), topic, want, timeout)
}

/// [`read_topic`] on the broker at `bootstrap`.
pub fn read_topic_at(
    bootstrap: &str,
    topic: &str,
    want: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer = reader(bootstrap, topic);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => eprintln!("reader error (ignored): {e}"),
            None => {}
        }
    }
    out
}

/// Reads every record currently in `topic`: polls until the topic has been
/// quiet for `quiet`.
pub fn drain_topic(topic: &str, quiet: Duration) -> Vec<OwnedMessage> {
    let consumer = reader(&bootstrap(), topic);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            out.push(m.detach());
            last = Instant::now();
        }
    }
    out
}

/// The end offset of every partition of `topic`.
pub fn end_offsets(topic: &str) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("watermarks"))
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut out = HashMap::new();
    for t in md.topics() {
        for p in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            out.insert(p.id(), high);
        }
    }
    out
}

/// The offsets `group` has committed for `topic`, by partition (absent: none).
pub fn committed(group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    committed_at(&bootstrap(), group, topic, partitions)
}

/// [`committed`] on the broker at `bootstrap`.
pub fn committed_at(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = client_config_at(bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The last value of header `name` of a consumed record.
pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    let h = m.headers()?;
    h.iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The payload as JSON.
pub fn json(m: &OwnedMessage) -> serde_json::Value {
    serde_json::from_slice(m.payload().unwrap_or(b"null")).expect("JSON payload")
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Commits the current end of every partition of `topic` for `group`, so that
/// the group starts with what is produced from now on, even on a broker that
/// kept records of earlier runs.
pub fn start_group_at_end(group: &str, topic: &str) {
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, end) in end_offsets(topic) {
        tpl.add_partition_offset(topic, p, Offset::Offset(end))
            .expect("tpl");
    }
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit start offsets");
}

/// `cargo test` builds the examples next to the test binaries.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test`, which builds examples",
        path.display()
    );
    path
}

/// The command without the test run's `SPINE_*` variables, logging at
/// `$SPINE_TEST_CHILD_LOG` (default `info`).
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("SPINE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "RUST_LOG",
        std::env::var("SPINE_TEST_CHILD_LOG").unwrap_or_else(|_| "info".into()),
    )
}

/// A running app: its counters, its stop handle, and its task.
pub type Running = (
    spine::StatsHandle,
    spine::Shutdown,
    tokio::task::JoinHandle<Result<(), spine::Error>>,
);

/// Builds the app and runs it on a task of its own until stopped.
pub fn run_app(builder: spine::Builder) -> Running {
    let app = builder.build().expect("app builds");
    let stats = app.stats();
    let stop = app.shutdown_handle();
    let task = tokio::spawn(app.run_until(std::future::pending()));
    (stats, stop, task)
}

/// The test venv's Python (`scripts/test` creates it and sets `SPINE_TEST_PYTHON`).
pub fn python() -> String {
    std::env::var("SPINE_TEST_PYTHON").expect(
        "SPINE_TEST_PYTHON is not set: run the tests with scripts/test, which creates the venv",
    )
}

/// The path of a helper script in tests/py.
pub fn py_script(name: &str) -> String {
    format!("{}/tests/py/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The first record of `topic` whose payload contains `needle`, as an
/// independent client (Python's confluent-kafka, tests/py/read_topic.py)
/// reads it: `{"key", "headers": {...}, "value"}`.
pub fn read_with_python(bootstrap: &str, topic: &str, needle: &str) -> serde_json::Value {
    let out = Command::new(python())
        .arg(py_script("read_topic.py"))
        .args([
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--match",
            needle,
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python found no record of {topic} with {needle}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

/// A service process (an example run as a service), killed if the test ends
/// before it stopped it.
pub struct Service(pub std::process::Child);

impl Service {
    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM");
        self.0.wait().expect("the service ends")
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill_9(&mut self) {
        self.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        self.0.wait().expect("the service ends");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Produces `records` (key, JSON body) as events `event` on `topic`, all in
/// flight at once and in order; returns each record's (partition, offset).
pub async fn produce_keyed(
    topic: &str,
    event: &str,
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Vec<(i32, i64)> {
    let producer = producer();
    let headers = OwnedHeaders::new().insert(Header {
        key: "ce_type",
        value: Some(event),
    });
    let mut acks = Vec::new();
    for (key, body) in records {
        loop {
            let rec = FutureRecord::to(topic)
                .key(&key)
                .payload(&body)
                .headers(headers.clone());
            match producer.send_result(rec) {
                Ok(ack) => break acks.push(ack),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await, // queue full
            }
        }
    }
    let mut at = Vec::with_capacity(acks.len());
    for ack in acks {
        let d = ack
            .await
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("produced");
        at.push((d.partition, d.offset));
    }
    at
}

#[cfg(any(feature = "inbox", feature = "config-db"))]
/// The server's URL (a maintenance database) for PostgreSQL tests.
pub fn postgres_admin_url() -> String {
    std::env::var("SPINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[cfg(any(feature = "inbox", feature = "config-db"))]
/// A fresh, empty database: a SQLite file, or a new PostgreSQL database.
pub async fn fresh_database(kind: &str, name: &str) -> String {
    spine::sqlx::any::install_default_drivers();
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
            let pool = spine::sqlx::AnyPool::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                    "no PostgreSQL at {admin}: {e}. Run the tests with scripts/test, which starts \
                     one, or set SPINE_TEST_DATABASE_URL"
                )
                });
            let db = name.replace(['.', '-'], "_");
            spine::sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&pool)
                .await
                .expect("create the test database");
            pool.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{db}")
        }
    }
}
