//! W3C Trace Context across Kafka hops, without any dependency: a record
//! that carries a valid `traceparent` (and maybe `tracestate`) has its trace
//! continued by every record published while handling it (replies, emitted
//! events, requests, dead letters, error events). Each of those carries the
//! same trace id and flags, `tracestate` unchanged, and as parent id the id
//! of the message's handling, a new span id.
//!
//! Without the `otel` feature nothing records that span, so its id is derived
//! from the message (its incoming parent id, topic, partition and offset):
//! every record of one message names the same parent, and it costs nothing
//! for records without trace context (they are never parsed unless the
//! message publishes something, and then only one header is looked up).
//! Written by hand: the format is four hex fields, and an OpenTelemetry
//! propagator would pull the whole SDK into a JSON-only build.

use std::hash::{BuildHasher, Hasher};

pub(crate) use crate::headers::{TRACEPARENT, TRACESTATE};
use crate::record::Record;

/// The trace context a message's published records carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    /// `00-<trace id>-<this message's span id>-<flags>`.
    pub(crate) traceparent: String,
    pub(crate) tracestate: Option<String>,
}

/// A parsed `traceparent`: trace id, parent id, flags (lowercase hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parent<'a> {
    pub(crate) trace_id: &'a str,
    pub(crate) parent_id: &'a str,
    pub(crate) flags: &'a str,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a `traceparent` value per the W3C spec (version 00, or a later
/// version read as 00); `None` when it is invalid.
pub(crate) fn parse(value: &str) -> Option<Parent<'_>> {
    let mut parts = value.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let rest_ok = match version {
        "00" => parts.next().is_none(),
        "ff" => return None,
        // Future versions may append fields; the first four keep their meaning.
        _ => true,
    };
    let valid = rest_ok
        && is_hex(version, 2)
        && is_hex(trace_id, 32)
        && is_hex(parent_id, 16)
        && is_hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && parent_id.bytes().any(|b| b != b'0');
    valid.then_some(Parent {
        trace_id,
        parent_id,
        flags,
    })
}

/// The trace context of what `rec`'s handling publishes, if `rec` carries one
/// (with the `otel` feature: the message span's, a new trace if it carried
/// none).
pub(crate) fn continued(rec: &Record<'_>) -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    if let Some(t) = otel::current(rec) {
        return Some(t);
    }
    let parent = parse(rec.header_str(TRACEPARENT)?)?;
    let span_id = span_id_of(&parent, rec);
    Some(TraceContext {
        traceparent: format!("00-{}-{span_id:016x}-{}", parent.trace_id, parent.flags),
        tracestate: rec.header_str(TRACESTATE).map(str::to_owned),
    })
}

/// The span id of a message's handling: stable for the message, never zero,
/// never its parent's.
fn span_id_of(parent: &Parent<'_>, rec: &Record<'_>) -> u64 {
    let mut h = ahash::RandomState::with_seeds(7, 11, 13, 17).build_hasher();
    h.write(parent.parent_id.as_bytes());
    h.write(rec.topic.as_bytes());
    h.write_i32(rec.partition);
    h.write_i64(rec.offset);
    let id = h.finish();
    let incoming = u64::from_str_radix(parent.parent_id, 16).unwrap_or(0);
    if id == 0 || id == incoming {
        id ^ 0x5bd1_e995_0000_0001
    } else {
        id
    }
}

impl TraceContext {
    /// Adds (or replaces) the trace headers in `headers`.
    pub(crate) fn apply(&self, headers: &mut Vec<(String, Vec<u8>)>) {
        headers.retain(|(k, _)| k != TRACEPARENT && k != TRACESTATE);
        headers.push((
            TRACEPARENT.to_owned(),
            self.traceparent.clone().into_bytes(),
        ));
        if let Some(s) = &self.tracestate {
            headers.push((TRACESTATE.to_owned(), s.clone().into_bytes()));
        }
    }
}

/// With OpenTelemetry (feature `otel`): the message's span is a child of
/// the record's remote span context, and what it publishes names the
/// message's span (so the exported spans of two services link up).
#[cfg(feature = "otel")]
pub(crate) mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::{parse, TraceContext, TRACEPARENT, TRACESTATE};
    use crate::record::Record;

    /// Makes `span` continue the record's trace, if it carries one.
    pub(crate) fn adopt(span: &tracing::Span, rec: &Record<'_>) {
        let Some(p) = rec.header_str(TRACEPARENT).and_then(parse) else {
            return; // a root: the span starts a new trace
        };
        let (Ok(trace_id), Ok(span_id), Ok(flags)) = (
            TraceId::from_hex(p.trace_id),
            SpanId::from_hex(p.parent_id),
            u8::from_str_radix(p.flags, 16),
        ) else {
            return;
        };
        let state = rec
            .header_str(TRACESTATE)
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let remote = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }

    /// The current span's context, when OpenTelemetry records it.
    pub(super) fn current(rec: &Record<'_>) -> Option<TraceContext> {
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let state = sc.trace_state().header();
        Some(TraceContext {
            traceparent: format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ),
            tracestate: if state.is_empty() {
                rec.header_str(TRACESTATE).map(str::to_owned)
            } else {
                Some(state)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_refuses_invalid_traceparents() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse(ok),
            Some(Parent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
                parent_id: "00f067aa0ba902b7",
                flags: "01"
            })
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some());
    }

    #[test]
    fn apply_replaces_what_was_there() {
        let t = TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01".into(),
            tracestate: Some("rojo=1".into()),
        };
        let mut h = vec![
            ("traceparent".to_owned(), b"old".to_vec()),
            ("x".to_owned(), b"y".to_vec()),
        ];
        t.apply(&mut h);
        assert_eq!(h.len(), 3);
        assert!(h.contains(&("traceparent".to_owned(), t.traceparent.clone().into_bytes())));
        assert!(h.contains(&("tracestate".to_owned(), b"rojo=1".to_vec())));
    }
}
