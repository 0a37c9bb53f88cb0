//! An HTTP request as a record: the body is the payload, the path parameter
//! the key, and the CloudEvents HTTP binding's attributes become the Kafka
//! binding's headers (`ce-id` → `ce_id`), in binary mode (`ce-*` headers)
//! or structured mode (`Content-Type: application/cloudevents+json`, the
//! attributes and `data` in one JSON object). `traceparent` and `tracestate`
//! are kept, so the message's span continues the caller's trace. The record
//! has no partition or offset (-1): that is how `Meta` tells it came over HTTP.

use axum::http::{HeaderMap, StatusCode};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

use crate::headers::{CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TYPE};
use crate::http::api::endpoint::Endpoint;
use crate::http::problem::Problem;

/// The structured mode's media type.
const STRUCTURED: &str = "application/cloudevents+json";

/// The record and its event name.
pub(crate) fn record(
    endpoint: &Endpoint,
    headers: &HeaderMap,
    body: &[u8],
    key: Option<String>,
) -> Result<(OwnedMessage, Option<String>), Problem> {
    let mut ce: Vec<(String, Vec<u8>)> = Vec::new();
    let structured = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(STRUCTURED));
    let payload = if structured {
        structured_event(body, &mut ce)?
    } else {
        for (name, value) in headers {
            if let Some(attr) = name.as_str().strip_prefix("ce-") {
                ce.push((format!("ce_{attr}"), value.as_bytes().to_vec()));
            }
        }
        body.to_vec()
    };
    let given_type = ce
        .iter()
        .find(|(k, _)| k == CE_TYPE)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let event = match (&endpoint.event, given_type) {
        (Some(own), Some(given)) if *own != given => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "event",
                format!(
                    "this endpoint takes event `{own}`, not `{given}`; leave ce-type out or send `{own}`"
                ),
            ))
        }
        (Some(own), _) => Some(own.clone()),
        (None, given) => given,
    };
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(ce.len() + 6);
    let mut ensure = |name: &str, value: &dyn Fn() -> String| {
        if !ce.iter().any(|(k, _)| k == name) {
            out.push((name.to_owned(), value().into_bytes()));
        }
    };
    ensure(CE_ID, &|| uuid::Uuid::new_v4().to_string());
    ensure(CE_SPECVERSION, &|| "1.0".to_owned());
    ensure(CE_SOURCE, &|| "http".to_owned());
    if let Some(e) = &event {
        ensure(CE_TYPE, &|| e.clone());
    }
    out.extend(ce);
    for name in [crate::trace::TRACEPARENT, "tracestate", "content-type"] {
        if let Some(v) = headers.get(name) {
            if !(structured && name == "content-type") {
                out.push((name.to_owned(), v.as_bytes().to_vec()));
            }
        }
    }
    let headers = out.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v),
        })
    });
    let msg = OwnedMessage::new(
        Some(payload),
        key.map(String::into_bytes),
        endpoint.topic.clone(),
        rdkafka::Timestamp::now(),
        -1,
        -1,
        Some(headers),
    );
    Ok((msg, event))
}

/// Structured mode: the attributes go to `ce`, `data` is the payload.
fn structured_event(body: &[u8], ce: &mut Vec<(String, Vec<u8>)>) -> Result<Vec<u8>, Problem> {
    let bad = |m: String| Problem::new(StatusCode::BAD_REQUEST, "decode", m);
    let serde_json::Value::Object(event) = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a CloudEvent in JSON: {e}")))?
    else {
        return Err(bad("a structured CloudEvent is a JSON object".to_owned()));
    };
    let mut data = serde_json::Value::Null;
    for (k, v) in event {
        match (k.as_str(), v) {
            ("data", v) => data = v,
            ("data_base64", _) => {
                return Err(bad(
                    "`data_base64` is not supported: the payload is JSON, send it as `data`"
                        .to_owned(),
                ))
            }
            (_, serde_json::Value::String(s)) => ce.push((format!("ce_{k}"), s.into_bytes())),
            (_, other) => ce.push((format!("ce_{k}"), other.to_string().into_bytes())),
        }
    }
    serde_json::to_vec(&data).map_err(|e| bad(e.to_string()))
}
