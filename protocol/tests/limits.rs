//! Every limit at 0, 1, max and max+1, in validation, both codecs and the grammar; duplicate
//! IDs within one and across peer requests.

use std::net::SocketAddr;

use plasma_stream_protocol::legacy::FrameHeader;
use plasma_stream_protocol::limits::{
    self, MAX_DATA_SIZE, MAX_IDS_PER_LIST, MAX_METADATA_SIZE, MAX_PEER_REQUESTS,
};
use plasma_stream_protocol::wire::{ObjectHeader, SyncRequest};
use plasma_stream_protocol::{
    grammar, DecodeError, EncodeError, GrammarError, LimitError, ObjectId, PeerRequest, Request,
    Status,
};

/// Distinct IDs: the index in the first 4 bytes, `tag` in the last.
fn ids(count: usize, tag: u8) -> Vec<ObjectId> {
    (0..count as u32)
        .map(|n| {
            let mut bytes = [0u8; 20];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            bytes[19] = tag;
            ObjectId::from_bytes(bytes)
        })
        .collect()
}

fn peer(port: u16, objects: Vec<ObjectId>) -> PeerRequest {
    PeerRequest::Copy {
        from: SocketAddr::from(([127, 0, 0, 1], port)),
        objects,
    }
}

/// `count` peer requests of one distinct ID each.
fn peers(count: usize) -> Vec<PeerRequest> {
    ids(count, 0)
        .into_iter()
        .map(|id| peer(2022, vec![id]))
        .collect()
}

/// QUIC SYNC bytes written by hand, without the encoder's checks.
fn raw_quic_sync(peer_requests: &[(u8, Vec<ObjectId>)], declared_peers: u32) -> Vec<u8> {
    let mut out = vec![0x01];
    out.extend(declared_peers.to_le_bytes());
    for (kind, objects) in peer_requests {
        out.push(*kind);
        out.extend([0x04, 127, 0, 0, 1, 0xE6, 0x07]);
        out.extend((objects.len() as u32).to_le_bytes());
        for id in objects {
            out.extend(id.as_bytes());
        }
    }
    out
}

fn quic_round_trip(peer_requests: Vec<PeerRequest>) {
    let request = SyncRequest::new(peer_requests).unwrap();
    let mut bytes = Vec::new();
    request.encode(&mut bytes).unwrap();
    assert_eq!(
        SyncRequest::decode(&bytes),
        Ok(Some((request, bytes.len())))
    );
}

// ---- peer requests per SYNC: 0, 1, 1024, 1025 ----

#[test]
fn peer_requests_boundaries_validation() {
    assert_eq!(
        limits::validate_sync(&peers(0)),
        Err(LimitError::NoPeerRequests)
    );
    assert_eq!(limits::validate_sync(&peers(1)), Ok(()));
    assert_eq!(limits::validate_sync(&peers(MAX_PEER_REQUESTS)), Ok(()));
    assert_eq!(
        limits::validate_sync(&peers(MAX_PEER_REQUESTS + 1)),
        Err(LimitError::TooManyPeerRequests { count: 1025 })
    );
    assert!(LimitError::TooManyPeerRequests { count: 1025 }
        .to_string()
        .contains("1025"));
}

#[test]
fn peer_requests_boundaries_quic() {
    quic_round_trip(peers(1));
    quic_round_trip(peers(MAX_PEER_REQUESTS));
    // A SyncRequest is validated when it is built: an invalid one cannot exist to be encoded.
    assert_eq!(SyncRequest::new(peers(0)), Err(LimitError::NoPeerRequests));
    assert_eq!(
        SyncRequest::new(peers(1025)),
        Err(LimitError::TooManyPeerRequests { count: 1025 })
    );
    assert_eq!(
        SyncRequest::decode(&raw_quic_sync(&[], 0)),
        Err(DecodeError::Limit(LimitError::NoPeerRequests))
    );
    // Refused from the count alone, before any peer request arrives.
    assert_eq!(
        SyncRequest::decode(&raw_quic_sync(&[], 1025)),
        Err(DecodeError::Limit(LimitError::TooManyPeerRequests {
            count: 1025
        }))
    );
}

#[test]
fn peer_requests_boundaries_legacy() {
    for count in [1, MAX_PEER_REQUESTS] {
        let request = Request::Sync(peers(count));
        let mut bytes = Vec::new();
        request.encode_legacy(&mut bytes).unwrap();
        assert_eq!(
            Request::decode_legacy(&bytes),
            Ok(Some((request, bytes.len())))
        );
    }
    for (count, error) in [
        (0, LimitError::NoPeerRequests),
        (1025, LimitError::TooManyPeerRequests { count: 1025 }),
    ] {
        let mut out = Vec::new();
        assert_eq!(
            Request::Sync(peers(count)).encode_legacy(&mut out),
            Err(error.clone().into())
        );
        let mut bytes = vec![0x01];
        bytes.extend((count as u16).to_le_bytes());
        assert_eq!(Request::decode_legacy(&bytes), Err(error.into()));
    }
}

#[test]
fn peer_requests_boundaries_grammar() {
    let line = |count: usize| {
        let mut line = "SYNC".to_owned();
        for id in ids(count, 0) {
            line.push_str(&format!(" COPY 10.0.0.1:2021 {id} ;"));
        }
        line.pop();
        line
    };
    assert_eq!(
        grammar::parse_command(&line(1))
            .unwrap()
            .peer_requests()
            .len(),
        1
    );
    assert_eq!(
        grammar::parse_command(&line(1024))
            .unwrap()
            .peer_requests()
            .len(),
        1024
    );
    let e = grammar::parse_command(&line(1025)).unwrap_err();
    assert!(
        matches!(e, GrammarError::TooManyPeerRequests { ref token, .. } if token == "COPY"),
        "{e:?}"
    );
    assert!(e.to_string().contains("at most 1024"), "{e}");
}

// ---- IDs per list: 0, 1, 65,536, 65,537 ----

#[test]
fn ids_per_list_boundaries_validation() {
    assert_eq!(
        limits::validate_sync(&[peer(1, ids(0, 0))]),
        Err(LimitError::EmptyIdList {
            peer_request: Some(0)
        })
    );
    assert_eq!(limits::validate_sync(&[peer(1, ids(1, 0))]), Ok(()));
    assert_eq!(
        limits::validate_sync(&[peer(1, ids(MAX_IDS_PER_LIST, 0))]),
        Ok(())
    );
    let e = limits::validate_sync(&[peer(1, ids(1, 1)), peer(1, ids(MAX_IDS_PER_LIST + 1, 0))])
        .unwrap_err();
    assert_eq!(
        e,
        LimitError::TooManyIds {
            peer_request: Some(1),
            count: 65_537
        }
    );
    assert_eq!(
        e.to_string(),
        "peer request #2 has at most 65536 object IDs, got 65537"
    );
    assert_eq!(
        limits::validate_id_list(&ids(0, 0), None),
        Err(LimitError::EmptyIdList { peer_request: None })
    );
    assert_eq!(
        limits::validate_id_list(&ids(MAX_IDS_PER_LIST, 0), None),
        Ok(())
    );
}

#[test]
fn ids_per_list_boundaries_quic() {
    quic_round_trip(vec![peer(1, ids(1, 0))]);
    // 65,536 IDs round-trip in the QUIC format (no 16-bit count).
    quic_round_trip(vec![peer(1, ids(MAX_IDS_PER_LIST, 0))]);
    assert_eq!(
        SyncRequest::decode(&raw_quic_sync(&[(0x02, ids(0, 0))], 1)),
        Err(DecodeError::Limit(LimitError::EmptyIdList {
            peer_request: Some(0)
        }))
    );
    // Refused from the count alone.
    let mut bytes = raw_quic_sync(&[(0x02, vec![])], 1);
    bytes.truncate(bytes.len() - 4);
    bytes.extend(65_537u32.to_le_bytes());
    assert_eq!(
        SyncRequest::decode(&bytes),
        Err(DecodeError::Limit(LimitError::TooManyIds {
            peer_request: Some(0),
            count: 65_537
        }))
    );
    assert!(SyncRequest::new(vec![peer(1, ids(65_537, 0))]).is_err());
}

#[test]
fn ids_per_list_boundaries_legacy() {
    for count in [1, 65_535] {
        let request = Request::Take(ids(count, 0));
        let mut bytes = Vec::new();
        request.encode_legacy(&mut bytes).unwrap();
        assert_eq!(
            Request::decode_legacy(&bytes),
            Ok(Some((request, bytes.len())))
        );
    }
    let mut out = Vec::new();
    assert_eq!(
        Request::Copy(ids(0, 0)).encode_legacy(&mut out),
        Err(LimitError::EmptyIdList { peer_request: None }.into())
    );
    assert_eq!(
        Request::Copy(ids(65_536, 0)).encode_legacy(&mut out),
        Err(EncodeError::LegacyIdCountUnrepresentable { count: 65_536 })
    );
    assert_eq!(
        Request::Sync(vec![peer(5, ids(65_536, 0))]).encode_legacy(&mut out),
        Err(EncodeError::LegacyIdCountUnrepresentable { count: 65_536 })
    );
    assert_eq!(
        Request::Copy(ids(65_537, 0)).encode_legacy(&mut out),
        Err(LimitError::TooManyIds {
            peer_request: None,
            count: 65_537
        }
        .into())
    );
    assert!(out.is_empty(), "a refused encoding writes nothing");
}

#[test]
fn ids_per_list_boundaries_grammar() {
    let line = |count: usize| {
        let mut line = "COPY 1.2.3.4:5".to_owned();
        for id in ids(count, 0) {
            line.push(' ');
            line.push_str(&id.to_string());
        }
        line
    };
    assert!(matches!(
        grammar::parse_command(&line(0)),
        Err(GrammarError::MissingObjectId { .. })
    ));
    assert_eq!(
        grammar::parse_command(&line(1)).unwrap().peer_requests()[0]
            .objects()
            .len(),
        1
    );
    assert_eq!(
        grammar::parse_command(&line(65_536))
            .unwrap()
            .peer_requests()[0]
            .objects()
            .len(),
        65_536
    );
    let e = grammar::parse_command(&line(65_537)).unwrap_err();
    let last = ids(65_537, 0)[65_536].to_string();
    assert!(
        matches!(e, GrammarError::TooManyIds { ref token, .. } if *token == last),
        "{e:?}"
    );
}

// ---- data size: 0, 1, 2^44, 2^44+1; metadata: 0, 1, 65,536, 65,537 ----

#[test]
fn object_size_boundaries_quic() {
    for (data, meta) in [(0, 0), (1, 1), (MAX_DATA_SIZE, MAX_METADATA_SIZE)] {
        assert_eq!(limits::validate_object_sizes(data, meta), Ok(()));
        let header = ObjectHeader::begin(data, meta);
        let mut bytes = Vec::new();
        header.encode(&mut bytes).unwrap();
        assert_eq!(
            ObjectHeader::decode(&bytes),
            Ok(Some((header, bytes.len())))
        );
    }
    let too_much_data = LimitError::DataTooLarge {
        size: MAX_DATA_SIZE + 1,
    };
    let too_much_meta = LimitError::MetadataTooLarge {
        size: MAX_METADATA_SIZE + 1,
    };
    assert_eq!(
        limits::validate_object_sizes(MAX_DATA_SIZE + 1, 0),
        Err(too_much_data.clone())
    );
    assert_eq!(
        limits::validate_object_sizes(0, MAX_METADATA_SIZE + 1),
        Err(too_much_meta.clone())
    );
    assert_eq!(too_much_data.status(), Some(Status::DataTooLarge));
    assert_eq!(too_much_meta.status(), Some(Status::MetadataTooLarge));
    let mut out = Vec::new();
    assert_eq!(
        ObjectHeader::begin(MAX_DATA_SIZE + 1, 0).encode(&mut out),
        Err(too_much_data.into())
    );
    assert_eq!(
        ObjectHeader::begin(0, MAX_METADATA_SIZE + 1).encode(&mut out),
        Err(too_much_meta.into())
    );
    assert!(out.is_empty());
}

#[test]
fn object_size_boundaries_legacy() {
    for (data, meta) in [(1, 0), (1, 1), (MAX_DATA_SIZE, MAX_METADATA_SIZE - 1)] {
        let header = FrameHeader {
            data_size: data,
            metadata_size: meta,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes).unwrap();
        assert_eq!(FrameHeader::decode(&bytes), Ok(Some((header, 8))));
    }
    let refused = [
        (0, 0, EncodeError::Limit(LimitError::ZeroLengthData)),
        (
            MAX_DATA_SIZE + 1,
            0,
            LimitError::DataTooLarge {
                size: MAX_DATA_SIZE + 1,
            }
            .into(),
        ),
        (
            1,
            MAX_METADATA_SIZE,
            EncodeError::LegacyMetadataUnrepresentable { size: 65_536 },
        ),
        (
            1,
            MAX_METADATA_SIZE + 1,
            LimitError::MetadataTooLarge { size: 65_537 }.into(),
        ),
    ];
    for (data, meta, error) in refused {
        let mut out = Vec::new();
        let header = FrameHeader {
            data_size: data,
            metadata_size: meta,
        };
        assert_eq!(header.encode(&mut out), Err(error));
        assert!(out.is_empty());
    }
    assert_eq!(
        limits::validate_legacy_object_sizes(0, 0),
        Err(LimitError::ZeroLengthData)
    );
    // Documented order of checks: metadata (0x50) before data (0x51) before empty (0x52).
    assert_eq!(
        limits::validate_legacy_object_sizes(MAX_DATA_SIZE + 1, MAX_METADATA_SIZE + 1),
        Err(LimitError::MetadataTooLarge { size: 65_537 })
    );
}

// ---- duplicate IDs ----

#[test]
fn duplicates_within_one_peer_request() {
    let dup = ids(3, 7)[1];
    let objects = vec![ids(3, 7)[0], dup, ids(3, 7)[2], dup];
    let expected = LimitError::DuplicateId {
        id: dup,
        first: Some(0),
        second: Some(0),
    };
    assert_eq!(
        limits::validate_sync(&[peer(1, objects.clone())]),
        Err(expected.clone())
    );
    assert!(
        expected.to_string().contains(&dup.to_string()),
        "{expected}"
    );
    assert_eq!(expected.status(), Some(Status::AlreadyReceiving));
    assert_eq!(
        SyncRequest::new(vec![peer(1, objects.clone())]),
        Err(expected.clone())
    );
    assert_eq!(
        SyncRequest::decode(&raw_quic_sync(&[(0x03, objects.clone())], 1)),
        Err(DecodeError::Limit(expected.clone()))
    );
    let mut out = Vec::new();
    assert!(Request::Sync(vec![peer(1, objects.clone())])
        .encode_legacy(&mut out)
        .is_err());
    let mut legacy = vec![0x02, 4, 0];
    for id in &objects {
        legacy.extend(id.as_bytes());
    }
    assert_eq!(
        Request::decode_legacy(&legacy),
        Err(DecodeError::Limit(LimitError::DuplicateId {
            id: dup,
            first: None,
            second: None
        }))
    );
    assert_eq!(
        limits::validate_id_list(&objects, None),
        Err(LimitError::DuplicateId {
            id: dup,
            first: None,
            second: None
        })
    );
}

#[test]
fn duplicates_across_peer_requests() {
    let dup = ids(1, 9)[0];
    let first = vec![ids(2, 1)[0], dup];
    let third = vec![ids(2, 3)[1], dup];
    let requests = [
        peer(1, first.clone()),
        peer(2, ids(2, 2)),
        peer(3, third.clone()),
    ];
    let expected = LimitError::DuplicateId {
        id: dup,
        first: Some(0),
        second: Some(2),
    };
    assert_eq!(limits::validate_sync(&requests), Err(expected.clone()));
    assert_eq!(
        expected.to_string(),
        format!("object ID {dup} appears twice: in peer request #1 and in peer request #3")
    );
    let raw = raw_quic_sync(&[(0x02, first), (0x02, ids(2, 2)), (0x03, third)], 3);
    assert_eq!(
        SyncRequest::decode(&raw),
        Err(DecodeError::Limit(expected.clone()))
    );
    let mut out = Vec::new();
    assert_eq!(
        Request::Sync(requests.to_vec()).encode_legacy(&mut out),
        Err(EncodeError::Limit(expected))
    );
}

#[test]
fn a_report_past_the_limits_is_refused_whole_and_in_pieces() {
    use plasma_stream_protocol::wire::{PeerReport, SyncReport};
    let too_many = SyncReport::refused(MAX_PEER_REQUESTS, Status::NotPermitted);
    let mut too_many = too_many.clone();
    too_many.peer_reports.push(PeerReport {
        status: Status::NotPermitted,
        objects: Vec::new(),
    });
    let expected = EncodeError::from(LimitError::TooManyPeerRequests { count: 1025 });
    assert_eq!(too_many.encode(&mut Vec::new()), Err(expected.clone()));
    assert_eq!(too_many.encode_pieces().err(), Some(expected));
    // BEGIN is no outcome: refused before any piece is made.
    let begin = SyncReport::refused(2, Status::Begin);
    assert!(begin.encode(&mut Vec::new()).is_err());
    assert!(begin.encode_pieces().is_err());
}
