//! [`State`]: shared application state registered with `Builder::state`,
//! and [`States`], the app's set of them.

use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::dispatch::extract::{FromRecord, Scope};
use crate::error::HandlerError;

/// Shared application state registered with `Builder::state`.
///
/// ```
/// use spine_kafka_core::State;
/// struct Db { url: String }
/// async fn handler(_order: serde_json::Value, db: State<Db>) {
///     println!("{}", db.url); // derefs to Db
/// }
/// ```
pub struct State<T>(pub Arc<T>);

impl<T> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

impl<T: Send + Sync + 'static> FromRecord for State<T> {
    fn from_record(scope: &mut Scope<'_>) -> Result<Self, HandlerError> {
        scope.state::<T>().map(State).ok_or_else(|| {
            HandlerError::msg(format!(
                "no state of type `{}` is registered",
                std::any::type_name::<T>()
            ))
            .fatal()
        })
    }

    fn missing_state(states: &States) -> Option<&'static str> {
        match states.get::<T>() {
            Some(_) => None,
            None => Some(std::any::type_name::<T>()),
        }
    }
}

/// Application state, by type. A handful of entries at most, so a linear scan
/// of type ids beats hashing them on every message.
#[derive(Default, Clone)]
#[doc(hidden)]
pub struct States(Vec<(TypeId, Arc<dyn Any + Send + Sync>)>);

impl States {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_arc(Arc::new(value));
    }

    pub(crate) fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        let id = TypeId::of::<T>();
        self.0.retain(|(t, _)| *t != id);
        self.0.push((id, value));
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let id = TypeId::of::<T>();
        self.0
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, a)| a.clone().downcast::<T>().ok())
    }
}
