//! Every header name Spine reads or writes, in one place: the CloudEvents
//! Kafka binding (binary mode), dead letters, request-reply and aggregates.
//! Re-exported as `spine::headers`.

/// `ce_type`: the event name, in the CloudEvents Kafka binding (binary mode).
pub const CE_TYPE: &str = "ce_type";
/// `ce_id`: the event's unique id.
pub const CE_ID: &str = "ce_id";
/// `ce_source`: who published the event.
pub const CE_SOURCE: &str = "ce_source";
/// `ce_specversion`: always `1.0`.
pub const CE_SPECVERSION: &str = "ce_specversion";
/// `ce_time`: when the event was published (RFC 3339).
pub const CE_TIME: &str = "ce_time";
/// `ce_correlationid`: the id shared by every event of one conversation (extension attribute).
pub const CE_CORRELATION_ID: &str = "ce_correlationid";
/// `ce_causationid`: the `ce_id` of the event that caused this one (extension attribute).
pub const CE_CAUSATION_ID: &str = "ce_causationid";
/// `content-type`: the payload's media type.
pub const CONTENT_TYPE: &str = "content-type";
/// W3C Trace Context: the trace and the span that caused a record. Spine
/// continues the trace of an incoming record in everything it publishes.
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context: vendor trace state, passed on unchanged.
pub const TRACESTATE: &str = "tracestate";

/// Headers a dead-letter record carries besides the original ones.
pub mod dead_letter {
    /// Source topic.
    pub const TOPIC: &str = "spine.dlq.topic";
    /// Source partition.
    pub const PARTITION: &str = "spine.dlq.partition";
    /// Source offset.
    pub const OFFSET: &str = "spine.dlq.offset";
    /// [`crate::FailureKind`] as text: `decode`, `handler`, `unknown_event`, `encode`.
    pub const ERROR_KIND: &str = "spine.dlq.error.kind";
    /// The error message.
    pub const ERROR_MESSAGE: &str = "spine.dlq.error.message";
    /// A finer code from the codec, e.g. `avro.wrong_magic`.
    pub const ERROR_CODE: &str = "spine.dlq.error.code";
    /// Attempts made.
    pub const ATTEMPTS: &str = "spine.dlq.attempts";
    /// The failing handler, when there was one.
    pub const HANDLER: &str = "spine.dlq.handler";
    /// The event name, when there was one.
    pub const EVENT: &str = "spine.dlq.event";
    /// The pipeline step that failed, when a pipeline did.
    pub const STEP: &str = "spine.dlq.step";
    /// Failure kind `publish`: the topic that refused the record.
    pub const PUBLISH_TOPIC: &str = "spine.dlq.publish.topic";
    /// Where in the payload decoding failed (`items[0].qty`), for a
    /// `decode` failure of a JSON payload.
    pub const ERROR_FIELD: &str = "spine.dlq.error.field";
}

/// Header naming the topic a request's response goes to.
pub const REPLY_TO: &str = "spine.reply.to";
/// Header carrying a request's id; its response carries it back.
pub const REQUEST_ID: &str = "spine.request.id";
/// Header naming the app instance that sent a request (for tracing only).
pub const REPLY_INSTANCE: &str = "spine.reply.instance";

/// Header of an expired aggregate's dead letters: the aggregate's id.
pub const AGGREGATE_ID: &str = "spine.aggregate.id";
/// Header of an expired aggregate's dead letters: the part names it had.
pub const AGGREGATE_PARTS: &str = "spine.aggregate.parts";

/// Replaces the `content-type` header.
pub(crate) fn set_content_type(headers: &mut [(String, Vec<u8>)], content_type: &str) {
    if let Some(h) = headers.iter_mut().find(|(k, _)| k == CONTENT_TYPE) {
        h.1 = content_type.as_bytes().to_vec();
    }
}

/// The last value of header `name` in `headers`, as text.
pub(crate) fn last<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}
