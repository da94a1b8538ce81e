//! When to take a snapshot and how far the log may be truncated (sans-IO).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// When the [`Checkpointer`] asks for a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Snapshot once the log since the last snapshot holds this many bytes.
    pub max_log_bytes: u64,
    /// Snapshot once the log since the last snapshot holds this many entries.
    pub max_log_entries: u64,
    /// Snapshot once this long has passed since the last one, if anything was appended.
    pub max_interval: Duration,
    /// Entries kept below the newest snapshot, so a replica slightly behind catches up from
    /// the log alone.
    pub retain_entries: u64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            max_log_bytes: 256 * 1024 * 1024,
            max_log_entries: 1_000_000,
            max_interval: Duration::from_secs(600),
            retain_entries: 10_000,
        }
    }
}

/// A pin held by an in-flight catch-up: the log is not truncated at or above its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PinId(u64);

/// The checkpointer's decisions (sans-IO): feed it appends and snapshot results, ask it what
/// to do.
///
/// It never asks for a second snapshot while one is being taken, and never lets the log be
/// truncated past what the newest durable snapshot covers, what the policy retains, or what
/// a pinned catch-up still has to send.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    policy: CheckpointPolicy,
    snapshot_index: u64,
    snapshot_at: Instant,
    last_appended: u64,
    bytes_since: u64,
    entries_since: u64,
    taking: bool,
    truncated_below: u64,
    pins: BTreeMap<PinId, u64>,
    next_pin: u64,
}

impl Checkpointer {
    /// A checkpointer whose newest durable snapshot covers `snapshot_index` (0: none), with
    /// the log starting at `log_first`.
    pub fn new(
        policy: CheckpointPolicy,
        snapshot_index: u64,
        log_first: u64,
        now: Instant,
    ) -> Self {
        Self {
            policy,
            snapshot_index,
            snapshot_at: now,
            last_appended: snapshot_index,
            bytes_since: 0,
            entries_since: 0,
            taking: false,
            truncated_below: log_first,
            pins: BTreeMap::new(),
            next_pin: 0,
        }
    }

    /// The index the newest durable snapshot covers.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Entries `index` (with `bytes` of payload) were appended to the log.
    pub fn handle_appended(&mut self, index: u64, bytes: u64) {
        if index > self.last_appended {
            self.entries_since += index - self.last_appended;
            self.last_appended = index;
        }
        self.bytes_since += bytes;
    }

    /// Whether a snapshot should be taken now; if so, the checkpointer counts it as being
    /// taken until [`handle_snapshot_written`](Self::handle_snapshot_written) or
    /// [`handle_snapshot_failed`](Self::handle_snapshot_failed).
    pub fn poll_snapshot(&mut self, now: Instant) -> bool {
        if self.taking || self.last_appended <= self.snapshot_index {
            return false;
        }
        let due = self.bytes_since >= self.policy.max_log_bytes
            || self.entries_since >= self.policy.max_log_entries
            || now.saturating_duration_since(self.snapshot_at) >= self.policy.max_interval;
        self.taking = due;
        due
    }

    /// Forces the next [`poll_snapshot`](Self::poll_snapshot) to say yes (if anything new
    /// was appended and no snapshot is being taken).
    pub fn request_snapshot(&mut self) {
        self.bytes_since = self.bytes_since.max(self.policy.max_log_bytes);
    }

    /// A snapshot covering `index` is durable.
    pub fn handle_snapshot_written(&mut self, index: u64, now: Instant) {
        self.taking = false;
        if index > self.snapshot_index {
            let covered = index - self.snapshot_index;
            self.snapshot_index = index;
            // Entries appended after the snapshot point still count towards the next one.
            let total = self.entries_since.max(1);
            let left = self.entries_since.saturating_sub(covered);
            self.bytes_since = self.bytes_since / total * left;
            self.entries_since = left;
        }
        self.snapshot_at = now;
    }

    /// Taking a snapshot failed; the next poll may try again.
    pub fn handle_snapshot_failed(&mut self, now: Instant) {
        self.taking = false;
        self.snapshot_at = now;
    }

    /// Pins the log at `index`: entries from `index` on are not truncated until
    /// [`unpin`](Self::unpin).
    pub fn pin(&mut self, index: u64) -> PinId {
        let id = PinId(self.next_pin);
        self.next_pin += 1;
        self.pins.insert(id, index);
        id
    }

    /// Releases a pin.
    pub fn unpin(&mut self, pin: PinId) {
        self.pins.remove(&pin);
    }

    /// The index below which the log may be truncated now, if that is further than the last
    /// truncation: below the snapshot minus the retained entries, and below every pin.
    pub fn poll_truncate(&mut self) -> Option<u64> {
        let mut below = (self.snapshot_index + 1).saturating_sub(self.policy.retain_entries);
        if let Some(&pinned) = self.pins.values().min() {
            below = below.min(pinned);
        }
        if below > self.truncated_below {
            self.truncated_below = below;
            Some(below)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_on_size_and_truncates_below_pins() {
        let now = Instant::now();
        let policy = CheckpointPolicy {
            max_log_bytes: 1000,
            max_log_entries: 100,
            max_interval: Duration::from_secs(60),
            retain_entries: 0,
        };
        let mut core = Checkpointer::new(policy, 0, 1, now);
        core.handle_appended(50, 500);
        assert!(!core.poll_snapshot(now));
        core.handle_appended(100, 500);
        assert!(core.poll_snapshot(now));
        assert!(!core.poll_snapshot(now), "one snapshot at a time");
        let pin = core.pin(40);
        core.handle_snapshot_written(100, now);
        assert_eq!(core.poll_truncate(), Some(40));
        core.unpin(pin);
        assert_eq!(core.poll_truncate(), Some(101));
        assert_eq!(core.poll_truncate(), None);
        // Time alone triggers a snapshot once something new was appended.
        let later = now + Duration::from_secs(61);
        assert!(!core.poll_snapshot(later));
        core.handle_appended(101, 10);
        assert!(core.poll_snapshot(later));
    }
}
