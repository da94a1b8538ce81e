//! The real transport: UDP datagrams and TCP streams on async-net.
//!
//! One [`NetTransport`] binds a TCP listener and a UDP socket on the same address and port,
//! so that a node is reached at one [`SocketAddr`] for both. Streams have `TCP_NODELAY` set:
//! the connection layer above coalesces writes itself, so Nagle's algorithm would only add
//! latency.

use std::io;
use std::net::SocketAddr;

use async_net::{TcpListener, TcpStream, UdpSocket};

use crate::codec::DEFAULT_MAX_DATAGRAM;
use crate::transport::{ByteStream, Transport, TransportError, TransportFuture};

/// UDP datagrams and TCP streams on real sockets (async-net).
///
/// # Examples
///
/// ```
/// use phalanx_transports::{NetTransport, Transport};
///
/// # futures_lite::future::block_on(async {
/// let a = NetTransport::bind("127.0.0.1:0".parse()?).await?;
/// let b = NetTransport::bind("127.0.0.1:0".parse()?).await?;
/// a.send_datagram(b.local_addr(), b"ping").await?;
/// let mut buf = [0; 1_401];
/// let (len, from) = b.recv_datagram(&mut buf).await?;
/// assert_eq!((&buf[..len], from), (&b"ping"[..], a.local_addr()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct NetTransport {
    udp: UdpSocket,
    tcp: TcpListener,
    local: SocketAddr,
    max_datagram: usize,
}

impl NetTransport {
    /// Binds TCP and UDP on `addr`. With port 0 the operating system picks a port that is free
    /// for both protocols.
    ///
    /// # Errors
    ///
    /// [`TransportError::Io`] if either socket cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<NetTransport, TransportError> {
        // With port 0, the TCP port the system picks may be taken for UDP: try a few times.
        let attempts = if addr.port() == 0 { 16 } else { 1 };
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no port free for TCP and UDP");
        for _ in 0..attempts {
            let tcp = TcpListener::bind(addr).await?;
            let local = tcp.local_addr()?;
            match UdpSocket::bind(local).await {
                Ok(udp) => {
                    return Ok(NetTransport {
                        udp,
                        tcp,
                        local,
                        max_datagram: DEFAULT_MAX_DATAGRAM,
                    });
                }
                Err(error) => last = error,
            }
        }
        Err(TransportError::Io(last))
    }

    /// This transport with a different largest datagram (default
    /// [`DEFAULT_MAX_DATAGRAM`]); keep it equal to the codec's.
    #[must_use]
    pub fn with_max_datagram(mut self, max: usize) -> NetTransport {
        self.max_datagram = max;
        self
    }
}

impl Transport for NetTransport {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    fn send_datagram<'a>(&'a self, to: SocketAddr, datagram: &'a [u8]) -> TransportFuture<'a, ()> {
        TransportFuture::new(async move {
            TransportError::check_datagram(datagram, self.max_datagram)?;
            self.udp.send_to(datagram, to).await?;
            Ok(())
        })
    }

    fn recv_datagram<'a>(&'a self, buf: &'a mut [u8]) -> TransportFuture<'a, (usize, SocketAddr)> {
        TransportFuture::new(async move { Ok(self.udp.recv_from(buf).await?) })
    }

    fn open_stream(&self, to: SocketAddr) -> TransportFuture<'_, Box<dyn ByteStream>> {
        TransportFuture::new(async move {
            let stream = match TcpStream::connect(to).await {
                Ok(stream) => stream,
                Err(error) if is_unreachable(&error) => {
                    return Err(TransportError::Unreachable(to));
                }
                Err(error) => return Err(TransportError::Io(error)),
            };
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn ByteStream>)
        })
    }

    fn accept_stream(&self) -> TransportFuture<'_, (Box<dyn ByteStream>, SocketAddr)> {
        TransportFuture::new(async move {
            let (stream, from) = self.tcp.accept().await?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as Box<dyn ByteStream>, from))
        })
    }
}

fn is_unreachable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::TimedOut
    )
}
