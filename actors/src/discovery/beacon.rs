//! Beacons: the small datagram a node multicasts on its LAN to say "my gossip is here".
//!
//! # Layout
//!
//! A beacon travels as the payload of a [`FrameKind::Control`] datagram sealed by a
//! [`Codec`]: with a cluster key configured the whole beacon is encrypted and authenticated
//! (and the codec's envelope names the cluster and protocol version in the clear); without one
//! it is a plaintext frame that anyone on the LAN can forge, which only suits development.
//! The beacon body itself is fixed-size, little-endian:
//!
//! ```text
//! offset  size  field
//!      0     4  magic "PXBC"
//!      4     1  beacon version (1)
//!      5     1  address family: 4 or 6
//!      6     8  cluster id (u64)
//!     14    16  node id (u128)
//!     30  4|16  gossip IP address
//!  34|46     2  gossip port (u16)
//! ```
//!
//! So a body is exactly 36 bytes (IPv4) or 48 bytes (IPv6); anything else is rejected. The
//! cluster id and node id repeat what the codec's envelope says, and a beacon whose body
//! disagrees with its envelope is rejected as garbled: the body is what gossip is told, the
//! envelope is what was authenticated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use phalanx_transports::{ClusterId, Codec, DecodeError, FrameKind, NodeId};

/// The first four bytes of every beacon body.
pub const BEACON_MAGIC: [u8; 4] = *b"PXBC";

/// The beacon version this crate writes and accepts.
pub const BEACON_VERSION: u8 = 1;

/// The largest sealed beacon accepted, in bytes; larger datagrams are dropped unread.
///
/// A sealed IPv6 beacon is about 150 bytes (48 of body plus the codec's envelope).
pub const MAX_BEACON_DATAGRAM: usize = 256;

/// Length of the body before the address.
const PREFIX_LEN: usize = 30;
/// Length of an IPv4 body.
const V4_LEN: usize = PREFIX_LEN + 4 + 2;
/// Length of an IPv6 body.
const V6_LEN: usize = PREFIX_LEN + 16 + 2;

/// What a beacon announces: a node of a cluster and the address its gossip listens on.
///
/// # Examples
///
/// ```
/// use phalanx_actors::discovery::Beacon;
/// use phalanx_transports::{ClusterId, NodeId};
///
/// let beacon = Beacon {
///     cluster: ClusterId(7),
///     node: NodeId::from_u128(42),
///     gossip: "127.0.0.1:7946".parse()?,
/// };
/// let body = beacon.encode();
/// assert_eq!(body.len(), 36);
/// assert_eq!(Beacon::decode(&body), Ok(beacon));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Beacon {
    /// The cluster the sender belongs to.
    pub cluster: ClusterId,
    /// The sending node.
    pub node: NodeId,
    /// Where the sender's gossip listens.
    pub gossip: SocketAddr,
}

impl Beacon {
    /// Encodes the beacon body (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(V6_LEN);
        out.extend_from_slice(&BEACON_MAGIC);
        out.push(BEACON_VERSION);
        match self.gossip.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&self.cluster.0.to_le_bytes());
                out.extend_from_slice(&self.node.as_u128().to_le_bytes());
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&self.cluster.0.to_le_bytes());
                out.extend_from_slice(&self.node.as_u128().to_le_bytes());
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&self.gossip.port().to_le_bytes());
        out
    }

    /// Decodes a beacon body. Allocates nothing, whatever the bytes say.
    ///
    /// # Errors
    ///
    /// [`BeaconError::Truncated`], [`BeaconError::Garbled`] (wrong magic, unknown address
    /// family, trailing bytes), [`BeaconError::WrongVersion`]. The cluster is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<Beacon, BeaconError> {
        if bytes.len() < 6 {
            return Err(BeaconError::Truncated {
                len: bytes.len(),
                needed: 6,
            });
        }
        if bytes[0..4] != BEACON_MAGIC {
            return Err(BeaconError::Garbled { what: "magic" });
        }
        if bytes[4] != BEACON_VERSION {
            return Err(BeaconError::WrongVersion(bytes[4]));
        }
        let needed = match bytes[5] {
            4 => V4_LEN,
            6 => V6_LEN,
            _ => return Err(BeaconError::Garbled { what: "family" }),
        };
        if bytes.len() < needed {
            return Err(BeaconError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        if bytes.len() > needed {
            return Err(BeaconError::Garbled {
                what: "trailing bytes",
            });
        }
        let cluster = ClusterId(u64::from_le_bytes(array(&bytes[6..14])));
        let node = NodeId::from_u128(u128::from_le_bytes(array(&bytes[14..30])));
        let (ip, rest) = if needed == V4_LEN {
            let octets: [u8; 4] = array(&bytes[PREFIX_LEN..PREFIX_LEN + 4]);
            (IpAddr::V4(Ipv4Addr::from(octets)), &bytes[PREFIX_LEN + 4..])
        } else {
            let octets: [u8; 16] = array(&bytes[PREFIX_LEN..PREFIX_LEN + 16]);
            (
                IpAddr::V6(Ipv6Addr::from(octets)),
                &bytes[PREFIX_LEN + 16..],
            )
        };
        let port = u16::from_le_bytes(array(rest));
        Ok(Beacon {
            cluster,
            node,
            gossip: SocketAddr::new(ip, port),
        })
    }

    /// Seals the beacon with `codec` into one datagram ready to send.
    ///
    /// # Errors
    ///
    /// The codec's [`EncodeError`](phalanx_transports::EncodeError) (no random nonce, or a
    /// configured maximum datagram too small for a beacon).
    pub fn seal(&self, codec: &mut Codec) -> Result<Vec<u8>, phalanx_transports::EncodeError> {
        codec.seal_datagram(FrameKind::Control, &self.encode())
    }

    /// Opens a received datagram with `codec` and checks that the beacon inside is for the
    /// codec's cluster and agrees with its authenticated envelope.
    ///
    /// # Errors
    ///
    /// Any [`BeaconError`]; the datagram is dropped and nothing else changes (the codec counts
    /// its own drops too).
    pub fn open(codec: &mut Codec, datagram: &[u8]) -> Result<Beacon, BeaconError> {
        if datagram.len() > MAX_BEACON_DATAGRAM {
            return Err(BeaconError::Oversized {
                len: datagram.len(),
                max: MAX_BEACON_DATAGRAM,
            });
        }
        let frame = codec.open_datagram(datagram).map_err(BeaconError::from)?;
        if frame.header.kind != FrameKind::Control {
            return Err(BeaconError::Garbled { what: "frame kind" });
        }
        let beacon = Beacon::decode(&frame.payload)?;
        if beacon.cluster != frame.header.cluster {
            return Err(BeaconError::WrongCluster {
                expected: frame.header.cluster,
                found: beacon.cluster,
            });
        }
        if beacon.node != frame.header.sender {
            return Err(BeaconError::Garbled {
                what: "node id differs from the envelope's",
            });
        }
        Ok(beacon)
    }
}

/// Why a received beacon was dropped. None of them changes the discovery state beyond one
/// counter in [`BeaconCounters`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BeaconError {
    /// Not a beacon: wrong magic, unknown address family, wrong frame kind, trailing bytes, or
    /// a body that disagrees with its envelope.
    #[error("garbled beacon: {what}")]
    Garbled {
        /// Which part was wrong.
        what: &'static str,
    },
    /// Shorter than a beacon must be.
    #[error("truncated beacon: {len} bytes, at least {needed} needed")]
    Truncated {
        /// How many bytes there were.
        len: usize,
        /// How many were needed.
        needed: usize,
    },
    /// Larger than [`MAX_BEACON_DATAGRAM`].
    #[error("oversized beacon: {len} bytes, at most {max} allowed")]
    Oversized {
        /// The datagram's size.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// From another cluster.
    #[error("beacon for cluster {found}, this is cluster {expected}")]
    WrongCluster {
        /// This node's cluster.
        expected: ClusterId,
        /// The cluster the beacon names.
        found: ClusterId,
    },
    /// No installed key authenticates it, or it is plaintext where a key is configured (or the
    /// other way round).
    #[error("beacon failed authentication")]
    Unauthenticated,
    /// A beacon or protocol version this node does not speak.
    #[error("unknown beacon or protocol version {0}")]
    WrongVersion(u8),
    /// Already received once, or from an older incarnation of its sender.
    #[error("replayed beacon")]
    Replayed,
}

impl From<DecodeError> for BeaconError {
    fn from(error: DecodeError) -> BeaconError {
        match error {
            DecodeError::Truncated { len, needed } => BeaconError::Truncated { len, needed },
            DecodeError::Oversized { len, max } => BeaconError::Oversized { len, max },
            DecodeError::Unauthenticated => BeaconError::Unauthenticated,
            DecodeError::WrongCluster { expected, found } => {
                BeaconError::WrongCluster { expected, found }
            }
            DecodeError::Replayed { .. } => BeaconError::Replayed,
            DecodeError::UnknownVersion(version) => BeaconError::WrongVersion(version),
            DecodeError::UnknownKind(_) => BeaconError::Garbled { what: "frame kind" },
            DecodeError::Garbled { what } => BeaconError::Garbled { what },
            _ => BeaconError::Garbled { what: "envelope" },
        }
    }
}

/// How many received beacons were dropped, by reason, and how many of our own came back.
///
/// Counters only grow (wrapping at `u64::MAX`, never reached in practice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BeaconCounters {
    /// Accepted beacons from other nodes.
    pub accepted: u64,
    /// This node's own beacons, looped back by multicast; ignored, not an error.
    pub own: u64,
    /// [`BeaconError::Garbled`].
    pub garbled: u64,
    /// [`BeaconError::Truncated`].
    pub truncated: u64,
    /// [`BeaconError::Oversized`].
    pub oversized: u64,
    /// [`BeaconError::WrongCluster`].
    pub wrong_cluster: u64,
    /// [`BeaconError::Unauthenticated`].
    pub unauthenticated: u64,
    /// [`BeaconError::WrongVersion`].
    pub wrong_version: u64,
    /// [`BeaconError::Replayed`].
    pub replayed: u64,
}

impl BeaconCounters {
    /// The number of dropped beacons, all reasons together (not counting [`own`](Self::own)).
    pub fn dropped(&self) -> u64 {
        [
            self.garbled,
            self.truncated,
            self.oversized,
            self.wrong_cluster,
            self.unauthenticated,
            self.wrong_version,
            self.replayed,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.wrapping_add(*n))
    }

    /// Counts one dropped beacon and emits its `tracing` event.
    pub(crate) fn record(&mut self, error: &BeaconError, from: SocketAddr, len: usize) {
        let (counter, reason) = match error {
            BeaconError::Garbled { .. } => (&mut self.garbled, "garbled"),
            BeaconError::Truncated { .. } => (&mut self.truncated, "truncated"),
            BeaconError::Oversized { .. } => (&mut self.oversized, "oversized"),
            BeaconError::WrongCluster { .. } => (&mut self.wrong_cluster, "wrong_cluster"),
            BeaconError::Unauthenticated => (&mut self.unauthenticated, "unauthenticated"),
            BeaconError::WrongVersion(_) => (&mut self.wrong_version, "wrong_version"),
            BeaconError::Replayed => (&mut self.replayed, "replayed"),
        };
        *counter = counter.wrapping_add(1);
        tracing::debug!(%from, len, reason, %error, "dropped beacon");
    }
}

/// Copies a slice whose length the caller has checked into an array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    // The callers slice exactly N bytes out of a buffer whose length they checked; a shorter
    // slice would leave zeros rather than panic.
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}
