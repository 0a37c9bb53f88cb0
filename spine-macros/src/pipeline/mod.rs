//! `#[pipeline(...)]` on an inline module: parse the arguments, validate the
//! steps, expand to the module plus the pipeline's handler and descriptor.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

pub(crate) fn pipeline(args: TokenStream, item: TokenStream) -> TokenStream {
    let module: syn::ItemMod = match syn::parse2(item.clone()) {
        Ok(m) => m,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[pipeline] goes on an inline module whose fns are the steps, in order: \
                 `#[pipeline(event = \"text.submitted\")] mod enrich { fn normalize(t: Text) -> String { .. } async fn store(s: String) { .. } }`",
            );
            let mut out = item;
            out.extend(err.into_compile_error());
            return out;
        }
    };
    let mut stripped = module.clone();
    validate::strip_helpers(&mut stripped);
    let args = parse::parse_args(args);
    let steps = validate::validate(&module);
    match (args, steps) {
        (Ok(args), Ok(steps)) => expand::expand(&stripped, &args, &steps),
        (args, steps) => {
            // Always give the module back, so one mistake does not cascade
            // into "cannot find" errors elsewhere.
            let mut out = stripped.to_token_stream();
            if let Some(e) = crate::common::combine([args.err(), steps.err()].into_iter().flatten())
            {
                out.extend(e.into_compile_error());
            }
            out
        }
    }
}
