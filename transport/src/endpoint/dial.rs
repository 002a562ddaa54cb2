//! Dialing: the dial-only constructor ([`Endpoint::client`]); connecting to a peer, QUIC first
//! and TLS over TCP where QUIC does not connect, with the per-peer memory of that fallback; the
//! pooled connection per peer.
//!
//! The fallback decision is made here and only here; the TLS-over-TCP sockets themselves are
//! [`crate::tcp`]'s, the QUIC and TCP sides behind one API are [`crate::connection`]'s, and the
//! cache is [`crate::pool`]'s. Nothing here listens.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use plasma_stream_certs::{Identity, Trust};
use tracing::{debug, warn};

use super::Endpoint;
use crate::config::{TransportConfig, TransportMode};
use crate::connection::Connection;
use crate::error::{quic_error_message, RefusedBecause, Result, TransportError};
use crate::socket::{all_interfaces, canonical, client_udp_socket};
use crate::tcp::{TcpDialer, SERVER_NAME};

/// After QUIC to a peer timed out, how long `connect` dials that peer over TCP directly
/// instead of waiting `quic_connect_timeout` again; QUIC is retried after it.
const FALLBACK_MEMORY: Duration = Duration::from_secs(300);

impl Endpoint {
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
                Err(TransportError::Refused {
                    peer,
                    reason: RefusedBecause::Busy,
                })
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
