//! The keyring: the set of cluster keys, one of which (the primary) encrypts.
//!
//! This follows HashiCorp memberlist's keyring: keys are installed on every node first, then
//! made primary everywhere, then the old key is removed everywhere. Because every installed key
//! is tried when opening a frame, no frame is lost while a rotation is under way.

use std::fmt;

use chacha20poly1305::aead::rand_core::{OsRng, RngCore};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroize;

use crate::frame::RandomUnavailableError;

/// A 256-bit XChaCha20-Poly1305 cluster key.
///
/// Its `Debug` output shows only its [`KeyId`], never the key bytes, and its bytes are zeroed
/// when it is dropped (copies made with [`Key::to_bytes`] are the caller's to wipe).
///
/// # Examples
///
/// ```
/// use phalanx_transports::Key;
///
/// let key = Key::from_bytes([7; 32]);
/// assert!(!format!("{key:?}").contains("7, 7"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// Uses the given 32 bytes as a key. They must be secret and uniformly random.
    pub const fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// Draws a new key from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// Returns [`RandomUnavailableError`] if no random bytes could be had.
    pub fn generate() -> Result<Key, RandomUnavailableError> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        Ok(Key(bytes))
    }

    /// The key's raw bytes, for storing it in a secret store.
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The public fingerprint of this key, as carried in sealed frames.
    pub fn id(&self) -> KeyId {
        fingerprint(&XChaCha20Poly1305::new(&self.0.into()))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Key").field(&self.id()).finish()
    }
}

/// A public, 32-bit fingerprint of a [`Key`]; sealed frames carry the id of the key that sealed
/// them so that the receiver tries that key first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub u32);

/// The installed keys and which of them is primary.
///
/// # Examples
///
/// A rotation, done on every node step by step:
///
/// ```
/// use phalanx_transports::{Key, Keyring};
///
/// let old = Key::from_bytes([1; 32]);
/// let new = Key::from_bytes([2; 32]);
/// let mut ring = Keyring::new(old.clone());
/// ring.install(new.clone())?; // 1. on every node
/// ring.use_key(new.id())?; // 2. on every node, once all have it
/// ring.remove(old.id())?; // 3. on every node, once all use it
/// assert_eq!(ring.primary(), new.id());
/// # Ok::<(), phalanx_transports::KeyringError>(())
/// ```
pub struct Keyring {
    /// Installed keys; index 0 is always the primary, so sealing never searches.
    keys: Vec<InstalledKey>,
}

impl Keyring {
    /// A keyring holding one key, which is primary.
    pub fn new(primary: Key) -> Keyring {
        Keyring {
            keys: vec![InstalledKey::new(primary)],
        }
    }

    /// Installs a key for decryption; installing a key that is already there does nothing.
    ///
    /// # Errors
    ///
    /// [`KeyringError::IdCollision`] if a different installed key has the same fingerprint (odds
    /// about 1 in 4 billion); the keyring is unchanged, so draw another key.
    pub fn install(&mut self, key: Key) -> Result<KeyId, KeyringError> {
        let installed = InstalledKey::new(key);
        match self.keys.iter().find(|k| k.id == installed.id) {
            Some(existing) if existing.key == installed.key => Ok(installed.id),
            Some(_) => Err(KeyringError::IdCollision(installed.id)),
            None => {
                let id = installed.id;
                self.keys.push(installed);
                Ok(id)
            }
        }
    }

    /// Makes an installed key the primary, the one that seals.
    ///
    /// # Errors
    ///
    /// [`KeyringError::NotInstalled`] if no installed key has this id; the keyring is unchanged.
    pub fn use_key(&mut self, id: KeyId) -> Result<(), KeyringError> {
        let index = self.position(id)?;
        self.keys.swap(0, index);
        Ok(())
    }

    /// Removes an installed key that is not the primary.
    ///
    /// # Errors
    ///
    /// [`KeyringError::RemovePrimary`] for the primary key and [`KeyringError::NotInstalled`]
    /// for an unknown id; in both cases the keyring is unchanged.
    pub fn remove(&mut self, id: KeyId) -> Result<(), KeyringError> {
        match self.position(id)? {
            0 => Err(KeyringError::RemovePrimary(id)),
            index => {
                self.keys.remove(index);
                Ok(())
            }
        }
    }

    /// The id of the primary key.
    pub fn primary(&self) -> KeyId {
        self.primary_key().id
    }

    /// The ids of all installed keys, the primary first.
    pub fn key_ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    pub(crate) fn primary_key(&self) -> &InstalledKey {
        // Invariant: `new` puts one key in and `remove` never takes index 0 out.
        &self.keys[0]
    }

    /// Keys to try when opening a frame that names `hint`: the named key first, then every
    /// other installed key (memberlist tries them all; the hint only saves work).
    pub(crate) fn candidates(&self, hint: KeyId) -> impl Iterator<Item = &InstalledKey> {
        let hinted = self.keys.iter().filter(move |k| k.id == hint);
        hinted.chain(self.keys.iter().filter(move |k| k.id != hint))
    }

    /// Takes the key `id` out, whatever its place. This may leave the ring without a primary,
    /// so it is only for a ring about to be replaced.
    pub(crate) fn take(&mut self, id: KeyId) -> Option<InstalledKey> {
        let index = self.position(id).ok()?;
        Some(self.keys.remove(index))
    }

    /// Appends `key` for decryption only, unless a key with its id is installed.
    pub(crate) fn keep(&mut self, key: InstalledKey) {
        if self.position(key.id).is_err() {
            self.keys.push(key);
        }
    }

    fn position(&self, id: KeyId) -> Result<usize, KeyringError> {
        self.keys
            .iter()
            .position(|k| k.id == id)
            .ok_or(KeyringError::NotInstalled(id))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

/// A keyring operation was refused; the keyring is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The primary key cannot be removed: make another key primary first.
    #[error("key {0:?} is the primary key and cannot be removed; use another key first")]
    RemovePrimary(KeyId),
    /// No installed key has this id.
    #[error("key {0:?} is not installed")]
    NotInstalled(KeyId),
    /// A different key with the same fingerprint is already installed.
    #[error("a different key with id {0:?} is already installed")]
    IdCollision(KeyId),
}

/// A key together with its ready-to-use cipher, so that no key schedule runs per frame.
pub(crate) struct InstalledKey {
    pub(crate) id: KeyId,
    pub(crate) cipher: XChaCha20Poly1305,
    key: Key,
}

impl InstalledKey {
    fn new(key: Key) -> InstalledKey {
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        InstalledKey {
            id: fingerprint(&cipher),
            cipher,
            key,
        }
    }
}

/// Draws the random nonces of one codec without a system call per frame.
///
/// A random 256-bit key, drawn from the operating system once, and a counter: each nonce is
/// the XChaCha20 keystream for the next counter value, so nonces are as random as the
/// operating system's (a cryptographically secure generator in the manner of `rand_chacha`),
/// and, unlike a fixed prefix with a counter, nothing in them links the frames of one sender.
pub(crate) struct Nonces {
    generator: Option<(XChaCha20Poly1305, u64)>,
}

impl Nonces {
    pub(crate) fn new() -> Nonces {
        Nonces { generator: None }
    }

    /// The next nonce.
    pub(crate) fn next(&mut self) -> Result<XNonce, RandomUnavailableError> {
        let (cipher, counter) = match &mut self.generator {
            Some((cipher, counter)) if *counter < u64::MAX => (&*cipher, counter),
            generator => {
                let mut key = [0; 32];
                fill_random(&mut key)?;
                let cipher = XChaCha20Poly1305::new(&key.into());
                key.zeroize();
                let (cipher, counter) = generator.insert((cipher, 0));
                (&*cipher, counter)
            }
        };
        *counter += 1;
        let mut at = XNonce::default();
        at[..8].copy_from_slice(&counter.to_le_bytes());
        let mut nonce = XNonce::default();
        // Encrypting zeros yields the keystream; the tag is not needed. Cannot fail for 24
        // bytes; should it, fall back to the operating system.
        if cipher
            .encrypt_in_place_detached(&at, b"", &mut nonce)
            .is_err()
        {
            fill_random(&mut nonce)?;
        }
        Ok(nonce)
    }
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces").finish_non_exhaustive()
    }
}

/// Fills `bytes` from the operating system's random number generator.
pub(crate) fn fill_random(bytes: &mut [u8]) -> Result<(), RandomUnavailableError> {
    OsRng
        .try_fill_bytes(bytes)
        .map_err(|_| RandomUnavailableError)
}

/// Derives a key's public id: the first 4 bytes of the Poly1305 tag over an empty message with
/// a fixed all-zero nonce and a fixed label as associated data.
///
/// This reuses the AEAD as a PRF so that no hash function is needed. The fixed nonce is never
/// used for sealing (sealing nonces are 24 random bytes; a collision has odds of 2^-192), and the
/// same input always gives the same output, so the fingerprint reveals nothing but itself.
fn fingerprint(cipher: &XChaCha20Poly1305) -> KeyId {
    const LABEL: &[u8] = b"phalanx key fingerprint v1";
    let nonce = XNonce::default();
    let mut empty: [u8; 0] = [];
    match cipher.encrypt_in_place_detached(&nonce, LABEL, &mut empty) {
        Ok(tag) => KeyId(u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]])),
        // Unreachable: encryption only fails for messages longer than the cipher's limit.
        Err(_) => KeyId(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes([byte; 32])
    }

    #[test]
    fn nonces_never_repeat_within_or_across_generators() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2 {
            let mut nonces = Nonces::new();
            for _ in 0..1_000 {
                assert!(seen.insert(nonces.next().unwrap()));
            }
        }
    }

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        assert_eq!(key(1).id(), key(1).id());
        assert_ne!(key(1).id(), key(2).id());
    }

    #[test]
    fn install_use_remove() {
        let mut ring = Keyring::new(key(1));
        assert_eq!(ring.install(key(2)), Ok(key(2).id()));
        assert_eq!(ring.install(key(2)), Ok(key(2).id()), "idempotent");
        assert_eq!(ring.key_ids().count(), 2);
        assert_eq!(ring.primary(), key(1).id());

        ring.use_key(key(2).id()).unwrap();
        assert_eq!(ring.primary(), key(2).id());
        assert_eq!(
            ring.remove(key(2).id()),
            Err(KeyringError::RemovePrimary(key(2).id()))
        );
        ring.remove(key(1).id()).unwrap();
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), vec![key(2).id()]);
        assert_eq!(
            ring.remove(key(1).id()),
            Err(KeyringError::NotInstalled(key(1).id()))
        );
        assert_eq!(
            ring.use_key(key(9).id()),
            Err(KeyringError::NotInstalled(key(9).id()))
        );
    }

    #[test]
    fn candidates_put_the_hinted_key_first_and_include_all() {
        let mut ring = Keyring::new(key(1));
        ring.install(key(2)).unwrap();
        ring.install(key(3)).unwrap();
        let order: Vec<KeyId> = ring.candidates(key(3).id()).map(|k| k.id).collect();
        assert_eq!(order, vec![key(3).id(), key(1).id(), key(2).id()]);
        let unknown: Vec<KeyId> = ring.candidates(KeyId(0xdead)).map(|k| k.id).collect();
        assert_eq!(unknown.len(), 3);
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let mut ring = Keyring::new(key(0xAB));
        ring.install(key(0xCD)).unwrap();
        let shown = format!("{ring:?} {:?}", key(0xAB));
        assert!(!shown.contains("171, 171"), "{shown}");
        assert!(!shown.contains("205, 205"), "{shown}");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(Key::generate().unwrap(), Key::generate().unwrap());
    }
}
