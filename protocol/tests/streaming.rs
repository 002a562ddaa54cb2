//! Decoders driven the way a connection drives them: bytes arrive in chunks, messages follow
//! each other on one stream, and a large SYNC must not cost quadratic time to re-decode.

use std::net::SocketAddr;
use std::time::Instant;

use plasma_stream_protocol::legacy::{FrameHeader, TransferReply};
use plasma_stream_protocol::wire::{
    Ack, DeleteResult, DigestTrailer, ObjectHeader, ObjectRequest, SyncRequest,
};
use plasma_stream_protocol::{DecodeError, ObjectId, PeerRequest, Request, Status, TransferKind};

fn distinct_ids(count: usize, peer: u32) -> Vec<ObjectId> {
    (0..count as u32)
        .map(|n| {
            let mut bytes = [0xA5u8; 20];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            bytes[4..8].copy_from_slice(&peer.to_le_bytes());
            ObjectId::from_bytes(bytes)
        })
        .collect()
}

/// Feeds `bytes` to `decode` in `chunk`-sized growing prefixes, as a reader would; returns the
/// message, the bytes consumed, and how many calls answered "need more".
fn feed<T>(
    bytes: &[u8],
    chunk: usize,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>,
) -> (T, usize, usize) {
    let mut available = 0;
    let mut need_more = 0;
    loop {
        available = (available + chunk).min(bytes.len());
        match decode(&bytes[..available]).expect("valid bytes") {
            Some((message, used)) => return (message, used, need_more),
            None => {
                assert!(
                    available < bytes.len(),
                    "whole message buffered but not decoded"
                );
                need_more += 1;
            }
        }
    }
}

#[test]
fn large_sync_decodes_incrementally_in_linear_time() {
    // 1024 peer requests × 512 IDs: 524,288 IDs, 10.5 MB, fed 64 KiB at a time.
    let peer_requests: Vec<PeerRequest> = (0..1024u32)
        .map(|p| PeerRequest::Take {
            from: SocketAddr::from(([10, 0, (p >> 8) as u8, p as u8], 2021)),
            objects: distinct_ids(512, p),
        })
        .collect();
    let request = SyncRequest::new(peer_requests).unwrap();
    let mut bytes = Vec::with_capacity(request.encoded_len());
    request.encode(&mut bytes).unwrap();

    let start = Instant::now();
    let (whole, _, _) = feed(&bytes, bytes.len(), SyncRequest::decode);
    let once = start.elapsed();
    assert_eq!(whole, request);

    let start = Instant::now();
    let (chunked, used, need_more) = feed(&bytes, 64 * 1024, SyncRequest::decode);
    let incremental = start.elapsed();
    assert_eq!(chunked, request);
    assert_eq!(used, bytes.len());
    assert_eq!(need_more, bytes.len().div_ceil(64 * 1024) - 1);
    // Peer figure from the same run: copying the same bytes once.
    let start = Instant::now();
    let copy = std::hint::black_box(bytes.clone());
    let copied = start.elapsed();
    eprintln!(
        "{} bytes: one decode {once:?}; {} calls in 64 KiB steps {incremental:?}; copying them {copied:?}",
        copy.len(),
        need_more + 1
    );
    // Each "need more" walks only the peer-request headers, never re-reads the IDs: the whole
    // incremental run stays within a small multiple of one full decode.
    assert!(
        incremental < once * 10 + std::time::Duration::from_secs(1),
        "{incremental:?} vs {once:?}"
    );
}

#[test]
fn an_object_stream_decodes_message_by_message() {
    // Holder's side of a TAKE with a digest trailer, as the puller reads it off one stream.
    let metadata = b"meta";
    let data = vec![7u8; 1000];
    let mut digest = plasma_stream_protocol::wire::DataDigest::new();
    digest.update(&data);
    let mut from_holder = Vec::new();
    ObjectHeader::begin(data.len() as u64, metadata.len() as u64)
        .encode(&mut from_holder)
        .unwrap();
    from_holder.extend(metadata);
    from_holder.extend(&data);
    digest.trailer().encode(&mut from_holder).unwrap();
    DeleteResult {
        status: Status::Success,
    }
    .encode(&mut from_holder)
    .unwrap();

    let (header, mut at, _) = feed(&from_holder, 3, ObjectHeader::decode);
    let body = header.body_len() as usize;
    assert_eq!(&from_holder[at..at + metadata.len()], metadata);
    at += body;
    let (trailer, used, _) = feed(&from_holder[at..], 3, DigestTrailer::decode);
    assert_eq!(trailer.xxh64, digest.finish());
    at += used;
    let (delete, used, _) = feed(&from_holder[at..], 1, DeleteResult::decode);
    assert_eq!(delete.status, Status::Success);
    assert_eq!(at + used, from_holder.len());

    // Puller's side.
    let mut from_puller = Vec::new();
    let request = ObjectRequest {
        digest_trailer: true,
        object_digest: false,
        ..ObjectRequest::new(TransferKind::Take, distinct_ids(1, 0)[0])
    };
    request.encode(&mut from_puller).unwrap();
    Ack {
        status: Status::Success,
    }
    .encode(&mut from_puller)
    .unwrap();
    let (decoded, used, _) = feed(&from_puller, 5, ObjectRequest::decode);
    assert_eq!(decoded, request);
    let (ack, rest, _) = feed(&from_puller[used..], 1, Ack::decode);
    assert_eq!(
        (ack.status, used + rest),
        (Status::Success, from_puller.len())
    );
}

#[test]
fn a_legacy_connection_carries_requests_back_to_back() {
    let first = Request::Copy(distinct_ids(3, 1));
    let second = Request::Take(distinct_ids(2, 2));
    let mut bytes = Vec::new();
    first.encode_legacy(&mut bytes).unwrap();
    second.encode_legacy(&mut bytes).unwrap();
    let (a, used, _) = feed(&bytes, 7, Request::decode_legacy);
    let (b, rest, _) = feed(&bytes[used..], 7, Request::decode_legacy);
    assert_eq!((a, b), (first, second));
    assert_eq!(used + rest, bytes.len());

    // The holder's reply: BEGIN, then a frame per object.
    let mut reply = Vec::new();
    TransferReply::Begin.encode(&mut reply).unwrap();
    for size in [1u64, 5, 3] {
        FrameHeader {
            data_size: size,
            metadata_size: 2,
        }
        .encode(&mut reply)
        .unwrap();
        reply.extend(vec![0xEE; 2 + size as usize]);
    }
    let (begin, mut at, _) = feed(&reply, 1, TransferReply::decode);
    assert_eq!(begin, TransferReply::Begin);
    for size in [1u64, 5, 3] {
        let (frame, used, _) = feed(&reply[at..], 3, FrameHeader::decode);
        assert_eq!(frame.data_size, size);
        at += used + frame.body_len() as usize;
    }
    assert_eq!(at, reply.len());
}

#[test]
fn complete_sync_len_says_when_a_whole_sync_is_buffered() {
    use plasma_stream_protocol::wire::{StreamRequest, CANCEL_SYNC};
    let request = SyncRequest::new(vec![
        PeerRequest::Copy {
            from: SocketAddr::from(([10, 0, 0, 1], 2021)),
            objects: distinct_ids(300, 1),
        },
        PeerRequest::Take {
            from: SocketAddr::from(([10, 0, 0, 2], 2022)),
            objects: distinct_ids(5, 2),
        },
    ])
    .unwrap();
    for events in [false, true] {
        let mut bytes = Vec::new();
        if events {
            request.encode_with_events(&mut bytes).unwrap();
        } else {
            request.encode(&mut bytes).unwrap();
        }
        // A message after it does not change its length.
        let len = bytes.len();
        bytes.extend_from_slice(&[CANCEL_SYNC]);
        for cut in [0, 1, 5, len / 2, len - 1] {
            assert_eq!(
                StreamRequest::complete_sync_len(&bytes[..cut]),
                Ok(None),
                "{cut}"
            );
        }
        assert_eq!(StreamRequest::complete_sync_len(&bytes), Ok(Some(len)));
        let (_, used) = StreamRequest::decode(&bytes).unwrap().unwrap();
        assert_eq!(used, len);
    }
    // Other messages are never "a complete SYNC".
    let mut object = Vec::new();
    ObjectRequest::new(TransferKind::Copy, distinct_ids(1, 9)[0])
        .encode(&mut object)
        .unwrap();
    assert_eq!(StreamRequest::complete_sync_len(&object), Ok(None));
    assert_eq!(StreamRequest::complete_sync_len(&[CANCEL_SYNC]), Ok(None));
    // A bad count is the same error as decode's.
    let mut bad = vec![0x01];
    bad.extend_from_slice(&2000u32.to_le_bytes());
    assert!(StreamRequest::complete_sync_len(&bad).is_err());
    assert_eq!(
        StreamRequest::complete_sync_len(&bad).err(),
        StreamRequest::decode(&bad).err()
    );
}
