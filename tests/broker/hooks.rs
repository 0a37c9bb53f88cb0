//! End-to-end: producer hooks (`Builder::outgoing`) on the real broker. Each
//! case is one message whose reply names an event; hooks for those events
//! keep, change, drop, fail or panic, and a hook for every event stamps a
//! header. What reached the topic is read back by id once the group has
//! committed past every message (so every reply was acknowledged).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Message;

use crate::support::*;
use spine::prelude::*;
use spine::Sent;

#[derive(Debug, Deserialize, Serialize)]
struct Case {
    id: String,
    /// The reply's event, which picks the hook.
    reply: String,
    out: String,
}

#[on(event = "hook.case")]
async fn answer(c: Case) -> Reply {
    Reply::to(
        c.out.clone(),
        c.reply.clone(),
        serde_json::json!({ "id": c.id, "text": "original" }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_keep_change_drop_and_publish_the_original_when_they_fail() {
    let (input, out) = (unique("hooks.in"), unique("hooks.out"));
    create_topics(&[&input, &out, &format!("{input}.dlq")], 1).await;
    let group = unique("hooks");
    let mut cfg = config(&group);
    cfg.app.topics = vec![input.clone()];
    cfg.set_kafka("auto.offset.reset", "earliest");
    let run = unique("run");
    let cases = ["keep", "change", "drop", "fail", "panic"];
    let p = producer();
    for reply in cases {
        let id = format!("{run}-{reply}");
        let case = Case {
            id: id.clone(),
            reply: reply.to_owned(),
            out: out.clone(),
        };
        produce_event(
            &p,
            &input,
            "hook.case",
            Some(&id),
            &serde_json::to_value(&case).unwrap(),
        )
        .await;
    }

    let builder = Spine::builder()
        .config(cfg)
        .handlers(spine::handlers![answer])
        .outgoing_event("change", |mut s: Sent| {
            let mut v: serde_json::Value = s.json()?;
            v["text"] = "changed".into();
            s.set_json(&v)?;
            Ok::<_, serde_json::Error>(Some(s))
        })
        .outgoing_event("drop", |_| Ok::<_, std::convert::Infallible>(None))
        .outgoing_event("fail", |_| Err("the hook's own error"))
        .outgoing_event("panic", |_| -> spine::OutgoingResult {
            panic!("a hook that panics")
        })
        .outgoing(|mut s: Sent| {
            s.set_header("x-hooked", "yes");
            Ok::<_, std::convert::Infallible>(Some(s))
        });
    let (stats, stop, task) = run_app(builder);
    eventually(Duration::from_secs(60), "every case committed", || {
        committed(&group, &input, 1).get(&0) == Some(&(cases.len() as i64))
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();

    let got: BTreeMap<String, (String, Option<String>, Option<String>)> =
        drain_topic(&out, Duration::from_secs(2))
            .iter()
            .map(|m| {
                let v = json(m);
                (
                    v["id"].as_str().unwrap().to_owned(),
                    (
                        v["text"].as_str().unwrap().to_owned(),
                        header(m, "x-hooked"),
                        m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    ),
                )
            })
            .collect();
    let id = |c: &str| format!("{run}-{c}");
    let yes = Some("yes".to_owned());
    let want: BTreeMap<String, (String, Option<String>, Option<String>)> = [
        ("keep", "original"),
        ("change", "changed"),
        ("fail", "original"),
        ("panic", "original"),
    ]
    .into_iter()
    .map(|(c, text)| (id(c), (text.to_owned(), yes.clone(), Some(id(c)))))
    .collect();
    assert_eq!(
        got, want,
        "the dropped reply is absent, the rest as the hooks left them"
    );
    let s = stats.snapshot();
    assert_eq!((s.handled, s.dead_lettered), (5, 0), "{s:?}");
}
