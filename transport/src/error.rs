//! The crate's error type.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What can go wrong while binding, connecting, or moving bytes.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A socket could not be bound (port taken, address not local...).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    /// The TLS configuration could not be built from the identity and trust.
    #[error(transparent)]
    Certs(#[from] plasma_stream_certs::CertsError),

    /// quinn refused the TLS configuration (e.g. no TLS 1.3 cipher suite).
    #[error("QUIC TLS configuration: {0}")]
    QuicTls(String),

    /// The handshake with `peer` failed: a certificate was refused (the message says how to
    /// trust it), the peer refused ours, or the peer does not speak `plasma-stream/1`.
    #[error("handshake with {peer} failed: {message}")]
    Handshake { peer: SocketAddr, message: String },

    /// The peer refused the connection because it is at its connection limit.
    #[error("{peer} refused the connection (it is at its connection limit)")]
    Refused { peer: SocketAddr },

    /// Nothing answered in time.
    #[error("{what} to {peer} timed out after {after:?}")]
    Timeout {
        peer: SocketAddr,
        what: &'static str,
        after: Duration,
    },

    /// Connecting failed before any handshake (refused TCP port, unreachable network, QUIC
    /// dialing disabled by the mode...).
    #[error("cannot connect to {peer}: {reason}")]
    Connect { peer: SocketAddr, reason: String },

    /// An established QUIC connection ended (closed by the peer, timed out, reset).
    #[error("connection to {peer} lost: {message}")]
    ConnectionLost { peer: SocketAddr, message: String },

    /// The operation is not possible on this side of a connection (e.g. `open_bi` on a TCP
    /// connection accepted by a server, which has exactly one exchange socket).
    #[error("{0}")]
    Unsupported(&'static str),

    /// The connection or stream was closed locally.
    #[error("connection closed")]
    Closed,

    /// Writing to a QUIC stream failed (peer stopped it, connection lost).
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),

    /// Reading from a QUIC stream failed (peer reset it, connection lost).
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadError),

    /// Socket I/O on a TCP/TLS connection failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

impl From<TransportError> for io::Error {
    fn from(err: TransportError) -> Self {
        match err {
            TransportError::Io(io) => io,
            TransportError::Timeout { .. } => io::Error::new(io::ErrorKind::TimedOut, err),
            other => io::Error::other(other),
        }
    }
}
