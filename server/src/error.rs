//! The server's errors, and their mapping to the documented status codes (in one place).

use std::time::Duration;

use plasma_stream_protocol::{DecodeError, EncodeError, Status};
use plasma_stream_transport::TransportError;

/// What can end one exchange (one object stream, one SYNC stream, one legacy request).
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The bytes are not a valid message: the stream is dropped, the server goes on.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A message we built breaks a protocol rule (a bug or a limit, never sent half-written).
    #[error("cannot encode message: {0}")]
    Encode(#[from] EncodeError),
    /// The peer ended the stream in the middle of a message.
    #[error("the stream ended in the middle of a message")]
    Truncated,
    /// The peer sent more bytes than the message it announced.
    #[error("the peer sent more bytes than it announced")]
    Overrun,
    /// A single buffered message grew past the server's limit.
    #[error("a message longer than {limit} bytes was refused")]
    MessageTooLong { limit: usize },
    /// All streams together already hold as many undecoded message bytes as the server allows.
    #[error(
        "the server is holding {budget} bytes of unfinished requests already; try again later"
    )]
    BudgetExhausted { budget: usize },
    /// Nothing moved on the stream for this long.
    #[error("no progress for {0:?} (idle timeout)")]
    Timeout(Duration),
    /// The connection or stream failed underneath.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Socket I/O failed (legacy plaintext connections).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The server is shutting down and abandoned the exchange.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl ExchangeError {
    /// How a failed pull of one object is reported: the connection to the peer failed (0x90),
    /// unless the peer spoke nonsense, which is an internal failure of the peer request (0x62).
    pub fn pull_status(&self) -> Status {
        match self {
            ExchangeError::Decode(_) | ExchangeError::Encode(_) | ExchangeError::Overrun => {
                Status::PeerRequestFailed
            }
            ExchangeError::MessageTooLong { .. } | ExchangeError::BudgetExhausted { .. } => {
                Status::PeerRequestFailed
            }
            _ => Status::PeerConnectionFailed,
        }
    }
}

/// A local store failure as a status code: "already here" has its own code (0x81); every other
/// failure of our store is 0x60.
pub fn local_store_status(error: &plasma_store::Error) -> Status {
    match error {
        plasma_store::Error::ObjectExists(_) => Status::AlreadyInStore,
        _ => Status::StoreError,
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Usage(String),
    #[error("certificate: {0}")]
    Certs(#[from] plasma_stream_certs::CertsError),
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    #[error("Plasma store: {0}")]
    Store(#[from] plasma_store::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
