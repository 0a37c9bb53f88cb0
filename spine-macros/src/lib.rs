//! Procedural macros of Spine. Use them through the `spine` crate:
//! `use spine::prelude::*;` brings `#[on]` into scope.
//!
//! Each macro is a thin entry point; the work is split into parse → validate →
//! expand modules, as in tokio-macros.
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod on;

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
///
/// The function stays callable as written. Beside it, the macro emits a hidden
/// descriptor (its name, topic, event, payload type and location) that
/// `spine::handlers![...]` collects.
#[proc_macro_attribute]
pub fn on(args: TokenStream, item: TokenStream) -> TokenStream {
    on::on(args.into(), item.into()).into()
}
