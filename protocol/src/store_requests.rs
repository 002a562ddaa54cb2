//! Requests about the server's own store, for the CLI's `ls`, `info`, `stats` and `put`:
//!
//! - **LIST stream** (`0x04`, client → server): [`ListRequest`] ⇒, ⇐ `u8 status`; after
//!   0x41 pieces of [`ListPiece`] (each at most [`MAX_LIST_PIECE`] entries), the last one
//!   empty.
//! - **STATS stream** (`0x05`): `0x05` ⇒, ⇐ `u8 status`; after 0x41 one [`ServerStats`].
//! - **PUT stream** (`0x06`): [`PutRequest`] ⇒, ⇐ `u8 status` (0x00 BEGIN: send the bytes;
//!   anything else is the outcome and ends the exchange), ⇒ metadata bytes then data bytes,
//!   ⇐ `u8 status`, the outcome (0x41: sealed in the server's store).
//!
//! Like the rest of the format this is sans-IO: messages are encoded to and decoded from
//! buffers. The exact bytes are in `docs/protocol.md` §4.4.

use bytes::BufMut;

use crate::codec::{finish, DecodeError, EncodeError, Reader, Stop};
use crate::limits::validate_object_sizes;
use crate::wire::{expect_kind, StreamKind};
use crate::{ObjectId, Status};

/// Most entries in one piece of a LIST reply: a reader buffers one piece (49 KiB) at a time,
/// however many objects the store holds.
pub const MAX_LIST_PIECE: usize = 1024;

/// Most peers a STATS reply names (the server's metrics label at most 64 peers, then `other`).
pub const MAX_STATS_PEERS: usize = 65;

/// Longest peer label in a STATS reply (an IPv6 address is at most 45 characters).
pub const MAX_PEER_LABEL: usize = 64;

/// Client → server: which objects to list. `0x04 | u8 selector`: 0x00 every object, 0x01
/// one object (20 ID bytes follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListRequest {
    /// Every object in the store, sealed or not (`ls`).
    All,
    /// One object (`info`): the reply has one entry, or none if the store does not hold it.
    One(ObjectId),
}

impl ListRequest {
    /// Appends the encoding.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(StreamKind::List.code());
        match self {
            ListRequest::All => out.put_u8(0x00),
            ListRequest::One(id) => {
                out.put_u8(0x01);
                out.put_slice(id.as_bytes());
            }
        }
    }

    /// Decodes a LIST request.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            expect_kind(&mut read, StreamKind::List)?;
            let request = match read.u8()? {
                0x00 => ListRequest::All,
                0x01 => ListRequest::One(read.object_id()?),
                byte => return Err(Stop::Bad(DecodeError::UnknownListSelector { byte })),
            };
            Ok((request, read.position()))
        })())
    }
}

/// One object as a LIST reply describes it: `20 ID bytes | u64 data_size | u64 metadata_size
/// | u8 sealed (0 or 1) | u64 created (Unix seconds, 0 if the store does not say)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListedObject {
    /// The object.
    pub id: ObjectId,
    /// Its data size in bytes.
    pub data_size: u64,
    /// Its metadata size in bytes.
    pub metadata_size: u64,
    /// Sealed (readable by everyone), or still being written.
    pub sealed: bool,
    /// When it was created, in Unix seconds; 0 if unknown.
    pub created: u64,
}

impl ListedObject {
    /// Bytes on the wire.
    pub const ENCODED_LEN: usize = ObjectId::LEN + 8 + 8 + 1 + 8;
}

/// Part of a LIST reply: `u32 count (0..=1024) | count × ListedObject`. A piece of 0 entries
/// ends the reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListPiece(
    /// The entries, in the store's order.
    pub Vec<ListedObject>,
);

impl ListPiece {
    /// Appends the encoding; refuses more than [`MAX_LIST_PIECE`] entries.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        if self.0.len() > MAX_LIST_PIECE {
            return Err(EncodeError::TooManyEntries {
                what: "LIST piece",
                count: self.0.len(),
                limit: MAX_LIST_PIECE,
            });
        }
        out.put_u32_le(self.0.len() as u32);
        for object in &self.0 {
            out.put_slice(object.id.as_bytes());
            out.put_u64_le(object.data_size);
            out.put_u64_le(object.metadata_size);
            out.put_u8(u8::from(object.sealed));
            out.put_u64_le(object.created);
        }
        Ok(())
    }

    /// Decodes a piece; the count is checked before any entry is allocated.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            let count = read.u32()? as usize;
            if count > MAX_LIST_PIECE {
                return Err(Stop::Bad(DecodeError::TooManyEntries {
                    what: "LIST piece",
                    count,
                    limit: MAX_LIST_PIECE,
                }));
            }
            if read.remaining() < count * ListedObject::ENCODED_LEN {
                return Err(Stop::NeedMore);
            }
            let mut objects = Vec::with_capacity(count);
            for _ in 0..count {
                let id = read.object_id()?;
                let data_size = read.u64()?;
                let metadata_size = read.u64()?;
                let sealed = match read.u8()? {
                    0 => false,
                    1 => true,
                    byte => {
                        return Err(Stop::Bad(DecodeError::BadFlag {
                            field: "a listed object's sealed byte",
                            byte,
                        }))
                    }
                };
                let created = read.u64()?;
                objects.push(ListedObject {
                    id,
                    data_size,
                    metadata_size,
                    sealed,
                    created,
                });
            }
            Ok((ListPiece(objects), read.position()))
        })())
    }
}

/// The status byte that starts the reply on a LIST, STATS or PUT stream (and ends a PUT).
pub fn encode_status<B: BufMut>(status: Status, out: &mut B) {
    out.put_u8(status.code());
}

/// Decodes a status byte of a LIST, STATS or PUT reply.
pub fn decode_status(buf: &[u8]) -> Result<Option<(Status, usize)>, DecodeError> {
    finish((|| {
        let mut read = Reader::new(buf);
        let status = read.status("store request reply")?;
        Ok((status, read.position()))
    })())
}

/// The STATS request: the stream kind byte alone.
pub fn encode_stats_request<B: BufMut>(out: &mut B) {
    out.put_u8(StreamKind::Stats.code());
}

/// Decodes a STATS request.
pub fn decode_stats_request(buf: &[u8]) -> Result<Option<((), usize)>, DecodeError> {
    finish((|| {
        let mut read = Reader::new(buf);
        expect_kind(&mut read, StreamKind::Stats)?;
        Ok(((), read.position()))
    })())
}

/// Bytes moved to and from one peer, as STATS reports them: `u8 label_len (1..=64) | label
/// (UTF-8: the peer's IP address, or `other`) | u64 received_bytes | u64 sent_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerStats {
    /// The peer's IP address, or `other` for peers past the first 64.
    pub label: String,
    /// Object bytes received from it.
    pub received_bytes: u64,
    /// Object bytes sent to it.
    pub sent_bytes: u64,
}

/// What a server says about itself (`stats`), all counted since it started:
/// `u64 uptime_seconds | u64 transfers_in_flight | u64 received_bytes | u64 received_objects
/// | u64 sent_bytes | u64 sent_objects | u64 failed_objects | u64 store_capacity | u64
/// store_used (u64::MAX: the store does not say) | u32 peer_count (0..=65) | peer_count ×
/// PeerStats`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerStats {
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// Objects moving either way, and SYNCs until their report is delivered.
    pub transfers_in_flight: u64,
    /// Object bytes received from peers (including attempts that failed).
    pub received_bytes: u64,
    /// Objects received and sealed.
    pub received_objects: u64,
    /// Object bytes sent whole to pullers.
    pub sent_bytes: u64,
    /// Objects sent whole and acknowledged.
    pub sent_objects: u64,
    /// Objects that did not move, either way.
    pub failed_objects: u64,
    /// The store's capacity in bytes.
    pub store_capacity: u64,
    /// `None` where the store does not tell (pyarrow's `plasma_store` answers no such
    /// question cheaply).
    pub store_used: Option<u64>,
    /// Bytes per peer.
    pub peers: Vec<PeerStats>,
}

impl ServerStats {
    /// Appends the encoding; refuses more than [`MAX_STATS_PEERS`] peers or a label that is
    /// empty or longer than [`MAX_PEER_LABEL`] bytes.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        if self.peers.len() > MAX_STATS_PEERS {
            return Err(EncodeError::TooManyEntries {
                what: "STATS peers",
                count: self.peers.len(),
                limit: MAX_STATS_PEERS,
            });
        }
        if let Some(peer) = self
            .peers
            .iter()
            .find(|p| p.label.is_empty() || p.label.len() > MAX_PEER_LABEL)
        {
            return Err(EncodeError::TooManyEntries {
                what: "bytes of a STATS peer label",
                count: peer.label.len(),
                limit: MAX_PEER_LABEL,
            });
        }
        for value in [
            self.uptime_seconds,
            self.transfers_in_flight,
            self.received_bytes,
            self.received_objects,
            self.sent_bytes,
            self.sent_objects,
            self.failed_objects,
            self.store_capacity,
            self.store_used.unwrap_or(u64::MAX),
        ] {
            out.put_u64_le(value);
        }
        out.put_u32_le(self.peers.len() as u32);
        for peer in &self.peers {
            out.put_u8(peer.label.len() as u8);
            out.put_slice(peer.label.as_bytes());
            out.put_u64_le(peer.received_bytes);
            out.put_u64_le(peer.sent_bytes);
        }
        Ok(())
    }

    /// Decodes the stats that follow a 0x41 status.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            let mut next = || read.u64();
            let uptime_seconds = next()?;
            let transfers_in_flight = next()?;
            let received_bytes = next()?;
            let received_objects = next()?;
            let sent_bytes = next()?;
            let sent_objects = next()?;
            let failed_objects = next()?;
            let store_capacity = next()?;
            let store_used = Some(next()?).filter(|&used| used != u64::MAX);
            let count = read.u32()? as usize;
            if count > MAX_STATS_PEERS {
                return Err(Stop::Bad(DecodeError::TooManyEntries {
                    what: "STATS peers",
                    count,
                    limit: MAX_STATS_PEERS,
                }));
            }
            let mut peers = Vec::with_capacity(count);
            for _ in 0..count {
                let len = read.u8()? as usize;
                if len == 0 || len > MAX_PEER_LABEL {
                    return Err(Stop::Bad(DecodeError::TooManyEntries {
                        what: "bytes of a STATS peer label",
                        count: len,
                        limit: MAX_PEER_LABEL,
                    }));
                }
                let label = std::str::from_utf8(read.take(len)?)
                    .map_err(|_| Stop::Bad(DecodeError::ReasonNotUtf8))?
                    .to_owned();
                let received_bytes = read.u64()?;
                let sent_bytes = read.u64()?;
                peers.push(PeerStats {
                    label,
                    received_bytes,
                    sent_bytes,
                });
            }
            let stats = ServerStats {
                uptime_seconds,
                transfers_in_flight,
                received_bytes,
                received_objects,
                sent_bytes,
                sent_objects,
                failed_objects,
                store_capacity,
                store_used,
                peers,
            };
            Ok((stats, read.position()))
        })())
    }
}

/// Client → server: store this object. `0x06 | 20 ID bytes | u64 data_size | u64
/// metadata_size`, the sizes within the limits of every object (data ≤ 2^44 bytes, metadata
/// ≤ 65,536). The bytes follow once the server answered BEGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PutRequest {
    /// The object's ID.
    pub id: ObjectId,
    /// Its data size in bytes.
    pub data_size: u64,
    /// Its metadata size in bytes.
    pub metadata_size: u64,
}

impl PutRequest {
    /// Bytes on the wire.
    pub const ENCODED_LEN: usize = 1 + ObjectId::LEN + 8 + 8;

    /// Appends the encoding; refuses sizes past the limits.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<(), EncodeError> {
        validate_object_sizes(self.data_size, self.metadata_size)?;
        out.put_u8(StreamKind::Put.code());
        out.put_slice(self.id.as_bytes());
        out.put_u64_le(self.data_size);
        out.put_u64_le(self.metadata_size);
        Ok(())
    }

    /// Decodes a PUT request. Sizes past the limits are [`DecodeError::Limit`], whose status
    /// (0x50, 0x51) the server answers with.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish((|| {
            let mut read = Reader::new(buf);
            expect_kind(&mut read, StreamKind::Put)?;
            let id = read.object_id()?;
            let data_size = read.u64()?;
            let metadata_size = read.u64()?;
            validate_object_sizes(data_size, metadata_size)?;
            let request = PutRequest {
                id,
                data_size,
                metadata_size,
            };
            Ok((request, read.position()))
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 20])
    }

    #[test]
    fn list_requests_round_trip_and_bad_selectors_are_named() {
        for request in [ListRequest::All, ListRequest::One(id(7))] {
            let mut buf = Vec::new();
            request.encode(&mut buf);
            assert_eq!(
                ListRequest::decode(&buf).unwrap(),
                Some((request, buf.len()))
            );
            assert_eq!(ListRequest::decode(&buf[..buf.len() - 1]).unwrap(), None);
        }
        assert_eq!(
            ListRequest::decode(&[0x04, 0x07]),
            Err(DecodeError::UnknownListSelector { byte: 0x07 })
        );
    }

    #[test]
    fn a_list_piece_round_trips_and_its_count_is_checked_before_allocating() {
        let piece = ListPiece(vec![
            ListedObject {
                id: id(1),
                data_size: 1 << 40,
                metadata_size: 3,
                sealed: true,
                created: 1_700_000_000,
            },
            ListedObject {
                id: id(2),
                data_size: 0,
                metadata_size: 0,
                sealed: false,
                created: 0,
            },
        ]);
        let mut buf = Vec::new();
        piece.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), 4 + 2 * ListedObject::ENCODED_LEN);
        assert_eq!(
            ListPiece::decode(&buf).unwrap(),
            Some((piece.clone(), buf.len()))
        );
        assert_eq!(ListPiece::decode(&buf[..buf.len() - 1]).unwrap(), None);
        // A huge count with no entries behind it is refused at once, not waited for.
        assert!(matches!(
            ListPiece::decode(&u32::MAX.to_le_bytes()),
            Err(DecodeError::TooManyEntries { .. })
        ));
        let mut bad = buf.clone();
        bad[4 + 36] = 2;
        assert!(matches!(
            ListPiece::decode(&bad),
            Err(DecodeError::BadFlag { byte: 2, .. })
        ));
        let too_many = ListPiece(vec![piece.0[0]; MAX_LIST_PIECE + 1]);
        assert!(too_many.encode(&mut Vec::new()).is_err());
    }

    #[test]
    fn stats_round_trip_with_an_unknown_store_use() {
        let stats = ServerStats {
            uptime_seconds: 5,
            transfers_in_flight: 1,
            received_bytes: 100,
            received_objects: 2,
            sent_bytes: 7,
            sent_objects: 1,
            failed_objects: 3,
            store_capacity: 1 << 30,
            store_used: None,
            peers: vec![PeerStats {
                label: "127.0.0.1".into(),
                received_bytes: 100,
                sent_bytes: 7,
            }],
        };
        let mut buf = Vec::new();
        stats.encode(&mut buf).unwrap();
        assert_eq!(
            ServerStats::decode(&buf).unwrap(),
            Some((stats.clone(), buf.len()))
        );
        assert_eq!(ServerStats::decode(&buf[..buf.len() - 1]).unwrap(), None);
        let mut empty_label = stats.clone();
        empty_label.peers[0].label.clear();
        assert!(empty_label.encode(&mut Vec::new()).is_err());
        // A peer count past the limit is refused before the peers are read.
        let mut bad = buf[..72].to_vec();
        bad.extend_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            ServerStats::decode(&bad),
            Err(DecodeError::TooManyEntries { .. })
        ));
    }

    #[test]
    fn put_requests_round_trip_and_sizes_past_the_limits_carry_their_status() {
        let request = PutRequest {
            id: id(9),
            data_size: 1 << 20,
            metadata_size: 16,
        };
        let mut buf = Vec::new();
        request.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), PutRequest::ENCODED_LEN);
        assert_eq!(
            PutRequest::decode(&buf).unwrap(),
            Some((request, buf.len()))
        );
        let mut huge = buf.clone();
        huge[21..29].copy_from_slice(&u64::MAX.to_le_bytes());
        let error = PutRequest::decode(&huge).unwrap_err();
        assert_eq!(error.status(), Some(Status::DataTooLarge));
        let mut big_metadata = buf;
        big_metadata[29..37].copy_from_slice(&70_000u64.to_le_bytes());
        let error = PutRequest::decode(&big_metadata).unwrap_err();
        assert_eq!(error.status(), Some(Status::MetadataTooLarge));
        let too_big = PutRequest {
            data_size: u64::MAX,
            ..request
        };
        assert!(too_big.encode(&mut Vec::new()).is_err());
    }

    #[test]
    fn statuses_decode_and_unknown_bytes_are_named() {
        let mut buf = Vec::new();
        encode_status(Status::Begin, &mut buf);
        assert_eq!(decode_status(&buf).unwrap(), Some((Status::Begin, 1)));
        assert_eq!(decode_status(&[]).unwrap(), None);
        assert!(matches!(
            decode_status(&[0xEE]),
            Err(DecodeError::UnknownStatus { .. })
        ));
    }
}
