//! [`Context`]: what a handler publishes with, beside its replies (emitted
//! events), and the [`EmitLog`] that makes the message wait for them.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::dispatch::extract::{FromRecord, Scope};
use crate::dispatch::Shared;
use crate::error::{FailureKind, HandlerError};
use crate::headers::set_content_type;
use crate::outbound::{cloud_event_headers, Delivery, Origin, OutRecord, SentKind};

/// Deliveries of the events a handler emitted, awaited before its offset commits.
#[derive(Default)]
pub(crate) struct EmitLog(Mutex<Vec<Delivery>>);

impl EmitLog {
    pub(crate) fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Publishes events from inside a handler.
///
/// Emitted events carry the incoming message's correlation id, and its `ce_id`
/// as their causation id. `emit` only queues the event: the message's offset is
/// committed after the broker acknowledges it, so an emitted event is never
/// lost, though it may be published twice if the app crashes in between.
#[derive(Clone)]
pub struct Context {
    pub(crate) shared: Arc<Shared>,
    pub(in crate::dispatch) origin: Arc<Origin>,
    emits: Arc<EmitLog>,
}

/// A [`Context::emit`] failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The payload could not be encoded for the topic.
    #[error("{0}")]
    Encode(String),
}

impl Context {
    /// Publishes event `event` to `topic`, keyed like the incoming message,
    /// encoded with the topic's codec (JSON unless the topic is Avro).
    pub async fn emit<T: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        payload: &T,
    ) -> Result<(), EmitError> {
        let key = self.origin.key.clone();
        self.emit_with_key(topic, event, key, payload).await
    }

    /// Publishes event `event` to `topic` with the given key.
    pub async fn emit_with_key<T: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        key: Option<Vec<u8>>,
        payload: &T,
    ) -> Result<(), EmitError> {
        let rec = self.event_record(topic, event, key, payload).await?;
        let delivery = self.shared.outbound.enqueue(rec);
        self.emits.0.lock().push(delivery);
        Ok(())
    }

    /// Encodes an event for `topic` with the topic's codec and this message's
    /// conversation headers.
    pub(in crate::dispatch) async fn event_record<T: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        key: Option<Vec<u8>>,
        payload: &T,
    ) -> Result<OutRecord, EmitError> {
        if let Some(codec) = self.shared.output_codecs.get(topic) {
            // Fetch the subject's schema once; a registry that is down fails
            // this attempt, which the handler's retry policy retries.
            codec
                .prepare_encode(topic, None)
                .await
                .map_err(|e| EmitError::Encode(e.into_failure(FailureKind::Encode).message))?;
        }
        let what = format!("event `{event}`");
        let (payload, content_type) = self
            .shared
            .encode_for(topic, &what, &payload, || serde_json::to_vec(payload), None)
            .map_err(|f| EmitError::Encode(f.message))?;
        let mut headers =
            cloud_event_headers(&self.shared.config.app.name, event, Some(&self.origin));
        set_content_type(&mut headers, content_type);
        Ok(OutRecord {
            kind: SentKind::Emit,
            topic: topic.to_owned(),
            key,
            payload: Some(payload),
            headers,
        })
    }

    /// Holds the message's offset until the returned sender fires (or
    /// forever, if it is dropped): the message leaves `max_in_flight` when its
    /// handler ends, but is not committed before.
    pub(crate) fn hold(&self) -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.emits.0.lock().push(Delivery::Held(rx));
        tx
    }

    /// The correlation id of the conversation this message belongs to.
    pub fn correlation_id(&self) -> &str {
        &self.origin.correlation
    }

    /// The app's name (`ce_source` of what it publishes).
    pub fn app_name(&self) -> &str {
        &self.shared.config.app.name
    }
}

impl FromRecord for Context {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        Ok(Context {
            shared: scope.shared.clone(),
            origin: Arc::new(Origin::of(scope.rec)),
            emits: scope.emit_log(),
        })
    }
}
