//! `replay` on a real broker (nisshi, started by `scripts/test`): a range of
//! offsets goes through the same handlers again, the live group's committed
//! offsets do not move, nothing is published without `--publish`, and with it
//! exactly the range's replies are. Checked with independent clients.

use std::process::ExitCode;
use std::time::Duration;

use crate::support::*;
use serde_json::json;
use spine::prelude::*;
use spine::{Position, ReplayOptions};

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    run: String,
    n: u32,
}

#[on(event = "order.placed", topic = "replay.orders")]
async fn accept(o: Order) -> Reply {
    Reply::to(
        "replay.accepted",
        "order.accepted",
        json!({ "run": o.run, "n": o.n }),
    )
}

fn replies(run: &str) -> Vec<u64> {
    let mut v: Vec<u64> = drain_topic("replay.accepted", Duration::from_millis(500))
        .iter()
        .map(json)
        .filter(|v| v["run"] == run)
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reprocesses_a_range_without_touching_the_live_group() {
    create_topics(&["replay.orders", "replay.accepted"], 1).await;
    let run = unique("run");
    let group = unique("replay-live");
    start_group_at_end(&group, "replay.orders");
    let start = end_offsets("replay.orders")[&0];
    let p = producer();
    for n in 0..6 {
        produce_event(
            &p,
            "replay.orders",
            "order.placed",
            None,
            &json!({ "run": run, "n": n }),
        )
        .await;
    }
    // The live service handles all six, and commits.
    let app = Spine::builder()
        .config(config(&group))
        .handlers(spine::handlers![accept])
        .build()
        .unwrap();
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let task = tokio::spawn(app.run_until(std::future::pending()));
    eventually(Duration::from_secs(60), "six handled", || {
        stats.snapshot().handled >= 6
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    assert_eq!(replies(&run), [0, 1, 2, 3, 4, 5]);
    let live = committed(&group, "replay.orders", 1);
    assert_eq!(live[&0], start + 6);

    let builder = || {
        Spine::builder()
            .config(config(&group))
            .handlers(spine::handlers![accept])
    };
    let replay_group = unique("replay-run");

    // Dry run (the library call the CLI makes): the range's replies are
    // reported, not published.
    let accepted_end = end_offsets("replay.accepted")[&0];
    let mut steps = 0;
    let report = builder()
        .replay(
            ReplayOptions {
                group: replay_group.clone(),
                from: Position::Offset(start + 2),
                until: Position::Offset(start + 5),
                publish: false,
                topics: Vec::new(),
            },
            &mut |_, _, _| steps += 1,
        )
        .await
        .unwrap();
    assert_eq!(report.messages, 3);
    assert_eq!(steps, 3, "progress per message");
    let would: Vec<u64> = report
        .unpublished
        .iter()
        .map(|s| {
            s.json::<serde_json::Value>().unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(would, [2, 3, 4]);
    assert_eq!(
        end_offsets("replay.accepted")[&0],
        accepted_end,
        "nothing published: the reply topic's end offset did not move"
    );

    // The service's command line, with --publish.
    let from = (start + 2).to_string();
    let until = (start + 5).to_string();
    let code = spine::run_from(
        builder(),
        [
            "svc",
            "replay",
            "--group",
            &replay_group,
            "--from",
            &from,
            "--until",
            &until,
            "--publish",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    eventually(Duration::from_secs(10), "the replies published", || {
        end_offsets("replay.accepted")[&0] > accepted_end
    })
    .await;
    assert_eq!(
        replies(&run),
        [0, 1, 2, 2, 3, 3, 4, 4, 5],
        "exactly the range, again"
    );
    assert_eq!(
        committed(&group, "replay.orders", 1),
        live,
        "the live group did not move"
    );
    assert!(
        committed(&replay_group, "replay.orders", 1).is_empty(),
        "the replay commits nothing"
    );

    // The live group itself is refused.
    let code = spine::run_from(
        builder(),
        ["svc", "replay", "--group", &group, "--from", "earliest"],
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
}
