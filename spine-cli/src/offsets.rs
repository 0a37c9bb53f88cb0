//! `spine offsets reset`: moves a consumer group's committed offsets on a
//! topic, printing them before and after, per partition.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use spine::Position;

use crate::cli::ResetArgs;
use crate::error::CliError;

/// `--to`: `earliest`, `latest`, an offset or an RFC 3339 time (the same
/// positions as a service's `replay`).
pub(crate) fn parse_target(s: &str) -> Result<Position, CliError> {
    s.parse()
        .map_err(|e| CliError::Refused(format!("--to {e}")))
}

fn consumer(bootstrap: &str, group: &str) -> Result<BaseConsumer, CliError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?)
}

pub(crate) async fn reset(args: &ResetArgs) -> Result<(), CliError> {
    let target = parse_target(&args.to)?;
    let (bootstrap, group, topic, force) = (
        args.bootstrap_servers.clone(),
        args.group.clone(),
        args.topic.clone(),
        args.force,
    );
    // librdkafka's admin calls here block: off the runtime.
    tokio::task::spawn_blocking(move || reset_blocking(&bootstrap, &group, &topic, &target, force))
        .await
        .map_err(|e| CliError::Refused(e.to_string()))?
}

/// Commits `offsets` and reads them back. The synchronous commit runs on a
/// thread of its own, waited for at most `timeout`: it waits for an
/// unreachable group coordinator without a deadline.
fn commit_confirmed(
    c: &Arc<BaseConsumer>,
    offsets: &TopicPartitionList,
    timeout: Duration,
) -> Result<TopicPartitionList, CliError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (consumer, list) = (c.clone(), offsets.clone());
    std::thread::spawn(move || {
        let _ = tx.send(consumer.commit(&list, CommitMode::Sync));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(CliError::Refused(format!(
                "the broker refused the new offsets: {e}. A broker that checks commits against \
                 the group's members (Kafka does) refuses them while the group has any: stop \
                 its members, then run the command again"
            )))
        }
        Err(_) => {
            return Err(CliError::Refused(format!(
                "the broker did not confirm the new offsets within {timeout:?}; check that it is \
                 reachable, then run the command again"
            )))
        }
    }
    let mut query = TopicPartitionList::new();
    for e in offsets.elements() {
        query.add_partition(e.topic(), e.partition());
    }
    let now = c.committed_offsets(query, timeout)?;
    let stored = offsets.elements().iter().all(|e| {
        now.find_partition(e.topic(), e.partition())
            .is_some_and(|n| n.offset() == e.offset())
    });
    if !stored {
        return Err(CliError::Refused(
            "the broker accepted the commit but reports other offsets; is a member of the group \
             committing over them? Stop its members, then run the command again"
                .into(),
        ));
    }
    Ok(now)
}

fn reset_blocking(
    bootstrap: &str,
    group: &str,
    topic: &str,
    target: &Position,
    force: bool,
) -> Result<(), CliError> {
    let timeout = Duration::from_secs(10);
    let c = Arc::new(consumer(bootstrap, group)?);
    if !force {
        let groups = c.fetch_group_list(Some(group), timeout)?;
        if let Some(g) = groups.groups().iter().find(|g| g.name() == group) {
            if !g.members().is_empty() {
                return Err(CliError::Refused(format!(
                    "group `{group}` has {} active member(s) (state {}); stop them first, or pass --force \
                     (they would overwrite the new offsets with their next commit)",
                    g.members().len(),
                    g.state()
                )));
            }
        }
    }
    let md = c.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(CliError::Refused(format!(
            "topic `{topic}` does not exist or has no partitions"
        )));
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let before = c.committed_offsets(tpl, timeout)?;
    let mut new = TopicPartitionList::new();
    let times = if let Position::Time(ms) = target {
        let mut q = TopicPartitionList::new();
        for p in &partitions {
            q.add_partition_offset(topic, *p, Offset::Offset(*ms))?;
        }
        Some(c.offsets_for_times(q, timeout)?)
    } else {
        None
    };
    for p in &partitions {
        let (low, high) = c.fetch_watermarks(topic, *p, timeout)?;
        let to = match target {
            Position::Earliest => low,
            Position::Latest => high,
            Position::Offset(n) => (*n).clamp(low, high),
            Position::Time(_) => match times
                .as_ref()
                .and_then(|t| t.find_partition(topic, *p))
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o,
                // No record at or after the time: the end.
                _ => high,
            },
        };
        new.add_partition_offset(topic, *p, Offset::Offset(to))?;
    }
    let after = commit_confirmed(&c, &new, timeout)?;
    let show = |l: &TopicPartitionList, p: i32| match l.find_partition(topic, p).map(|e| e.offset())
    {
        Some(Offset::Offset(o)) => o.to_string(),
        _ => "none".to_owned(),
    };
    let mut table = spine::__private::table(&["partition", "before", "after"]);
    for p in &partitions {
        table.add_row(vec![p.to_string(), show(&before, *p), show(&after, *p)]);
    }
    println!("{table}");
    println!(
        "Group `{group}` on `{topic}`: offsets reset to {}.",
        describe(target)
    );
    Ok(())
}

fn describe(t: &Position) -> String {
    match t {
        Position::Earliest => "the earliest".into(),
        Position::Latest => "the latest".into(),
        Position::Offset(n) => format!("offset {n} (within each partition's range)"),
        Position::Time(ms) => format!("the first record at or after {ms} ms since the epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("earliest").unwrap(), Position::Earliest);
        assert_eq!(parse_target("latest").unwrap(), Position::Latest);
        assert_eq!(parse_target("42").unwrap(), Position::Offset(42));
        assert_eq!(
            parse_target("1970-01-01T00:00:01Z").unwrap(),
            Position::Time(1000)
        );
        assert!(parse_target("-1").is_err());
        assert!(parse_target("yesterday")
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
    }
}
