//! Property tests: every message of both formats round-trips, every strict prefix of a valid
//! encoding decodes as "need more", and no input (random or a mutated valid encoding) panics.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::prelude::*;

use plasma_stream_protocol::legacy::{FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::limits::{MAX_DATA_SIZE, MAX_METADATA_SIZE};
use plasma_stream_protocol::wire::{
    Ack, DeleteResult, DigestTrailer, ObjectHeader, ObjectOutcome, ObjectRequest, PeerReport,
    StreamKind, StreamRequest, SyncReport, SyncRequest,
};
use plasma_stream_protocol::{
    grammar, Command, DecodeError, ObjectId, PeerRequest, Request, Status, TransferKind,
};

// ---- strategies ----------------------------------------------------------------------------

fn object_id() -> impl Strategy<Value = ObjectId> {
    any::<[u8; 20]>().prop_map(ObjectId::from_bytes)
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    // The wire carries neither IPv6 flow info nor scope ID: generate them as 0.
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
        }),
    ]
}

fn transfer_kind() -> impl Strategy<Value = TransferKind> {
    prop_oneof![Just(TransferKind::Copy), Just(TransferKind::Take)]
}

fn any_status() -> impl Strategy<Value = Status> {
    proptest::sample::select(Status::ALL.to_vec())
}

fn outcome_status() -> impl Strategy<Value = Status> {
    any_status().prop_filter("an outcome is never BEGIN", |s| *s != Status::Begin)
}

/// Makes every ID of the SYNC unique by stamping a running counter into its first 4 bytes.
fn make_unique(peer_requests: Vec<PeerRequest>) -> Vec<PeerRequest> {
    let mut counter = 0u32;
    peer_requests
        .into_iter()
        .map(|p| {
            let (kind, from, objects) = p.into_parts();
            let objects = objects
                .into_iter()
                .map(|id| {
                    let mut bytes = *id.as_bytes();
                    bytes[..4].copy_from_slice(&counter.to_le_bytes());
                    counter += 1;
                    ObjectId::from_bytes(bytes)
                })
                .collect();
            PeerRequest::new(kind, from, objects)
        })
        .collect()
}

fn peer_requests() -> impl Strategy<Value = Vec<PeerRequest>> {
    proptest::collection::vec(
        (
            transfer_kind(),
            socket_addr(),
            proptest::collection::vec(object_id(), 1..6),
        )
            .prop_map(|(kind, from, objects)| PeerRequest::new(kind, from, objects)),
        1..6,
    )
    .prop_map(make_unique)
}

fn id_list() -> impl Strategy<Value = Vec<ObjectId>> {
    proptest::collection::vec(object_id(), 1..8).prop_map(|ids| {
        ids.into_iter()
            .enumerate()
            .map(|(i, id)| {
                let mut bytes = *id.as_bytes();
                bytes[0] = i as u8;
                ObjectId::from_bytes(bytes)
            })
            .collect()
    })
}

fn sync_report() -> impl Strategy<Value = SyncReport> {
    proptest::collection::vec(
        (
            outcome_status(),
            proptest::collection::vec(
                (object_id(), outcome_status(), any::<u64>()).prop_map(
                    |(id, status, bytes_moved)| ObjectOutcome {
                        id,
                        status,
                        bytes_moved,
                    },
                ),
                0..5,
            ),
        )
            .prop_map(|(status, objects)| PeerReport { status, objects }),
        0..5,
    )
    .prop_map(|peer_reports| SyncReport { peer_reports })
}

fn object_request() -> impl Strategy<Value = ObjectRequest> {
    // Trailer: none, the data's XXH64, or the whole object's digest (never both).
    (transfer_kind(), object_id(), any::<u64>(), 0..3u8).prop_map(
        |(kind, id, resume_offset, trailer)| ObjectRequest {
            kind,
            id,
            resume_offset,
            digest_trailer: trailer == 1,
            object_digest: trailer == 2,
        },
    )
}

fn sizes() -> impl Strategy<Value = (u64, u64)> {
    (
        prop_oneof![0..=MAX_DATA_SIZE, Just(0), Just(1), Just(MAX_DATA_SIZE)],
        prop_oneof![0..=MAX_METADATA_SIZE, Just(0), Just(MAX_METADATA_SIZE)],
    )
}

fn object_header() -> impl Strategy<Value = ObjectHeader> {
    prop_oneof![
        (sizes(), any::<u64>()).prop_map(|((data_size, metadata_size), offset)| {
            ObjectHeader::Begin {
                data_size,
                metadata_size,
                offset: if data_size == 0 {
                    0
                } else {
                    offset % (data_size + 1)
                },
            }
        }),
        outcome_status().prop_map(ObjectHeader::Failed),
    ]
}

fn any_legacy_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        peer_requests().prop_map(Request::Sync),
        id_list().prop_map(Request::Copy),
        id_list().prop_map(Request::Take),
    ]
}

fn frame_header() -> impl Strategy<Value = FrameHeader> {
    (
        prop_oneof![1..=MAX_DATA_SIZE, Just(1), Just(MAX_DATA_SIZE)],
        prop_oneof![0..MAX_METADATA_SIZE, Just(MAX_METADATA_SIZE - 1)],
    )
        .prop_map(|(data_size, metadata_size)| FrameHeader {
            data_size,
            metadata_size,
        })
}

// ---- the properties, shared by every message ------------------------------------------------

type Decoder<T> = fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>;

/// Decoding the encoding gives the message back and consumes exactly it, even with bytes
/// after it; every strict prefix decodes as "need more".
fn check_codec<T: PartialEq + std::fmt::Debug>(message: &T, bytes: &[u8], decode: Decoder<T>) {
    let decoded = decode(bytes)
        .expect("valid encoding decodes")
        .expect("whole message");
    assert_eq!(&decoded.0, message);
    assert_eq!(decoded.1, bytes.len());
    let mut longer = bytes.to_vec();
    longer.extend([0x5A; 7]);
    let decoded = decode(&longer)
        .expect("trailing bytes are not its business")
        .expect("whole");
    assert_eq!(&decoded.0, message);
    assert_eq!(decoded.1, bytes.len());
    for cut in 0..bytes.len() {
        assert_eq!(
            decode(&bytes[..cut]).map(|o| o.is_none()),
            Ok(true),
            "prefix of {cut} bytes"
        );
    }
}

fn encoded<E>(encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Vec<u8>
where
    E: std::fmt::Debug,
{
    let mut out = Vec::new();
    encode(&mut out).expect("valid message encodes");
    out
}

/// Runs every decoder of the crate on `bytes`; any panic fails the test.
fn decode_everything(bytes: &[u8]) {
    let _ = StreamKind::peek(bytes);
    let _ = StreamRequest::decode(bytes);
    let _ = SyncRequest::decode(bytes);
    let _ = SyncReport::decode(bytes);
    let _ = ObjectRequest::decode(bytes);
    let _ = ObjectHeader::decode(bytes);
    let _ = Ack::decode(bytes);
    let _ = DeleteResult::decode(bytes);
    let _ = DigestTrailer::decode(bytes);
    let _ = Request::decode_legacy(bytes);
    let _ = SyncReply::decode(bytes, 1);
    let _ = SyncReply::decode(bytes, bytes.len());
    let _ = TransferReply::decode(bytes);
    let _ = FrameHeader::decode(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // ---- QUIC format ----

    #[test]
    fn quic_sync_request(peer_requests in peer_requests()) {
        let message = SyncRequest::new(peer_requests).unwrap();
        let bytes = encoded(|out| message.encode(out));
        prop_assert_eq!(bytes.len(), message.encoded_len());
        check_codec(&message, &bytes, SyncRequest::decode);
        let stream = StreamRequest::Sync(message);
        check_codec(&stream, &bytes, StreamRequest::decode);
    }

    #[test]
    fn quic_sync_report(message in sync_report()) {
        let bytes = encoded(|out| message.encode(out));
        prop_assert_eq!(bytes.len(), message.encoded_len());
        check_codec(&message, &bytes, SyncReport::decode);
        // Written in pieces, the same bytes.
        let pieces = message.encode_pieces().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        prop_assert_eq!(pieces.len(), message.peer_reports.len() + 1);
        prop_assert_eq!(pieces.concat(), bytes);
    }

    #[test]
    fn quic_object_request(message in object_request()) {
        let bytes = encoded(|out| message.encode(out));
        prop_assert_eq!(bytes.len(), ObjectRequest::ENCODED_LEN);
        check_codec(&message, &bytes, ObjectRequest::decode);
        let stream = StreamRequest::Object(message);
        check_codec(&stream, &bytes, StreamRequest::decode);
    }

    #[test]
    fn quic_object_header(message in object_header()) {
        let bytes = encoded(|out| message.encode(out));
        prop_assert_eq!(bytes.len(), message.encoded_len());
        check_codec(&message, &bytes, ObjectHeader::decode);
    }

    #[test]
    fn quic_ack_and_delete_result(status in outcome_status()) {
        let ack = Ack { status };
        check_codec(&ack, &encoded(|out| ack.encode(out)), Ack::decode);
        let delete = DeleteResult { status };
        check_codec(&delete, &encoded(|out| delete.encode(out)), DeleteResult::decode);
    }

    #[test]
    fn quic_digest_trailer(xxh64 in any::<u64>()) {
        let message = DigestTrailer { xxh64 };
        let bytes = encoded(|out| message.encode(out));
        prop_assert_eq!(bytes.len(), DigestTrailer::ENCODED_LEN);
        check_codec(&message, &bytes, DigestTrailer::decode);
    }

    // ---- legacy format ----

    #[test]
    fn legacy_request(message in any_legacy_request()) {
        let bytes = encoded(|out| message.encode_legacy(out));
        prop_assert_eq!(bytes.len(), message.legacy_encoded_len());
        check_codec(&message, &bytes, Request::decode_legacy);
    }

    #[test]
    fn legacy_sync_reply(statuses in proptest::collection::vec(outcome_status(), 1..20)) {
        let count = statuses.len();
        let message = SyncReply { statuses };
        let bytes = encoded(|out| message.encode(out));
        prop_assert_eq!(bytes.len(), count);
        prop_assert_eq!(SyncReply::decode(&bytes, count), Ok(Some((message.clone(), count))));
        for cut in 0..count {
            prop_assert_eq!(SyncReply::decode(&bytes[..cut], count), Ok(None));
        }
    }

    #[test]
    fn legacy_transfer_reply(status in any_status()) {
        let message = if status == Status::Begin {
            TransferReply::Begin
        } else {
            TransferReply::Failed(status)
        };
        let bytes = encoded(|out| message.encode(out));
        check_codec(&message, &bytes, TransferReply::decode);
    }

    #[test]
    fn legacy_frame_header(message in frame_header()) {
        let bytes = encoded(|out| message.encode(out));
        prop_assert_eq!(bytes.len(), FrameHeader::ENCODED_LEN);
        check_codec(&message, &bytes, FrameHeader::decode);
    }

    // ---- text ----

    #[test]
    fn object_id_text(id in object_id()) {
        prop_assert_eq!(id.to_string().parse::<ObjectId>(), Ok(id));
        prop_assert_eq!(id.to_string().to_uppercase().parse::<ObjectId>(), Ok(id));
        prop_assert_eq!(ObjectId::from_slice(id.as_bytes()), Ok(id));
    }

    #[test]
    fn grammar_round_trip(peer_requests in peer_requests()) {
        // Port 0 is refused by the grammar (nothing listens there).
        let peer_requests: Vec<PeerRequest> = peer_requests
            .into_iter()
            .map(|p| {
                let (kind, mut from, objects) = p.into_parts();
                if from.port() == 0 {
                    from.set_port(1);
                }
                PeerRequest::new(kind, from, objects)
            })
            .collect();
        let command = Command::Sync(peer_requests);
        let line = command.to_string();
        prop_assert_eq!(grammar::parse_command(&line), Ok(command));
    }

}

proptest! {
    // Hostile input is cheap to try: many more cases.
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_each_first_byte_never_panic(
        first in 0u8..8,
        rest in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![first];
        bytes.extend(rest);
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_valid_encodings_never_panic(
        peer_requests in peer_requests(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        for mut bytes in [
            encoded(|out| SyncRequest::new(peer_requests.clone()).unwrap().encode(out)),
            encoded(|out| Request::Sync(peer_requests.clone()).encode_legacy(out)),
        ] {
            let at = position.index(bytes.len());
            bytes[at] = value;
            decode_everything(&bytes);
            // A decoder's answer never depends on bytes after what it consumed, and a
            // decoded message always re-encodes to the bytes it came from.
            if let Ok(Some((message, n))) = SyncRequest::decode(&bytes) {
                prop_assert_eq!(encoded(|out| message.encode(out)), &bytes[..n]);
            }
            if let Ok(Some((message, n))) = Request::decode_legacy(&bytes) {
                prop_assert_eq!(encoded(|out| message.encode_legacy(out)), &bytes[..n]);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(line in ".{0,200}") {
        let _ = grammar::parse_command(&line);
        let _ = line.parse::<ObjectId>();
        let _ = grammar::parse_address(&line);
    }

    #[test]
    fn arbitrary_grammar_like_text_never_panics(
        words in proptest::collection::vec(
            prop_oneof![
                Just("SYNC".to_owned()), Just("copy".to_owned()), Just("TAKE".to_owned()),
                Just(";".to_owned()), Just("[::1]:5".to_owned()), Just("1.2.3.4:9".to_owned()),
                Just("0102030405060708090a0b0c0d0e0f1011121314".to_owned()),
                "[0-9a-fA-F:\\[\\].;]{0,45}",
            ],
            0..12,
        ),
        separators in proptest::collection::vec("[ \t;]{1,3}", 12),
    ) {
        let mut line = String::new();
        for (word, sep) in words.iter().zip(&separators) {
            line.push_str(word);
            line.push_str(sep);
        }
        let _ = grammar::parse_command(&line);
    }
}
