//! The server's errors, and their mapping to the documented status codes (in one place).

use plasma_stream_protocol::exchange::ExchangeError;
use plasma_stream_protocol::{DecodeError, EncodeError, Status};
use plasma_stream_transport::{ReadError, TransportError};

/// What can end the serving of one stream (one object stream, one SYNC stream, one legacy
/// connection). The stream is dropped; the server goes on.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The bytes are not a valid request.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A step of the OBJECT exchange was broken (see `plasma_stream_protocol::exchange`).
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// A message we built breaks a protocol rule (a bug or a limit, never sent half-written).
    #[error("cannot encode message: {0}")]
    Encode(#[from] EncodeError),
    /// The peer ended the stream in the middle of a message.
    #[error("the stream ended in the middle of a message")]
    Truncated,
    /// A single buffered message grew past the reader's limit.
    #[error("a message longer than {limit} bytes was refused")]
    MessageTooLong { limit: usize },
    /// The connection's streams, or all streams together, already hold as many undecoded
    /// message bytes as allowed.
    #[error("{holder} is holding {budget} bytes of unfinished requests already; try again later")]
    BudgetExhausted { budget: usize, holder: &'static str },
    /// A request did not arrive whole within the time its size allows (a trickle).
    #[error("a request arrived too slowly: {received} bytes in {elapsed:?}, not yet whole")]
    TooSlow {
        received: usize,
        elapsed: std::time::Duration,
    },
    /// The connection or stream failed underneath, or stalled past the idle timeout.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Socket I/O failed (legacy plaintext connections).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The server is shutting down and abandoned the exchange.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl ServeError {
    fn from_read<E>(error: ReadError<E>, decode: impl FnOnce(E) -> ServeError) -> Self {
        match error {
            ReadError::Decode(error) => decode(error),
            ReadError::Truncated => ServeError::Truncated,
            ReadError::MessageTooLong { limit } => ServeError::MessageTooLong { limit },
            ReadError::BudgetExhausted { budget, holder } => {
                ServeError::BudgetExhausted { budget, holder }
            }
            ReadError::TooSlow { received, elapsed } => ServeError::TooSlow { received, elapsed },
            ReadError::Transport(error) => ServeError::Transport(error),
        }
    }

    /// Whether the peer sent bytes that can never be valid (logged as a warning).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            ServeError::Decode(_) | ServeError::MessageTooLong { .. }
        )
    }
}

impl From<ReadError<DecodeError>> for ServeError {
    fn from(error: ReadError<DecodeError>) -> Self {
        Self::from_read(error, ServeError::Decode)
    }
}

impl From<ReadError<ExchangeError>> for ServeError {
    fn from(error: ReadError<ExchangeError>) -> Self {
        Self::from_read(error, ServeError::Exchange)
    }
}

/// A local store failure as a status code: "already here" has its own code (0x81), "no room
/// without evicting" too (0x64); every other failure of our store is 0x60.
pub fn local_store_status(error: &plasma_store::Error) -> Status {
    match error {
        plasma_store::Error::ObjectExists(_) => Status::AlreadyInStore,
        plasma_store::Error::StoreFull { .. } => Status::StoreFull,
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
    #[error("access policy: {0}")]
    Access(#[from] crate::access::AccessError),
    #[error("cannot listen for --metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
