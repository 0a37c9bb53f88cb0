//! The one error collector of the macros, in the manner of serde_derive's
//! `Ctxt`: every check reports into it and goes on, so that all mistakes are
//! shown at once; `check` ends the collection. Dropping a `Ctxt` that was not
//! checked is a bug in the macro, caught by a panic in debug builds.

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

pub(crate) struct Ctxt {
    /// `None` once checked.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// An error on the tokens of `obj`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, obj: T, msg: M) {
        self.syn_error(syn::Error::new_spanned(obj.into_token_stream(), msg));
    }

    /// An error syn already made.
    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("Ctxt used after check")
            .push(err);
    }

    /// Whether nothing was reported so far.
    pub(crate) fn is_ok(&self) -> bool {
        self.errors.borrow().as_ref().is_some_and(Vec::is_empty)
    }

    /// Every error reported, folded into one, or `Ok`.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().expect("checked once");
        match errors.into_iter().reduce(|mut a, b| {
            a.combine(b);
            a
        }) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("forgot to check for errors");
        }
    }
}

/// The user's item, unchanged, followed by the errors: one mistake must not
/// cascade into "cannot find function" errors wherever the item is used.
pub(crate) fn reemit(item: impl ToTokens, err: syn::Error) -> TokenStream {
    let mut out = item.into_token_stream();
    out.extend(err.into_compile_error());
    out
}
