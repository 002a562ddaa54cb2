use std::time::Duration;

use plasma_stream_protocol::{
    DecodeError, EncodeError, LimitError, ObjectId, ParseObjectIdError, Status,
};

/// Everything that can go wrong using the client. Parse errors of addresses and object IDs
/// convert into it, so `"…".parse()?` works in a function returning [`Result`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid socket address (expected IP:port, e.g. 127.0.0.1:2021 or [::1]:2021): {0}")]
    Address(#[from] std::net::AddrParseError),
    #[error(transparent)]
    ObjectId(#[from] ParseObjectIdError),
    #[error("invalid request: {0}")]
    Limit(#[from] LimitError),
    #[error("malformed reply from the server: {0}")]
    Decode(#[from] DecodeError),
    #[error("cannot encode the request: {0}")]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Transport(#[from] plasma_stream_transport::TransportError),
    #[error("certificate: {0}")]
    Certs(#[from] plasma_stream_certs::CertsError),
    #[error("cannot resolve `{0}` to a socket address")]
    Resolve(String),
    #[error("no trust configured for the server's certificate: set PLASMA_STREAM_TRUST=<server fingerprint> \
             (printed by the server at startup), PLASMA_STREAM_TRUST_FILE=<file>, PLASMA_STREAM_CA=<CA pem>, or \
             PLASMA_STREAM_INSECURE=1 for development; or configure Client::builder() with \
             .trust_fingerprint(), .trust_file(), .ca() or .insecure()")]
    NoTrust,
    #[error("object {id}: {status}")]
    Object { id: ObjectId, status: Status },
    #[error("the server refused {what}: {status}")]
    Refused { what: &'static str, status: Status },
    #[error("the server ended the exchange early")]
    Truncated,
    #[error("no reply from the server for {0:?}")]
    Timeout(Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("pulling an object: {0}")]
    Pull(#[from] crate::pull::PullError),
}

impl From<plasma_stream_transport::ReadError<DecodeError>> for Error {
    fn from(error: plasma_stream_transport::ReadError<DecodeError>) -> Self {
        use plasma_stream_transport::ReadError;
        match error {
            ReadError::Decode(decode) => Error::Decode(decode),
            ReadError::Truncated => Error::Truncated,
            ReadError::Transport(transport) => Error::Transport(transport),
            other => Error::Protocol(other.to_string()),
        }
    }
}

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
