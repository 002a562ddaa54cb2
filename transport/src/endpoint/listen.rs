//! Listening: the server constructor ([`Endpoint::server`]), the QUIC and TCP accept loops,
//! and the first-byte classification of an inbound TCP connection (TLS, legacy plaintext, or
//! closed).
//!
//! The accept loops are the front door (docs/transport.md, "The front door"): an attempt is
//! checked against the handshake budget ([`crate::door`]) before any TLS work, holds its place
//! there only until its handshake completes or `inbound_handshake_timeout` passes, and takes
//! one of `max_connections` slots only once authenticated, for as long as the connection
//! lives. QUIC sources are validated with Retry first. Binding the sockets is
//! [`crate::socket`]'s; what the accepted connections carry is the caller's (and
//! `plasma-stream-protocol`'s). Nothing here dials.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use plasma_stream_certs::{server_config, Fingerprint, Identity, Trust};
use plasma_stream_protocol::legacy::{REQUEST_COPY, REQUEST_SYNC, REQUEST_TAKE};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn, Instrument};

use super::{Endpoint, Incoming, LegacyStream, ALPN, CLOSE_SHUTDOWN};
use crate::config::{TransportConfig, TransportMode};
use crate::connection::Connection;
use crate::door::{
    check_fd_budget, raise_fd_limit, FdReserve, HandshakeBudget, HandshakeTicket, IdentitySlot,
    IdentitySlots, Refusal, RefusalLog,
};
use crate::error::{
    quic_error_message, tls_io_message, Result, TransportError, CLOSE_CONNECTION_LIMIT,
    CLOSE_IDENTITY_LIMIT, REFUSAL_ALERT,
};
use crate::socket::{bind_server, canonical};
use crate::stream::{buffered_tcp, tune_tls};
use crate::tcp::{leaf_fingerprint, TcpAccepted};

/// First byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// Incoming QUIC attempts quinn queues for the accept loop, and the bytes it buffers for them
/// (quinn's defaults, 65,536 and 100 MiB, are sized for servers slower to decide than ours,
/// which answers each one at once: Retry, refuse, or start the handshake).
const QUIC_MAX_INCOMING: usize = 4096;
const QUIC_INCOMING_BUFFER: u64 = 64 * 1024;
const QUIC_INCOMING_BUFFER_TOTAL: u64 = 16 * 1024 * 1024;

/// What both accept loops share: the budgets, the refusal log, the handshake timeout.
#[derive(Clone)]
struct Door {
    /// Authenticated connections (`max_connections`).
    connections: Arc<Semaphore>,
    max_connections: usize,
    /// Of those, per certificate (`max_connections_per_identity`).
    identities: IdentitySlots,
    handshakes: HandshakeBudget,
    log: Arc<RefusalLog>,
    timeout: Duration,
    retry_above: usize,
}

impl Door {
    fn connections_full(&self) -> bool {
        self.connections.available_permits() == 0
    }

    /// The connection's place among its certificate's, or `Err` (logged) when that identity
    /// holds its share already. `None` for a peer without a certificate: nothing to count.
    fn identity_slot(
        &self,
        identity: Option<Fingerprint>,
        peer: SocketAddr,
    ) -> Result<Option<IdentitySlot>, ()> {
        let Some(identity) = identity else {
            return Ok(None);
        };
        match self.identities.try_take(identity) {
            Some(slot) => Ok(Some(slot)),
            None => {
                self.log.record(Refusal::IdentityLimit, || {
                    format!(
                        "{peer}: identity {identity} already holds {} connections \
                         (--max-connections-per-identity)",
                        self.identities.per_identity()
                    )
                });
                Err(())
            }
        }
    }
}

/// The close reason a connection over its identity's share is given.
pub(crate) const IDENTITY_LIMIT_REASON: &str = "this identity is at its connection limit";

impl Endpoint {
    /// Starts a server: QUIC on UDP `bind` and TLS over TCP on the same TCP port (which
    /// listeners exist depends on `config.mode` and `config.legacy_tcp`). With port 0 a port
    /// free for both is chosen. Binding `[::]` (see [`all_interfaces`](crate::all_interfaces))
    /// accepts IPv4 and IPv6; if the host has no IPv6, `[::]` falls back to `0.0.0.0`.
    ///
    /// Raises the process's soft open-file limit to its hard limit (and warns if
    /// `max_connections + max_handshakes` do not fit it): a listener must not run out of
    /// descriptors before its own budgets refuse.
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
        check_fd_budget(
            raise_fd_limit(),
            config.max_connections,
            config.max_handshakes,
        );
        let (udp, tcp, local_addr) =
            bind_server(bind, wants_udp, wants_tcp, config.udp_socket_buffer)?;

        let mut tls_server = server_config(identity, trust)?;
        tls_server.alpn_protocols = vec![ALPN.to_vec()];
        let tls_server = Arc::new(tls_server);

        let log = RefusalLog::new(
            config.refusal_log_interval.max(Duration::from_millis(100)),
            config.on_refusal.clone(),
        );
        let door = Door {
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            max_connections: config.max_connections.max(1),
            identities: IdentitySlots::new(config.max_connections_per_identity),
            handshakes: HandshakeBudget::new(
                config.max_handshakes,
                config.max_handshakes_per_source,
            ),
            log: log.clone(),
            timeout: config.inbound_handshake_timeout,
            retry_above: config.quic_retry_above,
        };
        let (sender, receiver) = mpsc::channel(64);
        let mut tasks = vec![tokio::spawn(log.run())];

        let quic = match udp {
            Some(udp) => {
                let quic_tls =
                    quinn::crypto::rustls::QuicServerConfig::try_from(tls_server.clone())
                        .map_err(|err| TransportError::QuicTls(err.to_string()))?;
                let quic_tls = Arc::new(quic_tls);
                let server_config = |loopback: bool| {
                    let mut server = quinn::ServerConfig::with_crypto(quic_tls.clone());
                    server
                        .transport_config(config.quinn_transport(loopback, true))
                        .max_incoming(QUIC_MAX_INCOMING)
                        .incoming_buffer_size(QUIC_INCOMING_BUFFER)
                        .incoming_buffer_size_total(QUIC_INCOMING_BUFFER_TOTAL);
                    server
                };
                let remote = server_config(false);
                let loopback = server_config(true);
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
                        door.clone(),
                        sender.clone(),
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
            // Opened here, not in the task: the spare must exist before anything can use up
            // the descriptors.
            let reserve = FdReserve::new();
            tasks.push(tokio::spawn(
                tcp_accept_loop(listener, acceptor, reserve, door, sender, config.clone())
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
    door: Door,
    sender: mpsc::Sender<Incoming>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let peer = canonical(incoming.remote_address());
        // Address validation before anything else: a Retry is one small stateless packet, so
        // a spoofed or replayed Initial costs no state, no TLS work and no place in the
        // budget, and the per-source count below is of addresses that answered.
        let incoming = if !incoming.remote_address_validated()
            && door.handshakes.in_progress() >= door.retry_above
        {
            match incoming.retry() {
                Ok(()) => continue,
                // Only an Initial that already carries a token cannot be retried; serve it.
                Err(err) => err.into_incoming(),
            }
        } else {
            incoming
        };
        // Refused before the handshake while every slot is taken: the handshake could only
        // end in a close, and CONNECTION_REFUSED tells the dialer at once.
        if door.connections_full() {
            door.log.record(Refusal::ConnectionLimit, || {
                format!(
                    "QUIC from {peer}: all {} connection slots (-c) are taken",
                    door.max_connections
                )
            });
            incoming.refuse();
            continue;
        }
        let ticket = match door.handshakes.try_enter(peer) {
            Ok(ticket) => ticket,
            Err(reason) => {
                door.log.record(reason, || {
                    format!("QUIC from {peer}: {}", budget_text(reason))
                });
                incoming.refuse();
                continue;
            }
        };
        let config = if peer.ip().is_loopback() {
            loopback.clone()
        } else {
            remote.clone()
        };
        let sender = sender.clone();
        let door = door.clone();
        tokio::spawn(
            async move {
                let connecting = match incoming.accept_with(config) {
                    Ok(connecting) => connecting,
                    Err(err) => {
                        debug!("QUIC accept failed: {err}");
                        return;
                    }
                };
                // Dropping `connecting` at the timeout drops the half-open connection's state.
                let connection = match tokio::time::timeout(door.timeout, connecting).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(err)) => {
                        door.log.record(Refusal::HandshakeFailed, || {
                            format!("QUIC handshake from {peer} failed: {}", quic_error_message(&err))
                        });
                        return;
                    }
                    Err(_) => {
                        door.log.record(Refusal::HandshakeTimeout, || {
                            format!(
                                "QUIC handshake from {peer} did not complete within {:?}",
                                door.timeout
                            )
                        });
                        return;
                    }
                };
                drop(ticket);
                let Ok(permit) = door.connections.clone().try_acquire_owned() else {
                    door.log.record(Refusal::ConnectionLimit, || {
                        format!(
                            "QUIC from {peer}: all {} connection slots (-c) were taken during its handshake",
                            door.max_connections
                        )
                    });
                    connection.close(
                        quinn::VarInt::from_u32(CLOSE_CONNECTION_LIMIT),
                        b"server at its connection limit",
                    );
                    return;
                };
                let accepted = Connection::from_quic(connection.clone());
                let identity_slot = match door.identity_slot(accepted.peer_fingerprint(), peer) {
                    Ok(slot) => slot,
                    Err(()) => {
                        connection.close(
                            quinn::VarInt::from_u32(CLOSE_IDENTITY_LIMIT),
                            IDENTITY_LIMIT_REASON.as_bytes(),
                        );
                        return;
                    }
                };
                debug!(fingerprint = ?accepted.peer_fingerprint(), "QUIC connection accepted");
                if sender.send(Incoming::Connection(accepted)).await.is_err() {
                    connection.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"server closing");
                    return;
                }
                // The slot is held for as long as the connection lives, whoever holds it.
                connection.closed().await;
                drop(identity_slot);
                drop(permit);
            }
            .instrument(tracing::debug_span!("quic_connection", %peer)),
        );
    }
}

/// What a handshake-budget refusal means, for the log.
fn budget_text(reason: Refusal) -> &'static str {
    match reason {
        Refusal::PerSource => {
            "its source (address, or IPv6 /64) is at --max-handshakes-per-source handshakes in progress"
        }
        _ => "--max-handshakes handshakes are in progress",
    }
}

async fn tcp_accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    mut reserve: FdReserve,
    door: Door,
    sender: mpsc::Sender<Incoming>,
    config: TransportConfig,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(10);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = FIRST_BACKOFF;
                reserve.restore();
                accepted
            }
            Err(err) => {
                if FdReserve::is_exhaustion(&err) && reserve.release() {
                    // With the spare descriptor free, the connection at the head of the
                    // backlog can be taken off it and closed: refused now rather than left
                    // to time out, and the listener stops being readable because of it.
                    if let Ok(Ok((stream, peer))) =
                        tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
                    {
                        drop(stream);
                        door.log.record(Refusal::Descriptors, || {
                            format!(
                                "TCP from {}: out of file descriptors ({err})",
                                canonical(peer)
                            )
                        });
                    }
                    reserve.restore();
                } else {
                    warn!("TCP accept failed: {err}; retrying in {backoff:?}");
                }
                // Either way, back off instead of spinning on a listener that stays readable.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let peer = canonical(peer);
        if door.connections_full() {
            door.log.record(Refusal::ConnectionLimit, || {
                format!(
                    "TCP from {peer}: all {} connection slots (-c) are taken",
                    door.max_connections
                )
            });
            refuse_tcp(stream);
            continue;
        }
        let ticket = match door.handshakes.try_enter(peer) {
            Ok(ticket) => ticket,
            Err(reason) => {
                door.log.record(reason, || {
                    format!("TCP from {peer}: {}", budget_text(reason))
                });
                refuse_tcp(stream);
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        let config = config.clone();
        let door = door.clone();
        tokio::spawn(
            async move {
                if let Some(incoming) =
                    classify_tcp(stream, peer, acceptor, ticket, &door, &config).await
                {
                    let _ = sender.send(incoming).await;
                }
            }
            .instrument(tracing::debug_span!("tcp_connection", %peer)),
        );
    }
}

/// Refuses a TCP connection without holding on to it: a TLS `internal_error` alert in place
/// of a ServerHello (the dialer reports "refused: at its connection limit or too many
/// handshakes in progress" instead of an unexplained EOF), then close.
fn refuse_tcp(stream: TcpStream) {
    /// A plaintext alert record: type 21, version TLS 1.2 (what TLS 1.3 records carry),
    /// length 2, level fatal, description.
    const ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, REFUSAL_ALERT];
    // Non-blocking on purpose: a fresh socket's send buffer is empty, so the write succeeds,
    // and a refused peer must not get to hold a task or a descriptor.
    let _ = stream.try_write(&ALERT);
    // Read what already arrived (the ClientHello): closing with unread data would send a
    // reset, which can overtake the alert.
    let mut scratch = [0u8; 2048];
    for _ in 0..4 {
        match stream.try_read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// Looks at the first byte of an inbound TCP connection (TLS handshake, legacy request, or
/// something to close) and completes the TLS handshake, all within the inbound handshake
/// timeout; then exchanges the handshake `ticket` for a connection slot.
async fn classify_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    ticket: HandshakeTicket,
    door: &Door,
    config: &TransportConfig,
) -> Option<Incoming> {
    let _ = stream.set_nodelay(true);
    enum Classified {
        Tls(Box<crate::stream::TlsSocket>),
        Legacy(TcpStream),
    }
    // One deadline for the first byte and the whole handshake: a peer sending one byte a
    // second must not restart the clock.
    let classified = tokio::time::timeout(door.timeout, async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) => {}
            // Connected and closed without a byte: a port probe or health check; not worth a
            // warning.
            Ok(_) => return None,
            Err(err) => {
                debug!("TCP peek failed: {err}");
                return None;
            }
        }
        match (first[0], acceptor) {
            (TLS_HANDSHAKE, Some(acceptor)) => match acceptor.accept(buffered_tcp(stream)).await {
                Ok(tls) => Some(Classified::Tls(Box::new(tokio_rustls::TlsStream::Server(
                    tls,
                )))),
                Err(err) => {
                    door.log.record(Refusal::HandshakeFailed, || {
                        format!("TLS handshake from {peer} failed: {}", tls_io_message(&err))
                    });
                    None
                }
            },
            // The legacy plaintext format's requests: SYNC, COPY, TAKE (docs/protocol.md §5).
            (byte @ (REQUEST_SYNC | REQUEST_COPY | REQUEST_TAKE), _) if config.legacy_tcp => {
                debug!(first_byte = byte, "legacy plaintext connection");
                Some(Classified::Legacy(stream))
            }
            (byte, _) => {
                door.log.record(Refusal::NotTls, || {
                    format!(
                        "TCP from {peer}: first byte {byte:#04x} is not a TLS handshake{}",
                        if config.legacy_tcp {
                            " nor a legacy request"
                        } else {
                            ""
                        }
                    )
                });
                None
            }
        }
    })
    .await;
    let classified = match classified {
        Ok(Some(classified)) => classified,
        Ok(None) => return None,
        Err(_) => {
            door.log.record(Refusal::HandshakeTimeout, || {
                format!(
                    "TCP from {peer}: no completed TLS handshake within {:?}",
                    door.timeout
                )
            });
            return None;
        }
    };
    drop(ticket);
    let Ok(permit) = door.connections.clone().try_acquire_owned() else {
        // The slots went while this one shook hands. TLS has no alert for after the
        // handshake, so the dialer sees the socket close at its first exchange.
        door.log.record(Refusal::ConnectionLimit, || {
            format!(
                "TCP from {peer}: all {} connection slots (-c) were taken during its handshake",
                door.max_connections
            )
        });
        return None;
    };
    match classified {
        Classified::Tls(socket) => {
            let mut socket = *socket;
            tune_tls(&mut socket);
            // TLS has no alert for after the handshake: the dialer sees the socket close.
            let identity_slot = door.identity_slot(leaf_fingerprint(&socket), peer).ok()?;
            let accepted =
                TcpAccepted::new(peer, socket, permit, identity_slot, config.idle_timeout);
            debug!(fingerprint = ?accepted.peer_fingerprint, "TLS-over-TCP connection accepted");
            Some(Incoming::Connection(Connection::tcp_server(accepted)))
        }
        Classified::Legacy(stream) => Some(Incoming::Legacy(LegacyStream {
            stream,
            peer,
            _permit: permit,
        })),
    }
}
