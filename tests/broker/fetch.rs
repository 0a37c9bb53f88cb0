//! The test broker itself: a fetch from an offset inside a record batch
//! returns that offset first, and a partition's end is right after its last
//! record. tansu 0.6.0's in-memory engine failed both: it answered with the
//! *next* batch, so a consumer resuming from a mid-batch commit skipped the
//! rest of the batch (seen here: a fetch from 1 returned 400), and it
//! reported the last batch's base offset + 1 as the end. Every at-least-once
//! test stands on this.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_inside_a_batch_starts_at_the_offset_asked_for() {
    let topic = unique("fetch.batches");
    create_topics(&[&topic], 1).await;
    // 1,000 records in a few large batches: all queued at once, lingering.
    let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "200")
        .set("batch.num.messages", "400")
        .create()
        .unwrap();
    let acks: Vec<_> = (0..1000)
        .map(|i| {
            let payload = format!("record-{i}");
            producer
                .send_result(FutureRecord::<(), _>::to(&topic).payload(&payload))
                .expect("queued")
        })
        .collect();
    let mut offsets = Vec::new();
    for a in acks {
        offsets.push(a.await.unwrap().map_err(|(e, _)| e).unwrap().offset);
    }
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..1000).collect::<Vec<i64>>(),
        "one partition, 0..999"
    );

    // The partition's end is the offset after the last record (tansu 0.6
    // reported the last batch's base offset + 1).
    let watermarks: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("fetch"))
        .create()
        .unwrap();
    let (low, high) = watermarks
        .fetch_watermarks(&topic, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 1000));

    for start in [1, 333, 777, 999] {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", unique("fetch"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(start))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let first = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing fetched from {start}"
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                break (
                    m.offset(),
                    m.payload().map(|p| String::from_utf8_lossy(p).into_owned()),
                );
            }
        };
        assert_eq!(
            first,
            (start, Some(format!("record-{start}"))),
            "a fetch from {start} starts at {start}"
        );
    }
}
