//! [`Shutdown`]: the handle that asks a running app to stop, shared by the
//! app, its consumer loop and whoever holds a clone. A second request forces
//! the stop: the app stops waiting for handlers and for the final commit.

use std::sync::Arc;

/// Stops a running app gracefully, or at once when asked a second time.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<tokio::sync::watch::Sender<Stage>>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Running,
    Stopping,
    Forced,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Shutdown(Arc::new(tokio::sync::watch::Sender::new(Stage::Running)))
    }

    /// Asks the app to stop: it stops fetching, lets in-flight handlers
    /// finish within `dispatch.shutdown_timeout`, and commits. Idempotent.
    pub fn trigger(&self) {
        self.0.send_if_modified(|s| {
            let was = *s;
            *s = (*s).max(Stage::Stopping);
            *s != was
        });
    }

    /// Asks the app to stop at once: handlers still running are abandoned,
    /// and the final commit is not waited for. What was handled but not
    /// committed is handled again by the partitions' next owner.
    pub fn force(&self) {
        self.0.send_replace(Stage::Forced);
    }

    /// Completes once stopping was asked for.
    pub(crate) async fn wait(&self) {
        self.reach(Stage::Stopping).await;
    }

    /// Completes once a forced stop was asked for.
    pub(crate) async fn forced(&self) {
        self.reach(Stage::Forced).await;
    }

    async fn reach(&self, stage: Stage) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this only ends when the stage is reached.
        let _ = rx.wait_for(|s| *s >= stage).await;
    }
}
