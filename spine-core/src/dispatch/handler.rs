//! The [`Handler`] trait, implemented for every `async fn` whose first argument
//! is a payload and whose other arguments are extractors, and the
//! [`HandlerDescriptor`] that `#[on]` attaches to each handler.
//!
//! The typing lives here, in trait impls generated for each arity, as in axum:
//! the macro only names the function, it writes no dispatch logic.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::dispatch::extract::{FromRecord, Scope, States};
use crate::dispatch::unwind;
use crate::error::{Failure, HandlerError};
use crate::reply::{IntoReplies, Reply};

/// The future of one handler call, boxed so that handlers of any type share
/// one dispatch table.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<Reply>, HandlerError>> + Send>>;

/// An async function usable as a Spine handler.
///
/// `Args` is `(Payload, Extractor1, Extractor2, ...)`. You never implement this:
/// it holds for every `async fn(P, E1, .., En) -> R` (up to 8 extractors) where
/// `P: DeserializeOwned`, each `Ei: FromRecord` and `R: IntoReplies`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Spine handler",
    label = "not a handler",
    note = "a handler is `async fn name(payload: P, extractors...) -> R` where `P: serde::de::DeserializeOwned`, \
            the extractors are `Meta`, `Context`, `State<T>` or `Raw`, and `R` is `()`, `Reply`, `Vec<Reply>` or a `Result` of those"
)]
pub trait Handler<Args>: Clone + Send + Sync + Sized + 'static {
    /// The payload type, decoded before the call.
    type Payload: DeserializeOwned + Send + 'static;

    /// Builds the extractors and starts the call.
    fn call(
        &self,
        payload: Self::Payload,
        scope: &mut Scope<'_>,
    ) -> Result<HandlerFuture, HandlerError>;

    /// The first `State<T>` argument whose `T` is not registered.
    #[doc(hidden)]
    fn missing_state(states: &States) -> Option<&'static str>;
}

macro_rules! impl_handler {
    ($($E:ident),*) => {
        impl<F, Fut, R, P, $($E,)*> Handler<(P, $($E,)*)> for F
        where
            F: Fn(P, $($E,)*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoReplies,
            P: DeserializeOwned + Send + 'static,
            $($E: FromRecord,)*
        {
            type Payload = P;

            #[allow(non_snake_case, unused_variables)]
            fn call(&self, payload: P, scope: &mut Scope<'_>) -> Result<HandlerFuture, HandlerError> {
                $(let $E = $E::from_record(scope)?;)*
                let fut = (self)(payload, $($E,)*);
                Ok(Box::pin(unwind::Call::new(fut)))
            }

            #[allow(unused_variables)]
            fn missing_state(states: &States) -> Option<&'static str> {
                None $(.or_else(|| $E::missing_state(states)))*
            }
        }
    };
}

/// The most extractors a handler takes after its payload: the `Handler`
/// impls below go up to this many. A pipeline's own `Pipe` takes one of them,
/// which `#[pipeline]` checks through [`crate::dispatch::pipeline::check_extractors`].
pub const MAX_EXTRACTORS: usize = 8;

impl_handler!();
impl_handler!(E1);
impl_handler!(E1, E2);
impl_handler!(E1, E2, E3);
impl_handler!(E1, E2, E3, E4);
impl_handler!(E1, E2, E3, E4, E5);
impl_handler!(E1, E2, E3, E4, E5, E6);
impl_handler!(E1, E2, E3, E4, E5, E6, E7);
impl_handler!(E1, E2, E3, E4, E5, E6, E7, E8);

/// A handler with its types erased, as stored in the dispatch table.
pub(crate) trait ErasedHandler: Send + Sync {
    /// Decodes the payload, builds the extractors and starts the call.
    fn start(&self, scope: &mut Scope<'_>) -> Result<HandlerFuture, Failure>;
    fn missing_state(&self, states: &States) -> Option<&'static str>;
}

struct Erased<H, Args> {
    handler: H,
    _args: PhantomData<fn() -> Args>,
}

impl<H, Args> ErasedHandler for Erased<H, Args>
where
    H: Handler<Args>,
    Args: 'static,
{
    fn start(&self, scope: &mut Scope<'_>) -> Result<HandlerFuture, Failure> {
        // Decoding runs the payload type's `Deserialize`, and the call the
        // extractors and the user's function: any of them may panic.
        unwind::call(|| {
            let payload = decode_payload::<H::Payload>(scope)?;
            self.handler
                .call(payload, scope)
                .map_err(Failure::from_handler)
        })
        .unwrap_or_else(|e| Err(Failure::from_handler(e)))
    }

    fn missing_state(&self, states: &States) -> Option<&'static str> {
        H::missing_state(states)
    }
}

/// Decodes a message's payload: from the codec's value when the scope
/// holds one, else as JSON from the record.
pub(crate) fn decode_payload<P: DeserializeOwned + 'static>(
    scope: &mut Scope<'_>,
) -> Result<P, Failure> {
    match scope.decoded.take() {
        None => crate::codec::decode::<P>(scope.rec),
        Some(d) => crate::codec::from_decoded::<P>(d),
    }
}

/// A handler and everything known about it: what `#[on]` or `#[pipeline]`
/// wrote ([`HandlerInfo`], which the descriptor derefs to: `d.name`,
/// `d.topic`, ...), its payload type's schema and decoder, and its declared
/// replies. The one description of a handler: routing, `App::routes()`, the
/// `routes` command, AsyncAPI and `schemas export` all read it.
#[derive(Clone)]
pub struct HandlerDescriptor {
    /// What the macro wrote.
    pub info: HandlerInfo,
    /// The Avro schema of its payload type, when the type derives `AvroSchema`.
    pub reader_schema: Option<String>,
    /// Converts a codec's decoded value into the payload type.
    pub value_decoder: Option<crate::codec::ValueDecoder>,
    /// The reply types declared with `replies(...)`, with their Avro schemas.
    pub replies: Vec<(&'static str, Option<String>)>,
    /// What `#[on(http = ...)]` says about the handler's endpoint.
    pub http: Option<HttpAttr>,
    /// The payload type's JSON Schema, when it derives `JsonSchema` (and
    /// the `http` feature is on).
    pub json_schema: Option<JsonSchemaFn>,
    /// The JSON Schemas of the declared reply types, in `replies` order.
    pub reply_json_schemas: Vec<(&'static str, Option<JsonSchemaFn>)>,
    pub(crate) handler: Arc<dyn ErasedHandler>,
    /// Set when this handler is a `#[pipeline]`.
    pub(crate) pipeline: Option<Arc<crate::dispatch::pipeline::PipelineState>>,
    /// Set when this handler takes batches (`#[on(.., batch(..))]`).
    pub(crate) batch: Option<crate::dispatch::batch::BatchSpec>,
}

impl std::ops::Deref for HandlerDescriptor {
    type Target = HandlerInfo;

    fn deref(&self) -> &HandlerInfo {
        &self.info
    }
}

impl std::fmt::Debug for HandlerDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerDescriptor")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("event", &self.event)
            .field("payload", &self.payload)
            .field("location", &self.location())
            .field("fan_out", &self.fan_out)
            .finish()
    }
}

/// A type's JSON Schema (draft 2020-12, with its own `$defs`), as
/// `schemars` generates it.
pub type JsonSchemaFn = fn() -> serde_json::Value;

/// `#[on(http = "POST /orders")]`, or `http(route = .., namespace = ..,
/// summary = .., roles = [..], publish = false)`: the handler's endpoint as
/// its attribute declares it. `[http.endpoints.<handler>]` overrides each value.
#[derive(Debug, Clone, Default)]
pub struct HttpAttr {
    /// `"POST /orders"` or `"POST /orders/{key}"`.
    pub route: &'static str,
    /// Path prefix and OpenAPI tag.
    pub namespace: Option<&'static str>,
    /// One line for the OpenAPI document.
    pub summary: Option<&'static str>,
    /// A caller needs one of these roles.
    pub roles: &'static [&'static str],
    /// Whether replies are published to Kafka too; `None` means yes.
    pub publish: Option<bool>,
}

/// What `#[on]` (or `#[pipeline]`) writes about a handler. The macro writes
/// constants (`Cow::Borrowed`); handlers built at run time, such as an
/// aggregation's parts, own their names.
#[derive(Debug, Clone)]
pub struct HandlerInfo {
    /// The function's (or pipeline module's) name.
    pub name: Cow<'static, str>,
    /// The topic it listens to, or `None` for every subscribed topic.
    pub topic: Option<Cow<'static, str>>,
    /// The event it handles, or `None` for every event of its topic.
    pub event: Option<Cow<'static, str>>,
    /// The payload type, as written in the signature.
    pub payload: &'static str,
    /// Source file of the function.
    pub file: &'static str,
    /// Line of the function.
    pub line: u32,
    /// Whether it may share its (topic, event) key with other fan-out handlers.
    pub fan_out: bool,
    /// The codec it declares (`codec = "avro"`), if any.
    pub codec: Option<&'static str>,
}

impl HandlerDescriptor {
    /// Pairs a handler function with what `#[on]` says about it.
    #[doc(hidden)]
    pub fn new<H, Args>(handler: H, info: HandlerInfo) -> Self
    where
        H: Handler<Args>,
        Args: 'static,
    {
        HandlerDescriptor {
            info,
            reader_schema: None,
            value_decoder: None,
            replies: Vec::new(),
            http: None,
            json_schema: None,
            reply_json_schemas: Vec::new(),
            handler: Arc::new(Erased {
                handler,
                _args: PhantomData,
            }),
            pipeline: None,
            batch: None,
        }
    }

    /// Pairs a batch handler with what `#[on(.., batch(max, linger))]` says
    /// about it.
    #[doc(hidden)]
    pub fn batch<H, Args>(handler: H, info: HandlerInfo, max: usize, linger_ms: u64) -> Self
    where
        H: crate::dispatch::batch::BatchHandler<Args>,
        Args: 'static,
    {
        let erased = Arc::new(crate::dispatch::batch::ErasedBatchOf::new(handler));
        HandlerDescriptor {
            handler: erased.clone(),
            batch: Some(crate::dispatch::batch::BatchSpec {
                max: max.max(1),
                linger: std::time::Duration::from_millis(linger_ms),
                handler: erased,
            }),
            ..HandlerDescriptor::new(|_: serde_json::Value| async {}, info)
        }
    }

    /// For a batch handler, the most messages in a batch and how long its
    /// first message waits for more.
    pub fn batching(&self) -> Option<(usize, std::time::Duration)> {
        self.batch.as_ref().map(|b| (b.max, b.linger))
    }

    /// Marks the handler as a pipeline (written by `#[pipeline]`).
    #[doc(hidden)]
    #[must_use]
    pub fn with_pipeline(mut self, spec: crate::dispatch::pipeline::PipelineSpec) -> Self {
        self.pipeline = Some(Arc::new(crate::dispatch::pipeline::PipelineState::new(
            spec,
        )));
        self
    }

    /// Whether this handler is a `#[pipeline]`.
    pub fn is_pipeline(&self) -> bool {
        self.pipeline.is_some()
    }

    /// The steps of a pipeline, in order; empty for an `#[on]` handler.
    pub fn steps(&self) -> &[&'static str] {
        match &self.pipeline {
            Some(p) => &p.spec.steps,
            None => &[],
        }
    }

    /// The name shown in the dispatch table: `accept`, or `enrich [normalize → lookup]`.
    pub(crate) fn display_name(&self) -> String {
        match &self.pipeline {
            Some(p) => p.describe(),
            None => self.name.to_string(),
        }
    }

    /// Decodes the payload, builds the extractors and starts the call.
    pub(crate) fn start(&self, scope: &mut Scope<'_>) -> Result<HandlerFuture, Failure> {
        if self.pipeline.is_some() {
            scope.pipeline = self.pipeline.clone();
        }
        self.handler.start(scope)
    }

    /// Attaches the payload type's Avro schema (written by `#[on]`).
    #[doc(hidden)]
    #[must_use]
    pub fn with_reader_schema(mut self, schema: Option<String>) -> Self {
        self.reader_schema = schema;
        self
    }

    /// Attaches the declared reply types (written by `#[on(replies(...))]`).
    #[doc(hidden)]
    #[must_use]
    pub fn with_replies(mut self, replies: Vec<(&'static str, Option<String>)>) -> Self {
        self.replies = replies;
        self
    }

    /// Attaches the endpoint declared by `#[on(http = ...)]`.
    #[doc(hidden)]
    #[must_use]
    pub fn with_http(mut self, http: HttpAttr) -> Self {
        self.http = Some(http);
        self
    }

    /// Attaches the payload type's JSON Schema (written by `#[on]`).
    #[doc(hidden)]
    #[must_use]
    pub fn with_json_schema(mut self, schema: Option<JsonSchemaFn>) -> Self {
        self.json_schema = schema;
        self
    }

    /// Attaches the declared reply types' JSON Schemas (written by `#[on]`).
    #[doc(hidden)]
    #[must_use]
    pub fn with_reply_json_schemas(
        mut self,
        schemas: Vec<(&'static str, Option<JsonSchemaFn>)>,
    ) -> Self {
        self.reply_json_schemas = schemas;
        self
    }

    /// Attaches the converter from a codec's decoded value (written by `#[on]`).
    #[doc(hidden)]
    #[must_use]
    pub fn with_value_decoder(mut self, decoder: crate::codec::ValueDecoder) -> Self {
        self.value_decoder = Some(decoder);
        self
    }

    /// `file:line` of the handler.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Implemented by the hidden item `#[on]` emits beside each handler, so that
/// `handlers![accept]` finds the descriptor of `accept`.
#[doc(hidden)]
pub trait Describe {
    fn descriptor() -> HandlerDescriptor;
}

/// Compile-time checks emitted by `#[on]` on the user's own tokens, so that a
/// wrong signature is reported where it is written.
#[doc(hidden)]
pub mod assert {
    use super::*;

    pub fn payload<T: DeserializeOwned + Send + 'static>() {}
    pub fn batch_extractor<T: crate::dispatch::batch::FromBatch>() {}
    pub fn extractor<T: FromRecord>() {}
    pub fn returns<T: IntoReplies>() {}
}

#[cfg(test)]
mod limit {
    use super::*;
    use crate::dispatch::extract::Meta;

    fn handler<Args, H: Handler<Args>>(_: H) {}

    /// `MAX_EXTRACTORS` is what the `impl_handler!` lines above provide.
    #[test]
    fn the_extractor_limit_is_what_the_impls_take() {
        #[allow(clippy::too_many_arguments)]
        async fn most(
            _p: serde_json::Value,
            _m1: Meta,
            _m2: Meta,
            _m3: Meta,
            _m4: Meta,
            _m5: Meta,
            _m6: Meta,
            _m7: Meta,
            _m8: Meta,
        ) {
        }
        handler(most);
        assert_eq!(MAX_EXTRACTORS, 8, "one `Meta` per extractor slot above");
    }
}
