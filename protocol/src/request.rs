//! What a client or a peer asks for: [`TransferKind`], [`PeerRequest`], [`Request`].

use std::fmt;
use std::net::SocketAddr;

use crate::ObjectId;

/// Whether the source keeps its copy (`Copy`) or deletes it once the destination has
/// acknowledged a sealed object (`Take`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransferKind {
    /// The source keeps its object.
    Copy,
    /// The source deletes its object after the destination acknowledged it (never before).
    Take,
}

impl TransferKind {
    /// The byte both wire formats use: 0x02 COPY, 0x03 TAKE.
    pub const fn code(self) -> u8 {
        match self {
            TransferKind::Copy => 0x02,
            TransferKind::Take => 0x03,
        }
    }

    /// The kind a wire byte names, if any.
    pub const fn from_code(byte: u8) -> Option<Self> {
        match byte {
            0x02 => Some(TransferKind::Copy),
            0x03 => Some(TransferKind::Take),
            _ => None,
        }
    }

    /// The keyword, upper case: `COPY` or `TAKE`.
    pub const fn keyword(self) -> &'static str {
        match self {
            TransferKind::Copy => "COPY",
            TransferKind::Take => "TAKE",
        }
    }
}

impl fmt::Display for TransferKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// One part of a SYNC: pull `objects` from the server at `from`, by copy or by take.
///
/// The shape (`PeerRequest::Copy { from, objects }`) is the original client library's and is
/// kept so its README example compiles unchanged. Construction does not validate; limits are
/// checked by [`crate::limits::validate_sync`], by every encoder and by every decoder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerRequest {
    /// Copy the objects from the peer; the peer keeps them.
    Copy {
        /// The peer's address (its Plasma Stream server).
        from: SocketAddr,
        /// The objects to pull, in order.
        objects: Vec<ObjectId>,
    },
    /// Take the objects from the peer; the peer deletes each after this server acknowledged it.
    Take {
        /// The peer's address (its Plasma Stream server).
        from: SocketAddr,
        /// The objects to pull, in order.
        objects: Vec<ObjectId>,
    },
}

impl PeerRequest {
    /// Builds a peer request of the given kind.
    pub fn new(kind: TransferKind, from: SocketAddr, objects: Vec<ObjectId>) -> Self {
        match kind {
            TransferKind::Copy => PeerRequest::Copy { from, objects },
            TransferKind::Take => PeerRequest::Take { from, objects },
        }
    }

    /// Copy or take.
    pub fn kind(&self) -> TransferKind {
        match self {
            PeerRequest::Copy { .. } => TransferKind::Copy,
            PeerRequest::Take { .. } => TransferKind::Take,
        }
    }

    /// The peer to pull from.
    pub fn from(&self) -> SocketAddr {
        match self {
            PeerRequest::Copy { from, .. } | PeerRequest::Take { from, .. } => *from,
        }
    }

    /// The objects to pull, in request order.
    pub fn objects(&self) -> &[ObjectId] {
        match self {
            PeerRequest::Copy { objects, .. } | PeerRequest::Take { objects, .. } => objects,
        }
    }

    /// Splits into its parts.
    pub fn into_parts(self) -> (TransferKind, SocketAddr, Vec<ObjectId>) {
        let kind = self.kind();
        match self {
            PeerRequest::Copy { from, objects } | PeerRequest::Take { from, objects } => {
                (kind, from, objects)
            }
        }
    }
}

impl fmt::Display for PeerRequest {
    /// The CLI form: `COPY 127.0.0.1:2022 0102…14 …` (all IDs, so keep it for short lists).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.from())?;
        for id in self.objects() {
            write!(f, " {id}")?;
        }
        Ok(())
    }
}

/// A request as the legacy TCP format carries it: a SYNC of peer requests (to a server), or a
/// direct COPY/TAKE of a list of objects (from the server that holds them).
///
/// The QUIC format carries the SYNC as [`crate::wire::SyncRequest`] and the per-object pulls as
/// [`crate::wire::ObjectRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    /// Pull objects from peers into the receiving server's store.
    Sync(Vec<PeerRequest>),
    /// Send these objects to me; keep them.
    Copy(Vec<ObjectId>),
    /// Send these objects to me; delete them.
    Take(Vec<ObjectId>),
}

impl Request {
    /// Validates the request against [`crate::limits`].
    pub fn validate(&self) -> Result<(), crate::LimitError> {
        match self {
            Request::Sync(peer_requests) => crate::limits::validate_sync(peer_requests),
            Request::Copy(ids) | Request::Take(ids) => crate::limits::validate_id_list(ids, None),
        }
    }
}
