//! QUIC and TLS-over-TCP transport for Plasma Stream.
//!
//! An [`Endpoint`] listens with QUIC on UDP port P and with TLS over TCP on TCP port P, and
//! dials peers with QUIC first, falling back to TCP where UDP is blocked. Either way the
//! caller gets a [`Connection`] with bidirectional exchanges ([`SendStream`],
//! [`RecvStream`]), authenticated by the trust mode of `plasma-stream-certs`, with ALPN
//! `plasma-stream/1`. Tuning (windows, congestion control, socket buffers) lives in
//! [`TransportConfig`].
//!
//! This crate moves bytes; it does not know what they mean (that is `plasma-stream-protocol`).

mod config;
mod connection;
mod endpoint;
mod error;
mod pool;
mod stream;

pub use config::{CongestionControl, TransportConfig, TransportMode};
pub use connection::{Connection, ConnectionKind};
pub use endpoint::{all_interfaces, Endpoint, Incoming, LegacyStream, ALPN};
pub use error::{Result, TransportError};
pub use pool::ConnectionPool;
pub use stream::{RecvStream, SendStream, TcpRecv, TcpSend};

pub use plasma_stream_certs as certs;
