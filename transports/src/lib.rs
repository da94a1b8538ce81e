//! Wire format, encryption and transports for phalanx.
//!
//! This crate turns what nodes say to each other into bytes and back: the frame format
//! ([`Frame`], [`FrameHeader`], [`FrameKind`]), its sealing with a rotating [`Keyring`]
//! (XChaCha20-Poly1305), replay protection, and the accounting of every input it drops
//! ([`DropCounters`]). All of it is sans-IO: a [`Codec`] never touches a socket, never reads a
//! clock and never spawns; transports feed it bytes and send the bytes it returns. Around it:
//! real UDP/TCP on async-net ([`NetTransport`]), the connection layer ([`Endpoint`]: one
//! sealed, batched, reconnecting stream per peer and direction, with a challenge-response
//! handshake), and an in-memory simulated network for deterministic tests.
//!
//! # Examples
//!
//! ```
//! use phalanx_transports::{
//!     ClusterId, Codec, CodecConfig, FrameKind, Incarnation, Key, Keyring, NodeId, Security,
//! };
//!
//! let key = Key::generate()?;
//! let config = |node| CodecConfig::new(ClusterId(7), NodeId::from_u128(node), Incarnation(1));
//! let mut a = Codec::new(config(1), Security::Keyring(Keyring::new(key.clone())));
//! let mut b = Codec::new(config(2), Security::Keyring(Keyring::new(key)));
//!
//! let datagram = a.seal_datagram(FrameKind::ActorMessage, b"hello")?;
//! assert!(datagram.len() <= a.config().max_datagram);
//! let frame = b.open_datagram(&datagram)?;
//! assert_eq!((frame.header.kind, &frame.payload[..]), (FrameKind::ActorMessage, &b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - `frame`: [`NodeId`], [`Incarnation`], [`ClusterId`], [`FrameKind`], [`FrameHeader`],
//!   [`Frame`].
//! - `envelope`: the byte layout of a sealed frame (documented there) and the AEAD.
//! - `keyring`: [`Key`], [`KeyId`], [`Keyring`].
//! - `codec`: [`Codec`], [`CodecConfig`], [`Security`]: the entry point.
//! - `stream`: [`StreamDecoder`] for length-delimited frames on streams.
//! - `replay`: the per-sender sliding replay window.
//! - `counters`, `error`: [`DropCounters`], [`DecodeError`], [`EncodeError`].
//! - `transport`: the [`Transport`] trait (datagrams and [`ByteStream`]s), [`TransportError`].
//! - `net`: [`NetTransport`], UDP and TCP on async-net.
//! - `endpoint`: [`Endpoint`], the connection layer (handshake, batching outbox, reconnection
//!   with [`Backoff`], peer up/down), shared keys in [`SharedKeyring`].
//! - `remote`: [`Remoting`], [`RemoteMessage`]: `ActorRef`s to actors on other nodes.
//! - `sim`: the simulated network: [`SimNetwork`] (sans-IO) and, behind the [`Transport`]
//!   trait, [`SimHub`] and its [`SimTransport`]s.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod backoff;
mod codec;
mod counters;
mod endpoint;
mod envelope;
mod error;
mod frame;
mod keyring;
mod net;
mod remote;
mod replay;
mod shared_keyring;
mod stream;
mod transport;

pub use backoff::Backoff;
pub use codec::{
    Codec, CodecConfig, DEFAULT_MAX_DATAGRAM, DEFAULT_MAX_STREAM_FRAME, DEFAULT_REPLAY_SENDERS,
    Security,
};
pub use counters::DropCounters;
pub use endpoint::{
    ConnectError, DEFAULT_BATCH_BYTES, Delivery, Endpoint, EndpointConfig, EndpointSecurity,
    Handler, PeerSender, SendBytesError,
};
pub use error::{DecodeError, EncodeError};
pub use frame::{
    ClusterId, Frame, FrameHeader, FrameKind, Incarnation, NodeId, PROTOCOL_VERSION,
    RandomUnavailableError,
};
pub use keyring::{Key, KeyId, Keyring, KeyringError};
pub use net::NetTransport;
pub use remote::{
    Carrier, DatagramCarrier, DatagramStats, RemoteError, RemoteMessage, Remoting,
    decode_datagram_record, encode_datagram_record,
};
pub use shared_keyring::SharedKeyring;
pub use stream::StreamDecoder;
pub use transport::{ByteStream, Transport, TransportError, TransportFuture};

mod sim;
pub use sim::{SimClock, SimFaults, SimHub, SimInstant, SimNetwork, SimStats, SimTransport};
