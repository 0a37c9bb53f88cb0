//! End-to-end request-reply on a real broker (nisshi, started by
//! `scripts/test`): 200 concurrent requests from two requester apps sharing
//! one reply topic, each answered correctly and to the right requester; and a
//! request nobody answers, which times out with a named error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use serde_json::json;
use spine::prelude::*;
use spine::RequestError;

#[derive(Debug, Deserialize, Serialize)]
struct Ask {
    run: String,
    n: u64,
}

#[derive(Debug, Deserialize, Serialize)]
struct Square {
    run: String,
    n: u64,
    square: u64,
}

/// Which requester an app is, and how many of its requests are outstanding.
struct Requester {
    name: &'static str,
    outstanding: AtomicUsize,
    peak: AtomicUsize,
}

#[on(topic = "rr.in.a")]
async fn ask_a(ask: Ask, ctx: Context, me: State<Requester>) -> Result<Reply, HandlerError> {
    ask_square(ask, ctx, me).await
}

#[on(topic = "rr.in.b")]
async fn ask_b(ask: Ask, ctx: Context, me: State<Requester>) -> Result<Reply, HandlerError> {
    ask_square(ask, ctx, me).await
}

async fn ask_square(ask: Ask, ctx: Context, me: State<Requester>) -> Result<Reply, HandlerError> {
    let now = me.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
    me.peak.fetch_max(now, Ordering::SeqCst);
    let answer: Result<Square, RequestError> = ctx
        .request("rr.requests", "square.requested", &ask)
        .timeout(Duration::from_secs(30))
        .await;
    me.outstanding.fetch_sub(1, Ordering::SeqCst);
    let answer = answer?;
    Ok(Reply::to(
        "rr.out",
        "squared",
        json!({ "run": answer.run, "n": ask.n, "square": answer.square, "answered_n": answer.n, "via": me.name }),
    ))
}

#[on(event = "square.requested", topic = "rr.requests")]
async fn square(ask: Ask) -> Reply {
    spine::respond(
        "square.answered",
        Square {
            square: ask.n * ask.n,
            n: ask.n,
            run: ask.run,
        },
    )
}

#[on(topic = "rr.lonely")]
async fn ask_nobody(ask: Ask, ctx: Context) -> Reply {
    let answer: Result<serde_json::Value, RequestError> = ctx
        .request("rr.nobody", "never.answered", &ask)
        .timeout(Duration::from_millis(500))
        .await;
    let outcome = match answer {
        Err(RequestError::Timeout { after, .. }) => format!("timeout after {after:?}"),
        Err(other) => format!("other error: {other}"),
        Ok(v) => format!("unexpected answer {v}"),
    };
    Reply::to(
        "rr.out",
        "gave.up",
        json!({ "run": ask.run, "outcome": outcome }),
    )
}

/// The first record of this run on `rr.out`, waiting up to `timeout`.
fn first_output_of(run: &str, timeout: Duration) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let found = drain_topic("rr.out", Duration::from_millis(500))
            .into_iter()
            .map(|m| json(&m))
            .find(|v| v["run"] == run);
        if found.is_some() {
            return found;
        }
    }
    None
}

fn requester_config(group: &str) -> spine::Config {
    let mut c = config(group);
    c.requests.reply_topic = "rr.replies".into();
    c
}

fn start(
    builder: spine::Builder,
) -> (
    spine::Shutdown,
    tokio::task::JoinHandle<Result<(), spine::Error>>,
) {
    let app = builder.build().expect("app builds");
    let stop = app.shutdown_handle();
    (stop, tokio::spawn(app.run_until(std::future::pending())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_get_their_own_answers() {
    create_topics(
        &["rr.in.a", "rr.in.b", "rr.requests", "rr.out", "rr.replies"],
        2,
    )
    .await;
    let run = unique("run");
    // The inputs wait in the topics before the requesters start, so every
    // request is in flight at once.
    let p = producer();
    for n in 0..200u64 {
        let topic = if n % 2 == 0 { "rr.in.a" } else { "rr.in.b" };
        let key = format!("k{n}");
        produce_event(&p, topic, "ask", Some(&key), &json!({ "run": run, "n": n })).await;
    }
    let a = Arc::new(Requester {
        name: "a",
        outstanding: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let b = Arc::new(Requester {
        name: "b",
        outstanding: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let responder = start(
        Spine::builder()
            .config(config(&unique("rr-responder")))
            .handlers(spine::handlers![square]),
    );
    let req_a = start(
        Spine::builder()
            .config(requester_config(&unique("rr-a")))
            .state_arc(a.clone())
            .handlers(spine::handlers![ask_a]),
    );
    let req_b = start(
        Spine::builder()
            .config(requester_config(&unique("rr-b")))
            .state_arc(b.clone())
            .handlers(spine::handlers![ask_b]),
    );

    let mut answers = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while answers.len() < 200 && std::time::Instant::now() < deadline {
        for m in drain_topic("rr.out", Duration::from_millis(500)) {
            let v = json(&m);
            if v["run"] == run.as_str() && header(&m, "ce_type").as_deref() == Some("squared") {
                answers.insert(v["n"].as_u64().unwrap(), v);
            }
        }
    }
    for (stop, _) in [&responder, &req_a, &req_b] {
        stop.trigger();
    }
    for (_, task) in [responder, req_a, req_b] {
        task.await.unwrap().unwrap();
    }
    assert_eq!(answers.len(), 200, "every request was answered");
    for (n, v) in &answers {
        assert_eq!(
            v["square"].as_u64(),
            Some(n * n),
            "right answer for {n}: {v}"
        );
        assert_eq!(
            v["answered_n"].as_u64(),
            Some(*n),
            "the response matched its own request: {v}"
        );
        let via = if n % 2 == 0 { "a" } else { "b" };
        assert_eq!(v["via"], via, "answered to the requester that asked: {v}");
    }
    let (pa, pb) = (a.peak.load(Ordering::SeqCst), b.peak.load(Ordering::SeqCst));
    assert!(
        pa >= 10 && pb >= 10,
        "requests were concurrent (peaks {pa}, {pb})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_answers_times_out_with_a_named_error() {
    create_topics(&["rr.lonely", "rr.nobody", "rr.out"], 1).await;
    let run = unique("run");
    let group = unique("rr-lonely");
    let (stop, task) = start(
        Spine::builder()
            .config(requester_config(&group))
            .handlers(spine::handlers![ask_nobody]),
    );
    produce_event(
        &producer(),
        "rr.lonely",
        "ask",
        None,
        &json!({ "run": run, "n": 1 }),
    )
    .await;
    let found = first_output_of(&run, Duration::from_secs(60));
    stop.trigger();
    task.await.unwrap().unwrap();
    let v = found.expect("the handler reported the outcome");
    assert_eq!(v["outcome"], "timeout after 500ms");
    // The request itself was published, with what a responder needs.
    let req = drain_topic("rr.nobody", Duration::from_millis(500))
        .into_iter()
        .find(|m| json(m)["run"] == run.as_str())
        .expect("the request was published");
    assert_eq!(
        header(&req, "spine.reply.to").as_deref(),
        Some("rr.replies")
    );
    assert_eq!(header(&req, "ce_type").as_deref(), Some("never.answered"));
    assert!(header(&req, "spine.request.id").is_some());
}

#[on(topic = "rr.in.fresh")]
async fn ask_fresh(ask: Ask, ctx: Context) -> Result<Reply, HandlerError> {
    let answer: Square = ctx
        .request("rr.requests", "square.requested", &ask)
        .timeout(Duration::from_secs(30))
        .await?;
    Ok(Reply::to(
        "rr.out",
        "squared.fresh",
        json!({ "run": answer.run, "square": answer.square }),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_reply_topic_is_created_on_the_first_request() {
    create_topics(&["rr.in.fresh", "rr.requests", "rr.out"], 1).await;
    let run = unique("run");
    let reply_topic = unique("rr.fresh.replies");
    let group = unique("rr-fresh");
    start_group_at_end(&group, "rr.in.fresh");
    let mut cfg = config(&group);
    cfg.requests.reply_topic = reply_topic.clone();
    let responder = start(
        Spine::builder()
            .config(config(&unique("rr-fresh-responder")))
            .handlers(spine::handlers![square]),
    );
    let requester = start(
        Spine::builder()
            .config(cfg)
            .handlers(spine::handlers![ask_fresh]),
    );
    produce_event(
        &producer(),
        "rr.in.fresh",
        "ask",
        None,
        &json!({ "run": run, "n": 12 }),
    )
    .await;
    let found = first_output_of(&run, Duration::from_secs(60));
    for (stop, _) in [&responder, &requester] {
        stop.trigger();
    }
    for (_, task) in [responder, requester] {
        task.await.unwrap().unwrap();
    }
    assert_eq!(found.expect("answered")["square"], 144);
    assert!(
        !end_offsets(&reply_topic).is_empty(),
        "the reply topic exists now"
    );
}
