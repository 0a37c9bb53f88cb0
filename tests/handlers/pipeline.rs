//! `#[pipeline]` through the in-process dispatch path: step order and typing,
//! `None` ending a pipeline, a failing step named in the dead letter, publishing
//! steps, fixed arguments from the attribute and from the config, extractors,
//! the concurrency bound, and startup errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use spine::headers::dead_letter as dlq;
use spine::prelude::*;
use spine::testing::TestApp;
use spine::{Config, Error};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Submitted {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Normalized {
    pub id: String,
    pub text: String,
    pub trail: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Counted {
    pub id: String,
    pub text: String,
    pub words: usize,
    pub trail: Vec<String>,
}

/// Records the order in which steps ran, across messages.
#[derive(Default)]
pub struct Journal(Mutex<Vec<String>>);

impl Journal {
    fn push(&self, s: &str) {
        self.0.lock().unwrap().push(s.to_owned());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[pipeline(
    event = "text.submitted",
    topic = "texts",
    args(max_len = 20, suffix = "!")
)]
mod words {
    use super::*;

    /// Sync, with an `#[arg]` and an extractor; `None` ends the pipeline.
    pub fn normalize(
        s: Submitted,
        #[arg] max_len: usize,
        journal: State<Journal>,
    ) -> Option<Normalized> {
        journal.push("normalize");
        let text = s.text.trim().to_lowercase();
        if text.is_empty() {
            return None;
        }
        let text: String = text.chars().take(max_len).collect();
        Some(Normalized {
            id: s.id,
            text,
            trail: vec!["normalize".into()],
        })
    }

    /// Async, may fail: the dead letter names this step.
    pub async fn count(
        n: Normalized,
        journal: State<Journal>,
        meta: Meta,
    ) -> Result<Counted, HandlerError> {
        journal.push("count");
        tokio::task::yield_now().await;
        if n.text.contains("boom") {
            return Err(HandlerError::msg(format!(
                "cannot count `{}` (offset {})",
                n.text, meta.offset
            ))
            .fatal());
        }
        let mut trail = n.trail;
        trail.push("count".into());
        Ok(Counted {
            id: n.id,
            words: n.text.split_whitespace().count(),
            text: n.text,
            trail,
        })
    }

    /// Publishes its output and goes on.
    #[publish(topic = "texts.counted", event = "text.counted")]
    pub fn stamp(mut c: Counted, #[arg] suffix: String, journal: State<Journal>) -> Counted {
        journal.push("stamp");
        c.text.push_str(&suffix);
        c.trail.push("stamp".into());
        c
    }

    /// The last step returns a reply.
    pub fn answer(c: Counted) -> Reply {
        Reply::to("texts.answers", "text.answered", c)
    }
}

fn app_with(config: Config) -> (TestApp, Arc<Journal>) {
    let journal = Arc::new(Journal::default());
    let builder = Spine::builder()
        .config(config)
        .state_arc(journal.clone())
        .handlers(spine::handlers![words]);
    (TestApp::new(builder).expect("app builds"), journal)
}

fn fast_retries() -> Config {
    Config::from_toml("[retry]\nattempts = 2\nbackoff = \"1ms\"\nmax_backoff = \"1ms\"").unwrap()
}

#[tokio::test]
async fn steps_run_in_order_and_each_gets_the_previous_output() {
    let (app, journal) = app_with(fast_retries());
    let out = app
        .send(
            "texts",
            "text.submitted",
            &json!({"id": "t-1", "text": "  Hello Typed World "}),
        )
        .await;
    assert_eq!(journal.take(), ["normalize", "count", "stamp"]);
    assert_eq!(out.emitted.len(), 1, "the publishing step published once");
    let published: Counted = out.emitted[0].json().unwrap();
    assert_eq!(out.emitted[0].topic, "texts.counted");
    assert_eq!(out.emitted[0].event(), Some("text.counted"));
    assert_eq!(published.text, "hello typed world!");
    assert_eq!(published.words, 3);
    assert_eq!(out.replies.len(), 1);
    let answered: Counted = out.replies[0].json().unwrap();
    assert_eq!(
        answered, published,
        "the step after the publishing one got its output"
    );
    assert_eq!(answered.trail, ["normalize", "count", "stamp"]);
    assert!(out.dead_letters.is_empty());
    assert_eq!(app.stats().handled, 1);
}

#[tokio::test]
async fn none_ends_the_pipeline_and_the_message_counts_as_handled() {
    let (app, journal) = app_with(fast_retries());
    let out = app
        .send(
            "texts",
            "text.submitted",
            &json!({"id": "t-2", "text": "   "}),
        )
        .await;
    assert_eq!(journal.take(), ["normalize"], "no step ran after `None`");
    assert!(out.replies.is_empty() && out.emitted.is_empty() && out.dead_letters.is_empty());
    assert_eq!(app.stats().handled, 1);
}

#[tokio::test]
async fn a_failing_step_is_named_in_the_dead_letter() {
    let (app, journal) = app_with(fast_retries());
    let out = app
        .send(
            "texts",
            "text.submitted",
            &json!({"id": "t-3", "text": "boom"}),
        )
        .await;
    assert_eq!(journal.take(), ["normalize", "count"]);
    assert_eq!(out.dead_letters.len(), 1);
    let d = &out.dead_letters[0];
    assert_eq!(d.topic, "texts.dlq");
    assert_eq!(d.header(dlq::STEP), Some("count"));
    assert_eq!(d.header(dlq::HANDLER), Some("words"));
    assert_eq!(d.header(dlq::ERROR_KIND), Some("handler"));
    let msg = d.header(dlq::ERROR_MESSAGE).unwrap();
    assert!(
        msg.starts_with("step `count` failed: cannot count `boom`"),
        "{msg}"
    );
    assert!(
        out.emitted.is_empty(),
        "the publishing step after the failure did not run"
    );
}

#[tokio::test]
async fn arguments_come_from_the_config_over_the_attribute() {
    let config =
        Config::from_toml("[pipelines.words.args]\nmax_len = 5\nsuffix = \"?\"\n").unwrap();
    let (app, _) = app_with(config);
    let out = app
        .send(
            "texts",
            "text.submitted",
            &json!({"id": "t-4", "text": "abcdefghij"}),
        )
        .await;
    let c: Counted = out.replies[0].json().unwrap();
    assert_eq!(c.text, "abcde?");
}

#[tokio::test]
async fn bad_arguments_fail_at_startup_with_the_key() {
    for (toml, key, says) in [
        (
            "[pipelines.words.args]\nmax_len = \"many\"\n",
            "pipelines.words.args.max_len",
            "is not a `usize`",
        ),
        (
            "[pipelines.words.args]\nmax_lenn = 3\n",
            "pipelines.words.args.max_lenn",
            "no step of pipeline `words` takes `#[arg] max_lenn`",
        ),
        (
            "[pipelines.words]\nmax_concurrent = 0\n",
            "pipelines.words.max_concurrent",
            "at least 1",
        ),
    ] {
        let builder = Spine::builder()
            .config(Config::from_toml(toml).unwrap())
            .state(Journal::default())
            .handlers(spine::handlers![words]);
        match TestApp::new(builder) {
            Err(Error::Config { key: k, reason }) => {
                assert_eq!(k, key);
                assert!(reason.contains(says), "{reason}");
            }
            Err(other) => panic!("expected a config error for {key}, got {other}"),
            Ok(_) => panic!("expected a config error for {key}"),
        }
    }
}

#[pipeline(topic = "slow", max_concurrent = 2)]
mod bounded {
    use super::*;

    pub async fn hold(_v: serde_json::Value, gauge: State<Gauge>) {
        let now = gauge.current.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        gauge.current.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
pub struct Gauge {
    current: AtomicUsize,
    peak: AtomicUsize,
}

#[tokio::test]
async fn max_concurrent_bounds_the_pipeline() {
    let gauge = Arc::new(Gauge::default());
    let app = Arc::new(
        TestApp::new(
            Spine::builder()
                .state_arc(gauge.clone())
                .handlers(spine::handlers![bounded]),
        )
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.send("slow", "any", &json!({ "i": i })).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 2);
    assert_eq!(app.stats().handled, 8);
}

#[test]
fn steps_stay_plain_functions() {
    let n = words::normalize(
        Submitted {
            id: "x".into(),
            text: " A B ".into(),
        },
        10,
        spine::State(Arc::new(Journal::default())),
    )
    .unwrap();
    assert_eq!(n.text, "a b");
}

#[test]
fn the_descriptor_lists_the_steps() {
    let [d] = spine::handlers![words];
    assert!(d.is_pipeline());
    assert_eq!(d.steps(), ["normalize", "count", "stamp", "answer"]);
    assert_eq!(d.payload, "Submitted");
}
