//! Parses `#[pipeline(...)]`: the routing keys of `#[on]` (`event`, `topic`,
//! `codec`, `fan_out`) plus `max_concurrent = N` and `args(name = value, ...)`;
//! and a step's `#[publish(topic = "...", event = "...")]`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Meta, Token, UnOp};

use crate::on::parse::{parse_args as parse_on_args, OnArgs};

/// The attribute's arguments.
pub(crate) struct PipelineArgs {
    pub(crate) on: OnArgs,
    pub(crate) max_concurrent: Option<syn::LitInt>,
    /// `args(name = value)`, each value as JSON text.
    pub(crate) args: Vec<(syn::Ident, String)>,
}

pub(crate) fn parse_args(tokens: TokenStream) -> syn::Result<PipelineArgs> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut routing: Punctuated<Meta, Token![,]> = Punctuated::new();
    let mut max_concurrent = None;
    let mut args = Vec::new();
    let mut errors = Vec::new();
    for meta in metas {
        let name = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match name.as_str() {
            "event" | "topic" | "codec" | "fan_out" | "replies" => routing.push(meta),
            "max_concurrent" => {
                if max_concurrent.is_some() {
                    errors.push(syn::Error::new_spanned(
                        meta.path(),
                        "`max_concurrent` is given twice; keep one",
                    ));
                    continue;
                }
                match int_value(&meta) {
                    Ok(n) => max_concurrent = Some(n),
                    Err(e) => errors.push(e),
                }
            }
            "args" => match parse_fixed_args(&meta) {
                Ok(mut a) => args.append(&mut a),
                Err(e) => errors.push(e),
            },
            _ => errors.push(syn::Error::new_spanned(
                meta.path(),
                "unknown key in #[pipeline(...)]; expected `event = \"...\"`, `topic = \"...\"`, \
                 `codec = \"avro\"`, `fan_out`, `replies(Type, ...)`, `max_concurrent = N` or `args(name = value, ...)`",
            )),
        }
    }
    let on = parse_on_args(routing.into_token_stream());
    let on = match on {
        Ok(on) => Some(on),
        Err(e) => {
            errors.insert(0, e);
            None
        }
    };
    match (crate::common::combine(errors), on) {
        (Some(e), _) => Err(e),
        (None, Some(on)) => Ok(PipelineArgs {
            on,
            max_concurrent,
            args,
        }),
        (None, None) => unreachable!("an error was recorded"),
    }
}

fn int_value(meta: &Meta) -> syn::Result<syn::LitInt> {
    let hint = "`max_concurrent` takes a positive integer: write `max_concurrent = 8`";
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(meta, hint));
    };
    match &nv.value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(n), ..
        }) => match n.base10_parse::<usize>() {
            Ok(v) if v > 0 => Ok(n.clone()),
            _ => Err(syn::Error::new_spanned(n, hint)),
        },
        other => Err(syn::Error::new_spanned(other, hint)),
    }
}

/// `args(name = literal, ...)`: literals become JSON values.
fn parse_fixed_args(meta: &Meta) -> syn::Result<Vec<(syn::Ident, String)>> {
    let hint = "write `args(name = value, ...)` with literal values, e.g. `args(max_len = 280, lang = \"en\")`";
    let Meta::List(list) = meta else {
        return Err(syn::Error::new_spanned(meta, hint));
    };
    let inner = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
    let mut out: Vec<(syn::Ident, String)> = Vec::new();
    for m in inner {
        let Meta::NameValue(nv) = &m else {
            return Err(syn::Error::new_spanned(&m, hint));
        };
        let Some(ident) = nv.path.get_ident() else {
            return Err(syn::Error::new_spanned(&nv.path, hint));
        };
        if out.iter().any(|(i, _)| i == ident) {
            return Err(syn::Error::new_spanned(
                ident,
                format!("argument `{ident}` is given twice; keep one"),
            ));
        }
        out.push((ident.clone(), json_of(&nv.value)?));
    }
    Ok(out)
}

fn json_of(expr: &Expr) -> syn::Result<String> {
    let bad = || {
        syn::Error::new_spanned(
            expr,
            "an argument's value is a literal: a string, an integer, a float or a bool",
        )
    };
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(s) => Ok(json_string(&s.value())),
            Lit::Int(i) => Ok(i.base10_digits().to_owned()),
            Lit::Float(f) => Ok(f.base10_digits().to_owned()),
            Lit::Bool(b) => Ok(b.value.to_string()),
            _ => Err(bad()),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => Ok(format!("-{}", i.base10_digits())),
            Expr::Lit(ExprLit {
                lit: Lit::Float(f), ..
            }) => Ok(format!("-{}", f.base10_digits())),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A JSON string literal. Written by hand: the macro crate has no serde_json,
/// and escaping is a few lines.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `#[publish(topic = "...", event = "...")]` on a step.
pub(crate) struct Publish {
    pub(crate) topic: LitStr,
    pub(crate) event: LitStr,
}

pub(crate) fn parse_publish(attr: &syn::Attribute) -> syn::Result<Publish> {
    let hint = "write `#[publish(topic = \"texts.enriched\", event = \"text.enriched\")]`";
    let Meta::List(list) = &attr.meta else {
        return Err(syn::Error::new_spanned(attr, hint));
    };
    let inner = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
    let (mut topic, mut event) = (None, None);
    for m in inner {
        let Meta::NameValue(nv) = &m else {
            return Err(syn::Error::new_spanned(&m, hint));
        };
        let slot = match nv.path.get_ident().map(ToString::to_string).as_deref() {
            Some("topic") => &mut topic,
            Some("event") => &mut event,
            _ => {
                return Err(syn::Error::new_spanned(
                    &nv.path,
                    format!("unknown key in #[publish(...)]; {hint}"),
                ))
            }
        };
        match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) if !s.value().trim().is_empty() => *slot = Some(s.clone()),
            other => return Err(syn::Error::new_spanned(other, hint)),
        }
    }
    match (topic, event) {
        (Some(topic), Some(event)) => Ok(Publish { topic, event }),
        _ => Err(syn::Error::new_spanned(
            attr,
            format!("#[publish] needs both a topic and an event: {hint}"),
        )),
    }
}
