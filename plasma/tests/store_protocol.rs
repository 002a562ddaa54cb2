//! Requests pyarrow's Python API never sends (so the interop suite cannot cover them), checked
//! on the raw socket: CreateAndSealBatch, Abort, RefreshLRU, Evict, SetOptions,
//! GetDebugString, and Subscribe with its notification framing.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plasma_store::store::{EmbeddedStore, StoreConfig};
use plasma_store::wire::fd_passing::{recv_fd, send_fd};
use plasma_store::wire::messages::{self, Message, PlasmaError};
use plasma_store::wire::{read_frame, write_frame};
use plasma_store::ObjectId;

struct TestStore {
    _store: EmbeddedStore,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(capacity: u64) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plasma.sock");
    let store = EmbeddedStore::start(StoreConfig::new(&path, capacity)).unwrap();
    TestStore {
        _store: store,
        path,
        _dir: dir,
    }
}

fn oid(n: u8) -> ObjectId {
    ObjectId([n; 20])
}

struct Raw(UnixStream);

impl Raw {
    fn connect(path: &Path) -> Raw {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Raw(s);
        let _: messages::ConnectReply = raw.call(&messages::ConnectRequest);
        raw
    }
    fn send<M: Message>(&mut self, m: &M) {
        write_frame(&mut self.0, M::TYPE, &m.encode()).unwrap();
    }
    fn recv<R: Message>(&mut self) -> R {
        let frame = read_frame(&mut self.0, 1 << 20).unwrap();
        assert_eq!(frame.kind, R::TYPE, "reply type");
        R::decode(&frame.body).unwrap()
    }
    fn call<M: Message, R: Message>(&mut self, m: &M) -> R {
        self.send(m);
        self.recv()
    }
    fn contains(&mut self, id: ObjectId) -> bool {
        let r: messages::ContainsReply = self.call(&messages::ContainsRequest { object_id: id });
        r.has_object
    }
}

#[test]
fn batch_abort_refresh_lru_evict_options_debug_string() {
    let t = start(1 << 20);
    let mut c = Raw::connect(&t.path);
    let r: messages::CreateAndSealBatchReply = c.call(&messages::CreateAndSealBatchRequest {
        object_ids: vec![oid(1), oid(2), oid(3)],
        evict_if_full: false,
        data: vec![vec![1; 100], vec![2; 100], vec![3; 100]],
        metadata: vec![vec![], b"m".to_vec(), vec![]],
        digests: vec![[0; 8]; 3],
    });
    assert_eq!(r.error, PlasmaError::Ok);
    assert!(c.contains(oid(1)) && c.contains(oid(2)) && c.contains(oid(3)));
    // A batch that cannot fit creates nothing.
    let r: messages::CreateAndSealBatchReply = c.call(&messages::CreateAndSealBatchRequest {
        object_ids: vec![oid(4), oid(5)],
        evict_if_full: false,
        data: vec![vec![4; 10], vec![5; 1 << 20]],
        metadata: vec![vec![], vec![]],
        digests: vec![[0; 8]; 2],
    });
    assert_eq!(r.error, PlasmaError::OutOfMemory);
    assert!(!c.contains(oid(4)));
    // RefreshLRU moves 1 (the oldest) to the most recently used end.
    let _: messages::RefreshLruReply = c.call(&messages::RefreshLruRequest {
        object_ids: vec![oid(1)],
    });
    let r: messages::EvictReply = c.call(&messages::EvictRequest { num_bytes: 150 });
    assert_eq!(r.num_bytes, 201, "evicts 2 (101 bytes) then 3 (100 bytes)");
    assert!(c.contains(oid(1)) && !c.contains(oid(2)) && !c.contains(oid(3)));
    // Abort of our own unsealed object.
    let r: messages::CreateReply = c.call(&messages::CreateRequest {
        object_id: oid(6),
        evict_if_full: true,
        data_size: 10,
        metadata_size: 0,
        device_num: 0,
    });
    assert_eq!(r.error, PlasmaError::Ok);
    assert_eq!(r.mmap_size as u64 % 4096, 8);
    assert_eq!(r.object.metadata_offset, r.object.data_offset + 10);
    assert_eq!(r.object.data_offset % 64, 0);
    recv_fd(&c.0).unwrap();
    let r: messages::AbortReply = c.call(&messages::AbortRequest { object_id: oid(6) });
    assert_eq!(r.object_id, oid(6));
    let r: messages::ListReply = c.call(&messages::ListRequest);
    assert_eq!(r.objects.len(), 1);
    // Device objects do not exist on this store.
    let r: messages::CreateReply = c.call(&messages::CreateRequest {
        object_id: oid(7),
        evict_if_full: true,
        data_size: 10,
        metadata_size: 0,
        device_num: 1,
    });
    assert_eq!(r.error, PlasmaError::OutOfMemory);
    let r: messages::SetOptionsReply = c.call(&messages::SetOptionsRequest {
        client_name: b"test".to_vec(),
        output_memory_quota: 1000,
    });
    assert_eq!(r.error, PlasmaError::Ok);
    let r: messages::GetDebugStringReply = c.call(&messages::GetDebugStringRequest);
    assert!(
        r.debug_string.contains("capacity: 1048576"),
        "{}",
        r.debug_string
    );
}

fn read_notification(s: &mut UnixStream) -> messages::Notification {
    let mut len = [0u8; 8];
    s.read_exact(&mut len).unwrap();
    let len = i64::from_ne_bytes(len);
    assert!((0..1 << 20).contains(&len));
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).unwrap();
    messages::Notification::decode(&body).unwrap()
}

#[test]
fn subscribe_announces_existing_then_seals_and_deletions() {
    let t = start(1 << 20);
    let mut c = Raw::connect(&t.path);
    let r: messages::CreateAndSealReply = c.call(&messages::CreateAndSealRequest {
        object_id: oid(1),
        evict_if_full: true,
        data: b"existing".to_vec(),
        metadata: b"m".to_vec(),
        digest: [5; 8],
    });
    assert_eq!(r.error, PlasmaError::Ok);
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut watcher = Raw::connect(&t.path);
    watcher.send(&messages::SubscribeRequest);
    send_fd(&watcher.0, theirs.as_fd()).unwrap();
    drop(theirs);
    let n = read_notification(&mut ours);
    assert_eq!(n.object_info.len(), 1);
    assert_eq!(n.object_info[0].object_id, oid(1));
    assert_eq!(n.object_info[0].data_size, 8);
    assert_eq!(n.object_info[0].metadata_size, 1);
    assert_eq!(n.object_info[0].digest, Some([5; 8]));
    // A batch seal: one notification listing both.
    let r: messages::CreateAndSealBatchReply = c.call(&messages::CreateAndSealBatchRequest {
        object_ids: vec![oid(2), oid(3)],
        evict_if_full: true,
        data: vec![vec![2; 3], vec![3; 4]],
        metadata: vec![vec![], vec![]],
        digests: vec![[2; 8], [3; 8]],
    });
    assert_eq!(r.error, PlasmaError::Ok);
    let n = read_notification(&mut ours);
    let ids: Vec<ObjectId> = n.object_info.iter().map(|i| i.object_id).collect();
    assert_eq!(ids, vec![oid(2), oid(3)]);
    let r: messages::DeleteReply = c.call(&messages::DeleteRequest {
        object_ids: vec![oid(2)],
    });
    assert_eq!(r.errors, vec![PlasmaError::Ok]);
    let n = read_notification(&mut ours);
    assert_eq!(n.object_info[0].object_id, oid(2));
    assert!(n.object_info[0].is_deletion);
    // The watcher's own connection is still served (no reply was sent to Subscribe).
    assert!(watcher.contains(oid(1)));
    // When the watcher disconnects, the store closes its notification socket.
    drop(watcher);
    let mut rest = Vec::new();
    ours.read_to_end(&mut rest).unwrap();
}
