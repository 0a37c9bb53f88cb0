//! The tracing span each message is handled in. A test binary of its own:
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
