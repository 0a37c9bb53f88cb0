//! Reads the arguments of `#[on(...)]` (`event`, `topic`, `codec`,
//! `fan_out`, `replies(Type, ...)`, `http`) from the shared attribute parser. The
//! same keys route a `#[pipeline]`, which reads them through [`OnArgs::read`].

use proc_macro2::TokenStream;
use syn::LitStr;

use crate::attr::Attr;
use crate::ctxt::Ctxt;

/// The keys `#[on]` takes.
pub(crate) const KEYS: &[(&str, &str)] = &[
    ("event", "event = \"...\""),
    ("topic", "topic = \"...\""),
    ("codec", "codec = \"avro\""),
    ("fan_out", "fan_out"),
    ("replies", "replies(Type, ...)"),
    ("http", "http = \"POST /orders\""),
    ("batch", "batch(max = 500, linger = \"20ms\")"),
];

/// The keys of `batch(...)`.
const BATCH_KEYS: &[(&str, &str)] = &[("max", "max = 500"), ("linger", "linger = \"20ms\"")];

/// The keys of `http(...)`.
const HTTP_KEYS: &[(&str, &str)] = &[
    ("route", "route = \"POST /orders\""),
    ("namespace", "namespace = \"shop\""),
    ("summary", "summary = \"...\""),
    ("roles", "roles = [\"orders.write\"]"),
    ("publish", "publish = false"),
];

/// `http = "POST /orders"` or `http(route = "...", ...)`.
pub(crate) struct HttpArgs {
    pub(crate) route: LitStr,
    pub(crate) namespace: Option<LitStr>,
    pub(crate) summary: Option<LitStr>,
    pub(crate) roles: Vec<LitStr>,
    pub(crate) publish: Option<syn::LitBool>,
}

/// `batch(max = 500, linger = "20ms")`: the handler takes up to `max`
/// messages of one partition at a time, waiting at most `linger` for them.
pub(crate) struct BatchArgs {
    /// The `batch(...)` item, for errors about the handler as a whole.
    pub(crate) meta: syn::Meta,
    /// `None` when written wrong (and reported).
    pub(crate) max: Option<syn::LitInt>,
    /// `None` when written wrong (and reported); 0 when left out.
    pub(crate) linger_ms: Option<u64>,
}

/// The arguments, each with the tokens it was written with.
pub(crate) struct OnArgs {
    pub(crate) event: Option<LitStr>,
    pub(crate) topic: Option<LitStr>,
    /// The codec's name, checked against the registered codecs at `build()`.
    pub(crate) codec: Option<LitStr>,
    pub(crate) fan_out: bool,
    /// `replies(Type, ...)`: the types the handler replies with, for schema
    /// export and AsyncAPI (replies are type-erased at run time).
    pub(crate) replies: Vec<syn::Type>,
    /// The handler's HTTP endpoint.
    pub(crate) http: Option<HttpArgs>,
    /// Set when the handler takes batches.
    pub(crate) batch: Option<BatchArgs>,
}

pub(crate) fn parse_args(cx: &Ctxt, tokens: TokenStream) -> OnArgs {
    let attr = Attr::parse(cx, tokens, "#[on(...)]", KEYS);
    OnArgs::read(cx, &attr)
}

impl OnArgs {
    /// The routing keys of an attribute already parsed.
    pub(crate) fn read(cx: &Ctxt, attr: &Attr) -> OnArgs {
        OnArgs {
            event: attr.string(
                cx,
                "event",
                "event = \"order.placed\"",
                "the event name is empty; write it, e.g. `event = \"order.placed\"`, or leave \
                 `event` out to take every event of the topic",
            ),
            topic: attr.string(
                cx,
                "topic",
                "topic = \"orders\"",
                "the topic name is empty; write it, e.g. `topic = \"orders\"`, or leave `topic` \
                 out to listen on every subscribed topic",
            ),
            codec: attr.string(
                cx,
                "codec",
                "codec = \"avro\"",
                "the codec is empty; write `codec = \"avro\"` or leave it out",
            ),
            fan_out: attr.flag(cx, "fan_out"),
            replies: attr.types(cx, "replies", "replies(OrderAccepted, OrderRejected)"),
            http: attr.get("http").and_then(|meta| http_args(cx, meta)),
            batch: attr.get("batch").and_then(|meta| batch_args(cx, meta)),
        }
    }
}

fn batch_args(cx: &Ctxt, meta: &syn::Meta) -> Option<BatchArgs> {
    if !matches!(meta, syn::Meta::List(_)) {
        cx.error_spanned_by(
            meta,
            "`batch` says how to gather batches: write `batch(max = 500, linger = \"20ms\")`",
        );
        return None;
    }
    let batch = Attr::parse_list(cx, meta, "batch", BATCH_KEYS);
    let max = batch.positive_int(cx, "max", "max = 500");
    if max.is_none() && batch.get("max").is_none() {
        cx.error_spanned_by(
            meta,
            "`batch(...)` needs the most messages in a batch: write `batch(max = 500, linger = \"20ms\")`",
        );
    }
    let hint = "`linger` is how long a batch waits to fill, in ms or s: write `linger = \"20ms\"`";
    let linger_ms = match batch.string(cx, "linger", "linger = \"20ms\"", hint) {
        None if batch.get("linger").is_none() => Some(0),
        None => None,
        Some(lit) => match duration_ms(&lit.value()) {
            Some(ms) => Some(ms),
            None => {
                cx.error_spanned_by(&lit, hint);
                None
            }
        },
    };
    Some(BatchArgs {
        meta: meta.clone(),
        max,
        linger_ms,
    })
}

/// `"20ms"`, `"1s"`, `"0ms"` in milliseconds. Two units do not call for a
/// duration-parsing dependency in the macro crate.
fn duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        return None;
    };
    number.trim().parse::<u64>().ok()?.checked_mul(scale)
}

fn http_args(cx: &Ctxt, meta: &syn::Meta) -> Option<HttpArgs> {
    let route_hint = "the route is empty; write the method and path, e.g. `\"POST /orders\"`";
    let (route, http) = match meta {
        syn::Meta::List(_) => {
            let http = Attr::parse_list(cx, meta, "http", HTTP_KEYS);
            let route = http.string(cx, "route", "route = \"POST /orders\"", route_hint);
            if route.is_none() && http.get("route").is_none() {
                cx.error_spanned_by(
                    meta,
                    "`http(...)` needs a route: write `http(route = \"POST /orders\", ...)`",
                );
            }
            (route, Some(http))
        }
        _ => {
            let outer = Attr::single("http", meta.clone());
            (
                outer.string(cx, "http", "http = \"POST /orders\"", route_hint),
                None,
            )
        }
    };
    let route = route?;
    if let Err(why) = crate::route::check(&route.value()) {
        cx.error_spanned_by(&route, why);
        return None;
    }
    let Some(http) = http else {
        return Some(HttpArgs {
            route,
            namespace: None,
            summary: None,
            roles: Vec::new(),
            publish: None,
        });
    };
    let namespace = http.string(
        cx,
        "namespace",
        "namespace = \"shop\"",
        "the namespace is empty; write one, e.g. `namespace = \"shop\"`, or leave it out",
    );
    if let Some(ns) = &namespace {
        let v = ns.value();
        if v.contains('/') || v.contains('{') || v.contains(' ') {
            cx.error_spanned_by(
                ns,
                "a namespace is one path segment (it prefixes the route): write e.g. `namespace = \"shop\"`",
            );
        }
    }
    Some(HttpArgs {
        route,
        namespace,
        summary: http.string(
            cx,
            "summary",
            "summary = \"Place an order\"",
            "the summary is empty; write one line, or leave it out",
        ),
        roles: http.strings(cx, "roles", "roles = [\"orders.write\"]"),
        publish: http.boolean(cx, "publish", "publish = false"),
    })
}
