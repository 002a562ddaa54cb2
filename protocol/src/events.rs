//! The reply of a **SYNC with events** stream (stream kind `0x03`): progress while the SYNC
//! runs, then a detailed report that gives every object, beside its documented status byte, a
//! finer reason (a code and a short text), the bytes that really arrived (also on failure),
//! the attempts it took and how long it took.
//!
//! The request is a [`SyncRequest`](crate::wire::SyncRequest) whose first byte is `0x03`
//! instead of `0x01`; the old SYNC stream (`0x01`) keeps its one-message reply
//! ([`SyncReport`](crate::wire::SyncReport)) byte for byte.
//!
//! The reply is a sequence of tagged messages, each self-delimiting (no length prefix, so no
//! allocation is ever sized by an unchecked length; every count is checked against its limit
//! first):
//!
//! - `0x01` [`Progress`]: bytes and objects done, per peer request or for the whole SYNC;
//! - `0x02` [`ObjectEvent`]: one object started, arrived or failed;
//! - `0x03` [`DetailedPeerReport`] (with its index): one per peer request, in request order,
//!   once every peer request finished;
//! - `0x04` end: the number of peer reports sent; the server then finishes the stream.
//!
//! The exact bytes are in `docs/protocol.md` §4.3.

use bytes::BufMut;

use crate::codec::{count_u32, finish, DecodeError, EncodeError, Reader, Stop};
use crate::limits::{MAX_IDS_PER_LIST, MAX_PEER_REQUESTS};
use crate::{LimitError, ObjectId, Status};

/// Longest reason text, in bytes (its length is one byte on the wire).
pub const MAX_REASON_TEXT: usize = 255;

/// `Progress::peer_request` value meaning "the whole SYNC" rather than one peer request.
pub const WHOLE_SYNC: u32 = u32::MAX;

/// `Progress::bytes_total` value meaning "not known yet" (objects whose size the holder has
/// not announced).
pub const UNKNOWN_TOTAL: u64 = u64::MAX;

/// Tag bytes of the messages of a SYNC-with-events reply.
const TAG_PROGRESS: u8 = 0x01;
const TAG_OBJECT: u8 = 0x02;
const TAG_PEER_REPORT: u8 = 0x03;
const TAG_END: u8 = 0x04;

/// The finer reason for an object's outcome, beside its documented status byte. Codes are
/// stable; a code this version does not know decodes as [`ReasonCode::Unassigned`] (a newer
/// server may add codes; the status byte stays authoritative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReasonCode {
    /// 0x00: no finer reason (success, or nothing more to say than the status).
    #[default]
    None,
    /// 0x01: the object is already in the local store.
    AlreadyInStore,
    /// 0x02: another request is already receiving the object.
    AlreadyReceiving,
    /// 0x03: the access policy refuses it (a TAKE without `sync-take`, a peer without `hold`).
    NotPermitted,
    /// 0x04: the peer is outside `--peer-allow`; it was not dialled.
    PeerNotAllowed,
    /// 0x05: the peer is this server (by address or certificate).
    PeerIsSelf,
    /// 0x10: nothing listens at the peer's address (connection refused).
    ConnectionRefused,
    /// 0x11: the peer did not answer in time.
    TimedOut,
    /// 0x12: the peer refused our certificate.
    PeerRefusedOurCertificate,
    /// 0x13: we do not trust the peer's certificate.
    UntrustedPeerCertificate,
    /// 0x14: the peer is busy (at its connection or handshake limit).
    PeerBusy,
    /// 0x15: the TLS handshake failed for another reason.
    HandshakeFailed,
    /// 0x16: the connection or stream was lost or reset mid-transfer.
    ConnectionLost,
    /// 0x17: the transfer stalled (no progress within the idle timeout).
    Stalled,
    /// 0x20: the holder does not have the object.
    NotFoundAtPeer,
    /// 0x21: a TAKE in progress at the holder claims the object.
    BeingDeleted,
    /// 0x22: the holder's store failed.
    PeerStoreError,
    /// 0x23: the holder's object changed while we pulled it.
    ObjectChanged,
    /// 0x24: the holder broke the protocol (a malformed or out-of-order message).
    ProtocolError,
    /// 0x25: the object's sizes are past the limits.
    TooLarge,
    /// 0x30: the local store has no room for the object.
    LocalStoreFull,
    /// 0x31: the local store failed.
    LocalStoreError,
    /// 0x40: this server is shutting down.
    ShuttingDown,
    /// 0x41: the client cancelled the SYNC before the object was sealed.
    Cancelled,
    /// 0xFF: something else (the text says what).
    Other,
    /// A code this version does not define (sent by a newer server).
    Unassigned(u8),
}

impl ReasonCode {
    /// Every defined code, for tables and tests.
    pub const ALL: [ReasonCode; 25] = [
        ReasonCode::None,
        ReasonCode::AlreadyInStore,
        ReasonCode::AlreadyReceiving,
        ReasonCode::NotPermitted,
        ReasonCode::PeerNotAllowed,
        ReasonCode::PeerIsSelf,
        ReasonCode::ConnectionRefused,
        ReasonCode::TimedOut,
        ReasonCode::PeerRefusedOurCertificate,
        ReasonCode::UntrustedPeerCertificate,
        ReasonCode::PeerBusy,
        ReasonCode::HandshakeFailed,
        ReasonCode::ConnectionLost,
        ReasonCode::Stalled,
        ReasonCode::NotFoundAtPeer,
        ReasonCode::BeingDeleted,
        ReasonCode::PeerStoreError,
        ReasonCode::ObjectChanged,
        ReasonCode::ProtocolError,
        ReasonCode::TooLarge,
        ReasonCode::LocalStoreFull,
        ReasonCode::LocalStoreError,
        ReasonCode::ShuttingDown,
        ReasonCode::Cancelled,
        ReasonCode::Other,
    ];

    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            ReasonCode::None => 0x00,
            ReasonCode::AlreadyInStore => 0x01,
            ReasonCode::AlreadyReceiving => 0x02,
            ReasonCode::NotPermitted => 0x03,
            ReasonCode::PeerNotAllowed => 0x04,
            ReasonCode::PeerIsSelf => 0x05,
            ReasonCode::ConnectionRefused => 0x10,
            ReasonCode::TimedOut => 0x11,
            ReasonCode::PeerRefusedOurCertificate => 0x12,
            ReasonCode::UntrustedPeerCertificate => 0x13,
            ReasonCode::PeerBusy => 0x14,
            ReasonCode::HandshakeFailed => 0x15,
            ReasonCode::ConnectionLost => 0x16,
            ReasonCode::Stalled => 0x17,
            ReasonCode::NotFoundAtPeer => 0x20,
            ReasonCode::BeingDeleted => 0x21,
            ReasonCode::PeerStoreError => 0x22,
            ReasonCode::ObjectChanged => 0x23,
            ReasonCode::ProtocolError => 0x24,
            ReasonCode::TooLarge => 0x25,
            ReasonCode::LocalStoreFull => 0x30,
            ReasonCode::LocalStoreError => 0x31,
            ReasonCode::ShuttingDown => 0x40,
            ReasonCode::Cancelled => 0x41,
            ReasonCode::Other => 0xFF,
            ReasonCode::Unassigned(byte) => byte,
        }
    }

    /// The code for a byte; never fails (see [`ReasonCode::Unassigned`]).
    pub fn from_code(byte: u8) -> ReasonCode {
        ReasonCode::ALL
            .into_iter()
            .find(|code| code.code() == byte)
            .unwrap_or(ReasonCode::Unassigned(byte))
    }

    /// A short machine-readable name (`connection-refused`), for logs and `--json`.
    pub const fn name(self) -> &'static str {
        match self {
            ReasonCode::None => "none",
            ReasonCode::AlreadyInStore => "already-in-store",
            ReasonCode::AlreadyReceiving => "already-receiving",
            ReasonCode::NotPermitted => "not-permitted",
            ReasonCode::PeerNotAllowed => "peer-not-allowed",
            ReasonCode::PeerIsSelf => "peer-is-self",
            ReasonCode::ConnectionRefused => "connection-refused",
            ReasonCode::TimedOut => "timed-out",
            ReasonCode::PeerRefusedOurCertificate => "peer-refused-our-certificate",
            ReasonCode::UntrustedPeerCertificate => "untrusted-peer-certificate",
            ReasonCode::PeerBusy => "peer-busy",
            ReasonCode::HandshakeFailed => "handshake-failed",
            ReasonCode::ConnectionLost => "connection-lost",
            ReasonCode::Stalled => "stalled",
            ReasonCode::NotFoundAtPeer => "not-found-at-peer",
            ReasonCode::BeingDeleted => "being-deleted",
            ReasonCode::PeerStoreError => "peer-store-error",
            ReasonCode::ObjectChanged => "object-changed",
            ReasonCode::ProtocolError => "protocol-error",
            ReasonCode::TooLarge => "too-large",
            ReasonCode::LocalStoreFull => "local-store-full",
            ReasonCode::LocalStoreError => "local-store-error",
            ReasonCode::ShuttingDown => "shutting-down",
            ReasonCode::Cancelled => "cancelled",
            ReasonCode::Other => "other",
            ReasonCode::Unassigned(_) => "unassigned",
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A reason's words. A SYNC of millions of objects that fail for one cause (a peer refused,
/// outside `--peer-allow`) gives each the same reason: the words are shared, never copied
/// per object (a fixed phrase costs nothing; a built one is counted, not cloned).
#[derive(Clone)]
pub enum ReasonText {
    /// A fixed phrase of the program.
    Fixed(&'static str),
    /// Words built at run time (an error's message, or decoded from a report). An
    /// `Arc<String>`, not an `Arc<str>`: its thin pointer keeps the whole text 16 bytes.
    Shared(std::sync::Arc<String>),
}

impl ReasonText {
    /// The words.
    pub fn as_str(&self) -> &str {
        match self {
            ReasonText::Fixed(text) => text,
            ReasonText::Shared(text) => text,
        }
    }
}

impl Default for ReasonText {
    fn default() -> Self {
        ReasonText::Fixed("")
    }
}

impl std::ops::Deref for ReasonText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for ReasonText {
    fn from(text: &'static str) -> Self {
        ReasonText::Fixed(text)
    }
}

impl From<String> for ReasonText {
    fn from(text: String) -> Self {
        ReasonText::Shared(std::sync::Arc::new(text))
    }
}

impl PartialEq for ReasonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ReasonText {}

impl PartialEq<str> for ReasonText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ReasonText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::hash::Hash for ReasonText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for ReasonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for ReasonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason: a code and a short human text (at most [`MAX_REASON_TEXT`] bytes of UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Reason {
    /// The machine-readable code.
    pub code: ReasonCode,
    /// What happened, in words (e.g. "connection refused").
    pub text: ReasonText,
}

impl Reason {
    /// A reason with `text` cut to [`MAX_REASON_TEXT`] bytes at a character boundary, so
    /// a long error message never makes a report unencodable.
    pub fn new(code: ReasonCode, text: impl Into<ReasonText>) -> Self {
        let text = text.into();
        if text.len() <= MAX_REASON_TEXT {
            return Reason { code, text };
        }
        let mut cut = MAX_REASON_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = match text {
            ReasonText::Fixed(fixed) => ReasonText::Fixed(fixed.get(..cut).unwrap_or_default()),
            ReasonText::Shared(shared) => {
                ReasonText::from(shared.get(..cut).unwrap_or_default().to_owned())
            }
        };
        Reason { code, text }
    }

    /// No finer reason.
    pub fn none() -> Self {
        Reason::default()
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.text.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}", self.text)
        }
    }
}

/// Bytes done so far, for one peer request or ([`WHOLE_SYNC`]) the whole SYNC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Progress {
    /// Index of the peer request in the SYNC, or [`WHOLE_SYNC`].
    pub peer_request: u32,
    /// Object bytes (metadata + data) received so far.
    pub bytes_done: u64,
    /// Object bytes in all, or [`UNKNOWN_TOTAL`] while some object's size is not known.
    pub bytes_total: u64,
    /// Objects finished (arrived or failed).
    pub objects_done: u32,
    /// Objects in all.
    pub objects_total: u32,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectState {
    /// 0x01: its transfer started (the holder announced it, with its size).
    Started,
    /// 0x02: it arrived and was sealed.
    Arrived,
    /// 0x03: it failed (the final report says why).
    Failed,
}

impl ObjectState {
    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            ObjectState::Started => 0x01,
            ObjectState::Arrived => 0x02,
            ObjectState::Failed => 0x03,
        }
    }

    fn from_code(byte: u8) -> Option<ObjectState> {
        match byte {
            0x01 => Some(ObjectState::Started),
            0x02 => Some(ObjectState::Arrived),
            0x03 => Some(ObjectState::Failed),
            _ => None,
        }
    }
}

/// One object's state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectEvent {
    /// Index of its peer request in the SYNC.
    pub peer_request: u32,
    /// The object.
    pub id: ObjectId,
    /// What happened.
    pub state: ObjectState,
    /// Its size (metadata + data) when known, else 0 (for `Started`: as announced).
    pub size: u64,
}

/// One object's outcome in the detailed report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DetailedOutcome {
    /// The object.
    pub id: ObjectId,
    /// The documented status byte (0x41 success, …), the same as the old report's.
    pub status: Status,
    /// Why, finer than the status.
    pub reason: Reason,
    /// Object bytes (metadata + data) that really arrived, also when it then failed.
    pub bytes_moved: u64,
    /// Attempts made (1 without a retry; 0 when it was decided without pulling, e.g. 0x81).
    pub attempts: u32,
    /// Time spent on it, in milliseconds (0 when decided without pulling).
    pub duration_ms: u64,
}

/// One peer request's outcome in the detailed report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DetailedPeerReport {
    /// 0x41 when every object arrived, else the first failing object's code (as the old
    /// report's).
    pub status: Status,
    /// Every object, in request order (empty when the whole SYNC was refused).
    pub objects: Vec<DetailedOutcome>,
}

impl DetailedPeerReport {
    /// The peer request's status from its objects, as `PeerReport::from_outcomes`.
    pub fn from_outcomes(objects: Vec<DetailedOutcome>) -> Self {
        let status = match objects.iter().find(|o| !o.status.is_success()) {
            Some(failed) => failed.status,
            None if objects.is_empty() => Status::PeerRequestFailed,
            None => Status::Success,
        };
        DetailedPeerReport { status, objects }
    }

    /// True when the peer request succeeded as a whole.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The old report's entry (status, and per object id, status, bytes).
    pub fn to_plain(&self) -> crate::wire::PeerReport {
        crate::wire::PeerReport {
            status: self.status,
            objects: self
                .objects
                .iter()
                .map(|o| crate::wire::ObjectOutcome {
                    id: o.id,
                    status: o.status,
                    bytes_moved: o.bytes_moved,
                })
                .collect(),
        }
    }
}

/// The whole detailed report: one entry per peer request, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DetailedReport {
    /// One entry per peer request.
    pub peer_reports: Vec<DetailedPeerReport>,
}

impl DetailedReport {
    /// A report refusing a whole SYNC: every peer request carries `status` and `reason`,
    /// with no per-object detail.
    pub fn refused(peer_request_count: usize, status: Status) -> Self {
        DetailedReport {
            peer_reports: (0..peer_request_count.min(MAX_PEER_REQUESTS))
                .map(|_| DetailedPeerReport {
                    status,
                    objects: Vec::new(),
                })
                .collect(),
        }
    }

    /// True when every peer request succeeded.
    pub fn is_success(&self) -> bool {
        self.peer_reports.iter().all(DetailedPeerReport::is_success)
    }

    /// The old, plain report (what a `0x01` SYNC stream answers).
    pub fn to_plain(&self) -> crate::wire::SyncReport {
        crate::wire::SyncReport {
            peer_reports: self
                .peer_reports
                .iter()
                .map(DetailedPeerReport::to_plain)
                .collect(),
        }
    }

    /// The old report, consuming this one peer report at a time: a SYNC of millions of
    /// objects never holds both reports whole.
    pub fn into_plain(self) -> crate::wire::SyncReport {
        crate::wire::SyncReport {
            peer_reports: self
                .peer_reports
                .into_iter()
                .map(|detailed| detailed.to_plain())
                .collect(),
        }
    }

    /// The messages that carry it: one [`SyncEvent::PeerReport`] per peer request, then
    /// [`SyncEvent::End`].
    pub fn into_events(self) -> Vec<SyncEvent> {
        let count = self.peer_reports.len();
        let mut events: Vec<SyncEvent> = self
            .peer_reports
            .into_iter()
            .enumerate()
            .map(|(index, report)| SyncEvent::PeerReport {
                index: index as u32,
                report,
            })
            .collect();
        events.push(SyncEvent::End {
            peer_request_count: count as u32,
        });
        events
    }
}

/// One message of a SYNC-with-events reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyncEvent {
    /// `0x01`: bytes and objects done.
    Progress(Progress),
    /// `0x02`: an object's state changed.
    Object(ObjectEvent),
    /// `0x03`: the final outcome of peer request `index` (they come in order, 0 first).
    PeerReport {
        /// Index of the peer request.
        index: u32,
        /// Its outcome.
        report: DetailedPeerReport,
    },
    /// `0x04`: the report is complete; `peer_request_count` peer reports came before it.
    End {
        /// How many peer reports were sent.
        peer_request_count: u32,
    },
}

/// Fixed bytes of one object outcome before its reason text.
const OUTCOME_FIXED_LEN: usize = ObjectId::LEN + 1 + 8 + 4 + 8 + 1 + 1;

impl SyncEvent {
    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            SyncEvent::Progress(_) => 1 + 4 + 8 + 8 + 4 + 4,
            SyncEvent::Object(_) => 1 + 4 + ObjectId::LEN + 1 + 8,
            SyncEvent::PeerReport { report, .. } => {
                1 + 4
                    + 1
                    + 4
                    + report
                        .objects
                        .iter()
                        .map(|o| OUTCOME_FIXED_LEN + o.reason.text.len())
                        .sum::<usize>()
            }
            SyncEvent::End { .. } => 1 + 4,
        }
    }

    /// Appends the encoding; refuses (writing nothing) what the decoder would reject: counts
    /// past the limits, BEGIN as a status, a reason text over 255 bytes.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        match self {
            SyncEvent::Progress(p) => {
                out.put_u8(TAG_PROGRESS);
                out.put_u32_le(p.peer_request);
                out.put_u64_le(p.bytes_done);
                out.put_u64_le(p.bytes_total);
                out.put_u32_le(p.objects_done);
                out.put_u32_le(p.objects_total);
            }
            SyncEvent::Object(o) => {
                out.put_u8(TAG_OBJECT);
                out.put_u32_le(o.peer_request);
                out.put_slice(o.id.as_bytes());
                out.put_u8(o.state.code());
                out.put_u64_le(o.size);
            }
            SyncEvent::PeerReport { index, report } => {
                check_peer_index(u64::from(*index))?;
                if report.objects.len() > MAX_IDS_PER_LIST {
                    return Err(LimitError::TooManyIds {
                        peer_request: Some(*index as usize),
                        count: report.objects.len() as u64,
                    }
                    .into());
                }
                check_outcome("peer request status", report.status)?;
                for object in &report.objects {
                    check_outcome("object status", object.status)?;
                    if object.reason.text.len() > MAX_REASON_TEXT {
                        return Err(EncodeError::ReasonTooLong {
                            len: object.reason.text.len(),
                        });
                    }
                }
                out.put_u8(TAG_PEER_REPORT);
                out.put_u32_le(*index);
                out.put_u8(report.status.code());
                out.put_u32_le(count_u32(report.objects.len())?);
                for o in &report.objects {
                    out.put_slice(o.id.as_bytes());
                    out.put_u8(o.status.code());
                    out.put_u64_le(o.bytes_moved);
                    out.put_u32_le(o.attempts);
                    out.put_u64_le(o.duration_ms);
                    out.put_u8(o.reason.code.code());
                    // Checked above: at most 255.
                    out.put_u8(o.reason.text.len() as u8);
                    out.put_slice(o.reason.text.as_bytes());
                }
            }
            SyncEvent::End { peer_request_count } => {
                if *peer_request_count as usize > MAX_PEER_REQUESTS {
                    return Err(LimitError::TooManyPeerRequests {
                        count: u64::from(*peer_request_count),
                    }
                    .into());
                }
                out.put_u8(TAG_END);
                out.put_u32_le(*peer_request_count);
            }
        }
        Ok(())
    }

    /// Decodes one message (see the [codec docs](crate::codec) for the decoder contract).
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(Self::decode_inner(buf))
    }

    fn decode_inner(buf: &[u8]) -> Result<(Self, usize), Stop> {
        let mut read = Reader::new(buf);
        let event = match read.u8()? {
            TAG_PROGRESS => SyncEvent::Progress(Progress {
                peer_request: read.u32()?,
                bytes_done: read.u64()?,
                bytes_total: read.u64()?,
                objects_done: read.u32()?,
                objects_total: read.u32()?,
            }),
            TAG_OBJECT => {
                let peer_request = read.u32()?;
                let id = read.object_id()?;
                let byte = read.u8()?;
                let state = ObjectState::from_code(byte)
                    .ok_or(Stop::Bad(DecodeError::UnknownObjectState { byte }))?;
                let size = read.u64()?;
                SyncEvent::Object(ObjectEvent {
                    peer_request,
                    id,
                    state,
                    size,
                })
            }
            TAG_PEER_REPORT => return Self::decode_peer_report(buf),
            TAG_END => {
                let peer_request_count = read.u32()?;
                if peer_request_count as usize > MAX_PEER_REQUESTS {
                    return Err(LimitError::TooManyPeerRequests {
                        count: u64::from(peer_request_count),
                    }
                    .into());
                }
                SyncEvent::End { peer_request_count }
            }
            byte => return Err(Stop::Bad(DecodeError::UnknownEventTag { byte })),
        };
        Ok((event, read.position()))
    }

    /// Two passes, like the SYNC request's: a walk that checks the shape and finds the end
    /// without allocating, then the build from bytes known to be buffered.
    fn decode_peer_report(buf: &[u8]) -> Result<(Self, usize), Stop> {
        let mut walk = Reader::new(buf);
        walk.u8()?;
        let index = walk.u32()?;
        check_peer_index(u64::from(index))?;
        walk.outcome("peer request status")?;
        let objects = walk.u32()?;
        if objects as usize > MAX_IDS_PER_LIST {
            return Err(LimitError::TooManyIds {
                peer_request: Some(index as usize),
                count: u64::from(objects),
            }
            .into());
        }
        for _ in 0..objects {
            walk.take(ObjectId::LEN)?;
            walk.outcome("object status")?;
            walk.take(8 + 4 + 8 + 1)?;
            let text_len = walk.u8()?;
            let text = walk.take(usize::from(text_len))?;
            std::str::from_utf8(text).map_err(|_| Stop::Bad(DecodeError::ReasonNotUtf8))?;
        }
        let len = walk.position();

        let mut read = Reader::new(buf.get(..len).ok_or(Stop::NeedMore)?);
        read.u8()?;
        let index = read.u32()?;
        let status = read.outcome("peer request status")?;
        let count = read.u32()? as usize;
        // The walk proved `count` outcomes are buffered, each at least OUTCOME_FIXED_LEN bytes.
        let mut outcomes = Vec::with_capacity(count.min(read.remaining() / OUTCOME_FIXED_LEN));
        // Outcomes of one cause carry the same words one after another: share them.
        let mut last_text = ReasonText::default();
        for _ in 0..count {
            let id = read.object_id()?;
            let status = read.outcome("object status")?;
            let bytes_moved = read.u64()?;
            let attempts = read.u32()?;
            let duration_ms = read.u64()?;
            let code = ReasonCode::from_code(read.u8()?);
            let text_len = read.u8()?;
            let text = std::str::from_utf8(read.take(usize::from(text_len))?)
                .map_err(|_| Stop::Bad(DecodeError::ReasonNotUtf8))?;
            outcomes.push(DetailedOutcome {
                id,
                status,
                reason: Reason {
                    code,
                    text: if last_text == text {
                        last_text.clone()
                    } else {
                        last_text = ReasonText::from(text.to_owned());
                        last_text.clone()
                    },
                },
                bytes_moved,
                attempts,
                duration_ms,
            });
        }
        Ok((
            SyncEvent::PeerReport {
                index,
                report: DetailedPeerReport {
                    status,
                    objects: outcomes,
                },
            },
            len,
        ))
    }
}

fn check_peer_index(index: u64) -> Result<(), LimitError> {
    // An index names one of at most MAX_PEER_REQUESTS peer requests.
    if index >= MAX_PEER_REQUESTS as u64 {
        return Err(LimitError::TooManyPeerRequests { count: index + 1 });
    }
    Ok(())
}

fn check_outcome(field: &'static str, status: Status) -> Result<(), EncodeError> {
    if status == Status::Begin {
        return Err(EncodeError::MisplacedStatus { field, status });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 20])
    }

    fn samples() -> Vec<SyncEvent> {
        vec![
            SyncEvent::Progress(Progress {
                peer_request: 0,
                bytes_done: 1 << 20,
                bytes_total: 64 << 20,
                objects_done: 0,
                objects_total: 1,
            }),
            SyncEvent::Progress(Progress {
                peer_request: WHOLE_SYNC,
                bytes_done: 0,
                bytes_total: UNKNOWN_TOTAL,
                objects_done: 0,
                objects_total: 3,
            }),
            SyncEvent::Object(ObjectEvent {
                peer_request: 2,
                id: id(7),
                state: ObjectState::Failed,
                size: 0,
            }),
            SyncEvent::PeerReport {
                index: 1,
                report: DetailedPeerReport::from_outcomes(vec![
                    DetailedOutcome {
                        id: id(1),
                        status: Status::Success,
                        reason: Reason::none(),
                        bytes_moved: 42,
                        attempts: 1,
                        duration_ms: 3,
                    },
                    DetailedOutcome {
                        id: id(2),
                        status: Status::PeerConnectionFailed,
                        reason: Reason::new(ReasonCode::ConnectionRefused, "connection refusé"),
                        bytes_moved: 7,
                        attempts: 3,
                        duration_ms: 1500,
                    },
                ]),
            },
            SyncEvent::PeerReport {
                index: 0,
                report: DetailedPeerReport {
                    status: Status::AlreadyReceiving,
                    objects: vec![],
                },
            },
            SyncEvent::End {
                peer_request_count: 2,
            },
        ]
    }

    fn encode(event: &SyncEvent) -> Vec<u8> {
        let mut out = Vec::new();
        event.encode(&mut out).expect("encodable");
        assert_eq!(out.len(), event.encoded_len());
        out
    }

    #[test]
    fn round_trips_with_trailing_bytes_left_alone() {
        for event in samples() {
            let mut bytes = encode(&event);
            let len = bytes.len();
            bytes.extend_from_slice(&[0xAB, 0xCD]);
            assert_eq!(SyncEvent::decode(&bytes), Ok(Some((event, len))));
        }
    }

    #[test]
    fn every_strict_prefix_needs_more() {
        for event in samples() {
            let bytes = encode(&event);
            for cut in 0..bytes.len() {
                assert_eq!(
                    SyncEvent::decode(&bytes[..cut]),
                    Ok(None),
                    "{event:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn exact_bytes_of_a_progress_event() {
        let event = SyncEvent::Progress(Progress {
            peer_request: 1,
            bytes_done: 2,
            bytes_total: 3,
            objects_done: 4,
            objects_total: 5,
        });
        let mut expected = vec![0x01, 1, 0, 0, 0];
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(&[4, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(encode(&event), expected);
    }

    #[test]
    fn an_outcome_stays_small_and_shares_its_words() {
        // A maximal SYNC holds 12.45 M outcomes: each byte here is 12 MB of the server's
        // peak (docs/operations.md, "one maximal SYNC").
        assert_eq!(std::mem::size_of::<ReasonText>(), 16);
        assert!(std::mem::size_of::<DetailedOutcome>() <= 72);
        let built = Reason::new(ReasonCode::ConnectionRefused, format!("refused by {}", 7));
        let copy = built.clone();
        match (&built.text, &copy.text) {
            (ReasonText::Shared(a), ReasonText::Shared(b)) => assert!(std::sync::Arc::ptr_eq(a, b)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Reason::new(ReasonCode::Other, "fixed").text,
            ReasonText::Fixed("fixed")
        ));
    }

    #[test]
    fn oversize_reason_text_is_refused_and_cut_by_new() {
        let long = "é".repeat(200); // 400 bytes
        let reason = Reason::new(ReasonCode::Other, long.clone());
        assert!(reason.text.len() <= MAX_REASON_TEXT);
        assert!(long.starts_with(reason.text.as_str()));
        let event = SyncEvent::PeerReport {
            index: 0,
            report: DetailedPeerReport::from_outcomes(vec![DetailedOutcome {
                id: id(1),
                status: Status::StoreError,
                reason: Reason {
                    code: ReasonCode::Other,
                    text: "x".repeat(256).into(),
                },
                bytes_moved: 0,
                attempts: 1,
                duration_ms: 0,
            }]),
        };
        let mut out = Vec::new();
        assert_eq!(
            event.encode(&mut out),
            Err(EncodeError::ReasonTooLong { len: 256 })
        );
        assert!(out.is_empty(), "an encoder that refuses writes nothing");
    }

    #[test]
    fn counts_past_limits_are_refused_before_any_body() {
        // Object count 65,537 with no body: refused at once, not "need more".
        let mut bytes = vec![TAG_PEER_REPORT, 0, 0, 0, 0, Status::Success.code()];
        bytes.extend_from_slice(&(MAX_IDS_PER_LIST as u32 + 1).to_le_bytes());
        assert!(matches!(
            SyncEvent::decode(&bytes),
            Err(DecodeError::Limit(LimitError::TooManyIds { .. }))
        ));
        // A legal but huge count with no body: need more, without reserving memory for it.
        let mut bytes = vec![TAG_PEER_REPORT, 0, 0, 0, 0, Status::Success.code()];
        bytes.extend_from_slice(&(MAX_IDS_PER_LIST as u32).to_le_bytes());
        assert_eq!(SyncEvent::decode(&bytes), Ok(None));
        // Peer request index past the limit.
        let bytes = [TAG_PEER_REPORT, 0, 4, 0, 0];
        assert!(SyncEvent::decode(&bytes).is_err());
        let bytes = [TAG_END, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(SyncEvent::decode(&bytes).is_err());
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert_eq!(
            SyncEvent::decode(&[0x09]),
            Err(DecodeError::UnknownEventTag { byte: 0x09 })
        );
        let mut object = encode(&samples()[2]);
        object[1 + 4 + 20] = 0x07;
        assert_eq!(
            SyncEvent::decode(&object),
            Err(DecodeError::UnknownObjectState { byte: 0x07 })
        );
        let mut report = encode(&samples()[3]);
        // The second outcome's text starts 2 bytes before the end minus its length; make its
        // first byte invalid UTF-8.
        let text_len = "connection refusé".len();
        let at = report.len() - text_len;
        report[at] = 0xFF;
        assert_eq!(SyncEvent::decode(&report), Err(DecodeError::ReasonNotUtf8));
        // BEGIN as an object status.
        let mut report = encode(&samples()[3]);
        report[1 + 4 + 1 + 4 + 20] = Status::Begin.code();
        assert!(matches!(
            SyncEvent::decode(&report),
            Err(DecodeError::MisplacedStatus { .. })
        ));
    }

    #[test]
    fn sync_with_events_request_is_the_sync_request_with_first_byte_0x03() {
        use crate::wire::{StreamKind, StreamRequest, SyncRequest};
        use crate::{PeerRequest, TransferKind};
        let request = SyncRequest::new(vec![PeerRequest::new(
            TransferKind::Copy,
            "127.0.0.1:2022".parse().expect("address"),
            vec![id(1)],
        )])
        .expect("valid");
        let mut plain = Vec::new();
        request.encode(&mut plain).expect("encodable");
        let mut with_events = Vec::new();
        request
            .encode_with_events(&mut with_events)
            .expect("encodable");
        assert_eq!(with_events[0], 0x03);
        assert_eq!(plain[1..], with_events[1..]);
        assert_eq!(
            StreamKind::peek(&with_events),
            Ok(Some(StreamKind::SyncWithEvents))
        );
        assert_eq!(
            StreamRequest::decode(&with_events),
            Ok(Some((
                StreamRequest::SyncWithEvents(request.clone()),
                with_events.len()
            )))
        );
        assert_eq!(
            SyncRequest::declared_peer_request_count(&with_events),
            Some(1)
        );
        for cut in 0..with_events.len() {
            assert_eq!(StreamRequest::decode(&with_events[..cut]), Ok(None));
        }
        // Each decoder reads only its own kind.
        assert!(SyncRequest::decode(&with_events).is_err());
        assert!(SyncRequest::decode_with_events(&plain).is_err());
    }

    #[test]
    fn unknown_reason_codes_survive() {
        assert_eq!(ReasonCode::from_code(0x77), ReasonCode::Unassigned(0x77));
        for code in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_code(code.code()), code);
        }
    }

    #[test]
    fn report_to_plain_and_events() {
        let report = DetailedReport {
            peer_reports: vec![DetailedPeerReport::from_outcomes(vec![DetailedOutcome {
                id: id(3),
                status: Status::NotFound,
                reason: Reason::new(ReasonCode::NotFoundAtPeer, "not at the peer"),
                bytes_moved: 0,
                attempts: 1,
                duration_ms: 1,
            }])],
        };
        let plain = report.to_plain();
        assert_eq!(plain.peer_reports[0].status, Status::NotFound);
        assert_eq!(plain.peer_reports[0].objects[0].id, id(3));
        assert_eq!(report.clone().into_plain(), plain);
        let events = report.clone().into_events();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1],
            SyncEvent::End {
                peer_request_count: 1
            }
        );
    }

    fn status() -> impl Strategy<Value = Status> {
        proptest::sample::select(
            Status::ALL
                .iter()
                .copied()
                .filter(|s| *s != Status::Begin)
                .collect::<Vec<_>>(),
        )
    }

    fn outcome() -> impl Strategy<Value = DetailedOutcome> {
        (
            any::<[u8; 20]>(),
            status(),
            any::<u8>(),
            ".{0,80}",
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
        )
            .prop_map(
                |(id, status, code, text, bytes_moved, attempts, duration_ms)| DetailedOutcome {
                    id: ObjectId::from_bytes(id),
                    status,
                    reason: Reason::new(ReasonCode::from_code(code), text),
                    bytes_moved,
                    attempts,
                    duration_ms,
                },
            )
    }

    fn event() -> impl Strategy<Value = SyncEvent> {
        prop_oneof![
            (
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                any::<u32>()
            )
                .prop_map(
                    |(peer_request, bytes_done, bytes_total, objects_done, objects_total)| {
                        SyncEvent::Progress(Progress {
                            peer_request,
                            bytes_done,
                            bytes_total,
                            objects_done,
                            objects_total,
                        })
                    }
                ),
            (any::<u32>(), any::<[u8; 20]>(), 1u8..=3, any::<u64>()).prop_map(
                |(peer_request, id, state, size)| SyncEvent::Object(ObjectEvent {
                    peer_request,
                    id: ObjectId::from_bytes(id),
                    state: ObjectState::from_code(state).unwrap_or(ObjectState::Started),
                    size,
                })
            ),
            (0u32..1024, proptest::collection::vec(outcome(), 0..6)).prop_map(
                |(index, objects)| SyncEvent::PeerReport {
                    index,
                    report: DetailedPeerReport::from_outcomes(objects),
                }
            ),
            (0u32..=1024).prop_map(|peer_request_count| SyncEvent::End { peer_request_count }),
        ]
    }

    proptest! {
        #[test]
        fn prop_round_trip_and_prefixes(event in event()) {
            let bytes = encode(&event);
            prop_assert_eq!(SyncEvent::decode(&bytes), Ok(Some((event.clone(), bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(SyncEvent::decode(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SyncEvent::decode(&bytes);
        }
    }
}
