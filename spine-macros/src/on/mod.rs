//! `#[on(...)]`: parse the arguments and the function, validate the signature,
//! expand to the function plus its descriptor.

mod expand;
pub(crate) mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

pub(crate) fn on(args: TokenStream, item: TokenStream) -> TokenStream {
    // Not a function at all: report it and give the item back untouched.
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[on] goes on an `async fn`: `#[on(event = \"order.placed\")] async fn accept(order: OrderPlaced) { ... }`",
            );
            let mut out = item;
            out.extend(err.into_compile_error());
            return out;
        }
    };
    let args = parse::parse_args(args);
    let sig = validate::validate(&func);
    match (args, sig) {
        (Ok(args), Ok(sig)) => expand::expand(&func, &args, &sig),
        (args, sig) => {
            // Always give the user's function back, so one mistake does not
            // cascade into "cannot find function" errors elsewhere.
            let mut out = func.to_token_stream();
            let errors = [args.err(), sig.err()]
                .into_iter()
                .flatten()
                .reduce(|mut a, b| {
                    a.combine(b);
                    a
                });
            if let Some(e) = errors {
                out.extend(e.into_compile_error());
            }
            out
        }
    }
}
