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
use super::parse::Publish;
use super::validate::{distinct_extractors, Flow, Param, Pipeline, Step};
use crate::common::{avro_check, codec_glue, handler_info, http_glue, reply_glue, type_name};

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

    let mut body = Vec::new();
    let mut links = Vec::new();
    let mut arg_params = Vec::new();
    for (k, s) in p.steps.iter().enumerate() {
        let step_str = s.ident.to_string();
        let mut args = vec![quote!(__spine_v)];
        for prm in &s.params {
            args.push(match prm {
                Param::Extractor(t) => {
                    let i = extractors.iter().position(|x| x == t).expect("collected");
                    uses_left[i] -= 1;
                    extractor_arg(&ext_idents[i], uses_left[i])
                }
                Param::Arg { name, ty } => {
                    arg_params.push(arg_param(&step_str, name, ty));
                    fixed_arg(&step_str, name, ty)
                }
            });
        }
        body.push(step_call(s, &step_str, &args));
        if let Some(publish) = &s.publish {
            body.push(publish_output(s, &step_str, publish));
        }
        match p.steps.get(k + 1) {
            Some(next) => {
                let (link_fn, link_call) = link(k, s, next);
                links.push(link_fn);
                body.push(link_call);
            }
            None => body.push(end(s)),
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
    let (http_checks, http) = http_glue(&args.on, payload_ty);

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
                #http_checks
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
                #http
            }
        }
    }
}

/// An extractor passed to a step: moved at its last use, cloned before.
fn extractor_arg(id: &syn::Ident, uses_left: usize) -> TokenStream {
    if uses_left == 0 {
        quote!(#id)
    } else {
        quote!(::core::clone::Clone::clone(&#id))
    }
}

/// An `#[arg]` value passed to a step, read from the pipeline's settings.
fn fixed_arg(step: &str, name: &syn::Ident, ty: &syn::Type) -> TokenStream {
    let name = name.to_string();
    quote_spanned! {ty.span()=>
        __spine_pipe.arg::<#ty>(#step, #name)?
    }
}

/// What `build()` checks of an `#[arg]`: it exists and converts into `ty`.
fn arg_param(step: &str, name: &syn::Ident, ty: &syn::Type) -> TokenStream {
    let name = name.to_string();
    let ty_str = type_name(ty);
    quote! {
        ::spine::__private::pipeline::ArgParam {
            step: #step,
            name: #name,
            ty: #ty_str,
            check: ::spine::__private::pipeline::check_arg::<#ty>,
        }
    }
}

/// Calls a step and goes on with its output as the step's flow says
/// (`Option`: `None` ends the message; `Result`: `Err` fails it, naming the step).
/// The arguments are evaluated first (an `#[arg]` may fail with `?`), then the
/// call runs inside the runtime's guard, which turns a panic into the step's
/// failure.
fn step_call(s: &Step, step_str: &str, args: &[TokenStream]) -> TokenStream {
    let step = &s.ident;
    let names: Vec<syn::Ident> = (0..args.len())
        .map(|i| format_ident!("__spine_a{}", i))
        .collect();
    let guarded = if s.is_async {
        quote!(::spine::__private::pipeline::guard(#step_str, #step(#(#names),*)).await?)
    } else {
        quote!(::spine::__private::pipeline::guard_sync(#step_str, move || #step(#(#names),*))?)
    };
    let call = quote!({
        #(let #names = #args;)*
        #guarded
    });
    let fail = |span: proc_macro2::Span| {
        quote_spanned! {span=>
            return ::core::result::Result::Err(
                ::spine::__private::pipeline::failed(#step_str, __spine_e)
            )
        }
    };
    match &s.flow {
        Flow::Plain => quote!(let __spine_v = #call;),
        // The call is a block, which may not end the expression of a `let ... else`.
        Flow::Option => quote! {
            let __spine_out = #call;
            let ::core::option::Option::Some(__spine_v) = __spine_out else {
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
    }
}

/// `#[publish]`: publishes the step's output and goes on. Spanned on the
/// output type, so a type that cannot be published is reported there.
fn publish_output(s: &Step, step_str: &str, publish: &Publish) -> TokenStream {
    let (topic, event, out_ty) = (&publish.topic, &publish.event, &s.output);
    quote_spanned! {out_ty.span()=>
        ::spine::__private::pipeline::publish(&__spine_pipe, #step_str, #topic, #event, &__spine_v).await?;
    }
}

/// The link from step `k` to the next: `fn(step k's output) -> next input`,
/// with the output written where step k's return type is and the input type
/// where the next step takes it, so that a mismatch is reported on both.
/// Returns the function and its call.
fn link(k: usize, s: &Step, next: &Step) -> (TokenStream, TokenStream) {
    let (out_ty, next_in) = (&s.output, &next.input);
    let link = format_ident!("__spine_link_{}", k);
    let value = quote_spanned!(out_ty.span()=> __spine_out);
    let link_fn = quote! {
        #[doc(hidden)]
        #[allow(dead_code, non_snake_case)]
        fn #link(__spine_out: #out_ty) -> #next_in {
            #value
        }
    };
    (link_fn, quote!(let __spine_v = #link(__spine_v);))
}

/// How the last step ends the pipeline: nothing more after publishing, or
/// its output as the handler's replies.
fn end(s: &Step) -> TokenStream {
    if s.publish.is_some() {
        quote! {
            let _ = __spine_v;
            ::core::result::Result::Ok(::std::vec::Vec::new())
        }
    } else {
        let out_ty = &s.output;
        quote_spanned! {out_ty.span()=>
            ::spine::__private::pipeline::end(__spine_v)
        }
    }
}
