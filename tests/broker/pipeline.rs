//! End-to-end `#[pipeline]` on a real broker (nisshi, started by
//! `scripts/test`): steps run in order with typed values between them, `None`
//! ends a pipeline (committed, nothing published), a failing step reaches the
//! dead-letter topic with its name, a publishing step publishes and the
//! pipeline goes on, and everything is committed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use serde_json::json;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Text {
    run: String,
    id: u32,
    body: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Words {
    run: String,
    id: u32,
    words: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Counted {
    run: String,
    id: u32,
    count: usize,
    longest: String,
}

/// (message id, step) in the order the steps ran.
#[derive(Default)]
pub struct Trace(Mutex<Vec<(u32, &'static str)>>);

impl Trace {
    fn push(&self, id: u32, step: &'static str) {
        self.0.lock().unwrap().push((id, step));
    }
}

#[pipeline(
    event = "text.posted",
    topic = "pl.texts",
    max_concurrent = 4,
    args(separator = " ")
)]
mod count_words {
    use super::*;

    pub fn split(t: Text, #[arg] separator: String, trace: State<Trace>) -> Option<Words> {
        trace.push(t.id, "split");
        let words: Vec<String> = t
            .body
            .split(separator.as_str())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        (!words.is_empty()).then_some(Words {
            run: t.run,
            id: t.id,
            words,
        })
    }

    pub async fn count(w: Words, trace: State<Trace>) -> Result<Counted, HandlerError> {
        trace.push(w.id, "count");
        tokio::time::sleep(Duration::from_millis(5)).await;
        if w.words.iter().any(|x| x == "poison") {
            return Err(HandlerError::msg("poison word").fatal());
        }
        let longest = w
            .words
            .iter()
            .max_by_key(|x| x.len())
            .cloned()
            .unwrap_or_default();
        Ok(Counted {
            run: w.run,
            id: w.id,
            count: w.words.len(),
            longest,
        })
    }

    #[publish(topic = "pl.counted", event = "text.counted")]
    pub fn publish(c: Counted, trace: State<Trace>) -> Counted {
        trace.push(c.id, "publish");
        c
    }

    pub fn reply(c: Counted, trace: State<Trace>) -> Reply {
        trace.push(c.id, "reply");
        Reply::to("pl.done", "text.done", json!({ "run": c.run, "id": c.id }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_steps_none_and_failures_on_a_real_broker() {
    create_topics(&["pl.texts", "pl.counted", "pl.done", "pl.texts.dlq"], 2).await;
    let group = unique("pl");
    start_group_at_end(&group, "pl.texts");
    let run = unique("run");
    let trace = Arc::new(Trace::default());
    let app = Spine::builder()
        .config(config(&group))
        .state_arc(trace.clone())
        .handlers(spine::handlers![count_words])
        .build()
        .expect("app builds");
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let task = tokio::spawn(app.run_until(std::future::pending()));

    let p = producer();
    let bodies = ["typed pipelines in order", "   ", "a poison word", "one"];
    for (id, body) in bodies.iter().enumerate() {
        let key = format!("{run}-{id}");
        produce_event(
            &p,
            "pl.texts",
            "text.posted",
            Some(&key),
            &json!({ "run": run, "id": id, "body": body }),
        )
        .await;
    }
    eventually(Duration::from_secs(60), "all texts finished", || {
        let s = stats.snapshot();
        s.handled + s.dead_lettered >= 4
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let mine = |topic: &str| -> Vec<_> {
        drain_topic(topic, Duration::from_millis(500))
            .into_iter()
            .filter(|m| json(m)["run"] == run.as_str())
            .collect()
    };
    let counted = mine("pl.counted");
    let mut counted: Vec<Counted> = counted
        .iter()
        .map(|m| serde_json::from_value(json(m)).unwrap())
        .collect();
    counted.sort_by_key(|c| c.id);
    assert_eq!(counted.len(), 2, "{counted:?}");
    assert_eq!(
        (counted[0].id, counted[0].count, counted[0].longest.as_str()),
        (0, 4, "pipelines")
    );
    assert_eq!(
        (counted[1].id, counted[1].count, counted[1].longest.as_str()),
        (3, 1, "one")
    );
    let done = mine("pl.done");
    let mut done_ids: Vec<u64> = done
        .iter()
        .map(|m| json(m)["id"].as_u64().unwrap())
        .collect();
    done_ids.sort();
    assert_eq!(
        done_ids,
        [0, 3],
        "the step after the publishing one replied"
    );

    let dead = mine("pl.texts.dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], dlq::STEP).as_deref(), Some("count"));
    assert_eq!(
        header(&dead[0], dlq::HANDLER).as_deref(),
        Some("count_words")
    );
    assert!(header(&dead[0], dlq::ERROR_MESSAGE)
        .unwrap()
        .starts_with("step `count` failed: poison word"));

    let trace = trace.0.lock().unwrap().clone();
    let steps_of = |id: u32| -> Vec<&str> {
        trace
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, s)| *s)
            .collect()
    };
    assert_eq!(steps_of(0), ["split", "count", "publish", "reply"]);
    assert_eq!(steps_of(1), ["split"], "`None` ended the blank text");
    assert_eq!(
        steps_of(2),
        ["split", "count"],
        "the failing step was the last"
    );
    assert_eq!(steps_of(3), ["split", "count", "publish", "reply"]);
    assert_eq!(
        committed(&group, "pl.texts", 2),
        end_offsets("pl.texts"),
        "everything committed"
    );
}
