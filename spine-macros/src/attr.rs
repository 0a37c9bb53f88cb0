//! The one attribute parser of `#[on]`, `#[pipeline]`, `#[publish]` and
//! `args(...)`: a comma-separated list of `key`, `key = value` and
//! `key(...)` items, where every key is known and given at most once. Each
//! caller then reads the values it expects through the typed helpers below,
//! which report mistakes on the exact token with a hint of what to write.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Meta, Token};

use crate::ctxt::Ctxt;

/// The items of one attribute, by key, each key at most once.
pub(crate) struct Attr {
    items: Vec<(String, Meta)>,
}

impl Attr {
    /// Parses `tokens`. Unknown and repeated keys go to `cx` (the first of
    /// a repeated key is kept); `what` names the attribute in messages and
    /// `known` lists its keys, each with how it is written (`event = "..."`).
    /// An empty `known` takes any key (named arguments).
    pub(crate) fn parse(
        cx: &Ctxt,
        tokens: TokenStream,
        what: &str,
        known: &[(&str, &str)],
    ) -> Attr {
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(m) => m,
            Err(e) => {
                cx.syn_error(e);
                return Attr { items: Vec::new() };
            }
        };
        Attr::from_metas(cx, metas, what, known)
    }

    /// The same, for the inside of `name(...)` of another attribute.
    pub(crate) fn parse_list(cx: &Ctxt, meta: &Meta, what: &str, known: &[(&str, &str)]) -> Attr {
        match meta {
            Meta::List(list) => Attr::parse(cx, list.tokens.clone(), what, known),
            other => {
                cx.error_spanned_by(other, format!("`{what}` takes a list: write `{what}(...)`"));
                Attr { items: Vec::new() }
            }
        }
    }

    fn from_metas(
        cx: &Ctxt,
        metas: Punctuated<Meta, Token![,]>,
        what: &str,
        known: &[(&str, &str)],
    ) -> Attr {
        let mut items: Vec<(String, Meta)> = Vec::new();
        for meta in metas {
            let key = meta
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            if !known.is_empty() && !known.iter().any(|(k, _)| *k == key) {
                let expected = known
                    .iter()
                    .map(|(_, form)| format!("`{form}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                cx.error_spanned_by(
                    meta.path(),
                    format!("unknown key in {what}; expected one of {expected}"),
                );
                continue;
            }
            if key.is_empty() {
                cx.error_spanned_by(meta.path(), format!("{what}: a key is a plain name"));
                continue;
            }
            if items.iter().any(|(k, _)| *k == key) {
                cx.error_spanned_by(
                    meta.path(),
                    format!("`{key}` is given twice in {what}; keep one"),
                );
                continue;
            }
            items.push((key, meta));
        }
        Attr { items }
    }

    /// One item already parsed, as an attribute of its own.
    pub(crate) fn single(key: &str, meta: Meta) -> Attr {
        Attr {
            items: vec![(key.to_owned(), meta)],
        }
    }

    /// The item of `key`, if given.
    pub(crate) fn get(&self, key: &str) -> Option<&Meta> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, m)| m)
    }

    /// Every item, in the order written.
    pub(crate) fn items(&self) -> impl Iterator<Item = (&str, &Meta)> {
        self.items.iter().map(|(k, m)| (k.as_str(), m))
    }

    /// `key = "non-empty string"`; `example` is what to write instead, and
    /// `if_empty` the hint for an empty one.
    pub(crate) fn string(
        &self,
        cx: &Ctxt,
        key: &str,
        example: &str,
        if_empty: &str,
    ) -> Option<LitStr> {
        let meta = self.get(key)?;
        let value = name_value(cx, meta, key, example)?;
        let Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) = value
        else {
            cx.error_spanned_by(
                value,
                format!("`{key}` takes a string literal: write `{example}`"),
            );
            return None;
        };
        if lit.value().trim().is_empty() {
            cx.error_spanned_by(lit, if_empty);
            return None;
        }
        Some(lit.clone())
    }

    /// `key` alone, a flag.
    pub(crate) fn flag(&self, cx: &Ctxt, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(Meta::Path(_)) => true,
            Some(other) => {
                cx.error_spanned_by(other, format!("`{key}` takes no value: write `{key}`"));
                false
            }
        }
    }

    /// `key = N` with N a positive integer.
    pub(crate) fn positive_int(&self, cx: &Ctxt, key: &str, example: &str) -> Option<LitInt> {
        let meta = self.get(key)?;
        let hint = format!("`{key}` takes a positive integer: write `{example}`");
        let value = name_value(cx, meta, key, example)?;
        match value {
            Expr::Lit(ExprLit {
                lit: Lit::Int(n), ..
            }) if n.base10_parse::<usize>().is_ok_and(|v| v > 0) => Some(n.clone()),
            other => {
                cx.error_spanned_by(other, hint);
                None
            }
        }
    }

    /// `key = true|false`.
    pub(crate) fn boolean(&self, cx: &Ctxt, key: &str, example: &str) -> Option<syn::LitBool> {
        let meta = self.get(key)?;
        let value = name_value(cx, meta, key, example)?;
        match value {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }) => Some(b.clone()),
            other => {
                cx.error_spanned_by(
                    other,
                    format!("`{key}` takes `true` or `false`: write `{example}`"),
                );
                None
            }
        }
    }

    /// `key = ["a", "b"]`: non-empty string literals.
    pub(crate) fn strings(&self, cx: &Ctxt, key: &str, example: &str) -> Vec<LitStr> {
        let Some(meta) = self.get(key) else {
            return Vec::new();
        };
        let Some(value) = name_value(cx, meta, key, example) else {
            return Vec::new();
        };
        let hint = format!("`{key}` takes a list of strings: write `{example}`");
        let Expr::Array(array) = value else {
            cx.error_spanned_by(value, hint);
            return Vec::new();
        };
        let mut out = Vec::new();
        for elem in &array.elems {
            match elem {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) if !s.value().trim().is_empty() => out.push(s.clone()),
                other => cx.error_spanned_by(other, &hint),
            }
        }
        out
    }

    /// `key(Type, ...)`.
    pub(crate) fn types(&self, cx: &Ctxt, key: &str, example: &str) -> Vec<syn::Type> {
        let Some(meta) = self.get(key) else {
            return Vec::new();
        };
        let Meta::List(list) = meta else {
            cx.error_spanned_by(meta, format!("`{key}` lists types: write `{example}`"));
            return Vec::new();
        };
        match list.parse_args_with(Punctuated::<syn::Type, Token![,]>::parse_terminated) {
            Ok(types) => types.into_iter().collect(),
            Err(e) => {
                cx.syn_error(e);
                Vec::new()
            }
        }
    }
}

/// The value of `key = value`, or an error saying to write one.
pub(crate) fn name_value<'m>(
    cx: &Ctxt,
    meta: &'m Meta,
    key: &str,
    example: &str,
) -> Option<&'m Expr> {
    match meta {
        Meta::NameValue(nv) => Some(&nv.value),
        other => {
            cx.error_spanned_by(other, format!("`{key}` needs a value: write `{example}`"));
            None
        }
    }
}
