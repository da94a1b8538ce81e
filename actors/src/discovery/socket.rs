//! Beacon sockets: built with socket2 (address and port reuse, group membership, TTL, loop)
//! and handed to async-net.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use async_net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

/// Where beacons are multicast and how far they may travel.
///
/// # Examples
///
/// ```
/// use std::net::Ipv4Addr;
///
/// use phalanx_actors::discovery::MulticastConfig;
///
/// // Beacons that never leave this machine: the loopback interface, TTL 0.
/// let mut config = MulticastConfig::new("239.255.77.1:7947".parse()?);
/// config.interface_v4 = Ipv4Addr::LOCALHOST;
/// config.ttl = 0;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MulticastConfig {
    /// The multicast group and port: an IPv4 group such as `239.255.77.1` (administratively
    /// scoped) or an IPv6 group such as `ff02::...` (link-local).
    pub group: SocketAddr,
    /// IPv4: the address of the interface to join on and send from; `0.0.0.0` lets the
    /// kernel choose (the interface of the default route). Default `0.0.0.0`.
    pub interface_v4: Ipv4Addr,
    /// IPv6: the index of the interface to join on and send from; 0 lets the kernel choose.
    pub interface_v6: u32,
    /// Multicast TTL (hop limit): 0 keeps beacons on this machine, 1 (the default) on the
    /// local link.
    pub ttl: u32,
    /// Whether this host's own sockets in the group receive what it sends (needed for several
    /// nodes on one host). Default true.
    pub loopback: bool,
}

impl MulticastConfig {
    /// A configuration for `group` with the defaults: kernel-chosen interface, TTL 1, loop on.
    pub fn new(group: SocketAddr) -> MulticastConfig {
        MulticastConfig {
            group,
            interface_v4: Ipv4Addr::UNSPECIFIED,
            interface_v6: 0,
            ttl: 1,
            loopback: true,
        }
    }

    /// Where beacons are sent and the receiver is bound: the group, with the interface index
    /// as the scope of an IPv6 group (link-local groups need one).
    pub fn target(&self) -> SocketAddr {
        match self.group {
            SocketAddr::V4(_) => self.group,
            SocketAddr::V6(group) => SocketAddr::V6(SocketAddrV6::new(
                *group.ip(),
                group.port(),
                0,
                self.interface_v6,
            )),
        }
    }
}

/// Builds the two sockets of multicast beacons: one that receives the group's datagrams, one
/// that sends to the group.
///
/// The receiver reuses address and port (so several nodes on one host share the group port),
/// joins the group and, on Unix, binds to the group address itself, so that it receives only
/// that group's datagrams and no unicast sent to the port. The sender is bound to an
/// ephemeral port with the configured interface, TTL and loop.
///
/// # Errors
///
/// Any error of the operating system while creating, configuring or binding the sockets
/// (for example no interface able to carry multicast), or [`io::ErrorKind::InvalidInput`] if
/// `group` is not a multicast address.
pub fn multicast_socket(config: &MulticastConfig) -> io::Result<(UdpSocket, UdpSocket)> {
    if !config.group.ip().is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "beacon group is not a multicast address",
        ));
    }
    let domain = Domain::for_address(config.group);
    let receiver = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    receiver.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    receiver.set_reuse_port(true)?;
    let sender = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    match config.group.ip() {
        IpAddr::V4(group) => {
            receiver.join_multicast_v4(&group, &config.interface_v4)?;
            sender.set_multicast_if_v4(&config.interface_v4)?;
            sender.set_multicast_ttl_v4(config.ttl)?;
            sender.set_multicast_loop_v4(config.loopback)?;
            let local = if config.interface_v4.is_unspecified() {
                Ipv4Addr::UNSPECIFIED
            } else {
                config.interface_v4
            };
            sender.bind(&SocketAddr::new(IpAddr::V4(local), 0).into())?;
        }
        IpAddr::V6(group) => {
            receiver.join_multicast_v6(&group, config.interface_v6)?;
            receiver.set_only_v6(true)?;
            sender.set_multicast_if_v6(config.interface_v6)?;
            sender.set_multicast_hops_v6(config.ttl)?;
            sender.set_multicast_loop_v6(config.loopback)?;
            sender.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).into())?;
        }
    }
    receiver.bind(&receive_addr(config.target()).into())?;
    Ok((into_async(receiver)?, into_async(sender)?))
}

/// Builds a socket for broadcast beacons on `port`: it receives broadcasts (and unicast) sent
/// to the port and may send to a broadcast address.
///
/// Use it where multicast is filtered; broadcasts never cross a router.
///
/// # Errors
///
/// Any error of the operating system while creating, configuring or binding the socket.
pub fn broadcast_socket(bind: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    socket.set_broadcast(true)?;
    socket.bind(&bind.into())?;
    into_async(socket)
}

/// The address the receiver binds: the group itself on Unix (which filters by destination),
/// the unspecified address elsewhere (Windows refuses to bind a multicast address).
fn receive_addr(group: SocketAddr) -> SocketAddr {
    if cfg!(unix) {
        group
    } else {
        match group {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), group.port()),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), group.port()),
        }
    }
}

fn into_async(socket: Socket) -> io::Result<UdpSocket> {
    socket.set_nonblocking(true)?;
    UdpSocket::try_from(std::net::UdpSocket::from(socket))
}
