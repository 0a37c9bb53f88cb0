//! The runtime side of `#[pipeline]`: what the macro's generated handler calls
//! between steps. A pipeline is one handler in the dispatch table (so routing,
//! retries, dead-lettering and offsets work as for `#[on]`); this module adds
//! its concurrency bound, its fixed step arguments (from the attribute and
//! `[pipelines.<name>.args]`), publishing steps, and the name of the step that
//! failed.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::dispatch::extract::{Context, FromRecord, Scope};
use crate::dispatch::unwind;
use crate::error::{Error, HandlerError};
use crate::reply::{IntoReplies, Reply};

/// What `#[pipeline]` knows about a pipeline.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// The pipeline's name (its module's name).
    pub name: &'static str,
    /// Its steps, in order.
    pub steps: Vec<&'static str>,
    /// `max_concurrent = N` of the attribute.
    pub max_concurrent: Option<usize>,
    /// `args(name = value, ...)` of the attribute, as JSON text.
    pub args: Vec<(&'static str, &'static str)>,
    /// The steps' `#[arg]` parameters.
    pub params: Vec<ArgParam>,
}

/// A step parameter marked `#[arg]`.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ArgParam {
    /// The step taking it.
    pub step: &'static str,
    /// The parameter's name, which is also the argument's name.
    pub name: &'static str,
    /// Its type, as written.
    pub ty: &'static str,
    /// Whether a JSON value converts into that type.
    pub check: fn(&serde_json::Value) -> Result<(), String>,
}

/// A pipeline's settings within one app: its arguments and concurrency bound,
/// resolved against the configuration when the app is built.
#[derive(Debug)]
pub(crate) struct PipelineState {
    pub(crate) spec: PipelineSpec,
    resolved: OnceLock<Resolved>,
}

#[derive(Debug)]
struct Resolved {
    args: BTreeMap<String, serde_json::Value>,
    limit: Option<Arc<Semaphore>>,
}

impl PipelineState {
    pub(crate) fn new(spec: PipelineSpec) -> Self {
        PipelineState {
            spec,
            resolved: OnceLock::new(),
        }
    }

    /// Merges the attribute's arguments with `[pipelines.<name>]`, checks that
    /// every `#[arg]` has a value of its type, and sets the concurrency bound.
    pub(crate) fn configure(&self, config: &Config) -> Result<(), Error> {
        let name = self.spec.name;
        let overrides = config.pipelines.get(name);
        let mut args = BTreeMap::new();
        for (k, json) in &self.spec.args {
            let v = serde_json::from_str(json)
                .map_err(|e| Error::config(format!("pipelines.{name}.args.{k}"), e.to_string()))?;
            args.insert((*k).to_owned(), v);
        }
        if let Some(o) = overrides {
            for (k, v) in &o.args {
                if !self.spec.params.iter().any(|p| p.name == k) {
                    return Err(Error::config(
                        format!("pipelines.{name}.args.{k}"),
                        format!(
                            "no step of pipeline `{name}` takes `#[arg] {k}`; the steps' arguments are: {}",
                            self.param_list()
                        ),
                    ));
                }
                args.insert(k.clone(), v.clone());
            }
        }
        for p in &self.spec.params {
            let key = format!("pipelines.{name}.args.{}", p.name);
            let Some(v) = args.get(p.name) else {
                return Err(Error::config(
                    key,
                    format!(
                        "step `{}` takes `#[arg] {}: {}` but no value is given; add `args({} = ...)` \
                         to #[pipeline(...)] or set it under [pipelines.{name}.args] in spine.toml",
                        p.step, p.name, p.ty, p.name
                    ),
                ));
            };
            (p.check)(v).map_err(|e| {
                Error::config(
                    key,
                    format!("`{v}` is not a `{}` (step `{}`): {e}", p.ty, p.step),
                )
            })?;
        }
        let max = overrides
            .and_then(|o| o.max_concurrent)
            .or(self.spec.max_concurrent);
        if max == Some(0) {
            return Err(Error::config(
                format!("pipelines.{name}.max_concurrent"),
                "must be at least 1",
            ));
        }
        let limit = max.map(|n| Arc::new(Semaphore::new(n)));
        // A descriptor built once and given to two apps keeps the first
        // app's settings; `handlers![...]` builds fresh ones per app.
        let _ = self.resolved.set(Resolved { args, limit });
        Ok(())
    }

    fn param_list(&self) -> String {
        if self.spec.params.is_empty() {
            return "none".to_owned();
        }
        self.spec
            .params
            .iter()
            .map(|p| format!("`{}` (step `{}`)", p.name, p.step))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn describe(&self) -> String {
        format!("{} [{}]", self.spec.name, self.spec.steps.join(" → "))
    }
}

/// The hidden first extractor of a pipeline's handler: the pipeline's
/// settings and a [`Context`] to publish with.
#[doc(hidden)]
pub struct Pipe {
    state: Arc<PipelineState>,
    ctx: Context,
}

// Not an extractor users should be told about.
#[diagnostic::do_not_recommend]
impl FromRecord for Pipe {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        let state = scope.pipeline.clone().ok_or_else(|| {
            HandlerError::msg("a pipeline was called outside its dispatch table").fatal()
        })?;
        Ok(Pipe {
            state,
            ctx: Context::from_record(scope)?,
        })
    }
}

impl Pipe {
    /// Waits for a slot under the pipeline's `max_concurrent`.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        let limit = self.state.resolved.get()?.limit.clone()?;
        // The semaphore is never closed.
        limit.acquire_owned().await.ok()
    }

    /// The value of `#[arg] name` for `step`.
    pub fn arg<T: DeserializeOwned>(
        &self,
        step: &'static str,
        name: &str,
    ) -> Result<T, HandlerError> {
        let value = self
            .state
            .resolved
            .get()
            .and_then(|r| r.args.get(name))
            .ok_or_else(|| {
                HandlerError::msg(format!("argument `{name}` has no value"))
                    .fatal()
                    .in_step(step)
            })?;
        // Checked at startup, so this fails only for types whose
        // deserialisation depends on more than the value.
        T::deserialize(value).map_err(|e| {
            HandlerError::msg(format!("argument `{name}`: {e}"))
                .fatal()
                .in_step(step)
        })
    }

    /// Publishes a step's output (`#[publish(topic, event)]`).
    pub async fn publish<T: Serialize + Sync>(
        &self,
        step: &'static str,
        topic: &str,
        event: &str,
        value: &T,
    ) -> Result<(), HandlerError> {
        self.ctx
            .emit(topic, event, value)
            .await
            .map_err(|e| HandlerError::from(e).in_step(step))
    }
}

/// A step's error, tagged with the step's name for the dead-letter record.
#[doc(hidden)]
pub fn failed(step: &'static str, error: impl Into<HandlerError>) -> HandlerError {
    error.into().in_step(step)
}

/// Runs an async step: a panic becomes the step's failure, of kind `panic`
/// (written by `#[pipeline]` around each async step).
#[doc(hidden)]
pub async fn guard<T>(
    step: &'static str,
    fut: impl std::future::Future<Output = T> + Send,
) -> Result<T, HandlerError> {
    unwind::future(async move { Ok(fut.await) })
        .await
        .map_err(|e| e.in_step(step))
}

/// Runs a sync step: a panic becomes the step's failure, of kind `panic`
/// (written by `#[pipeline]` around each sync step).
#[doc(hidden)]
pub fn guard_sync<T>(step: &'static str, f: impl FnOnce() -> T) -> Result<T, HandlerError> {
    unwind::call(f).map_err(|e| e.in_step(step))
}

/// `#[pipeline]` calls this in a constant with the number of distinct
/// extractor types its steps take: they must fit one handler beside the
/// pipeline's own `Pipe`, so the limit lives with the `Handler` impls.
#[doc(hidden)]
pub const fn check_extractors(distinct: usize) {
    assert!(
        distinct < crate::dispatch::handler::MAX_EXTRACTORS,
        "a pipeline's steps take too many different extractor types in all (a handler takes \
         at most `spine::MAX_EXTRACTORS`, and the pipeline itself uses one); group some state \
         into one `State<T>`"
    );
}

/// Whether `value` converts into `T` (the startup check of an `#[arg]`).
#[doc(hidden)]
pub fn check_arg<T: DeserializeOwned>(value: &serde_json::Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

/// What the last step of a pipeline may return (once `Option` and `Result`
/// are unwrapped): what a handler may return.
#[diagnostic::on_unimplemented(
    message = "the last step of a pipeline returns `{Self}`, which cannot become replies",
    label = "the pipeline ends with this value",
    note = "end with `()` or `Reply` (or `Vec<Reply>`), or put `#[publish(topic = \"...\", event = \"...\")]` \
            on the last step to publish its output"
)]
pub trait PipelineEnd {
    /// Converts the last step's output.
    fn into_end(self) -> Result<Vec<Reply>, HandlerError>;
}

impl<T: IntoReplies> PipelineEnd for T {
    fn into_end(self) -> Result<Vec<Reply>, HandlerError> {
        self.into_replies()
    }
}

/// Ends the pipeline with the last step's output.
#[doc(hidden)]
pub fn end<T: PipelineEnd>(value: T) -> Result<Vec<Reply>, HandlerError> {
    value.into_end()
}

/// Publishes a `#[publish]` step's output.
#[doc(hidden)]
pub async fn publish<T: Publishable>(
    pipe: &Pipe,
    step: &'static str,
    topic: &str,
    event: &str,
    value: &T,
) -> Result<(), HandlerError> {
    pipe.publish(step, topic, event, value).await
}

/// What a `#[publish]` step may return.
#[diagnostic::on_unimplemented(
    message = "a `#[publish]` step returns `{Self}`, which cannot be published",
    label = "published as the step's event",
    note = "derive `serde::Serialize` for `{Self}`, or remove `#[publish(...)]` from the step"
)]
pub trait Publishable: Serialize + Sync {}

impl<T: Serialize + Sync> Publishable for T {}
