//! `#[pipeline(...)]` on an inline module: parse the arguments, validate the
//! steps, expand to the module plus the pipeline's handler and descriptor.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::ctxt::{reemit, Ctxt};

pub(crate) fn pipeline(args: TokenStream, item: TokenStream) -> TokenStream {
    let module: syn::ItemMod = match syn::parse2(item.clone()) {
        Ok(m) => m,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[pipeline] goes on an inline module whose fns are the steps, in order: \
                 `#[pipeline(event = \"text.submitted\")] mod enrich { fn normalize(t: Text) -> String { .. } async fn store(s: String) { .. } }`",
            );
            return reemit(item, err);
        }
    };
    let mut stripped = module.clone();
    validate::strip_helpers(&mut stripped);
    let cx = Ctxt::new();
    let args = parse::parse_args(&cx, args);
    let steps = validate::validate(&cx, &module);
    match (cx.check(), steps) {
        (Ok(()), Some(steps)) => expand::expand(&stripped, &args, &steps),
        // The module goes back without the macro's helper attributes.
        (Err(e), _) => reemit(&stripped, e),
        (Ok(()), None) => unreachable!("validate reports why it returns None"),
    }
}
