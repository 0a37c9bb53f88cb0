//! A message whose sender waits for its outcome: how the HTTP endpoints
//! dispatch a request. The record goes through the table's route, the
//! handler's decoding and extractors, the middleware, the metrics (labelled
//! `transport`) and the message span, as a consumed record does. What
//! differs is the end: there are no retries and no dead letters, because the
//! caller is there to be told and decides whether to try again.

use std::sync::Arc;

use rdkafka::message::OwnedMessage;

use crate::dispatch::extract::Scope;
use crate::dispatch::{message_span, Shared};
use crate::error::{Failure, FailureKind};
use crate::metrics as m;
use crate::middleware::Outcome;
use crate::outbound::{Delivery, Origin};
use crate::record::Record;
use tracing::Instrument;

/// One reply, as the caller is shown it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ShownReply {
    pub(crate) topic: String,
    pub(crate) event: String,
    pub(crate) key: Option<String>,
    pub(crate) payload: serde_json::Value,
}

/// Why a direct message was not handled: the failure and the handler it
/// came from.
pub(crate) struct DirectFailure {
    pub(crate) failure: Failure,
    pub(crate) handler: Option<String>,
}

impl Shared {
    /// Handles `msg` (of the table's topic `topic_idx`, event `event`) once
    /// and returns its replies. With `publish`, the replies are produced too,
    /// and this returns once the broker has acknowledged them and the events
    /// the handler emitted. `transport` labels the metrics.
    pub(crate) async fn handle_direct(
        self: &Arc<Self>,
        msg: OwnedMessage,
        topic_idx: usize,
        event: Option<&str>,
        publish: bool,
        transport: &'static str,
    ) -> Result<Vec<ShownReply>, DirectFailure> {
        let rec = Record::owned(&msg);
        let topic = self.table.topic(topic_idx);
        let route = topic.route(event);
        let span = message_span(&rec, topic, event, route);
        span.record("transport", transport);
        async {
            let labels = [
                ("topic", topic.topic.to_string()),
                ("transport", transport.to_owned()),
            ];
            metrics::counter!(m::CONSUMED, &labels).increment(1);
            self.before(&rec, topic, event, route);
            let Some(route) = route else {
                let failure = Failure::new(
                    FailureKind::UnknownEvent,
                    format!(
                        "no handler for event `{}` on topic `{}`",
                        event.unwrap_or("-"),
                        topic.topic
                    ),
                );
                return Err(self.direct_failed(&rec, event, None, failure, transport));
            };
            let mut replies = Vec::new();
            let mut deliveries: Vec<Delivery> = Vec::new();
            for h in route.handlers.iter() {
                let started = quanta::Instant::now();
                // The body is JSON whatever the topic's codec: the handler
                // decodes it itself (`decoded` stays `None`).
                let mut scope = Scope::new(&rec, topic, event, self);
                let call = h.start(&mut scope);
                let emits = scope.emits.take();
                drop(scope);
                let result = match call {
                    Ok(fut) => fut.await.map_err(Failure::from_handler),
                    Err(f) => Err(f),
                };
                if let Some(emits) = emits {
                    deliveries.extend(emits.take());
                }
                metrics::histogram!(
                    m::HANDLER_DURATION,
                    "topic" => topic.topic.to_string(),
                    "event" => event.unwrap_or_default().to_owned(),
                    "handler" => h.name.to_string(),
                    "transport" => transport
                )
                .record(started.elapsed());
                match result {
                    Ok(r) => replies.extend(r),
                    Err(failure) => {
                        // What it emitted before failing still goes out, as
                        // on the Kafka path; the caller is told it failed.
                        let _ = self.outbound.settle(deliveries).await;
                        let name = Some(h.name.to_string());
                        return Err(self.direct_failed(&rec, event, name, failure, transport));
                    }
                }
            }
            let origin = Origin::of(&rec);
            let mut shown = Vec::with_capacity(replies.len());
            for reply in replies {
                shown.push(show(&reply, origin.key.as_deref()));
                if publish {
                    match self.encode_reply(&origin, reply) {
                        Ok(out) => deliveries.push(self.outbound.enqueue(out)),
                        Err(failure) => {
                            let _ = self.outbound.settle(deliveries).await;
                            return Err(self.direct_failed(&rec, event, None, failure, transport));
                        }
                    }
                }
            }
            let settled = self.outbound.settle(deliveries).await;
            if let Some(refused) = settled.refused {
                let failure = Failure::new(
                    FailureKind::Publish,
                    format!(
                        "the broker refused {} to `{}` for good: {}",
                        refused.kind.describe(),
                        refused.topic,
                        refused.error
                    ),
                );
                return Err(self.direct_failed(&rec, event, None, failure, transport));
            }
            metrics::counter!(m::HANDLED, &labels).increment(1);
            if !self.middleware.is_empty() {
                let info = Self::info(&rec, event, None);
                self.after(
                    &info,
                    &Outcome::Handled {
                        replies: shown.len(),
                    },
                );
            }
            Ok(shown)
        }
        .instrument(span.clone())
        .await
    }

    /// Counts, logs and reports a direct message that failed.
    fn direct_failed(
        &self,
        rec: &Record<'_>,
        event: Option<&str>,
        handler: Option<String>,
        failure: Failure,
        transport: &'static str,
    ) -> DirectFailure {
        metrics::counter!(
            m::FAILED,
            "topic" => rec.topic.to_owned(),
            "kind" => failure.kind.as_str(),
            "transport" => transport
        )
        .increment(1);
        if !self.middleware.is_empty() {
            let info = Self::info(rec, event, handler.as_deref());
            self.after(
                &info,
                &Outcome::Refused {
                    kind: failure.kind,
                    error: &failure.message,
                },
            );
        }
        DirectFailure { failure, handler }
    }
}

/// The reply as JSON for the caller, whatever its topic's codec.
fn show(reply: &crate::reply::Reply, origin_key: Option<&[u8]>) -> ShownReply {
    let payload = reply
        .body
        .to_json()
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    ShownReply {
        topic: reply.topic.clone(),
        event: reply.event.clone(),
        key: reply
            .key
            .as_deref()
            .or(origin_key)
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        payload,
    }
}
