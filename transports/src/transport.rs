//! The transport abstraction: how sealed bytes move between nodes.
//!
//! A [`Transport`] moves opaque bytes: unreliable, unordered datagrams of at most one MTU, and
//! reliable, ordered byte streams. It knows nothing about frames, keys or replay: the
//! [`Codec`](crate::Codec) seals before sending and opens after receiving, so every transport,
//! real or simulated, gets the same security for free.
//!
//! [`NetTransport`](crate::NetTransport) implements it on real sockets.
//!
//! The methods return boxed futures ([`TransportFuture`]) so that `dyn Transport` works: the node picks its transport
//! at run time (real or simulated) and the services above hold an `Arc<dyn Transport>`. One
//! allocation per call is small next to a system call or an AEAD pass.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// Moves datagrams and streams between nodes; implemented by the UDP/TCP transport and by the
/// simulated network.
///
/// Implementations must be cheap to share (`&self` everywhere; wrap state in locks or
/// channels) and must not panic on anything a peer sends.
///
/// # Examples
///
/// A transport is normally used through the codec:
///
/// ```
/// use std::net::SocketAddr;
///
/// use phalanx_transports::{Codec, FrameKind, Transport};
///
/// async fn gossip_to(
///     transport: &dyn Transport,
///     codec: &mut Codec,
///     peer: SocketAddr,
///     payload: &[u8],
/// ) -> Result<(), Box<dyn std::error::Error>> {
///     let datagram = codec.seal_datagram(FrameKind::Gossip, payload)?;
///     transport.send_datagram(peer, &datagram).await?;
///     Ok(())
/// }
/// ```
pub trait Transport: Send + Sync + fmt::Debug {
    /// The address other nodes reach this transport at.
    fn local_addr(&self) -> SocketAddr;

    /// The largest datagram [`Transport::send_datagram`] accepts.
    fn max_datagram(&self) -> usize;

    /// Sends one datagram, best effort: success means it was handed to the network, not that
    /// it arrived.
    ///
    /// # Errors
    ///
    /// [`TransportError::DatagramTooLarge`] above [`Transport::max_datagram`], otherwise an I/O
    /// or closed error. A failed send changes nothing; the caller may retry or drop it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, the datagram was sent whole or not at all.
    fn send_datagram<'a>(&'a self, to: SocketAddr, datagram: &'a [u8]) -> TransportFuture<'a, ()>;

    /// Receives the next datagram into `buf`, returning its length and sender. A datagram longer
    /// than `buf` is truncated to it (give a buffer of [`Transport::max_datagram`] bytes plus
    /// one to notice, and let the codec reject it as oversized).
    ///
    /// # Errors
    ///
    /// An I/O or closed error; a closed transport stays closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is only taken from the transport when the future completes.
    fn recv_datagram<'a>(&'a self, buf: &'a mut [u8]) -> TransportFuture<'a, (usize, SocketAddr)>;

    /// Opens a reliable, ordered byte stream to `to`.
    ///
    /// # Errors
    ///
    /// [`TransportError::Unreachable`] if no connection could be made, otherwise an I/O or
    /// closed error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt; nothing is left open.
    fn open_stream(&self, to: SocketAddr) -> TransportFuture<'_, Box<dyn ByteStream>>;

    /// Waits for the next stream another node opened to this one.
    ///
    /// # Errors
    ///
    /// An I/O or closed error; a closed transport stays closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an incoming stream is only taken when the future completes.
    fn accept_stream(&self) -> TransportFuture<'_, (Box<dyn ByteStream>, SocketAddr)>;
}

/// The future a [`Transport`] method returns: boxed, so that the trait is dyn-compatible.
///
/// # Examples
///
/// ```
/// use phalanx_transports::TransportFuture;
///
/// let future = TransportFuture::new(async { Ok(42) });
/// assert_eq!(futures_lite::future::block_on(future)?, 42);
/// # Ok::<(), phalanx_transports::TransportError>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct TransportFuture<'a, T>(
    Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send + 'a>>,
);

impl<'a, T> TransportFuture<'a, T> {
    /// Boxes a future.
    pub fn new(future: impl Future<Output = Result<T, TransportError>> + Send + 'a) -> Self {
        TransportFuture(Box::pin(future))
    }
}

impl<T> Future for TransportFuture<'_, T> {
    type Output = Result<T, TransportError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for TransportFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportFuture").finish_non_exhaustive()
    }
}

/// A reliable, ordered, bidirectional byte stream from a [`Transport`]. Frames on it are
/// length-delimited (see [`Codec::seal_stream_frame`](crate::Codec::seal_stream_frame) and
/// [`StreamDecoder`](crate::StreamDecoder)).
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug> ByteStream for T {}

/// A transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The datagram is larger than the transport carries; nothing was sent.
    #[error("datagram of {len} bytes exceeds the transport's maximum of {max}")]
    DatagramTooLarge {
        /// The datagram's length.
        len: usize,
        /// The transport's maximum.
        max: usize,
    },
    /// No connection to this address could be made.
    #[error("{0} is unreachable")]
    Unreachable(SocketAddr),
    /// The transport was shut down; it will not work again.
    #[error("transport closed")]
    Closed,
    /// The operating system reported an error.
    #[error("transport I/O error")]
    Io(#[from] io::Error),
}

impl TransportError {
    /// The check every [`Transport::send_datagram`] makes first: `datagram` fits in `max`.
    ///
    /// # Errors
    ///
    /// [`TransportError::DatagramTooLarge`] if it does not.
    pub fn check_datagram(datagram: &[u8], max: usize) -> Result<(), TransportError> {
        if datagram.len() > max {
            return Err(TransportError::DatagramTooLarge {
                len: datagram.len(),
                max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use futures_lite::future;

    use super::*;

    /// A transport that delivers datagrams to itself, to show that the trait is dyn-compatible
    /// and usable with the codec.
    #[derive(Debug, Default)]
    struct Loopback {
        queue: Mutex<VecDeque<Vec<u8>>>,
    }

    impl Transport for Loopback {
        fn local_addr(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 7946))
        }

        fn max_datagram(&self) -> usize {
            1_400
        }

        fn send_datagram<'a>(
            &'a self,
            _to: SocketAddr,
            datagram: &'a [u8],
        ) -> TransportFuture<'a, ()> {
            TransportFuture::new(async move {
                TransportError::check_datagram(datagram, self.max_datagram())?;
                self.queue
                    .lock()
                    .map_err(|_| TransportError::Closed)?
                    .push_back(datagram.to_vec());
                Ok(())
            })
        }

        fn recv_datagram<'a>(
            &'a self,
            buf: &'a mut [u8],
        ) -> TransportFuture<'a, (usize, SocketAddr)> {
            TransportFuture::new(async move {
                let datagram = self
                    .queue
                    .lock()
                    .map_err(|_| TransportError::Closed)?
                    .pop_front()
                    .ok_or(TransportError::Closed)?;
                let len = datagram.len().min(buf.len());
                buf[..len].copy_from_slice(&datagram[..len]);
                Ok((len, self.local_addr()))
            })
        }

        fn open_stream(&self, to: SocketAddr) -> TransportFuture<'_, Box<dyn ByteStream>> {
            TransportFuture::new(async move { Err(TransportError::Unreachable(to)) })
        }

        fn accept_stream(&self) -> TransportFuture<'_, (Box<dyn ByteStream>, SocketAddr)> {
            TransportFuture::new(async { Err(TransportError::Closed) })
        }
    }

    #[test]
    fn a_dyn_transport_carries_sealed_datagrams() {
        use crate::{ClusterId, Codec, CodecConfig, FrameKind, Incarnation, NodeId, Security};

        let transport: Arc<dyn Transport> = Arc::new(Loopback::default());
        let config = CodecConfig::new(ClusterId(1), NodeId::from_u128(1), Incarnation(0));
        let mut sender = Codec::new(config.clone(), Security::Plaintext);
        let mut receiver = Codec::new(config, Security::Plaintext);
        future::block_on(async {
            let datagram = sender.seal_datagram(FrameKind::Gossip, b"hi").unwrap();
            transport
                .send_datagram(transport.local_addr(), &datagram)
                .await
                .unwrap();
            let mut buf = vec![0; transport.max_datagram() + 1];
            let (len, from) = transport.recv_datagram(&mut buf).await.unwrap();
            assert_eq!(from, transport.local_addr());
            assert_eq!(receiver.open_datagram(&buf[..len]).unwrap().payload, b"hi");

            let too_big = vec![0; 1_401];
            let error = transport.send_datagram(from, &too_big).await.unwrap_err();
            assert!(matches!(
                error,
                TransportError::DatagramTooLarge {
                    len: 1_401,
                    max: 1_400
                }
            ));
            assert!(transport.open_stream(from).await.is_err());
            assert!(transport.accept_stream().await.is_err());
        });
    }
}
