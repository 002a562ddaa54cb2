//! Plasma Stream's protocol, sans I/O: what the bytes and lines mean, and nothing else.
//!
//! **What it is for.** Everything a Plasma Stream server, client or CLI must agree on:
//! - [`ObjectId`], [`TransferKind`], [`PeerRequest`] and [`Request`]: what is asked for;
//! - [`limits`]: the protocol's limits, and validation with one [`LimitError`] per rule;
//! - [`Status`]: the one-byte status codes of the original implementation;
//! - [`wire`]: the QUIC wire format v1 (ALPN `plasma-stream/1`): the SYNC stream and the
//!   per-object stream, with room for resuming at an offset and an end-to-end digest;
//! - [`exchange`]: the OBJECT exchange as two state machines, [`exchange::ObjectPull`] and
//!   [`exchange::ObjectServe`], and the holder's check-out policy both formats share;
//! - [`legacy`]: the original plaintext TCP format, byte for byte, IPv4 and IPv6;
//! - [`grammar`]: the CLI's `COPY` / `TAKE` / `SYNC` lines.
//!
//! **What it is not.** It opens no socket, spawns no task, touches no store and reads no clock.
//! Encoders append to any [`bytes::BufMut`] (`Vec<u8>`, `BytesMut`); decoders read a byte
//! slice and say how much they consumed. Driving them over QUIC or TCP is the job of the
//! `transport`, `server` and `client` crates; another implementation of the protocol could use
//! this crate alone.
//!
//! **Decoders** all have the shape `fn decode(buf: &[u8]) -> Result<Option<(T, usize)>,
//! DecodeError>`: `Ok(None)` means "a valid prefix, read more", `Ok(Some((msg, consumed)))` a
//! whole message, `Err` bytes that can never be valid (the error names what and why). They
//! never panic on any input, check every count against its limit before using it, and never
//! allocate for elements whose bytes have not arrived. See [`codec`].
//!
//! **Encoders** refuse (with [`EncodeError`], writing nothing) anything their decoder would
//! reject, including the two values the legacy format's 16-bit fields cannot say.
//!
//! ```
//! use plasma_stream_protocol::{wire, PeerRequest};
//!
//! let request = wire::SyncRequest::new(vec![PeerRequest::Copy {
//!     from: "127.0.0.1:2022".parse().unwrap(),
//!     objects: vec!["0102030405060708090a0b0c0d0e0f1011121314".parse().unwrap()],
//! }])
//! .unwrap();
//! let mut bytes = Vec::new();
//! request.encode(&mut bytes).unwrap();
//! // A prefix asks for more; the whole thing decodes to the same request.
//! assert_eq!(wire::SyncRequest::decode(&bytes[..10]), Ok(None));
//! assert_eq!(wire::SyncRequest::decode(&bytes), Ok(Some((request, bytes.len()))));
//! ```
//!
//! The formats are specified byte by byte in `docs/protocol.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod events;
pub mod exchange;
pub mod grammar;
pub mod legacy;
pub mod limits;
mod object_id;
mod request;
mod status;
pub mod store_requests;
pub mod wire;

pub use codec::{DecodeError, EncodeError};
pub use grammar::{parse_command, Command, GrammarError};
pub use limits::LimitError;
pub use object_id::{ObjectId, ParseObjectIdError};
pub use request::{PeerRequest, Request, TransferKind};
pub use status::{Status, UnknownStatus};
pub use wire::ALPN;

/// Any error of this crate, for callers that want one type (each function returns the
/// specific one: [`ParseObjectIdError`], [`LimitError`], [`DecodeError`], [`EncodeError`],
/// [`GrammarError`], [`UnknownStatus`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Text or bytes that are not an object ID.
    #[error(transparent)]
    ObjectId(#[from] ParseObjectIdError),
    /// A broken protocol limit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Bytes that are not a valid message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message that cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A CLI line that is not a command.
    #[error(transparent)]
    Grammar(#[from] GrammarError),
    /// A byte that is not a status code.
    #[error(transparent)]
    Status(#[from] UnknownStatus),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
