//! Counters go through the `metrics` facade: consumed, handled, failed,
//! retried and dead-lettered messages, labelled by topic (and failure kind,
//! for the failed, retried and dead-lettered).
//! Its own test binary, because a metrics recorder is process-global.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use spine::metrics as m;
use spine::prelude::*;
use support::*;

#[derive(Deserialize)]
struct Job {
    fail: bool,
}

#[on(event = "job", topic = "metrics.in")]
async fn job(j: Job) -> Result<(), HandlerError> {
    if j.fail {
        return Err(HandlerError::msg("boom"));
    }
    Ok(())
}

#[tokio::test]
async fn counters_are_reported_per_topic_and_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");

    let topic = "metrics.in";
    create_topics(&[topic, "metrics.in.dlq"], 1).await;
    let group = unique("metrics");
    start_group_at_end(&group, topic);
    let p = producer();
    produce_event(&p, topic, "job", None, &serde_json::json!({"fail": false})).await;
    produce_event(&p, topic, "job", None, &serde_json::json!({"fail": true})).await;
    produce(&p, topic, None, b"not json", &[("ce_type", "job")]).await;
    produce_event(&p, topic, "unheard.of", None, &serde_json::json!({})).await;

    let app = Spine::builder()
        .config(config(&group))
        .handlers(spine::handlers![job])
        .build()
        .unwrap();
    let stats = app.stats();
    let stop = app.shutdown_handle();
    let task = tokio::spawn(app.run_until(std::future::pending()));
    eventually(Duration::from_secs(30), "four messages finished", || {
        let s = stats.snapshot();
        s.handled + s.dead_lettered + s.skipped >= 4
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let mut counters: HashMap<String, u64> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let k = key.key();
            let mut labels: Vec<String> = k
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            *counters
                .entry(format!("{}{{{}}}", k.name(), labels.join(",")))
                .or_default() += n;
        }
    }
    let get = |name: &str| counters.get(name).copied().unwrap_or(0);
    assert_eq!(
        get(&format!("{}{{topic={topic},transport=kafka}}", m::CONSUMED)),
        4,
        "{counters:#?}"
    );
    assert_eq!(
        get(&format!("{}{{topic={topic},transport=kafka}}", m::HANDLED)),
        1,
        "{counters:#?}"
    );
    assert_eq!(
        get(&format!("{}{{topic={topic}}}", m::UNKNOWN_EVENT)),
        1,
        "{counters:#?}"
    );
    assert_eq!(
        get(&format!("{}{{kind=handler,topic={topic}}}", m::RETRIED)),
        2,
        "{counters:#?}"
    );
    assert_eq!(
        get(&format!(
            "{}{{kind=handler,topic={topic},transport=kafka}}",
            m::FAILED
        )),
        3,
        "{counters:#?}"
    );
    assert_eq!(
        get(&format!(
            "{}{{kind=decode,topic={topic},transport=kafka}}",
            m::FAILED
        )),
        1,
        "{counters:#?}"
    );
    assert_eq!(
        get(&format!(
            "{}{{kind=handler,topic={topic}}}",
            m::DEAD_LETTERED
        )),
        1,
        "{counters:#?}"
    );
    assert_eq!(
        get(&format!(
            "{}{{kind=decode,topic={topic}}}",
            m::DEAD_LETTERED
        )),
        1,
        "{counters:#?}"
    );
}
