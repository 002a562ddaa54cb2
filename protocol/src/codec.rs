//! What both wire codecs share: the decode/encode error types, a bounds-checked reader, and
//! socket-address encodings.
//!
//! Every decoder in this crate has the shape
//! `fn decode(buf: &[u8]) -> Result<Option<(T, usize)>, DecodeError>`:
//! - `Ok(None)`: `buf` is a strict prefix of a valid message; read more and call again with
//!   the longer buffer (from the same start).
//! - `Ok(Some((message, consumed)))`: the first `consumed` bytes were the message; the rest
//!   belongs to what follows.
//! - `Err(e)`: the bytes can never become a valid message; `e` says what and why. Close the
//!   connection (legacy) or reset the stream (QUIC).
//!
//! Decoders never panic, check every count against its limit before using it, and only
//! allocate for elements whose bytes are already in `buf`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use bytes::BufMut;

use crate::{LimitError, ObjectId, Status};

/// Address-family byte for IPv4, in both formats.
pub const FAMILY_IPV4: u8 = 0x04;
/// Address-family byte for IPv6, in both formats.
pub const FAMILY_IPV6: u8 = 0x06;

/// Why bytes received from a peer or client are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first byte of a QUIC stream is not a known stream kind.
    #[error("unknown stream kind {byte:#04x} (expected 0x01 SYNC, 0x02 OBJECT, 0x03 SYNC with events, 0x04 LIST, 0x05 STATS or 0x06 PUT)")]
    UnknownStreamKind {
        /// The byte found.
        byte: u8,
    },
    /// The message-type byte is not the one this decoder reads.
    #[error("expected {expected}, found type byte {found:#04x}")]
    WrongMessageType {
        /// What was expected, in words (e.g. "a SYNC stream (0x01)").
        expected: &'static str,
        /// The byte found.
        found: u8,
    },
    /// The first byte of a legacy request is not 0x01 SYNC, 0x02 COPY or 0x03 TAKE.
    #[error("unknown request type {byte:#04x} (expected 0x01 SYNC, 0x02 COPY or 0x03 TAKE)")]
    UnknownRequestType {
        /// The byte found.
        byte: u8,
    },
    /// A peer-request or object-request kind byte is not 0x02 COPY or 0x03 TAKE.
    #[error("unknown transfer kind {byte:#04x} (expected 0x02 COPY or 0x03 TAKE)")]
    UnknownTransferKind {
        /// The byte found.
        byte: u8,
    },
    /// An address-family byte is not 0x04 IPv4 or 0x06 IPv6.
    #[error("unknown address family {byte:#04x} (expected 0x04 IPv4 or 0x06 IPv6)")]
    UnknownAddressFamily {
        /// The byte found.
        byte: u8,
    },
    /// A status byte is not a documented status code.
    #[error("{field}: {byte:#04x} is not a documented status code")]
    UnknownStatus {
        /// Which field held it.
        field: &'static str,
        /// The byte found.
        byte: u8,
    },
    /// A status field holds a code that makes no sense there (e.g. BEGIN as an acknowledgement).
    #[error("{field}: status {status} is not allowed here")]
    MisplacedStatus {
        /// Which field held it.
        field: &'static str,
        /// The status found.
        status: Status,
    },
    /// An object request sets flag bits that v1 does not define.
    #[error("object request flags {flags:#04x} set undefined bits (v1 defines bit 0, the digest trailer, and bit 1, the object digest)")]
    ReservedFlags {
        /// The flags byte found.
        flags: u8,
    },
    /// An object request asks for both trailers (one exchange has one trailer).
    #[error(
        "object request flags {flags:#04x} ask for both the digest trailer and the object digest"
    )]
    ConflictingFlags {
        /// The flags byte found.
        flags: u8,
    },
    /// An object header's offset lies past the end of the data.
    #[error("object header offset {offset} is past the end of the data ({data_size} bytes)")]
    OffsetPastEnd {
        /// The declared offset.
        offset: u64,
        /// The declared data size.
        data_size: u64,
    },
    /// A message of a SYNC-with-events reply starts with an undefined tag.
    #[error("unknown SYNC event tag {byte:#04x} (expected 0x01 progress, 0x02 object, 0x03 peer report or 0x04 end)")]
    UnknownEventTag {
        /// The byte found.
        byte: u8,
    },
    /// An object event's state byte is not 0x01 started, 0x02 arrived or 0x03 failed.
    #[error(
        "unknown object state {byte:#04x} (expected 0x01 started, 0x02 arrived or 0x03 failed)"
    )]
    UnknownObjectState {
        /// The byte found.
        byte: u8,
    },
    /// A reason text is not UTF-8.
    #[error("a reason text is not UTF-8")]
    ReasonNotUtf8,
    /// A LIST request's selector is not 0x00 (every object) or 0x01 (one object).
    #[error("unknown LIST selector {byte:#04x} (expected 0x00 every object or 0x01 one object)")]
    UnknownListSelector {
        /// The byte found.
        byte: u8,
    },
    /// A count in a reply is past its limit (checked before anything is allocated for it).
    #[error("{what}: {count} is more than the limit of {limit}")]
    TooManyEntries {
        /// Which count.
        what: &'static str,
        /// The count found.
        count: usize,
        /// Its limit.
        limit: usize,
    },
    /// A byte that must be 0 or 1 is neither.
    #[error("{field}: {byte:#04x} is neither 0 nor 1")]
    BadFlag {
        /// Which field held it.
        field: &'static str,
        /// The byte found.
        byte: u8,
    },
    /// A count or size breaks a protocol limit, or an ID repeats.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl DecodeError {
    /// The documented status code for this failure, if the protocol defines one (size limits,
    /// duplicate IDs); `None` for malformed bytes, which close the connection or reset the stream.
    pub fn status(&self) -> Option<Status> {
        match self {
            DecodeError::Limit(limit) => limit.status(),
            _ => None,
        }
    }
}

/// Why a message cannot be encoded. Encoders refuse anything their decoder would reject, and
/// write nothing when they refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message breaks a protocol limit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// An object request asks for both trailers (one exchange has one trailer).
    #[error("an object request cannot ask for both the digest trailer and the object digest (flags {flags:#04x})")]
    ConflictingFlags {
        /// The flags that conflict.
        flags: u8,
    },
    /// 65,536 IDs in one list: legal, but the legacy u16 count cannot say it (it would wrap to 0).
    #[error("the legacy format cannot express a list of {count} object IDs (its u16 count wraps to 0 at 65,536): split the list, or use the QUIC format")]
    LegacyIdCountUnrepresentable {
        /// The list's length (65,536).
        count: usize,
    },
    /// 65,536 metadata bytes: legal, but the legacy 16-bit metadata field cannot say it.
    #[error("the legacy format cannot express {size} bytes of metadata (its field is 16 bits, at most 65,535): use the QUIC format")]
    LegacyMetadataUnrepresentable {
        /// The metadata size (65,536).
        size: u64,
    },
    /// A status field was given a code that makes no sense there (e.g. BEGIN as an error).
    #[error("{field}: status {status} is not allowed here")]
    MisplacedStatus {
        /// Which field.
        field: &'static str,
        /// The status given.
        status: Status,
    },
    /// An object header's offset lies past the end of the data.
    #[error("object header offset {offset} is past the end of the data ({data_size} bytes)")]
    OffsetPastEnd {
        /// The offset given.
        offset: u64,
        /// The data size given.
        data_size: u64,
    },
    /// A reason text longer than its one-byte length can say.
    #[error(
        "a reason text of {len} bytes is longer than 255 bytes (use Reason::new, which cuts it)"
    )]
    ReasonTooLong {
        /// Its length.
        len: usize,
    },
    /// A list or label longer than its field allows.
    #[error("{what}: {count} is more than the limit of {limit}")]
    TooManyEntries {
        /// Which count.
        what: &'static str,
        /// The count given.
        count: usize,
        /// Its limit.
        limit: usize,
    },
    /// A count does not fit the format's count field (only reachable past the limits).
    #[error("a count of {count} does not fit its field")]
    CountOverflow {
        /// The count.
        count: usize,
    },
}

/// Why a decoding step stopped: more bytes needed, or a real error.
#[derive(Debug)]
pub(crate) enum Stop {
    NeedMore,
    Bad(DecodeError),
}

impl From<DecodeError> for Stop {
    fn from(e: DecodeError) -> Self {
        Stop::Bad(e)
    }
}

impl From<LimitError> for Stop {
    fn from(e: LimitError) -> Self {
        Stop::Bad(DecodeError::Limit(e))
    }
}

/// Turns an internal decoding result into the public decoder shape.
pub(crate) fn finish<T>(result: Result<T, Stop>) -> Result<Option<T>, DecodeError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Stop::NeedMore) => Ok(None),
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// A cursor over a received buffer whose every read is bounds-checked and says "need more"
/// instead of panicking.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], Stop> {
        if self.remaining() < len {
            return Err(Stop::NeedMore);
        }
        let start = self.pos;
        self.pos += len;
        self.buf.get(start..self.pos).ok_or(Stop::NeedMore)
    }

    /// Skips `count` items of `size` bytes without reading them (overflow-safe).
    pub(crate) fn skip(&mut self, count: u64, size: usize) -> Result<(), Stop> {
        let len = count
            .checked_mul(size as u64)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or(Stop::NeedMore)?;
        self.take(len).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Stop> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Stop> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Stop> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Stop> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn object_id(&mut self) -> Result<ObjectId, Stop> {
        self.array().map(ObjectId::from_bytes)
    }

    pub(crate) fn status(&mut self, field: &'static str) -> Result<Status, Stop> {
        let byte = self.u8()?;
        Status::try_from(byte).map_err(|_| Stop::Bad(DecodeError::UnknownStatus { field, byte }))
    }

    /// A status that must be an outcome (anything but BEGIN).
    pub(crate) fn outcome(&mut self, field: &'static str) -> Result<Status, Stop> {
        let status = self.status(field)?;
        if status == Status::Begin {
            return Err(Stop::Bad(DecodeError::MisplacedStatus { field, status }));
        }
        Ok(status)
    }

    pub(crate) fn transfer_kind(&mut self) -> Result<crate::TransferKind, Stop> {
        let byte = self.u8()?;
        crate::TransferKind::from_code(byte)
            .ok_or(Stop::Bad(DecodeError::UnknownTransferKind { byte }))
    }

    fn ip(&mut self, family: u8) -> Result<IpAddr, Stop> {
        match family {
            FAMILY_IPV4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            FAMILY_IPV6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            byte => Err(Stop::Bad(DecodeError::UnknownAddressFamily { byte })),
        }
    }

    /// QUIC order: family, IP bytes (network order), u16 LE port.
    pub(crate) fn addr_ip_then_port(&mut self) -> Result<SocketAddr, Stop> {
        let family = self.u8()?;
        let ip = self.ip(family)?;
        let port = self.u16()?;
        Ok(socket_addr(ip, port))
    }

    /// Legacy order: family, u16 LE port, IP bytes (network order).
    pub(crate) fn addr_port_then_ip(&mut self) -> Result<SocketAddr, Stop> {
        let family = self.u8()?;
        if family != FAMILY_IPV4 && family != FAMILY_IPV6 {
            return Err(Stop::Bad(DecodeError::UnknownAddressFamily {
                byte: family,
            }));
        }
        let port = self.u16()?;
        let ip = self.ip(family)?;
        Ok(socket_addr(ip, port))
    }
}

fn socket_addr(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0)),
    }
}

/// Encoded size of an address (family byte + IP + port).
pub(crate) fn addr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

/// QUIC order: family, IP, port. IPv6 flow info and scope ID are not carried.
pub(crate) fn put_addr_ip_then_port<B: BufMut>(out: &mut B, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            out.put_u8(FAMILY_IPV4);
            out.put_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.put_u8(FAMILY_IPV6);
            out.put_slice(&v6.ip().octets());
        }
    }
    out.put_u16_le(addr.port());
}

/// Legacy order: family, port, IP.
pub(crate) fn put_addr_port_then_ip<B: BufMut>(out: &mut B, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            out.put_u8(FAMILY_IPV4);
            out.put_u16_le(addr.port());
            out.put_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.put_u8(FAMILY_IPV6);
            out.put_u16_le(addr.port());
            out.put_slice(&v6.ip().octets());
        }
    }
}

/// A count known to be within limits, as the u32 the QUIC format writes.
pub(crate) fn count_u32(count: usize) -> Result<u32, EncodeError> {
    u32::try_from(count).map_err(|_| EncodeError::CountOverflow { count })
}
