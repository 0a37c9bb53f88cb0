//! Reads the arguments of `#[on(...)]` (`event`, `topic`, `codec`,
//! `fan_out`, `replies(Type, ...)`) from the shared attribute parser. The
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
];

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
        }
    }
}
