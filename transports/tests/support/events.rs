//! A `tracing` subscriber that counts the events of one crate.
//!
//! Tests that use it live alone in their own test binary: `tracing` caches each call site's
//! interest process-wide, and a call site first reached on another test's thread while no
//! subscriber was installed could be cached as "never" and hide the events counted here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts the events whose target starts with a prefix (a crate's name).
pub(crate) struct EventCounter {
    prefix: &'static str,
    events: Arc<AtomicUsize>,
}

impl EventCounter {
    /// A counter of the events of the crate `prefix`, and the handle that reads it.
    pub(crate) fn new(prefix: &'static str) -> (EventCounter, Arc<AtomicUsize>) {
        let events = Arc::new(AtomicUsize::new(0));
        let counter = EventCounter {
            prefix,
            events: Arc::clone(&events),
        };
        (counter, events)
    }
}

impl tracing::Subscriber for EventCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target().starts_with(self.prefix) {
            self.events.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
