//! What Spine tells `tracing`: the span each message is handled in, and
//! unknown events warned about once per event name. A test binary of its own:
//! `tracing` caches per-callsite interest globally, and a test on another
//! thread hitting the same callsite without a subscriber races with the
//! scoped subscriber installed here.

use std::sync::{Arc, Mutex};

use serde_json::json;
use spine::prelude::*;
use spine::testing::TestApp;

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    id: String,
    amount: i64,
}

#[on(event = "order.placed", topic = "orders")]
async fn accept(o: Order) -> Reply {
    Reply::to(
        "orders.accepted",
        "order.accepted",
        json!({ "id": o.id, "amount": o.amount }),
    )
}

fn app(builder: spine::Builder) -> TestApp {
    TestApp::new(builder).expect("app builds")
}

#[tokio::test]
async fn each_message_is_handled_inside_a_span_with_its_coordinates() {
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
    use tracing_subscriber::Layer;

    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<Vec<String>>>);
    struct Visitor<'a>(&'a mut String);
    impl tracing::field::Visit for Visitor<'_> {
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={:?} ", f.name(), v));
        }
        fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
            self.0.push_str(&format!("{}={} ", f.name(), v));
        }
    }
    impl<S: tracing::Subscriber> Layer<S> for Spans {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: LayerContext<'_, S>,
        ) {
            let mut line = format!("{}: ", attrs.metadata().name());
            attrs.record(&mut Visitor(&mut line));
            self.0.lock().unwrap().push(line);
        }
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: LayerContext<'_, S>,
        ) {
            let mut line = "record: ".to_owned();
            values.record(&mut Visitor(&mut line));
            self.0.lock().unwrap().push(line);
        }
    }

    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let app = app(Spine::builder().handlers(spine::handlers![accept]));
    app.send("orders", "order.placed", &json!({"id": "a", "amount": 1}))
        .await;
    let got = spans.0.lock().unwrap().join("\n");
    assert!(
        got.contains("message: topic=orders partition=0 offset=0"),
        "{got}"
    );
    assert!(got.contains("record: event=order.placed"), "{got}");
    assert!(got.contains("record: handler=accept"), "{got}");
}

#[tokio::test]
async fn unknown_events_are_logged_once_per_event_name_and_counted_every_time() {
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
    use tracing_subscriber::Layer;

    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> Layer<S> for Warnings {
        fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
            if *event.metadata().level() == tracing::Level::WARN {
                struct V(String);
                impl tracing::field::Visit for V {
                    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                        self.0.push_str(&format!("{}={:?} ", f.name(), v));
                    }
                    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                        self.0.push_str(&format!("{}={} ", f.name(), v));
                    }
                }
                let mut v = V(String::new());
                event.record(&mut v);
                self.0.lock().unwrap().push(v.0);
            }
        }
    }

    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let app = app(Spine::builder().handlers(spine::handlers![accept]));
    for event in [
        "order.cancelled",
        "order.cancelled",
        "order.cancelled",
        "order.shipped",
    ] {
        app.send("orders", event, &json!({})).await;
    }
    let got = warnings.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got[0].contains("event=order.cancelled"), "{got:#?}");
    assert!(got[1].contains("event=order.shipped"), "{got:#?}");
    assert_eq!(app.stats().skipped, 4);
}
