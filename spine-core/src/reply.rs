//! Replies: the events a handler returns, and [`IntoReplies`], the trait that
//! decides which return types a handler may have.

use std::fmt;

use serde::Serialize;

use crate::error::HandlerError;

/// An event a handler returns, published after the handler finishes with the
/// `ce_*` headers of the incoming message's conversation.
///
/// ```
/// use spine_kafka_core::Reply;
/// #[derive(serde::Serialize)]
/// struct Accepted { order_id: String, accepted: bool }
///
/// let reply = Reply::to("orders.accepted", "order.accepted", Accepted { order_id: "o-1".into(), accepted: true })
///     .with_key("o-1");
/// assert_eq!(reply.topic(), "orders.accepted");
/// assert_eq!(reply.event(), "order.accepted");
/// ```
pub struct Reply {
    pub(crate) topic: String,
    pub(crate) event: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Box<dyn Body>,
    /// The payload type's own schema (Avro), when the caller supplied it.
    pub(crate) schema: Option<String>,
    /// A response to a request: its topic is the request's `spine.reply.to`.
    pub(crate) respond: bool,
}

/// The response to a request made with [`crate::Context::request`]: published
/// to the topic the request names in its `spine.reply.to` header, carrying
/// the request's id back so the requester can match it.
///
/// ```
/// use spine_kafka_core::{respond, Reply};
///
/// #[derive(serde::Deserialize)]
/// struct PriceRequested { sku: String }
/// #[derive(serde::Serialize)]
/// struct Price { sku: String, cents: i64 }
///
/// async fn price(req: PriceRequested) -> Reply {
///     respond("price.quoted", Price { sku: req.sku, cents: 499 })
/// }
/// ```
///
/// A message that is not a request (no `spine.reply.to` header) cannot be
/// answered: it goes to the dead-letter topic, saying so.
pub fn respond<T>(event: impl Into<String>, payload: T) -> Reply
where
    T: Serialize + Send + 'static,
{
    Reply {
        respond: true,
        ..Reply::to(String::new(), event, payload)
    }
}

impl Reply {
    /// A reply with event name `event` on `topic`. The key defaults to the
    /// incoming message's key, so replies about one entity stay in order.
    pub fn to<T>(topic: impl Into<String>, event: impl Into<String>, payload: T) -> Reply
    where
        T: Serialize + Send + 'static,
    {
        Reply {
            topic: topic.into(),
            event: event.into(),
            key: None,
            headers: Vec::new(),
            body: Box::new(payload),
            schema: None,
            respond: false,
        }
    }

    /// Attaches the payload's schema (as JSON text), for codecs that need it:
    /// Avro's record-name subject strategies and `auto_register`.
    /// `spine::avro::reply` does this from the type's `AvroSchema`.
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Reply {
        self.schema = Some(schema.into());
        self
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Reply {
        self.key = Some(key.into());
        self
    }

    /// Adds a header beside the `ce_*` ones.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The destination topic (empty for a [`respond`] reply until it is sent).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The event name (`ce_type`).
    pub fn event(&self) -> &str {
        &self.event
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("topic", &self.topic)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

/// A payload kept typed until the codec of its topic encodes it.
pub(crate) trait Body: Send {
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
    fn erased(&self) -> &dyn erased_serde::Serialize;
}

impl<T: Serialize + Send> Body for T {
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
    fn erased(&self) -> &dyn erased_serde::Serialize {
        self
    }
}

/// What a handler may return: `()`, [`Reply`], `Option<Reply>`, `Vec<Reply>`,
/// or a `Result` of those whose error converts into [`HandlerError`].
#[diagnostic::on_unimplemented(
    message = "a Spine handler cannot return `{Self}`",
    label = "this return type cannot become replies",
    note = "return `()`, `Reply`, `Option<Reply>`, `Vec<Reply>`, or `Result<_, E>` of one of those, \
            where `E` converts into `spine::HandlerError` (any `std::error::Error + Send + Sync` does)"
)]
pub trait IntoReplies: Send + 'static {
    /// Converts the handler's output.
    fn into_replies(self) -> Result<Vec<Reply>, HandlerError>;
}

impl IntoReplies for () {
    fn into_replies(self) -> Result<Vec<Reply>, HandlerError> {
        Ok(Vec::new())
    }
}

impl IntoReplies for Reply {
    fn into_replies(self) -> Result<Vec<Reply>, HandlerError> {
        Ok(vec![self])
    }
}

impl IntoReplies for Option<Reply> {
    fn into_replies(self) -> Result<Vec<Reply>, HandlerError> {
        Ok(self.into_iter().collect())
    }
}

impl IntoReplies for Vec<Reply> {
    fn into_replies(self) -> Result<Vec<Reply>, HandlerError> {
        Ok(self)
    }
}

impl<T, E> IntoReplies for Result<T, E>
where
    T: IntoReplies,
    E: Into<HandlerError> + Send + 'static,
{
    fn into_replies(self) -> Result<Vec<Reply>, HandlerError> {
        self.map_err(Into::into).and_then(IntoReplies::into_replies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_return_shape_converts() {
        assert!(().into_replies().unwrap().is_empty());
        let r = Reply::to("t", "e", 1u8);
        assert_eq!(r.into_replies().unwrap().len(), 1);
        assert_eq!(None::<Reply>.into_replies().unwrap().len(), 0);
        let v = vec![Reply::to("t", "a", 1u8), Reply::to("t", "b", 2u8)];
        assert_eq!(v.into_replies().unwrap().len(), 2);
        let ok: Result<Reply, HandlerError> = Ok(Reply::to("t", "e", "x"));
        assert_eq!(
            ok.into_replies().unwrap()[0].body.to_json().unwrap(),
            b"\"x\""
        );
        let err: Result<(), std::io::Error> = Err(std::io::Error::other("disk"));
        assert_eq!(err.into_replies().unwrap_err().to_string(), "disk");
    }
}
