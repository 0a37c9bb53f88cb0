//! Emits the user's function unchanged, a hidden item of the same name in the
//! type namespace, and its `Describe` impl. Every path is absolute
//! (`::spine::__private::…`) so the expansion works under any imports.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::ItemFn;

use super::parse::OnArgs;
use super::validate::HandlerSig;

pub(crate) fn expand(func: &ItemFn, args: &OnArgs, sig: &HandlerSig) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    let name_str = name.to_string();
    let opt = |lit: &Option<syn::LitStr>| match lit {
        Some(l) => quote!(::core::option::Option::Some(#l)),
        None => quote!(::core::option::Option::None),
    };
    let topic = opt(&args.topic);
    let event = opt(&args.event);
    let codec = opt(&args.codec);
    let is_avro = args.codec.as_ref().is_some_and(|c| c.value() == "avro");
    let fan_out = args.fan_out;
    let payload_ty = &sig.payload;
    let payload_str = type_name(payload_ty);

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
                // The payload type's Avro schema, if it has one (autoref
                // specialization: the first impl applies only to `AvroSchema` types).
                .with_value_decoder(::spine::__private::avro_value::<#payload_ty>)
                .with_reader_schema({
                    #[allow(unused_imports)]
                    use ::spine::__private::probe::{AvroReader as _, NoReader as _};
                    (&&::spine::__private::probe::Probe::<#payload_ty>::new()).reader_schema()
                })
            }
        }
    }
}

/// The type as written, without the spaces `to_string` puts between tokens.
fn type_name(ty: &syn::Type) -> String {
    let raw = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(raw.len());
    let chars: Vec<char> = raw.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let tight = |ch: char| matches!(ch, '<' | '>' | ':' | '&' | '(' | ')' | '[' | ']');
            if tight(prev) || tight(next) || next == ',' {
                continue;
            }
        }
        out.push(*c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::type_name;

    #[test]
    fn type_names_read_as_written() {
        let t: syn::Type = syn::parse_quote!(Vec<my::Order>);
        assert_eq!(type_name(&t), "Vec<my::Order>");
        let t: syn::Type = syn::parse_quote!(HashMap<String, u32>);
        assert_eq!(type_name(&t), "HashMap<String, u32>");
        let t: syn::Type = syn::parse_quote!(&'static str);
        assert_eq!(type_name(&t), "&'static str");
    }
}
