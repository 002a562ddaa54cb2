//! The protocol's limits, and validation with one error per rule.
//!
//! Both wire formats and the CLI grammar share these limits. The legacy format additionally
//! cannot *express* two edge values (65,536 IDs, 65,536 metadata bytes) and refuses them when
//! encoding (see [`crate::legacy`]); that is a property of its 16-bit fields, not a limit.

use std::collections::HashSet;

use crate::{ObjectId, PeerRequest, Status};

/// Fewest peer requests in one SYNC.
pub const MIN_PEER_REQUESTS: usize = 1;
/// Most peer requests in one SYNC.
pub const MAX_PEER_REQUESTS: usize = 1024;
/// Fewest object IDs in one list (a peer request, or a legacy COPY/TAKE).
pub const MIN_IDS_PER_LIST: usize = 1;
/// Most object IDs in one list.
pub const MAX_IDS_PER_LIST: usize = 65_536;
/// Largest object data: 2^44 bytes (16 TiB).
pub const MAX_DATA_SIZE: u64 = 1 << 44;
/// Largest object metadata: 65,536 bytes (64 KiB).
pub const MAX_METADATA_SIZE: u64 = 65_536;
/// Smallest object data in the legacy format (it answers 0x52 for empty data). The QUIC format
/// moves 0-byte objects.
pub const MIN_LEGACY_DATA_SIZE: u64 = 1;

/// A rule of the protocol that a request or object breaks. One variant per rule.
///
/// Positions (`peer_request`) are 0-based indexes; messages print them 1-based ("peer request
/// #1") because people read them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A SYNC with no peer request.
    #[error("a SYNC needs at least {MIN_PEER_REQUESTS} peer request, got none")]
    NoPeerRequests,
    /// A SYNC with more than [`MAX_PEER_REQUESTS`] peer requests.
    #[error("a SYNC has at most {MAX_PEER_REQUESTS} peer requests, got {count}")]
    TooManyPeerRequests {
        /// How many there were (as declared or counted).
        count: u64,
    },
    /// An empty object-ID list.
    #[error("{} needs at least {MIN_IDS_PER_LIST} object ID, got none", list_name(*.peer_request))]
    EmptyIdList {
        /// Which peer request (0-based), or `None` for a COPY/TAKE list.
        peer_request: Option<usize>,
    },
    /// An object-ID list longer than [`MAX_IDS_PER_LIST`].
    #[error("{} has at most {MAX_IDS_PER_LIST} object IDs, got {count}", list_name(*.peer_request))]
    TooManyIds {
        /// Which peer request (0-based), or `None` for a COPY/TAKE list.
        peer_request: Option<usize>,
        /// How many there were (as declared or counted).
        count: u64,
    },
    /// The same object ID twice in one SYNC (or one list).
    #[error("object ID {id} appears twice: in {} and in {}", list_name(*.first), list_name(*.second))]
    DuplicateId {
        /// The repeated ID (printed in hex).
        id: ObjectId,
        /// Peer request of the first occurrence (0-based), `None` for a COPY/TAKE list.
        first: Option<usize>,
        /// Peer request of the second occurrence (may equal `first`).
        second: Option<usize>,
    },
    /// Object data larger than [`MAX_DATA_SIZE`].
    #[error(
        "object data of {size} bytes is larger than the limit of {MAX_DATA_SIZE} bytes (2^44)"
    )]
    DataTooLarge {
        /// The declared size.
        size: u64,
    },
    /// Object metadata larger than [`MAX_METADATA_SIZE`].
    #[error(
        "object metadata of {size} bytes is larger than the limit of {MAX_METADATA_SIZE} bytes"
    )]
    MetadataTooLarge {
        /// The declared size.
        size: u64,
    },
    /// Zero bytes of object data where the legacy format needs at least one.
    #[error("object data of 0 bytes cannot move in the legacy format (at least {MIN_LEGACY_DATA_SIZE} byte)")]
    ZeroLengthData,
}

fn list_name(peer_request: Option<usize>) -> String {
    match peer_request {
        Some(index) => format!("peer request #{}", index + 1),
        None => "the object-ID list".to_owned(),
    }
}

impl LimitError {
    /// The documented status code for this failure, where the original defined one
    /// (0x50, 0x51, 0x52 for sizes; 0x80 for an ID requested twice, which the original reported
    /// as "already being received"). `None` means the request is malformed: the legacy format
    /// closes the connection without a reply; the QUIC format resets the stream.
    pub fn status(&self) -> Option<Status> {
        match self {
            LimitError::DataTooLarge { .. } => Some(Status::DataTooLarge),
            LimitError::MetadataTooLarge { .. } => Some(Status::MetadataTooLarge),
            LimitError::ZeroLengthData => Some(Status::ZeroLengthData),
            LimitError::DuplicateId { .. } => Some(Status::AlreadyReceiving),
            LimitError::NoPeerRequests
            | LimitError::TooManyPeerRequests { .. }
            | LimitError::EmptyIdList { .. }
            | LimitError::TooManyIds { .. } => None,
        }
    }
}

/// Checks a peer-request count (as declared by a length field or counted) against
/// 1..=[`MAX_PEER_REQUESTS`]. Decoders call this before reading or allocating anything.
pub fn check_peer_request_count(count: u64) -> Result<(), LimitError> {
    if count < MIN_PEER_REQUESTS as u64 {
        Err(LimitError::NoPeerRequests)
    } else if count > MAX_PEER_REQUESTS as u64 {
        Err(LimitError::TooManyPeerRequests { count })
    } else {
        Ok(())
    }
}

/// Checks an ID count against 1..=[`MAX_IDS_PER_LIST`]; `peer_request` says where, for the
/// message.
pub fn check_id_count(count: u64, peer_request: Option<usize>) -> Result<(), LimitError> {
    if count < MIN_IDS_PER_LIST as u64 {
        Err(LimitError::EmptyIdList { peer_request })
    } else if count > MAX_IDS_PER_LIST as u64 {
        Err(LimitError::TooManyIds {
            peer_request,
            count,
        })
    } else {
        Ok(())
    }
}

/// Checks one ID list: its length, and that no ID repeats within it.
pub fn validate_id_list(ids: &[ObjectId], peer_request: Option<usize>) -> Result<(), LimitError> {
    check_id_count(ids.len() as u64, peer_request)?;
    let mut seen: HashSet<&ObjectId> = HashSet::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id) {
            return Err(LimitError::DuplicateId {
                id: *id,
                first: peer_request,
                second: peer_request,
            });
        }
    }
    Ok(())
}

/// Checks a whole SYNC: 1..=1024 peer requests, each with 1..=65,536 IDs, and no ID twice
/// anywhere (within one peer request or across two). Reports the first problem in request order.
pub fn validate_sync(peer_requests: &[PeerRequest]) -> Result<(), LimitError> {
    check_peer_request_count(peer_requests.len() as u64)?;
    for (index, peer_request) in peer_requests.iter().enumerate() {
        check_id_count(peer_request.objects().len() as u64, Some(index))?;
    }
    check_unique_ids(peer_requests)
}

/// Checks that no object ID appears twice in the peer requests of one SYNC, within one peer
/// request or across two. The error names the ID and both peer requests.
pub fn check_unique_ids(peer_requests: &[PeerRequest]) -> Result<(), LimitError> {
    let total = peer_requests.iter().map(|p| p.objects().len()).sum();
    // Sized by IDs that are already in memory, never by a length field; it holds references,
    // not copies (8 bytes an entry instead of 20: 150 MB less for the largest SYNC).
    let mut seen: HashSet<&ObjectId> = HashSet::with_capacity(total);
    for (index, peer_request) in peer_requests.iter().enumerate() {
        for id in peer_request.objects() {
            if !seen.insert(id) {
                // Rare path: find where it first appeared.
                let first = peer_requests
                    .iter()
                    .position(|p| p.objects().contains(id))
                    .unwrap_or(index);
                return Err(LimitError::DuplicateId {
                    id: *id,
                    first: Some(first),
                    second: Some(index),
                });
            }
        }
    }
    Ok(())
}

/// Checks object sizes for the QUIC format: data 0..=2^44, metadata 0..=65,536.
pub fn validate_object_sizes(data_size: u64, metadata_size: u64) -> Result<(), LimitError> {
    if metadata_size > MAX_METADATA_SIZE {
        return Err(LimitError::MetadataTooLarge {
            size: metadata_size,
        });
    }
    if data_size > MAX_DATA_SIZE {
        return Err(LimitError::DataTooLarge { size: data_size });
    }
    Ok(())
}

/// Checks object sizes for the legacy format: as [`validate_object_sizes`], and data ≥ 1 byte.
/// Checks in the documented order: metadata (0x50), data (0x51), empty data (0x52).
pub fn validate_legacy_object_sizes(data_size: u64, metadata_size: u64) -> Result<(), LimitError> {
    validate_object_sizes(data_size, metadata_size)?;
    if data_size < MIN_LEGACY_DATA_SIZE {
        return Err(LimitError::ZeroLengthData);
    }
    Ok(())
}
