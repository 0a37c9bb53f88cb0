//! [`Meta`]: where a message came from; [`Raw`]: its payload bytes.

use crate::dispatch::extract::{FromRecord, Scope};
use crate::error::HandlerError;

/// Where a message came from.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Broker or producer timestamp, in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Every header, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The event name the message was routed by.
    pub event: Option<String>,
    /// `ce_id`, or `topic/partition/offset` when the publisher sent none.
    pub event_id: String,
    /// `ce_correlationid`, or the event id when the message starts a conversation.
    pub correlation_id: String,
    /// How the message arrived. An HTTP request has no partition or offset
    /// (both are -1), and its key is the route's path parameter.
    pub transport: Transport,
}

/// How a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Consumed from a Kafka topic.
    Kafka,
    /// Sent to the handler's HTTP endpoint.
    Http,
}

impl Transport {
    /// `kafka` or `http`, as in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Kafka => "kafka",
            Transport::Http => "http",
        }
    }
}

impl Meta {
    /// The key as UTF-8 text.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The last value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::headers::last(&self.headers, name)
    }
}

impl FromRecord for Meta {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        let r = scope.rec;
        Ok(Meta {
            topic: r.topic.to_owned(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp(),
            key: r.key.map(<[u8]>::to_vec),
            headers: r.headers_vec(),
            event: scope.topic.event_or(r, scope.event).map(|e| e.into_owned()),
            event_id: r.event_id(),
            correlation_id: r.correlation_id(),
            // Consumed records always have a partition; a record made from
            // an HTTP request has none.
            transport: if r.partition < 0 {
                Transport::Http
            } else {
                Transport::Kafka
            },
        })
    }
}

/// The payload's bytes, exactly as consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw(pub Vec<u8>);

impl FromRecord for Raw {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        Ok(Raw(scope.rec.payload.unwrap_or_default().to_vec()))
    }
}
