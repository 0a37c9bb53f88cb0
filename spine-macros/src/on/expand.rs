//! Emits the user's function unchanged, a hidden item of the same name in the
//! type namespace, and its `Describe` impl. Every path is absolute
//! (`::spine::__private::…`) so the expansion works under any imports.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemFn;

use super::parse::OnArgs;
use super::validate::HandlerSig;
use crate::common::{avro_check, codec_glue, handler_info, http_glue, reply_glue};

pub(crate) fn expand(func: &ItemFn, args: &OnArgs, sig: &HandlerSig) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    let payload_ty = &sig.payload;
    let glue = codec_glue(payload_ty);
    let info = handler_info(name, args, payload_ty);
    let replies = reply_glue(&args.replies);
    let (http_checks, http) = http_glue(args, payload_ty);

    // Assertions on the user's own tokens: a failing bound is reported on the
    // type that breaks it, with the trait's own "write this instead" note.
    let payload_check = quote_spanned! {payload_ty.span()=>
        ::spine::__private::assert::payload::<#payload_ty>();
    };
    let extractor_checks = sig.extractors.iter().map(|ty| match &args.batch {
        None => quote_spanned! {ty.span()=>
            ::spine::__private::assert::extractor::<#ty>();
        },
        Some(_) => quote_spanned! {ty.span()=>
            ::spine::__private::assert::batch_extractor::<#ty>();
        },
    });
    let avro_check = avro_check(args, payload_ty);
    let return_check = sig.output.as_ref().map(|ty| {
        quote_spanned! {ty.span()=>
            ::spine::__private::assert::returns::<#ty>();
        }
    });
    let new_descriptor = match &args.batch {
        None => quote_spanned! {name.span()=>
            ::spine::__private::HandlerDescriptor::new(#name, #info)
        },
        Some(b) => {
            let max = b.max.as_ref().expect("validated");
            let linger_ms = b.linger_ms.expect("validated");
            quote_spanned! {name.span()=>
                ::spine::__private::HandlerDescriptor::batch(#name, #info, #max, #linger_ms)
            }
        }
    };

    quote! {
        #func

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}

        impl ::spine::__private::Describe for #name {
            fn descriptor() -> ::spine::__private::HandlerDescriptor {
                #payload_check
                #(#extractor_checks)*
                #return_check
                #avro_check
                #http_checks
                #new_descriptor
                #glue
                #replies
                #http
            }
        }

        impl #name {
            /// What `spine::handlers![...]` calls.
            #[doc(hidden)]
            #[allow(dead_code)]
            pub fn __spine_descriptor() -> ::spine::__private::HandlerDescriptor {
                <Self as ::spine::__private::Describe>::descriptor()
            }
        }
    }
}
