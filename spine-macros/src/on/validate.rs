//! Checks what the macro can see of a handler's signature. What only the type
//! checker knows (is the payload `DeserializeOwned`? is this argument an
//! extractor?) is checked by assertions the expansion places on the user's
//! own tokens.

use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::on::parse::OnArgs;

/// The parts of a valid handler signature the expansion needs.
pub(crate) struct HandlerSig {
    /// The payload type; for a batch handler, one message's (`T` of `Vec<T>`).
    pub(crate) payload: Type,
    pub(crate) extractors: Vec<Type>,
    pub(crate) output: Option<Type>,
}

/// The signature's parts, or `None` with every reason reported to `cx`.
pub(crate) fn validate(cx: &Ctxt, func: &ItemFn, args: &OnArgs) -> Option<HandlerSig> {
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

    match &args.batch {
        Some(batch) => check_batch(cx, args, batch, types.first()),
        None => {
            for ty in types.iter().skip(1).filter(|t| is_vec_of(t, "Meta")) {
                cx.error_spanned_by(
                    ty,
                    "`Vec<Meta>` is a batch handler's argument: add `batch(max = 500, linger = \"20ms\")` \
                     to #[on] and take the payloads as `Vec<T>`, or take one message's `Meta`",
                );
            }
        }
    }

    if !cx.is_ok() {
        return None;
    }
    let mut types = types.into_iter();
    let payload = types
        .next()
        .expect("checked above: at least one typed argument");
    let payload = match &args.batch {
        Some(_) => vec_item(&payload).expect("check_batch: a Vec").clone(),
        None => payload,
    };
    Some(HandlerSig {
        payload,
        extractors: types.collect(),
        output: match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some((**ty).clone()),
        },
    })
}

/// What a batch handler needs besides its signature's shape: its own topic,
/// every event of it, and payloads as `Vec<T>`.
fn check_batch(
    cx: &Ctxt,
    args: &OnArgs,
    batch: &crate::on::parse::BatchArgs,
    first: Option<&Type>,
) {
    if args.topic.is_none() {
        cx.error_spanned_by(
            &batch.meta,
            "a batch holds messages of one partition: name the topic, `#[on(topic = \"orders\", batch(..))]`",
        );
    }
    if let Some(event) = &args.event {
        cx.error_spanned_by(
            event,
            "a batch handler takes every event of its topic, in order: remove `event`, or route \
             this event to a topic of its own",
        );
    }
    if args.fan_out {
        cx.error_spanned_by(
            &batch.meta,
            "a batch handler owns its topic and cannot fan out: remove `fan_out` or `batch(..)`",
        );
    }
    if let Some(http) = &args.http {
        cx.error_spanned_by(
            &http.route,
            "an HTTP request is one message, not a batch: remove `http` or `batch(..)`",
        );
    }
    if let Some(ty) = first.filter(|t| vec_item(t).is_none()) {
        cx.error_spanned_by(
            ty,
            "a batch handler takes its payloads as a `Vec`: write e.g. `orders: Vec<OrderPlaced>`",
        );
    }
}

/// `T` of `Vec<T>` (as written: `Vec<T>` or `std::vec::Vec<T>`).
fn vec_item(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(a) = &last.arguments else {
        return None;
    };
    match a.args.first()? {
        syn::GenericArgument::Type(t) if a.args.len() == 1 => Some(t),
        _ => None,
    }
}

/// Whether `ty` is `Vec<name>` (`name` as the last path segment).
fn is_vec_of(ty: &Type, name: &str) -> bool {
    matches!(vec_item(ty), Some(Type::Path(p)) if p.path.segments.last().is_some_and(|s| s.ident == name))
}
