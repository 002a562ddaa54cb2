//! The legacy TCP wire format of the original implementation, byte for byte.
//!
//! Spoken in plaintext by old clients and peers (a server accepts it only behind an explicit
//! option). A connection speaks it when its first byte is 0x01 SYNC, 0x02 COPY or 0x03 TAKE
//! (a TLS ClientHello starts with 0x16). All integers are little-endian.
//!
//! - Request: [`Request`] (`0x01 | u16 n | peer_request*`, or `0x02`/`0x03 | id_list`).
//! - SYNC reply: [`SyncReply`], one status byte per peer request, no length prefix.
//! - COPY/TAKE reply: [`TransferReply`] (one status byte), and after `Begin` one
//!   [`FrameHeader`] + metadata + data per requested object, in request order.
//!
//! The format's 16-bit fields cannot express two legal values, a list of 65,536 IDs and
//! 65,536 bytes of metadata; the encoders refuse them with [`EncodeError`] instead of
//! wrapping to 0 as the original did. Its decoders treat a count of 0 as the empty list it
//! says (refused by the limits), never as 65,536.

use bytes::BufMut;

use crate::codec::{
    addr_len, finish, put_addr_port_then_ip, DecodeError, EncodeError, Reader, Stop,
};
use crate::limits::{
    self, check_id_count, check_peer_request_count, MAX_IDS_PER_LIST, MAX_METADATA_SIZE,
    MAX_PEER_REQUESTS,
};
use crate::{LimitError, ObjectId, PeerRequest, Request, Status};

/// First byte of a legacy SYNC request.
pub const REQUEST_SYNC: u8 = 0x01;
/// First byte of a legacy COPY request.
pub const REQUEST_COPY: u8 = 0x02;
/// First byte of a legacy TAKE request.
pub const REQUEST_TAKE: u8 = 0x03;

/// True if a connection's first byte starts a legacy request (rather than, say, a TLS
/// ClientHello's 0x16).
pub fn is_legacy_first_byte(byte: u8) -> bool {
    matches!(byte, REQUEST_SYNC | REQUEST_COPY | REQUEST_TAKE)
}

/// The largest list the u16 count can express.
const MAX_LEGACY_IDS: usize = u16::MAX as usize;

fn check_legacy_id_list(ids: &[ObjectId]) -> Result<u16, EncodeError> {
    if ids.len() == MAX_IDS_PER_LIST {
        return Err(EncodeError::LegacyIdCountUnrepresentable { count: ids.len() });
    }
    if ids.len() > MAX_LEGACY_IDS {
        return Err(LimitError::TooManyIds {
            peer_request: None,
            count: ids.len() as u64,
        }
        .into());
    }
    u16::try_from(ids.len()).map_err(|_| EncodeError::CountOverflow { count: ids.len() })
}

impl Request {
    /// Bytes [`encode_legacy`](Self::encode_legacy) writes.
    pub fn legacy_encoded_len(&self) -> usize {
        match self {
            Request::Sync(peer_requests) => {
                1 + 2
                    + peer_requests
                        .iter()
                        .map(|p| 1 + addr_len(&p.from()) + 2 + p.objects().len() * ObjectId::LEN)
                        .sum::<usize>()
            }
            Request::Copy(ids) | Request::Take(ids) => 1 + 2 + ids.len() * ObjectId::LEN,
        }
    }

    /// Appends the legacy encoding. Refuses (writing nothing) a request that breaks a limit
    /// or holds a 65,536-ID list, which the u16 count cannot express.
    pub fn encode_legacy<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        self.validate()?;
        match self {
            Request::Sync(peer_requests) => {
                let mut counts = Vec::with_capacity(peer_requests.len());
                for peer_request in peer_requests {
                    counts.push(check_legacy_id_list(peer_request.objects())?);
                }
                let count =
                    u16::try_from(peer_requests.len()).map_err(|_| EncodeError::CountOverflow {
                        count: peer_requests.len(),
                    })?;
                out.put_u8(REQUEST_SYNC);
                out.put_u16_le(count);
                for (peer_request, ids) in peer_requests.iter().zip(counts) {
                    out.put_u8(peer_request.kind().code());
                    put_addr_port_then_ip(out, &peer_request.from());
                    out.put_u16_le(ids);
                    for id in peer_request.objects() {
                        out.put_slice(id.as_bytes());
                    }
                }
            }
            Request::Copy(ids) | Request::Take(ids) => {
                let count = check_legacy_id_list(ids)?;
                out.put_u8(if matches!(self, Request::Copy(_)) {
                    REQUEST_COPY
                } else {
                    REQUEST_TAKE
                });
                out.put_u16_le(count);
                for id in ids {
                    out.put_slice(id.as_bytes());
                }
            }
        }
        Ok(())
    }

    /// Decodes a legacy request, enforcing the limits (1..=1024 peer requests, 1..=65,535 IDs
    /// per list as the format can say, no ID twice). See [`crate::codec`] for the contract.
    pub fn decode_legacy(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(decode_request(buf))
    }
}

/// Fewest bytes of one legacy peer request (IPv4, one ID).
const MIN_PEER_REQUEST_LEN: usize = 1 + 7 + 2 + ObjectId::LEN;

fn decode_request(buf: &[u8]) -> Result<(Request, usize), Stop> {
    // Pass 1: walk the frame, checking shape and counts, allocating nothing.
    let mut walk = Reader::new(buf);
    let kind = walk.u8()?;
    match kind {
        REQUEST_SYNC => {
            let count = walk.u16()?;
            check_peer_request_count(u64::from(count))?;
            for index in 0..usize::from(count) {
                walk.transfer_kind()?;
                walk.addr_port_then_ip()?;
                let ids = walk.u16()?;
                check_id_count(u64::from(ids), Some(index))?;
                walk.skip(u64::from(ids), ObjectId::LEN)?;
            }
        }
        REQUEST_COPY | REQUEST_TAKE => {
            let ids = walk.u16()?;
            check_id_count(u64::from(ids), None)?;
            walk.skip(u64::from(ids), ObjectId::LEN)?;
        }
        byte => return Err(Stop::Bad(DecodeError::UnknownRequestType { byte })),
    }
    let len = walk.position();

    // Pass 2: the whole frame is buffered and its counts are within limits.
    let mut read = Reader::new(buf.get(..len).ok_or(Stop::NeedMore)?);
    read.u8()?;
    let request = if kind == REQUEST_SYNC {
        let count = usize::from(read.u16()?);
        let mut peer_requests =
            Vec::with_capacity(count.min(MAX_PEER_REQUESTS).min(len / MIN_PEER_REQUEST_LEN));
        for _ in 0..count {
            let kind = read.transfer_kind()?;
            let from = read.addr_port_then_ip()?;
            let objects = read_ids(&mut read)?;
            peer_requests.push(PeerRequest::new(kind, from, objects));
        }
        limits::check_unique_ids(&peer_requests)?;
        Request::Sync(peer_requests)
    } else {
        let objects = read_ids(&mut read)?;
        limits::validate_id_list(&objects, None)?;
        if kind == REQUEST_COPY {
            Request::Copy(objects)
        } else {
            Request::Take(objects)
        }
    };
    Ok((request, len))
}

fn read_ids(read: &mut Reader<'_>) -> Result<Vec<ObjectId>, Stop> {
    let count = usize::from(read.u16()?);
    let mut ids = Vec::with_capacity(count.min(read.remaining() / ObjectId::LEN));
    for _ in 0..count {
        ids.push(read.object_id()?);
    }
    Ok(ids)
}

/// The reply to a legacy SYNC: one status byte per peer request, in request order, written
/// once all of them finished. It has no length prefix: the reader must know how many peer
/// requests it sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncReply {
    /// One outcome per peer request (never BEGIN).
    pub statuses: Vec<Status>,
}

impl SyncReply {
    /// Appends the reply; refuses BEGIN and more than 1024 statuses.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        if self.statuses.len() > MAX_PEER_REQUESTS {
            return Err(LimitError::TooManyPeerRequests {
                count: self.statuses.len() as u64,
            }
            .into());
        }
        if let Some(&status) = self.statuses.iter().find(|s| **s == Status::Begin) {
            return Err(EncodeError::MisplacedStatus {
                field: "SYNC reply status",
                status,
            });
        }
        for status in &self.statuses {
            out.put_u8(status.code());
        }
        Ok(())
    }

    /// Decodes the reply to a SYNC of `peer_request_count` peer requests (1..=1024).
    pub fn decode(
        buf: &[u8],
        peer_request_count: usize,
    ) -> Result<Option<(Self, usize)>, DecodeError> {
        check_peer_request_count(peer_request_count as u64)?;
        finish((|| {
            let mut read = Reader::new(buf);
            let mut statuses = Vec::with_capacity(peer_request_count.min(buf.len()));
            for _ in 0..peer_request_count {
                statuses.push(read.outcome("SYNC reply status")?);
            }
            Ok((SyncReply { statuses }, read.position()))
        })())
    }
}

impl From<&crate::wire::SyncReport> for SyncReply {
    /// The legacy reply carrying a QUIC-format report's per-peer statuses (the per-object
    /// detail has no place in the legacy format).
    fn from(report: &crate::wire::SyncReport) -> Self {
        SyncReply {
            statuses: report.peer_reports.iter().map(|p| p.status).collect(),
        }
    }
}

/// The first byte of the reply to a legacy COPY/TAKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferReply {
    /// 0x00: one [`FrameHeader`] + metadata + data per requested object follows.
    Begin,
    /// An error status; the holder then closes the connection.
    Failed(Status),
}

impl TransferReply {
    /// Appends the reply byte; refuses `Failed(Status::Begin)`.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        match self {
            TransferReply::Begin => out.put_u8(Status::Begin.code()),
            TransferReply::Failed(Status::Begin) => {
                return Err(EncodeError::MisplacedStatus {
                    field: "COPY/TAKE reply error",
                    status: Status::Begin,
                })
            }
            TransferReply::Failed(status) => out.put_u8(status.code()),
        }
        Ok(())
    }

    /// Decodes the reply byte.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            let reply = match read.status("COPY/TAKE reply")? {
                Status::Begin => TransferReply::Begin,
                status => TransferReply::Failed(status),
            };
            Ok((reply, read.position()))
        })())
    }
}

/// The u64 header of one object frame: `metadata_size | (data_size << 16)`, i.e. metadata size
/// in the low 16 bits and data size in the high 48. Then `metadata_size` bytes of metadata and
/// `data_size` bytes of data follow. No object ID, no trailer, no acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Data bytes that follow the metadata (1..=2^44).
    pub data_size: u64,
    /// Metadata bytes that follow the header (0..=65,535 in this format).
    pub metadata_size: u64,
}

impl FrameHeader {
    /// Bytes on the wire.
    pub const ENCODED_LEN: usize = 8;

    /// The u64 as it goes on the wire (little-endian). Refuses what the format cannot carry:
    /// data outside 1..=2^44, metadata past the limit, and exactly 65,536 metadata bytes (legal,
    /// but the 16-bit field would wrap it to 0).
    pub fn to_word(&self) -> Result<u64, EncodeError> {
        limits::validate_legacy_object_sizes(self.data_size, self.metadata_size)?;
        if self.metadata_size == MAX_METADATA_SIZE {
            return Err(EncodeError::LegacyMetadataUnrepresentable {
                size: self.metadata_size,
            });
        }
        Ok(self.metadata_size | (self.data_size << 16))
    }

    /// Splits a header word; refuses data outside 1..=2^44.
    pub fn from_word(word: u64) -> Result<Self, DecodeError> {
        let header = FrameHeader {
            metadata_size: word & 0xFFFF,
            data_size: word >> 16,
        };
        limits::validate_legacy_object_sizes(header.data_size, header.metadata_size)?;
        Ok(header)
    }

    /// Appends the header.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        out.put_u64_le(self.to_word()?);
        Ok(())
    }

    /// Decodes a header.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            let header = FrameHeader::from_word(read.u64()?)?;
            Ok((header, read.position()))
        })())
    }

    /// Bytes of the frame after this header (metadata + data).
    pub fn body_len(&self) -> u64 {
        self.metadata_size.saturating_add(self.data_size)
    }
}
