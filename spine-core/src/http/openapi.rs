//! The OpenAPI 3.1 document of the endpoints (`GET /openapi.json`, the
//! service's `openapi` command): one operation per endpoint, its
//! operationId the handler's name, its body and replies described by the
//! payload and reply types' JSON Schemas (schemars), tags from namespaces,
//! the security schemes `[http.auth]` uses, and the error shape.
//!
//! Written as JSON here: OpenAPI 3.1's schema objects are JSON Schema
//! 2020-12, which schemars produces, so the document is those schemas
//! hoisted into `components` plus a few fixed objects; an OpenAPI model
//! crate would add types, not checks (schemathesis checks the result in
//! `scripts/test`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::http::api::Endpoint;

/// The document.
pub(crate) fn document(config: &Config, version: Option<&str>, endpoints: &[Endpoint]) -> Value {
    let mut schemas = Map::new();
    schemas.insert("Problem".to_owned(), problem_schema());
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut tags: Vec<String> = Vec::new();
    let auth = &config.http.auth;
    let (api_key, bearer) = (!auth.api_keys.is_empty(), auth.jwt.is_some());
    for e in endpoints {
        let payload = hoist(&mut schemas, e.payload_type, (e.payload_schema)());
        let replies: Vec<Value> = e
            .replies
            .iter()
            .map(|(name, schema)| hoist(&mut schemas, name, schema()))
            .collect();
        if let Some(ns) = &e.namespace {
            if !tags.contains(ns) {
                tags.push(ns.clone());
            }
        }
        let op = operation(e, payload, replies, api_key || bearer);
        let mut op = op;
        if api_key || bearer {
            let mut security = Vec::new();
            if api_key {
                security.push(json!({ "apiKey": [] }));
            }
            if bearer {
                security.push(json!({ "bearer": [] }));
            }
            op["security"] = Value::Array(security);
        }
        paths
            .entry(e.path.clone())
            .or_default()
            .insert(e.method.as_str().to_ascii_lowercase(), op);
    }
    let mut security_schemes = Map::new();
    if api_key {
        security_schemes.insert(
            "apiKey".to_owned(),
            json!({ "type": "apiKey", "in": "header", "name": "X-API-Key" }),
        );
    }
    if bearer {
        security_schemes.insert(
            "bearer".to_owned(),
            json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }),
        );
    }
    let mut components = json!({ "schemas": schemas });
    if !security_schemes.is_empty() {
        components["securitySchemes"] = Value::Object(security_schemes);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": config.app.name,
            "version": version.unwrap_or("0.0.0"),
            "description": "The service's handlers, served over HTTP by Spine. Each request is \
                handled as a message of its handler's topic; the response lists the handler's \
                replies. Requests may carry CloudEvents attributes as `ce-*` headers, or be \
                sent as structured CloudEvents (`application/cloudevents+json`).",
        },
        "tags": tags.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "paths": paths,
        "components": components,
    })
}

fn operation(e: &Endpoint, payload: Value, replies: Vec<Value>, secured: bool) -> Value {
    let reply_payload = match replies.len() {
        0 => {
            json!({ "description": "The reply's payload (its type is not declared: `replies(...)` on the handler would describe it)." })
        }
        1 => replies.into_iter().next().unwrap_or_default(),
        _ => json!({ "anyOf": replies }),
    };
    let reply = json!({
        "type": "object",
        "required": ["topic", "event", "key", "payload"],
        "properties": {
            "topic": { "type": "string", "description": "Where the reply is published." },
            "event": { "type": "string" },
            "key": { "type": ["string", "null"] },
            "payload": reply_payload,
        }
    });
    let published = if e.publish {
        "The replies are published to Kafka, and the response is sent once the broker acknowledged them."
    } else {
        "The replies are returned, not published."
    };
    let event = e.event.as_deref().unwrap_or("any event (`ce-type`)");
    let mut structured = json!({
        "type": "object",
        "description": "A structured CloudEvent whose `data` is the payload.",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": { "const": "1.0" },
            "id": { "type": "string", "minLength": 1 },
            "source": { "type": "string", "minLength": 1 },
            "type": { "type": "string" },
            "data": payload.clone(),
        }
    });
    if let Some(ev) = &e.event {
        structured["properties"]["type"] = json!({ "const": ev });
    }
    let mut op = json!({
        "operationId": e.handler,
        "summary": e.summary.clone().unwrap_or_else(|| format!("`{}` on topic `{}`", event, e.topic)),
        "description": format!(
            "Handled by `{}` as event `{event}` of topic `{}`. {published}",
            e.handler, e.topic
        ),
        "requestBody": {
            "required": true,
            "content": {
                "application/json": { "schema": payload },
                "application/cloudevents+json": { "schema": structured },
            }
        },
        "responses": {
            "200": {
                "description": "Handled; the handler's replies.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["replies"],
                    "properties": { "replies": { "type": "array", "items": reply } }
                }}}
            },
            "400": problem_response("The body does not decode into the payload type (`field` names where), or its CloudEvents attributes are wrong."),
            "422": problem_response("The handler returned an error."),
            "500": problem_response("The handler failed unexpectedly, or a reply could not be published; `error_id` is in the service's log."),
            "503": {
                "description": "Too many requests in flight, or the request timed out; retry after `Retry-After` seconds.",
                "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
            },
        }
    });
    if secured {
        op["responses"]["401"] = problem_response("No credential, or not a valid one.");
        op["responses"]["403"] = problem_response("The credential lacks the endpoint's roles.");
    }
    if let Some(ns) = &e.namespace {
        op["tags"] = json!([ns]);
    }
    if let Some(k) = &e.key_param {
        op["parameters"] = json!([{
            "name": k,
            "in": "path",
            "required": true,
            "description": "The message key: messages with the same key are handled in order.",
            "schema": { "type": "string" }
        }]);
    }
    op
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["kind", "message"],
        "properties": {
            "kind": { "type": "string", "description": "Stable: decode, event, handler, internal, unauthorized, forbidden, not_found, method_not_allowed, overloaded, timeout." },
            "message": { "type": "string" },
            "field": { "type": "string", "description": "Where the body failed to decode." },
            "handler": { "type": "string" },
            "error_id": { "type": "string", "description": "The id the service logged the error under." }
        }
    })
}

/// Moves a type's schema and its `$defs` into `schemas`, and returns a
/// reference to it.
fn hoist(schemas: &mut Map<String, Value>, type_name: &str, mut schema: Value) -> Value {
    let defs = schema
        .as_object_mut()
        .and_then(|o| {
            o.remove("$schema");
            o.remove("$defs")
        })
        .unwrap_or_default();
    if let Value::Object(defs) = defs {
        for (name, mut def) in defs {
            rewrite_refs(&mut def);
            schemas.entry(name).or_insert(def);
        }
    }
    rewrite_refs(&mut schema);
    let name = schema
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            type_name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect()
        });
    schemas.entry(name.clone()).or_insert(schema);
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(rest) = r.strip_prefix("#/$defs/") {
                    *r = format!("#/components/schemas/{rest}");
                }
            }
            o.values_mut().for_each(rewrite_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defs_move_to_components_and_refs_follow() {
        let mut schemas = Map::new();
        let r = hoist(
            &mut schemas,
            "Order",
            json!({ "$schema": "x", "title": "Order", "properties": { "line": { "$ref": "#/$defs/Line" } },
                    "$defs": { "Line": { "properties": { "sku": { "$ref": "#/$defs/Sku" } } }, "Sku": { "type": "string" } } }),
        );
        assert_eq!(r, json!({ "$ref": "#/components/schemas/Order" }));
        assert_eq!(
            schemas["Order"]["properties"]["line"]["$ref"],
            "#/components/schemas/Line"
        );
        assert_eq!(
            schemas["Line"]["properties"]["sku"]["$ref"],
            "#/components/schemas/Sku"
        );
        assert!(schemas["Order"].get("$schema").is_none());
    }
}
