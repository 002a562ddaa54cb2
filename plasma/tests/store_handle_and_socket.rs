//! The embedded store's in-process handle and its socket clients see the same objects: what
//! the stream server writes through the handle, a Plasma client reads over the socket, and the
//! other way round. Plus many socket clients at once.

use std::time::Duration;

use plasma_store::digest::object_digest;
use plasma_store::store::{EmbeddedStore, StoreConfig};
use plasma_store::{ObjectId, ObjectStore, PlasmaClient};

fn start(capacity: u64) -> (EmbeddedStore, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plasma.sock");
    let store = EmbeddedStore::start(StoreConfig::new(&path, capacity)).unwrap();
    (store, dir, path)
}

fn oid(n: u32) -> ObjectId {
    let mut id = [7u8; 20];
    id[..4].copy_from_slice(&n.to_le_bytes());
    ObjectId(id)
}

#[test]
fn handle_writes_socket_reads_and_back() {
    let (store, _dir, path) = start(64 << 20);
    let handle = store.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    rt.block_on(async {
        let mut object = handle.create(oid(1), data.len() as u64, 2).await.unwrap();
        object.data_mut().copy_from_slice(&data);
        object.metadata_mut().copy_from_slice(b"md");
        object.seal(object_digest(&data, b"md")).await.unwrap();
    });
    let mut client = PlasmaClient::connect(&path).unwrap();
    let got = client.get(&[oid(1)], Some(Duration::from_secs(1))).unwrap();
    let object = got[0]
        .as_ref()
        .expect("sealed by the handle, seen on the socket");
    assert_eq!(&object.data[..], &data[..]);
    assert_eq!(&object.metadata[..], b"md");
    let listed = client.list().unwrap();
    let info = listed.iter().find(|i| i.object_id == oid(1)).unwrap();
    assert_eq!(info.digest, Some(object_digest(&data, b"md")));
    drop(got);

    // The socket client writes; the handle waits for it and reads it zero-copy.
    let waiter = {
        let handle = handle.clone();
        rt.spawn(async move { handle.get(vec![oid(2)], Duration::from_secs(10)).await })
    };
    let mut created = client.create(oid(2), 5, 0).unwrap();
    created.data_mut().copy_from_slice(b"hello");
    client.seal(created).unwrap();
    let got = rt.block_on(waiter).unwrap().unwrap();
    let object = got[0]
        .as_ref()
        .expect("the handle's Get completes on the socket's seal");
    assert_eq!(&object.data[..], b"hello");
    // While the handle holds it, a socket Delete is only scheduled.
    let outcome = client.delete(&[oid(2)]).unwrap();
    assert_eq!(outcome, vec![plasma_store::DeleteOutcome::Scheduled]);
    assert!(client.contains(oid(2)).unwrap());
    drop(got);
    assert!(
        !client.contains(oid(2)).unwrap(),
        "deleted when the handle let go"
    );
}

#[test]
fn many_clients_at_once() {
    let (_store, _dir, path) = start(256 << 20);
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut writer = PlasmaClient::connect(&path).unwrap();
                let mut reader = PlasmaClient::connect(&path).unwrap();
                for i in 0..100u32 {
                    let id = oid(t * 1000 + i);
                    let len = 1 + (i as usize * 4099) % 200_000;
                    let mut object = writer.create(id, len as u64, 1).unwrap();
                    object.data_mut().fill(t as u8);
                    object.metadata_mut()[0] = i as u8;
                    writer.seal(object).unwrap();
                    let got = reader.get(&[id], Some(Duration::from_secs(5))).unwrap();
                    let object = got[0].as_ref().unwrap();
                    assert_eq!(object.data.len(), len);
                    assert!(object.data.iter().all(|&b| b == t as u8));
                    assert_eq!(object.metadata[0], i as u8);
                    drop(got);
                    if i % 2 == 0 {
                        writer.delete(&[id]).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut client = PlasmaClient::connect(&path).unwrap();
    // The other clients' disconnects are processed by their own connection threads: poll.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let listed = client.list().unwrap();
        assert_eq!(listed.len(), 8 * 50);
        if listed.iter().all(|i| i.ref_count == 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "references left behind"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the standalone `plasma-store` binary with capacity `memory` on `socket`.
fn spawn_store_binary(memory: &str, socket: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_plasma-store"))
        .args(["-m", memory, "-s"])
        .arg(socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn sigterm(child: &std::process::Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
}

#[test]
fn binary_accepts_unit_sizes_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plasma.sock");
    let mut child = spawn_store_binary("64MiB", &path);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let client = loop {
        if let Ok(c) = PlasmaClient::connect(&path) {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "store did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(client.capacity(), 64 << 20);
    drop(client);
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!path.exists(), "socket removed on exit");
    // A bad size is refused with a message, not a crash.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_plasma-store"))
        .args(["-m", "lots", "-s"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lots"));
}

/// SIGTERM the moment the socket appears (before any client could even connect): the store
/// must already be listening for it, exit 0 and remove its socket. Before the signal
/// listeners were installed ahead of the socket, the default action could kill it first.
#[test]
fn sigterm_as_soon_as_the_socket_appears_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..10 {
        let path = dir.path().join(format!("plasma-{round}.sock"));
        let mut child = spawn_store_binary("1MiB", &path);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(std::time::Instant::now() < deadline, "store did not start");
            std::thread::sleep(Duration::from_micros(200));
        }
        sigterm(&child);
        let status = child.wait().unwrap();
        assert!(status.success(), "round {round}: {status}");
        assert!(!path.exists(), "round {round}: socket removed on exit");
    }
}

/// Waits until a store answers on `path`.
fn connect_when_up(path: &std::path::Path) -> PlasmaClient {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) = PlasmaClient::connect(path) {
            return c;
        }
        assert!(std::time::Instant::now() < deadline, "store did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A second store started on a running store's socket refuses to start, naming the socket,
/// and the first keeps serving on it (before the fix the second one replaced the socket, so
/// new clients reached the wrong store, and deleted it on exit).
#[test]
fn second_store_on_a_live_socket_refuses_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plasma.sock");
    // Killed if an assertion fails, so a failing run leaves no store behind.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut first = KillOnDrop(spawn_store_binary("16MiB", &path));
    let mut client = connect_when_up(&path);

    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_plasma-store"))
        .args(["-m", "8MiB", "-s"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A second store that starts runs until signalled: give it a while to refuse.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            sigterm(&second);
            let _ = second.wait();
            panic!("the second store started on the live socket");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "second store: {status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "a Plasma store is already serving {}",
            path.display()
        )),
        "{stderr}"
    );

    // The first store still owns the socket: a new client reaches it (16 MiB, not 8) and
    // can create and seal, and the old connection still works.
    let mut again = PlasmaClient::connect(&path).unwrap();
    assert_eq!(again.capacity(), 16 << 20);
    let mut object = again.create(oid(40), 3, 0).unwrap();
    object.data_mut().copy_from_slice(b"abc");
    again.seal(object).unwrap();
    assert!(client.contains(oid(40)).unwrap());

    drop((client, again));
    sigterm(&first.0);
    assert!(first.0.wait().unwrap().success());
    assert!(!path.exists(), "socket removed by its own store on exit");
}

/// A socket nobody listens on (a store that was SIGKILLed) is replaced; a path that is not a
/// socket is refused and left untouched.
#[test]
fn stale_socket_is_replaced_and_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists(), "a closed listener leaves its socket file");
    let store = EmbeddedStore::start(StoreConfig::new(&stale, 1 << 20)).unwrap();
    assert_eq!(PlasmaClient::connect(&stale).unwrap().capacity(), 1 << 20);
    drop(store);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"precious").unwrap();
    let err = EmbeddedStore::start(StoreConfig::new(&file, 1 << 20)).unwrap_err();
    assert!(
        matches!(&err, plasma_store::Error::NotASocket { path } if *path == file),
        "{err}"
    );
    assert!(err.to_string().contains("not a Unix socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

/// On exit a store removes its socket only if the path still holds the socket it bound: if
/// someone replaced it meanwhile, the new one stays.
#[test]
fn store_does_not_remove_a_socket_that_is_no_longer_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plasma.sock");
    let store = EmbeddedStore::start(StoreConfig::new(&path, 1 << 20)).unwrap();
    std::fs::remove_file(&path).unwrap();
    let newcomer = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(store);
    assert!(path.exists(), "the newcomer's socket was deleted");
    // And it is still the newcomer's socket that answers.
    let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    assert!(newcomer.accept().is_ok());
}

/// The in-process store refuses a live socket too (the server's --embedded-store path).
#[test]
fn embedded_store_refuses_a_live_socket() {
    let (_first, _dir, path) = start(1 << 20);
    let err = EmbeddedStore::start(StoreConfig::new(&path, 1 << 20)).unwrap_err();
    assert!(
        matches!(&err, plasma_store::Error::SocketInUse { path: p } if *p == path),
        "{err}"
    );
    PlasmaClient::connect(&path).unwrap();
}

/// The in-process handle (what the server uses with --embedded-store): a create without
/// eviction that does not fit fails with StoreFull and evicts nothing, even though every
/// sealed object is unreferenced and so evictable; the free space is what is left.
#[test]
fn handle_create_without_eviction_fails_with_store_full_and_keeps_every_object() {
    const MIB: u64 = 1 << 20;
    let store = EmbeddedStore::start(StoreConfig::new("", 4 * MIB)).unwrap();
    let handle = store.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for n in 0..4u32 {
            let mut object = handle.create(oid(100 + n), MIB - 64, 0).await.unwrap();
            object.data_mut().fill(n as u8);
            let digest = object_digest(object.data_mut(), b"");
            object.seal(digest).await.unwrap();
        }
        assert_eq!(handle.free_space().await.unwrap(), 256);

        match handle.create_without_eviction(oid(200), 257, 0).await {
            Err(plasma_store::Error::StoreFull { needed, free }) => {
                assert_eq!((needed, free), (257, 256))
            }
            Err(other) => panic!("expected StoreFull, got {other}"),
            Ok(_) => panic!("created beyond the free space without eviction"),
        }
        let got = handle
            .get((0..4).map(|n| oid(100 + n)).collect(), Duration::ZERO)
            .await
            .unwrap();
        for (n, object) in got.iter().enumerate() {
            let object = object
                .as_ref()
                .unwrap_or_else(|| panic!("object {n} evicted"));
            assert!(
                object.data.iter().all(|&b| b == n as u8),
                "object {n} changed"
            );
        }
        drop(got);
        assert_eq!(handle.free_space().await.unwrap(), 256);
        // The same object created the ordinary way evicts (so the objects were evictable).
        handle
            .create(oid(200), 257, 0)
            .await
            .unwrap()
            .abort()
            .await
            .unwrap();
        assert!(
            !handle.contains(oid(100)).await.unwrap(),
            "nothing was evicted"
        );
    });
}
