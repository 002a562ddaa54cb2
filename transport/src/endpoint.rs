//! The endpoint: QUIC on UDP port P and TLS over TCP on TCP port P, accepting and dialing.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use plasma_stream_certs::{client_config, server_config, Fingerprint, Identity, Trust};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, warn, Instrument};

use crate::config::{TransportConfig, TransportMode};
use crate::connection::Connection;
use crate::error::{quic_error_message, tls_io_message, Result, TransportError};
use crate::pool::ConnectionPool;
pub use crate::socket::all_interfaces;
use crate::socket::{bind_server, canonical, client_udp_socket};
use crate::tcp::{TcpAccepted, TcpDialer, SERVER_NAME};

/// The ALPN protocol name on QUIC and on the TLS-over-TCP fallback (WIRE.md).
pub const ALPN: &[u8] = b"plasma-stream/1";

/// First byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;
/// First bytes of the legacy plaintext format: SYNC, COPY, TAKE (legacy-wire.md).
const LEGACY_FIRST_BYTES: [u8; 3] = [0x01, 0x02, 0x03];

/// Close code sent to QUIC peers when the endpoint shuts down.
const CLOSE_SHUTDOWN: u32 = 0;

/// After QUIC to a peer timed out, how long `connect` dials that peer over TCP directly
/// instead of waiting `quic_connect_timeout` again; QUIC is retried after it.
const FALLBACK_MEMORY: Duration = Duration::from_secs(300);

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
    /// Starts a server: QUIC on UDP `bind` and TLS over TCP on the same TCP port (which
    /// listeners exist depends on `config.mode` and `config.legacy_tcp`). With port 0 a port
    /// free for both is chosen. Binding `[::]` (see [`all_interfaces`]) accepts IPv4 and IPv6;
    /// if the host has no IPv6, `[::]` falls back to `0.0.0.0`.
    ///
    /// Must be called inside a tokio runtime.
    pub async fn server(
        bind: SocketAddr,
        identity: &Identity,
        trust: &Trust,
        config: TransportConfig,
    ) -> Result<Endpoint> {
        let wants_udp = config.mode != TransportMode::Tcp;
        let wants_tcp = config.mode != TransportMode::Quic || config.legacy_tcp;
        let (udp, tcp, local_addr) =
            bind_server(bind, wants_udp, wants_tcp, config.udp_socket_buffer)?;

        let mut tls_server = server_config(identity, trust)?;
        tls_server.alpn_protocols = vec![ALPN.to_vec()];
        let tls_server = Arc::new(tls_server);

        let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let (sender, receiver) = mpsc::channel(64);
        let mut tasks = Vec::new();

        let quic = match udp {
            Some(udp) => {
                let quic_tls =
                    quinn::crypto::rustls::QuicServerConfig::try_from(tls_server.clone())
                        .map_err(|err| TransportError::QuicTls(err.to_string()))?;
                let quic_tls = Arc::new(quic_tls);
                let mut remote = quinn::ServerConfig::with_crypto(quic_tls.clone());
                remote.transport_config(config.quinn_transport(false));
                let mut loopback = quinn::ServerConfig::with_crypto(quic_tls);
                loopback.transport_config(config.quinn_transport(true));
                let endpoint = quinn::Endpoint::new(
                    config.quinn_endpoint(),
                    Some(remote.clone()),
                    udp,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(|source| TransportError::Bind {
                    addr: local_addr,
                    source,
                })?;
                tasks.push(tokio::spawn(
                    quic_accept_loop(
                        endpoint.clone(),
                        Arc::new(remote),
                        Arc::new(loopback),
                        limit.clone(),
                        sender.clone(),
                        config.handshake_timeout,
                    )
                    .instrument(tracing::info_span!("quic_listener", addr = %local_addr)),
                ));
                Some(endpoint)
            }
            None => None,
        };
        if let Some(listener) = tcp {
            let acceptor =
                (config.mode != TransportMode::Quic).then(|| TlsAcceptor::from(tls_server.clone()));
            tasks.push(tokio::spawn(
                tcp_accept_loop(listener, acceptor, limit, sender, config.clone())
                    .instrument(tracing::info_span!("tcp_listener", addr = %local_addr)),
            ));
        }
        debug!(
            addr = %local_addr,
            fingerprint = %identity.fingerprint(),
            mode = ?config.mode,
            "listening"
        );
        Self::build(
            identity,
            trust,
            config,
            quic,
            Some(local_addr),
            Some(receiver),
            tasks,
        )
    }

    /// A dial-only endpoint (clients, the CLI). Its UDP socket is bound to an ephemeral port on
    /// `[::]` (dual-stack), or `0.0.0.0` without IPv6; none in `Tcp` mode.
    pub async fn client(
        identity: &Identity,
        trust: &Trust,
        config: TransportConfig,
    ) -> Result<Endpoint> {
        let quic = if config.mode == TransportMode::Tcp {
            None
        } else {
            let udp = client_udp_socket(config.udp_socket_buffer)?;
            let local = udp.local_addr().map_err(|source| TransportError::Bind {
                addr: all_interfaces(0),
                source,
            })?;
            Some(
                quinn::Endpoint::new(
                    config.quinn_endpoint(),
                    None,
                    udp,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(|source| TransportError::Bind {
                    addr: local,
                    source,
                })?,
            )
        };
        Self::build(identity, trust, config, quic, None, None, Vec::new())
    }

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
        quic_client.transport_config(config.quinn_transport(false));
        let mut quic_client_loopback = quinn::ClientConfig::new(quic_tls);
        quic_client_loopback.transport_config(config.quinn_transport(true));
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

    /// Connects to a peer server: QUIC first; in Auto mode, if QUIC does not connect within
    /// `quic_connect_timeout`, TLS over TCP to the same address (logged once per peer), and
    /// for the next 5 minutes that peer is dialed over TCP directly. A peer that answers but
    /// refuses (untrusted certificate, connection limit) is an error, not a reason to fall back.
    pub async fn connect(&self, peer: SocketAddr) -> Result<Connection> {
        let config = &self.inner.config;
        match (config.mode, &self.inner.quic) {
            (TransportMode::Tcp, _) | (_, None) => self.connect_tcp(peer).await,
            (TransportMode::Quic, Some(_)) => {
                self.connect_quic(peer, config.handshake_timeout).await
            }
            (TransportMode::Auto, Some(_)) => {
                if self.remembered_tcp_only(peer) {
                    debug!(%peer, "QUIC did not connect recently; TLS over TCP directly");
                    return self.connect_tcp(peer).await;
                }
                // Nothing listening on the UDP port usually answers with ICMP "port
                // unreachable" at once: fall back then rather than after the whole timeout.
                let attempt = tokio::select! {
                    result = self.connect_quic(peer, config.quic_connect_timeout) => result,
                    () = udp_port_unreachable(peer) => {
                        debug!(%peer, "UDP port unreachable: no QUIC there");
                        Err(TransportError::Timeout {
                            peer,
                            what: "QUIC handshake (UDP port unreachable)",
                            after: Duration::ZERO,
                        })
                    }
                };
                match attempt {
                    Err(TransportError::Timeout { .. }) => {
                        let first = self
                            .inner
                            .fallback_logged
                            .lock()
                            .map(|mut seen| seen.insert(peer))
                            .unwrap_or(true);
                        if first {
                            warn!(%peer, timeout = ?config.quic_connect_timeout, "QUIC did not connect (timed out, or the UDP port is unreachable); falling back to TLS over TCP");
                        } else {
                            debug!(%peer, "QUIC did not connect; TLS over TCP");
                        }
                        let connection = self.connect_tcp(peer).await?;
                        // Only a peer that answers over TCP is remembered as TCP-only: one
                        // that answered nothing is down, and may come back with QUIC.
                        if let Ok(mut remembered) = self.inner.tcp_only_until.lock() {
                            remembered.insert(peer, tokio::time::Instant::now() + FALLBACK_MEMORY);
                        }
                        Ok(connection)
                    }
                    other => other,
                }
            }
        }
    }

    /// Whether QUIC to `peer` timed out less than [`FALLBACK_MEMORY`] ago.
    fn remembered_tcp_only(&self, peer: SocketAddr) -> bool {
        let Ok(mut remembered) = self.inner.tcp_only_until.lock() else {
            return false;
        };
        match remembered.get(&peer) {
            Some(until) if *until > tokio::time::Instant::now() => true,
            Some(_) => {
                remembered.remove(&peer);
                false
            }
            None => false,
        }
    }

    /// The pooled connection to `peer`: one cached connection per peer, shared by all callers,
    /// replaced when it has closed. Concurrent callers for a new peer wait for one dial.
    pub async fn pooled(&self, peer: SocketAddr) -> Result<Connection> {
        self.inner
            .pool
            .get_or_connect(peer, || self.connect(peer))
            .await
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

    async fn connect_quic(&self, peer: SocketAddr, timeout: Duration) -> Result<Connection> {
        let Some(quic) = &self.inner.quic else {
            return Err(TransportError::Connect {
                peer,
                reason: "QUIC is disabled (transport mode tcp)".into(),
            });
        };
        let client = if peer.ip().is_loopback() || canonical(peer).ip().is_loopback() {
            self.inner.quic_client_loopback.clone()
        } else {
            self.inner.quic_client.clone()
        };
        let connecting = quic
            .connect_with(client, peer, SERVER_NAME)
            .map_err(|err| TransportError::Connect {
                peer,
                reason: err.to_string(),
            })?;
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(connection)) => {
                debug!(%peer, "QUIC connected");
                Ok(Connection::from_quic(connection))
            }
            Ok(Err(quinn::ConnectionError::ConnectionClosed(close)))
                if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
            {
                Err(TransportError::Refused { peer })
            }
            Ok(Err(quinn::ConnectionError::TimedOut)) | Err(_) => Err(TransportError::Timeout {
                peer,
                what: "QUIC handshake",
                after: timeout,
            }),
            Ok(Err(err)) => Err(TransportError::Handshake {
                peer,
                message: quic_error_message(&err),
            }),
        }
    }

    async fn connect_tcp(&self, peer: SocketAddr) -> Result<Connection> {
        let config = &self.inner.config;
        let dialer = TcpDialer::connect(
            peer,
            self.inner.tls_connector.clone(),
            config.handshake_timeout,
            config.idle_timeout,
            config.tcp_sockets_per_peer,
        )
        .await?;
        debug!(%peer, "TLS over TCP connected");
        Ok(Connection::tcp_client(dialer))
    }
}

/// Resolves if `peer`'s UDP port answers a probe with ICMP "port unreachable" (nothing listens
/// for QUIC there: a server in `--transport tcp`, or an old one); otherwise never resolves.
///
/// The probe is a one-byte datagram from a connected UDP socket, which is how Linux reports
/// the ICMP error (`ECONNREFUSED` on the next receive). One byte is shorter than any QUIC
/// packet, so a QUIC server drops it unread. A path that drops UDP silently gives no answer,
/// and the caller's handshake timeout decides as before.
async fn udp_port_unreachable(peer: SocketAddr) {
    /// Probes sent (ICMP can be lost or rate-limited too), and the wait after each.
    const PROBES: usize = 3;
    const PROBE_WAIT: Duration = Duration::from_millis(150);
    let peer = canonical(peer);
    let local: SocketAddr = match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let refused = |err: &io::Error| err.kind() == io::ErrorKind::ConnectionRefused;
    if let Ok(socket) = tokio::net::UdpSocket::bind(local).await {
        if socket.connect(peer).await.is_ok() {
            for _ in 0..PROBES {
                if let Err(err) = socket.send(&[0]).await {
                    if refused(&err) {
                        return;
                    }
                }
                let mut reply = [0u8; 1];
                if let Ok(Err(err)) =
                    tokio::time::timeout(PROBE_WAIT, socket.recv(&mut reply)).await
                {
                    if refused(&err) {
                        return;
                    }
                }
            }
        }
    }
    std::future::pending().await
}

async fn quic_accept_loop(
    endpoint: quinn::Endpoint,
    remote: Arc<quinn::ServerConfig>,
    loopback: Arc<quinn::ServerConfig>,
    limit: Arc<Semaphore>,
    sender: mpsc::Sender<Incoming>,
    handshake_timeout: Duration,
) {
    while let Some(incoming) = endpoint.accept().await {
        let peer = canonical(incoming.remote_address());
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, "connection limit reached: refusing QUIC connection");
            incoming.refuse();
            continue;
        };
        let config = if peer.ip().is_loopback() {
            loopback.clone()
        } else {
            remote.clone()
        };
        let sender = sender.clone();
        tokio::spawn(
            async move {
                let connecting = match incoming.accept_with(config) {
                    Ok(connecting) => connecting,
                    Err(err) => {
                        debug!("QUIC accept failed: {err}");
                        return;
                    }
                };
                let connection = match tokio::time::timeout(handshake_timeout, connecting).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(err)) => {
                        warn!("QUIC handshake failed: {}", quic_error_message(&err));
                        return;
                    }
                    Err(_) => {
                        warn!("QUIC handshake timed out after {handshake_timeout:?}");
                        return;
                    }
                };
                let accepted = Connection::from_quic(connection.clone());
                debug!(fingerprint = ?accepted.peer_fingerprint(), "QUIC connection accepted");
                if sender.send(Incoming::Connection(accepted)).await.is_err() {
                    connection.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"server closing");
                    return;
                }
                // The slot is held for as long as the connection lives, whoever holds it.
                connection.closed().await;
                drop(permit);
            }
            .instrument(tracing::debug_span!("quic_connection", %peer)),
        );
    }
}

async fn tcp_accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    limit: Arc<Semaphore>,
    sender: mpsc::Sender<Incoming>,
    config: TransportConfig,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("TCP accept failed: {err}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let peer = canonical(peer);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, "connection limit reached: closing TCP connection");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        let config = config.clone();
        tokio::spawn(
            async move {
                if let Some(incoming) = classify_tcp(stream, peer, acceptor, permit, &config).await
                {
                    let _ = sender.send(incoming).await;
                }
            }
            .instrument(tracing::debug_span!("tcp_connection", %peer)),
        );
    }
}

/// Looks at the first byte of an inbound TCP connection: TLS handshake, legacy request, or
/// something to close.
async fn classify_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    permit: OwnedSemaphorePermit,
    config: &TransportConfig,
) -> Option<Incoming> {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    match tokio::time::timeout(config.handshake_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        Ok(Ok(_)) => return None,
        Ok(Err(err)) => {
            debug!("TCP peek failed: {err}");
            return None;
        }
        Err(_) => {
            debug!(
                "TCP connection sent nothing for {:?}; closing",
                config.handshake_timeout
            );
            return None;
        }
    }
    match (first[0], acceptor) {
        (TLS_HANDSHAKE, Some(acceptor)) => {
            match tokio::time::timeout(
                config.handshake_timeout,
                acceptor.accept(crate::stream::buffered_tcp(stream)),
            )
            .await
            {
                Ok(Ok(tls)) => {
                    let mut socket = tokio_rustls::TlsStream::Server(tls);
                    crate::stream::tune_tls(&mut socket);
                    let accepted = TcpAccepted::new(peer, socket, permit, config.idle_timeout);
                    debug!(fingerprint = ?accepted.peer_fingerprint, "TLS-over-TCP connection accepted");
                    Some(Incoming::Connection(Connection::tcp_server(accepted)))
                }
                Ok(Err(err)) => {
                    warn!("TLS handshake failed: {}", tls_io_message(&err));
                    None
                }
                Err(_) => {
                    warn!(
                        "TLS handshake timed out after {:?}",
                        config.handshake_timeout
                    );
                    None
                }
            }
        }
        (byte, _) if LEGACY_FIRST_BYTES.contains(&byte) && config.legacy_tcp => {
            debug!(first_byte = byte, "legacy plaintext connection");
            Some(Incoming::Legacy(LegacyStream {
                stream,
                peer,
                _permit: permit,
            }))
        }
        (byte, _) => {
            debug!(
                first_byte = byte,
                legacy_tcp = config.legacy_tcp,
                "unexpected first byte; closing"
            );
            None
        }
    }
}
