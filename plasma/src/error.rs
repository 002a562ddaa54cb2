use std::path::PathBuf;

use crate::wire::WireError;
use crate::ObjectId;

/// Everything that can go wrong talking to (or being) a Plasma store.
///
/// Callers can rely on these distinctions: `ObjectExists`, `ObjectNotFound` and `OutOfMemory`
/// are the store's answers about one object (the connection stays usable), and so is
/// `StoreFull` (a create that was not allowed to evict did not fit); `StoreGone`,
/// `MalformedReply` and `Io` mean the connection is no longer usable (a client drops it and
/// reconnects); `Connect` means no store could be reached at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("object {0} already exists in the store")]
    ObjectExists(ObjectId),
    #[error("object {0} not found in the store")]
    ObjectNotFound(ObjectId),
    #[error("the store is out of memory (needed {needed} bytes)")]
    OutOfMemory { needed: u64 },
    /// The store answered with an error code the protocol does not define for this request.
    #[error("the store refused the request for object {id}: {reason}")]
    Refused { id: ObjectId, reason: String },
    #[error("could not connect to a Plasma store at {} after {attempts} attempts: {source}", path.display())]
    Connect {
        path: PathBuf,
        attempts: u32,
        #[source]
        source: std::io::Error,
    },
    /// The store closed the connection (it exited, crashed or was killed).
    #[error("the Plasma store went away ({detail})")]
    StoreGone { detail: String },
    /// The store sent something that does not follow the protocol.
    #[error("malformed reply from the Plasma store: {0}")]
    MalformedReply(WireError),
    /// The connection is closed or poisoned by an earlier failure, or the pool shut down.
    #[error("the Plasma connection is closed: {0}")]
    ConnectionClosed(String),
    /// A create that was not allowed to evict did not fit: `free` bytes were free (capacity minus
    /// the objects in the store), `needed` were asked for. Nothing was evicted.
    #[error("the store is full: {needed} bytes needed, {free} free, and eviction was not allowed")]
    StoreFull { needed: u64, free: u64 },
    /// A store already answers on this socket path: serving there would take its clients.
    #[error("a Plasma store is already serving {}: stop it or choose another socket path", path.display())]
    SocketInUse { path: PathBuf },
    /// The socket path exists and is not a Unix socket; it is left alone.
    #[error("{} exists and is not a Unix socket: refusing to replace it (remove it or choose another socket path)", path.display())]
    NotASocket { path: PathBuf },
    /// The store's socket path could not be checked, cleared or bound.
    #[error("socket {}: {source}", path.display())]
    SocketPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("I/O error talking to the Plasma store: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Maps a wire-layer failure seen while talking to a store into the client's error:
    /// EOF and resets become `StoreGone`, other I/O stays `Io`, the rest is `MalformedReply`.
    pub fn from_wire(err: WireError) -> Self {
        match err {
            WireError::Closed => Error::StoreGone {
                detail: "connection closed".into(),
            },
            WireError::Io(e) => match e.kind() {
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted => Error::StoreGone {
                    detail: e.to_string(),
                },
                _ => Error::Io(e),
            },
            other => Error::MalformedReply(other),
        }
    }

    /// True when the connection that produced this error must not be used again.
    pub fn is_fatal_to_connection(&self) -> bool {
        matches!(
            self,
            Error::StoreGone { .. }
                | Error::MalformedReply(_)
                | Error::Io(_)
                | Error::ConnectionClosed(_)
        )
    }
}
