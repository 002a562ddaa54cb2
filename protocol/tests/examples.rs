//! Worked examples and edge cases of both wire formats and the grammar, byte for byte.

use std::net::SocketAddr;

use plasma_stream_protocol::legacy::{self, FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::wire::{
    self, Ack, DeleteResult, DigestTrailer, ObjectHeader, ObjectOutcome, ObjectRequest, PeerReport,
    StreamKind, StreamRequest, SyncReport, SyncRequest,
};
use plasma_stream_protocol::{
    DecodeError, EncodeError, LimitError, ObjectId, PeerRequest, Request, Status, TransferKind,
};

fn id(fill: u8) -> ObjectId {
    ObjectId::from_bytes([fill; 20])
}

fn example_id() -> ObjectId {
    ObjectId::from_bytes(core::array::from_fn(|i| i as u8 + 1))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn legacy_bytes(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode_legacy(&mut out).unwrap();
    out
}

#[test]
fn legacy_worked_example_byte_for_byte() {
    let request = Request::Sync(vec![PeerRequest::Copy {
        from: addr("127.0.0.1:2022"),
        objects: vec![example_id()],
    }]);
    let mut expected = vec![
        0x01, 0x01, 0x00, 0x02, 0x04, 0xE6, 0x07, 0x7F, 0x00, 0x00, 0x01, 0x01, 0x00,
    ];
    expected.extend(1..=0x14u8);
    let bytes = legacy_bytes(&request);
    assert_eq!(bytes, expected);
    assert_eq!(bytes.len(), request.legacy_encoded_len());
    assert_eq!(
        Request::decode_legacy(&expected),
        Ok(Some((request, expected.len())))
    );
}

#[test]
fn legacy_ipv6_sync() {
    let request = Request::Sync(vec![
        PeerRequest::Take {
            from: addr("[2001:db8::1]:2021"),
            objects: vec![id(0xAA), id(0xBB)],
        },
        PeerRequest::Copy {
            from: addr("127.0.0.1:2022"),
            objects: vec![id(0xCC)],
        },
    ]);
    let bytes = legacy_bytes(&request);
    let mut expected = vec![0x01, 0x02, 0x00, 0x03, 0x06, 0xE5, 0x07];
    expected.extend([
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ]);
    expected.extend([0x02, 0x00]);
    expected.extend([0xAA; 20]);
    expected.extend([0xBB; 20]);
    expected.extend([0x02, 0x04, 0xE6, 0x07, 0x7F, 0, 0, 1, 0x01, 0x00]);
    expected.extend([0xCC; 20]);
    assert_eq!(bytes, expected);
    assert_eq!(
        Request::decode_legacy(&bytes),
        Ok(Some((request, bytes.len())))
    );
}

#[test]
fn legacy_copy_and_take_requests() {
    for (request, first) in [
        (Request::Copy(vec![id(1)]), 0x02u8),
        (Request::Take(vec![id(1), id(2)]), 0x03u8),
    ] {
        let bytes = legacy_bytes(&request);
        assert_eq!(bytes[0], first);
        assert!(legacy::is_legacy_first_byte(bytes[0]));
        assert_eq!(
            Request::decode_legacy(&bytes),
            Ok(Some((request, bytes.len())))
        );
    }
    assert!(!legacy::is_legacy_first_byte(0x16));
}

#[test]
fn legacy_refuses_65536_ids_and_metadata() {
    let ids: Vec<ObjectId> = (0..65_536u32)
        .map(|n| {
            let mut bytes = [0u8; 20];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            ObjectId::from_bytes(bytes)
        })
        .collect();
    let mut out = Vec::new();
    let err = Request::Copy(ids.clone())
        .encode_legacy(&mut out)
        .unwrap_err();
    assert_eq!(
        err,
        EncodeError::LegacyIdCountUnrepresentable { count: 65_536 }
    );
    assert!(err.to_string().contains("65536"), "{err}");
    assert!(out.is_empty(), "nothing written on refusal");
    // 65,535 fits.
    Request::Copy(ids[..65_535].to_vec())
        .encode_legacy(&mut out)
        .unwrap();
    assert_eq!(&out[1..3], &[0xFF, 0xFF]);

    let err = FrameHeader {
        data_size: 1,
        metadata_size: 65_536,
    }
    .to_word()
    .unwrap_err();
    assert_eq!(
        err,
        EncodeError::LegacyMetadataUnrepresentable { size: 65_536 }
    );
    assert_eq!(
        FrameHeader {
            data_size: 1,
            metadata_size: 65_535
        }
        .to_word(),
        Ok(0xFFFF | (1 << 16))
    );
}

#[test]
fn legacy_frame_header_layout() {
    let header = FrameHeader {
        data_size: 0x1234_5678,
        metadata_size: 0x0102,
    };
    let mut out = Vec::new();
    header.encode(&mut out).unwrap();
    assert_eq!(out, (0x0102u64 | (0x1234_5678u64 << 16)).to_le_bytes());
    assert_eq!(FrameHeader::decode(&out), Ok(Some((header, 8))));
    assert_eq!(FrameHeader::decode(&out[..7]), Ok(None));
    // 0-byte data is 0x52 in the legacy format; more than 2^44 is 0x51.
    let zero = 5u64.to_le_bytes();
    let err = FrameHeader::decode(&zero).unwrap_err();
    assert_eq!(err, DecodeError::Limit(LimitError::ZeroLengthData));
    assert_eq!(err.status(), Some(Status::ZeroLengthData));
    let huge = (((1u64 << 44) + 1) << 16).to_le_bytes();
    assert_eq!(
        FrameHeader::decode(&huge).unwrap_err().status(),
        Some(Status::DataTooLarge)
    );
    let max = ((1u64 << 44) << 16).to_le_bytes();
    assert!(FrameHeader::decode(&max).unwrap().is_some());
}

#[test]
fn legacy_replies() {
    let reply = SyncReply {
        statuses: vec![Status::Success, Status::NotFound],
    };
    let mut out = Vec::new();
    reply.encode(&mut out).unwrap();
    assert_eq!(out, [0x41, 0x71]);
    assert_eq!(SyncReply::decode(&out, 2), Ok(Some((reply, 2))));
    assert_eq!(SyncReply::decode(&out[..1], 2), Ok(None));

    let mut out = Vec::new();
    TransferReply::Begin.encode(&mut out).unwrap();
    TransferReply::Failed(Status::BeingDeleted)
        .encode(&mut out)
        .unwrap();
    assert_eq!(out, [0x00, 0x70]);
    assert_eq!(
        TransferReply::decode(&out),
        Ok(Some((TransferReply::Begin, 1)))
    );
    assert_eq!(
        TransferReply::decode(&out[1..]),
        Ok(Some((TransferReply::Failed(Status::BeingDeleted), 1)))
    );
    assert!(TransferReply::Failed(Status::Begin)
        .encode(&mut out)
        .is_err());
}

#[test]
fn legacy_malformed_requests() {
    assert_eq!(
        Request::decode_legacy(&[0x09]),
        Err(DecodeError::UnknownRequestType { byte: 0x09 })
    );
    assert_eq!(
        Request::decode_legacy(&[0x01, 0x01, 0x00, 0x05]),
        Err(DecodeError::UnknownTransferKind { byte: 0x05 })
    );
    assert_eq!(
        Request::decode_legacy(&[0x01, 0x01, 0x00, 0x02, 0x05]),
        Err(DecodeError::UnknownAddressFamily { byte: 0x05 })
    );
    // A count of 0 is an empty list (the original's wrapped 65,536), refused.
    assert_eq!(
        Request::decode_legacy(&[0x02, 0x00, 0x00]),
        Err(DecodeError::Limit(LimitError::EmptyIdList {
            peer_request: None
        }))
    );
    assert_eq!(
        Request::decode_legacy(&[0x01, 0x00, 0x00]),
        Err(DecodeError::Limit(LimitError::NoPeerRequests))
    );
    assert_eq!(
        Request::decode_legacy(&[0x01, 0x01, 0x04]),
        Err(DecodeError::Limit(LimitError::TooManyPeerRequests {
            count: 1025
        }))
    );
}

fn sample_sync() -> SyncRequest {
    SyncRequest::new(vec![
        PeerRequest::Copy {
            from: addr("127.0.0.1:2022"),
            objects: vec![example_id()],
        },
        PeerRequest::Take {
            from: addr("[::1]:7"),
            objects: vec![id(9), id(10)],
        },
    ])
    .unwrap()
}

#[test]
fn quic_sync_request_bytes() {
    let request = SyncRequest::new(vec![PeerRequest::Copy {
        from: addr("127.0.0.1:2022"),
        objects: vec![example_id()],
    }])
    .unwrap();
    let mut bytes = Vec::new();
    request.encode(&mut bytes).unwrap();
    let mut expected = vec![
        0x01, 1, 0, 0, 0, 0x02, 0x04, 0x7F, 0, 0, 1, 0xE6, 0x07, 1, 0, 0, 0,
    ];
    expected.extend(1..=0x14u8);
    assert_eq!(bytes, expected);
    assert_eq!(request.encoded_len(), bytes.len());
    assert_eq!(
        SyncRequest::decode(&bytes),
        Ok(Some((request.clone(), bytes.len())))
    );
    assert_eq!(StreamKind::peek(&bytes), Ok(Some(StreamKind::Sync)));
    assert_eq!(
        StreamRequest::decode(&bytes),
        Ok(Some((StreamRequest::Sync(request), bytes.len())))
    );
}

#[test]
fn quic_sync_request_ipv6_and_trailing_bytes() {
    let request = sample_sync();
    let mut bytes = Vec::new();
    request.encode(&mut bytes).unwrap();
    let len = bytes.len();
    bytes.extend([0xEE; 5]);
    assert_eq!(SyncRequest::decode(&bytes), Ok(Some((request, len))));
}

#[test]
fn quic_sync_report_round_trip() {
    let report = SyncReport {
        peer_reports: vec![
            PeerReport::from_outcomes(vec![ObjectOutcome {
                id: id(1),
                status: Status::Success,
                bytes_moved: 1 << 40,
            }]),
            PeerReport::from_outcomes(vec![
                ObjectOutcome {
                    id: id(2),
                    status: Status::Success,
                    bytes_moved: 3,
                },
                ObjectOutcome {
                    id: id(3),
                    status: Status::NotFound,
                    bytes_moved: 0,
                },
            ]),
        ],
    };
    assert_eq!(report.peer_reports[0].status, Status::Success);
    assert_eq!(report.peer_reports[1].status, Status::NotFound);
    assert!(!report.is_success());
    let legacy_reply = SyncReply::from(&report);
    let mut bytes = Vec::new();
    report.encode(&mut bytes).unwrap();
    assert_eq!(bytes.len(), report.encoded_len());
    assert_eq!(&bytes[..5], &[2, 0, 0, 0, 0x41]);
    assert_eq!(SyncReport::decode(&bytes), Ok(Some((report, bytes.len()))));
    let refused = SyncReport::refused(3, Status::AlreadyReceiving);
    assert_eq!(refused.peer_reports.len(), 3);
    assert_eq!(legacy_reply.statuses, [Status::Success, Status::NotFound]);
}

#[test]
fn quic_object_stream_messages() {
    let request = ObjectRequest {
        kind: TransferKind::Take,
        id: id(7),
        resume_offset: 0,
        digest_trailer: true,
        object_digest: false,
    };
    let mut bytes = Vec::new();
    request.encode(&mut bytes).unwrap();
    assert_eq!(bytes.len(), ObjectRequest::ENCODED_LEN);
    assert_eq!(&bytes[..2], &[0x02, 0x03]);
    assert_eq!(bytes[30], 0x01);
    assert_eq!(
        ObjectRequest::decode(&bytes),
        Ok(Some((request, bytes.len())))
    );
    bytes[30] = 0x05;
    assert_eq!(
        ObjectRequest::decode(&bytes),
        Err(DecodeError::ReservedFlags { flags: 0x05 })
    );
    // Bits 0 and 1 together ask for two trailers: refused.
    bytes[30] = 0x03;
    assert_eq!(
        ObjectRequest::decode(&bytes),
        Err(DecodeError::ConflictingFlags { flags: 0x03 })
    );

    let header = ObjectHeader::begin(0, 65_536);
    let mut bytes = Vec::new();
    header.encode(&mut bytes).unwrap();
    assert_eq!(bytes.len(), ObjectHeader::BEGIN_LEN);
    assert_eq!(bytes[0], 0x00);
    assert_eq!(ObjectHeader::decode(&bytes), Ok(Some((header, 25))));
    assert_eq!(header.body_len(), 65_536);

    let failed = ObjectHeader::Failed(Status::NotFound);
    let mut bytes = Vec::new();
    failed.encode(&mut bytes).unwrap();
    assert_eq!(bytes, [0x71]);
    assert_eq!(ObjectHeader::decode(&bytes), Ok(Some((failed, 1))));
    assert!(ObjectHeader::Failed(Status::Begin)
        .encode(&mut bytes)
        .is_err());

    let mut bytes = Vec::new();
    Ack {
        status: Status::Success,
    }
    .encode(&mut bytes)
    .unwrap();
    DeleteResult {
        status: Status::StoreError,
    }
    .encode(&mut bytes)
    .unwrap();
    assert_eq!(bytes, [0x41, 0x60]);
    assert_eq!(
        Ack::decode(&bytes),
        Ok(Some((
            Ack {
                status: Status::Success
            },
            1
        )))
    );
    assert_eq!(
        DeleteResult::decode(&bytes[1..]),
        Ok(Some((
            DeleteResult {
                status: Status::StoreError
            },
            1
        )))
    );
    assert!(Ack::decode(&[0x00]).is_err());
    assert!(Ack::decode(&[0x42]).is_err());

    let mut digest = wire::DataDigest::new();
    digest.update(b"hello ");
    digest.update(b"world");
    assert_eq!(digest.finish(), xxh64_of(b"hello world"));
    let mut bytes = Vec::new();
    digest.trailer().encode(&mut bytes).unwrap();
    assert_eq!(
        DigestTrailer::decode(&bytes),
        Ok(Some((digest.trailer(), 8)))
    );
}

fn xxh64_of(data: &[u8]) -> u64 {
    let mut d = wire::DataDigest::new();
    d.update(data);
    d.finish()
}

#[test]
fn alpn_names_version_1() {
    assert_eq!(wire::ALPN, b"plasma-stream/1");
    assert_eq!(plasma_stream_protocol::ALPN, wire::ALPN);
}

#[test]
fn object_header_offset_and_sizes_checked() {
    let mut bytes = vec![0x00];
    bytes.extend(10u64.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(11u64.to_le_bytes());
    assert_eq!(
        ObjectHeader::decode(&bytes),
        Err(DecodeError::OffsetPastEnd {
            offset: 11,
            data_size: 10
        })
    );
    let mut bytes = vec![0x00];
    bytes.extend(((1u64 << 44) + 1).to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    assert_eq!(
        ObjectHeader::decode(&bytes).unwrap_err().status(),
        Some(Status::DataTooLarge)
    );
    let mut bytes = vec![0x00];
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(65_537u64.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    assert_eq!(
        ObjectHeader::decode(&bytes).unwrap_err().status(),
        Some(Status::MetadataTooLarge)
    );
}

#[test]
fn refused_sync_is_answered_with_a_report_per_declared_peer_request() {
    // Two peer requests naming the same object: well-formed bytes, refused with 0x80.
    let mut bytes = vec![0x01, 2, 0, 0, 0];
    for port in [0xE5u8, 0xE6] {
        bytes.extend([0x02, 0x04, 127, 0, 0, 1, port, 0x07, 1, 0, 0, 0]);
        bytes.extend([0x42; 20]);
    }
    let error = SyncRequest::decode(&bytes).unwrap_err();
    assert_eq!(error.status(), Some(Status::AlreadyReceiving));
    assert!(error.to_string().contains(&"42".repeat(20)), "{error}");
    let count = SyncRequest::declared_peer_request_count(&bytes).unwrap();
    let report = SyncReport::refused(count as usize, error.status().unwrap());
    assert_eq!(report.peer_reports.len(), 2);
    assert!(report
        .peer_reports
        .iter()
        .all(|p| p.status == Status::AlreadyReceiving));
    assert_eq!(SyncRequest::declared_peer_request_count(&bytes[..4]), None);
    assert_eq!(
        SyncRequest::declared_peer_request_count(&[0x02, 0, 0, 0, 0]),
        None
    );
}

#[test]
fn stream_kind_errors() {
    assert_eq!(StreamKind::peek(&[]), Ok(None));
    assert_eq!(
        StreamKind::peek(&[0x16]),
        Err(DecodeError::UnknownStreamKind { byte: 0x16 })
    );
    assert_eq!(
        StreamRequest::decode(&[0x16]),
        Err(DecodeError::UnknownStreamKind { byte: 0x16 })
    );
    let mut object = Vec::new();
    ObjectRequest::new(TransferKind::Copy, id(1))
        .encode(&mut object)
        .unwrap();
    let error = SyncRequest::decode(&object).unwrap_err();
    assert!(
        matches!(error, DecodeError::WrongMessageType { found: 0x02, .. }),
        "{error:?}"
    );
    assert!(matches!(
        ObjectRequest::decode(&[0x01]),
        Err(DecodeError::WrongMessageType { .. })
    ));
}

/// The cancel of a SYNC with events is one byte, 0x18, readable wherever the next request of a
/// stream is (during the SYNC, and after its report, where it is ignored); the request before
/// it and the cancel decode one after the other from the same buffer.
#[test]
fn cancel_sync_is_one_byte_after_the_request() {
    let mut cancel = Vec::new();
    StreamRequest::CancelSync.encode(&mut cancel).unwrap();
    assert_eq!(cancel, [0x18]);
    assert_eq!(
        StreamRequest::decode(&cancel),
        Ok(Some((StreamRequest::CancelSync, 1)))
    );

    let request = SyncRequest::new(vec![PeerRequest::Copy {
        from: "127.0.0.1:2022".parse().unwrap(),
        objects: vec![id(1)],
    }])
    .unwrap();
    let mut bytes = Vec::new();
    request.encode_with_events(&mut bytes).unwrap();
    let first = bytes.len();
    bytes.push(0x18);
    assert_eq!(
        StreamRequest::decode(&bytes),
        Ok(Some((StreamRequest::SyncWithEvents(request), first)))
    );
    assert_eq!(
        StreamRequest::decode(&bytes[first..]),
        Ok(Some((StreamRequest::CancelSync, 1)))
    );
    assert_eq!(
        plasma_stream_protocol::events::ReasonCode::from_code(0x41).name(),
        "cancelled"
    );
}
