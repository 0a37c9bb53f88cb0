//! [`Settings`]: the consumer's settings row as a handler sees it (feature
//! `config-db`), as seed 004 passes `metadatas` to `process()`.

use std::sync::Arc;

use crate::config::live::LiveValues;
use crate::dispatch::extract::{FromRecord, Scope};
use crate::error::HandlerError;

/// The settings of the consumer handling this message, from its row of
/// `spine_consumer_configs` (`[app] config_source`): its metadata and its
/// output topics, as they are now. A reload changes what the next message's
/// handler sees. Without `config_source` (or without a row), both are empty.
///
/// ```no_run
/// use spine_kafka_core::{Context, HandlerError, Settings};
///
/// async fn enrich(order: serde_json::Value, settings: Settings, ctx: Context) -> Result<(), HandlerError> {
///     let region = settings.metadata("region").and_then(|v| v.as_str()).unwrap_or("eu");
///     for topic in settings.topics_output() {
///         ctx.emit(topic, "order.enriched", &serde_json::json!({ "order": order, "region": region })).await?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Settings(Arc<LiveValues>);

impl Settings {
    /// One metadata value (`metadata` is a JSON object).
    pub fn metadata(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.metadata.get(key)
    }

    /// All of the metadata.
    pub fn metadata_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0.metadata
    }

    /// The output topics (`topics_output`), in the row's order.
    pub fn topics_output(&self) -> &[String] {
        &self.0.topics_output
    }

    /// `max_in_flight` from the row, if it sets one.
    pub fn max_in_flight(&self) -> Option<usize> {
        self.0.max_in_flight
    }
}

impl FromRecord for Settings {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        Ok(Settings(scope.shared.live.values()))
    }
}
