//! The sockets under an endpoint: a UDP socket and a TCP listener bound on one port number,
//! the UDP socket's kernel buffers, and the address forms (`[::]` dual-stack, IPv4-mapped
//! addresses back to IPv4).
//!
//! Plain `std`/`socket2` sockets only: no QUIC, no TLS, no accept loops (those are the
//! endpoint's), and no choice of which sockets a mode needs (the caller says).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::error::{Result, TransportError};

/// Linux errno for "address family not supported" (a host without IPv6).
const EAFNOSUPPORT: i32 = 97;

/// The address to bind for "all interfaces, IPv4 and IPv6" on `port`: `[::]`, dual-stack.
pub fn all_interfaces(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// IPv4-mapped IPv6 addresses (seen on dual-stack sockets) back in their IPv4 form.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Binds a server's sockets on one port number (see [`bind_both`]); if the host has no IPv6,
/// `[::]` falls back to `0.0.0.0`.
pub(crate) fn bind_server(
    bind: SocketAddr,
    wants_udp: bool,
    wants_tcp: bool,
    udp_buffer: usize,
) -> Result<(Option<std::net::UdpSocket>, Option<TcpListener>, SocketAddr)> {
    match bind_both(bind, wants_udp, wants_tcp, udp_buffer) {
        Err(TransportError::Bind { source, .. })
            if bind.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                && source.raw_os_error() == Some(EAFNOSUPPORT) =>
        {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), bind.port());
            warn!("no IPv6 on this host: binding {v4} instead of {bind}");
            bind_both(v4, wants_udp, wants_tcp, udp_buffer)
        }
        other => other,
    }
}

/// A dial-only UDP socket on an ephemeral port: `[::]` (dual-stack), or `0.0.0.0` without IPv6.
pub(crate) fn client_udp_socket(buffer: usize) -> Result<std::net::UdpSocket> {
    udp_socket(all_interfaces(0), buffer).or_else(|_| {
        udp_socket(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            buffer,
        )
    })
}

/// Binds the requested sockets on one port number (a port free for both when `bind` has 0).
fn bind_both(
    bind: SocketAddr,
    wants_udp: bool,
    wants_tcp: bool,
    udp_buffer: usize,
) -> Result<(Option<std::net::UdpSocket>, Option<TcpListener>, SocketAddr)> {
    const ATTEMPTS: usize = 32;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let tcp = if wants_tcp {
            Some(tcp_listener(bind)?)
        } else {
            None
        };
        let port = match &tcp {
            Some(listener) => listener
                .local_addr()
                .map_err(|source| TransportError::Bind { addr: bind, source })?
                .port(),
            None => bind.port(),
        };
        let addr = SocketAddr::new(bind.ip(), port);
        if !wants_udp {
            return Ok((None, tcp, addr));
        }
        match udp_socket(addr, udp_buffer) {
            Ok(udp) => {
                let addr = udp
                    .local_addr()
                    .map_err(|source| TransportError::Bind { addr, source })?;
                return Ok((Some(udp), tcp, addr));
            }
            // The TCP port's UDP twin is taken: try another port, unless one was asked for.
            Err(TransportError::Bind { source, .. })
                if bind.port() == 0 && source.kind() == io::ErrorKind::AddrInUse =>
            {
                last_error = Some(source);
            }
            Err(err) => return Err(err),
        }
    }
    Err(TransportError::Bind {
        addr: bind,
        source: last_error.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")),
    })
}

fn tcp_listener(addr: SocketAddr) -> Result<TcpListener> {
    let bind_error = |source| TransportError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_error)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false).map_err(bind_error)?;
    }
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    socket.listen(1024).map_err(bind_error)?;
    TcpListener::from_std(socket.into()).map_err(bind_error)
}

/// A UDP socket with enlarged kernel buffers (the kernel caps them at `net.core.rmem_max` /
/// `wmem_max`; the effective sizes are logged), dual-stack when bound to `[::]`, non-blocking.
/// Public for tools that must run quinn on the same sockets as the product (the benchmark's
/// bare-quinn peer), with `buffer` = [`crate::TransportConfig::udp_socket_buffer`].
pub fn udp_socket(addr: SocketAddr, buffer: usize) -> Result<std::net::UdpSocket> {
    let bind_error = |source| TransportError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_error)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false).map_err(bind_error)?;
    }
    if let Err(err) = socket.set_recv_buffer_size(buffer) {
        debug!("SO_RCVBUF {buffer}: {err}");
    }
    if let Err(err) = socket.set_send_buffer_size(buffer) {
        debug!("SO_SNDBUF {buffer}: {err}");
    }
    // The kernel caps the above at net.core.{r,w}mem_max; with CAP_NET_ADMIN the *FORCE
    // variants go past the cap. Without the capability they fail and the capped size stays.
    // (Linux reports twice the requested size, to account for its bookkeeping.)
    if socket.recv_buffer_size().unwrap_or(0) < buffer {
        force_buffer(&socket, libc::SO_RCVBUFFORCE, buffer);
    }
    if socket.send_buffer_size().unwrap_or(0) < buffer {
        force_buffer(&socket, libc::SO_SNDBUFFORCE, buffer);
    }
    let effective = (
        socket.recv_buffer_size().unwrap_or(0),
        socket.send_buffer_size().unwrap_or(0),
    );
    if effective.0 < buffer {
        debug!(
            requested = buffer,
            recv = effective.0,
            send = effective.1,
            "UDP socket buffers capped by the kernel (raise net.core.rmem_max / wmem_max)"
        );
    }
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    Ok(socket.into())
}

/// Sets a socket buffer size past the sysctl cap (needs CAP_NET_ADMIN); best effort.
fn force_buffer(socket: &Socket, option: libc::c_int, size: usize) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor, a pointer to a c_int and its exact length.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        debug!(
            "forcing socket buffer to {size}: {}",
            io::Error::last_os_error()
        );
    }
}
