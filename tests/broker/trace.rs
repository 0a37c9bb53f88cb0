//! End-to-end: W3C trace context across a Kafka hop, byte for byte. A record
//! with `traceparent` and `tracestate` makes every record published while
//! handling it (reply, emitted event, request, dead letter, error event)
//! carry the same trace id and flags, `tracestate` unchanged, and one new
//! parent id, the message's own. A record without them gets none. An
//! independent client (Python's confluent-kafka) reads the same header.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::support::*;
use spine::prelude::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

#[derive(Debug, Deserialize, Serialize)]
struct Traced {
    id: String,
    fail: bool,
    ask: bool,
}

#[on(event = "traced")]
async fn traced(t: Traced, ctx: Context) -> Result<Reply, HandlerError> {
    ctx.emit(
        "trace.out",
        "traced.emitted",
        &serde_json::json!({ "id": t.id }),
    )
    .await
    .map_err(HandlerError::msg)?;
    if t.ask {
        let _: serde_json::Value = ctx
            .request("trace.asks", "asked", &serde_json::json!({ "id": t.id }))
            .timeout(Duration::from_millis(200))
            .await
            .map_err(|e| HandlerError::msg(e).fatal())?;
    }
    if t.fail {
        return Err(HandlerError::msg(format!("{} fails", t.id)).fatal());
    }
    Ok(Reply::to(
        "trace.out",
        "traced.replied",
        serde_json::json!({ "id": t.id }),
    ))
}

/// The records of `topic` whose payload names one of `ids`, by id.
fn of_ids(topic: &str, want: usize, ids: &BTreeSet<String>) -> BTreeMap<String, Vec<OwnedMessage>> {
    let mut by_id: BTreeMap<String, Vec<OwnedMessage>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while by_id.values().map(Vec::len).sum::<usize>() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: {by_id:?} of {want}"
        );
        by_id.clear();
        for m in drain_topic(topic, Duration::from_millis(300)) {
            let v = json(&m);
            let id = v["id"]
                .as_str()
                .or_else(|| v["payload"]["id"].as_str())
                .map(str::to_owned);
            if let Some(id) = id.filter(|i| ids.contains(i)) {
                by_id.entry(id).or_default().push(m);
            }
        }
    }
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_continues_in_everything_published() {
    let topic = unique("trace.in");
    let (dlq, errors) = (format!("{topic}.dlq"), format!("{topic}.errors"));
    create_topics(&[&topic, &dlq, &errors, "trace.out", "trace.asks"], 1).await;
    let run = unique("run");
    let id = |s: &str| format!("{run}-{s}");
    let mut cfg = config(&unique("trace"));
    cfg.app.topics = vec![topic.clone()];
    cfg.error_events.enabled = true;
    cfg.retry.attempts = 1;
    cfg.set_kafka("auto.offset.reset", "earliest");

    // replied: reply + emit; failed: emit + dead letter + error event;
    // asked: emit + request + (no answer) dead letter + error event;
    // untraced: reply + emit, without trace context.
    let p = producer();
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    for (name, fail, ask, traced) in [
        ("replied", false, false, true),
        ("failed", true, false, true),
        ("asked", false, true, true),
        ("untraced", false, false, false),
    ] {
        let body =
            serde_json::to_vec(&serde_json::json!({ "id": id(name), "fail": fail, "ask": ask }))
                .unwrap();
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "ce_type",
            value: Some("traced"),
        });
        if traced {
            headers = headers
                .insert(Header {
                    key: "traceparent",
                    value: Some(&traceparent),
                })
                .insert(Header {
                    key: "tracestate",
                    value: Some(TRACESTATE),
                });
        }
        let key = id(name);
        let rec = FutureRecord::to(&topic)
            .key(&key)
            .payload(&body)
            .headers(headers);
        p.send(rec, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let (_, stop, task) = run_app(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![traced]),
    );

    let traced_ids: BTreeSet<String> = ["replied", "failed", "asked"].map(id).into();
    let all: BTreeSet<String> = traced_ids.iter().cloned().chain([id("untraced")]).collect();
    // trace.out: 2 records each for replied and untraced, 1 for failed and asked.
    let out = of_ids("trace.out", 6, &all);
    let dead = of_ids(&dlq, 2, &all);
    let errs = of_ids(&errors, 2, &all);
    let asks = of_ids("trace.asks", 1, &all);
    stop.trigger();
    task.await.unwrap().unwrap();

    let mut published: BTreeMap<String, Vec<(String, OwnedMessage)>> = BTreeMap::new();
    for (what, by_id) in [
        ("out", out),
        ("dlq", dead),
        ("errors", errs),
        ("asks", asks),
    ] {
        for (i, ms) in by_id {
            for m in ms {
                published
                    .entry(i.clone())
                    .or_default()
                    .push((what.into(), m));
            }
        }
    }
    assert_eq!(
        published[&id("replied")].len(),
        2,
        "reply and emitted event"
    );
    assert_eq!(
        published[&id("failed")].len(),
        3,
        "emit, dead letter, error event"
    );
    assert_eq!(
        published[&id("asked")].len(),
        4,
        "emit, request, dead letter, error event"
    );

    let mut span_ids = BTreeSet::new();
    for i in &traced_ids {
        let mut parents = BTreeSet::new();
        for (what, m) in &published[i] {
            let tp = header(m, "traceparent")
                .unwrap_or_else(|| panic!("{what} record of {i} carries no traceparent"));
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!(
                (parts[0], parts[1], parts[3]),
                ("00", TRACE_ID, "01"),
                "{what}: {tp}"
            );
            assert!(
                parts[2].len() == 16
                    && parts[2]
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{what}: {tp}"
            );
            assert_ne!(parts[2], PARENT_ID, "{what}: a new parent id");
            assert_ne!(parts[2], "0000000000000000");
            assert_eq!(
                header(m, "tracestate").as_deref(),
                Some(TRACESTATE),
                "{what}: tracestate byte for byte"
            );
            let copies = m.headers().map(|h| {
                rdkafka::message::Headers::iter(h)
                    .filter(|h| h.key == "traceparent")
                    .count()
            });
            assert_eq!(copies, Some(1), "{what}: one traceparent");
            parents.insert(parts[2].to_owned());
        }
        assert_eq!(
            parents.len(),
            1,
            "{i}: one parent id per message: {parents:?}"
        );
        span_ids.extend(parents);
    }
    assert_eq!(span_ids.len(), 3, "each message its own parent id");
    for (what, m) in &published[&id("untraced")] {
        assert_eq!(
            header(m, "traceparent"),
            None,
            "{what} of the untraced message"
        );
    }

    // An independent client reads the reply's header the same.
    let seen = read_with_python(&bootstrap(), "trace.out", &id("replied"));
    let tp = seen["headers"]["traceparent"].as_str().unwrap_or_default();
    assert!(tp.starts_with(&format!("00-{TRACE_ID}-")), "{seen}");
    assert_eq!(seen["headers"]["tracestate"], TRACESTATE, "{seen}");
}
