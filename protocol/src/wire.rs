//! The QUIC wire format, version 1 (also spoken over TLS-on-TCP, the fallback).
//!
//! The version is not in the bytes: it is the ALPN protocol name, [`ALPN`] (`plasma-stream/1`),
//! negotiated by the TLS handshake. A future incompatible format gets a new ALPN name, and a
//! server can offer both. All integers are little-endian; there are no 16-bit counts, so 65,536
//! IDs and 65,536 metadata bytes are representable.
//!
//! Each bidirectional stream starts with a [`StreamKind`] byte, which is also the first byte of
//! the first message on it:
//!
//! - **SYNC stream** (`0x01`, client → server): [`SyncRequest`] ⇒, ⇐ [`SyncReport`] once every
//!   peer request has finished.
//! - **SYNC with events** (`0x03`, client → server): the same [`SyncRequest`] with first
//!   byte `0x03` ⇒, ⇐ progress events then a detailed report
//!   ([`events::SyncEvent`](crate::events::SyncEvent)).
//! - **OBJECT stream** (`0x02`, puller → holder; one object per stream): [`ObjectRequest`] ⇒,
//!   ⇐ [`ObjectHeader`], ⇐ metadata bytes, ⇐ data bytes (from the header's offset), ⇐
//!   [`DigestTrailer`] if requested, ⇒ [`Ack`], and for TAKE ⇐ [`DeleteResult`]. After an
//!   error header the holder finishes the stream.
//!
//! - **LIST** (`0x04`), **STATS** (`0x05`) and **PUT** (`0x06`), client → server: about
//!   the server's own store, and putting an object into it ([`crate::store_requests`]).
//!
//! The exact bytes of every message are in `docs/protocol.md`.

use bytes::BufMut;

use crate::codec::{
    addr_len, count_u32, finish, put_addr_ip_then_port, DecodeError, EncodeError, Reader, Stop,
};
use crate::limits::{
    self, check_id_count, check_peer_request_count, MAX_IDS_PER_LIST, MAX_PEER_REQUESTS,
};
use crate::store_requests::{self, ListRequest, PutRequest};
use crate::{LimitError, ObjectId, PeerRequest, Status, TransferKind};

/// The ALPN protocol name of this format; it carries the version (`/1`).
pub const ALPN: &[u8] = b"plasma-stream/1";

/// The format version that [`ALPN`] names.
pub const VERSION: u32 = 1;

/// The first byte of every bidirectional stream: what the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// 0x01: a SYNC (client → server).
    Sync,
    /// 0x02: one object (puller → holder).
    Object,
    /// 0x03: a SYNC whose reply is progress events then a detailed report (client → server).
    SyncWithEvents,
    /// 0x04: list the objects of the server's store, or one of them (client → server).
    List,
    /// 0x05: the server's counters (client → server).
    Stats,
    /// 0x06: store one object, sent by the client, in the server's store.
    Put,
}

impl StreamKind {
    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            StreamKind::Sync => 0x01,
            StreamKind::Object => 0x02,
            StreamKind::SyncWithEvents => 0x03,
            StreamKind::List => 0x04,
            StreamKind::Stats => 0x05,
            StreamKind::Put => 0x06,
        }
    }

    /// Reads the kind from the first byte of a stream without consuming it: the rest of the
    /// first message is then decoded from the same buffer by [`SyncRequest::decode`] or
    /// [`ObjectRequest::decode`] (or both at once by [`StreamRequest::decode`]).
    pub fn peek(buf: &[u8]) -> Result<Option<StreamKind>, DecodeError> {
        match buf.first() {
            None => Ok(None),
            Some(0x01) => Ok(Some(StreamKind::Sync)),
            Some(0x02) => Ok(Some(StreamKind::Object)),
            Some(0x03) => Ok(Some(StreamKind::SyncWithEvents)),
            Some(0x04) => Ok(Some(StreamKind::List)),
            Some(0x05) => Ok(Some(StreamKind::Stats)),
            Some(0x06) => Ok(Some(StreamKind::Put)),
            Some(&byte) => Err(DecodeError::UnknownStreamKind { byte }),
        }
    }
}

pub(crate) fn expect_kind(reader: &mut Reader<'_>, kind: StreamKind) -> Result<(), Stop> {
    let found = reader.u8()?;
    if found == kind.code() {
        return Ok(());
    }
    Err(Stop::Bad(match StreamKind::peek(&[found]) {
        Ok(_) => DecodeError::WrongMessageType {
            expected: match kind {
                StreamKind::Sync => "a SYNC stream (0x01)",
                StreamKind::Object => "an OBJECT stream (0x02)",
                StreamKind::SyncWithEvents => "a SYNC-with-events stream (0x03)",
                StreamKind::List => "a LIST stream (0x04)",
                StreamKind::Stats => "a STATS stream (0x05)",
                StreamKind::Put => "a PUT stream (0x06)",
            },
            found,
        },
        Err(e) => e,
    }))
}

/// The first message of any stream a server accepts: dispatches on the [`StreamKind`] byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRequest {
    /// A SYNC stream's request.
    Sync(SyncRequest),
    /// An OBJECT stream's request.
    Object(ObjectRequest),
    /// A SYNC-with-events stream's request (the same request; another reply).
    SyncWithEvents(SyncRequest),
    /// The client of a SYNC with events asks the server to cancel it ([`CANCEL_SYNC`]): the
    /// one message a client sends on that stream after its request. One that arrives after
    /// the report (the SYNC ended meanwhile) has nothing left to cancel and is ignored.
    CancelSync,
    /// A LIST stream's request (`ls`, `info`).
    List(ListRequest),
    /// A STATS stream's request (`stats`).
    Stats,
    /// A PUT stream's request; the object's bytes follow once the server said BEGIN.
    Put(PutRequest),
}

/// The one-byte message (ASCII CAN) a client sends on a SYNC-with-events stream, after its
/// request, to cancel the SYNC: objects not yet sealed are aborted and reported with reason
/// `cancelled`; the report follows as usual (`docs/protocol.md` §4.3).
pub const CANCEL_SYNC: u8 = 0x18;

impl StreamRequest {
    /// Decodes the first message of a stream, whichever kind it is.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        if buf.first() == Some(&CANCEL_SYNC) {
            return Ok(Some((StreamRequest::CancelSync, 1)));
        }
        match StreamKind::peek(buf)? {
            None => Ok(None),
            Some(StreamKind::Sync) => {
                Ok(SyncRequest::decode(buf)?.map(|(m, n)| (StreamRequest::Sync(m), n)))
            }
            Some(StreamKind::Object) => {
                Ok(ObjectRequest::decode(buf)?.map(|(m, n)| (StreamRequest::Object(m), n)))
            }
            Some(StreamKind::SyncWithEvents) => Ok(SyncRequest::decode_with_events(buf)?
                .map(|(m, n)| (StreamRequest::SyncWithEvents(m), n))),
            Some(StreamKind::List) => {
                Ok(ListRequest::decode(buf)?.map(|(m, n)| (StreamRequest::List(m), n)))
            }
            Some(StreamKind::Stats) => {
                Ok(store_requests::decode_stats_request(buf)?
                    .map(|((), n)| (StreamRequest::Stats, n)))
            }
            Some(StreamKind::Put) => {
                Ok(PutRequest::decode(buf)?.map(|(m, n)| (StreamRequest::Put(m), n)))
            }
        }
    }

    /// The length of the SYNC (with or without events) at the start of `buf` once all of it
    /// is buffered; `None` while part of it is missing, and for every other message. Costs
    /// the allocation-free first pass of [`SyncRequest::decode`] (O(peer requests)), so a
    /// server can tell, before decoding, that a long decode of the whole request (up to 67
    /// million IDs copied and checked for uniqueness) is about to run, and run it where it
    /// blocks no other work.
    pub fn complete_sync_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        if buf.first() == Some(&CANCEL_SYNC) {
            return Ok(None);
        }
        match StreamKind::peek(buf)? {
            Some(kind @ (StreamKind::Sync | StreamKind::SyncWithEvents)) => {
                finish(SyncRequest::frame_len(buf, kind))
            }
            _ => Ok(None),
        }
    }

    /// Appends the encoding.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        match self {
            StreamRequest::Sync(m) => m.encode(out),
            StreamRequest::Object(m) => m.encode(out),
            StreamRequest::SyncWithEvents(m) => m.encode_with_events(out),
            StreamRequest::CancelSync => {
                out.put_u8(CANCEL_SYNC);
                Ok(())
            }
            StreamRequest::List(m) => {
                m.encode(out);
                Ok(())
            }
            StreamRequest::Stats => {
                store_requests::encode_stats_request(out);
                Ok(())
            }
            StreamRequest::Put(m) => m.encode(out),
        }
    }
}

/// Client → server: pull these objects from these peers.
///
/// `0x01 | u32 peer_request_count | peer_request*`, where a peer request is
/// `u8 kind (0x02 COPY, 0x03 TAKE) | address | u32 id_count | id_count × 20 bytes` and an
/// address is `u8 family (0x04, 0x06) | 4 or 16 IP bytes | u16 port`.
///
/// A `SyncRequest` is valid by construction: [`SyncRequest::new`] and [`SyncRequest::decode`]
/// are the only ways to make one, and both enforce [`limits::validate_sync`] (1..=1024 peer
/// requests, 1..=65,536 IDs each, no ID twice in the whole SYNC), so no other code validates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncRequest {
    peer_requests: Vec<PeerRequest>,
}

/// Fewest bytes one encoded peer request can take (IPv4, one ID).
const MIN_PEER_REQUEST_LEN: usize = 1 + 7 + 4 + ObjectId::LEN;

impl SyncRequest {
    /// Builds a SYNC request, validating it.
    pub fn new(peer_requests: Vec<PeerRequest>) -> Result<Self, LimitError> {
        limits::validate_sync(&peer_requests)?;
        Ok(SyncRequest { peer_requests })
    }

    /// The peer requests, in the order the report answers them.
    pub fn peer_requests(&self) -> &[PeerRequest] {
        &self.peer_requests
    }

    /// The peer requests, owned.
    pub fn into_peer_requests(self) -> Vec<PeerRequest> {
        self.peer_requests
    }

    /// How many objects the SYNC names in all.
    pub fn object_count(&self) -> usize {
        self.peer_requests.iter().map(|p| p.objects().len()).sum()
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        1 + 4
            + self
                .peer_requests
                .iter()
                .map(|p| 1 + addr_len(&p.from()) + 4 + p.objects().len() * ObjectId::LEN)
                .sum::<usize>()
    }

    /// Appends the encoding (the request is valid by construction; `Result` for symmetry).
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        self.encode_as(StreamKind::Sync, out)
    }

    /// Appends the encoding as a SYNC-with-events stream (first byte 0x03, the rest the same).
    pub fn encode_with_events<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        self.encode_as(StreamKind::SyncWithEvents, out)
    }

    fn encode_as<B: BufMut>(&self, kind: StreamKind, out: &mut B) -> Result<(), EncodeError> {
        out.put_u8(kind.code());
        out.put_u32_le(count_u32(self.peer_requests.len())?);
        for peer_request in &self.peer_requests {
            out.put_u8(peer_request.kind().code());
            put_addr_ip_then_port(out, &peer_request.from());
            out.put_u32_le(count_u32(peer_request.objects().len())?);
            for id in peer_request.objects() {
                out.put_slice(id.as_bytes());
            }
        }
        Ok(())
    }

    /// The peer-request count a SYNC stream's bytes declare (bytes 1..5), without decoding
    /// the rest. A server uses it to answer a well-formed but refused SYNC (a decode error
    /// whose [`DecodeError::status`] is `Some`, e.g. 0x80 for a duplicate ID) with
    /// [`SyncReport::refused`]: one entry per declared peer request, each carrying the code.
    /// `None` if the bytes are not a SYNC stream or the count has not arrived.
    pub fn declared_peer_request_count(buf: &[u8]) -> Option<u32> {
        match buf {
            [0x01 | 0x03, a, b, c, d, ..] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    }

    /// Decodes a SYNC request (see the [module docs](crate::codec) for the decoder contract).
    ///
    /// Works in two passes: the first walks the frame without allocating (checking every kind,
    /// family and count), so a partial frame costs O(peer requests) per call rather than
    /// O(IDs); the second builds the request once the whole frame is buffered.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(Self::decode_inner(buf, StreamKind::Sync))
    }

    /// Decodes a SYNC-with-events request (first byte 0x03; otherwise as [`decode`](Self::decode)).
    pub fn decode_with_events(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(Self::decode_inner(buf, StreamKind::SyncWithEvents))
    }

    /// Pass 1 of decoding: whether the whole frame is here and its shape is valid (every
    /// kind, family and count), without allocating; its length.
    fn frame_len(buf: &[u8], kind: StreamKind) -> Result<usize, Stop> {
        let mut walk = Reader::new(buf);
        expect_kind(&mut walk, kind)?;
        let count = walk.u32()?;
        check_peer_request_count(u64::from(count))?;
        for index in 0..count as usize {
            walk.transfer_kind()?;
            walk.addr_ip_then_port()?;
            let ids = walk.u32()?;
            check_id_count(u64::from(ids), Some(index))?;
            walk.skip(u64::from(ids), ObjectId::LEN)?;
        }
        Ok(walk.position())
    }

    fn decode_inner(buf: &[u8], kind: StreamKind) -> Result<(Self, usize), Stop> {
        let len = Self::frame_len(buf, kind)?;

        // Pass 2: build it. Counts are within limits and their bytes are buffered.
        let mut read = Reader::new(buf.get(..len).ok_or(Stop::NeedMore)?);
        expect_kind(&mut read, kind)?;
        let count = read.u32()? as usize;
        let mut peer_requests =
            Vec::with_capacity(count.min(MAX_PEER_REQUESTS).min(len / MIN_PEER_REQUEST_LEN));
        for _ in 0..count {
            let kind = read.transfer_kind()?;
            let from = read.addr_ip_then_port()?;
            let ids = read.u32()? as usize;
            let mut objects = Vec::with_capacity(
                ids.min(MAX_IDS_PER_LIST)
                    .min(read.remaining() / ObjectId::LEN),
            );
            for _ in 0..ids {
                objects.push(read.object_id()?);
            }
            peer_requests.push(PeerRequest::new(kind, from, objects));
        }
        limits::check_unique_ids(&peer_requests)?;
        Ok((SyncRequest { peer_requests }, len))
    }
}

/// The outcome of one object of a SYNC, as reported to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectOutcome {
    /// The object.
    pub id: ObjectId,
    /// 0x41 if it arrived and was sealed; otherwise the code of what went wrong.
    pub status: Status,
    /// Object bytes (metadata + data) received for it, even if it then failed.
    pub bytes_moved: u64,
}

/// The outcome of one peer request of a SYNC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerReport {
    /// 0x41 when every object arrived; otherwise the first failing object's code (or, when the
    /// whole peer request failed, e.g. the peer was unreachable, that code).
    pub status: Status,
    /// Every object's outcome, in request order (may be empty when the whole SYNC was refused).
    pub objects: Vec<ObjectOutcome>,
}

impl PeerReport {
    /// Builds a report whose status summarises the objects as documented: success if every
    /// object succeeded (and there is at least one), else the first failing object's code.
    pub fn from_outcomes(objects: Vec<ObjectOutcome>) -> Self {
        let status = match objects.iter().find(|o| !o.status.is_success()) {
            Some(failed) => failed.status,
            None if objects.is_empty() => Status::PeerRequestFailed,
            None => Status::Success,
        };
        PeerReport { status, objects }
    }

    /// True when the peer request succeeded as a whole.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// Bytes its part of a [`SyncReport`]'s encoding takes.
    fn encoded_len(&self) -> usize {
        1 + 4 + self.objects.len() * OBJECT_OUTCOME_LEN
    }

    /// Its part of a [`SyncReport`]'s encoding (the report checked the limits).
    fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        out.put_u8(self.status.code());
        out.put_u32_le(count_u32(self.objects.len())?);
        for object in &self.objects {
            out.put_slice(object.id.as_bytes());
            out.put_u8(object.status.code());
            out.put_u64_le(object.bytes_moved);
        }
        Ok(())
    }
}

/// Server → client, on the SYNC stream once every peer request finished: one [`PeerReport`]
/// per peer request, in request order.
///
/// `u32 peer_request_count | per peer request: u8 status | u32 object_count |
/// object_count × (20-byte id | u8 status | u64 bytes_moved)`.
///
/// Counts are limited like the request's (at most 1024 and 65,536) but may be 0. Statuses must
/// be documented codes other than BEGIN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncReport {
    /// One entry per peer request, in request order.
    pub peer_reports: Vec<PeerReport>,
}

/// Bytes of one [`ObjectOutcome`] on the wire.
const OBJECT_OUTCOME_LEN: usize = ObjectId::LEN + 1 + 8;

impl SyncReport {
    /// A report refusing a whole SYNC: every one of `peer_request_count` peer requests carries
    /// `status`, with no per-object detail.
    pub fn refused(peer_request_count: usize, status: Status) -> Self {
        SyncReport {
            peer_reports: (0..peer_request_count.min(MAX_PEER_REQUESTS))
                .map(|_| PeerReport {
                    status,
                    objects: Vec::new(),
                })
                .collect(),
        }
    }

    /// True when every peer request succeeded.
    pub fn is_success(&self) -> bool {
        self.peer_reports.iter().all(PeerReport::is_success)
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        4 + self
            .peer_reports
            .iter()
            .map(PeerReport::encoded_len)
            .sum::<usize>()
    }

    /// Appends the encoding; refuses counts past the limits and BEGIN as a status.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        self.check()?;
        out.put_u32_le(count_u32(self.peer_reports.len())?);
        for report in &self.peer_reports {
            report.encode(out)?;
        }
        Ok(())
    }

    /// The same bytes as [`encode`](Self::encode), in pieces: the peer request count, then
    /// one piece per peer report, each encoded as it is asked for. A writer sending piece
    /// after piece holds one peer report's encoding (at most 1.9 MB) instead of a maximal
    /// report's 361 MB. The limits are checked first, so no piece is made of a report that
    /// cannot be sent whole.
    pub fn encode_pieces(
        &self,
    ) -> Result<impl Iterator<Item = Result<Vec<u8>, EncodeError>> + '_, EncodeError> {
        self.check()?;
        let count = count_u32(self.peer_reports.len())?.to_le_bytes().to_vec();
        let reports = self.peer_reports.iter().map(|report| {
            let mut piece = Vec::with_capacity(report.encoded_len());
            report.encode(&mut piece)?;
            Ok(piece)
        });
        Ok(std::iter::once(Ok(count)).chain(reports))
    }

    /// The limits and statuses [`encode`](Self::encode) refuses.
    fn check(&self) -> Result<(), EncodeError> {
        if self.peer_reports.len() > MAX_PEER_REQUESTS {
            return Err(LimitError::TooManyPeerRequests {
                count: self.peer_reports.len() as u64,
            }
            .into());
        }
        for (index, report) in self.peer_reports.iter().enumerate() {
            if report.objects.len() > MAX_IDS_PER_LIST {
                return Err(LimitError::TooManyIds {
                    peer_request: Some(index),
                    count: report.objects.len() as u64,
                }
                .into());
            }
            check_outcome("peer request status", report.status)?;
            for object in &report.objects {
                check_outcome("object status", object.status)?;
            }
        }
        Ok(())
    }

    /// Decodes a report (two passes, like [`SyncRequest::decode`]).
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(Self::decode_inner(buf))
    }

    fn decode_inner(buf: &[u8]) -> Result<(Self, usize), Stop> {
        let mut walk = Reader::new(buf);
        let count = walk.u32()?;
        if count as usize > MAX_PEER_REQUESTS {
            return Err(LimitError::TooManyPeerRequests {
                count: u64::from(count),
            }
            .into());
        }
        for index in 0..count as usize {
            walk.outcome("peer request status")?;
            let objects = walk.u32()?;
            if objects as usize > MAX_IDS_PER_LIST {
                return Err(LimitError::TooManyIds {
                    peer_request: Some(index),
                    count: u64::from(objects),
                }
                .into());
            }
            walk.skip(u64::from(objects), OBJECT_OUTCOME_LEN)?;
        }
        let len = walk.position();

        let mut read = Reader::new(buf.get(..len).ok_or(Stop::NeedMore)?);
        let count = read.u32()? as usize;
        let mut peer_reports = Vec::with_capacity(count.min(len / 5));
        for _ in 0..count {
            let status = read.outcome("peer request status")?;
            let objects_len = read.u32()? as usize;
            let mut objects =
                Vec::with_capacity(objects_len.min(read.remaining() / OBJECT_OUTCOME_LEN));
            for _ in 0..objects_len {
                let id = read.object_id()?;
                let status = read.outcome("object status")?;
                let bytes_moved = read.u64()?;
                objects.push(ObjectOutcome {
                    id,
                    status,
                    bytes_moved,
                });
            }
            peer_reports.push(PeerReport { status, objects });
        }
        Ok((SyncReport { peer_reports }, len))
    }
}

fn check_outcome(field: &'static str, status: Status) -> Result<(), EncodeError> {
    if status == Status::Begin {
        return Err(EncodeError::MisplacedStatus { field, status });
    }
    Ok(())
}

/// Flag bit of [`ObjectRequest`]: "send an XXH64 digest trailer after the data".
pub const FLAG_DIGEST_TRAILER: u8 = 0x01;

/// Flag bit of [`ObjectRequest`]: "send the Plasma digest of the whole object after the data"
/// (the 8 bytes Plasma stores at seal, over all data and metadata, whatever the offset): how a
/// resumed pull proves that the bytes it kept from an earlier attempt and the bytes it got now
/// make up the holder's object. Excludes [`FLAG_DIGEST_TRAILER`] (one trailer per exchange).
pub const FLAG_OBJECT_DIGEST: u8 = 0x02;

/// Puller → holder, first message of an OBJECT stream: send me this object.
///
/// `0x02 | u8 op (0x02 COPY, 0x03 TAKE) | 20-byte id | u64 resume_offset | u8 flags`.
/// A fresh pull puts `resume_offset` 0; a holder that cannot resume answers with offset 0 in
/// its [`ObjectHeader`] and sends everything. Flags: bit 0 [`FLAG_DIGEST_TRAILER`], bit 1
/// [`FLAG_OBJECT_DIGEST`], not both; other bits must be 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectRequest {
    /// COPY (holder keeps it) or TAKE (holder deletes it after the [`Ack`]).
    pub kind: TransferKind,
    /// The object.
    pub id: ObjectId,
    /// Data byte to start from (0 in v1: room for resuming an interrupted transfer).
    pub resume_offset: u64,
    /// Ask for a [`DigestTrailer`] after the data.
    pub digest_trailer: bool,
    /// Ask for the Plasma digest of the whole object after the data ([`FLAG_OBJECT_DIGEST`]).
    pub object_digest: bool,
}

impl ObjectRequest {
    /// Bytes on the wire.
    pub const ENCODED_LEN: usize = 1 + 1 + ObjectId::LEN + 8 + 1;

    /// A v1 request: from offset 0, without a digest trailer.
    pub fn new(kind: TransferKind, id: ObjectId) -> Self {
        ObjectRequest {
            kind,
            id,
            resume_offset: 0,
            digest_trailer: false,
            object_digest: false,
        }
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.digest_trailer {
            flags |= FLAG_DIGEST_TRAILER;
        }
        if self.object_digest {
            flags |= FLAG_OBJECT_DIGEST;
        }
        flags
    }

    /// Appends the encoding; refuses both trailers at once.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        if self.digest_trailer && self.object_digest {
            return Err(EncodeError::ConflictingFlags {
                flags: self.flags(),
            });
        }
        out.put_u8(StreamKind::Object.code());
        out.put_u8(self.kind.code());
        out.put_slice(self.id.as_bytes());
        out.put_u64_le(self.resume_offset);
        out.put_u8(self.flags());
        Ok(())
    }

    /// Decodes an object request.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            expect_kind(&mut read, StreamKind::Object)?;
            let kind = read.transfer_kind()?;
            let id = read.object_id()?;
            let resume_offset = read.u64()?;
            let flags = read.u8()?;
            if flags & !(FLAG_DIGEST_TRAILER | FLAG_OBJECT_DIGEST) != 0 {
                return Err(Stop::Bad(DecodeError::ReservedFlags { flags }));
            }
            if flags & FLAG_DIGEST_TRAILER != 0 && flags & FLAG_OBJECT_DIGEST != 0 {
                return Err(Stop::Bad(DecodeError::ConflictingFlags { flags }));
            }
            let request = ObjectRequest {
                kind,
                id,
                resume_offset,
                digest_trailer: flags & FLAG_DIGEST_TRAILER != 0,
                object_digest: flags & FLAG_OBJECT_DIGEST != 0,
            };
            Ok((request, read.position()))
        })())
    }
}

/// Holder → puller: the answer to an [`ObjectRequest`].
///
/// `u8 status`; if the status is 0x00 (BEGIN): `u64 data_size | u64 metadata_size | u64 offset`.
/// After `Begin` come `metadata_size` metadata bytes, then `data_size - offset` data bytes,
/// then a [`DigestTrailer`] if the request asked for one. After `Failed` the holder finishes
/// the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectHeader {
    /// The object follows.
    Begin {
        /// Total data size of the object (not just what follows).
        data_size: u64,
        /// Metadata size; all of it follows.
        metadata_size: u64,
        /// First data byte sent (the request's resume offset if honoured, else 0).
        offset: u64,
    },
    /// The holder will not send it: 0x70 being deleted, 0x71 not found, 0x60 store error,
    /// 0x50/0x51 too large, … (never BEGIN).
    Failed(Status),
}

impl ObjectHeader {
    /// Bytes on the wire of a `Begin` header.
    pub const BEGIN_LEN: usize = 1 + 8 + 8 + 8;

    /// A `Begin` header for a whole object (offset 0).
    pub fn begin(data_size: u64, metadata_size: u64) -> Self {
        ObjectHeader::Begin {
            data_size,
            metadata_size,
            offset: 0,
        }
    }

    /// Bytes that follow the header before the trailer: metadata plus data from the offset.
    /// Zero for `Failed`.
    pub fn body_len(&self) -> u64 {
        match *self {
            ObjectHeader::Begin {
                data_size,
                metadata_size,
                offset,
            } => metadata_size.saturating_add(data_size.saturating_sub(offset)),
            ObjectHeader::Failed(_) => 0,
        }
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            ObjectHeader::Begin { .. } => Self::BEGIN_LEN,
            ObjectHeader::Failed(_) => 1,
        }
    }

    /// Appends the encoding; refuses sizes past the limits, an offset past the data, and
    /// `Failed(Status::Begin)`.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        match *self {
            ObjectHeader::Begin {
                data_size,
                metadata_size,
                offset,
            } => {
                limits::validate_object_sizes(data_size, metadata_size)?;
                if offset > data_size {
                    return Err(EncodeError::OffsetPastEnd { offset, data_size });
                }
                out.put_u8(Status::Begin.code());
                out.put_u64_le(data_size);
                out.put_u64_le(metadata_size);
                out.put_u64_le(offset);
            }
            ObjectHeader::Failed(status) => {
                check_outcome("object header status", status)?;
                out.put_u8(status.code());
            }
        }
        Ok(())
    }

    /// Decodes an object header; refuses sizes past the limits and an offset past the data.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            let status = read.status("object header status")?;
            if status != Status::Begin {
                return Ok((ObjectHeader::Failed(status), read.position()));
            }
            let data_size = read.u64()?;
            let metadata_size = read.u64()?;
            let offset = read.u64()?;
            limits::validate_object_sizes(data_size, metadata_size)?;
            if offset > data_size {
                return Err(Stop::Bad(DecodeError::OffsetPastEnd { offset, data_size }));
            }
            Ok((
                ObjectHeader::Begin {
                    data_size,
                    metadata_size,
                    offset,
                },
                read.position(),
            ))
        })())
    }
}

/// A one-byte outcome message, shared shape of [`Ack`] and [`DeleteResult`].
fn encode_outcome<B: BufMut>(
    out: &mut B,
    field: &'static str,
    status: Status,
) -> Result<(), EncodeError> {
    check_outcome(field, status)?;
    out.put_u8(status.code());
    Ok(())
}

fn decode_outcome(buf: &[u8], field: &'static str) -> Result<Option<(Status, usize)>, DecodeError> {
    finish((|| {
        let mut read = Reader::new(buf);
        Ok((read.outcome(field)?, read.position()))
    })())
}

/// Puller → holder, after the object's bytes: `u8 status`. 0x41 means "received and sealed in
/// my store"; only then may a TAKE's holder delete. Anything else (0x60 local store error, 0x81
/// already in store, …) tells the holder to keep its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The puller's outcome for this object (never BEGIN).
    pub status: Status,
}

impl Ack {
    /// Bytes on the wire.
    pub const ENCODED_LEN: usize = 1;

    /// Appends the encoding; refuses BEGIN.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        encode_outcome(out, "acknowledgement", self.status)
    }

    /// Decodes an acknowledgement; refuses BEGIN and unknown codes.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        Ok(decode_outcome(buf, "acknowledgement")?.map(|(status, n)| (Ack { status }, n)))
    }
}

/// Holder → puller, TAKE only, after a 0x41 [`Ack`]: `u8 status`. 0x41 deleted (or delete
/// scheduled), 0x60 the store refused or failed the delete (the object may now exist twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeleteResult {
    /// The holder's delete outcome (never BEGIN).
    pub status: Status,
}

impl DeleteResult {
    /// Bytes on the wire.
    pub const ENCODED_LEN: usize = 1;

    /// Appends the encoding; refuses BEGIN.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        encode_outcome(out, "delete result", self.status)
    }

    /// Decodes a delete result; refuses BEGIN and unknown codes.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        Ok(decode_outcome(buf, "delete result")?.map(|(status, n)| (DeleteResult { status }, n)))
    }
}

/// Holder → puller, after the data when the request set [`FLAG_DIGEST_TRAILER`]: `u64` XXH64
/// (seed 0) of the data bytes sent (from the header's offset; metadata not included).
/// Compute it with [`DataDigest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigestTrailer {
    /// XXH64, seed 0, of the data bytes sent.
    pub xxh64: u64,
}

impl DigestTrailer {
    /// Bytes on the wire.
    pub const ENCODED_LEN: usize = 8;

    /// Appends the encoding.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        out.put_u64_le(self.xxh64);
        Ok(())
    }

    /// Decodes a digest trailer.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            Ok((DigestTrailer { xxh64: read.u64()? }, read.position()))
        })())
    }
}

/// Streaming XXH64 (seed 0) of an object's data bytes, as the [`DigestTrailer`] carries it.
/// Feed it the chunks in order as they are sent or received.
#[derive(Clone)]
pub struct DataDigest(xxhash_rust::xxh64::Xxh64);

impl DataDigest {
    /// A fresh digest (seed 0).
    pub fn new() -> Self {
        DataDigest(xxhash_rust::xxh64::Xxh64::new(0))
    }

    /// Adds the next chunk of data.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// The digest of everything added so far.
    pub fn finish(&self) -> u64 {
        self.0.digest()
    }

    /// The trailer carrying [`finish`](Self::finish).
    pub fn trailer(&self) -> DigestTrailer {
        DigestTrailer {
            xxh64: self.finish(),
        }
    }
}

impl Default for DataDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DataDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataDigest({:#018x})", self.finish())
    }
}
