//! Which handlers are endpoints, where, and for whom: what
//! `#[on(http = ...)]` declares, overridden by `[http.endpoints.<handler>]`,
//! checked at start so that a typo in `spine.toml` fails it with the key.

use std::collections::BTreeMap;

use crate::config::{Config, EndpointConfig};
use crate::dispatch::handler::{HandlerDescriptor, JsonSchemaFn};
use crate::dispatch::routing::DispatchTable;
use crate::error::Error;

/// The methods an endpoint may use: each carries a body, the payload.
const METHODS: &[&str] = &["POST", "PUT", "PATCH"];

/// Paths the listener serves itself.
const RESERVED: &[&str] = &[
    "/",
    "/metrics",
    "/health/live",
    "/health/ready",
    "/routes",
    "/asyncapi.json",
    "/openapi.json",
    "/docs",
];

/// One handler served over HTTP.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// The handler's name: the operationId.
    pub(crate) handler: String,
    pub(crate) method: axum::http::Method,
    /// The full path, namespace included, e.g. `/shop/orders/{key}`.
    pub(crate) path: String,
    /// The path parameter that becomes the key, if any.
    pub(crate) key_param: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) summary: Option<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) publish: bool,
    /// The table's topic the request is a record of, and its event.
    pub(crate) topic_idx: usize,
    pub(crate) topic: String,
    pub(crate) event: Option<String>,
    pub(crate) payload_type: &'static str,
    pub(crate) payload_schema: JsonSchemaFn,
    /// Declared reply types: name and schema.
    pub(crate) replies: Vec<(&'static str, JsonSchemaFn)>,
}

impl Endpoint {
    /// `POST /orders`.
    pub(crate) fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The endpoints of the app's handlers, in the table's order.
pub(crate) fn resolve(config: &Config, table: &DispatchTable) -> Result<Vec<Endpoint>, Error> {
    let mut handlers: BTreeMap<String, (HandlerDescriptor, Option<usize>)> = BTreeMap::new();
    for (idx, topic) in table.topics().iter().enumerate() {
        if !topic.subscribed {
            continue;
        }
        for h in topic.handlers() {
            handlers
                .entry(h.name.to_string())
                .or_insert_with(|| (h.clone(), Some(idx)));
        }
    }
    for name in config.http.endpoints.keys() {
        if !handlers.contains_key(name) {
            let known: Vec<&str> = handlers.keys().map(String::as_str).collect();
            return Err(Error::config(
                format!("http.endpoints.{name}"),
                format!(
                    "no handler is named `{name}`; the app's handlers are {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let mut out: Vec<Endpoint> = Vec::new();
    for (name, (h, topic_idx)) in &handlers {
        let over = config.http.endpoints.get(name);
        let Some(endpoint) = endpoint(name, h, over, *topic_idx, table)? else {
            continue;
        };
        if let Some(other) = out
            .iter()
            .find(|e| e.method == endpoint.method && same_path(&e.path, &endpoint.path))
        {
            return Err(Error::config(
                format!("http.endpoints.{name}"),
                format!(
                    "`{}` is served by `{}` already; give one of them another route",
                    endpoint.route(),
                    other.handler
                ),
            ));
        }
        out.push(endpoint);
    }
    Ok(out)
}

/// Whether two paths match the same requests (parameters have any name).
fn same_path(a: &str, b: &str) -> bool {
    let norm = |p: &str| {
        p.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    norm(a) == norm(b)
}

fn endpoint(
    name: &str,
    h: &HandlerDescriptor,
    over: Option<&EndpointConfig>,
    topic_idx: Option<usize>,
    table: &DispatchTable,
) -> Result<Option<Endpoint>, Error> {
    let key = |field: &str| format!("http.endpoints.{name}.{field}");
    let attr = h.http.as_ref();
    let over = over.cloned().unwrap_or_default();
    if over.enabled == Some(false) {
        return Ok(None);
    }
    let Some(route) = over.route.clone().or(attr.map(|a| a.route.to_owned())) else {
        return match over.enabled {
            Some(true) => Err(Error::config(
                key("route"),
                "the handler has no route: set `route = \"POST /...\"`",
            )),
            _ => Ok(None),
        };
    };
    let (method, path, key_param) =
        parse_route(&route).map_err(|why| Error::config(key("route"), why))?;
    let namespace = over
        .namespace
        .clone()
        .or(attr.and_then(|a| a.namespace.map(str::to_owned)));
    let path = match &namespace {
        Some(ns) if ns.contains(['/', '{', ' ']) || ns.is_empty() => {
            return Err(Error::config(
                key("namespace"),
                format!("`{ns}` is not one path segment: write e.g. \"shop\""),
            ))
        }
        Some(ns) => format!("/{ns}{path}"),
        None => path,
    };
    if RESERVED.contains(&path.as_str()) || path.starts_with("/health/") {
        return Err(Error::config(
            key("route"),
            format!("`{path}` is served by Spine itself; pick another path"),
        ));
    }
    let Some(payload_schema) = h.json_schema else {
        return Err(Error::config(
            key("route"),
            format!(
                "handler `{name}` cannot be served over HTTP: its payload `{}` does not derive \
                 `JsonSchema`; derive it (`#[derive(Deserialize, JsonSchema)]`) and rebuild",
                h.payload
            ),
        ));
    };
    let mut replies = Vec::new();
    for (ty, schema) in &h.reply_json_schemas {
        let Some(schema) = schema else {
            return Err(Error::config(
                key("route"),
                format!("the reply type `{ty}` of `{name}` does not derive `JsonSchema`; derive it and rebuild"),
            ));
        };
        replies.push((*ty, *schema));
    }
    let Some(topic_idx) = topic_idx else {
        return Err(Error::config(
            key("route"),
            format!("handler `{name}` listens to no topic of the app"),
        ));
    };
    let topic = table.topic(topic_idx);
    Ok(Some(Endpoint {
        handler: name.to_owned(),
        method,
        path,
        key_param,
        namespace,
        summary: over
            .summary
            .clone()
            .or(attr.and_then(|a| a.summary.map(str::to_owned))),
        roles: over.roles.clone().unwrap_or_else(|| {
            attr.map(|a| a.roles.iter().map(|r| (*r).to_owned()).collect())
                .unwrap_or_default()
        }),
        publish: over
            .publish
            .or(attr.and_then(|a| a.publish))
            .unwrap_or(true),
        topic_idx,
        topic: topic.topic.to_string(),
        event: h.event.as_ref().map(|e| e.to_string()),
        payload_type: h.payload,
        payload_schema,
        replies,
    }))
}

/// `"POST /orders/{key}"` → method, path, parameter. The macro checks
/// routes written in attributes with the same rules (`spine-macros/src/route.rs`).
pub(crate) fn parse_route(
    route: &str,
) -> Result<(axum::http::Method, String, Option<String>), String> {
    let Some((method, path)) = route.trim().split_once(' ') else {
        return Err(format!(
            "`{route}` is not a route: write the method and the path, e.g. \"POST /orders\""
        ));
    };
    if !METHODS.contains(&method) {
        return Err(format!(
            "`{method}` cannot carry a payload: use one of {}",
            METHODS.join(", ")
        ));
    }
    let path = path.trim();
    if !path.starts_with('/') {
        return Err(format!(
            "the path `{path}` must start with `/`, e.g. \"/orders\""
        ));
    }
    let mut param = None;
    for segment in path.split('/').skip(1) {
        if let Some(inner) = segment.strip_prefix('{') {
            let name = inner.strip_suffix('}').filter(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            let Some(name) = name else {
                return Err(format!(
                    "`{segment}` is not a parameter: write e.g. `{{key}}`"
                ));
            };
            if param.replace(name.to_owned()).is_some() {
                return Err(
                    "a route takes at most one parameter, which becomes the message key".to_owned(),
                );
            }
        } else if segment.contains(['{', '}', ' ', '?', '#']) {
            return Err(format!(
                "the path segment `{segment}` has a character a route cannot use"
            ));
        }
    }
    let method = axum::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    Ok((method, path.to_owned(), param))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_or_say_what_is_wrong() {
        let (m, p, k) = parse_route("POST /orders/{key}").unwrap();
        assert_eq!(
            (m.as_str(), p.as_str(), k.as_deref()),
            ("POST", "/orders/{key}", Some("key"))
        );
        assert!(parse_route("GET /orders")
            .unwrap_err()
            .contains("POST, PUT, PATCH"));
        assert!(parse_route("POST orders")
            .unwrap_err()
            .contains("start with `/`"));
        assert!(parse_route("POST /a/{x}/{y}")
            .unwrap_err()
            .contains("at most one"));
        assert!(same_path("/orders/{key}", "/orders/{id}"));
        assert!(!same_path("/orders/{key}", "/orders/all"));
    }
}
