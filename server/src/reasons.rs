//! Finer reasons for an object's outcome (`protocol::events::Reason`), from the errors the
//! puller met: the status byte says *what* failed (0x90: the peer could not be reached), the
//! reason says *why* (connection refused, timed out, the peer refused our certificate...), so
//! that a user can act on it without reading the server's log.

use plasma_stream_protocol::events::{Reason, ReasonCode};
use plasma_stream_protocol::exchange::ExchangeError;
use plasma_stream_protocol::Status;
use plasma_stream_transport::TransportError;
use stream::pull::PullError;

/// The status and reason of an object whose SYNC the client cancelled before it was sealed.
/// The status is 0x62 (the peer request failed): a client of any version can read it, and the
/// reason says why.
pub fn cancelled() -> (Status, Reason) {
    (
        Status::PeerRequestFailed,
        Reason::new(ReasonCode::Cancelled, "cancelled by the client"),
    )
}

/// The reason for a transport failure, from its variant and, where the variant is a sentence
/// built by the TLS stack, from the words the transport crate puts in it.
pub fn transport(error: &TransportError) -> Reason {
    let text = error.to_string();
    let code = match error {
        TransportError::Timeout { .. } => ReasonCode::TimedOut,
        TransportError::Idle(after) => {
            return Reason::new(
                ReasonCode::Stalled,
                format!("stalled: no progress for {}", seconds(*after)),
            )
        }
        TransportError::TooSlow { bytes, within } => {
            return Reason::new(
                ReasonCode::Stalled,
                format!("stalled: only {bytes} bytes in {}", seconds(*within)),
            )
        }
        TransportError::Refused { .. } => ReasonCode::PeerBusy,
        TransportError::Handshake { .. } => handshake_code(&text),
        TransportError::Connect { reason, .. } => {
            let lower = reason.to_ascii_lowercase();
            if lower.contains("connection refused") {
                return Reason::new(
                    ReasonCode::ConnectionRefused,
                    format!("connection refused: {text}"),
                );
            }
            if lower.contains("timed out") {
                ReasonCode::TimedOut
            } else {
                handshake_code(&text)
            }
        }
        TransportError::ConnectionLost { .. }
        | TransportError::Closed
        | TransportError::Write(_)
        | TransportError::Read(_) => lost_or_certificate(&text),
        TransportError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => ReasonCode::ConnectionRefused,
            std::io::ErrorKind::TimedOut => ReasonCode::TimedOut,
            std::io::ErrorKind::PermissionDenied => ReasonCode::PeerRefusedOurCertificate,
            _ => lost_or_certificate(&text),
        },
        _ => ReasonCode::Other,
    };
    Reason::new(code, prefixed(code, &text))
}

/// A short phrase before the error's own text, so the reason reads the same whatever the
/// transport's wording ("timed out: QUIC handshake to … timed out after 5s").
fn prefixed(code: ReasonCode, text: &str) -> String {
    let phrase = match code {
        ReasonCode::TimedOut => "timed out",
        ReasonCode::ConnectionRefused => "connection refused",
        ReasonCode::PeerRefusedOurCertificate => "peer refused our certificate",
        ReasonCode::UntrustedPeerCertificate => "we do not trust the peer's certificate",
        ReasonCode::PeerBusy => "peer busy",
        ReasonCode::ConnectionLost => "connection lost",
        ReasonCode::HandshakeFailed => "handshake failed",
        _ => return text.to_string(),
    };
    format!("{phrase}: {text}")
}

fn handshake_code(text: &str) -> ReasonCode {
    if text.contains("refused our certificate") {
        ReasonCode::PeerRefusedOurCertificate
    } else if text.contains("is not trusted") {
        ReasonCode::UntrustedPeerCertificate
    } else if text.contains("refused by the peer") {
        ReasonCode::PeerBusy
    } else if text.contains("timed out") {
        ReasonCode::TimedOut
    } else if text.to_ascii_lowercase().contains("connection refused") {
        ReasonCode::ConnectionRefused
    } else {
        ReasonCode::HandshakeFailed
    }
}

fn lost_or_certificate(text: &str) -> ReasonCode {
    match handshake_code(text) {
        ReasonCode::HandshakeFailed => ReasonCode::ConnectionLost,
        code => code,
    }
}

fn seconds(after: std::time::Duration) -> String {
    if after.subsec_millis() == 0 {
        format!("{} s", after.as_secs())
    } else {
        format!("{:.1} s", after.as_secs_f64())
    }
}

/// The reason for a failed pull.
pub fn pull(error: &PullError) -> Reason {
    match error {
        PullError::Transport(transport_error) => transport(transport_error),
        PullError::Exchange(exchange) => exchange_reason(exchange),
    }
}

fn exchange_reason(error: &ExchangeError) -> Reason {
    let code = match error {
        ExchangeError::ShortBody { .. } | ExchangeError::Truncated { .. } => {
            ReasonCode::ConnectionLost
        }
        ExchangeError::ObjectChanged { .. } => ReasonCode::ObjectChanged,
        _ => ReasonCode::ProtocolError,
    };
    Reason::new(code, error.to_string())
}

/// The reason that goes with a status decided without an error to explain it (a holder's
/// refusal, a local check).
pub fn status(status: Status) -> Reason {
    let (code, text) = match status {
        Status::Success => return Reason::none(),
        Status::AlreadyInStore => (ReasonCode::AlreadyInStore, "already in the local store"),
        Status::AlreadyReceiving => (
            ReasonCode::AlreadyReceiving,
            "another request is already receiving it",
        ),
        Status::NotFound => (ReasonCode::NotFoundAtPeer, "the peer does not have it"),
        Status::BeingDeleted => (
            ReasonCode::BeingDeleted,
            "a TAKE in progress at the peer claims it",
        ),
        Status::PeerStoreError => (ReasonCode::PeerStoreError, "the peer's store failed"),
        Status::StoreError => (ReasonCode::LocalStoreError, "the local store failed"),
        Status::StoreFull => (
            ReasonCode::LocalStoreFull,
            "the local store has no room for it",
        ),
        Status::MetadataTooLarge => (ReasonCode::TooLarge, "its metadata is too large"),
        Status::DataTooLarge => (ReasonCode::TooLarge, "its data is too large"),
        Status::ZeroLengthData => (ReasonCode::TooLarge, "zero-length data"),
        Status::NotPermitted => (
            ReasonCode::NotPermitted,
            "not permitted by the access policy",
        ),
        Status::PeerConnectionFailed => (ReasonCode::Other, "cannot reach the peer"),
        Status::PeerRequestFailed => (ReasonCode::Other, "the peer request failed"),
        Status::ClientConnectionFailed => (ReasonCode::Other, "the client connection failed"),
        Status::Begin => (ReasonCode::Other, "unexpected BEGIN"),
    };
    Reason::new(code, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn transport_errors_get_their_reason() {
        let peer = "127.0.0.1:9".parse().expect("address");
        let cases = [
            (
                TransportError::Connect {
                    peer,
                    reason: "Connection refused (os error 111)".into(),
                },
                ReasonCode::ConnectionRefused,
            ),
            (
                TransportError::Timeout {
                    peer,
                    what: "QUIC handshake",
                    after: Duration::from_secs(5),
                },
                ReasonCode::TimedOut,
            ),
            (
                TransportError::Handshake {
                    peer,
                    message: "the peer refused our certificate (TLS alert 42)".into(),
                },
                ReasonCode::PeerRefusedOurCertificate,
            ),
            (
                TransportError::Handshake {
                    peer,
                    message: "server certificate sha256:ab is not trusted: pass --trust ab".into(),
                },
                ReasonCode::UntrustedPeerCertificate,
            ),
        ];
        for (error, code) in cases {
            let reason = transport(&error);
            assert_eq!(reason.code, code, "{error}");
            assert!(reason.text.len() <= 255);
        }
        let stalled = transport(&TransportError::Idle(Duration::from_secs(10)));
        assert_eq!(stalled.code, ReasonCode::Stalled);
        assert_eq!(stalled.text, "stalled: no progress for 10 s");
        let trickled = transport(&TransportError::TooSlow {
            bytes: 4096,
            within: Duration::from_secs(30),
        });
        assert_eq!(trickled.code, ReasonCode::Stalled);
        assert_eq!(trickled.text, "stalled: only 4096 bytes in 30 s");
    }

    #[test]
    fn every_status_has_a_reason() {
        for status in Status::ALL {
            let reason = super::status(status);
            assert_eq!(
                status.is_success(),
                reason.code == ReasonCode::None,
                "{status}"
            );
        }
    }
}
