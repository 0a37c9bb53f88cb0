//! Expansion pieces `#[on]` and `#[pipeline]` share: the payload type's codec
//! glue and type names as written.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

use crate::on::parse::OnArgs;

/// The `HandlerInfo` literal of a handler or pipeline named `name`, whose
/// payload is `payload`; its location is the name's.
pub(crate) fn handler_info(name: &syn::Ident, args: &OnArgs, payload: &syn::Type) -> TokenStream {
    let name_str = name.to_string();
    let topic = opt_cow(&args.topic);
    let event = opt_cow(&args.event);
    let codec = opt_str(&args.codec);
    let fan_out = args.fan_out;
    let payload_str = type_name(payload);
    let location = quote_spanned! {name.span()=>
        file: ::core::file!(),
        line: ::core::line!(),
    };
    quote! {
        ::spine::__private::HandlerInfo {
            name: ::std::borrow::Cow::Borrowed(#name_str),
            topic: #topic,
            event: #event,
            payload: #payload_str,
            #location
            fan_out: #fan_out,
            codec: #codec,
        }
    }
}

/// `codec = "avro"`: the payload type must carry its Avro schema (checked on
/// the payload type's tokens).
pub(crate) fn avro_check(args: &OnArgs, payload: &syn::Type) -> Option<TokenStream> {
    let is_avro = args.codec.as_ref().is_some_and(|c| c.value() == "avro");
    is_avro.then(|| {
        quote_spanned! {payload.span()=>
            ::spine::__private::assert::avro::<#payload>();
        }
    })
}

/// Attaches, to a descriptor expression, the converter from a codec's decoded
/// value into `payload_ty` and the type's Avro schema if it has one (autoref
/// specialization: the first impl applies only to `AvroSchema` types).
pub(crate) fn codec_glue(payload_ty: &syn::Type) -> TokenStream {
    quote! {
        .with_value_decoder(::spine::__private::avro_value::<#payload_ty>)
        .with_reader_schema({
            #[allow(unused_imports)]
            use ::spine::__private::probe::{AvroReader as _, NoReader as _};
            (&&::spine::__private::probe::Probe::<#payload_ty>::new()).reader_schema()
        })
        .with_json_schema({
            #[allow(unused_imports)]
            use ::spine::__private::probe::{JsonSchemaOf as _, NoJsonSchema as _};
            (&&::spine::__private::probe::Probe::<#payload_ty>::new()).json_schema()
        })
    }
}

/// `http = ...`: checks that the payload and reply types derive
/// `JsonSchema` (on their own tokens), and attaches the endpoint.
pub(crate) fn http_glue(args: &OnArgs, payload: &syn::Type) -> (TokenStream, TokenStream) {
    let Some(http) = &args.http else {
        return (TokenStream::new(), TokenStream::new());
    };
    let check = |ty: &syn::Type, what: TokenStream| {
        quote_spanned! {ty.span()=>
            {
                #[allow(unused_imports)]
                use ::spine::__private::probe::{JsonSchemaOf as _, NoJsonSchema as _};
                ::spine::__private::assert::#what::<#ty, _>(
                    (&&::spine::__private::probe::Probe::<#ty>::new()).json_schema_marker(),
                );
            }
        }
    };
    let mut checks = check(payload, quote!(http_payload));
    for ty in &args.replies {
        checks.extend(check(ty, quote!(http_reply)));
    }
    let route = &http.route;
    let namespace = opt_str(&http.namespace);
    let summary = opt_str(&http.summary);
    let roles = &http.roles;
    let publish = match &http.publish {
        Some(b) => quote!(::core::option::Option::Some(#b)),
        None => quote!(::core::option::Option::None),
    };
    let attach = quote! {
        .with_http(::spine::__private::HttpAttr {
            route: #route,
            namespace: #namespace,
            summary: #summary,
            roles: &[#(#roles),*],
            publish: #publish,
        })
    };
    (checks, attach)
}

/// Attaches the declared reply types with their Avro schemas, when they
/// have one (the same autoref probe as the payload's).
pub(crate) fn reply_glue(replies: &[syn::Type]) -> TokenStream {
    if replies.is_empty() {
        return TokenStream::new();
    }
    let names: Vec<String> = replies.iter().map(type_name).collect();
    quote! {
        .with_replies(::std::vec![#((
            #names,
            {
                #[allow(unused_imports)]
                use ::spine::__private::probe::{AvroReader as _, NoReader as _};
                (&&::spine::__private::probe::Probe::<#replies>::new()).reader_schema()
            },
        )),*])
        .with_reply_json_schemas(::std::vec![#((
            #names,
            {
                #[allow(unused_imports)]
                use ::spine::__private::probe::{JsonSchemaOf as _, NoJsonSchema as _};
                (&&::spine::__private::probe::Probe::<#replies>::new()).json_schema()
            },
        )),*])
    }
}

/// `Some("...")` or `None`.
pub(crate) fn opt_str(lit: &Option<syn::LitStr>) -> TokenStream {
    match lit {
        Some(l) => quote!(::core::option::Option::Some(#l)),
        None => quote!(::core::option::Option::None),
    }
}

/// `Some(Cow::Borrowed("..."))` or `None`.
fn opt_cow(lit: &Option<syn::LitStr>) -> TokenStream {
    match lit {
        Some(l) => quote!(::core::option::Option::Some(::std::borrow::Cow::Borrowed(#l))),
        None => quote!(::core::option::Option::None),
    }
}

/// The type as written, without the spaces `to_string` puts between tokens.
pub(crate) fn type_name(ty: &syn::Type) -> String {
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
