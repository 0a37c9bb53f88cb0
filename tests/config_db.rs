//! Consumer settings in a database (feature `config-db`), end to end on the
//! real broker, once on SQLite and once on PostgreSQL (the machine's server,
//! or `SPINE_TEST_DATABASE_URL`; `scripts/test` starts one if none answers).
//!
//! One service runs under its `spine_consumer_configs` row while the test
//! changes the row with `ConsumerConfigs::set` (what `spine config set`
//! calls): `max_in_flight` and metadata change live (measured by the
//! handler: its concurrency and what `Settings` shows it), `enabled = 0`
//! stops consuming after committing what was done and `1` resumes, a new
//! `topics_input` resubscribes, and an invalid row is refused while the old
//! settings go on. Every job is checked by id.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use spine::settings::{ConsumerConfigs, Supervised, SupervisorState};
use spine::sqlx;
use spine::{on, HandlerError, Meta, Settings, State};
use std::sync::Mutex;
use support::*;

/// A reload is applied within this (the issue's bound).
const RELOAD: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Job {
    id: String,
    sleep_ms: u64,
}

struct Handled {
    id: String,
    topic: String,
    tag: Option<String>,
    at: Instant,
}

#[derive(Default)]
struct Seen {
    handled: Mutex<Vec<Handled>>,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Seen {
    fn of(&self, ids: &[String]) -> Vec<(String, String, Option<String>, Instant)> {
        let want: BTreeSet<&String> = ids.iter().collect();
        self.handled
            .lock()
            .unwrap()
            .iter()
            .filter(|h| want.contains(&h.id))
            .map(|h| (h.id.clone(), h.topic.clone(), h.tag.clone(), h.at))
            .collect()
    }

    fn has_all(&self, ids: &[String]) -> bool {
        let got: BTreeSet<String> = self.of(ids).into_iter().map(|h| h.0).collect();
        ids.iter().all(|i| got.contains(i))
    }
}

#[on(event = "job")]
async fn job(
    job: Job,
    meta: Meta,
    settings: Settings,
    seen: State<Seen>,
) -> Result<(), HandlerError> {
    let now = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    seen.now.fetch_sub(1, Ordering::SeqCst);
    seen.handled.lock().unwrap().push(Handled {
        id: job.id,
        topic: meta.topic,
        tag: settings
            .metadata("tag")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        at: Instant::now(),
    });
    Ok(())
}

/// Produces `n` jobs (each its own key) to `topic`; returns their ids.
async fn jobs(topic: &str, run: &str, n: usize, sleep_ms: u64) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{run}-{i}")).collect();
    let records = ids.iter().map(|id| {
        let body = serde_json::json!({ "id": id, "sleep_ms": sleep_ms });
        (id.clone(), serde_json::to_vec(&body).unwrap())
    });
    produce_keyed(topic, "job", records).await;
    ids
}

async fn wait_state(
    rx: &mut tokio::sync::watch::Receiver<SupervisorState>,
    within: Duration,
    what: &str,
    ok: impl Fn(&SupervisorState) -> bool,
) -> SupervisorState {
    let got = tokio::time::timeout(within, rx.wait_for(|s| ok(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match got {
        Ok(Ok(s)) => s,
        _ => panic!(
            "within {within:?}: {what}; the supervisor is at {:?}",
            *rx.borrow()
        ),
    }
}

async fn hot_reload(kind: &str) {
    let name = unique(&format!("settings.{kind}"));
    let url = fresh_database(kind, &name).await;
    let (first, second) = (format!("{name}.a"), format!("{name}.b"));
    create_topics(&[&first, &second], 2).await;
    let consumer = "billing";
    let configs = ConsumerConfigs::open(&url).await.expect("open the configs");
    configs.set(consumer, "topics_input", &first).await.unwrap();
    configs
        .set(consumer, "metadata", r#"{"tag": "v1"}"#)
        .await
        .unwrap();
    configs.set(consumer, "max_in_flight", "1").await.unwrap();

    let seen = Arc::new(Seen::default());
    let group = unique("settings");
    let mut config = config(&group);
    config.app.name = consumer.into();
    config.app.config_source = Some(url.clone());
    let builder = spine::Spine::builder()
        .config(config)
        .handlers(spine::handlers![job])
        .state_arc(seen.clone());
    let Ok(supervised) = Supervised::new(builder, None).expect("supervisor") else {
        panic!("config_source is set: the app is supervised");
    };
    let mut state = supervised.state();
    let stop = supervised.shutdown_handle();
    let task = tokio::spawn(supervised.run_until_stopped());
    wait_state(
        &mut state,
        Duration::from_secs(20),
        "the first app runs",
        |s| s.running && s.builds == 1,
    )
    .await;

    // The row's max_in_flight (1) and metadata hold from the start.
    let one = jobs(&first, &unique("one"), 10, 30).await;
    eventually(Duration::from_secs(60), "the first jobs handled", || {
        seen.has_all(&one)
    })
    .await;
    assert_eq!(seen.max.load(Ordering::SeqCst), 1, "max_in_flight = 1");
    assert!(seen.of(&one).iter().all(|h| h.2.as_deref() == Some("v1")));

    // Live: more in flight, new metadata, the same app.
    configs.set(consumer, "max_in_flight", "8").await.unwrap();
    configs
        .set(consumer, "metadata", r#"{"tag": "v2"}"#)
        .await
        .unwrap();
    wait_state(
        &mut state,
        RELOAD,
        "max_in_flight 8 and tag v2 applied",
        |s| {
            s.settings.as_ref().is_some_and(|c| {
                c.max_in_flight == Some(8)
                    && c.metadata.as_ref().and_then(|m| m.get("tag")) == Some(&"v2".into())
            })
        },
    )
    .await;
    seen.max.store(0, Ordering::SeqCst);
    let eight = jobs(&first, &unique("eight"), 32, 200).await;
    eventually(Duration::from_secs(60), "the second jobs handled", || {
        seen.has_all(&eight)
    })
    .await;
    let max = seen.max.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&max),
        "max_in_flight 8 live: {max} ran at once"
    );
    assert!(seen.of(&eight).iter().all(|h| h.2.as_deref() == Some("v2")));
    assert_eq!(state.borrow().builds, 1, "live changes do not rebuild");

    // Disabled: consuming stops, with what was handled committed.
    configs.set(consumer, "enabled", "false").await.unwrap();
    wait_state(
        &mut state,
        RELOAD + Duration::from_secs(15),
        "disabled",
        |s| !s.running && s.settings.as_ref().is_some_and(|c| !c.enabled),
    )
    .await;
    assert_eq!(
        committed(&group, &first, 2),
        end_offsets(&first),
        "what was handled before disabling is committed"
    );
    let held = jobs(&first, &unique("held"), 5, 1).await;
    // Enabled again: the jobs sent while disabled are handled now, not before.
    let enabled_at = Instant::now();
    configs.set(consumer, "enabled", "true").await.unwrap();
    wait_state(&mut state, RELOAD, "enabled again", |s| {
        s.running && s.builds == 2
    })
    .await;
    eventually(Duration::from_secs(60), "the held jobs handled", || {
        seen.has_all(&held)
    })
    .await;
    for (id, _, _, at) in seen.of(&held) {
        assert!(
            at > enabled_at,
            "{id} was handled while the consumer was disabled"
        );
    }

    // New input topics: resubscribed.
    configs
        .set(consumer, "topics_input", &second)
        .await
        .unwrap();
    wait_state(&mut state, RELOAD, "resubscribed", |s| s.builds == 3).await;
    let moved = jobs(&second, &unique("moved"), 5, 1).await;
    eventually(
        Duration::from_secs(60),
        "jobs on the new topic handled",
        || seen.has_all(&moved),
    )
    .await;
    assert!(seen.of(&moved).iter().all(|h| h.1 == second));

    // A row that is valid but does not make an app (no topics left for a
    // handler without one) is refused too, and the app runs on.
    configs.set(consumer, "topics_input", "[]").await.unwrap();
    let refused = wait_state(&mut state, RELOAD, "the row without topics refused", |s| {
        s.rejected.is_some()
    })
    .await;
    assert!(refused.rejected.unwrap().contains("no topics"), "names why");
    assert!(refused.running && refused.builds == 3);
    configs
        .set(consumer, "topics_input", &second)
        .await
        .unwrap();
    wait_state(&mut state, RELOAD, "the fixed row accepted", |s| {
        s.rejected.is_none()
    })
    .await;

    // An invalid row (written around `spine config set`'s checks) is
    // refused, naming its column; the old settings go on.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE spine_consumer_configs SET max_in_flight = 0, updated_at = updated_at + 1 WHERE consumer_name = $1")
        .bind(consumer)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let refused = wait_state(&mut state, RELOAD, "the invalid row refused", |s| {
        s.rejected.is_some()
    })
    .await;
    let why = refused.rejected.unwrap();
    assert!(
        why.contains("max_in_flight") && why.contains("at least 1"),
        "{why}"
    );
    assert_eq!(refused.settings.unwrap().max_in_flight, Some(8));
    let after = jobs(&second, &unique("after"), 5, 1).await;
    eventually(
        Duration::from_secs(60),
        "jobs handled after the refusal",
        || seen.has_all(&after),
    )
    .await;
    assert_eq!(state.borrow().builds, 3);

    stop.trigger();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the supervisor stops")
        .expect("its task")
        .expect("it stops cleanly");
}

/// The `consumer_settings` example, run as a service by its own command
/// line (`spine::run`): its handler reads the row's metadata and output
/// topics; a change is logged with what changed and used by the next
/// message; an invalid row is logged with its column and refused.
async fn service_reloads(kind: &str) {
    let name = unique(&format!("settings-svc.{kind}"));
    let url = fresh_database(kind, &name).await;
    let (input, out1, out2) = (
        format!("{name}.in"),
        format!("{name}.out1"),
        format!("{name}.out2"),
    );
    create_topics(&[&input, &out1, &out2], 1).await;
    let consumer = unique("enricher");
    let configs = ConsumerConfigs::open(&url).await.expect("open the configs");
    for (column, value) in [
        ("topics_input", input.as_str()),
        ("topics_output", out1.as_str()),
        ("metadata", r#"{"region": "eu"}"#),
    ] {
        configs.set(&consumer, column, value).await.unwrap();
    }
    let mut cmd = std::process::Command::new(example("consumer_settings"));
    clean_env(&mut cmd)
        .env("SPINE_BOOTSTRAP_SERVERS", bootstrap())
        .env("SPINE_APP__NAME", &consumer)
        .env("SPINE_APP__CONFIG_SOURCE", &url)
        .env("SPINE_GROUP_ID", unique("enricher"))
        .env("SPINE_KAFKA__FETCH_WAIT_MAX_MS", "10")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut service = Service(cmd.spawn().expect("the example starts"));
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        use std::io::BufRead;
        let stderr = service.0.stderr.take().expect("piped");
        let log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                log.lock().unwrap().push(line);
            }
        });
    }
    let logged = |needle: &[&str]| {
        let log = log.clone();
        let needle: Vec<String> = needle.iter().map(|n| n.to_string()).collect();
        move || {
            log.lock()
                .unwrap()
                .iter()
                .any(|l| needle.iter().all(|n| l.contains(n.as_str())))
        }
    };
    eventually(
        Duration::from_secs(30),
        "the service subscribed",
        logged(&["subscribed"]),
    )
    .await;

    let order = |id: &str| serde_json::json!({ "order_id": id });
    let producer = producer();
    produce_event(&producer, &input, "order.placed", Some("o1"), &order("o1")).await;
    let first = read_topic(&out1, 1, Duration::from_secs(30));
    assert_eq!(first.len(), 1, "o1 enriched on {out1}");
    assert_eq!(json(&first[0])["order_id"], "o1");
    assert_eq!(json(&first[0])["region"], "eu");

    configs
        .set(&consumer, "metadata", r#"{"region": "us"}"#)
        .await
        .unwrap();
    configs
        .set(&consumer, "topics_output", &out2)
        .await
        .unwrap();
    eventually(
        RELOAD,
        "the reload logged with what changed",
        logged(&["consumer config reloaded", "topics_output", &out2]),
    )
    .await;
    produce_event(&producer, &input, "order.placed", Some("o2"), &order("o2")).await;
    let second = read_topic(&out2, 1, Duration::from_secs(30));
    assert_eq!(second.len(), 1, "o2 enriched on {out2}");
    assert_eq!(json(&second[0])["order_id"], "o2");
    assert_eq!(json(&second[0])["region"], "us");

    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE spine_consumer_configs SET metadata = '[1]' WHERE consumer_name = $1")
        .bind(consumer.clone())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    eventually(
        RELOAD,
        "the invalid row refused, naming its column",
        logged(&["consumer config rejected", "metadata", "JSON object"]),
    )
    .await;
    let status = service.terminate();
    assert!(status.success(), "the service stops cleanly: {status}");
}

#[derive(Deserialize)]
struct Pair {
    a: serde_json::Value,
    b: serde_json::Value,
}

#[on]
async fn pair(p: Pair, seen: State<Seen>) -> Result<(), HandlerError> {
    seen.handled.lock().unwrap().push(Handled {
        id: p.a["id"].as_str().unwrap_or_default().to_owned(),
        topic: p.b["id"].as_str().unwrap_or_default().to_owned(),
        tag: None,
        at: Instant::now(),
    });
    Ok(())
}

/// The row's `timeout` is the aggregation timeout, and changes live: an
/// aggregate opened after the change expires by the new one, while one
/// opened before keeps its deadline.
async fn aggregation_timeout(kind: &str) {
    let name = unique(&format!("settings-agg.{kind}"));
    let url = fresh_database(kind, &name).await;
    let (a, b, dlq) = (
        format!("{name}.a"),
        format!("{name}.b"),
        format!("{name}.dlq"),
    );
    create_topics(&[&a, &b, &dlq], 1).await;
    let consumer = unique("joiner");
    let configs = ConsumerConfigs::open(&url).await.unwrap();
    configs.set(&consumer, "timeout", "1h").await.unwrap();
    let seen = Arc::new(Seen::default());
    let mut config = config(&unique("joiner"));
    config.app.name = consumer.clone();
    config.app.config_source = Some(url.clone());
    // One message at a time per partition: a part is handled before the next.
    config.dispatch.ordering = spine::config::OrderingPolicy::Partition;
    let joined = spine::Aggregate::new(format!("pairs_{kind}"))
        .part::<serde_json::Value>("a", &a, "part.a")
        .part::<serde_json::Value>("b", &b, "part.b")
        .by_field("id")
        .timeout(Duration::from_secs(3600))
        .dead_letter_topic(&dlq)
        .handlers(spine::handlers![pair]);
    let builder = spine::Spine::builder()
        .config(config)
        .aggregate(joined)
        .state_arc(seen.clone());
    let Ok(supervised) = Supervised::new(builder, None).unwrap() else {
        panic!("supervised");
    };
    let mut state = supervised.state();
    let stop = supervised.shutdown_handle();
    let task = tokio::spawn(supervised.run_until_stopped());
    wait_state(&mut state, Duration::from_secs(20), "running", |s| {
        s.running
    })
    .await;

    let run = unique("pair");
    let (old, first, new) = (
        format!("{run}-old"),
        format!("{run}-first"),
        format!("{run}-new"),
    );
    let part = |id: &str| serde_json::json!({ "id": id });
    let producer = producer();
    produce_event(&producer, &a, "part.a", Some(&old), &part(&old)).await;
    produce_event(&producer, &a, "part.a", Some(&first), &part(&first)).await;
    produce_event(&producer, &b, "part.b", Some(&first), &part(&first)).await;
    // `first` completes after `old`'s part was taken: `old` is open, for 1h.
    eventually(Duration::from_secs(30), "the first pair joined", || {
        seen.has_all(std::slice::from_ref(&first))
    })
    .await;

    configs.set(&consumer, "timeout", "1s").await.unwrap();
    wait_state(&mut state, RELOAD, "timeout 1s applied", |s| {
        s.settings
            .as_ref()
            .is_some_and(|c| c.timeout == Some(Duration::from_secs(1)))
    })
    .await;
    produce_event(&producer, &a, "part.a", Some(&new), &part(&new)).await;
    let expired = read_topic(&dlq, 1, Duration::from_secs(15));
    assert_eq!(expired.len(), 1, "the new aggregate expired after 1 s");
    assert_eq!(
        header(&expired[0], "spine.aggregate.id").as_deref(),
        Some(new.as_str()),
        "the first to expire is the one opened after the change; `old` keeps its hour"
    );
    assert_eq!(state.borrow().builds, 1, "the timeout changed live");

    // Complete `old`, so that the stop has nothing held.
    produce_event(&producer, &b, "part.b", Some(&old), &part(&old)).await;
    eventually(Duration::from_secs(30), "the old pair joined", || {
        seen.has_all(std::slice::from_ref(&old))
    })
    .await;
    stop.trigger();
    task.await.unwrap().expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregation_timeout_on_sqlite() {
    aggregation_timeout("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregation_timeout_on_postgres() {
    aggregation_timeout("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn service_reloads_on_sqlite() {
    service_reloads("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn service_reloads_on_postgres() {
    service_reloads("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_on_sqlite() {
    hot_reload("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_on_postgres() {
    hot_reload("postgres").await;
}
