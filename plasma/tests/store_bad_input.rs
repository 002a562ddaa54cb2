//! Hostile and broken input on the embedded store's socket (raw frames, no pyarrow). Each case
//! that would abort pyarrow's real `plasma_store` must only close the offending connection, or
//! be answered with an error code 0..3; afterwards another client must still be served.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plasma_store::store::{EmbeddedStore, StoreConfig};
use plasma_store::wire::fd_passing::recv_fd;
use plasma_store::wire::messages::{self, Message, PlasmaError};
use plasma_store::wire::{read_frame, write_frame};
use plasma_store::ObjectId;

/// Field order matters: the store stops before its directory is removed.
struct TestStore {
    _store: EmbeddedStore,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn start() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plasma.sock");
    let store = EmbeddedStore::start(StoreConfig::new(&path, 10 << 20)).unwrap();
    TestStore {
        _dir: dir,
        path,
        _store: store,
    }
}

fn oid(n: u8) -> ObjectId {
    ObjectId([n; 20])
}

/// A raw protocol client.
struct Raw(UnixStream);

impl Raw {
    fn connect(path: &Path) -> Raw {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Raw(s);
        let reply: messages::ConnectReply = raw.call(&messages::ConnectRequest);
        assert_eq!(reply.memory_capacity, 10 << 20);
        raw
    }

    fn send<M: Message>(&mut self, m: &M) {
        write_frame(&mut self.0, M::TYPE, &m.encode()).unwrap();
    }

    fn send_raw(&mut self, kind: i64, body: &[u8]) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&0i64.to_le_bytes());
        frame.extend_from_slice(&kind.to_le_bytes());
        frame.extend_from_slice(&(body.len() as i64).to_le_bytes());
        frame.extend_from_slice(body);
        self.0.write_all(&frame).unwrap();
    }

    fn recv<R: Message>(&mut self) -> R {
        let frame = read_frame(&mut self.0, 1 << 20).unwrap();
        assert_eq!(frame.kind, R::TYPE);
        R::decode(&frame.body).unwrap()
    }

    fn call<M: Message, R: Message>(&mut self, m: &M) -> R {
        self.send(m);
        self.recv()
    }

    /// The store closed this connection: reads hit EOF (or a reset) promptly.
    fn assert_closed(mut self) {
        let start = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("connection not closed: {e}"),
            }
            assert!(start.elapsed() < Duration::from_secs(10), "not closed");
        }
    }
}

/// A fresh client can still create, seal, get (receiving the arena fd) and read back.
fn assert_store_works(path: &Path) {
    let mut c = Raw::connect(path);
    let id = ObjectId(rand_id());
    let reply: messages::CreateAndSealReply = c.call(&messages::CreateAndSealRequest {
        object_id: id,
        evict_if_full: true,
        data: b"still alive".to_vec(),
        metadata: b"m".to_vec(),
        digest: [1; 8],
    });
    assert_eq!(reply.error, PlasmaError::Ok);
    let reply: messages::GetReply = c.call(&messages::GetRequest {
        object_ids: vec![id],
        timeout_ms: 0,
    });
    assert_eq!(reply.store_fds.len(), 1);
    let fd = recv_fd(&c.0).unwrap();
    let spec = reply.objects[0];
    let map = unsafe {
        memmap2::MmapOptions::new()
            .len((reply.mmap_sizes[0] - 8) as usize)
            .map(&std::fs::File::from(fd))
            .unwrap()
    };
    let start = spec.data_offset as usize;
    assert_eq!(&map[start..start + 11], b"still alive");
    assert_eq!(spec.metadata_offset, spec.data_offset + 11);
}

fn rand_id() -> [u8; 20] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut id = [0xAAu8; 20];
    let n = N.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() as u64) << 32;
    id[..8].copy_from_slice(&n.to_le_bytes());
    id
}

fn header(version: i64, kind: i64, len: i64) -> Vec<u8> {
    [version, kind, len]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

#[test]
fn version_other_than_zero_closes_only_that_connection() {
    let t = start();
    let mut c = Raw::connect(&t.path);
    c.0.write_all(&header(1, 19, 0)).unwrap();
    c.assert_closed();
    assert_store_works(&t.path);
}

#[test]
fn unknown_and_reserved_message_types_close_the_connection() {
    let t = start();
    // 0 DisconnectClient, 12 ReleaseReply, 24 Unsubscribe, 25/26 Data*, 27 Notification,
    // a reply type sent as a request, and types Arrow 11 never defined.
    for kind in [0i64, 12, 24, 25, 26, 27, 2, 36, 99, -1, i64::MAX] {
        let mut c = Raw::connect(&t.path);
        c.send_raw(kind, &messages::ConnectRequest.encode());
        c.assert_closed();
        assert_store_works(&t.path);
    }
}

#[test]
fn release_of_an_object_not_held_closes_the_connection() {
    let t = start();
    let mut c = Raw::connect(&t.path);
    c.send(&messages::ReleaseRequest { object_id: oid(1) });
    c.assert_closed();
    // Also for an object that exists but this connection does not hold.
    let mut owner = Raw::connect(&t.path);
    let r: messages::CreateAndSealReply = owner.call(&messages::CreateAndSealRequest {
        object_id: oid(2),
        evict_if_full: true,
        data: b"x".to_vec(),
        metadata: vec![],
        digest: [0; 8],
    });
    assert_eq!(r.error, PlasmaError::Ok);
    let mut c = Raw::connect(&t.path);
    c.send(&messages::ReleaseRequest { object_id: oid(2) });
    c.assert_closed();
    let r: messages::ContainsReply = owner.call(&messages::ContainsRequest { object_id: oid(2) });
    assert!(r.has_object);
    assert_store_works(&t.path);
}

#[test]
fn seal_of_an_unknown_id_is_an_error_reply() {
    let t = start();
    let mut c = Raw::connect(&t.path);
    let r: messages::SealReply = c.call(&messages::SealRequest {
        object_id: oid(1),
        digest: [0; 8],
    });
    assert_eq!(r.error, PlasmaError::ObjectNotFound);
    assert_eq!(r.object_id, oid(1));
    // The same connection keeps working.
    let r: messages::ContainsReply = c.call(&messages::ContainsRequest { object_id: oid(1) });
    assert!(!r.has_object);
    assert_store_works(&t.path);
}

/// A SealRequest with a digest of the given length, built by hand (our encoder only makes
/// 8-byte digests).
fn seal_with_digest(id: ObjectId, digest: &[u8]) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let id = fbb.create_vector(id.as_bytes());
    let digest = fbb.create_vector(digest);
    let start = fbb.start_table();
    fbb.push_slot_always(4, id);
    fbb.push_slot_always(6, digest);
    let root = fbb.end_table(start);
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

#[test]
fn digest_not_eight_bytes_closes_the_connection_and_keeps_the_object_unsealed() {
    let t = start();
    for len in [0usize, 5, 9, 64] {
        let mut c = Raw::connect(&t.path);
        let r: messages::CreateReply = c.call(&messages::CreateRequest {
            object_id: oid(len as u8),
            evict_if_full: true,
            data_size: 4,
            metadata_size: 0,
            device_num: 0,
        });
        assert_eq!(r.error, PlasmaError::Ok);
        let _fd = if len == 0 {
            Some(recv_fd(&c.0).unwrap())
        } else {
            None
        };
        c.send_raw(7, &seal_with_digest(oid(len as u8), &vec![0u8; len]));
        c.assert_closed();
        let mut other = Raw::connect(&t.path);
        let r: messages::ContainsReply = other.call(&messages::ContainsRequest {
            object_id: oid(len as u8),
        });
        assert!(!r.has_object, "never sealed, and freed with its creator");
        assert_store_works(&t.path);
    }
}

#[test]
fn abort_of_a_sealed_object_or_by_another_connection_closes_the_connection() {
    let t = start();
    let mut owner = Raw::connect(&t.path);
    let r: messages::CreateReply = owner.call(&messages::CreateRequest {
        object_id: oid(1),
        evict_if_full: true,
        data_size: 4,
        metadata_size: 0,
        device_num: 0,
    });
    assert_eq!(r.error, PlasmaError::Ok);
    let _fd = recv_fd(&owner.0).unwrap();
    // Another connection aborts the owner's unsealed object.
    let mut thief = Raw::connect(&t.path);
    thief.send(&messages::AbortRequest { object_id: oid(1) });
    thief.assert_closed();
    // The owner still has it, seals it, then tries to abort the sealed object.
    let r: messages::SealReply = owner.call(&messages::SealRequest {
        object_id: oid(1),
        digest: [3; 8],
    });
    assert_eq!(r.error, PlasmaError::Ok);
    owner.send(&messages::AbortRequest { object_id: oid(1) });
    owner.assert_closed();
    let mut c = Raw::connect(&t.path);
    let r: messages::ContainsReply = c.call(&messages::ContainsRequest { object_id: oid(1) });
    assert!(r.has_object, "the sealed object survives the bad abort");
    assert_store_works(&t.path);
}

#[test]
fn truncated_frames_close_the_connection() {
    let t = start();
    // Half a header.
    let mut c = Raw::connect(&t.path);
    c.0.write_all(&header(0, 19, 0)[..13]).unwrap();
    c.0.shutdown(std::net::Shutdown::Write).unwrap();
    c.assert_closed();
    // A header announcing 100 body bytes, then 10 and EOF.
    let mut c = Raw::connect(&t.path);
    let mut frame = header(0, 1, 100);
    frame.extend_from_slice(&[0u8; 10]);
    c.0.write_all(&frame).unwrap();
    c.0.shutdown(std::net::Shutdown::Write).unwrap();
    c.assert_closed();
    assert_store_works(&t.path);
}

#[test]
fn length_field_far_larger_than_the_frame_is_refused() {
    let t = start();
    for len in [1i64 << 40, i64::MAX, -1, -(1 << 40)] {
        let mut c = Raw::connect(&t.path);
        let mut frame = header(0, 1, len);
        frame.extend_from_slice(&messages::ConnectRequest.encode());
        c.0.write_all(&frame).unwrap();
        c.assert_closed();
    }
    // A plausible length (below the limit) with a short body: only that connection waits.
    let mut c = Raw::connect(&t.path);
    let mut frame = header(0, 1, 5 << 20);
    frame.extend_from_slice(b"abc");
    c.0.write_all(&frame).unwrap();
    assert_store_works(&t.path);
    drop(c);
    assert_store_works(&t.path);
}

#[test]
fn garbage_bodies_and_short_ids_close_the_connection() {
    let t = start();
    let mut c = Raw::connect(&t.path);
    c.send_raw(1, b"\xff\xff\xff\xff garbage flatbuffer");
    c.assert_closed();
    // A CreateRequest whose object id is 5 bytes.
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let id = fbb.create_vector(&[1u8; 5]);
    let start_t = fbb.start_table();
    fbb.push_slot_always(4, id);
    let root = fbb.end_table(start_t);
    fbb.finish_minimal(root);
    let mut c = Raw::connect(&t.path);
    c.send_raw(1, fbb.finished_data());
    c.assert_closed();
    assert_store_works(&t.path);
}

#[test]
fn a_blocked_get_does_not_block_its_connection_or_others() {
    let t = start();
    let mut waiter = Raw::connect(&t.path);
    waiter.send(&messages::GetRequest {
        object_ids: vec![oid(9)],
        timeout_ms: -1,
    });
    // The same connection is still served meanwhile.
    let r: messages::ContainsReply = waiter.call(&messages::ContainsRequest { object_id: oid(9) });
    assert!(!r.has_object);
    assert_store_works(&t.path);
    // Another connection seals the object: the pending Get is answered, with the fd.
    let mut sealer = Raw::connect(&t.path);
    let r: messages::CreateAndSealReply = sealer.call(&messages::CreateAndSealRequest {
        object_id: oid(9),
        evict_if_full: true,
        data: b"late".to_vec(),
        metadata: vec![],
        digest: [0; 8],
    });
    assert_eq!(r.error, PlasmaError::Ok);
    let reply: messages::GetReply = waiter.recv();
    assert_eq!(reply.objects[0].data_size, 4);
    assert_eq!(reply.store_fds.len(), 1);
    recv_fd(&waiter.0).unwrap();
    // A Get with a timeout answers "missing" at the deadline.
    let start = Instant::now();
    let reply: messages::GetReply = waiter.call(&messages::GetRequest {
        object_ids: vec![oid(10)],
        timeout_ms: 100,
    });
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(reply.objects[0].is_missing());
    assert!(reply.store_fds.is_empty());
}

#[test]
fn disconnect_with_pending_gets_and_unsealed_objects_is_clean() {
    let t = start();
    let mut c = Raw::connect(&t.path);
    for _ in 0..3 {
        c.send(&messages::GetRequest {
            object_ids: vec![oid(7)],
            timeout_ms: -1,
        });
    }
    c.send(&messages::CreateRequest {
        object_id: oid(8),
        evict_if_full: true,
        data_size: 100,
        metadata_size: 0,
        device_num: 0,
    });
    let _: messages::CreateReply = c.recv();
    drop(c);
    std::thread::sleep(Duration::from_millis(100));
    let mut other = Raw::connect(&t.path);
    let r: messages::CreateReply = other.call(&messages::CreateRequest {
        object_id: oid(8),
        evict_if_full: true,
        data_size: 100,
        metadata_size: 0,
        device_num: 0,
    });
    assert_eq!(
        r.error,
        PlasmaError::Ok,
        "the disconnected client's object was freed"
    );
    assert_store_works(&t.path);
}

#[test]
fn a_client_that_stops_reading_stalls_nobody_else() {
    let t = start();
    let mut lazy = Raw::connect(&t.path);
    lazy.send(&messages::GetRequest {
        object_ids: vec![oid(42)],
        timeout_ms: -1,
    });
    // Pipeline far more requests than the socket buffers hold, reading none of the replies:
    // the store's writer for this connection blocks.
    lazy.0.set_nonblocking(true).unwrap();
    let request = {
        let mut frame = Vec::new();
        write_frame(
            &mut frame,
            messages::ContainsRequest::TYPE,
            &messages::ContainsRequest { object_id: oid(1) }.encode(),
        )
        .unwrap();
        frame
    };
    let mut sent = 0usize;
    let started = Instant::now();
    while sent < 50_000 && started.elapsed() < Duration::from_secs(5) {
        match lazy.0.write(&request) {
            Ok(n) if n == request.len() => sent += 1,
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    // Sealing the object the lazy client waits for completes promptly for the sealer...
    let mut sealer = Raw::connect(&t.path);
    let begin = Instant::now();
    let r: messages::CreateAndSealReply = sealer.call(&messages::CreateAndSealRequest {
        object_id: oid(42),
        evict_if_full: true,
        data: b"x".to_vec(),
        metadata: vec![],
        digest: [0; 8],
    });
    assert_eq!(r.error, PlasmaError::Ok);
    assert!(
        begin.elapsed() < Duration::from_secs(2),
        "sealer was stalled"
    );
    // ...and timed Gets of other clients still expire on time.
    let begin = Instant::now();
    let r: messages::GetReply = sealer.call(&messages::GetRequest {
        object_ids: vec![oid(43)],
        timeout_ms: 100,
    });
    assert!(r.objects[0].is_missing());
    assert!(begin.elapsed() < Duration::from_secs(2));
    assert_store_works(&t.path);
}
