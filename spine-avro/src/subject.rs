//! Subject naming: where a topic's value schema is registered, by Confluent's
//! three strategies. The codec, `spine schemas register` and every service's
//! `schemas check` name subjects through [`subject_name`], so they agree.

pub use spine_kafka_core::config::SubjectStrategy;

/// The subject of a value on `topic` whose record full name is `record`.
/// `None` when the strategy needs the record's name and there is none.
///
/// ```
/// use spine_kafka_avro::subject::{subject_name, SubjectStrategy};
///
/// assert_eq!(subject_name(SubjectStrategy::Topic, "orders", None).as_deref(), Some("orders-value"));
/// assert_eq!(subject_name(SubjectStrategy::Record, "orders", Some("ex.Order")).as_deref(), Some("ex.Order"));
/// assert_eq!(
///     subject_name(SubjectStrategy::TopicRecord, "orders", Some("ex.Order")).as_deref(),
///     Some("orders-ex.Order")
/// );
/// assert_eq!(subject_name(SubjectStrategy::Record, "orders", None), None);
/// ```
pub fn subject_name(
    strategy: SubjectStrategy,
    topic: &str,
    record: Option<&str>,
) -> Option<String> {
    match (strategy, record) {
        (SubjectStrategy::Topic, _) => Some(format!("{topic}-value")),
        (SubjectStrategy::Record, Some(r)) => Some(r.to_owned()),
        (SubjectStrategy::TopicRecord, Some(r)) => Some(format!("{topic}-{r}")),
        (_, None) => None,
    }
}
