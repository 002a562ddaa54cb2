//! The endpoint: QUIC on UDP port P and TLS over TCP on TCP port P, accepting and dialing.
//!
//! This file holds the [`Endpoint`] type, its shared state, what both constructors share
//! (`build`), the accessors, and shutdown; and what a server hands out ([`Incoming`],
//! [`LegacyStream`]). The rest of the endpoint is in its submodules, which use this file and
//! are not used by it:
//! - [`dial`]: [`Endpoint::client`]; connecting to a peer (QUIC first, the TCP fallback and its
//!   memory), the pooled connection;
//! - [`listen`]: [`Endpoint::server`]; the accept loops and the first-byte classification of
//!   inbound TCP.
//!
//! Not here: binding sockets ([`crate::socket`]), the TLS-over-TCP sockets themselves
//! ([`crate::tcp`]), the connection API ([`crate::connection`]), and the bytes exchanged
//! (`plasma-stream-protocol`).

mod dial;
mod listen;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use plasma_stream_certs::{client_config, Fingerprint, Identity, Trust};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::config::TransportConfig;
use crate::connection::Connection;
use crate::error::{Result, TransportError};
use crate::pool::ConnectionPool;
pub use crate::socket::all_interfaces;

/// The ALPN protocol name on QUIC and on the TLS-over-TCP fallback: the protocol crate's, which
/// names the wire format's version (docs/protocol.md §4 and §7).
pub use plasma_stream_protocol::wire::ALPN;

/// Close code sent to QUIC peers when the endpoint shuts down.
const CLOSE_SHUTDOWN: u32 = 0;

/// A connection a server accepted, ready to serve.
#[derive(Debug)]
pub enum Incoming {
    /// An authenticated QUIC or TLS-over-TCP connection.
    Connection(Connection),
    /// A plaintext TCP connection in the original byte format (only with `legacy_tcp`); its
    /// first byte (0x01/0x02/0x03) is still unread.
    Legacy(LegacyStream),
}

/// A plaintext legacy TCP connection. It holds one slot of `max_connections` until dropped.
#[derive(Debug)]
pub struct LegacyStream {
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

impl LegacyStream {
    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The TCP socket (e.g. for `tokio::io::split`); the permit stays with `self`.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

impl AsyncRead for LegacyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LegacyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A QUIC endpoint plus a TLS-over-TCP listener on the same port number (server), or just the
/// dialing side (client). Cheap to clone; the listeners stop when the last clone is dropped or
/// [`Endpoint::close`] is called.
#[derive(Clone, Debug)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    config: TransportConfig,
    fingerprint: Fingerprint,
    local_addr: Option<SocketAddr>,
    quic: Option<quinn::Endpoint>,
    quic_client: quinn::ClientConfig,
    quic_client_loopback: quinn::ClientConfig,
    tls_connector: TlsConnector,
    incoming: tokio::sync::Mutex<Option<mpsc::Receiver<Incoming>>>,
    fallback_logged: Mutex<HashSet<SocketAddr>>,
    /// Peers whose QUIC did not connect, and until when to dial them over TCP directly.
    tcp_only_until: Mutex<HashMap<SocketAddr, tokio::time::Instant>>,
    pool: ConnectionPool,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.local_addr)
            .field("fingerprint", &self.fingerprint)
            .field("mode", &self.config.mode)
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(quic) = &self.quic {
            quic.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"endpoint closed");
        }
    }
}

impl Endpoint {
    fn build(
        identity: &Identity,
        trust: &Trust,
        config: TransportConfig,
        quic: Option<quinn::Endpoint>,
        local_addr: Option<SocketAddr>,
        incoming: Option<mpsc::Receiver<Incoming>>,
        tasks: Vec<JoinHandle<()>>,
    ) -> Result<Endpoint> {
        let mut tls_client = client_config(identity, trust)?;
        tls_client.alpn_protocols = vec![ALPN.to_vec()];
        let tls_client = Arc::new(tls_client);
        let quic_tls = Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(tls_client.clone())
                .map_err(|err| TransportError::QuicTls(err.to_string()))?,
        );
        let mut quic_client = quinn::ClientConfig::new(quic_tls.clone());
        quic_client.transport_config(config.quinn_transport(false, false));
        let mut quic_client_loopback = quinn::ClientConfig::new(quic_tls);
        quic_client_loopback.transport_config(config.quinn_transport(true, false));
        Ok(Endpoint {
            inner: Arc::new(Inner {
                fingerprint: identity.fingerprint(),
                local_addr,
                quic,
                quic_client,
                quic_client_loopback,
                tls_connector: TlsConnector::from(tls_client),
                incoming: tokio::sync::Mutex::new(incoming),
                fallback_logged: Mutex::new(HashSet::new()),
                tcp_only_until: Mutex::new(HashMap::new()),
                pool: ConnectionPool::default(),
                tasks,
                config,
            }),
        })
    }

    /// The address the server listens on (QUIC and TCP share the port); for a client
    /// endpoint, its UDP socket's address (or `None` in Tcp mode).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr.or_else(|| {
            self.inner
                .quic
                .as_ref()
                .and_then(|quic| quic.local_addr().ok())
        })
    }

    /// The fingerprint of this endpoint's own certificate (what peers must trust).
    pub fn fingerprint(&self) -> Fingerprint {
        self.inner.fingerprint
    }

    /// The configuration this endpoint runs with.
    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }

    /// The next accepted connection (QUIC or TCP, already authenticated), or `None` once the
    /// endpoint is closed or for a client endpoint. Handshakes run in the background, so one
    /// slow peer does not hold up others; at most `max_connections` are open at once.
    pub async fn accept(&self) -> Option<Incoming> {
        let mut guard = self.inner.incoming.lock().await;
        guard.as_mut()?.recv().await
    }

    /// The per-peer connection pool (to drop a peer's connection after an error, for example).
    pub fn pool(&self) -> &ConnectionPool {
        &self.inner.pool
    }

    /// Stops listening and closes QUIC connections (streams in flight fail). Clones see it too.
    pub fn close(&self) {
        for task in &self.inner.tasks {
            task.abort();
        }
        if let Some(quic) = &self.inner.quic {
            quic.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"endpoint closed");
        }
        self.inner.pool.clear();
    }

    /// Waits until every QUIC connection has been closed and its close sent (call after
    /// [`Endpoint::close`] when shutting down).
    pub async fn wait_idle(&self) {
        if let Some(quic) = &self.inner.quic {
            quic.wait_idle().await;
        }
    }
}
