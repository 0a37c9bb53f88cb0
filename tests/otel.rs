//! With the `otel` feature: a chain of two apps (orders → accepted → a second
//! app) on the real broker, their spans exported to OpenTelemetry's
//! in-memory exporter, makes one trace per order whose spans link in order:
//! the second app's message span is a child of the first's. An order that
//! carries a `traceparent` continues that trace; one that carries none
//! starts a new one. A test binary of its own: it installs the global
//! subscriber. `scripts/test` runs it with `--features otel`.
#![cfg(feature = "otel")]

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use spine::prelude::*;
use support::*;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    id: String,
}

#[on(event = "order.placed")]
async fn accept(o: Order) -> Reply {
    Reply::to(
        "otel.accepted",
        "order.accepted",
        serde_json::json!({ "id": o.id }),
    )
}

#[on(event = "order.accepted", topic = "otel.accepted")]
async fn record(o: Order, seen: State<std::sync::Arc<std::sync::Mutex<Vec<String>>>>) {
    seen.lock().unwrap().push(o.id);
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_make_one_linked_trace_per_order() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("spine::message", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(targets),
    );
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let orders = unique("otel.orders");
    create_topics(&[&orders, "otel.accepted"], 1).await;
    let run = unique("run");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut first = config(&unique("otel-first"));
    first.app.name = "first".into();
    first.app.topics = vec![orders.clone()];
    first.set_kafka("auto.offset.reset", "earliest");
    let mut second = config(&unique("otel-second"));
    second.app.name = "second".into();
    // Only this run's replies: the topic is shared between runs.
    start_group_at_end(second.group_id(), "otel.accepted");
    let (_, stop1, task1) = run_app(
        Spine::builder()
            .config(first)
            .handlers(spine::handlers![accept]),
    );
    let (_, stop2, task2) = run_app(
        Spine::builder()
            .config(second)
            .state(seen.clone())
            .handlers(spine::handlers![record]),
    );

    let p = producer();
    let traced = format!("{run}-traced");
    let fresh = format!("{run}-fresh");
    let body = |id: &str| serde_json::to_vec(&serde_json::json!({ "id": id })).unwrap();
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    produce(
        &p,
        &orders,
        Some(&traced),
        &body(&traced),
        &[("ce_type", "order.placed"), ("traceparent", &traceparent)],
    )
    .await;
    produce(
        &p,
        &orders,
        Some(&fresh),
        &body(&fresh),
        &[("ce_type", "order.placed")],
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "both orders reach the second app",
        || {
            let s = seen.lock().unwrap();
            s.contains(&traced) && s.contains(&fresh)
        },
    )
    .await;
    stop1.trigger();
    stop2.trigger();
    task1.await.unwrap().unwrap();
    task2.await.unwrap().unwrap();
    let _ = provider.force_flush();

    let spans: Vec<SpanData> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == "message")
        .collect();
    let on = |topic: &str| -> Vec<&SpanData> {
        spans
            .iter()
            .filter(|s| attr(s, "topic").as_deref() == Some(topic))
            .collect()
    };
    let (firsts, seconds) = (on(&orders), on("otel.accepted"));
    assert_eq!(firsts.len(), 2, "{spans:#?}");
    // The second app's spans that are children of a first app's span.
    let child_of = |parent: &SpanData| -> Vec<&&SpanData> {
        seconds
            .iter()
            .filter(|s| {
                s.span_context.trace_id() == parent.span_context.trace_id()
                    && s.parent_span_id == parent.span_context.span_id()
            })
            .collect()
    };
    let given = TraceId::from_hex(TRACE_ID).unwrap();
    let continued: Vec<&&SpanData> = firsts
        .iter()
        .filter(|s| s.span_context.trace_id() == given)
        .collect();
    assert_eq!(continued.len(), 1, "the traced order continues its trace");
    assert_eq!(
        continued[0].parent_span_id,
        SpanId::from_hex(PARENT_ID).unwrap(),
        "its span's parent is the producer's"
    );
    assert_eq!(
        child_of(continued[0]).len(),
        1,
        "the second app's span follows it"
    );

    let started: Vec<&&SpanData> = firsts
        .iter()
        .filter(|s| s.span_context.trace_id() != given)
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(
        started[0].parent_span_id,
        SpanId::INVALID,
        "an order without trace context starts a trace"
    );
    assert_eq!(child_of(started[0]).len(), 1, "and the second app joins it");
}
