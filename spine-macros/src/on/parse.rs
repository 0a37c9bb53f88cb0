//! Parses the arguments of `#[on(...)]`: `event = "..."`, `topic = "..."`,
//! `codec = "..."`, `fan_out`, `replies(Type, ...)`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// The arguments, each with the tokens it was written with.
pub(crate) struct OnArgs {
    pub(crate) event: Option<LitStr>,
    pub(crate) topic: Option<LitStr>,
    pub(crate) codec: Option<LitStr>,
    pub(crate) fan_out: bool,
    /// `replies(Type, ...)`: the types the handler replies with, for schema
    /// export and AsyncAPI (replies are type-erased at run time).
    pub(crate) replies: Vec<syn::Type>,
}

pub(crate) fn parse_args(tokens: TokenStream) -> syn::Result<OnArgs> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut args = OnArgs {
        event: None,
        topic: None,
        codec: None,
        fan_out: false,
        replies: Vec::new(),
    };
    let mut seen_fan_out = false;
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for meta in metas {
        let key = meta.path();
        let name = key.get_ident().map(ToString::to_string).unwrap_or_default();
        match name.as_str() {
            "event" | "topic" | "codec" => {
                let slot = match name.as_str() {
                    "event" => &mut args.event,
                    "topic" => &mut args.topic,
                    _ => &mut args.codec,
                };
                if slot.is_some() {
                    push(syn::Error::new_spanned(
                        key,
                        format!("`{name}` is given twice; keep one `{name} = \"...\"`"),
                    ));
                    continue;
                }
                match string_value(&meta, &name) {
                    Ok(lit) if name == "codec" && !matches!(lit.value().as_str(), "json" | "avro") => {
                        push(syn::Error::new_spanned(
                            &lit,
                            "unknown codec; write `codec = \"avro\"` or `codec = \"json\"`",
                        ))
                    }
                    Ok(lit) => *slot = Some(lit),
                    Err(e) => push(e),
                }
            }
            "fan_out" => {
                if seen_fan_out {
                    push(syn::Error::new_spanned(
                        key,
                        "`fan_out` is given twice; keep one",
                    ));
                    continue;
                }
                seen_fan_out = true;
                match &meta {
                    Meta::Path(_) => args.fan_out = true,
                    other => push(syn::Error::new_spanned(
                        other,
                        "`fan_out` takes no value: write `fan_out`",
                    )),
                }
            }
            "replies" => match &meta {
                Meta::List(list) => match list
                    .parse_args_with(Punctuated::<syn::Type, Token![,]>::parse_terminated)
                {
                    Ok(types) => args.replies.extend(types),
                    Err(e) => push(e),
                },
                other => push(syn::Error::new_spanned(
                    other,
                    "`replies` lists the reply types: write `replies(OrderAccepted, OrderRejected)`",
                )),
            },
            _ => push(syn::Error::new_spanned(
                key,
                "unknown key in #[on(...)]; expected `event = \"...\"`, `topic = \"...\"`, `codec = \"avro\"`, `fan_out` or `replies(Type, ...)`",
            )),
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(args),
    }
}

/// The string literal of `key = "value"`, which must not be empty.
fn string_value(meta: &Meta, name: &str) -> syn::Result<LitStr> {
    let example = match name {
        "event" => "event = \"order.placed\"",
        "topic" => "topic = \"orders\"",
        _ => "codec = \"avro\"",
    };
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(
            meta,
            format!("`{name}` needs a value: write `{example}`"),
        ));
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = &nv.value
    else {
        return Err(syn::Error::new_spanned(
            &nv.value,
            format!("`{name}` takes a string literal: write `{example}`"),
        ));
    };
    if lit.value().trim().is_empty() {
        let hint = match name {
            "event" => "the event name is empty; write it, e.g. `event = \"order.placed\"`, or leave `event` out to take every event of the topic",
            "topic" => "the topic name is empty; write it, e.g. `topic = \"orders\"`, or leave `topic` out to listen on every subscribed topic",
            _ => "the codec is empty; write `codec = \"avro\"` or leave it out",
        };
        return Err(syn::Error::new_spanned(lit, hint));
    }
    Ok(lit.clone())
}
