//! Checks what the macro can see of a pipeline module: an inline module whose
//! fns are the steps, in order; each step's input, extra parameters, return
//! shape and `#[publish]`. Whether step n's output is step n+1's input is left
//! to rustc, through link functions the expansion writes on the user's tokens.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Item, ItemFn, ItemMod, Pat, PathArguments, ReturnType, Type};

use super::parse::{parse_publish, Publish};
use crate::ctxt::Ctxt;

/// A valid pipeline: its steps in order.
pub(crate) struct Pipeline {
    pub(crate) steps: Vec<Step>,
}

pub(crate) struct Step {
    pub(crate) ident: syn::Ident,
    pub(crate) is_async: bool,
    /// The first parameter's type: the previous step's output, or the payload.
    pub(crate) input: Type,
    pub(crate) params: Vec<Param>,
    pub(crate) flow: Flow,
    /// The output once `Option`/`Result` are unwrapped.
    pub(crate) output: Type,
    pub(crate) publish: Option<Publish>,
}

/// A parameter after the input.
pub(crate) enum Param {
    /// Built from the message (`Meta`, `Context`, `State<T>`, ...).
    Extractor(Type),
    /// `#[arg] name: T`: a fixed value from the attribute or the config.
    Arg { name: syn::Ident, ty: Type },
}

/// How a step's return value goes on.
pub(crate) enum Flow {
    /// `T`: always on.
    Plain,
    /// `Option<T>`: `None` stops the pipeline; the message is done.
    Option,
    /// `Result<T, E>`: `Err` fails the message (retries, then dead letter).
    Result(Span),
    /// `Result<Option<T>, E>`: both.
    ResultOption(Span),
}

/// Removes the macro's own helper attributes (`#[publish]` on steps, `#[arg]`
/// on parameters), returning what they said. Runs even when the module is
/// invalid, so that the re-emitted module never names unknown attributes.
pub(crate) fn strip_helpers(module: &mut ItemMod) -> Vec<(syn::Ident, Vec<syn::Attribute>)> {
    let mut found = Vec::new();
    let Some((_, items)) = &mut module.content else {
        return found;
    };
    for item in items {
        if let Item::Fn(f) = item {
            let mut helpers = Vec::new();
            f.attrs.retain(|a| {
                let ours = a.path().is_ident("publish");
                if ours {
                    helpers.push(a.clone());
                }
                !ours
            });
            for arg in f.sig.inputs.iter_mut() {
                if let FnArg::Typed(pt) = arg {
                    pt.attrs.retain(|a| {
                        let ours = a.path().is_ident("arg");
                        if ours {
                            helpers.push(a.clone());
                        }
                        !ours
                    });
                }
            }
            found.push((f.sig.ident.clone(), helpers));
        }
    }
    found
}

/// Validates the module. `original` is the module as written (with helper
/// attributes); `helpers` is what [`strip_helpers`] took out of it.
/// The pipeline, or `None` with every reason reported to `cx`.
pub(crate) fn validate(cx: &Ctxt, original: &ItemMod) -> Option<Pipeline> {
    let name = &original.ident;
    let Some((_, items)) = &original.content else {
        cx.error_spanned_by(
            original,
            format!(
                "#[pipeline] needs the steps inline: write `mod {name} {{ fn first(..) -> .. {{ .. }} async fn second(..) {{ .. }} }}`"
            ),
        );
        return None;
    };
    let mut steps = Vec::new();
    let mut all_steps = true;
    for item in items {
        match item {
            Item::Fn(f) => match step(cx, f) {
                Some(s) => steps.push(s),
                None => all_steps = false,
            },
            Item::Use(_) => {}
            other => cx.syn_error(syn::Error::new_spanned(
                other,
                format!(
                    "a pipeline module holds only its steps (fns, run in the order written) and `use` items; \
                     move this item out of `mod {name}`"
                ),
            )),
        }
    }
    if steps.is_empty() && all_steps {
        cx.syn_error(syn::Error::new_spanned(
            name,
            format!(
                "pipeline `{name}` has no steps; add its steps as fns, in order: \
                 `fn normalize(input: In) -> Out {{ .. }}`"
            ),
        ));
    }
    if !cx.is_ok() || !all_steps {
        return None;
    }
    Some(Pipeline { steps })
}

/// One step, or `None` with the reasons reported to `cx`.
fn step(cx: &Ctxt, f: &ItemFn) -> Option<Step> {
    let sig = &f.sig;
    let name = &sig.ident;
    let reported = Ctxt::new();
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        reported.syn_error(syn::Error::new_spanned(
            &sig.generics,
            "a pipeline step cannot be generic: the pipeline's types are fixed; write the concrete types",
        ));
    }
    if let Some(v) = &sig.variadic {
        reported.syn_error(syn::Error::new_spanned(v, "a step cannot be variadic"));
    }
    let mut input = None;
    let mut params = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        let pt = match arg {
            FnArg::Receiver(r) => {
                reported.syn_error(syn::Error::new_spanned(
                    r,
                    "a step cannot take `self`: steps are free functions; take what they need as `State<T>`",
                ));
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        if let Type::ImplTrait(_) = &*pt.ty {
            reported.syn_error(syn::Error::new_spanned(
                &pt.ty,
                "a step argument needs a concrete type, not `impl Trait`",
            ));
            continue;
        }
        let is_arg = pt.attrs.iter().any(|a| a.path().is_ident("arg"));
        if let Some(a) = pt.attrs.iter().find(|a| a.path().is_ident("arg")) {
            if !matches!(a.meta, syn::Meta::Path(_)) {
                reported.syn_error(syn::Error::new_spanned(
                    a,
                    "`#[arg]` takes nothing: the value comes from `args(...)` of #[pipeline] or from spine.toml",
                ));
            }
        }
        if i == 0 {
            if is_arg {
                reported.syn_error(syn::Error::new_spanned(
                    pt,
                    "the first argument of a step is its input (the payload, or the previous step's output); \
                     it cannot be an `#[arg]`",
                ));
            }
            input = Some((*pt.ty).clone());
            continue;
        }
        if is_arg {
            match &*pt.pat {
                Pat::Ident(p) => params.push(Param::Arg {
                    name: p.ident.clone(),
                    ty: (*pt.ty).clone(),
                }),
                other => reported.syn_error(syn::Error::new_spanned(
                    other,
                    "an `#[arg]` parameter needs a plain name: its name is the argument's name",
                )),
            }
        } else {
            params.push(Param::Extractor((*pt.ty).clone()));
        }
    }
    if input.is_none() && !sig.inputs.iter().any(|a| matches!(a, FnArg::Receiver(_))) {
        reported.syn_error(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "a step takes its input as the first argument (the payload for the first step, \
                 the previous step's output after that): `fn {name}(input: In, ...)`"
            ),
        ));
    }
    let publish = f
        .attrs
        .iter()
        .find(|a| a.path().is_ident("publish"))
        .map(|a| parse_publish(&reported, a));
    // This step's own errors join the pipeline's.
    let failed = reported.check().err();
    if let Some(e) = failed {
        cx.syn_error(e);
        return None;
    }
    let publish = match publish {
        Some(Some(p)) => Some(p),
        Some(None) => unreachable!("parse_publish reports why it returns None"),
        None => None,
    };
    let (flow, output) = flow_of(&sig.output);
    Some(Step {
        ident: name.clone(),
        is_async: sig.asyncness.is_some(),
        input: input.expect("checked above"),
        params,
        flow,
        output,
        publish,
    })
}

/// Reads `Option<T>`, `Result<T, E>` (any path ending in `Result`, such as
/// `anyhow::Result<T>`) and `Result<Option<T>, E>` as written.
fn flow_of(ret: &ReturnType) -> (Flow, Type) {
    let ty = match ret {
        ReturnType::Default => return (Flow::Plain, syn::parse_quote!(())),
        ReturnType::Type(_, ty) => &**ty,
    };
    if let Some(inner) = single_arg(ty, "Option") {
        return (Flow::Option, inner);
    }
    if let Some(inner) = single_arg(ty, "Result") {
        let span = ty.span();
        if let Some(innermost) = single_arg(&inner, "Option") {
            return (Flow::ResultOption(span), innermost);
        }
        return (Flow::Result(span), inner);
    }
    (Flow::Plain, ty.clone())
}

/// `T` of `Name<T, ..>` when the path's last segment is `Name`.
fn single_arg(ty: &Type, name: &str) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// The distinct extractor types of all steps, in order of first use.
pub(crate) fn distinct_extractors(steps: &[Step]) -> Vec<Type> {
    let mut out: Vec<Type> = Vec::new();
    for s in steps {
        for p in &s.params {
            if let Param::Extractor(t) = p {
                if !out.iter().any(|o| o == t) {
                    out.push(t.clone());
                }
            }
        }
    }
    out
}
