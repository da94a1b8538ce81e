//! Keeping each connection's keys in step with the node's keyring.

use std::time::{Duration, Instant};

use super::EndpointSecurity;
use crate::codec::{Codec, CodecConfig, Security};
use crate::keyring::KeyId;
use crate::shared_keyring::SharedKeyring;

/// Keeps a connection's codec keyring in step with the node's [`SharedKeyring`].
///
/// One rule goes beyond copying the node's keys: on an inbound stream, the key the peer is
/// sealing with (the key of the last frame read) stays usable on that stream after the node
/// removes it, until the peer's frames switch to another key or `grace` runs out. A rotation
/// removes the old key right after every node has started using the new one, but frames
/// sealed with the old key before the peer switched may still be in flight or in this side's
/// read buffer; without the rule the first of them would fail authentication, end the
/// connection and lose everything behind it. The stream is already authenticated and ordered,
/// so the retained key only ever opens what its sealer sent before switching.
pub(super) struct KeyFollower {
    keys: Option<SharedKeyring>,
    seen: u64,
    grace: Duration,
    /// A removed key kept for the peer's frames sealed before it switched, and until when.
    retained: Option<(KeyId, Instant)>,
}

impl KeyFollower {
    /// A codec for one connection and the follower that keeps its keys current, built from a
    /// single snapshot of the node's keys (so that a change in between cannot be missed).
    pub(super) fn codec(
        config: CodecConfig,
        security: &EndpointSecurity,
        grace: Duration,
    ) -> (Codec, Self) {
        match security {
            EndpointSecurity::Plaintext => (
                Codec::new(config, Security::Plaintext),
                KeyFollower {
                    keys: None,
                    seen: 0,
                    grace,
                    retained: None,
                },
            ),
            EndpointSecurity::Keyring(keys) => {
                let (ring, seen) = keys.snapshot();
                let follower = KeyFollower {
                    keys: Some(keys.clone()),
                    seen,
                    grace,
                    retained: None,
                };
                (Codec::new(config, Security::Keyring(ring)), follower)
            }
        }
    }

    /// Must be called before every seal or open: one atomic load when nothing changed.
    /// `in_use` is the key the peer last sealed with (inbound streams), `None` when sealing.
    pub(super) fn refresh(&mut self, codec: &mut Codec, in_use: Option<KeyId>) {
        let Some(keys) = &self.keys else { return };
        if let Some((id, until)) = self.retained
            && (in_use != Some(id) || Instant::now() >= until)
        {
            self.retained = None;
            if let Some(ring) = codec.keyring_mut() {
                // Never the primary: a retained key is appended after the node's keys.
                let _ = ring.remove(id);
            }
            tracing::debug!(key = ?id, "removed key no longer used by the peer; dropped");
        }
        if keys.version() == self.seen {
            return;
        }
        let (mut ring, version) = keys.snapshot();
        self.seen = version;
        let Some(current) = codec.keyring_mut() else {
            return;
        };
        if let Some(id) = in_use
            && ring.key_ids().all(|k| k != id)
            && let Some(key) = current.take(id)
        {
            ring.keep(key);
            let until = self
                .retained
                .map_or_else(|| Instant::now() + self.grace, |(_, t)| t);
            self.retained = Some((id, until));
        }
        *current = ring;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ClusterId, FrameKind, Incarnation, NodeId};
    use crate::keyring::Key;
    use crate::stream::StreamDecoder;

    fn config(node: u128) -> CodecConfig {
        CodecConfig::new(ClusterId(1), NodeId::from_u128(node), Incarnation(1))
    }

    /// Seals one frame with the sender's current keys and feeds it to the receiver's decoder.
    fn send(
        (sender, sender_keys): &mut (Codec, KeyFollower),
        (receiver, receiver_keys): &mut (Codec, KeyFollower),
        decoder: &mut StreamDecoder,
    ) -> bool {
        sender_keys.refresh(sender, None);
        let frame = sender
            .seal_stream_frame(FrameKind::ActorMessage, b"x")
            .unwrap();
        decoder.push(&frame);
        receiver_keys.refresh(receiver, decoder.last_key());
        decoder.next_frame(receiver).is_ok_and(|f| f.is_some())
    }

    #[test]
    fn a_removed_key_stays_usable_until_the_peer_switches() {
        let (old, new) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
        let (a_ring, b_ring) = (
            SharedKeyring::new(old.clone()),
            SharedKeyring::new(old.clone()),
        );
        let grace = Duration::from_secs(3_600);
        let security = |ring: &SharedKeyring| EndpointSecurity::Keyring(ring.clone());
        let mut a = KeyFollower::codec(config(1), &security(&a_ring), grace);
        let mut b = KeyFollower::codec(config(2), &security(&b_ring), grace);
        let mut decoder = StreamDecoder::new();
        assert!(send(&mut a, &mut b, &mut decoder));

        // A frame sealed with the old key is still unread when B removes that key.
        a_ring.install(new.clone()).unwrap();
        b_ring.install(new.clone()).unwrap();
        let in_flight =
            a.0.seal_stream_frame(FrameKind::ActorMessage, b"old")
                .unwrap();
        b_ring.use_key(new.id()).unwrap();
        b_ring.remove(old.id()).unwrap();
        decoder.push(&in_flight);
        b.1.refresh(&mut b.0, decoder.last_key());
        assert_eq!(
            decoder.next_frame(&mut b.0).unwrap().unwrap().payload,
            b"old"
        );
        assert!(
            send(&mut a, &mut b, &mut decoder),
            "A still seals with the old key"
        );

        // A switches: the old key is dropped from B's connection at B's next frame.
        a_ring.use_key(new.id()).unwrap();
        assert!(send(&mut a, &mut b, &mut decoder));
        a_ring.remove(old.id()).unwrap();
        assert!(send(&mut a, &mut b, &mut decoder));
        assert_eq!(
            b.0.keyring_mut().unwrap().key_ids().collect::<Vec<_>>(),
            vec![new.id()]
        );
        assert_eq!(b.0.counters().total(), 0);
    }

    #[test]
    fn a_removed_key_is_not_kept_for_a_peer_that_never_used_it() {
        let (old, new) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
        let ring = SharedKeyring::new(old.clone());
        ring.install(new.clone()).unwrap();
        let sender = SharedKeyring::new(new.clone());
        let grace = Duration::from_secs(3_600);
        let mut a = KeyFollower::codec(config(1), &EndpointSecurity::Keyring(sender), grace);
        let mut b = KeyFollower::codec(config(2), &EndpointSecurity::Keyring(ring.clone()), grace);
        let mut decoder = StreamDecoder::new();
        assert!(send(&mut a, &mut b, &mut decoder));
        ring.use_key(new.id()).unwrap();
        ring.remove(old.id()).unwrap();
        assert!(send(&mut a, &mut b, &mut decoder));
        assert_eq!(
            b.0.keyring_mut().unwrap().key_ids().collect::<Vec<_>>(),
            vec![new.id()]
        );
    }

    #[test]
    fn the_grace_period_bounds_how_long_a_removed_key_is_kept() {
        let (old, new) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
        let (a_ring, b_ring) = (
            SharedKeyring::new(old.clone()),
            SharedKeyring::new(old.clone()),
        );
        let mut a = KeyFollower::codec(
            config(1),
            &EndpointSecurity::Keyring(a_ring),
            Duration::ZERO,
        );
        let mut b = KeyFollower::codec(
            config(2),
            &EndpointSecurity::Keyring(b_ring.clone()),
            Duration::ZERO,
        );
        let mut decoder = StreamDecoder::new();
        assert!(send(&mut a, &mut b, &mut decoder));
        b_ring.install(new.clone()).unwrap();
        b_ring.use_key(new.id()).unwrap();
        b_ring.remove(old.id()).unwrap();
        // Kept at the refresh that sees the removal, dropped at the next once the grace is over.
        assert!(send(&mut a, &mut b, &mut decoder));
        assert!(!send(&mut a, &mut b, &mut decoder));
    }
}
