//! The AsyncAPI 3.0 document of an app: what every service's `asyncapi`
//! command prints, built from the dispatch table and the configuration.

use crate::config::Config;
use crate::dispatch::routing::RouteInfo;

/// An AsyncAPI 3.0 document: channels from topics, messages from events,
/// payloads from the types (their Avro schemas where they have one).
pub fn document(config: &Config, routes: &[RouteInfo]) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for r in routes.iter().filter(|r| r.subscribed) {
        let event = r.event.clone().unwrap_or_else(|| "any".into());
        let msg_id = format!("{}.{}", r.topic, event).replace(['/', '~'], "_");
        let payload = match &r.handler.reader_schema {
            Some(s) if r.codec == "avro" => json!({
                "schemaFormat": "application/vnd.apache.avro+json;version=1.9.0",
                "schema": serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            }),
            _ => {
                json!({ "description": format!("JSON, decoded as the Rust type `{}`", r.handler.payload) })
            }
        };
        let content_type = if r.codec == "avro" {
            "application/avro"
        } else {
            "application/json"
        };
        messages.insert(
            msg_id.clone(),
            json!({
                "name": event,
                "title": r.event.clone().unwrap_or_else(|| format!("every event of {}", r.topic)),
                "contentType": content_type,
                "payload": payload,
            }),
        );
        let channel = channels
            .entry(r.topic.clone())
            .or_insert_with(|| json!({ "address": r.topic, "messages": {} }));
        channel["messages"][&event] = json!({ "$ref": format!("#/components/messages/{msg_id}") });
        operations.insert(
            format!("{}_{}", r.handler.name, msg_id).replace('.', "_"),
            json!({
                "action": "receive",
                "channel": { "$ref": format!("#/channels/{}", r.topic.replace('/', "~1")) },
                "messages": [ { "$ref": format!("#/channels/{}/messages/{event}", r.topic.replace('/', "~1")) } ],
                "summary": format!("handled by {} ({})", r.display_name(), r.handler.location()),
            }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": { "title": config.app.name, "version": env!("CARGO_PKG_VERSION") },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages },
    })
}
