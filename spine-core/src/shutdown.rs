//! [`Shutdown`]: the handle that asks a running app to stop, shared by the
//! app, its consumer loop and whoever holds a clone.

use std::sync::Arc;

/// Stops a running app gracefully.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<tokio::sync::watch::Sender<bool>>);

impl Shutdown {
    pub(crate) fn new() -> Self {
        Shutdown(Arc::new(tokio::sync::watch::Sender::new(false)))
    }

    /// Asks the app to stop. Idempotent.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Completes once stopping was asked for.
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this only ends when triggered.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
