//! Checks what the macro can see of a handler's signature. What only the type
//! checker knows (is the payload `DeserializeOwned`? is this argument an
//! extractor?) is checked by assertions the expansion places on the user's
//! own tokens.

use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use crate::ctxt::Ctxt;

/// The parts of a valid handler signature the expansion needs.
pub(crate) struct HandlerSig {
    pub(crate) payload: Type,
    pub(crate) extractors: Vec<Type>,
    pub(crate) output: Option<Type>,
}

/// The signature's parts, or `None` with every reason reported to `cx`.
pub(crate) fn validate(cx: &Ctxt, func: &ItemFn) -> Option<HandlerSig> {
    let sig = &func.sig;
    let name = &sig.ident;

    if sig.asyncness.is_none() {
        cx.syn_error(syn::Error::new_spanned(
            sig.fn_token,
            format!("Spine handlers must be `async fn`: write `async fn {name}(...)`"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.syn_error(syn::Error::new_spanned(
            &sig.generics,
            "a handler cannot be generic: Spine must know the payload type to decode it; \
             write one handler per concrete type",
        ));
    }
    if let Some(v) = &sig.variadic {
        cx.syn_error(syn::Error::new_spanned(v, "a handler cannot be variadic"));
    }

    let mut types = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => cx.syn_error(syn::Error::new_spanned(
                r,
                "a handler cannot take `self`: handlers are free functions; move it out of the \
                 `impl` block and take what it needs as `State<T>`",
            )),
            FnArg::Typed(pt) => types.push((*pt.ty).clone()),
        }
    }
    let has_receiver = sig.inputs.iter().any(|a| matches!(a, FnArg::Receiver(_)));
    if types.is_empty() && !has_receiver {
        cx.syn_error(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "a handler takes its payload as the first argument: \
                 `async fn {name}(payload: MyEvent, ...)`; take `serde_json::Value` to accept any JSON"
            ),
        ));
    }
    for ty in &types {
        if let Type::ImplTrait(_) = ty {
            cx.syn_error(syn::Error::new(
                ty.span(),
                "a handler argument needs a concrete type, not `impl Trait`",
            ));
        }
    }

    if !cx.is_ok() {
        return None;
    }
    let mut types = types.into_iter();
    let payload = types
        .next()
        .expect("checked above: at least one typed argument");
    Some(HandlerSig {
        payload,
        extractors: types.collect(),
        output: match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some((**ty).clone()),
        },
    })
}
