//! Emits the user's function unchanged, a hidden item of the same name in the
//! type namespace, and its `Describe` impl. Every path is absolute
//! (`::spine::__private::…`) so the expansion works under any imports.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemFn;

use super::parse::OnArgs;
use super::validate::HandlerSig;
use crate::common::{codec_glue, opt_str, type_name};

pub(crate) fn expand(func: &ItemFn, args: &OnArgs, sig: &HandlerSig) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    let name_str = name.to_string();
    let topic = opt_str(&args.topic);
    let event = opt_str(&args.event);
    let codec = opt_str(&args.codec);
    let is_avro = args.codec.as_ref().is_some_and(|c| c.value() == "avro");
    let fan_out = args.fan_out;
    let payload_ty = &sig.payload;
    let payload_str = type_name(payload_ty);
    let glue = codec_glue(payload_ty);

    // Assertions on the user's own tokens: a failing bound is reported on the
    // type that breaks it, with the trait's own "write this instead" note.
    let payload_check = quote_spanned! {payload_ty.span()=>
        ::spine::__private::assert::payload::<#payload_ty>();
    };
    let extractor_checks = sig.extractors.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            ::spine::__private::assert::extractor::<#ty>();
        }
    });
    // `codec = "avro"`: the payload type must carry its Avro schema.
    let avro_check = is_avro.then(|| {
        quote_spanned! {payload_ty.span()=>
            ::spine::__private::assert::avro::<#payload_ty>();
        }
    });
    let return_check = sig.output.as_ref().map(|ty| {
        quote_spanned! {ty.span()=>
            ::spine::__private::assert::returns::<#ty>();
        }
    });
    let location = quote_spanned! {name.span()=>
        file: ::core::file!(),
        line: ::core::line!(),
    };
    let new_descriptor = quote_spanned! {name.span()=>
        ::spine::__private::HandlerDescriptor::new
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
                #new_descriptor(
                    #name,
                    ::spine::__private::HandlerInfo {
                        name: #name_str,
                        topic: #topic,
                        event: #event,
                        payload: #payload_str,
                        #location
                        fan_out: #fan_out,
                        codec: #codec,
                    },
                )
                #glue
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
