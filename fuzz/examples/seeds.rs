//! Writes a seed corpus of valid messages for every fuzz target into `fuzz/corpus/<target>/`:
//! a fuzzer that starts from valid FlatBuffers and frames reaches the decoders' deeper paths
//! (field checks, round trips) in seconds instead of hours.
//!
//! `cargo +nightly run --example seeds` (from `fuzz/`). Each seed starts with the selector
//! byte its target expects.

use std::fs;
use std::path::Path;

use plasma_store::wire::frame::write_frame;
use plasma_store::wire::messages::*;
use plasma_store::wire::MessageType;
use plasma_store::ObjectId as StoreId;
use plasma_stream_protocol::legacy::{FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::wire::{
    Ack, DeleteResult, DigestTrailer, ObjectHeader, ObjectOutcome, ObjectRequest, PeerReport,
    SyncReport, SyncRequest,
};
use plasma_stream_protocol::{ObjectId, PeerRequest, Request, Status, TransferKind};

fn write(target: &str, name: &str, selector: &[u8], body: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    let mut bytes = selector.to_vec();
    bytes.extend_from_slice(body);
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out);
    out
}

fn main() {
    let id = |n: u8| ObjectId::from_bytes([n; 20]);
    let v4 = "127.0.0.1:2022".parse().expect("addr");
    let v6 = "[fd00::3]:2021".parse().expect("addr");
    let peer_requests = vec![
        PeerRequest::new(TransferKind::Copy, v4, vec![id(1), id(2)]),
        PeerRequest::new(TransferKind::Take, v6, vec![id(3)]),
    ];

    // protocol_wire
    let sync = SyncRequest::new(peer_requests.clone()).expect("valid");
    write(
        "protocol_wire",
        "sync",
        &[1],
        &enc(|o| sync.encode(o).expect("enc")),
    );
    write(
        "protocol_wire",
        "stream_sync",
        &[0],
        &enc(|o| sync.encode(o).expect("enc")),
    );
    let report = SyncReport {
        peer_reports: vec![
            PeerReport::from_outcomes(vec![ObjectOutcome {
                id: id(1),
                status: Status::Success,
                bytes_moved: 77,
            }]),
            PeerReport {
                status: Status::NotFound,
                objects: vec![],
            },
        ],
    };
    write(
        "protocol_wire",
        "report",
        &[2],
        &enc(|o| report.encode(o).expect("enc")),
    );
    let object = ObjectRequest {
        digest_trailer: true,
        object_digest: false,
        ..ObjectRequest::new(TransferKind::Take, id(9))
    };
    write(
        "protocol_wire",
        "object",
        &[3],
        &enc(|o| object.encode(o).expect("enc")),
    );
    write(
        "protocol_wire",
        "stream_object",
        &[0],
        &enc(|o| object.encode(o).expect("enc")),
    );
    let header = ObjectHeader::Begin {
        data_size: 100,
        metadata_size: 3,
        offset: 10,
    };
    write(
        "protocol_wire",
        "header",
        &[4],
        &enc(|o| header.encode(o).expect("enc")),
    );
    let failed = ObjectHeader::Failed(Status::NotFound);
    write(
        "protocol_wire",
        "header_failed",
        &[4],
        &enc(|o| failed.encode(o).expect("enc")),
    );
    let ack = Ack {
        status: Status::Success,
    };
    write(
        "protocol_wire",
        "ack",
        &[5],
        &enc(|o| ack.encode(o).expect("enc")),
    );
    let deleted = DeleteResult {
        status: Status::Success,
    };
    write(
        "protocol_wire",
        "delete",
        &[6],
        &enc(|o| deleted.encode(o).expect("enc")),
    );
    let trailer = DigestTrailer { xxh64: 0x1234 };
    write(
        "protocol_wire",
        "trailer",
        &[7],
        &enc(|o| trailer.encode(o).expect("enc")),
    );

    // protocol_legacy
    let legacy_sync = Request::Sync(peer_requests.clone());
    write(
        "protocol_legacy",
        "sync",
        &[0],
        &enc(|o| legacy_sync.encode_legacy(o).expect("enc")),
    );
    let copy = Request::Copy(vec![id(4), id(5)]);
    write(
        "protocol_legacy",
        "copy",
        &[1],
        &enc(|o| copy.encode_legacy(o).expect("enc")),
    );
    let take = Request::Take(vec![id(6)]);
    write(
        "protocol_legacy",
        "take",
        &[1],
        &enc(|o| take.encode_legacy(o).expect("enc")),
    );
    let reply = SyncReply {
        statuses: vec![Status::Success],
    };
    write(
        "protocol_legacy",
        "reply",
        &[2, 0],
        &enc(|o| reply.encode(o).expect("enc")),
    );
    write(
        "protocol_legacy",
        "transfer",
        &[3],
        &enc(|o| TransferReply::Begin.encode(o).expect("enc")),
    );
    let frame = FrameHeader {
        data_size: 1000,
        metadata_size: 4,
    };
    write(
        "protocol_legacy",
        "frame",
        &[4],
        &enc(|o| frame.encode(o).expect("enc")),
    );

    // protocol_grammar
    let lines = [
        "COPY 127.0.0.1:2022 0102030405060708090a0b0c0d0e0f1011121314",
        "take [::1]:2022 0102030405060708090a0b0c0d0e0f1011121314 ffffffffffffffffffffffffffffffffffffffff",
        "SYNC COPY 10.0.0.2:2021 0102030405060708090a0b0c0d0e0f1011121314 ; TAKE [fd00::3]:2021 1111111111111111111111111111111111111111",
    ];
    for (i, line) in lines.iter().enumerate() {
        write(
            "protocol_grammar",
            &format!("line{i}"),
            &[],
            line.as_bytes(),
        );
    }

    // plasma_messages and plasma_frame
    let sid = |n: u8| StoreId([n; 20]);
    let spec = ObjectSpec {
        segment_key: 1,
        data_offset: 64,
        data_size: 10,
        metadata_offset: 74,
        metadata_size: 2,
        device_num: 0,
    };
    let info = ObjectInfo {
        object_id: sid(3),
        data_size: 10,
        metadata_size: 2,
        ref_count: 1,
        create_time: 5,
        construct_duration: 6,
        digest: Some([7; 8]),
        is_deletion: false,
    };
    let bodies: Vec<(u8, MessageType, Vec<u8>)> = vec![
        (0, MessageType::ConnectRequest, ConnectRequest.encode()),
        (
            1,
            MessageType::ConnectReply,
            ConnectReply {
                memory_capacity: 1 << 30,
            }
            .encode(),
        ),
        (
            2,
            MessageType::CreateRequest,
            CreateRequest {
                object_id: sid(1),
                evict_if_full: true,
                data_size: 10,
                metadata_size: 2,
                device_num: 0,
            }
            .encode(),
        ),
        (
            3,
            MessageType::CreateReply,
            CreateReply {
                object_id: sid(1),
                object: spec,
                error: PlasmaError::Ok,
                store_fd: 3,
                mmap_size: 4096,
                ipc_handle: Some(vec![1, 2, 3]),
            }
            .encode(),
        ),
        (
            4,
            MessageType::CreateAndSealRequest,
            CreateAndSealRequest {
                object_id: sid(2),
                evict_if_full: false,
                data: b"hello".to_vec(),
                metadata: b"m".to_vec(),
                digest: [1; 8],
            }
            .encode(),
        ),
        (
            5,
            MessageType::CreateAndSealReply,
            CreateAndSealReply {
                error: PlasmaError::ObjectExists,
            }
            .encode(),
        ),
        (
            6,
            MessageType::CreateAndSealBatchRequest,
            CreateAndSealBatchRequest {
                object_ids: vec![sid(1), sid(2)],
                evict_if_full: false,
                data: vec![b"a".to_vec(), b"bc".to_vec()],
                metadata: vec![vec![], b"m".to_vec()],
                digests: vec![[1; 8], [2; 8]],
            }
            .encode(),
        ),
        (
            7,
            MessageType::CreateAndSealBatchReply,
            CreateAndSealBatchReply {
                error: PlasmaError::Ok,
            }
            .encode(),
        ),
        (
            8,
            MessageType::AbortRequest,
            AbortRequest { object_id: sid(4) }.encode(),
        ),
        (
            9,
            MessageType::AbortReply,
            AbortReply { object_id: sid(4) }.encode(),
        ),
        (
            10,
            MessageType::SealRequest,
            SealRequest {
                object_id: sid(5),
                digest: [9; 8],
            }
            .encode(),
        ),
        (
            11,
            MessageType::SealReply,
            SealReply {
                object_id: sid(5),
                error: PlasmaError::ObjectNotFound,
            }
            .encode(),
        ),
        (
            12,
            MessageType::GetRequest,
            GetRequest {
                object_ids: vec![sid(1), sid(2)],
                timeout_ms: -1,
            }
            .encode(),
        ),
        (
            13,
            MessageType::GetReply,
            GetReply {
                object_ids: vec![sid(1), sid(2)],
                objects: vec![spec, ObjectSpec::MISSING],
                store_fds: vec![3],
                mmap_sizes: vec![4096],
            }
            .encode(),
        ),
        (
            14,
            MessageType::ReleaseRequest,
            ReleaseRequest { object_id: sid(6) }.encode(),
        ),
        (
            15,
            MessageType::ReleaseReply,
            ReleaseReply {
                object_id: sid(6),
                error: PlasmaError::Ok,
            }
            .encode(),
        ),
        (
            16,
            MessageType::DeleteRequest,
            DeleteRequest {
                object_ids: vec![sid(7), sid(8)],
            }
            .encode(),
        ),
        (
            17,
            MessageType::DeleteReply,
            DeleteReply {
                object_ids: vec![sid(7), sid(8)],
                errors: vec![PlasmaError::Ok, PlasmaError::ObjectInUse],
            }
            .encode(),
        ),
        (
            18,
            MessageType::ContainsRequest,
            ContainsRequest { object_id: sid(9) }.encode(),
        ),
        (
            19,
            MessageType::ContainsReply,
            ContainsReply {
                object_id: sid(9),
                has_object: true,
            }
            .encode(),
        ),
        (20, MessageType::ListRequest, ListRequest.encode()),
        (
            21,
            MessageType::ListReply,
            ListReply {
                objects: vec![
                    info.clone(),
                    ObjectInfo {
                        digest: None,
                        ..info.clone()
                    },
                ],
            }
            .encode(),
        ),
        (
            22,
            MessageType::Notification,
            Notification {
                object_info: vec![ObjectInfo {
                    digest: None,
                    is_deletion: true,
                    ..info.clone()
                }],
            }
            .encode(),
        ),
        (
            23,
            MessageType::EvictRequest,
            EvictRequest { num_bytes: 1000 }.encode(),
        ),
        (
            24,
            MessageType::EvictReply,
            EvictReply { num_bytes: 999 }.encode(),
        ),
        (25, MessageType::SubscribeRequest, SubscribeRequest.encode()),
        (
            26,
            MessageType::SetOptionsRequest,
            SetOptionsRequest {
                client_name: b"fuzz".to_vec(),
                output_memory_quota: 100,
            }
            .encode(),
        ),
        (
            27,
            MessageType::SetOptionsReply,
            SetOptionsReply {
                error: PlasmaError::OutOfMemory,
            }
            .encode(),
        ),
        (
            28,
            MessageType::GetDebugStringRequest,
            GetDebugStringRequest.encode(),
        ),
        (
            29,
            MessageType::GetDebugStringReply,
            GetDebugStringReply {
                debug_string: "debug".into(),
            }
            .encode(),
        ),
        (
            30,
            MessageType::RefreshLRURequest,
            RefreshLruRequest {
                object_ids: vec![sid(1)],
            }
            .encode(),
        ),
        (31, MessageType::RefreshLRUReply, RefreshLruReply.encode()),
    ];
    for (selector, kind, body) in &bodies {
        write("plasma_messages", &format!("{kind:?}"), &[*selector], body);
        // The dispatcher arm (selector 32) takes the wire type next.
        write(
            "plasma_messages",
            &format!("dispatch_{kind:?}"),
            &[32, kind.to_wire() as u8],
            body,
        );
        let mut frame = Vec::new();
        write_frame(&mut frame, *kind, body).expect("frame");
        write("plasma_frame", &format!("{kind:?}"), &[20], &frame);
    }
}
