//! A connection to one peer, over QUIC or over TLS on TCP, behind one type.
//!
//! Over QUIC a connection carries many bidirectional streams (one per exchange). TCP has no
//! streams, so a TCP connection is modelled per side:
//! - **client side** ([`Connection::open_bi`]): a small pool of TLS sockets to the peer. Each
//!   exchange takes an idle socket or dials one (at most
//!   [`TransportConfig::tcp_sockets_per_peer`](crate::TransportConfig) busy at once); when the
//!   exchange is complete the caller hands the halves back with [`Connection::recycle`], and
//!   the socket serves the next exchange. Halves dropped without `recycle` close the socket.
//! - **server side** ([`Connection::accept_bi`]): each accepted TLS socket is one connection
//!   whose `accept_bi` yields that socket's halves once, then `None`. The handler loops over
//!   exchanges on it until end-of-stream — which also works over QUIC, where each stream
//!   carries one exchange and then ends.
//!
//! The TCP sides themselves (dialing, the idle sockets, the accepted socket) are in
//! [`crate::tcp`]; this module only puts them and QUIC behind one API. It neither dials nor
//! listens: that is the endpoint's.

use std::net::SocketAddr;
use std::sync::Arc;

use plasma_stream_certs::Fingerprint;

use crate::error::{quic_error_message, RefusedBecause, Result, TransportError};
use crate::socket::canonical;
use crate::stream::{tcp_unsplit, RecvStream, SendStream};
use crate::tcp::{TcpAccepted, TcpDialer};

/// Which transport a connection runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// QUIC: one stream per exchange, no head-of-line blocking between them.
    Quic,
    /// TLS over TCP (the fallback): one socket per exchange in flight.
    Tcp,
}

impl std::fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectionKind::Quic => "quic",
            ConnectionKind::Tcp => "tcp",
        })
    }
}

/// A connection to one peer. Cheap to clone: clones share the connection.
#[derive(Clone, Debug)]
pub struct Connection {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Quic {
        connection: quinn::Connection,
        peer_fingerprint: Option<Fingerprint>,
        peer_names: Arc<[String]>,
    },
    TcpClient(Arc<TcpDialer>),
    TcpServer(Arc<TcpAccepted>),
}

impl Connection {
    pub(crate) fn from_quic(connection: quinn::Connection) -> Self {
        let chain = connection.peer_identity().and_then(|identity| {
            identity
                .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        });
        let leaf = chain.as_ref().and_then(|chain| chain.first());
        let peer_fingerprint = leaf.map(|leaf| Fingerprint::of_der(leaf));
        let peer_names = leaf
            .map(|leaf| plasma_stream_certs::certificate_names(leaf))
            .unwrap_or_default()
            .into();
        Connection {
            inner: Inner::Quic {
                connection,
                peer_fingerprint,
                peer_names,
            },
        }
    }

    pub(crate) fn tcp_client(dialer: Arc<TcpDialer>) -> Self {
        Connection {
            inner: Inner::TcpClient(dialer),
        }
    }

    pub(crate) fn tcp_server(accepted: Arc<TcpAccepted>) -> Self {
        Connection {
            inner: Inner::TcpServer(accepted),
        }
    }

    /// The peer's address (for an IPv4 peer reached through a dual-stack socket, the plain
    /// IPv4 form).
    pub fn remote_addr(&self) -> SocketAddr {
        let addr = match &self.inner {
            Inner::Quic { connection, .. } => connection.remote_address(),
            Inner::TcpClient(dialer) => dialer.peer,
            Inner::TcpServer(accepted) => accepted.peer,
        };
        canonical(addr)
    }

    /// QUIC or TCP.
    pub fn kind(&self) -> ConnectionKind {
        match &self.inner {
            Inner::Quic { .. } => ConnectionKind::Quic,
            _ => ConnectionKind::Tcp,
        }
    }

    /// The names the peer's certificate was issued for (DNS subject alternative names but
    /// the cluster's own); only a cluster CA's word makes them an identity.
    pub fn peer_names(&self) -> Arc<[String]> {
        match &self.inner {
            Inner::Quic { peer_names, .. } => Arc::clone(peer_names),
            Inner::TcpClient(dialer) => Arc::clone(&dialer.peer_names),
            Inner::TcpServer(accepted) => Arc::clone(&accepted.peer_names),
        }
    }

    /// SHA-256 of the certificate the peer presented (always present in pinned mode; `None`
    /// only for an insecure-mode client that sent no certificate).
    pub fn peer_fingerprint(&self) -> Option<Fingerprint> {
        match &self.inner {
            Inner::Quic {
                peer_fingerprint, ..
            } => *peer_fingerprint,
            Inner::TcpClient(dialer) => dialer.peer_fingerprint,
            Inner::TcpServer(accepted) => accepted.peer_fingerprint,
        }
    }

    /// Opens a new exchange. QUIC: a new bidirectional stream (waits if the peer's stream
    /// limit is reached). TCP client: an idle socket or a newly dialed one (waits if
    /// `tcp_sockets_per_peer` are busy). Not available on a server-side TCP connection.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream)> {
        match &self.inner {
            Inner::Quic { connection, .. } => {
                let (send, recv) = connection.open_bi().await.map_err(|err| match &err {
                    // The server completed the handshake, then found every slot (or every
                    // slot of our identity) taken.
                    quinn::ConnectionError::ApplicationClosed(close) => {
                        match RefusedBecause::of_close_code(close.error_code) {
                            Some(reason) => TransportError::Refused {
                                peer: self.remote_addr(),
                                reason,
                            },
                            None => TransportError::ConnectionLost {
                                peer: self.remote_addr(),
                                message: quic_error_message(&err),
                            },
                        }
                    }
                    _ => TransportError::ConnectionLost {
                        peer: self.remote_addr(),
                        message: quic_error_message(&err),
                    },
                })?;
                Ok((SendStream::Quic(send), RecvStream::Quic(recv)))
            }
            Inner::TcpClient(dialer) => dialer.open_bi().await,
            Inner::TcpServer(_) => Err(TransportError::Unsupported(
                "open_bi on a server-side TCP connection: it has one exchange socket, use accept_bi",
            )),
        }
    }

    /// Waits for the peer's next exchange; `Ok(None)` once the peer has closed the connection
    /// (QUIC) or after the one socket of a server-side TCP connection was handed out.
    pub async fn accept_bi(&self) -> Result<Option<(SendStream, RecvStream)>> {
        match &self.inner {
            Inner::Quic { connection, .. } => match connection.accept_bi().await {
                Ok((send, recv)) => Ok(Some((SendStream::Quic(send), RecvStream::Quic(recv)))),
                Err(
                    quinn::ConnectionError::ApplicationClosed(_)
                    | quinn::ConnectionError::LocallyClosed,
                ) => Ok(None),
                Err(err) => Err(TransportError::ConnectionLost {
                    peer: self.remote_addr(),
                    message: quic_error_message(&err),
                }),
            },
            Inner::TcpServer(accepted) => Ok(accepted.take()),
            Inner::TcpClient(_) => Err(TransportError::Unsupported(
                "accept_bi on a client-side TCP connection: the peer cannot open exchanges over TCP",
            )),
        }
    }

    /// Ends an exchange that completed normally. QUIC: finishes the send side (if not yet) and
    /// drops both. TCP client: returns the socket to the idle pool for the next `open_bi`
    /// (so call this only when both directions are at a message boundary). Elsewhere: drops.
    pub fn recycle(&self, send: SendStream, recv: RecvStream) {
        match (&self.inner, send, recv) {
            (Inner::Quic { .. }, SendStream::Quic(mut send), RecvStream::Quic(_recv)) => {
                // Already finished is fine.
                let _ = send.finish();
            }
            (Inner::TcpClient(dialer), SendStream::Tcp(send), RecvStream::Tcp(recv)) => {
                if let Some(socket) = tcp_unsplit(send, recv) {
                    dialer.put_idle(socket);
                }
            }
            _ => {}
        }
    }

    /// Closes the connection: QUIC sends CONNECTION_CLOSE (streams in flight fail); TCP drops
    /// idle sockets and dials no more (busy sockets finish their exchange).
    /// Whether `other` is a handle to this very connection (not just one to the same peer).
    pub fn is_same(&self, other: &Connection) -> bool {
        match (&self.inner, &other.inner) {
            (Inner::Quic { connection: a, .. }, Inner::Quic { connection: b, .. }) => {
                a.stable_id() == b.stable_id()
            }
            (Inner::TcpClient(a), Inner::TcpClient(b)) => Arc::ptr_eq(a, b),
            (Inner::TcpServer(a), Inner::TcpServer(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn close(&self) {
        match &self.inner {
            Inner::Quic { connection, .. } => {
                connection.close(quinn::VarInt::from_u32(0), b"closed")
            }
            Inner::TcpClient(dialer) => dialer.close(),
            Inner::TcpServer(accepted) => {
                accepted.take();
            }
        }
    }

    /// Whether the connection can still carry exchanges (false once closed by either side).
    pub fn is_open(&self) -> bool {
        match &self.inner {
            Inner::Quic { connection, .. } => connection.close_reason().is_none(),
            Inner::TcpClient(dialer) => !dialer.is_closed(),
            Inner::TcpServer(accepted) => accepted.is_open(),
        }
    }

    /// Waits until a QUIC connection is closed (returns at once for TCP, which has no
    /// connection-wide state to wait on).
    pub async fn closed(&self) {
        if let Inner::Quic { connection, .. } = &self.inner {
            connection.closed().await;
        }
    }

    /// The underlying quinn connection, for statistics (`stats()`, `rtt()`); `None` over TCP.
    pub fn quic_connection(&self) -> Option<&quinn::Connection> {
        match &self.inner {
            Inner::Quic { connection, .. } => Some(connection),
            _ => None,
        }
    }
}
