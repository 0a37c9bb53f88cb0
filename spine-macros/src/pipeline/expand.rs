//! Emits the user's module with its steps unchanged (helper attributes
//! removed), plus, inside it: the pipeline's handler (`__spine_run`, an
//! `async fn` calling the steps in order), one link function per pair of
//! steps (whose type error, if the types disagree, points at both steps), and
//! `__spine_descriptor`, which `spine::handlers![...]` calls.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemMod;

use super::parse::PipelineArgs;
use super::validate::{distinct_extractors, Flow, Param, Pipeline};
use crate::common::{avro_check, codec_glue, handler_info, reply_glue, type_name};

pub(crate) fn expand(stripped: &ItemMod, args: &PipelineArgs, p: &Pipeline) -> TokenStream {
    let name = &stripped.ident;
    let name_str = name.to_string();
    let first = &p.steps[0];
    let payload_ty = &first.input;
    let extractors = distinct_extractors(&p.steps);
    let ext_idents: Vec<_> = (0..extractors.len())
        .map(|i| format_ident!("__spine_e{}", i))
        .collect();
    // How many times each extractor is used, so the last use moves it.
    let mut uses_left: Vec<usize> = extractors
        .iter()
        .map(|t| {
            p.steps
                .iter()
                .flat_map(|s| &s.params)
                .filter(|prm| matches!(prm, Param::Extractor(x) if x == t))
                .count()
        })
        .collect();

    let n = p.steps.len();
    let mut body = Vec::new();
    let mut links = Vec::new();
    let mut arg_params = Vec::new();
    for (k, s) in p.steps.iter().enumerate() {
        let step = &s.ident;
        let step_str = step.to_string();
        let mut call_args = vec![quote!(__spine_v)];
        for prm in &s.params {
            match prm {
                Param::Extractor(t) => {
                    let i = extractors.iter().position(|x| x == t).expect("collected");
                    let id = &ext_idents[i];
                    uses_left[i] -= 1;
                    call_args.push(if uses_left[i] == 0 {
                        quote!(#id)
                    } else {
                        quote!(::core::clone::Clone::clone(&#id))
                    });
                }
                Param::Arg { name: arg, ty } => {
                    let arg_str = arg.to_string();
                    let ty_str = type_name(ty);
                    call_args.push(quote_spanned! {ty.span()=>
                        __spine_pipe.arg::<#ty>(#step_str, #arg_str)?
                    });
                    arg_params.push(quote! {
                        ::spine::__private::pipeline::ArgParam {
                            step: #step_str,
                            name: #arg_str,
                            ty: #ty_str,
                            check: ::spine::__private::pipeline::check_arg::<#ty>,
                        }
                    });
                }
            }
        }
        let call = if s.is_async {
            quote!(#step(#(#call_args),*).await)
        } else {
            quote!(#step(#(#call_args),*))
        };
        let fail = |span: proc_macro2::Span| {
            quote_spanned! {span=>
                return ::core::result::Result::Err(
                    ::spine::__private::pipeline::failed(#step_str, __spine_e)
                )
            }
        };
        body.push(match &s.flow {
            Flow::Plain => quote!(let __spine_v = #call;),
            Flow::Option => quote! {
                let ::core::option::Option::Some(__spine_v) = #call else {
                    return ::core::result::Result::Ok(::std::vec::Vec::new());
                };
            },
            Flow::Result(span) => {
                let fail = fail(*span);
                quote! {
                    let __spine_v = match #call {
                        ::core::result::Result::Ok(v) => v,
                        ::core::result::Result::Err(__spine_e) => { #fail }
                    };
                }
            }
            Flow::ResultOption(span) => {
                let fail = fail(*span);
                quote! {
                    let __spine_v = match #call {
                        ::core::result::Result::Ok(::core::option::Option::Some(v)) => v,
                        ::core::result::Result::Ok(::core::option::Option::None) => {
                            return ::core::result::Result::Ok(::std::vec::Vec::new());
                        }
                        ::core::result::Result::Err(__spine_e) => { #fail }
                    };
                }
            }
        });
        let out_ty = &s.output;
        if let Some(publish) = &s.publish {
            let (topic, event) = (&publish.topic, &publish.event);
            // Spanned on the output type: a type that cannot be published
            // is reported there.
            body.push(quote_spanned! {out_ty.span()=>
                ::spine::__private::pipeline::publish(&__spine_pipe, #step_str, #topic, #event, &__spine_v).await?;
            });
        }
        if k + 1 < n {
            // The link: `fn(previous step's output) -> next step's input`,
            // with the output written where the previous step's return type
            // is and the input type where the next step takes it, so that a
            // mismatch is reported on both.
            let next_in = &p.steps[k + 1].input;
            let link = format_ident!("__spine_link_{}", k);
            let value = quote_spanned!(out_ty.span()=> __spine_out);
            links.push(quote! {
                #[doc(hidden)]
                #[allow(dead_code, non_snake_case)]
                fn #link(__spine_out: #out_ty) -> #next_in {
                    #value
                }
            });
            body.push(quote!(let __spine_v = #link(__spine_v);));
        } else if s.publish.is_some() {
            body.push(quote! {
                let _ = __spine_v;
                ::core::result::Result::Ok(::std::vec::Vec::new())
            });
        } else {
            body.push(quote_spanned! {out_ty.span()=>
                ::spine::__private::pipeline::end(__spine_v)
            });
        }
    }

    let ext_params = ext_idents
        .iter()
        .zip(&extractors)
        .map(|(id, ty)| quote!(#id: #ty));
    let ext_checks = extractors.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            ::spine::__private::assert::extractor::<#ty>();
        }
    });
    // The extractor limit lives with spine's `Handler` impls: checked there,
    // at compile time, on the last extractor's tokens.
    let count = extractors.len();
    let count_check = match extractors.last() {
        Some(last) => quote_spanned! {last.span()=>
            const _: () = ::spine::__private::pipeline::check_extractors(#count);
        },
        None => TokenStream::new(),
    };
    let payload_check = quote_spanned! {payload_ty.span()=>
        ::spine::__private::assert::payload::<#payload_ty>();
    };
    let steps_str = p.steps.iter().map(|s| s.ident.to_string());
    let max_concurrent = match &args.max_concurrent {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let fixed = args.args.iter().map(|(k, json)| {
        let k = k.to_string();
        quote!((#k, #json))
    });
    let glue = codec_glue(payload_ty);
    let avro_check = avro_check(&args.on, payload_ty);
    let info = handler_info(name, &args.on, payload_ty);
    let replies = reply_glue(&args.on.replies);

    let attrs = &stripped.attrs;
    let vis = &stripped.vis;
    let unsafety = &stripped.unsafety;
    let items = &stripped
        .content
        .as_ref()
        .expect("validated: the module is inline")
        .1;
    quote! {
        #(#attrs)*
        #vis #unsafety mod #name {
            #(#items)*

            #[doc(hidden)]
            #[allow(clippy::all, unused_variables)]
            async fn __spine_run(
                __spine_v: #payload_ty,
                __spine_pipe: ::spine::__private::pipeline::Pipe,
                #(#ext_params),*
            ) -> ::core::result::Result<
                ::std::vec::Vec<::spine::__private::Reply>,
                ::spine::__private::HandlerError,
            > {
                let __spine_permit = __spine_pipe.enter().await;
                #(#body)*
            }

            #(#links)*

            #count_check

            /// What `spine::handlers![...]` calls.
            #[doc(hidden)]
            #[allow(dead_code)]
            pub fn __spine_descriptor() -> ::spine::__private::HandlerDescriptor {
                #payload_check
                #(#ext_checks)*
                #avro_check
                ::spine::__private::HandlerDescriptor::new(__spine_run, #info)
                .with_pipeline(::spine::__private::pipeline::PipelineSpec {
                    name: #name_str,
                    steps: ::std::vec![#(#steps_str),*],
                    max_concurrent: #max_concurrent,
                    args: ::std::vec![#(#fixed),*],
                    params: ::std::vec![#(#arg_params),*],
                })
                #glue
                #replies
            }
        }
    }
}
