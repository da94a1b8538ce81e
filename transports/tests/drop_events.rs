//! Every datagram the codec drops is counted once and emits exactly one `tracing` event.
//!
//! This is the only test of its binary (see `support/events.rs` for why).

#[path = "support/events.rs"]
mod events;

use std::sync::atomic::Ordering;

use phalanx_transports::{
    ClusterId, Codec, CodecConfig, FrameKind, Incarnation, Key, Keyring, NodeId, Security,
};

use events::EventCounter;

fn codec(node: u128, key: u8) -> Codec {
    let config = CodecConfig::new(ClusterId(3), NodeId::from_u128(node), Incarnation(1));
    Codec::new(
        config,
        Security::Keyring(Keyring::new(Key::from_bytes([key; 32]))),
    )
}

#[test]
fn every_counted_drop_emits_one_tracing_event() -> Result<(), String> {
    let mut sender = codec(1, 7);
    let mut stranger = codec(2, 8);
    let good = sender
        .seal_datagram(FrameKind::ActorMessage, b"hello")
        .map_err(|e| e.to_string())?;
    let unauthenticated = stranger
        .seal_datagram(FrameKind::ActorMessage, b"hello")
        .map_err(|e| e.to_string())?;
    let (subscriber, events) = EventCounter::new("phalanx_transports");
    let receiver = tracing::subscriber::with_default(subscriber, || {
        let mut receiver = codec(9, 7);
        let accepted = receiver.open_datagram(&good).is_ok(); // no event
        let _ = receiver.open_datagram(&good); // replayed
        let _ = receiver.open_datagram(&unauthenticated);
        let _ = receiver.open_datagram(b"PX"); // truncated
        let _ = receiver.open_datagram(&[0xA5; 200]); // garbled magic
        (accepted, receiver.counters().total())
    });
    assert_eq!(receiver, (true, 4));
    assert_eq!(events.load(Ordering::Relaxed), 4);
    Ok(())
}
