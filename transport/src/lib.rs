//! QUIC and TLS-over-TCP transport for Plasma Stream.
//!
//! An [`Endpoint`] listens with QUIC on UDP port P and with TLS over TCP on TCP port P, and
//! dials peers with QUIC first, falling back to TCP where UDP is blocked. Either way the
//! caller gets a [`Connection`] with bidirectional exchanges ([`SendStream`],
//! [`RecvStream`]), authenticated by the trust mode of `plasma-stream-certs`, with ALPN
//! `plasma-stream/1`. Tuning (windows, congestion control, socket buffers) lives in
//! [`TransportConfig`].
//!
//! A server's accept side is a front door that bounds unauthenticated work (QUIC Retry, a
//! handshake budget overall and per source, a short inbound handshake timeout, refusals that
//! say why, rate-limited refusal logs): `door` and `endpoint::listen`, described in
//! docs/transport.md, "The front door".
//!
//! This crate moves bytes; it does not know what they mean (that is `plasma-stream-protocol`).
//!
//! ```no_run
//! # async fn demo() -> plasma_stream_transport::Result<()> {
//! use plasma_stream_transport::{all_interfaces, Endpoint, Incoming, TransportConfig};
//! use plasma_stream_transport::certs::{Identity, Trust, TrustedFingerprints};
//!
//! let identity = Identity::load_or_generate("/var/lib/plasma-stream")?;
//! let trust = Trust::Pinned(TrustedFingerprints::from_file("/etc/plasma-stream/trusted")?);
//! let server = Endpoint::server(all_interfaces(2021), &identity, &trust, TransportConfig::default()).await?;
//! println!("listening on {:?}, fingerprint {}", server.local_addr(), server.fingerprint());
//!
//! // Serving: one task per connection, one per exchange.
//! while let Some(incoming) = server.accept().await {
//!     let Incoming::Connection(connection) = incoming else { continue };
//!     tokio::spawn(async move {
//!         while let Ok(Some((send, recv))) = connection.accept_bi().await {
//!             // Loop over requests on (send, recv) until end-of-stream: one over QUIC,
//!             // several in a row over a recycled TCP socket.
//!             # drop((send, recv));
//!         }
//!     });
//! }
//!
//! // Pulling from a peer: the pooled connection, one exchange per object.
//! let peer = "192.0.2.7:2021".parse().unwrap();
//! let connection = server.pooled(peer).await?;
//! let (mut send, recv) = connection.open_bi().await?;
//! send.write_chunk(bytes::Bytes::from_static(b"request")).await?;
//! send.finish().await?;
//! // ... read the answer from `recv` ...
//! connection.recycle(send, recv); // over TCP the socket serves the next exchange
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod door;
mod endpoint;
mod error;
mod pool;
mod reader;
mod socket;
mod stream;
mod tcp;

pub use config::{CongestionControl, TransportConfig, TransportMode};
pub use connection::{Connection, ConnectionKind};
pub use door::{RefusalHook, REFUSAL_REASONS};
pub use endpoint::{all_interfaces, Endpoint, Incoming, LegacyStream, ALPN};
pub use error::{RefusedBecause, Result, TransportError};
pub use pool::ConnectionPool;
pub use reader::{
    BudgetClaim, MessageReader, ReadBudget, ReadError, MAX_BUFFERED_MESSAGE, MIN_REQUEST_RATE,
    PER_CONNECTION_BUDGET,
};
pub use socket::udp_socket;
pub use stream::{RecvStream, SendStream, TcpRecv, TcpSend};

pub use plasma_stream_certs as certs;
