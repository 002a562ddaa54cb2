//! Listening: the server constructor ([`Endpoint::server`]), the QUIC and TCP accept loops,
//! and the first-byte classification of an inbound TCP connection (TLS, legacy plaintext, or
//! closed).
//!
//! Every accepted connection takes one of `max_connections` slots here and keeps it while it
//! lives. Binding the sockets is [`crate::socket`]'s; what the accepted connections carry is
//! the caller's (and `plasma-stream-protocol`'s). Nothing here dials.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use plasma_stream_certs::{server_config, Identity, Trust};
use plasma_stream_protocol::legacy::{REQUEST_COPY, REQUEST_SYNC, REQUEST_TAKE};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn, Instrument};

use super::{Endpoint, Incoming, LegacyStream, ALPN, CLOSE_SHUTDOWN};
use crate::config::{TransportConfig, TransportMode};
use crate::connection::Connection;
use crate::error::{quic_error_message, tls_io_message, Result, TransportError};
use crate::socket::{bind_server, canonical};
use crate::stream::{buffered_tcp, tune_tls};
use crate::tcp::TcpAccepted;

/// First byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

impl Endpoint {
    /// Starts a server: QUIC on UDP `bind` and TLS over TCP on the same TCP port (which
    /// listeners exist depends on `config.mode` and `config.legacy_tcp`). With port 0 a port
    /// free for both is chosen. Binding `[::]` (see [`all_interfaces`](crate::all_interfaces))
    /// accepts IPv4 and IPv6; if the host has no IPv6, `[::]` falls back to `0.0.0.0`.
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
                acceptor.accept(buffered_tcp(stream)),
            )
            .await
            {
                Ok(Ok(tls)) => {
                    let mut socket = tokio_rustls::TlsStream::Server(tls);
                    tune_tls(&mut socket);
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
        // The legacy plaintext format's requests: SYNC, COPY, TAKE (docs/protocol.md §5).
        (byte @ (REQUEST_SYNC | REQUEST_COPY | REQUEST_TAKE), _) if config.legacy_tcp => {
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
