//! Unit tests of the store state and the in-process handle (no sockets).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::state::{
    CreateError, DeleteStatus, GetDeadline, GetOutcome, Limits, MisuseError, ObjectInfo,
    ObjectLocation, StoreState,
};
use super::{parse_size, EmbeddedStore, StoreConfig};
use crate::{DeleteOutcome, ObjectId, ObjectStore};

fn oid(n: u8) -> ObjectId {
    ObjectId([n; 20])
}

fn no_notes(_: &[ObjectInfo]) -> Vec<u8> {
    Vec::new()
}

fn state(capacity: u64, arena_size: u64) -> StoreState {
    StoreState::new(
        Limits {
            capacity,
            arena_size,
            resident: false,
        },
        no_notes,
    )
    .unwrap()
}

fn get_now(s: &mut StoreState, client: u64, ids: Vec<ObjectId>) -> Vec<Option<ObjectLocation>> {
    let (tx, rx) = mpsc::channel();
    match s.get(
        client,
        ids,
        GetDeadline::Now,
        Box::new(move |r| tx.send(r).unwrap()),
    ) {
        GetOutcome::Ready(c) => c.deliver(),
        GetOutcome::Waiting(_) => panic!("Now must not wait"),
    }
    rx.recv().unwrap()
}

#[test]
fn create_seal_get_release_lifecycle() {
    let mut s = state(1 << 20, 1 << 20);
    s.connect(1);
    s.connect(2);
    let loc = s.create(1, oid(1), 100, 10, true).unwrap();
    assert_eq!(loc.offset % 64, 0);
    assert_eq!(
        s.create(2, oid(1), 1, 1, true).unwrap_err(),
        CreateError::Exists
    );
    assert!(!s.contains(&oid(1)));
    // Unsealed objects are never returned.
    assert!(get_now(&mut s, 2, vec![oid(1)])[0].is_none());
    // Only the creator may seal.
    assert!(s.seal(2, oid(1), [0; 8]).is_err());
    s.seal(1, oid(1), [1; 8]).unwrap();
    assert!(s.contains(&oid(1)));
    let got = get_now(&mut s, 2, vec![oid(1), oid(9), oid(1)]);
    assert!(got[0].is_some() && got[1].is_none() && got[2].is_some());
    let info = s.list().into_iter().find(|i| i.id == oid(1)).unwrap();
    assert_eq!(info.ref_count, 2);
    assert_eq!(info.digest, Some([1; 8]));
    assert_eq!((info.data_size, info.metadata_size), (100, 10));
    // A socket client holds one reference however many Gets it made.
    s.release(2, oid(1)).unwrap();
    assert_eq!(s.release(2, oid(1)), Err(MisuseError::NotHeld));
    s.release(1, oid(1)).unwrap();
    assert_eq!(s.evict(1), 110);
    assert!(!s.contains(&oid(1)));
    assert_eq!(s.allocated(), 0);
}

#[test]
fn delete_is_scheduled_while_in_use_or_unsealed() {
    let mut s = state(1 << 20, 1 << 20);
    s.connect(1);
    s.create(1, oid(1), 10, 0, true).unwrap();
    s.create(1, oid(2), 10, 0, true).unwrap();
    s.seal(1, oid(2), [0; 8]).unwrap();
    assert_eq!(
        s.delete(&[oid(1), oid(2), oid(3)]),
        vec![
            DeleteStatus::NotSealed,
            DeleteStatus::InUse,
            DeleteStatus::NotFound
        ]
    );
    assert!(s.contains(&oid(2)));
    s.release(1, oid(2)).unwrap();
    assert!(!s.contains(&oid(2)), "deleted at the last release");
    s.seal(1, oid(1), [0; 8]).unwrap();
    s.release(1, oid(1)).unwrap();
    assert!(!s.contains(&oid(1)));
    assert_eq!(s.allocated(), 0);
}

#[test]
fn abort_rules_and_disconnect_cleanup() {
    let mut s = state(1 << 20, 1 << 20);
    s.connect(1);
    s.connect(2);
    s.create(1, oid(1), 10, 0, true).unwrap();
    assert_eq!(s.abort(2, oid(1)), Err(MisuseError::NotCreator));
    s.abort(1, oid(1)).unwrap();
    assert_eq!(s.abort(1, oid(1)), Err(MisuseError::NotFound));
    s.create(1, oid(2), 10, 0, true).unwrap();
    s.seal(1, oid(2), [0; 8]).unwrap();
    assert_eq!(s.abort(1, oid(2)), Err(MisuseError::Sealed));
    s.create(1, oid(3), 10, 0, true).unwrap();
    get_now(&mut s, 2, vec![oid(2)]);
    s.disconnect(1);
    // The unsealed object is gone; the sealed one is still held by client 2.
    assert_eq!(s.list().len(), 1);
    assert_eq!(s.list()[0].ref_count, 1);
    s.disconnect(2);
    assert_eq!(s.list()[0].ref_count, 0);
    assert_eq!(s.evict(u64::MAX), 10);
}

#[test]
fn eviction_frees_oldest_released_first_at_least_a_fifth() {
    // 10 × 900 kB in a 10 MB store; a 2 MB create evicts exactly the 3 oldest (§5).
    let mut s = state(10_000_000, 10_000_000);
    s.connect(1);
    for i in 0..10 {
        s.create(1, oid(i), 900_000, 0, true).unwrap();
        s.seal(1, oid(i), [0; 8]).unwrap();
        s.release(1, oid(i)).unwrap();
    }
    assert_eq!(
        s.create(1, oid(100), 2_000_000, 0, false).unwrap_err(),
        CreateError::OutOfMemory
    );
    s.create(1, oid(100), 2_000_000, 0, true).unwrap();
    let left: Vec<u8> = (0..10).filter(|&i| s.contains(&oid(i))).collect();
    assert_eq!(left, (3..10).collect::<Vec<_>>());
    // Larger than the capacity: never.
    assert_eq!(
        s.create(1, oid(101), 10_000_001, 0, true).unwrap_err(),
        CreateError::OutOfMemory
    );
}

#[test]
fn refresh_lru_protects_an_object() {
    let mut s = state(1 << 20, 1 << 20);
    s.connect(1);
    for i in 0..3 {
        s.create(1, oid(i), 100, 0, true).unwrap();
        s.seal(1, oid(i), [0; 8]).unwrap();
        s.release(1, oid(i)).unwrap();
    }
    s.refresh_lru(&[oid(0)]);
    assert_eq!(s.evict(150), 200);
    assert!(s.contains(&oid(0)) && !s.contains(&oid(1)) && !s.contains(&oid(2)));
}

#[test]
fn objects_larger_than_an_arena_get_their_own_arena_which_goes_when_empty() {
    let mut s = state(64 << 20, 1 << 20);
    s.connect(1);
    assert_eq!(s.arena_count(), 1);
    let small = s.create(1, oid(1), 1000, 0, true).unwrap();
    let big = s.create(1, oid(2), 5 << 20, 7, true).unwrap();
    assert_ne!(small.arena.key(), big.arena.key());
    assert!(big.arena.len() >= (5 << 20) + 7 + big.offset);
    assert_eq!(s.arena_count(), 2);
    s.abort(1, oid(2)).unwrap();
    assert_eq!(s.arena_count(), 1);
    // Keys are never reused.
    let again = s.create(1, oid(3), 5 << 20, 0, true).unwrap();
    assert!(again.arena.key() > big.arena.key());
}

#[test]
fn waiters_complete_on_seal_or_deadline() {
    let mut s = state(1 << 20, 1 << 20);
    s.connect(1);
    s.connect(2);
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let far = Instant::now() + Duration::from_secs(60);
    let w = s.get(
        2,
        vec![oid(1), oid(2)],
        GetDeadline::At(far),
        Box::new(move |r| tx.send(r).unwrap()),
    );
    assert!(matches!(w, GetOutcome::Waiting(_)));
    let soon = Instant::now();
    assert!(matches!(
        s.get(
            2,
            vec![oid(3)],
            GetDeadline::At(soon),
            Box::new(move |r| tx2.send(r).unwrap())
        ),
        GetOutcome::Waiting(_)
    ));
    let (expired, next) = s.expire_waiters(soon);
    assert_eq!(expired.len(), 1);
    assert_eq!(next, Some(far));
    expired.into_iter().for_each(|c| c.deliver());
    assert_eq!(rx.recv().unwrap().len(), 1);
    s.create(1, oid(1), 1, 0, true).unwrap();
    assert!(s.seal(1, oid(1), [0; 8]).unwrap().is_empty());
    s.create(1, oid(2), 1, 0, true).unwrap();
    let done = s.seal(1, oid(2), [0; 8]).unwrap();
    assert_eq!(done.len(), 1);
    done.into_iter().for_each(|c| c.deliver());
    let r = rx.recv().unwrap();
    assert!(r.iter().all(|x| x.is_some()));
    assert_eq!(s.list().iter().map(|i| i.ref_count).max(), Some(2));
}

#[test]
fn freed_pages_are_handed_back() {
    let mut s = state(64 << 20, 64 << 20);
    s.connect(1);
    let loc = s.create(1, oid(1), 8 << 20, 0, true).unwrap();
    let p = loc.arena.ptr(loc.offset, loc.data_size).unwrap();
    unsafe { std::ptr::write_bytes(p, 0xEE, loc.data_size as usize) };
    s.abort(1, oid(1)).unwrap();
    // Not yet due: the pages stay (a quick re-create reuses them without faults).
    s.punch_freed(Instant::now());
    let p = loc.arena.ptr(loc.offset + 4096, 1).unwrap();
    assert_eq!(unsafe { *p }, 0xEE);
    s.punch_freed(Instant::now() + super::state::PUNCH_DELAY + Duration::from_secs(1));
    let loc2 = s.create(1, oid(2), 8 << 20, 0, true).unwrap();
    assert_eq!(loc2.offset, loc.offset);
    let p = loc2.arena.ptr(loc2.offset + 4096, 1).unwrap();
    assert_eq!(unsafe { *p }, 0, "page was punched out and reads as zero");
    // A range reused before its punch is due is left alone.
    unsafe { std::ptr::write_bytes(p, 0xDD, 1) };
    s.abort(1, oid(2)).unwrap();
    let _loc3 = s.create(1, oid(3), 8 << 20, 0, true).unwrap();
    s.punch_freed(Instant::now() + super::state::PUNCH_DELAY + Duration::from_secs(1));
    assert_eq!(unsafe { *p }, 0xDD, "in use again: not punched");
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("100000000"), Ok(100_000_000));
    assert_eq!(parse_size("4GiB"), Ok(4 << 30));
    assert_eq!(parse_size("4gib"), Ok(4 << 30));
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
    assert_eq!(parse_size("2k"), Ok(2000));
    assert!(parse_size("12 parsecs").is_err());
    assert!(parse_size("").is_err());
    assert!(parse_size("99999999999TiB").is_err());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn handle_round_trip_is_zero_copy_and_releases_on_drop() {
    let store = EmbeddedStore::start(StoreConfig {
        capacity: 1 << 20,
        ..Default::default()
    })
    .unwrap();
    let h = store.handle();
    rt().block_on(async {
        assert_eq!(h.capacity().await.unwrap(), 1 << 20);
        let mut obj = h.create(oid(1), 5, 3).await.unwrap();
        obj.data_mut().copy_from_slice(b"hello");
        obj.metadata_mut().copy_from_slice(b"abc");
        obj.seal([9; 8]).await.unwrap();
        assert!(h.contains(oid(1)).await.unwrap());
        let got = h.get(vec![oid(1), oid(2)], Duration::ZERO).await.unwrap();
        let first = got[0].clone().unwrap();
        assert!(got[1].is_none());
        assert_eq!(&first.data[..], b"hello");
        assert_eq!(&first.metadata[..], b"abc");
        drop(got);
        // Still referenced by `first`: delete is scheduled.
        assert_eq!(
            h.delete(vec![oid(1)]).await.unwrap(),
            vec![DeleteOutcome::Scheduled]
        );
        let data = first.data.clone();
        drop(first);
        assert!(h.contains(oid(1)).await.unwrap(), "data still alive");
        drop(data);
        assert!(!h.contains(oid(1)).await.unwrap());
        assert_eq!(h.allocated(), 0);
    });
}

#[test]
fn handle_get_waits_for_seal_and_times_out() {
    let store = EmbeddedStore::start(StoreConfig {
        capacity: 1 << 20,
        ..Default::default()
    })
    .unwrap();
    let h = store.handle();
    rt().block_on(async {
        let start = Instant::now();
        let got = h
            .get(vec![oid(5)], Duration::from_millis(100))
            .await
            .unwrap();
        assert!(got[0].is_none());
        assert!(start.elapsed() >= Duration::from_millis(100));
        let h2 = h.clone();
        let waiter =
            tokio::spawn(
                async move { h2.get(vec![oid(6)], Duration::from_secs(30)).await.unwrap() },
            );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let obj = h.create(oid(6), 1, 0).await.unwrap();
        obj.seal([0; 8]).await.unwrap();
        let got = waiter.await.unwrap();
        assert!(got[0].is_some());
        // Dropping an unsealed object aborts it.
        let dropped = h.create(oid(7), 1, 0).await.unwrap();
        drop(dropped);
        assert_eq!(h.create(oid(7), 1, 0).await.map(|_| ()).ok(), Some(()));
        assert!(matches!(
            h.create(oid(8), 2 << 20, 0).await,
            Err(crate::Error::OutOfMemory { .. })
        ));
    });
}

#[test]
fn create_and_seal_batch_leaves_no_reference_and_rolls_back_on_failure() {
    use super::state::InlineObject;
    let mut s = state(1000, 4096);
    s.connect(1);
    let objs = [
        InlineObject {
            id: oid(1),
            data: b"data",
            metadata: b"m",
            digest: [1; 8],
        },
        InlineObject {
            id: oid(2),
            data: b"",
            metadata: b"",
            digest: [2; 8],
        },
    ];
    s.create_and_seal(1, &objs, false).unwrap();
    let loc = get_now(&mut s, 2, vec![oid(1)])[0].clone().unwrap();
    let bytes = unsafe { std::slice::from_raw_parts(loc.arena.ptr(loc.offset, 5).unwrap(), 5) };
    assert_eq!(bytes, b"datam");
    assert!(s.list().iter().all(|i| i.ref_count <= 1));
    let too_big = vec![0u8; 999];
    let fail = [
        InlineObject {
            id: oid(3),
            data: b"x",
            metadata: b"",
            digest: [0; 8],
        },
        InlineObject {
            id: oid(4),
            data: &too_big,
            metadata: b"",
            digest: [0; 8],
        },
    ];
    assert_eq!(
        s.create_and_seal(1, &fail, false).unwrap_err(),
        CreateError::OutOfMemory
    );
    assert!(s.list().iter().all(|i| i.id != oid(3)), "rolled back");
}

#[test]
fn released_before_seal_becomes_evictable_at_seal() {
    let mut s = state(1 << 20, 1 << 20);
    s.connect(1);
    s.create(1, oid(1), 10, 0, true).unwrap();
    s.release(1, oid(1)).unwrap();
    s.seal(1, oid(1), [0; 8]).unwrap();
    assert_eq!(s.evict(1), 10);
    // And a delete scheduled while unsealed runs at the seal if nobody holds it.
    s.create(1, oid(2), 10, 0, true).unwrap();
    s.release(1, oid(2)).unwrap();
    assert_eq!(s.delete(&[oid(2)]), vec![DeleteStatus::NotSealed]);
    s.seal(1, oid(2), [0; 8]).unwrap();
    assert!(!s.contains(&oid(2)));
    assert_eq!(s.allocated(), 0);
}

#[test]
fn shutdown_answers_pending_in_process_gets() {
    let mut store = EmbeddedStore::start(StoreConfig {
        capacity: 1 << 20,
        ..Default::default()
    })
    .unwrap();
    let h = store.handle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let waiter = runtime.spawn(async move { h.get(vec![oid(1)], Duration::MAX).await });
    std::thread::sleep(Duration::from_millis(50));
    store.shutdown();
    let got = runtime.block_on(waiter).unwrap().unwrap();
    assert!(got[0].is_none());
}
