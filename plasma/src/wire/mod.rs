//! The Plasma socket protocol on the wire (Arrow 11), shared by the client and the embedded
//! store: frames (`frame`), passing file descriptors (`fd_passing`) and the FlatBuffers
//! messages in both directions (`messages`). See `docs/plasma.md` §1–§4.
//!
//! Nothing here keeps state between calls: a frame is read or written whole, with exact
//! lengths, so the bytes that carry passed fds are never swallowed by a buffered reader.

pub mod fd_passing;
pub mod frame;
pub mod messages;

pub use frame::{read_frame, write_frame, Frame, MessageType, FRAME_HEADER_LEN, PROTOCOL_VERSION};
pub use messages::Message;

use messages::PlasmaError;

/// A violation of the wire protocol, or the socket failing under it.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer closed the connection (EOF) at a frame boundary or inside a frame.
    #[error("the peer closed the connection")]
    Closed,
    #[error("socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported protocol version {0} (Arrow 11 only speaks version 0)")]
    Version(i64),
    #[error("unknown message type {0}")]
    UnknownType(i64),
    #[error("frame body length {len} is negative or above the limit of {max} bytes")]
    BodyLength { len: i64, max: usize },
    #[error("expected a {expected:?} frame, got {got:?}")]
    UnexpectedType {
        expected: MessageType,
        got: MessageType,
    },
    #[error("invalid FlatBuffer in {message:?}: {source}")]
    InvalidFlatbuffer {
        message: MessageType,
        #[source]
        source: flatbuffers::InvalidFlatbuffer,
    },
    #[error("{message:?} lacks its required field `{field}`")]
    MissingField {
        message: MessageType,
        field: &'static str,
    },
    #[error("{message:?}: field `{field}` must be {expected} bytes long, got {got}")]
    FieldLength {
        message: MessageType,
        field: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{message:?}: unknown PlasmaError value {value}")]
    UnknownPlasmaError { message: MessageType, value: i32 },
    #[error("{message:?}: {detail}")]
    Inconsistent {
        message: MessageType,
        detail: String,
    },
    #[error("expected exactly one passed file descriptor with one data byte, got {fds} fds and {bytes} bytes")]
    FdPassing { fds: usize, bytes: usize },
    /// A PlasmaError value carried where the protocol does not allow it.
    #[error("{message:?}: error value {error:?} is not valid here")]
    UnexpectedError {
        message: MessageType,
        error: PlasmaError,
    },
}
