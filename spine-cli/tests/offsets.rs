//! `spine offsets reset` on a real broker (nisshi, started by `scripts/test`),
//! checked with an independent client: to earliest, to an offset, to a time,
//! to latest; and the refusal while the group has an active member.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use common::text;

fn bootstrap() -> String {
    std::env::var("SPINE_TEST_BOOTSTRAP")
        .expect("SPINE_TEST_BOOTSTRAP: run with scripts/test, which starts the broker")
}

fn spine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spine"))
        .args(args)
        .args(["--bootstrap-servers", &bootstrap()])
        .output()
        .expect("spine runs")
}

/// The group's committed offset of partition 0, read by a separate client.
fn committed(group: &str, topic: &str) -> Option<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    match c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()[0]
        .offset()
    {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_moves_committed_offsets_and_refuses_active_groups() {
    let id = uuid_like();
    let topic = format!("cli.offsets.{id}");
    let group = format!("cli-group-{id}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    admin
        .create_topics(
            [&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let mut middle_time = 0;
    for i in 0..10 {
        if i == 5 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            middle_time = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let payload = format!("{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .payload(&payload)
                    .partition(0),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let out = spine(&[
        "offsets", "reset", "--group", &group, "--topic", &topic, "--to", "latest",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("none"),
        "before: nothing committed: {}",
        text(&out)
    );
    assert_eq!(committed(&group, &topic), Some(10));

    let out = spine(&[
        "offsets", "reset", "--group", &group, "--topic", &topic, "--to", "earliest",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(committed(&group, &topic), Some(0));
    let t = text(&out);
    assert!(
        t.contains("10") && t.contains("0"),
        "before and after are printed: {t}"
    );

    let out = spine(&[
        "offsets", "reset", "--group", &group, "--topic", &topic, "--to", "7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(committed(&group, &topic), Some(7));

    let when = humantime::format_rfc3339_millis(
        SystemTime::UNIX_EPOCH + Duration::from_millis(middle_time as u64),
    )
    .to_string();
    let out = spine(&[
        "offsets", "reset", "--group", &group, "--topic", &topic, "--to", &when,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        committed(&group, &topic),
        Some(5),
        "the first record at or after {when}"
    );

    let out = spine(&[
        "offsets", "reset", "--group", &group, "--topic", &topic, "--to", "soon",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("RFC 3339"), "{}", text(&out));

    // An active member: refused.
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", &group)
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    member.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the member never got its partition"
        );
        let _ = member.poll(Duration::from_millis(100));
    }
    let out = spine(&[
        "offsets", "reset", "--group", &group, "--topic", &topic, "--to", "earliest",
    ]);
    assert!(
        !out.status.success(),
        "refused while active: {}",
        text(&out)
    );
    assert!(text(&out).contains("active member"), "{}", text(&out));
    assert_eq!(committed(&group, &topic), Some(5), "nothing changed");
    // --force skips that check; a broker that checks commits against the
    // group's members (Kafka, nisshi) then refuses the commit itself, and the
    // command says so.
    let out = spine(&[
        "offsets", "reset", "--group", &group, "--topic", &topic, "--to", "earliest", "--force",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the broker refused the new offsets"),
        "{}",
        text(&out)
    );
    assert_eq!(committed(&group, &topic), Some(5), "nothing changed");
    drop(member);
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
