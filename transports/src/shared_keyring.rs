//! A keyring shared by every connection of a node, so that a rotation reaches all of them.
//!
//! Each connection owns a [`Codec`](crate::Codec) (codecs are `&mut` state machines); they all
//! follow one [`SharedKeyring`]. Every change bumps a version number, and a connection that
//! sees a new version rebuilds its codec's [`Keyring`] before it seals or opens the next frame.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::keyring::{Key, KeyId, Keyring, KeyringError};

/// The cluster keys of a node, shared by all its connections.
///
/// Cloning is cheap and gives another handle to the same keys. The operations are those of
/// [`Keyring`], with the same rules (the primary key cannot be removed); a rotation across a
/// cluster is: [`install`](Self::install) the new key everywhere, then
/// [`use_key`](Self::use_key) it everywhere, then [`remove`](Self::remove) the old one
/// everywhere. Frames in flight stay readable throughout, because every installed key is
/// tried on decrypt; and a connection whose peer was still sealing with a key when this node
/// removed it keeps that key until the peer's frames switch to another one (at most
/// [`EndpointConfig::removed_key_grace`](crate::EndpointConfig::removed_key_grace)), so frames
/// sealed just before the peer's `use_key` and read after the local `remove` still open.
///
/// # Examples
///
/// ```
/// use phalanx_transports::{Key, SharedKeyring};
///
/// let old = Key::from_bytes([1; 32]);
/// let new = Key::from_bytes([2; 32]);
/// let keys = SharedKeyring::new(old.clone());
/// keys.install(new.clone())?;
/// keys.use_key(new.id())?;
/// keys.remove(old.id())?;
/// assert_eq!(keys.key_ids(), vec![new.id()]);
/// # Ok::<(), phalanx_transports::KeyringError>(())
/// ```
#[derive(Clone)]
pub struct SharedKeyring {
    inner: Arc<Inner>,
}

struct Inner {
    /// Installed keys, primary first (the same order as the [`Keyring`] built from them).
    keys: Mutex<Vec<Key>>,
    version: AtomicU64,
}

impl SharedKeyring {
    /// A keyring holding one key, which is the primary.
    pub fn new(primary: Key) -> SharedKeyring {
        SharedKeyring {
            inner: Arc::new(Inner {
                keys: Mutex::new(vec![primary]),
                version: AtomicU64::new(1),
            }),
        }
    }

    /// Installs `key` for decryption; idempotent.
    ///
    /// # Errors
    ///
    /// [`KeyringError::IdCollision`] if another key has the same id; nothing changes.
    pub fn install(&self, key: Key) -> Result<KeyId, KeyringError> {
        let mut keys = self.lock();
        let id = key.id();
        match keys.iter().find(|k| k.id() == id) {
            Some(existing) if *existing == key => Ok(id),
            Some(_) => Err(KeyringError::IdCollision(id)),
            None => {
                keys.push(key);
                self.bump();
                Ok(id)
            }
        }
    }

    /// Makes the installed key `id` the primary: every connection encrypts with it from its
    /// next frame on.
    ///
    /// # Errors
    ///
    /// [`KeyringError::NotInstalled`]; nothing changes.
    pub fn use_key(&self, id: KeyId) -> Result<(), KeyringError> {
        let mut keys = self.lock();
        let index = position(&keys, id)?;
        keys.swap(0, index);
        self.bump();
        Ok(())
    }

    /// Removes the installed key `id`.
    ///
    /// # Errors
    ///
    /// [`KeyringError::RemovePrimary`] for the primary key, [`KeyringError::NotInstalled`];
    /// nothing changes.
    pub fn remove(&self, id: KeyId) -> Result<(), KeyringError> {
        let mut keys = self.lock();
        match position(&keys, id)? {
            0 => Err(KeyringError::RemovePrimary(id)),
            index => {
                keys.remove(index);
                self.bump();
                Ok(())
            }
        }
    }

    /// The id of the primary key.
    pub fn primary(&self) -> KeyId {
        self.lock().first().map_or(KeyId(0), Key::id)
    }

    /// The ids of all installed keys, primary first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.lock().iter().map(Key::id).collect()
    }

    /// A number that changes whenever the keys do.
    pub(crate) fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// A [`Keyring`] with the current keys, and the version it reflects.
    pub(crate) fn snapshot(&self) -> (Keyring, u64) {
        let keys = self.lock();
        let version = self.version();
        let mut iter = keys.iter();
        // Invariant: the list is never empty (`new` puts one key in, `remove` refuses the
        // primary); fall back to a fresh random-free zero key only to avoid a panic path.
        let mut ring = Keyring::new(iter.next().cloned().unwrap_or(Key::from_bytes([0; 32])));
        for key in iter {
            // Cannot collide: the list was checked on install.
            let _ = ring.install(key.clone());
        }
        (ring, version)
    }

    fn bump(&self) {
        self.inner.version.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Key>> {
        // A panic while holding the lock cannot leave the list half-changed (every change is
        // one Vec operation), so a poisoned lock is still consistent.
        self.inner
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for SharedKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyring")
            .field("primary", &self.primary())
            .field("keys", &self.key_ids())
            .finish()
    }
}

fn position(keys: &[Key], id: KeyId) -> Result<usize, KeyringError> {
    keys.iter()
        .position(|k| k.id() == id)
        .ok_or(KeyringError::NotInstalled(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_follow_changes() {
        let (a, b) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
        let keys = SharedKeyring::new(a.clone());
        let (_, v1) = keys.snapshot();
        keys.install(b.clone()).unwrap();
        keys.use_key(b.id()).unwrap();
        let (ring, v2) = keys.snapshot();
        assert_ne!(v1, v2);
        assert_eq!(ring.primary(), b.id());
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), vec![b.id(), a.id()]);
        assert_eq!(
            keys.remove(b.id()),
            Err(KeyringError::RemovePrimary(b.id()))
        );
        keys.remove(a.id()).unwrap();
        assert_eq!(keys.key_ids(), vec![b.id()]);
        assert_eq!(keys.install(b.clone()), Ok(b.id()));
        assert_eq!(
            keys.use_key(a.id()),
            Err(KeyringError::NotInstalled(a.id()))
        );
    }
}
