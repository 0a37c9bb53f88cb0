//! Panics in user code. A handler, a pipeline step or an aggregation's
//! handler that panics fails its own message, with failure kind `panic`,
//! instead of unwinding through the consumer task and stopping the app; a
//! middleware hook that panics is logged and counted, and the message goes on.
//!
//! `catch_unwind` asks for `UnwindSafe`, which user futures rarely are. What a
//! panicking handler leaves half-done is its own future, dropped right after,
//! so the calls are asserted unwind-safe, as `tower-http`'s `CatchPanic` and
//! `futures`' `catch_unwind` users do. A build with `panic = "abort"` cannot
//! be caught at all: see [`warn_if_abort`].

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;

use crate::error::HandlerError;
use crate::reply::{IntoReplies, Reply};

/// Runs `f`; a panic becomes a [`HandlerError`] of kind `panic`.
pub(crate) fn call<T>(f: impl FnOnce() -> T) -> Result<T, HandlerError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| HandlerError::panicked(&*p))
}

/// `fut`, with a panic while it is polled turned into its error.
pub(crate) fn future<T>(
    fut: impl Future<Output = Result<T, HandlerError>> + Send,
) -> impl Future<Output = Result<T, HandlerError>> + Send {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .map(|r| r.unwrap_or_else(|p| Err(HandlerError::panicked(&*p))))
}

pin_project_lite::pin_project! {
    /// A handler's call: the user's future, with its output turned into
    /// replies and a panic while it is polled (or while its output is
    /// converted) into its error. One poll layer where an `async` block,
    /// [`future`]'s `CatchUnwind` and a `Map` made three, on every message.
    pub(crate) struct Call<Fut> {
        #[pin]
        fut: Fut,
    }
}

impl<Fut> Call<Fut> {
    pub(crate) fn new(fut: Fut) -> Self {
        Call { fut }
    }
}

impl<Fut> Future for Call<Fut>
where
    Fut: Future,
    Fut::Output: IntoReplies,
{
    type Output = Result<Vec<Reply>, HandlerError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.project().fut;
        let polled = catch_unwind(AssertUnwindSafe(|| match fut.poll(cx) {
            Poll::Ready(out) => Poll::Ready(out.into_replies()),
            Poll::Pending => Poll::Pending,
        }));
        polled.unwrap_or_else(|p| Poll::Ready(Err(HandlerError::panicked(&*p))))
    }
}

/// Logs, once at startup, that this build cannot catch panics.
pub(crate) fn warn_if_abort() {
    #[cfg(panic = "abort")]
    tracing::warn!(
        "this build aborts on panic (`panic = \"abort\"` in its Cargo profile): a panicking \
         handler stops the process instead of dead-lettering its message; remove the setting \
         to let Spine catch panics"
    );
}
