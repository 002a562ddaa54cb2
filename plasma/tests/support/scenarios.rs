//! Client scenarios, generic over the store under test (see [`super::StoreLauncher`]).
//!
//! Each function starts its own store(s), runs the Rust client (and pyarrow where it checks
//! interoperability) against it, and panics with a message on any mismatch.

use std::time::{Duration, Instant};

use plasma_store::digest::{object_digest, Digester};
use plasma_store::wire::messages::ObjectInfo;
use plasma_store::{
    ConnectOptions, DeleteOutcome, Error, ObjectId, ObjectStore, PlasmaClient, StorePool,
};
use sha2::{Digest as _, Sha256};

use super::{oid, pattern, run_python, RunningStore, StoreLauncher, StoreRelauncher, PY_PATTERN};

const MB: u64 = 1_000_000;

fn connect(store: &RunningStore) -> PlasmaClient {
    PlasmaClient::connect(&store.socket).expect("connect to the store")
}

fn info(list: &[ObjectInfo], id: ObjectId) -> Option<&ObjectInfo> {
    list.iter().find(|i| i.object_id == id)
}

/// Fills `buf` with `pattern(buf.len(), seed)` quickly (block copies; the pattern has period
/// 251).
pub fn fill_pattern(buf: &mut [u8], seed: u8) {
    let block = pattern(251 * 4096, seed);
    for chunk in buf.chunks_mut(block.len()) {
        let n = chunk.len();
        chunk.copy_from_slice(&block[..n]);
    }
}

/// Whether `buf` equals `pattern(buf.len(), seed)`.
pub fn is_pattern(buf: &[u8], seed: u8) -> bool {
    let block = pattern(251 * 4096, seed);
    buf.chunks(block.len()).all(|c| c == &block[..c.len()])
}

/// Creates, writes and seals an object from the Rust client; returns its digest.
pub fn put(
    client: &mut PlasmaClient,
    id: ObjectId,
    data_len: u64,
    metadata: &[u8],
    seed: u8,
) -> [u8; 8] {
    let mut object = client
        .create(id, data_len, metadata.len() as u64)
        .unwrap_or_else(|e| panic!("create {id}: {e}"));
    fill_pattern(object.data_mut(), seed);
    object.metadata_mut().copy_from_slice(metadata);
    let digest = {
        let (d, m) = object.buffers();
        object_digest(d, m)
    };
    client
        .seal(object)
        .unwrap_or_else(|e| panic!("seal {id}: {e}"));
    digest
}

/// Connect, capacity, create/seal/get/contains/list/release/delete/evict/abort, exists and
/// out-of-memory errors, sizes 0, 1 and 64 KiB of metadata.
pub fn basic_operations(launch: &StoreLauncher) {
    let store = launch(100 * MB);
    let mut client = connect(&store);
    assert_eq!(client.capacity(), 100 * MB);

    let meta64k = pattern(65_536, 9);
    let cases: [(ObjectId, u64, Vec<u8>); 4] = [
        (oid("basic", 0), 0, b"only metadata".to_vec()),
        (oid("basic", 1), 1, Vec::new()),
        (oid("basic", 2), 1000, meta64k.clone()),
        (oid("basic", 3), 0, Vec::new()),
    ];
    for (i, (id, len, meta)) in cases.iter().enumerate() {
        assert!(!client.contains(*id).unwrap());
        let mut object = client.create(*id, *len, meta.len() as u64).unwrap();
        assert_eq!(object.data_mut().len() as u64, *len);
        assert_eq!(object.metadata_mut().len(), meta.len());
        // Unsealed: listed without digest, not "contained", not gettable.
        let list = client.list().unwrap();
        let listed = info(&list, *id).expect("unsealed object is listed");
        assert_eq!(listed.digest, None);
        assert_eq!(listed.construct_duration, -1);
        assert!(!client.contains(*id).unwrap());
        fill_pattern(object.data_mut(), i as u8);
        object.metadata_mut().copy_from_slice(meta);
        client.seal(object).unwrap();
        assert!(client.contains(*id).unwrap());
    }
    let ids: Vec<ObjectId> = cases.iter().map(|c| c.0).collect();
    let got = client.get(&ids, Some(Duration::from_secs(1))).unwrap();
    let list = client.list().unwrap();
    for (i, ((id, len, meta), object)) in cases.iter().zip(&got).enumerate() {
        let object = object.as_ref().expect("sealed object is found");
        assert_eq!(object.id, *id);
        assert_eq!(object.data.len() as u64, *len);
        assert!(is_pattern(&object.data, i as u8));
        assert_eq!(&object.metadata[..], &meta[..]);
        let listed = info(&list, *id).unwrap();
        assert_eq!(listed.data_size as u64, *len);
        assert_eq!(listed.metadata_size as usize, meta.len());
        assert_eq!(listed.ref_count, 1, "held by our Get");
        assert_eq!(
            listed.digest,
            Some(object_digest(&object.data, &object.metadata))
        );
    }
    // Releasing: drop the Bytes; the next request sends the releases first.
    drop(got);
    let list = client.list().unwrap();
    for id in &ids {
        assert_eq!(info(&list, *id).unwrap().ref_count, 0, "released");
    }

    // A duplicated id in one Get, kept alive by a clone of one Bytes only.
    let got = client.get(&[ids[2], ids[2]], Some(Duration::ZERO)).unwrap();
    let keep = got[0].as_ref().unwrap().metadata.clone();
    drop(got);
    assert_eq!(info(&client.list().unwrap(), ids[2]).unwrap().ref_count, 1);
    drop(keep);
    assert_eq!(info(&client.list().unwrap(), ids[2]).unwrap().ref_count, 0);

    // Explicit release.
    let got = client.get(&ids[..1], Some(Duration::ZERO)).unwrap();
    assert_eq!(info(&client.list().unwrap(), ids[0]).unwrap().ref_count, 1);
    for object in got.into_iter().flatten() {
        client.release(object).unwrap();
    }
    assert_eq!(info(&client.list().unwrap(), ids[0]).unwrap().ref_count, 0);

    // Exists.
    match client.create(ids[1], 5, 0) {
        Err(Error::ObjectExists(id)) => assert_eq!(id, ids[1]),
        other => panic!("expected ObjectExists, got {other:?}"),
    }

    // Abort: the object disappears and the id can be created again.
    let aborted = oid("basic", 50);
    let object = client.create(aborted, 10, 0).unwrap();
    client.abort(object).unwrap();
    assert!(info(&client.list().unwrap(), aborted).is_none());
    let object = client.create(aborted, 10, 0).unwrap();
    // Dropping a created object aborts it too (queued, sent before the next request).
    drop(object);
    assert!(info(&client.list().unwrap(), aborted).is_none());

    // create_and_seal (inline data).
    let inline = oid("basic", 60);
    client
        .create_and_seal(inline, b"inline data", b"m")
        .unwrap();
    let got = client.get(&[inline], Some(Duration::ZERO)).unwrap();
    let got = got[0].as_ref().unwrap();
    assert_eq!(&got.data[..], b"inline data");
    assert_eq!(&got.metadata[..], b"m");

    // Delete and evict.
    assert_eq!(
        client.delete(&[ids[0], oid("basic", 77)]).unwrap(),
        vec![DeleteOutcome::Deleted, DeleteOutcome::NotFound]
    );
    assert!(!client.contains(ids[0]).unwrap());
    let before = client.list().unwrap().len();
    let freed = client.evict(1).unwrap();
    assert!(freed >= 1, "evicted {freed} bytes");
    assert!(client.list().unwrap().len() < before);
    assert!(!client.debug_string().unwrap().is_empty());

    // Out of memory (bigger than the store; the store may evict released objects trying),
    // and the connection stays usable.
    match client.create(oid("basic", 99), 200 * MB, 0) {
        Err(Error::OutOfMemory { .. }) => {}
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert!(client.contains(inline).is_ok());
}

/// Objects written by Rust are read by pyarrow byte for byte, and pyarrow's `hash()` equals
/// the digest Rust sealed with. `sizes` are (data, metadata) lengths.
pub fn rust_to_pyarrow(launch: &StoreLauncher, capacity: u64, sizes: &[(u64, usize)]) {
    let store = launch(capacity);
    let mut client = connect(&store);
    let mut args = vec![store.socket.to_str().unwrap().to_string()];
    let mut expected = Vec::new();
    for (i, &(data_len, meta_len)) in sizes.iter().enumerate() {
        let id = oid("rust2py", i as u32);
        let mut object = client.create(id, data_len, meta_len as u64).unwrap();
        fill_pattern(object.data_mut(), i as u8);
        fill_pattern(object.metadata_mut(), i as u8 + 100);
        let (digest, data_sha, meta_sha) = {
            let (d, m) = object.buffers();
            (
                object_digest(d, m),
                hex::encode(Sha256::digest(d)),
                hex::encode(Sha256::digest(m)),
            )
        };
        client.seal(object).unwrap();
        args.push(hex::encode(id.0));
        expected.push(format!(
            "{} {} {} {} {} {}",
            hex::encode(id.0),
            data_len,
            meta_len,
            data_sha,
            meta_sha,
            hex::encode(digest)
        ));
    }
    let script = r#"
import hashlib
client = plasma.connect(sys.argv[1])
for h in sys.argv[2:]:
    oid = plasma.ObjectID(bytes.fromhex(h))
    [data] = client.get_buffers([oid], timeout_ms=10000)
    [meta] = client.get_metadata([oid], timeout_ms=10000)
    print(h, data.size, meta.size, hashlib.sha256(memoryview(data)).hexdigest(),
          hashlib.sha256(memoryview(meta)).hexdigest(), client.hash(oid).hex())
    del data, meta
client.disconnect()
"#;
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_python(script, &argv);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // And Rust reads them back too (after pyarrow's client came and went).
    for (i, &(data_len, meta_len)) in sizes.iter().enumerate() {
        let got = client
            .get(&[oid("rust2py", i as u32)], Some(Duration::ZERO))
            .unwrap();
        let object = got[0].as_ref().expect("still in the store");
        assert_eq!(object.data.len() as u64, data_len);
        assert_eq!(object.metadata.len(), meta_len);
        assert!(is_pattern(&object.data, i as u8));
        assert!(is_pattern(&object.metadata, i as u8 + 100));
    }
}

/// Objects written by pyarrow are read by Rust byte for byte (data and metadata), and the
/// digest Rust computes over them equals pyarrow's `hash()`.
pub fn pyarrow_to_rust(launch: &StoreLauncher, capacity: u64, sizes: &[(u64, usize)]) {
    let store = launch(capacity);
    let mut args = vec![store.socket.to_str().unwrap().to_string()];
    let ids: Vec<ObjectId> = (0..sizes.len()).map(|i| oid("py2rust", i as u32)).collect();
    for (i, (&(data_len, meta_len), id)) in sizes.iter().zip(&ids).enumerate() {
        args.push(format!("{}:{data_len}:{meta_len}:{i}", hex::encode(id.0)));
    }
    let script = format!(
        r#"
{PY_PATTERN}
def tile(n, seed):
    import numpy as np
    base = np.frombuffer(pattern(251, seed), dtype=np.uint8)
    return np.tile(base, n // 251 + 1)[:n]
client = plasma.connect(sys.argv[1])
for spec in sys.argv[2:]:
    h, n, m, seed = spec.split(':')
    n, m, seed = int(n), int(m), int(seed)
    oid = plasma.ObjectID(bytes.fromhex(h))
    buf = client.create(oid, n, tile(m, seed + 100).tobytes())
    if n:
        pa.FixedSizeBufferWriter(buf).write(pa.py_buffer(tile(n, seed)))
    client.seal(oid)
    del buf
    print(h, client.hash(oid).hex())
client.disconnect()
"#
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_python(&script, &argv);
    let digests: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string())
        .collect();
    assert_eq!(digests.len(), sizes.len(), "pyarrow output: {out}");

    let mut client = connect(&store);
    let got = client.get(&ids, Some(Duration::from_secs(10))).unwrap();
    for (i, ((&(data_len, meta_len), object), digest)) in
        sizes.iter().zip(&got).zip(&digests).enumerate()
    {
        let object = object.as_ref().expect("pyarrow's object is found");
        assert_eq!(object.data.len() as u64, data_len);
        assert_eq!(object.metadata.len(), meta_len);
        assert!(
            is_pattern(&object.data, i as u8),
            "data of object {i} differs"
        );
        assert!(
            is_pattern(&object.metadata, i as u8 + 100),
            "metadata of object {i} differs"
        );
        assert_eq!(
            &hex::encode(object_digest(&object.data, &object.metadata)),
            digest
        );
    }
}

/// Get with timeouts: a missing object comes back `None` after about the timeout; a Get
/// waiting on an object completes when another connection seals it.
pub fn get_timeouts(launch: &StoreLauncher) {
    let store = launch(10 * MB);
    let mut client = connect(&store);
    let missing = oid("timeout", 0);
    let start = Instant::now();
    let got = client
        .get(&[missing], Some(Duration::from_millis(150)))
        .unwrap();
    let waited = start.elapsed();
    assert!(got[0].is_none());
    assert!(
        waited >= Duration::from_millis(140),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");

    // Timeout 0 answers at once.
    let start = Instant::now();
    assert!(client.get(&[missing], Some(Duration::ZERO)).unwrap()[0].is_none());
    assert!(start.elapsed() < Duration::from_secs(1));

    // An unsealed object is not returned, even to its creator.
    let late = oid("timeout", 1);
    let object = client.create(late, 4, 0).unwrap();
    assert!(client
        .get(&[late], Some(Duration::from_millis(20)))
        .unwrap()[0]
        .is_none());

    // Another connection waits (forever) and is answered when we seal.
    let socket = store.socket.clone();
    let waiter = std::thread::spawn(move || {
        let mut other = PlasmaClient::connect(&socket).unwrap();
        let got = other.get(&[late, missing], None);
        got.map(|v| (v[0].as_ref().map(|o| o.data.to_vec()), v[1].is_some()))
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut object = object;
    object.data_mut().copy_from_slice(b"late");
    client.seal(object).unwrap();
    // The waiter also asked for `missing`: create it so its Get (timeout -1) completes.
    client.create_and_seal(missing, b"now", b"").unwrap();
    let (data, second) = waiter.join().unwrap().unwrap();
    assert_eq!(data.as_deref(), Some(&b"late"[..]));
    assert!(second);
}

/// Per-id delete outcomes: deleted, not found, in use (scheduled until released), unsealed
/// (scheduled until sealed and released).
pub fn delete_outcomes(launch: &StoreLauncher) {
    let store = launch(10 * MB);
    let mut client = connect(&store);
    let mut other = connect(&store);
    let free = oid("delete", 0);
    let held = oid("delete", 1);
    let unsealed = oid("delete", 2);
    let missing = oid("delete", 3);
    put(&mut client, free, 10, b"", 1);
    put(&mut client, held, 10, b"", 2);
    let holding = other.get(&[held], Some(Duration::ZERO)).unwrap();
    let pending = client.create(unsealed, 10, 0).unwrap();
    let outcomes = client.delete(&[free, held, unsealed, missing]).unwrap();
    assert_eq!(
        outcomes,
        vec![
            DeleteOutcome::Deleted,
            DeleteOutcome::Scheduled,
            DeleteOutcome::Scheduled,
            DeleteOutcome::NotFound
        ]
    );
    assert!(!client.contains(free).unwrap());
    // Still readable while held.
    assert!(client.contains(held).unwrap());
    drop(holding);
    // A round trip on `other` after its Release: the store has processed the Release.
    other.list().unwrap();
    assert!(!client.contains(held).unwrap(), "deleted once released");
    client.seal(pending).unwrap();
    assert!(
        info(&client.list().unwrap(), unsealed).is_none(),
        "deleted once sealed and released"
    );
}

/// Fragments the store until it opens a second segment; the client maps both, and a fresh
/// connection receives both fds in one GetReply.
pub fn second_segment(launch: &StoreLauncher) {
    let store = launch(10 * MB);
    let mut client = connect(&store);
    let first = oid("segment", 0);
    put(&mut client, first, 1000, b"first", 1);
    assert_eq!(client.mapped_segments(), 1);
    // Many zero-byte objects: the allocator's overhead is not counted against the capacity,
    // so a large create afterwards does not fit in the first segment.
    let mut n = 0u32;
    let big = oid("segment", u32::MAX);
    let mut big_len = 6 * MB;
    loop {
        for _ in 0..5000 {
            n += 1;
            client
                .create_and_seal(oid("segment-small", n), b"", b"")
                .unwrap();
        }
        match client.create(big, big_len, 4) {
            Ok(mut object) => {
                fill_pattern(object.data_mut(), 7);
                object.metadata_mut().copy_from_slice(b"big!");
                client.seal(object).unwrap();
                if client.mapped_segments() >= 2 {
                    break;
                }
                client.delete(&[big]).unwrap();
            }
            Err(Error::OutOfMemory { .. }) => big_len -= MB / 2,
            Err(e) => panic!("create big: {e}"),
        }
        assert!(n < 200_000, "no second segment after {n} small objects");
    }
    assert_eq!(client.mapped_segments(), 2);
    let mut fresh = connect(&store);
    let got = fresh.get(&[first, big], Some(Duration::ZERO)).unwrap();
    assert_eq!(
        fresh.mapped_segments(),
        2,
        "both fds arrived in one GetReply"
    );
    let first_obj = got[0].as_ref().unwrap();
    assert!(is_pattern(&first_obj.data, 1));
    assert_eq!(&first_obj.metadata[..], b"first");
    let big_obj = got[1].as_ref().unwrap();
    assert_eq!(big_obj.data.len() as u64, big_len);
    assert!(is_pattern(&big_obj.data, 7));
    assert_eq!(&big_obj.metadata[..], b"big!");
}

/// Killing the store mid-session: the next call fails with an error (no panic, no hang), a Get
/// blocked in the store fails too, and later calls keep failing cleanly.
pub fn store_killed(launch: &StoreLauncher) {
    let mut store = launch(10 * MB);
    let mut client = connect(&store);
    let id = oid("killed", 0);
    put(&mut client, id, 100, b"m", 3);
    let held = client.get(&[id], Some(Duration::ZERO)).unwrap();
    // Connect before the kill (on this thread): under load a connect racing the kill would
    // fail in the connect, not in the blocked Get this test is about.
    let mut waiter = PlasmaClient::connect(&store.socket).unwrap();
    let blocked = std::thread::spawn(move || waiter.get(&[oid("killed", 1)], None).map(|_| ()));
    std::thread::sleep(Duration::from_millis(200));
    store.kill();
    let start = Instant::now();
    let err = blocked
        .join()
        .unwrap()
        .expect_err("blocked get fails when the store dies");
    assert!(
        matches!(err, Error::StoreGone { .. } | Error::Io(_)),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    // The mapping outlives the store: bytes already got stay readable.
    assert!(is_pattern(&held[0].as_ref().unwrap().data, 3));
    let err = client
        .contains(id)
        .expect_err("contains fails on a dead store");
    assert!(
        matches!(err, Error::StoreGone { .. } | Error::Io(_)),
        "unexpected {err:?}"
    );
    assert!(client.list().is_err());
    drop(held);
    assert!(client.flush_releases().is_err());
    // Reconnecting names the socket.
    let err = PlasmaClient::connect_with(
        &store.socket,
        &ConnectOptions {
            retries: 1,
            retry_interval: Duration::from_millis(10),
            ..ConnectOptions::default()
        },
    )
    .expect_err("no store any more");
    assert!(
        err.to_string().contains(store.socket.to_str().unwrap()),
        "{err}"
    );
}

/// The async pool: ObjectStore operations, digest computed incrementally, zero-copy reads that
/// release on drop, abort of a dropped NewObject, and an error after the store dies.
pub fn pool_operations(launch: &StoreLauncher) {
    let mut store = launch(50 * MB);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = StorePool::connect(&store.socket, 3, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(pool.capacity().await.unwrap(), 50 * MB);
        let id = oid("pool", 0);
        let data = pattern(3 << 20, 5);
        let mut object = pool.create(id, data.len() as u64, 3).await.unwrap();
        let mut digester = Digester::new(data.len() as u64);
        for (i, chunk) in data.chunks(100_000).enumerate() {
            object.data_mut()[i * 100_000..i * 100_000 + chunk.len()].copy_from_slice(chunk);
            digester.update(chunk);
        }
        object.metadata_mut().copy_from_slice(b"abc");
        object.seal(digester.finish(b"abc")).await.unwrap();
        assert!(pool.contains(id).await.unwrap());
        let listed = pool.list().await.unwrap();
        assert_eq!(
            info(&listed, id).unwrap().digest,
            Some(object_digest(&data, b"abc"))
        );
        // The creator's reference goes right after the seal (on the creating connection; a
        // store may serve another connection's List first, so poll briefly).
        let deadline = Instant::now() + Duration::from_secs(5);
        while info(&pool.list().await.unwrap(), id).unwrap().ref_count != 0 {
            assert!(
                Instant::now() < deadline,
                "creator's reference not released"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // Concurrent gets from several connections.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                pool.get(vec![id, oid("pool", 99)], Duration::from_millis(50))
                    .await
            }));
        }
        let mut kept = Vec::new();
        for t in tasks {
            let got = t.await.unwrap().unwrap();
            assert!(got[1].is_none());
            let object = got.into_iter().next().flatten().unwrap();
            assert_eq!(&object.data[..], &data[..]);
            assert_eq!(&object.metadata[..], b"abc");
            kept.push(object.data);
        }
        assert!(info(&pool.list().await.unwrap(), id).unwrap().ref_count >= 1);
        // Dropping the Bytes (here, on a tokio worker) releases in the background.
        drop(kept);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if info(&pool.list().await.unwrap(), id).unwrap().ref_count == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "references not released");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // A dropped NewObject is aborted in the background.
        let dropped = oid("pool", 1);
        drop(pool.create(dropped, 10, 0).await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        while info(&pool.list().await.unwrap(), dropped).is_some() {
            assert!(Instant::now() < deadline, "dropped object not aborted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Explicit abort, exists, delete.
        let aborted = pool.create(oid("pool", 2), 10, 0).await.unwrap();
        aborted.abort().await.unwrap();
        assert!(matches!(
            pool.create(id, 1, 0).await,
            Err(Error::ObjectExists(_))
        ));
        assert_eq!(
            pool.delete(vec![id, oid("pool", 2)]).await.unwrap(),
            vec![DeleteOutcome::Deleted, DeleteOutcome::NotFound]
        );
        assert_eq!(pool.evict(1).await.unwrap(), 0);

        // The store dies: errors, not panics or hangs.
        store.kill();
        let err = pool
            .get(vec![id], Duration::ZERO)
            .await
            .expect_err("store is gone");
        assert!(!err.to_string().is_empty());
        assert!(pool.contains(id).await.is_err());
    });
}

/// A store restarted on the same socket: the pool's requests fail while it is down, then the
/// pool reconnects by itself and works with the new store. `relaunch` starts a store on the
/// given socket path and returns the function that stops it.
pub fn pool_survives_store_restart(launch: &StoreLauncher, relaunch: &StoreRelauncher) {
    let mut store = launch(10 * MB);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = StorePool::connect(&store.socket, 2, Duration::from_secs(5))
            .await
            .unwrap();
        let before = oid("restart", 0);
        let mut object = pool.create(before, 3, 0).await.unwrap();
        object.data_mut().copy_from_slice(b"old");
        object.seal(object_digest(b"old", b"")).await.unwrap();
        let held = pool.get(vec![before], Duration::ZERO).await.unwrap();

        store.kill();
        assert!(pool.contains(before).await.is_err(), "store is down");
        // Bytes got from the old store stay readable (the mapping outlives the store).
        assert_eq!(&held[0].as_ref().unwrap().data[..], b"old");
        drop(held);

        let stop = relaunch(&store.socket, 10 * MB);
        // Each connection reconnects on its next request; allow one failure per connection.
        let mut attempts = 0;
        let after = oid("restart", 1);
        let mut object = loop {
            attempts += 1;
            match pool.create(after, 3, 0).await {
                Ok(object) => break object,
                Err(e) => assert!(attempts <= 3, "pool did not reconnect: {e}"),
            }
        };
        object.data_mut().copy_from_slice(b"new");
        object.seal(object_digest(b"new", b"")).await.unwrap();
        for _ in 0..4 {
            // Every connection (whichever serves the call) sees the new store.
            let got = pool.get(vec![after, before], Duration::ZERO).await;
            if let Ok(got) = got {
                assert_eq!(&got[0].as_ref().unwrap().data[..], b"new");
                assert!(got[1].is_none(), "the old store's object is gone");
            }
        }
        let got = pool.get(vec![after], Duration::ZERO).await.unwrap();
        assert_eq!(&got[0].as_ref().unwrap().data[..], b"new");
        drop(got);
        stop();
    });
}

/// Runs `scenario` with a pool of 2 connections to a store of `capacity` bytes that `launch`
/// starts, on a current-thread runtime; the store stops after it.
fn with_pool<F, Fut>(launch: &StoreLauncher, capacity: u64, scenario: F)
where
    F: FnOnce(StorePool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let store = launch(capacity);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = StorePool::connect(&store.socket, 2, Duration::from_secs(5))
            .await
            .unwrap();
        scenario(pool).await;
    });
}

/// A store full of sealed, unreferenced (so evictable) objects: a create without eviction of
/// an object larger than the free space fails with `StoreFull` and every sealed object is still
/// there, byte for byte; one that fits succeeds. A plain create of the same too-large object
/// then succeeds by evicting, which shows the store really was full and the objects evictable.
pub fn create_without_eviction_never_evicts(launch: &StoreLauncher) {
    const MIB: u64 = 1 << 20;
    with_pool(launch, 8 * MIB, |pool| async move {
        let sealed: Vec<ObjectId> = (0..6).map(|n| oid("no-evict", n)).collect();
        for (n, id) in sealed.iter().enumerate() {
            let mut object = pool.create(*id, MIB, 0).await.unwrap();
            fill_pattern(object.data_mut(), n as u8);
            let digest = object_digest(object.data_mut(), b"");
            object.seal(digest).await.unwrap();
        }
        assert_eq!(pool.free_space().await.unwrap(), 2 * MIB);

        let big = oid("no-evict", 100);
        match pool.create_without_eviction(big, 3 * MIB, 0).await {
            Err(Error::StoreFull { needed, free }) => {
                assert_eq!((needed, free), (3 * MIB, 2 * MIB));
            }
            Err(other) => panic!("expected StoreFull, got {other}"),
            Ok(_) => panic!("a 3 MiB object fit in 2 MiB without eviction"),
        }
        assert!(!pool.contains(big).await.unwrap());
        let got = pool.get(sealed.clone(), Duration::ZERO).await.unwrap();
        for (n, object) in got.iter().enumerate() {
            let object = object
                .as_ref()
                .unwrap_or_else(|| panic!("sealed object {n} was evicted"));
            assert!(is_pattern(&object.data, n as u8), "object {n} changed");
        }
        drop(got);

        // One that fits is created (and metadata counts towards the size).
        let fits = oid("no-evict", 101);
        let mut object = pool
            .create_without_eviction(fits, MIB - 10, 10)
            .await
            .unwrap();
        object.metadata_mut().copy_from_slice(b"0123456789");
        let data = object.data_mut().to_vec();
        let digest = object_digest(&data, b"0123456789");
        object.seal(digest).await.unwrap();
        assert_eq!(pool.free_space().await.unwrap(), MIB);
        for id in &sealed {
            assert!(
                pool.contains(*id).await.unwrap(),
                "{id} evicted by a create that fit"
            );
        }

        // The contrast: the ordinary create evicts to make room.
        let object = pool.create(big, 3 * MIB, 0).await.unwrap();
        object.abort().await.unwrap();
        let mut evicted = 0;
        for id in &sealed {
            if !pool.contains(*id).await.unwrap() {
                evicted += 1;
            }
        }
        assert!(
            evicted > 0,
            "the ordinary create fit without evicting: test is void"
        );
    });
}

/// CreateAndSeal through the async pool (one request per object): the object is readable
/// whole and sealed at once; without eviction a too-large one fails with StoreFull and every
/// sealed object stays; an existing ID is refused.
pub fn create_and_seal_in_one_request(launch: &StoreLauncher) {
    const MIB: u64 = 1 << 20;
    with_pool(launch, 8 * MIB, |pool| async move {
        let sealed: Vec<ObjectId> = (0..6).map(|n| oid("inline", n)).collect();
        for (n, id) in sealed.iter().enumerate() {
            let mut data = vec![0u8; MIB as usize];
            fill_pattern(&mut data, n as u8);
            let digest = object_digest(&data, b"");
            pool.create_and_seal(*id, data, Vec::new(), digest, false)
                .await
                .unwrap();
        }
        assert_eq!(pool.free_space().await.unwrap(), 2 * MIB);

        let small = oid("inline", 100);
        let data: Vec<u8> = (0..65_000u32).map(|i| (i % 253) as u8).collect();
        let digest = object_digest(&data, b"meta");
        pool.create_and_seal(small, data.clone(), b"meta".to_vec(), digest, false)
            .await
            .unwrap();
        let got = pool.get(vec![small], Duration::ZERO).await.unwrap();
        let object = got[0]
            .as_ref()
            .expect("the inline object is sealed at once");
        assert_eq!(&object.data[..], &data[..]);
        assert_eq!(&object.metadata[..], b"meta");
        drop(got);

        match pool
            .create_and_seal(small, vec![1], Vec::new(), [0; 8], false)
            .await
        {
            Err(Error::ObjectExists(id)) => assert_eq!(id, small),
            other => panic!("expected ObjectExists, got {other:?}"),
        }

        let big = oid("inline", 101);
        let data = vec![7u8; 3 * MIB as usize];
        let digest = object_digest(&data, b"");
        match pool
            .create_and_seal(big, data, Vec::new(), digest, false)
            .await
        {
            Err(Error::StoreFull { needed, .. }) => assert_eq!(needed, 3 * MIB),
            other => panic!("expected StoreFull, got {other:?}"),
        }
        assert!(!pool.contains(big).await.unwrap());
        for (n, id) in sealed.iter().enumerate() {
            let got = pool.get(vec![*id], Duration::ZERO).await.unwrap();
            let object = got[0]
                .as_ref()
                .unwrap_or_else(|| panic!("sealed object {n} was evicted"));
            assert!(is_pattern(&object.data, n as u8), "object {n} changed");
        }
    });
}

/// [`ObjectStore::contains_many`] (one Get that does not wait, for a socket store) answers
/// like `contains` for sealed, absent and unsealed objects, in order and with repeats, and
/// keeps no reference: a delete of every object it found completes.
pub fn contains_many_answers_like_contains(launch: &StoreLauncher) {
    const MIB: u64 = 1 << 20;
    with_pool(launch, 8 * MIB, |pool| async move {
        let sealed: Vec<ObjectId> = (0..3).map(|n| oid("many", n)).collect();
        for id in &sealed {
            pool.create_and_seal(
                *id,
                vec![1; 1000],
                Vec::new(),
                object_digest(&[1; 1000], b""),
                false,
            )
            .await
            .unwrap();
        }
        let unsealed = oid("many", 10);
        let writing = pool.create(unsealed, 100, 0).await.unwrap();
        let absent = oid("many", 11);
        assert_eq!(
            pool.contains_many(Vec::new()).await.unwrap(),
            Vec::<bool>::new()
        );
        let asked = vec![sealed[0], absent, sealed[1], unsealed, sealed[2], sealed[0]];
        let mut expected = Vec::new();
        for id in &asked {
            expected.push(pool.contains(*id).await.unwrap());
        }
        assert_eq!(expected, [true, false, true, false, true, true]);
        assert_eq!(pool.contains_many(asked).await.unwrap(), expected);
        writing.abort().await.unwrap();

        // Were a reference kept, a deleted object would stay until it is released.
        pool.delete(sealed.clone()).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool
            .contains_many(sealed.clone())
            .await
            .unwrap()
            .contains(&true)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "objects found by contains_many were never released"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}
