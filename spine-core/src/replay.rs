//! Replays a range of offsets through the app's handlers, outside the live
//! consumer group: partitions are assigned by hand and nothing is committed,
//! so the live group's offsets do not move. What handlers publish goes to the
//! broker only when asked; otherwise it is kept and reported.

use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::app::Builder;
use crate::config::Config;
use crate::dispatch::Resume;
use crate::error::Error;
use crate::outbound::{is_producer_only, kafka_config_error, Outbound, Sent};
use crate::record::Record;

/// Where a replay starts or stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The start of the partition.
    Earliest,
    /// The end of the partition, as it was when the replay started.
    Latest,
    /// An offset (within each partition's range).
    Offset(i64),
    /// The first record at or after this time, in milliseconds since the epoch.
    Time(i64),
}

impl std::str::FromStr for Position {
    type Err = String;

    /// `earliest`, `latest`, an offset, or an RFC 3339 time.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(Position::Earliest),
            "latest" => Ok(Position::Latest),
            _ => {
                if let Ok(n) = s.parse::<i64>() {
                    return if n < 0 {
                        Err(format!("offset {n} is negative"))
                    } else {
                        Ok(Position::Offset(n))
                    };
                }
                humantime::parse_rfc3339_weak(s)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| Position::Time(d.as_millis() as i64))
                    .ok_or_else(|| {
                        format!(
                            "`{s}`: expected `earliest`, `latest`, an offset or an RFC 3339 time"
                        )
                    })
            }
        }
    }
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The replay's own consumer group id (never committed; must not be the live group).
    pub group: String,
    /// Where to start, per partition.
    pub from: Position,
    /// Where to stop (exclusive), per partition.
    pub until: Position,
    /// Publish what handlers produce (replies, emitted events, dead letters).
    pub publish: bool,
    /// Only these topics (default: every subscribed topic).
    pub topics: Vec<String>,
}

/// One partition's range.
#[derive(Debug, Clone)]
pub struct ReplayRange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset replayed.
    pub from: i64,
    /// The offset replay stopped before.
    pub until: i64,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// The ranges replayed.
    pub ranges: Vec<ReplayRange>,
    /// Messages handled.
    pub messages: u64,
    /// What the handlers produced, when not published.
    pub unpublished: Vec<Sent>,
}

/// Progress: called after each message with every range, the current one and
/// the offset just handled.
pub type ReplayProgress<'a> = &'a mut (dyn FnMut(&[ReplayRange], &ReplayRange, i64) + Send);

fn offset_at(
    c: &StreamConsumer,
    topic: &str,
    p: i32,
    pos: Position,
    low: i64,
    high: i64,
) -> Result<i64, Error> {
    Ok(match pos {
        Position::Earliest => low,
        Position::Latest => high,
        Position::Offset(n) => n.clamp(low, high),
        Position::Time(ms) => {
            let mut q = TopicPartitionList::new();
            q.add_partition_offset(topic, p, Offset::Offset(ms))?;
            let r = c.offsets_for_times(q, Duration::from_secs(10))?;
            match r.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o.clamp(low, high),
                _ => high,
            }
        }
    })
}

/// Whether the consumer's position in `r`'s partition reached `r.until`
/// (an end-of-partition event names the partition, not the topic).
fn consumer_at_end(c: &StreamConsumer, r: &ReplayRange) -> bool {
    c.position()
        .ok()
        .and_then(|tpl| {
            tpl.find_partition(&r.topic, r.partition)
                .map(|e| matches!(e.offset(), Offset::Offset(o) if o >= r.until))
        })
        .unwrap_or(false)
}

impl Builder {
    /// Replays `options.from..options.until` of the app's topics through its
    /// handlers, without committing anything. See [`ReplayOptions`].
    pub async fn replay(
        mut self,
        options: ReplayOptions,
        progress: ReplayProgress<'_>,
    ) -> Result<ReplayReport, Error> {
        let config = match self.take_config() {
            Some(c) => c,
            None => Config::load()?,
        };
        if options.group == config.group_id() {
            return Err(Error::config(
                "replay.group",
                format!(
                    "`{}` is the live group; give the replay a group of its own (e.g. `{}-replay`)",
                    options.group,
                    config.group_id()
                ),
            ));
        }
        let sink = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let memory = sink.clone();
        let publish = options.publish;
        let shared = self.build_shared(config, move |c: &Config| {
            if publish {
                Outbound::kafka(c)
            } else {
                Ok(Outbound::memory(memory))
            }
        })?;
        let mut cc = ClientConfig::new();
        for (k, v) in &shared.config.kafka {
            if !is_producer_only(k) {
                cc.set(k, v);
            }
        }
        cc.set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // The end of a partition ends its range even when the last offsets
            // before `until` carry no message (transaction markers, compaction).
            .set("enable.partition.eof", "true");
        let consumer: StreamConsumer = cc
            .create()
            .map_err(|e| kafka_config_error(&shared.config, e))?;
        let topics: Vec<String> = if options.topics.is_empty() {
            shared
                .table
                .topic_names()
                .iter()
                .map(|t| t.to_string())
                .collect()
        } else {
            options.topics.clone()
        };
        let mut ranges = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for topic in &topics {
            if shared.table.topic_index(topic).is_none() {
                return Err(Error::config(
                    "replay.topic",
                    format!("the app does not handle topic `{topic}`"),
                ));
            }
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let parts: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            for p in parts {
                let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
                let from = offset_at(&consumer, topic, p, options.from, low, high)?;
                let until = offset_at(&consumer, topic, p, options.until, low, high)?;
                if from < until {
                    tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
                    ranges.push(ReplayRange {
                        topic: topic.clone(),
                        partition: p,
                        from,
                        until,
                    });
                }
            }
        }
        let mut report = ReplayReport {
            ranges: ranges.clone(),
            ..ReplayReport::default()
        };
        if ranges.is_empty() {
            return Ok(report);
        }
        consumer.assign(&tpl)?;
        let mut open = ranges.len();
        let mut done = vec![false; ranges.len()];
        let mut stream = consumer.stream();
        while open > 0 {
            let Some(item) = stream.next().await else {
                break;
            };
            let msg = match item {
                Ok(m) => m,
                Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                    for (i, r) in ranges.iter().enumerate() {
                        if r.partition == p && !done[i] && consumer_at_end(&consumer, r) {
                            done[i] = true;
                            open -= 1;
                        }
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "replay: consumer error; carrying on");
                    continue;
                }
            };
            let Some(i) = ranges
                .iter()
                .position(|r| r.partition == msg.partition() && r.topic == msg.topic())
            else {
                continue;
            };
            if done[i] || msg.offset() >= ranges[i].until {
                if !done[i] {
                    done[i] = true;
                    open -= 1;
                }
                continue;
            }
            let owned = msg.detach();
            let offset = owned.offset();
            let Some(topic_idx) = shared.table.topic_index(ranges[i].topic.as_str()) else {
                continue;
            };
            let event = {
                let rec = Record::owned(&owned);
                shared
                    .table
                    .topic(topic_idx)
                    .event_name(&rec)
                    .map(|e| e.into_owned())
            };
            let deliveries = shared
                .clone()
                .handle(owned, topic_idx, event, Resume::Fresh, None)
                .await;
            // A part held by an aggregation is released when its aggregate is
            // done; a replay does not wait for that.
            shared.settle(deliveries.without_hold()).await;
            report.messages += 1;
            progress(&ranges, &ranges[i], offset);
            if offset + 1 >= ranges[i].until && !done[i] {
                done[i] = true;
                open -= 1;
            }
        }
        report.unpublished = std::mem::take(&mut *sink.lock());
        Ok(report)
    }
}
