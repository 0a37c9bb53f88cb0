//! Parses `#[pipeline(...)]`: the routing keys of `#[on]` (`event`, `topic`,
//! `codec`, `fan_out`) plus `max_concurrent = N` and `args(name = value, ...)`;
//! and a step's `#[publish(topic = "...", event = "...")]`.

use proc_macro2::TokenStream;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Meta, UnOp};

use crate::attr::Attr;
use crate::ctxt::Ctxt;
use crate::on::parse::OnArgs;

/// The attribute's arguments.
pub(crate) struct PipelineArgs {
    pub(crate) on: OnArgs,
    pub(crate) max_concurrent: Option<syn::LitInt>,
    /// `args(name = value)`, each value as JSON text.
    pub(crate) args: Vec<(syn::Ident, String)>,
}

pub(crate) fn parse_args(cx: &Ctxt, tokens: TokenStream) -> PipelineArgs {
    // A pipeline takes one message at a time: `batch` is `#[on]`'s alone.
    let mut keys: Vec<_> = crate::on::parse::KEYS
        .iter()
        .filter(|(k, _)| *k != "batch")
        .copied()
        .collect();
    keys.extend([
        ("max_concurrent", "max_concurrent = N"),
        ("args", "args(name = value, ...)"),
    ]);
    let attr = Attr::parse(cx, tokens, "#[pipeline(...)]", &keys);
    PipelineArgs {
        on: OnArgs::read(cx, &attr),
        max_concurrent: attr.positive_int(cx, "max_concurrent", "max_concurrent = 8"),
        args: attr
            .get("args")
            .map(|meta| fixed_args(cx, meta))
            .unwrap_or_default(),
    }
}

/// `args(name = literal, ...)`: literals become JSON values; a name given
/// twice is refused like any repeated key.
fn fixed_args(cx: &Ctxt, meta: &Meta) -> Vec<(syn::Ident, String)> {
    let hint = "write `args(name = value, ...)` with literal values, e.g. `args(max_len = 280, lang = \"en\")`";
    let list = Attr::parse_list(cx, meta, "args", &[]);
    let mut out = Vec::new();
    for (_, m) in list.items() {
        let Meta::NameValue(nv) = m else {
            cx.error_spanned_by(m, hint);
            continue;
        };
        let Some(ident) = nv.path.get_ident() else {
            cx.error_spanned_by(&nv.path, hint);
            continue;
        };
        match json_of(&nv.value) {
            Ok(json) => out.push((ident.clone(), json)),
            Err(e) => cx.syn_error(e),
        }
    }
    out
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

/// `#[publish(topic = "...", event = "...")]`, both keys once each.
pub(crate) fn parse_publish(cx: &Ctxt, attr: &syn::Attribute) -> Option<Publish> {
    let hint = "write `#[publish(topic = \"texts.enriched\", event = \"text.enriched\")]`";
    let Meta::List(list) = &attr.meta else {
        cx.error_spanned_by(attr, hint);
        return None;
    };
    let keys = Attr::parse(
        cx,
        list.tokens.clone(),
        "#[publish(...)]",
        &[("topic", "topic = \"...\""), ("event", "event = \"...\"")],
    );
    let empty = format!("the name is empty; {hint}");
    let topic = keys.string(cx, "topic", "topic = \"texts.enriched\"", &empty);
    let event = keys.string(cx, "event", "event = \"text.enriched\"", &empty);
    let missing = [("topic", keys.get("topic")), ("event", keys.get("event"))]
        .into_iter()
        .filter(|(_, m)| m.is_none())
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>();
    if !missing.is_empty() {
        cx.error_spanned_by(
            attr,
            format!(
                "#[publish] needs both a topic and an event (missing {}): {hint}",
                missing.join(" and ")
            ),
        );
    }
    Some(Publish {
        topic: topic?,
        event: event?,
    })
}
