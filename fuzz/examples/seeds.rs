//! Writes a seed corpus of valid messages for every fuzz target into `fuzz/corpus/<target>/`:
//! a fuzzer that starts from valid FlatBuffers and frames reaches the decoders' deeper paths
//! (field checks, round trips) in seconds instead of hours.
//!
//! `cargo +nightly run --example seeds` (from `fuzz/`), or `… -- DIR` to write
//! `DIR/<target>/` instead (CI fuzzes from a temporary directory). Each seed starts with the
//! selector byte its target expects.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use plasma_store::wire::frame::write_frame;
use plasma_store::wire::messages::*;
use plasma_store::wire::MessageType;
use plasma_store::ObjectId as StoreId;
use plasma_stream_fuzz::stream::Input;
use plasma_stream_protocol::legacy::{FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::wire::{
    Ack, DeleteResult, DigestTrailer, ObjectHeader, ObjectOutcome, ObjectRequest, PeerReport,
    SyncReport, SyncRequest,
};
use plasma_stream_protocol::{ObjectId, PeerRequest, Request, Status, TransferKind};

/// Where the corpus goes: the first argument, else `corpus/` (what `cargo fuzz run` reads).
static CORPUS: OnceLock<PathBuf> = OnceLock::new();

fn write(target: &str, name: &str, selector: &[u8], body: &[u8]) {
    let corpus = CORPUS.get_or_init(|| {
        std::env::args_os()
            .nth(1)
            .map_or_else(|| PathBuf::from("corpus"), PathBuf::from)
    });
    let dir = corpus.join(target);
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

/// Seeds for a `*_reader` target: one stream under a few cut patterns (byte by byte, a
/// fixed small piece, and pieces of mixed sizes that straddle message boundaries).
fn write_reader(target: &str, name: &str, selector: u8, param: u8, stream: &[u8]) {
    let cuts: [(&str, &[u8]); 3] = [
        ("bytes", &[]),
        ("by7", &[6]),
        ("mixed", &[0, 30, 2, 255, 12]),
    ];
    for (cut, lengths) in cuts {
        let input = Input {
            selector,
            param,
            lengths,
            stream,
        };
        write(target, &format!("{name}_{cut}"), &[], &input.to_bytes());
    }
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

    // protocol_wire_reader, server side (selector 0): a SYNC, then a TAKE and a COPY with
    // their acknowledgements, as a TCP stream carries them one after the other.
    let success = Ack {
        status: Status::Success,
    };
    let mut server = enc(|o| sync.encode(o).expect("enc"));
    for request in [object, ObjectRequest::new(TransferKind::Copy, id(8))] {
        request.encode(&mut server).expect("enc");
        success.encode(&mut server).expect("enc");
    }
    write_reader("protocol_wire_reader", "server", 0, 0, &server);
    // A SYNC naming one ID twice: well formed, refused with 0x80 for each declared peer
    // request (the server's refusal report).
    let twice = SyncRequest::new(vec![
        PeerRequest::new(TransferKind::Copy, v4, vec![id(1)]),
        PeerRequest::new(TransferKind::Take, v6, vec![id(2)]),
    ])
    .expect("valid");
    let mut refused = enc(|o| twice.encode(o).expect("enc"));
    let last = refused.len() - ObjectId::LEN;
    refused[last..].copy_from_slice(id(1).as_bytes());
    write_reader("protocol_wire_reader", "server_refused", 0, 0, &refused);
    // Puller side (selector 1; bit 3 digest trailer, bit 4 TAKE): a whole object with its
    // trailer and delete result, a refused one, an empty one.
    let mut puller = enc(|o| {
        ObjectHeader::Begin {
            data_size: 5,
            metadata_size: 2,
            offset: 0,
        }
        .encode(o)
        .expect("enc")
    });
    puller.extend_from_slice(b"mmdata");
    puller.push(b'!');
    trailer.encode(&mut puller).expect("enc");
    deleted.encode(&mut puller).expect("enc");
    failed.encode(&mut puller).expect("enc");
    ObjectHeader::begin(0, 0).encode(&mut puller).expect("enc");
    trailer.encode(&mut puller).expect("enc");
    deleted.encode(&mut puller).expect("enc");
    write_reader(
        "protocol_wire_reader",
        "puller_take",
        1 | 0x08 | 0x10,
        0,
        &puller,
    );
    let mut copy_puller = enc(|o| header.encode(o).expect("enc"));
    copy_puller.extend_from_slice(&[7; 93]);
    failed.encode(&mut copy_puller).expect("enc");
    write_reader("protocol_wire_reader", "puller_copy", 1, 0, &copy_puller);
    // Client side (selector 2): two reports on one recycled stream.
    let mut reports = enc(|o| report.encode(o).expect("enc"));
    SyncReport::refused(3, Status::AlreadyReceiving)
        .encode(&mut reports)
        .expect("enc");
    write_reader("protocol_wire_reader", "client", 2, 0, &reports);

    // protocol_legacy_reader, server side (selector 0): three requests on one connection.
    let mut requests = enc(|o| legacy_sync.encode_legacy(o).expect("enc"));
    copy.encode_legacy(&mut requests).expect("enc");
    take.encode_legacy(&mut requests).expect("enc");
    write_reader("protocol_legacy_reader", "server", 0, 0, &requests);
    // A client's SYNC replies (selector 1: param + 1 peer requests each), two SYNCs.
    let replies = enc(|o| {
        for _ in 0..2 {
            SyncReply {
                statuses: vec![Status::Success, Status::PeerConnectionFailed],
            }
            .encode(o)
            .expect("enc")
        }
    });
    write_reader("protocol_legacy_reader", "sync_reply", 1, 1, &replies);
    // A client's COPY/TAKE of 2 IDs (selector 2, param 2): BEGIN and two frames, then the
    // next request's reply, an error (after which the server closes).
    let mut transfer = enc(|o| TransferReply::Begin.encode(o).expect("enc"));
    FrameHeader {
        data_size: 3,
        metadata_size: 1,
    }
    .encode(&mut transfer)
    .expect("enc");
    transfer.extend_from_slice(b"mabc");
    FrameHeader {
        data_size: 1,
        metadata_size: 0,
    }
    .encode(&mut transfer)
    .expect("enc");
    transfer.push(b'x');
    TransferReply::Failed(Status::NotFound)
        .encode(&mut transfer)
        .expect("enc");
    write_reader("protocol_legacy_reader", "transfer", 2, 2, &transfer);

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
