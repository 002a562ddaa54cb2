//! The crate's error type, and the text of the errors it wraps.
//!
//! [`TransportError`] is what every fallible call of the crate returns. The helpers below turn
//! quinn's and rustls's errors into one readable sentence (naming a refused certificate as
//! such); they only format, they make no decisions about retrying or falling back.

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

    /// The peer refused the connection before serving it: at its connection limit, or with
    /// too many handshakes in progress. Worth retrying later; not a reason to fall back.
    #[error("{peer} refused the connection: {reason}")]
    Refused {
        peer: SocketAddr,
        reason: RefusedBecause,
    },

    /// Nothing answered in time.
    #[error("{what} to {peer} timed out after {after:?}")]
    Timeout {
        peer: SocketAddr,
        what: &'static str,
        after: Duration,
    },

    /// Nothing moved on a stream for this long (an idle timeout of one read or write).
    #[error("no progress for {0:?} (idle timeout)")]
    Idle(Duration),

    /// Bytes kept coming, but too few to call it progress: a peer trickling an object (a
    /// byte now and then, each within the idle timeout) is as stalled as a silent one.
    #[error("too little progress: {bytes} bytes in {within:?}")]
    TooSlow { bytes: u64, within: Duration },

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
    #[error("stream write: {}", describe_write(.0))]
    Write(#[from] quinn::WriteError),

    /// Reading from a QUIC stream failed (peer reset it, connection lost).
    #[error("stream read: {}", describe_read(.0))]
    Read(#[from] quinn::ReadError),

    /// Socket I/O on a TCP/TLS connection failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// Why a server refused a connection, as far as the dialer can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedBecause {
    /// It completed the handshake and then said it is at `-c/--max-connections`.
    ConnectionLimit,
    /// It refused before the handshake: QUIC CONNECTION_REFUSED or, over TCP, a TLS
    /// `internal_error` alert before its ServerHello. Either its connection limit or its
    /// handshake budget (overall or for our source address) is full; the wire does not say
    /// which.
    Busy,
    /// It completed the handshake and then said our certificate already holds its share of
    /// its connections (`--max-connections-per-identity`).
    IdentityLimit,
}

impl RefusedBecause {
    /// What a server's application close with `code` means, if it is a refusal.
    pub(crate) fn of_close_code(code: quinn::VarInt) -> Option<Self> {
        if code == quinn::VarInt::from_u32(CLOSE_CONNECTION_LIMIT) {
            Some(RefusedBecause::ConnectionLimit)
        } else if code == quinn::VarInt::from_u32(CLOSE_IDENTITY_LIMIT) {
            Some(RefusedBecause::IdentityLimit)
        } else {
            None
        }
    }
}

impl std::fmt::Display for RefusedBecause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefusedBecause::ConnectionLimit => {
                "it is at its connection limit (-c/--max-connections); try again later"
            }
            RefusedBecause::Busy => {
                "it is at its connection limit or has too many handshakes in progress \
                 (-c/--max-connections, --max-handshakes, --max-handshakes-per-source); try again later"
            }
            RefusedBecause::IdentityLimit => {
                "this certificate already holds as many connections to it as one identity may \
                 (--max-connections-per-identity); close some, or try again later"
            }
        })
    }
}

/// Application close code a server sends on a QUIC connection whose handshake completed when
/// all `max_connections` slots were taken (the reason text says so too).
pub(crate) const CLOSE_CONNECTION_LIMIT: u32 = 0x10;

/// Application close code for a QUIC connection over its certificate's share of
/// `max_connections_per_identity`.
pub(crate) const CLOSE_IDENTITY_LIMIT: u32 = 0x11;

/// Result alias for this crate.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

impl From<TransportError> for io::Error {
    fn from(err: TransportError) -> Self {
        match err {
            TransportError::Io(io) => io,
            TransportError::Timeout { .. }
            | TransportError::Idle(_)
            | TransportError::TooSlow { .. } => io::Error::new(io::ErrorKind::TimedOut, err),
            other => io::Error::other(other),
        }
    }
}

/// TLS alerts (RFC 8446 §6.2) a peer sends when it does not accept our certificate.
const CERTIFICATE_ALERTS: [u8; 7] = [42, 43, 44, 45, 46, 48, 116];

/// QUIC carries TLS alerts as transport error codes 0x100 + alert.
const QUIC_CRYPTO_ERROR_BASE: u64 = 0x100;

/// One sentence for a QUIC connection error, naming a certificate refusal as such.
pub(crate) fn quic_error_message(err: &quinn::ConnectionError) -> String {
    match err {
        // Our own TLS stack failed: its text (made readable) says why, e.g. which fingerprint
        // to trust.
        quinn::ConnectionError::TransportError(transport) => {
            plasma_stream_certs::tidy_tls_error(&transport.reason)
        }
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            format!("refused by the peer: {}", RefusedBecause::Busy)
        }
        quinn::ConnectionError::ConnectionClosed(close) => {
            let reason =
                plasma_stream_certs::tidy_tls_error(&String::from_utf8_lossy(&close.reason));
            let code = u64::from(close.error_code);
            let alert = code
                .checked_sub(QUIC_CRYPTO_ERROR_BASE)
                .and_then(|alert| u8::try_from(alert).ok());
            match alert {
                Some(alert) if CERTIFICATE_ALERTS.contains(&alert) => format!(
                    "the peer refused our certificate (TLS alert {alert}): in pinned mode its operator must trust our fingerprint; in CA mode our certificate must come from its cluster CA, unexpired and not revoked{}",
                    if reason.is_empty() { String::new() } else { format!(" ({reason})") }
                ),
                _ if reason.is_empty() => format!("closed by the peer ({})", close.error_code),
                _ => format!("closed by the peer ({}): {reason}", close.error_code),
            }
        }
        quinn::ConnectionError::ApplicationClosed(close)
            if RefusedBecause::of_close_code(close.error_code).is_some() =>
        {
            let reason = RefusedBecause::of_close_code(close.error_code)
                .unwrap_or(RefusedBecause::ConnectionLimit);
            format!("refused by the peer: {reason}")
        }
        quinn::ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            format!(
                "closed by the peer (code {}){}",
                close.error_code,
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            )
        }
        quinn::ConnectionError::TimedOut => "timed out (no answer within the idle timeout)".into(),
        other => other.to_string(),
    }
}

/// The TLS alert a server sends over TCP, in place of a ServerHello, when it refuses a
/// connection (`internal_error`: "unrelated to the peer or the correctness of the protocol",
/// RFC 8446 §6.2; TLS has no "busy" alert).
pub(crate) const REFUSAL_ALERT: u8 = 80;

/// Whether a failed TLS-over-TCP handshake is the server's refusal ([`REFUSAL_ALERT`]).
pub(crate) fn is_refusal_alert(err: &io::Error) -> bool {
    matches!(
        err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::AlertReceived(alert)) if u8::from(*alert) == REFUSAL_ALERT
    )
}

/// Text of a TLS failure on a TCP socket, with rustls's wrapping removed.
pub(crate) fn tls_io_message(err: &io::Error) -> String {
    plasma_stream_certs::tidy_tls_error(&err.to_string())
}

fn describe_read(err: &quinn::ReadError) -> String {
    match err {
        quinn::ReadError::ConnectionLost(lost) => {
            format!("connection lost: {}", quic_error_message(lost))
        }
        other => other.to_string(),
    }
}

fn describe_write(err: &quinn::WriteError) -> String {
    match err {
        quinn::WriteError::ConnectionLost(lost) => {
            format!("connection lost: {}", quic_error_message(lost))
        }
        other => other.to_string(),
    }
}

/// Rewrites an I/O error from a quinn stream or a TLS socket so its text says what happened
/// (quinn's own says only "connection lost"; rustls's names an alert).
pub(crate) fn explain_io_error(err: std::io::Error) -> std::io::Error {
    let kind = err.kind();
    let Some(inner) = err.get_ref() else {
        return err;
    };
    if let Some(read) = inner.downcast_ref::<quinn::ReadError>() {
        return std::io::Error::new(kind, format!("stream read: {}", describe_read(read)));
    }
    if let Some(write) = inner.downcast_ref::<quinn::WriteError>() {
        return std::io::Error::new(kind, format!("stream write: {}", describe_write(write)));
    }
    if let Some(rustls::Error::AlertReceived(alert)) = inner.downcast_ref::<rustls::Error>() {
        let number = u8::from(*alert);
        if CERTIFICATE_ALERTS.contains(&number) {
            return std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("the peer refused our certificate (TLS alert {alert:?}): in pinned mode its operator must trust our fingerprint; in CA mode our certificate must come from its cluster CA, unexpired and not revoked"),
            );
        }
    }
    err
}
