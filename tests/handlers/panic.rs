//! A handler, a pipeline step or a middleware hook that panics, through
//! `TestApp`: the panic fails that message alone (a dead letter of kind
//! `panic` with the panic's message), is not retried unless
//! `retry_panics = true`, and never panics the test.

use serde_json::json;
use spine::headers::dead_letter as dlq;
use spine::middleware::{MessageInfo, Middleware};
use spine::prelude::*;
use spine::testing::TestApp;
use spine::Config;

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    order_id: String,
}

#[on(event = "order.placed", topic = "panicky")]
async fn buggy(order: Order) -> Reply {
    if order.order_id == "o-3" {
        let items: Vec<u32> = Vec::new();
        // An index out of bounds, as a bug would have it.
        let _ = items[order.order_id.len()];
    }
    Reply::to(
        "panicky.out",
        "order.accepted",
        json!({ "order_id": order.order_id }),
    )
}

fn config(extra: &str) -> Config {
    Config::from_toml(&format!(
        "[retry]\nattempts = 3\nbackoff = \"1ms\"\nmax_backoff = \"1ms\"\n{extra}"
    ))
    .unwrap()
}

fn app(config: Config) -> TestApp {
    TestApp::new(
        Spine::builder()
            .config(config)
            .handlers(spine::handlers![buggy]),
    )
    .unwrap()
}

#[tokio::test]
async fn a_panicking_handler_dead_letters_its_message_at_once_and_the_others_go_on() {
    let app = app(config(""));
    let mut answered = Vec::new();
    for i in 0..6 {
        let id = format!("o-{i}");
        let out = app
            .send("panicky", "order.placed", &json!({ "order_id": id }))
            .await;
        if id == "o-3" {
            assert!(out.replies.is_empty());
            let d = &out.dead_letters[0];
            assert_eq!(d.header(dlq::ERROR_KIND), Some("panic"));
            assert_eq!(d.header(dlq::ATTEMPTS), Some("1"), "a panic is not retried");
            assert_eq!(d.header(dlq::HANDLER), Some("buggy"));
            let message = d.header(dlq::ERROR_MESSAGE).unwrap();
            assert!(
                message.starts_with("panicked: index out of bounds"),
                "{message}"
            );
        } else {
            assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
            answered.push(out.replies[0].json::<serde_json::Value>().unwrap()["order_id"].clone());
        }
    }
    assert_eq!(answered, ["o-0", "o-1", "o-2", "o-4", "o-5"]);
    let s = app.stats();
    assert_eq!((s.handled, s.dead_lettered, s.retried), (5, 1, 0), "{s:?}");
}

#[tokio::test]
async fn retry_panics_retries_a_panic_like_an_error() {
    let app = app(config("retry_panics = true"));
    let out = app
        .send("panicky", "order.placed", &json!({ "order_id": "o-3" }))
        .await;
    let d = &out.dead_letters[0];
    assert_eq!(d.header(dlq::ERROR_KIND), Some("panic"));
    assert_eq!(d.header(dlq::ATTEMPTS), Some("3"));
    assert_eq!(app.stats().retried, 2);
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Text {
    pub id: String,
    pub text: String,
}

#[pipeline(event = "text", topic = "texts.panicky")]
mod shout {
    use super::*;

    /// Sync: panics on "sync-bug".
    pub fn trim(t: Text) -> Text {
        if t.text == "sync-bug" {
            panic!("cannot trim {}", t.id);
        }
        Text {
            text: t.text.trim().to_owned(),
            ..t
        }
    }

    /// Async: panics on "async-bug", after an await.
    pub async fn upper(t: Text) -> Text {
        tokio::task::yield_now().await;
        if t.text == "async-bug" {
            panic!("cannot upper {}", t.id);
        }
        Text {
            text: t.text.to_uppercase(),
            ..t
        }
    }

    pub fn answer(t: Text) -> Reply {
        Reply::to("texts.shouted", "shouted", t)
    }
}

#[tokio::test]
async fn a_panicking_pipeline_step_is_named_in_the_dead_letter() {
    let app = TestApp::new(
        Spine::builder()
            .config(config(""))
            .handlers(spine::handlers![shout]),
    )
    .unwrap();
    for (text, step, message) in [
        (
            "sync-bug",
            "trim",
            "step `trim` failed: panicked: cannot trim t-sync-bug",
        ),
        (
            "async-bug",
            "upper",
            "step `upper` failed: panicked: cannot upper t-async-bug",
        ),
    ] {
        let out = app
            .send(
                "texts.panicky",
                "text",
                &json!({ "id": format!("t-{text}"), "text": text }),
            )
            .await;
        assert!(out.replies.is_empty());
        let d = &out.dead_letters[0];
        assert_eq!(d.header(dlq::ERROR_KIND), Some("panic"));
        assert_eq!(d.header(dlq::STEP), Some(step));
        assert_eq!(d.header(dlq::ERROR_MESSAGE), Some(message));
        assert_eq!(d.header(dlq::ATTEMPTS), Some("1"));
    }
    let out = app
        .send(
            "texts.panicky",
            "text",
            &json!({ "id": "t-ok", "text": " fine " }),
        )
        .await;
    let shouted: Text = out.replies[0].json().unwrap();
    assert_eq!(shouted.text, "FINE");
}

/// Panics on every message it sees.
struct Nosy;

impl Middleware for Nosy {
    fn before(&self, msg: &MessageInfo<'_>) {
        panic!("nosy middleware looked at offset {}", msg.offset);
    }
}

#[tokio::test]
async fn a_panicking_middleware_hook_is_logged_and_the_message_goes_on() {
    let app = TestApp::new(
        Spine::builder()
            .config(config(""))
            .middleware(Nosy)
            .handlers(spine::handlers![buggy]),
    )
    .unwrap();
    let out = app
        .send("panicky", "order.placed", &json!({ "order_id": "o-1" }))
        .await;
    assert!(out.dead_letters.is_empty());
    assert_eq!(
        out.replies[0].json::<serde_json::Value>().unwrap()["order_id"],
        "o-1"
    );
}
