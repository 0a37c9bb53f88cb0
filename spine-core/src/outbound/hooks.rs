//! Producer hooks (`Builder::outgoing`): user functions that see each record
//! the app is about to publish and keep it, change it or drop it, as seed
//! 000's producer config pairs events with filters and transforms.
//!
//! A hook that fails (returns an error or panics) is logged and counted, and
//! the record it was given is published as it was. Dead letters bypass the
//! hooks: they are copies of consumed messages, and a filter must never be
//! able to lose one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::{OutRecord, Sent, SentKind};
use crate::metrics as m;

/// What a hook returns: `Ok(Some(record))` publishes `record` (the one it was
/// given, or a changed one), `Ok(None)` drops it, `Err(_)` publishes the
/// original and logs the error.
pub type OutgoingResult = Result<Option<Sent>, Box<dyn std::error::Error + Send + Sync>>;

type HookFn = dyn Fn(Sent) -> OutgoingResult + Send + Sync;

#[derive(Clone)]
struct Hook {
    /// The event (`ce_type`) this hook is for; `None`: every event.
    event: Option<String>,
    f: Arc<HookFn>,
}

/// The app's hooks, in the order they were registered.
#[derive(Clone, Default)]
pub(crate) struct Hooks(Arc<Vec<Hook>>);

/// Collects hooks in the builder.
#[derive(Default, Clone)]
pub(crate) struct HookList(Vec<Hook>);

impl HookList {
    pub(crate) fn push<F, E>(&mut self, event: Option<&str>, f: F)
    where
        F: Fn(Sent) -> Result<Option<Sent>, E> + Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.0.push(Hook {
            event: event.map(str::to_owned),
            f: Arc::new(move |s| f(s).map_err(Into::into)),
        });
    }

    pub(crate) fn freeze(self) -> Hooks {
        Hooks(Arc::new(self.0))
    }
}

impl Hooks {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs the hooks over `rec`, in order; `None` if one dropped it.
    pub(crate) fn apply(&self, rec: OutRecord) -> Option<OutRecord> {
        if rec.kind == SentKind::DeadLetter {
            return Some(rec);
        }
        let mut sent = rec.into_sent();
        for hook in self.0.iter() {
            if let Some(want) = &hook.event {
                if sent.event() != Some(want.as_str()) {
                    continue;
                }
            }
            let original = sent.clone();
            let result = catch_unwind(AssertUnwindSafe(|| (hook.f)(sent)))
                .unwrap_or_else(|p| Err(panic_message(&*p).into()));
            sent = match result {
                Ok(Some(changed)) => changed,
                Ok(None) => {
                    tracing::debug!(topic = %original.topic, event = original.event().unwrap_or(""), "an outgoing hook dropped the record");
                    metrics::counter!(m::OUTGOING_DROPPED, "topic" => original.topic.clone(), "event" => event_label(&original))
                        .increment(1);
                    return None;
                }
                Err(error) => {
                    tracing::warn!(
                        topic = %original.topic,
                        event = original.event().unwrap_or(""),
                        %error,
                        "an outgoing hook failed; publishing the record as it was given to the hook"
                    );
                    metrics::counter!(m::OUTGOING_HOOK_ERRORS, "topic" => original.topic.clone(), "event" => event_label(&original))
                        .increment(1);
                    original
                }
            };
        }
        Some(OutRecord::from_sent(sent))
    }
}

fn event_label(s: &Sent) -> String {
    s.event().unwrap_or("").to_owned()
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic");
    format!("the hook panicked: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: &str, payload: &str) -> OutRecord {
        OutRecord {
            kind: SentKind::Reply,
            topic: "out".into(),
            key: Some(b"k".to_vec()),
            payload: Some(payload.as_bytes().to_vec()),
            headers: vec![("ce_type".into(), event.as_bytes().to_vec())],
        }
    }

    fn payload(r: &OutRecord) -> &str {
        std::str::from_utf8(r.payload.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn hooks_keep_change_drop_and_fail_open() {
        let mut list = HookList::default();
        list.push(Some("a"), |mut s: Sent| {
            s.payload = Some(b"changed".to_vec());
            Ok::<_, std::io::Error>(Some(s))
        });
        list.push(Some("b"), |_| Ok::<_, std::io::Error>(None));
        list.push(Some("c"), |_| Err("no"));
        list.push(Some("d"), |_| -> Result<Option<Sent>, std::io::Error> {
            panic!("boom")
        });
        let hooks = list.freeze();
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            assert_eq!(payload(&hooks.apply(rec("a", "x")).unwrap()), "changed");
            assert!(hooks.apply(rec("b", "x")).is_none());
            assert_eq!(payload(&hooks.apply(rec("c", "orig")).unwrap()), "orig");
            assert_eq!(payload(&hooks.apply(rec("d", "orig")).unwrap()), "orig");
            assert_eq!(payload(&hooks.apply(rec("z", "other")).unwrap()), "other");
            let mut dead = rec("b", "x");
            dead.kind = SentKind::DeadLetter;
            assert!(hooks.apply(dead).is_some(), "dead letters bypass hooks");
        });
        let mut counted = Vec::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            if let metrics_util::debugging::DebugValue::Counter(n) = value {
                let k = key.key();
                let event = k.labels().find(|l| l.key() == "event").unwrap();
                counted.push((k.name().to_owned(), event.value().to_owned(), n));
            }
        }
        counted.sort();
        assert_eq!(
            counted,
            vec![
                (m::OUTGOING_DROPPED.to_owned(), "b".to_owned(), 1),
                (m::OUTGOING_HOOK_ERRORS.to_owned(), "c".to_owned(), 1),
                (m::OUTGOING_HOOK_ERRORS.to_owned(), "d".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn hooks_for_all_events_run_in_order() {
        let mut list = HookList::default();
        list.push(None, |mut s: Sent| {
            s.headers.push(("seen".into(), b"1".to_vec()));
            Ok::<_, std::io::Error>(Some(s))
        });
        list.push(None, |mut s: Sent| {
            let n = s.headers.len();
            s.payload = Some(n.to_string().into_bytes());
            Ok::<_, std::io::Error>(Some(s))
        });
        let out = list.freeze().apply(rec("any", "x")).unwrap();
        assert_eq!(payload(&out), "2");
    }
}
