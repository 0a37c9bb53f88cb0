//! Batch handlers: `#[on(topic = "orders", batch(max = 500, linger = "20ms"))]
//! async fn save(orders: Vec<OrderPlaced>, metas: Vec<Meta>)`.
//!
//! This module owns the typing ([`BatchHandler`], implemented for each arity
//! as [`crate::dispatch::handler::Handler`] is, and the [`FromBatch`]
//! extractors) and running one batch: decode each message, call the handler
//! once with every message that decoded, retry the batch as a unit, then end
//! each message on its own (handled, or dead-lettered with the batch's
//! error). Gathering the batches is the consumer loop's (`consumer::batcher`).

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::OwnedMessage;
use serde::de::DeserializeOwned;

use crate::dispatch::extract::{FromRecord, Meta, Raw, Scope, State, States};
use crate::dispatch::handler::{ErasedHandler, HandlerFuture};
use crate::dispatch::outcome::HandlerFailure;
use crate::dispatch::{unwind, MessageOutcome, Shared, Unsettled};
use crate::error::{Failure, FailureKind, HandlerError};
use crate::record::Record;
use crate::reply::IntoReplies;

/// A handler argument built from a whole batch.
///
/// `Vec<Meta>` and `Vec<Raw>` hold one entry per payload, in the same order;
/// `State<T>` is the app's state, as for a one-message handler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a batch handler argument",
    label = "not a batch extractor",
    note = "after the payloads (`Vec<T>`, the first argument), a batch handler takes only \
            `Vec<Meta>`, `Vec<Raw>` or `State<T>`: one `Meta` per payload, in the same order",
    note = "`Context` is for one-message handlers: a batch handler returns its replies instead"
)]
pub trait FromBatch: Sized + Send + 'static {
    /// Builds the argument; `scopes` holds one scope per payload, in order.
    fn from_batch(scopes: &mut [Scope<'_>]) -> Result<Self, HandlerError>;

    /// Checked once at startup; returns the name of missing state.
    #[doc(hidden)]
    fn missing_state(_states: &States) -> Option<&'static str> {
        None
    }
}

impl FromBatch for Vec<Meta> {
    fn from_batch(scopes: &mut [Scope<'_>]) -> Result<Self, HandlerError> {
        scopes.iter_mut().map(Meta::from_record).collect()
    }
}

impl FromBatch for Vec<Raw> {
    fn from_batch(scopes: &mut [Scope<'_>]) -> Result<Self, HandlerError> {
        scopes.iter_mut().map(Raw::from_record).collect()
    }
}

impl<T: Send + Sync + 'static> FromBatch for State<T> {
    fn from_batch(scopes: &mut [Scope<'_>]) -> Result<Self, HandlerError> {
        match scopes.first_mut() {
            Some(s) => State::from_record(s),
            None => Err(HandlerError::msg("an empty batch has no state").fatal()),
        }
    }

    fn missing_state(states: &States) -> Option<&'static str> {
        <State<T> as FromRecord>::missing_state(states)
    }
}

/// An async function usable as a batch handler: `async fn(Vec<P>, E1, ..,
/// En) -> R` (up to 4 extractors) where `P: DeserializeOwned`, each
/// `Ei: FromBatch` and `R: IntoReplies`. You never implement it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Spine batch handler",
    label = "not a batch handler",
    note = "a batch handler is `async fn name(payloads: Vec<P>, metas: Vec<Meta>, ...) -> R` where \
            `P: serde::de::DeserializeOwned`, the other arguments are `Vec<Meta>`, `Vec<Raw>` or \
            `State<T>`, and `R` is `()`, `Reply`, `Vec<Reply>` or a `Result` of those"
)]
pub trait BatchHandler<Args>: Clone + Send + Sync + Sized + 'static {
    /// The type of one message's payload.
    type Payload: DeserializeOwned + Send + 'static;

    /// Builds the extractors and starts the call.
    fn call(
        &self,
        payloads: Vec<Self::Payload>,
        scopes: &mut [Scope<'_>],
    ) -> Result<HandlerFuture, HandlerError>;

    /// The first `State<T>` argument whose `T` is not registered.
    #[doc(hidden)]
    fn missing_state(states: &States) -> Option<&'static str>;
}

macro_rules! impl_batch_handler {
    ($($E:ident),*) => {
        impl<F, Fut, R, P, $($E,)*> BatchHandler<(Vec<P>, $($E,)*)> for F
        where
            F: Fn(Vec<P>, $($E,)*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoReplies,
            P: DeserializeOwned + Send + 'static,
            $($E: FromBatch,)*
        {
            type Payload = P;

            #[allow(non_snake_case, unused_variables)]
            fn call(&self, payloads: Vec<P>, scopes: &mut [Scope<'_>]) -> Result<HandlerFuture, HandlerError> {
                $(let $E = $E::from_batch(scopes)?;)*
                let fut = (self)(payloads, $($E,)*);
                Ok(Box::pin(unwind::Call::new(fut)))
            }

            #[allow(unused_variables)]
            fn missing_state(states: &States) -> Option<&'static str> {
                None $(.or_else(|| $E::missing_state(states)))*
            }
        }
    };
}

impl_batch_handler!();
impl_batch_handler!(E1);
impl_batch_handler!(E1, E2);
impl_batch_handler!(E1, E2, E3);
impl_batch_handler!(E1, E2, E3, E4);

/// How `batch(max = .., linger = ..)` gathers a handler's batches.
#[derive(Clone)]
pub(crate) struct BatchSpec {
    /// The most messages in one batch.
    pub(crate) max: usize,
    /// How long the first message of a batch waits for more.
    pub(crate) linger: Duration,
    pub(crate) handler: Arc<dyn ErasedBatch>,
}

/// A batch handler with its types erased.
pub(crate) trait ErasedBatch: Send + Sync {
    /// Decodes one message's payload (`scope.decoded` holds a codec's value).
    fn decode(&self, scope: &mut Scope<'_>) -> Result<Box<dyn Any + Send>, Failure>;
    /// Starts the call on payloads `decode` returned, one scope each.
    fn call(
        &self,
        payloads: Vec<Box<dyn Any + Send>>,
        scopes: &mut [Scope<'_>],
    ) -> Result<HandlerFuture, Failure>;
}

pub(crate) struct ErasedBatchOf<H, Args> {
    handler: H,
    _args: PhantomData<fn() -> Args>,
}

impl<H, Args> ErasedBatchOf<H, Args> {
    pub(crate) fn new(handler: H) -> Self {
        ErasedBatchOf {
            handler,
            _args: PhantomData,
        }
    }
}

impl<H, Args> ErasedBatch for ErasedBatchOf<H, Args>
where
    H: BatchHandler<Args>,
    Args: 'static,
{
    fn decode(&self, scope: &mut Scope<'_>) -> Result<Box<dyn Any + Send>, Failure> {
        // The payload type's `Deserialize` may panic.
        unwind::call(|| {
            crate::dispatch::handler::decode_payload::<H::Payload>(scope)
                .map(|p| Box::new(p) as Box<dyn Any + Send>)
        })
        .unwrap_or_else(|e| Err(Failure::from_handler(e)))
    }

    fn call(
        &self,
        payloads: Vec<Box<dyn Any + Send>>,
        scopes: &mut [Scope<'_>],
    ) -> Result<HandlerFuture, Failure> {
        let payloads = payloads
            .into_iter()
            .map(|p| {
                *p.downcast::<H::Payload>()
                    .expect("decode() boxed this handler's payload type")
            })
            .collect();
        unwind::call(|| self.handler.call(payloads, scopes))
            .and_then(|r| r)
            .map_err(Failure::from_handler)
    }
}

/// The one-message side of a batch handler's descriptor: a batch handler's
/// messages never take it (the loop and `Shared::handle` send them to
/// [`run`]); it answers the startup check for missing state.
impl<H, Args> ErasedHandler for ErasedBatchOf<H, Args>
where
    H: BatchHandler<Args>,
    Args: 'static,
{
    fn start(&self, _scope: &mut Scope<'_>) -> Result<HandlerFuture, Failure> {
        Err(Failure::new(
            FailureKind::Handler,
            "a batch handler was called with one message outside a batch (a Spine bug: please report it)",
        ))
    }

    fn missing_state(&self, states: &States) -> Option<&'static str> {
        H::missing_state(states)
    }
}

/// Runs one batch of a topic's batch handler: `msgs` are of one partition,
/// in offset order. Returns what each message still waits for, in order.
///
/// A message that does not decode fails alone (kind `decode`), and the
/// others run. The handler's failure is the batch's: it is retried as a
/// unit under `[retry]`, and when the retries are exhausted every message of
/// the batch is dead-lettered with its error. A batch's replies carry the
/// causation of its last message, which is therefore not done until they
/// are acknowledged.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    topic_idx: usize,
    msgs: &[&OwnedMessage],
) -> Vec<Unsettled> {
    let topic = shared.table.topic(topic_idx);
    let recs: Vec<Record<'_>> = msgs.iter().map(|m| Record::owned(m)).collect();
    let events: Vec<Option<Cow<'_, str>>> = recs.iter().map(|r| topic.event_name(r)).collect();
    let route = topic
        .route(None)
        .filter(|r| r.batch().is_some())
        .expect("a batch handler takes every event of its topic (checked at build)");
    let (h, spec) = (&route.handlers[0], route.batch().expect("filtered"));
    let started = shared.timed.then(quanta::Instant::now);
    let mut failed: Vec<Option<HandlerFailure>> = (0..recs.len()).map(|_| None).collect();
    let fail =
        |failed: &mut Vec<Option<HandlerFailure>>, i: usize, failure: Failure, attempts: u32| {
            failed[i] = Some(HandlerFailure {
                handler: Some(h.name.clone()),
                failure,
                attempts,
            });
        };
    // A codec topic: the writer schemas first. A registry that is down holds
    // the batch here; a definite answer fails only its own message.
    if let Some(codec) = &topic.codec {
        for (i, r) in recs.iter().enumerate() {
            let prepared = shared
                .wait_for_codec(r.topic, || codec.prepare(r.payload))
                .await;
            if let Err(e) = prepared {
                fail(&mut failed, i, e.into_failure(FailureKind::Decode), 1);
            }
        }
    }
    let mut attempt = 1;
    let mut replies = Vec::new();
    let mut live: Vec<usize>;
    loop {
        // Decoded again on each attempt: the handler took the payloads.
        live = Vec::new();
        let mut payloads = Vec::new();
        for (i, rec) in recs.iter().enumerate() {
            if failed[i].is_some() {
                continue;
            }
            let event = events[i].as_deref();
            let value = match &topic.codec {
                None => None,
                Some(c) => match c.decode(rec.payload, &route.readers[0]) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        fail(&mut failed, i, e.into_failure(FailureKind::Decode), 1);
                        continue;
                    }
                },
            };
            let mut scope = Scope::new(rec, topic, event, shared);
            scope.decoded = value.as_ref().map(|v| (v.value(), h.value_decoder));
            match spec.handler.decode(&mut scope) {
                Ok(p) => {
                    payloads.push(p);
                    live.push(i);
                }
                Err(f) => {
                    shared.failed_attempt(rec, topic, event, h, &f, 1);
                    fail(&mut failed, i, f, 1);
                }
            }
        }
        if live.is_empty() {
            break;
        }
        let mut scopes: Vec<Scope<'_>> = live
            .iter()
            .map(|&i| Scope::new(&recs[i], topic, events[i].as_deref(), shared))
            .collect();
        let call = spec.handler.call(payloads, &mut scopes);
        drop(scopes);
        let result = match call {
            Ok(fut) => fut.await.map_err(Failure::from_handler),
            Err(f) => Err(f),
        };
        match result {
            Ok(r) => {
                replies = r;
                break;
            }
            Err(f) => {
                let first = live[0];
                let event = events[first].as_deref();
                if shared.failed_attempt(&recs[first], topic, event, h, &f, attempt) {
                    tokio::time::sleep(shared.config.retry.delay(attempt)).await;
                    attempt += 1;
                    continue;
                }
                for &i in &live {
                    fail(&mut failed, i, f.clone(), attempt);
                }
                live.clear();
                break;
            }
        }
    }
    if let Some(t) = started {
        route.durations[0].record(t.elapsed());
    }
    let last = live.last().copied();
    let mut out = Vec::with_capacity(recs.len());
    for (i, (rec, failure)) in recs.iter().zip(failed).enumerate() {
        let mut outcome = MessageOutcome::default();
        match failure {
            Some(f) => outcome.failures.push(f),
            None if Some(i) == last => outcome.replies = std::mem::take(&mut replies),
            None => {}
        }
        out.push(
            shared
                .finish_prepared(rec, topic, events[i].as_deref(), outcome)
                .await,
        );
    }
    out
}
