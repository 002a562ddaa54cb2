//! The TLS-over-TCP sides of a [`Connection`](crate::Connection): the dialer that keeps a few
//! TLS sockets to one peer ([`TcpDialer`]), the one socket a server accepted ([`TcpAccepted`]),
//! and the TLS dial itself.
//!
//! Only sockets and TLS live here: not the QUIC side, not the listener (the endpoint accepts
//! TCP and classifies its first byte), and not the choice between QUIC and TCP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use plasma_stream_certs::Fingerprint;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::door::IdentitySlot;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::error::{is_refusal_alert, tls_io_message, RefusedBecause, Result, TransportError};
use crate::stream::{buffered_tcp, tcp_pair, tune_tls, RecvStream, SendStream, TlsSocket};

/// The TLS server name clients send. Pinned trust ignores it; in CA mode every issued
/// certificate carries it, since peers are dialed by address, not by host name.
pub(crate) const SERVER_NAME: &str = plasma_stream_certs::CLUSTER_SERVER_NAME;

/// Client side of a TCP "connection": dials TLS sockets to one peer and keeps idle ones.
pub(crate) struct TcpDialer {
    pub(crate) peer: SocketAddr,
    pub(crate) peer_fingerprint: Option<Fingerprint>,
    pub(crate) peer_names: Arc<[String]>,
    connector: TlsConnector,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    busy: Arc<Semaphore>,
    max_idle: usize,
    idle: Mutex<Vec<(TlsSocket, Instant)>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for TcpDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpDialer")
            .field("peer", &self.peer)
            .finish()
    }
}

impl TcpDialer {
    /// Dials the first socket (proving the peer reachable and trusted) and keeps it idle.
    pub(crate) async fn connect(
        peer: SocketAddr,
        connector: TlsConnector,
        handshake_timeout: Duration,
        idle_timeout: Duration,
        sockets: usize,
    ) -> Result<Arc<Self>> {
        let socket = dial(peer, &connector, handshake_timeout).await?;
        let peer_fingerprint = leaf_fingerprint(&socket);
        let peer_names = leaf_names(&socket);
        let dialer = Arc::new(TcpDialer {
            peer,
            peer_fingerprint,
            peer_names,
            connector,
            handshake_timeout,
            idle_timeout,
            busy: Arc::new(Semaphore::new(sockets.max(1))),
            max_idle: sockets.max(1),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        dialer.put_idle(socket);
        Ok(dialer)
    }

    pub(crate) async fn open_bi(&self) -> Result<(SendStream, RecvStream)> {
        let permit = self
            .busy
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Closed)?;
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let socket = match self.take_idle() {
            Some(socket) => socket,
            None => dial(self.peer, &self.connector, self.handshake_timeout).await?,
        };
        Ok(self.pair(socket, permit))
    }

    fn pair(&self, socket: TlsSocket, permit: OwnedSemaphorePermit) -> (SendStream, RecvStream) {
        tcp_pair(socket, Some(permit), self.idle_timeout)
    }

    /// Takes the most recently used idle socket that is still usable: not idle for more than
    /// half the idle timeout (the server drops sockets idle for the whole of it) and not
    /// closed by the peer meanwhile.
    fn take_idle(&self) -> Option<TlsSocket> {
        let Ok(mut idle) = self.idle.lock() else {
            return None;
        };
        while let Some((mut socket, since)) = idle.pop() {
            if since.elapsed() < self.idle_timeout / 2 && still_open(&mut socket) {
                return Some(socket);
            }
        }
        None
    }

    pub(crate) fn put_idle(&self, socket: TlsSocket) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push((socket, Instant::now()));
            }
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        self.busy.close();
    }

    /// Whether [`TcpDialer::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// True if an idle socket has neither been closed by the peer nor received stray data.
fn still_open(socket: &mut TlsSocket) -> bool {
    let mut probe = [0u8; 1];
    // A read that is not immediately ready means "nothing to say": the socket is alive.
    socket.read(&mut probe).now_or_never().is_none()
}

async fn dial(peer: SocketAddr, connector: &TlsConnector, timeout: Duration) -> Result<TlsSocket> {
    let attempt = async {
        let tcp = TcpStream::connect(peer)
            .await
            .map_err(|err| TransportError::Connect {
                peer,
                reason: err.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let server_name = rustls::pki_types::ServerName::try_from(SERVER_NAME)
            .map_err(|_| TransportError::Unsupported("invalid server name"))?;
        connector
            .connect(server_name, buffered_tcp(tcp))
            .await
            .map_err(|err| {
                if is_refusal_alert(&err) {
                    TransportError::Refused {
                        peer,
                        reason: RefusedBecause::Busy,
                    }
                } else {
                    TransportError::Handshake {
                        peer,
                        message: tls_io_message(&err),
                    }
                }
            })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => {
            let mut socket = tokio_rustls::TlsStream::Client(result?);
            tune_tls(&mut socket);
            Ok(socket)
        }
        Err(_) => Err(TransportError::Timeout {
            peer,
            what: "TLS-over-TCP handshake",
            after: timeout,
        }),
    }
}

/// Fingerprint of the peer's leaf certificate on an established TLS socket.
pub(crate) fn leaf_fingerprint(socket: &TlsSocket) -> Option<Fingerprint> {
    leaf(socket).map(Fingerprint::of_der)
}

/// The names the peer's certificate was issued for ([`plasma_stream_certs::certificate_names`]).
pub(crate) fn leaf_names(socket: &TlsSocket) -> Arc<[String]> {
    leaf(socket)
        .map(plasma_stream_certs::certificate_names)
        .unwrap_or_default()
        .into()
}

fn leaf(socket: &TlsSocket) -> Option<&[u8]> {
    let certificates = match socket {
        tokio_rustls::TlsStream::Client(stream) => stream.get_ref().1.peer_certificates(),
        tokio_rustls::TlsStream::Server(stream) => stream.get_ref().1.peer_certificates(),
    };
    certificates
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.as_ref())
}

/// Server side of a TCP "connection": one accepted TLS socket, handed out once.
pub(crate) struct TcpAccepted {
    pub(crate) peer: SocketAddr,
    pub(crate) peer_fingerprint: Option<Fingerprint>,
    pub(crate) peer_names: Arc<[String]>,
    idle_timeout: Duration,
    socket: Mutex<Option<(TlsSocket, OwnedSemaphorePermit)>>,
    /// The connection's place among its certificate's: held while any handle to the
    /// connection lives (the server serves it through one).
    _identity_slot: Option<IdentitySlot>,
}

impl std::fmt::Debug for TcpAccepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpAccepted")
            .field("peer", &self.peer)
            .finish()
    }
}

impl TcpAccepted {
    pub(crate) fn new(
        peer: SocketAddr,
        socket: TlsSocket,
        permit: OwnedSemaphorePermit,
        identity_slot: Option<IdentitySlot>,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(TcpAccepted {
            peer,
            peer_fingerprint: leaf_fingerprint(&socket),
            peer_names: leaf_names(&socket),
            idle_timeout,
            socket: Mutex::new(Some((socket, permit))),
            _identity_slot: identity_slot,
        })
    }

    /// The socket's halves, the first time; `None` after that.
    pub(crate) fn take(&self) -> Option<(SendStream, RecvStream)> {
        let (socket, permit) = self.socket.lock().ok()?.take()?;
        Some(tcp_pair(socket, Some(permit), self.idle_timeout))
    }

    /// Whether the socket has not been handed out (or dropped by `close`) yet.
    pub(crate) fn is_open(&self) -> bool {
        self.socket.lock().is_ok_and(|socket| socket.is_some())
    }
}
