//! [`SimTransport`]: the [`Transport`] trait on a [`SimHub`](super::SimHub).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::hub::HubShared;
use super::stream::SimStream;
use crate::codec::DEFAULT_MAX_DATAGRAM;
use crate::transport::{ByteStream, Transport, TransportError, TransportFuture};

/// A node's [`Transport`] on a simulated network, from [`SimHub::bind`](super::SimHub::bind).
///
/// It behaves as [`NetTransport`](crate::NetTransport) does, with the hub's faults and
/// virtual time in between: datagrams up to [`max_datagram`](Transport::max_datagram) bytes
/// (longer ones are refused, and a short receive buffer truncates), reliable ordered streams,
/// and [`TransportError::Closed`] for good after [`close`](Self::close), a drop, or a crash of
/// its node. Closing it unbinds its address but leaves its open streams alone, as closing a
/// listening socket does.
///
/// Hand it to an [`Endpoint`](crate::Endpoint) or a
/// [`Remoting`](crate::Remoting::with_transport) as an `Arc<dyn Transport>` to run them on
/// the simulated network, and spawn [`SimHub::run`](super::SimHub::run) to move its clock.
///
/// # Examples
///
/// A stream, driven by hand:
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use phalanx_transports::{SimFaults, SimHub, Transport};
///
/// # futures_lite::future::block_on(async {
/// let hub = SimHub::new(1, SimFaults::none());
/// let a = hub.bind("10.0.0.1:0".parse()?)?;
/// let b = hub.bind("10.0.0.2:0".parse()?)?;
/// let mut out = a.open_stream(b.local_addr()).await?;
/// let (mut incoming, from) = b.accept_stream().await?;
/// assert_eq!(from, a.local_addr());
/// out.write_all(b"hello").await?;
/// hub.run_until_idle();
/// let mut buf = [0; 5];
/// incoming.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct SimTransport {
    hub: Arc<HubShared>,
    addr: SocketAddr,
    /// Set by `close`, a drop or a crash; shared with the hub's slot for this address.
    closed: Arc<AtomicBool>,
    max_datagram: usize,
    datagrams: flume::Receiver<(Vec<u8>, SocketAddr)>,
    accepts: flume::Receiver<(SimStream, SocketAddr)>,
}

impl SimTransport {
    pub(super) fn new(
        hub: Arc<HubShared>,
        addr: SocketAddr,
        closed: Arc<AtomicBool>,
        datagrams: flume::Receiver<(Vec<u8>, SocketAddr)>,
        accepts: flume::Receiver<(SimStream, SocketAddr)>,
    ) -> SimTransport {
        SimTransport {
            hub,
            addr,
            closed,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            datagrams,
            accepts,
        }
    }

    /// This transport with a different largest datagram (default
    /// [`DEFAULT_MAX_DATAGRAM`]); keep it equal to the codec's.
    #[must_use]
    pub fn with_max_datagram(mut self, max: usize) -> SimTransport {
        self.max_datagram = max;
        self
    }

    /// Closes the transport and frees its address; idempotent. Its open streams stay open.
    pub fn close(&self) {
        self.hub.unbind(self.addr, &self.closed);
    }

    /// Whether the transport was closed, dropped from the hub or crashed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<(), TransportError> {
        if self.is_closed() {
            Err(TransportError::Closed)
        } else {
            Ok(())
        }
    }
}

impl Transport for SimTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    fn send_datagram<'a>(&'a self, to: SocketAddr, datagram: &'a [u8]) -> TransportFuture<'a, ()> {
        TransportFuture::new(async move {
            TransportError::check_datagram(datagram, self.max_datagram)?;
            self.check_open()?;
            self.hub.send_datagram(self.addr, to, datagram);
            Ok(())
        })
    }

    fn recv_datagram<'a>(&'a self, buf: &'a mut [u8]) -> TransportFuture<'a, (usize, SocketAddr)> {
        TransportFuture::new(async move {
            self.check_open()?;
            let (datagram, from) = self
                .datagrams
                .recv_async()
                .await
                .map_err(|_| TransportError::Closed)?;
            // What arrived before a close is not handed out after it.
            self.check_open()?;
            let len = datagram.len().min(buf.len());
            buf[..len].copy_from_slice(&datagram[..len]);
            Ok((len, from))
        })
    }

    fn open_stream(&self, to: SocketAddr) -> TransportFuture<'_, Box<dyn ByteStream>> {
        TransportFuture::new(async move {
            self.check_open()?;
            let stream = self.hub.open_stream(self.addr, to)?;
            Ok(Box::new(stream) as Box<dyn ByteStream>)
        })
    }

    fn accept_stream(&self) -> TransportFuture<'_, (Box<dyn ByteStream>, SocketAddr)> {
        TransportFuture::new(async move {
            self.check_open()?;
            let (stream, from) = self
                .accepts
                .recv_async()
                .await
                .map_err(|_| TransportError::Closed)?;
            self.check_open()?;
            Ok((Box::new(stream) as Box<dyn ByteStream>, from))
        })
    }
}

impl Drop for SimTransport {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for SimTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimTransport")
            .field("addr", &self.addr)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
