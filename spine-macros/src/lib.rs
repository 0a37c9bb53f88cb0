//! Procedural macros of Spine. Use them through the `spine` crate:
//! `use spine::prelude::*;` brings `#[on]` into scope.
//!
//! Each macro is a thin entry point; the work is split into parse → validate →
//! expand modules, as in tokio-macros. One attribute parser (`attr`) reads
//! every attribute and refuses unknown and repeated keys alike; one error
//! collector (`ctxt`, after serde's `Ctxt`) gathers every mistake, and the
//! user's item is always re-emitted beside them.
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod attr;
mod common;
mod ctxt;
mod on;
mod pipeline;
mod route;

/// Declares an event handler.
///
/// ```text
/// #[on(event = "order.placed", topic = "orders")]
/// async fn accept(order: OrderPlaced, meta: Meta) -> Result<Reply, HandlerError> { ... }
/// ```
///
/// Keys, all optional:
/// - `topic = "..."`: the topic to listen to. Without it, the handler listens to
///   every subscribed topic.
/// - `event = "..."`: the event name to handle. Without it, the handler takes
///   every event of its topic that no more specific handler takes.
/// - `fan_out`: allow other `fan_out` handlers on the same (topic, event).
/// - `codec = "name"`: the topic's codec, checked against the installed ones
///   at `build()`: `"avro"` (the payload type must then derive `AvroSchema`),
///   `"json"`, or one registered with `Builder::codec`.
/// - `replies(Type, ...)`: the types it replies with, for `schemas export`
///   (replies are type-erased at run time, so only declared ones are known).
/// - `http = "POST /orders"`: also serve the handler over HTTP (`[http]
///   listen`), with its payload and replies in the OpenAPI document; the
///   payload type (and each `replies` type) must derive `JsonSchema`. The
///   long form is `http(route = "POST /orders/{key}", namespace = "shop",
///   summary = "...", roles = ["orders.write"], publish = false)`.
///
/// The function stays callable as written. Beside it, the macro emits a hidden
/// descriptor (its name, topic, event, payload type and location) that
/// `spine::handlers![...]` collects.
#[proc_macro_attribute]
pub fn on(args: TokenStream, item: TokenStream) -> TokenStream {
    on::on(args.into(), item.into()).into()
}

/// Declares a pipeline: an inline module whose fns are the steps, run in the
/// order written, each taking the previous step's output.
///
/// ```text
/// #[pipeline(event = "text.submitted", topic = "texts", max_concurrent = 8, args(max_len = 280))]
/// mod enrich {
///     use super::*;
///
///     pub fn normalize(text: Submitted, #[arg] max_len: usize) -> Option<String> { .. }
///     pub async fn lookup(text: String, ctx: Context) -> Result<Enriched, HandlerError> { .. }
///     #[publish(topic = "texts.enriched", event = "text.enriched")]
///     pub fn finish(e: Enriched) -> Published { .. }
/// }
/// ```
///
/// Keys: those of `#[on]` (`event`, `topic`, `codec`, `fan_out`), plus
/// `max_concurrent = N` (messages this pipeline handles at once) and
/// `args(name = literal, ...)` (values of the steps' `#[arg]` parameters;
/// `[pipelines.<name>.args]` in spine.toml overrides them).
///
/// A step is a sync or async fn. Its first argument is its input; the others
/// are extractors (`Meta`, `Context`, `State<T>`, ...) or `#[arg]` values.
/// It returns `T` (go on), `Option<T>` (`None` ends the pipeline, the message
/// counts as handled), `Result<T, E>` (`Err` fails the message: retries, then
/// the dead-letter topic, whose record names the step) or `Result<Option<T>, E>`.
/// `#[publish(topic, event)]` publishes a step's output and goes on. The last
/// step returns what a handler may (`()`, `Reply`, ...) unless it publishes.
///
/// The steps stay plain functions, callable and testable as written. Register
/// the pipeline like a handler: `spine::handlers![enrich]`.
#[proc_macro_attribute]
pub fn pipeline(args: TokenStream, item: TokenStream) -> TokenStream {
    pipeline::pipeline(args.into(), item.into()).into()
}
