//! One Plasma frame: three little-endian signed 64-bit header words (protocol version, message
//! type, body length) followed by a FlatBuffer body (`docs/plasma.md` §1).
//!
//! Reads are exact: 24 header bytes, then exactly the body, never more. That matters because a
//! passed fd rides on the byte that follows some frames; a read that covered it would make the
//! kernel drop the fd.

use std::io::{self, Read, Write};

use super::WireError;

/// `kPlasmaProtocolVersion`: the only version Arrow 11 speaks. Another value makes the real
/// store abort, so we never send one and refuse to read one.
pub const PROTOCOL_VERSION: i64 = 0;

/// Bytes of the frame header (version, type, body length).
pub const FRAME_HEADER_LEN: usize = 24;

/// How much body we buffer before growing: a hostile length field can make us allocate only
/// about twice what the peer actually sent, never the claimed length up front.
const BODY_GROWTH_STEP: usize = 64 * 1024;

/// The message types of Arrow 11's `plasma.fbs`, numbered as on the wire (`docs/plasma.md` §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i64)]
pub enum MessageType {
    /// Never sent: the real store uses it internally for "the client hung up".
    DisconnectClient = 0,
    CreateRequest = 1,
    CreateReply = 2,
    CreateAndSealRequest = 3,
    CreateAndSealReply = 4,
    AbortRequest = 5,
    AbortReply = 6,
    SealRequest = 7,
    SealReply = 8,
    GetRequest = 9,
    GetReply = 10,
    /// Has no reply.
    ReleaseRequest = 11,
    /// Defined but never sent.
    ReleaseReply = 12,
    DeleteRequest = 13,
    DeleteReply = 14,
    ContainsRequest = 15,
    ContainsReply = 16,
    ListRequest = 17,
    ListReply = 18,
    ConnectRequest = 19,
    ConnectReply = 20,
    EvictRequest = 21,
    EvictReply = 22,
    /// Has no reply; the client then passes one fd (its end of a notification socketpair).
    SubscribeRequest = 23,
    /// Unused; the real store aborts on it.
    UnsubscribeRequest = 24,
    /// Legacy (plasma manager); unused.
    DataRequest = 25,
    /// Legacy (plasma manager); unused.
    DataReply = 26,
    /// Never appears in a frame: notifications have their own framing.
    Notification = 27,
    SetOptionsRequest = 28,
    SetOptionsReply = 29,
    GetDebugStringRequest = 30,
    GetDebugStringReply = 31,
    CreateAndSealBatchRequest = 32,
    CreateAndSealBatchReply = 33,
    RefreshLRURequest = 34,
    RefreshLRUReply = 35,
}

impl MessageType {
    const ALL: [MessageType; 36] = [
        Self::DisconnectClient,
        Self::CreateRequest,
        Self::CreateReply,
        Self::CreateAndSealRequest,
        Self::CreateAndSealReply,
        Self::AbortRequest,
        Self::AbortReply,
        Self::SealRequest,
        Self::SealReply,
        Self::GetRequest,
        Self::GetReply,
        Self::ReleaseRequest,
        Self::ReleaseReply,
        Self::DeleteRequest,
        Self::DeleteReply,
        Self::ContainsRequest,
        Self::ContainsReply,
        Self::ListRequest,
        Self::ListReply,
        Self::ConnectRequest,
        Self::ConnectReply,
        Self::EvictRequest,
        Self::EvictReply,
        Self::SubscribeRequest,
        Self::UnsubscribeRequest,
        Self::DataRequest,
        Self::DataReply,
        Self::Notification,
        Self::SetOptionsRequest,
        Self::SetOptionsReply,
        Self::GetDebugStringRequest,
        Self::GetDebugStringReply,
        Self::CreateAndSealBatchRequest,
        Self::CreateAndSealBatchReply,
        Self::RefreshLRURequest,
        Self::RefreshLRUReply,
    ];

    /// The type with this wire value, if Arrow 11 defines one.
    pub fn from_wire(value: i64) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The wire value.
    pub fn to_wire(self) -> i64 {
        self as i64
    }
}

/// One frame as read from the socket: its type and its (unparsed) FlatBuffer body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: MessageType,
    pub body: Vec<u8>,
}

impl Frame {
    /// Fails with `UnexpectedType` unless this frame is of type `expected`.
    pub fn expect(&self, expected: MessageType) -> Result<&[u8], WireError> {
        if self.kind == expected {
            Ok(&self.body)
        } else {
            Err(WireError::UnexpectedType {
                expected,
                got: self.kind,
            })
        }
    }
}

/// Encodes the 24-byte header of a frame whose body is `body_len` bytes.
pub fn encode_header(kind: MessageType, body_len: usize) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0..8].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&kind.to_wire().to_le_bytes());
    // usize → i64: a body cannot exceed isize::MAX bytes in memory.
    header[16..24].copy_from_slice(&(body_len as i64).to_le_bytes());
    header
}

/// Decodes a frame header into (type, body length), checking version, type and the length
/// against `max_body`.
pub fn decode_header(
    header: &[u8; FRAME_HEADER_LEN],
    max_body: usize,
) -> Result<(MessageType, usize), WireError> {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&header[i * 8..i * 8 + 8]);
        i64::from_le_bytes(w)
    };
    let (version, kind, len) = (word(0), word(1), word(2));
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version(version));
    }
    let kind = MessageType::from_wire(kind).ok_or(WireError::UnknownType(kind))?;
    let body_len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= max_body)
        .ok_or(WireError::BodyLength { len, max: max_body })?;
    Ok((kind, body_len))
}

/// Reads exactly one frame: 24 header bytes, then exactly the body. A body longer than
/// `max_body` is refused before any of it is read (the connection is then out of sync and must
/// be closed). EOF before the first header byte is `Closed`; EOF inside a frame is an
/// `UnexpectedEof` I/O error.
pub fn read_frame(mut reader: impl Read, max_body: usize) -> Result<Frame, WireError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut filled = 0;
    while filled < FRAME_HEADER_LEN {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Err(WireError::Closed),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (kind, body_len) = decode_header(&header, max_body)?;
    let mut body = Vec::with_capacity(body_len.min(BODY_GROWTH_STEP));
    while body.len() < body_len {
        let start = body.len();
        let step = (body_len - start).min(start.max(BODY_GROWTH_STEP));
        body.resize(start + step, 0);
        reader.read_exact(&mut body[start..])?;
    }
    Ok(Frame { kind, body })
}

/// Writes one whole frame. Small frames go out in one `write`; large bodies are written
/// straight from the caller's buffer after the header.
pub fn write_frame(
    mut writer: impl Write,
    kind: MessageType,
    body: &[u8],
) -> Result<(), WireError> {
    let header = encode_header(kind, body.len());
    if body.len() <= BODY_GROWTH_STEP {
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(body);
        writer.write_all(&frame)?;
    } else {
        writer.write_all(&header)?;
        writer.write_all(body)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_types_round_trip_their_wire_values() {
        for (i, t) in MessageType::ALL.iter().enumerate() {
            assert_eq!(t.to_wire(), i as i64);
            assert_eq!(MessageType::from_wire(i as i64), Some(*t));
        }
        assert_eq!(MessageType::from_wire(36), None);
        assert_eq!(MessageType::from_wire(-1), None);
        assert_eq!(MessageType::ConnectRequest.to_wire(), 19);
        assert_eq!(MessageType::RefreshLRUReply.to_wire(), 35);
    }

    #[test]
    fn frame_round_trips() {
        let mut buf = Vec::new();
        write_frame(&mut buf, MessageType::GetRequest, b"hello").unwrap();
        assert_eq!(buf.len(), 24 + 5);
        assert_eq!(&buf[8..16], &9i64.to_le_bytes());
        let frame = read_frame(&buf[..], 1024).unwrap();
        assert_eq!(frame.kind, MessageType::GetRequest);
        assert_eq!(frame.body, b"hello");
    }

    #[test]
    fn large_body_round_trips() {
        let body: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let mut buf = Vec::new();
        write_frame(&mut buf, MessageType::CreateAndSealRequest, &body).unwrap();
        let frame = read_frame(&buf[..], 1 << 20).unwrap();
        assert_eq!(frame.body, body);
    }

    #[test]
    fn hostile_headers_are_errors() {
        let header = |v: i64, t: i64, l: i64| {
            let mut h = Vec::new();
            h.extend_from_slice(&v.to_le_bytes());
            h.extend_from_slice(&t.to_le_bytes());
            h.extend_from_slice(&l.to_le_bytes());
            h
        };
        assert!(matches!(
            read_frame(&header(1, 19, 0)[..], 10),
            Err(WireError::Version(1))
        ));
        assert!(matches!(
            read_frame(&header(0, 99, 0)[..], 10),
            Err(WireError::UnknownType(99))
        ));
        assert!(matches!(
            read_frame(&header(0, 19, -5)[..], 10),
            Err(WireError::BodyLength { len: -5, .. })
        ));
        assert!(matches!(
            read_frame(&header(0, 19, i64::MAX)[..], 1 << 30),
            Err(WireError::BodyLength { .. })
        ));
        // Claims 1 GiB, sends 3 bytes: an EOF error, without allocating the claimed length.
        let mut short = header(0, 19, 1 << 30);
        short.extend_from_slice(b"abc");
        match read_frame(&short[..], 1 << 31) {
            Err(WireError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(read_frame(&[][..], 10), Err(WireError::Closed)));
        assert!(matches!(
            read_frame(&[0u8; 7][..], 10),
            Err(WireError::Io(_))
        ));
    }
}
