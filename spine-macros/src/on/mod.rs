//! `#[on(...)]`: parse the arguments and the function, validate the signature,
//! expand to the function plus its descriptor.

mod expand;
pub(crate) mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::ctxt::{reemit, Ctxt};

pub(crate) fn on(args: TokenStream, item: TokenStream) -> TokenStream {
    // Not a function at all: report it and give the item back untouched.
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[on] goes on an `async fn`: `#[on(event = \"order.placed\")] async fn accept(order: OrderPlaced) { ... }`",
            );
            return reemit(item, err);
        }
    };
    let cx = Ctxt::new();
    let args = parse::parse_args(&cx, args);
    let sig = validate::validate(&cx, &func, &args);
    match (cx.check(), sig) {
        (Ok(()), Some(sig)) => expand::expand(&func, &args, &sig),
        (Err(e), _) => reemit(&func, e),
        (Ok(()), None) => unreachable!("validate reports why it returns None"),
    }
}
