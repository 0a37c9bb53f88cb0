//! The records a failed message leaves: its dead letter (the original with
//! headers saying where it came from and why it failed) and the optional
//! `event.error.<name>` event.

use std::borrow::Cow;

use crate::dispatch::outcome::HandlerFailure;
use crate::headers::dead_letter;
use crate::outbound::{cloud_event_headers, Origin, OutRecord, SentKind};
use crate::record::Record;

pub(super) fn dead_letter_record(
    rec: &Record<'_>,
    dlq_topic: &str,
    event: Option<&str>,
    f: &HandlerFailure,
) -> OutRecord {
    let mut headers = rec.headers_vec();
    let mut add =
        |k: &str, v: Cow<'_, str>| headers.push((k.to_owned(), v.into_owned().into_bytes()));
    add(dead_letter::TOPIC, rec.topic.into());
    add(dead_letter::PARTITION, rec.partition.to_string().into());
    add(dead_letter::OFFSET, rec.offset.to_string().into());
    add(dead_letter::ERROR_KIND, f.failure.kind.as_str().into());
    add(
        dead_letter::ERROR_MESSAGE,
        f.failure.message.as_str().into(),
    );
    add(dead_letter::ATTEMPTS, f.attempts.to_string().into());
    if let Some(code) = f.failure.code {
        add(dead_letter::ERROR_CODE, code.into());
    }
    for (k, v) in &f.failure.headers {
        add(k, v.as_str().into());
    }
    if let Some(h) = &f.handler {
        add(dead_letter::HANDLER, h.as_ref().into());
    }
    if let Some(e) = event {
        add(dead_letter::EVENT, e.into());
    }
    if let Some(t) = crate::trace::continued(rec) {
        t.apply(&mut headers);
    }
    OutRecord {
        kind: SentKind::DeadLetter,
        topic: dlq_topic.to_owned(),
        key: rec.key.map(<[u8]>::to_vec),
        payload: rec.payload.map(<[u8]>::to_vec),
        headers,
    }
}

/// The KaufmannEx-style `event.error.<event>` event.
pub(super) fn error_event(
    source: &str,
    rec: &Record<'_>,
    topic: &str,
    event: Option<&str>,
    f: &HandlerFailure,
) -> OutRecord {
    let original = rec.payload.map(|p| {
        serde_json::from_slice::<serde_json::Value>(p)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(p).into_owned()))
    });
    let body = serde_json::json!({
        "error": f.failure.message,
        "kind": f.failure.kind.as_str(),
        "handler": f.handler,
        "event": event,
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "attempts": f.attempts,
        "payload": original,
    });
    let origin = Origin::of(rec);
    let name = format!("event.error.{}", event.unwrap_or("unknown"));
    OutRecord {
        kind: SentKind::ErrorEvent,
        topic: topic.to_owned(),
        key: origin.key.clone(),
        payload: Some(body.to_string().into_bytes()),
        headers: cloud_event_headers(source, &name, Some(&origin)),
    }
}
