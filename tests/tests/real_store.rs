//! The same transfers with pyarrow 11's real `plasma_store` under the servers (through the
//! pure-Rust socket client pool), and mixed with an embedded store. Verified byte for byte with
//! the Plasma client, and the digest checked by pyarrow itself.

use plasma_stream_tests::{
    client, contains, copy_and_take_edge_sizes, oid, put, python, verify, RealStore, Server,
    ServerConfig,
};
use stream::{PeerRequest, Status};

const MIB: u64 = 1 << 20;

/// Runs a script with pyarrow 11's Python; it must succeed (its stderr is the failure
/// message). Returns what it printed.
fn run_python(script: &str) -> String {
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn copy_and_take_between_real_stores() {
    let source_store = RealStore::start(128 * MIB);
    let destination_store = RealStore::start(128 * MIB);
    let source = Server::start(ServerConfig::on_socket(&source_store.socket));
    let destination = Server::start(ServerConfig::on_socket(&destination_store.socket));
    let (copies, _takes) = copy_and_take_edge_sizes(&source, &destination, 40, 41).await;
    // pyarrow agrees on the digest the receiver sealed with.
    let script = format!(
        "import pyarrow.plasma as p\nc=p.connect('{}')\nfor h in {:?}:\n    o=p.ObjectID(bytes.fromhex(h))\n    assert c.contains(o)\n    print(c.hash(o).hex())\n",
        destination_store.socket.display(),
        copies.iter().map(|id| id.to_string()).collect::<Vec<_>>()
    );
    let stdout = run_python(&script);
    let hashes: Vec<_> = stdout.lines().map(str::to_owned).collect();
    let mut source_client = source.store();
    for (id, hash) in copies.iter().zip(&hashes) {
        let found = source_client
            .get(&[plasma_store::ObjectId(*id.as_bytes())], None)
            .unwrap();
        let object = found.into_iter().next().flatten().unwrap();
        let expected = plasma_store::digest::object_digest(&object.data, &object.metadata);
        assert_eq!(hex::encode(expected), *hash, "digest of {id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn three_servers_real_and_embedded_stores_with_partial_failure() {
    let real = RealStore::start(64 * MIB);
    let peer_real = Server::start(ServerConfig::on_socket(&real.socket));
    let peer_embedded = Server::embedded(64 * MIB);
    let destination = Server::embedded(128 * MIB);
    let from_real: Vec<_> = (0..10).map(|n| oid(42, n)).collect();
    let from_embedded: Vec<_> = (0..10).map(|n| oid(43, n)).collect();
    for id in &from_real {
        put(&mut peer_real.store(), *id, 50_000, 10);
    }
    for id in &from_embedded[1..] {
        put(&mut peer_embedded.store(), *id, 70_000, 0);
    }
    let client = client(destination.addr).await;
    let report = client
        .sync(vec![
            PeerRequest::Take {
                from: peer_real.addr,
                objects: from_real.clone(),
            },
            PeerRequest::Copy {
                from: peer_embedded.addr,
                objects: from_embedded.clone(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(report.peer_reports[0].status, Status::Success, "{report:?}");
    assert_eq!(
        report.peer_reports[1].status,
        Status::NotFound,
        "{report:?}"
    );
    let mut dest = destination.store();
    for id in &from_real {
        verify(&mut dest, *id, 50_000, 10);
        assert!(!contains(&mut peer_real.store(), *id));
    }
    for id in &from_embedded[1..] {
        verify(&mut dest, *id, 70_000, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn take_into_a_full_real_store_leaves_the_object_at_the_source() {
    let small = RealStore::start(8 * MIB);
    let source = Server::embedded(64 * MIB);
    let destination = Server::start(ServerConfig::on_socket(&small.socket));
    let id = oid(44, 1);
    put(&mut source.store(), id, 32 * MIB, 0);
    let client = client(destination.addr).await;
    let report = client
        .sync(vec![PeerRequest::Take {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert_eq!(
        report.peer_reports[0].status,
        Status::StoreFull,
        "{report:?}"
    );
    verify(&mut source.store(), id, 32 * MIB, 0);
    assert!(!contains(&mut destination.store(), id));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn copy_and_take_a_gib_object_between_real_stores() {
    let source_store = RealStore::start(1100 * MIB);
    let destination_store = RealStore::start(1100 * MIB);
    let source = Server::start(ServerConfig::on_socket(&source_store.socket));
    let destination = Server::start(ServerConfig::on_socket(&destination_store.socket));
    let id = oid(45, 1);
    put(&mut source.store(), id, 1 << 30, 64);
    let client = client(destination.addr).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), id, 1 << 30, 64);

    // And TAKE it back: delete the source's copy, then pull it from the destination.
    let mut source_client = source.store();
    source_client
        .delete(&[plasma_store::ObjectId(*id.as_bytes())])
        .unwrap();
    assert!(!contains(&mut source_client, id));
    let back = plasma_stream_tests::client(source.addr).await;
    let report = back
        .sync(vec![PeerRequest::Take {
            from: destination.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut source_client, id, 1 << 30, 64);
    assert!(!contains(&mut destination.store(), id));
}

#[test]
fn server_without_a_store_refuses_to_start_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-server"))
        .arg("-s")
        .arg(dir.path().join("nothing.sock"))
        .arg("-p")
        .arg("0")
        .arg("--insecure")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--embedded-store") && stderr.contains("plasma_store"),
        "{stderr}"
    );
}

/// `put` into a server beside pyarrow's `plasma_store`: pyarrow reads back the bytes and
/// agrees on the digest; `ls` through the server lists it sealed with its sizes.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn put_and_ls_beside_a_real_store() {
    let store = RealStore::start(64 * MIB);
    let server = Server::start(ServerConfig::on_socket(&store.socket));
    let client = client(server.addr).await;
    let id = oid(94, 1);
    let data: Vec<u8> = (0..3 * MIB as usize + 5).map(|i| (i % 251) as u8).collect();
    client
        .put_bytes(id, data.clone().into(), b"md".to_vec().into())
        .await
        .unwrap();
    let listed = client.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert_eq!(
        (
            listed[0].data_size,
            listed[0].metadata_size,
            listed[0].sealed
        ),
        (data.len() as u64, 2, true)
    );
    let script = format!(
        "import pyarrow.plasma as p\nc=p.connect('{}')\no=p.ObjectID(bytes.fromhex('{id}'))\n\
         [b]=c.get_buffers([o])\nd=bytes(b)\nassert len(d)=={} and all(d[i]==i%251 for i in range(0,len(d),4099)), 'data'\n\
         [m]=c.get_metadata([o])\nassert bytes(m)==b'md', 'metadata'\nprint(c.hash(o).hex())\n",
        store.socket.display(),
        data.len()
    );
    let stdout = run_python(&script);
    let expected = plasma_store::digest::object_digest(&data, b"md");
    assert_eq!(stdout.trim(), hex::encode(expected));
    // A second put of the same ID: 0x81, and the store still holds the first.
    let error = client
        .put_bytes(id, vec![0u8; 10].into(), bytes::Bytes::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            stream::Error::Object {
                status: Status::AlreadyInStore,
                ..
            }
        ),
        "{error:?}"
    );
}
