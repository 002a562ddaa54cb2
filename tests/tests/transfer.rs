//! COPY, TAKE and SYNC between real server processes with embedded stores on loopback.

use std::time::Duration;

use plasma_stream_tests::{
    client, contains, copy_and_take_edge_sizes, oid, put, put_pull_verify, verify, Server,
    ServerConfig,
};
use stream::{PeerRequest, Status, TransferKind};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn copy_one_object_over_quic() {
    let source = Server::embedded(64 * MIB);
    let destination = Server::embedded(64 * MIB);
    let id = oid(1, 1);
    put(&mut source.store(), id, 12_345, 17);

    let client = client(destination.addr).await;
    assert_eq!(client.connection_kind(), stream::ConnectionKind::Quic);
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.peer_reports[0].objects[0].bytes_moved, 12_345 + 17);
    verify(&mut destination.store(), id, 12_345, 17);
    // COPY keeps the source's object.
    verify(&mut source.store(), id, 12_345, 17);
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_and_take_many_objects_of_edge_sizes() {
    let source = Server::embedded(128 * MIB);
    let destination = Server::embedded(128 * MIB);
    copy_and_take_edge_sizes(&source, &destination, 2, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_pulls_from_two_peers_at_once() {
    let peer_a = Server::embedded(64 * MIB);
    let peer_b = Server::embedded(64 * MIB);
    let destination = Server::embedded(128 * MIB);
    let from_a: Vec<_> = (0..20).map(|n| oid(4, n)).collect();
    let from_b: Vec<_> = (0..20).map(|n| oid(5, n)).collect();
    let (mut store_a, mut store_b) = (peer_a.store(), peer_b.store());
    for (n, id) in from_a.iter().enumerate() {
        put(&mut store_a, *id, 1000 * n as u64 + 1, n);
    }
    for (n, id) in from_b.iter().enumerate() {
        put(&mut store_b, *id, 2000 * n as u64, 3);
    }
    let client = client(destination.addr).await;
    let report = client
        .sync(vec![
            PeerRequest::Copy {
                from: peer_a.addr,
                objects: from_a.clone(),
            },
            PeerRequest::Take {
                from: peer_b.addr,
                objects: from_b.clone(),
            },
        ])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.peer_reports.len(), 2);
    let mut dest = destination.store();
    for (n, id) in from_a.iter().enumerate() {
        verify(&mut dest, *id, 1000 * n as u64 + 1, n);
    }
    for (n, id) in from_b.iter().enumerate() {
        verify(&mut dest, *id, 2000 * n as u64, 3);
        assert!(!contains(&mut store_b, *id));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_loopback() {
    let mut config = ServerConfig::embedded(32 * MIB);
    config.bind = "::1".into();
    let source = Server::start(config.clone());
    let destination = Server::start(config);
    assert!(source.addr.is_ipv6(), "{}", source.addr);
    let id = oid(6, 1);
    put(&mut source.store(), id, 4096, 8);
    let client = client(destination.addr).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), id, 4096, 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_objects_get_0x71_while_the_others_arrive() {
    let source = Server::embedded(32 * MIB);
    let destination = Server::embedded(32 * MIB);
    let present: Vec<_> = (0..4).map(|n| oid(7, n)).collect();
    let missing = oid(7, 100);
    for id in &present {
        put(&mut source.store(), *id, 777, 1);
    }
    let mut objects = present.clone();
    objects.insert(2, missing);
    let client = client(destination.addr).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects,
        }])
        .await
        .unwrap();
    let peer = &report.peer_reports[0];
    assert_eq!(peer.status, Status::NotFound, "{report:?}");
    assert_eq!(peer.objects.len(), 5);
    assert_eq!(peer.objects[2].id, missing);
    assert_eq!(peer.objects[2].status, Status::NotFound);
    let mut dest = destination.store();
    for (outcome, id) in peer
        .objects
        .iter()
        .filter(|o| o.id != missing)
        .zip(&present)
    {
        assert_eq!(outcome.status, Status::Success);
        verify(&mut dest, *id, 777, 1);
    }
    assert!(!contains(&mut dest, missing));
}

#[tokio::test(flavor = "multi_thread")]
async fn already_present_objects_get_0x81() {
    let source = Server::embedded(32 * MIB);
    let destination = Server::embedded(32 * MIB);
    let id = oid(8, 1);
    put(&mut source.store(), id, 10, 0);
    put(&mut destination.store(), id, 10, 0);
    let client = client(destination.addr).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert_eq!(report.peer_reports[0].status, Status::AlreadyInStore);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_peer_gets_0x90() {
    let destination = Server::embedded(32 * MIB);
    // A port nothing listens on (bound, then released).
    let unused = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = client(destination.addr).await;
    let ids = vec![oid(9, 1), oid(9, 2)];
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: unused,
            objects: ids,
        }])
        .await
        .unwrap();
    let peer = &report.peer_reports[0];
    assert_eq!(peer.status, Status::PeerConnectionFailed, "{report:?}");
    assert!(peer
        .objects
        .iter()
        .all(|o| o.status == Status::PeerConnectionFailed));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_is_this_server_is_refused() {
    let server = Server::embedded(32 * MIB);
    let client = client(server.addr).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: server.addr,
            objects: vec![oid(10, 1)],
        }])
        .await
        .unwrap();
    assert_eq!(report.peer_reports[0].status, Status::PeerConnectionFailed);
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_blocked_falls_back_to_tls_over_tcp() {
    // The peer listens on TCP only (as if UDP were blocked): QUIC cannot connect, the
    // destination falls back to TLS over TCP and the objects still move.
    let mut peer_config = ServerConfig::embedded(64 * MIB);
    peer_config.transport = "tcp";
    let source = Server::start(peer_config);
    let destination = Server::embedded(64 * MIB);
    let ids: Vec<_> = (0..12).map(|n| oid(11, n)).collect();
    for (n, id) in ids.iter().enumerate() {
        put(&mut source.store(), *id, (n as u64) * 50_000 + 1, 5);
    }
    let client = client(destination.addr).await;
    let (copy, take) = ids.split_at(6);
    let report = client
        .sync(vec![
            PeerRequest::Copy {
                from: source.addr,
                objects: copy.to_vec(),
            },
            PeerRequest::Take {
                from: source.addr,
                objects: take.to_vec(),
            },
        ])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    let mut dest = destination.store();
    for (n, id) in ids.iter().enumerate() {
        verify(&mut dest, *id, (n as u64) * 50_000 + 1, 5);
    }
    for id in take {
        assert!(!contains(&mut source.store(), *id));
    }
    assert!(
        destination
            .process
            .log()
            .contains("falling back to TLS over TCP"),
        "{}",
        destination.process.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn take_into_a_full_store_leaves_the_object_at_the_source() {
    let source = Server::embedded(64 * MIB);
    let destination = Server::embedded(4 * MIB);
    let id = oid(12, 1);
    put(&mut source.store(), id, 16 * MIB, 3);
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
    assert!(!contains(&mut destination.store(), id));
    verify(&mut source.store(), id, 16 * MIB, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_pulls_objects_into_memory() {
    let server = Server::embedded(32 * MIB);
    let (a, b) = (oid(13, 1), oid(13, 2));
    put(&mut server.store(), a, 300_000, 12);
    put(&mut server.store(), b, 5, 0);
    let client = client(server.addr).await;
    let copied = client.copy(&[a]).await.unwrap();
    assert_eq!(copied[0].data.len(), 300_000);
    assert_eq!(
        copied[0].metadata,
        plasma_stream_tests::metadata_for(&a, 12)
    );
    let mut expected = vec![0; 300_000];
    plasma_stream_tests::fill_pattern(&a, 0, &mut expected);
    assert!(copied[0].data == expected);
    let taken = client.take(&[b]).await.unwrap();
    assert_eq!(taken[0].data.len(), 5);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(contains(&mut server.store(), a));
    assert!(!contains(&mut server.store(), b));
    match client.copy(&[oid(13, 3)]).await {
        Err(stream::Error::Object { status, .. }) => assert_eq!(status, Status::NotFound),
        other => panic!("expected 0x71, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_servers_chain_copy_then_take() {
    let first = Server::embedded(32 * MIB);
    let second = Server::embedded(32 * MIB);
    let third = Server::embedded(32 * MIB);
    let ids: Vec<_> = (0..5).map(|n| oid(14, n)).collect();
    for id in &ids {
        put(&mut first.store(), *id, 9_999, 2);
    }
    let report = client(second.addr)
        .await
        .sync(vec![PeerRequest::Copy {
            from: first.addr,
            objects: ids.clone(),
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    let report = client(third.addr)
        .await
        .sync(vec![PeerRequest::Take {
            from: second.addr,
            objects: ids.clone(),
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    for id in &ids {
        verify(&mut first.store(), *id, 9_999, 2);
        assert!(!contains(&mut second.store(), *id));
        verify(&mut third.store(), *id, 9_999, 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_fingerprints_between_servers_and_client() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Learn each identity's fingerprint by generating it first.
    let fingerprints: Vec<String> = dirs
        .iter()
        .map(|d| plasma_stream_certs_fingerprint(d.path()))
        .collect();
    let (source_fp, dest_fp, client_fp) = (&fingerprints[0], &fingerprints[1], &fingerprints[2]);
    let mut source_config = ServerConfig::embedded(16 * MIB);
    source_config.insecure = false;
    source_config.cert_dir = Some(dirs[0].path().to_path_buf());
    source_config.trust = vec![dest_fp.clone()];
    let mut dest_config = ServerConfig::embedded(16 * MIB);
    dest_config.insecure = false;
    dest_config.cert_dir = Some(dirs[1].path().to_path_buf());
    dest_config.trust = vec![source_fp.clone(), client_fp.clone()];
    let source = Server::start(source_config);
    let destination = Server::start(dest_config);
    assert_eq!(&source.fingerprint, source_fp);
    let id = oid(15, 1);
    put(&mut source.store(), id, 1234, 4);

    let client = stream::Client::builder()
        .identity_dir(dirs[2].path())
        .trust_fingerprint(dest_fp.parse().unwrap())
        .connect(destination.addr)
        .await
        .unwrap();
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), id, 1234, 4);

    // A peer the destination does not trust: 0x90, and its log says how to trust it.
    let mut untrusting = ServerConfig::embedded(16 * MIB);
    untrusting.insecure = false;
    untrusting.trust = vec![client_fp.clone()];
    let untrusting = Server::start(untrusting);
    let client_of_untrusting = stream::Client::builder()
        .identity_dir(dirs[2].path())
        .trust_fingerprint(untrusting.fingerprint.parse().unwrap())
        .connect(untrusting.addr)
        .await
        .unwrap();
    let report = client_of_untrusting
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert_eq!(report.peer_reports[0].status, Status::PeerConnectionFailed);
    let log = untrusting.process.log();
    assert!(log.contains(&format!("--trust {source_fp}")), "{log}");

    // A client the server does not trust is refused.
    let stranger = tempfile::tempdir().unwrap();
    let refused = async {
        let client = stream::Client::builder()
            .identity_dir(stranger.path())
            .trust_fingerprint(dest_fp.parse().unwrap())
            .connect(destination.addr)
            .await?;
        client
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![oid(15, 2)],
            }])
            .await
    };
    assert!(
        refused.await.is_err(),
        "an untrusted client must be refused"
    );
}

fn plasma_stream_certs_fingerprint(dir: &std::path::Path) -> String {
    plasma_stream_tests::fingerprint_of(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_and_take_a_gib_object() {
    let source = Server::embedded(1100 * MIB);
    let destination = Server::embedded(2200 * MIB);
    let (copied, taken) = (oid(16, 1), oid(16, 2));
    put(&mut source.store(), copied, 1 << 30, 100);
    let client = client(destination.addr).await;
    let started = std::time::Instant::now();
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![copied],
        }])
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(report.is_success(), "{report:?}");
    eprintln!("1 GiB COPY over QUIC on loopback (debug build): {elapsed:?}");
    verify(&mut destination.store(), copied, 1 << 30, 100);

    // Free the source for the TAKE object.
    let mut store = source.store();
    store
        .delete(&[plasma_store::ObjectId(*copied.as_bytes())])
        .unwrap();
    put(&mut store, taken, 1 << 30, 0);
    let report = client
        .sync(vec![PeerRequest::Take {
            from: source.addr,
            objects: vec![taken],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), taken, 1 << 30, 0);
    assert!(!contains(&mut store, taken));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_of_the_same_objects_meanwhile_gets_0x80() {
    let source = Server::embedded(256 * MIB);
    let destination = Server::embedded(256 * MIB);
    let big = oid(17, 1);
    put(&mut source.store(), big, 200 * MIB, 0);
    let first_client = client(destination.addr).await;
    let from = source.addr;
    let first = tokio::spawn(async move {
        first_client
            .sync(vec![PeerRequest::Copy {
                from,
                objects: vec![big],
            }])
            .await
    });
    // Wait until the first SYNC has claimed the object.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !destination.process.log().contains("SYNC") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = client(destination.addr)
        .await
        .sync(vec![PeerRequest::Copy {
            from,
            objects: vec![big],
        }])
        .await
        .unwrap();
    let first = first.await.unwrap().unwrap();
    // The two overlap (200 MiB take a while): one pulls, the other is told 0x80. Which one
    // claims first depends on scheduling: the log line waited for comes before the claim,
    // so under load either may be first (it failed once in a parallel run, 2026-12-03).
    let statuses = [first.peer_reports[0].status, second.peer_reports[0].status];
    assert!(
        statuses == [Status::Success, Status::AlreadyReceiving]
            || statuses == [Status::AlreadyReceiving, Status::Success],
        "{first:?} / {second:?}"
    );
    verify(&mut destination.store(), big, 200 * MIB, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_of_65536_objects_large() {
    // The largest peer request (no 16-bit count anywhere): every object moves, while the
    // server keeps a bounded number of streams in flight.
    let source = Server::embedded(256 * MIB);
    let destination = Server::embedded(256 * MIB);
    let ids: Vec<_> = (0..65_536u32).map(|n| oid(18, n)).collect();
    let mut store = source.store();
    for id in &ids {
        put(&mut store, *id, 16, 0);
    }
    let client = client(destination.addr).await;
    let started = std::time::Instant::now();
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: ids.clone(),
        }])
        .await
        .unwrap();
    eprintln!("65,536 objects of 16 bytes in {:?}", started.elapsed());
    assert!(report.is_success(), "{:?}", report.peer_reports[0].status);
    assert_eq!(report.peer_reports[0].objects.len(), 65_536);
    let mut dest = destination.store();
    for id in ids.iter().step_by(997) {
        verify(&mut dest, *id, 16, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_refuses_the_next_connection_cleanly() {
    let source = Server::embedded(16 * MIB);
    let mut config = ServerConfig::embedded(16 * MIB);
    config.extra = vec!["-c".into(), "1".into()];
    let destination = Server::start(config);
    let id = oid(19, 1);
    put(&mut source.store(), id, 100, 0);

    let first = client(destination.addr).await;
    let second = stream::Client::builder()
        .insecure()
        .transport(stream::TransportMode::Quic)
        .connect(destination.addr)
        .await;
    let refused = match second {
        Err(_) => true,
        // A handshake may complete before the refusal shows; the first exchange fails then.
        Ok(second) => second
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![oid(19, 2)],
            }])
            .await
            .is_err(),
    };
    assert!(refused, "a second connection beyond -c 1 must be refused");
    // The first is unaffected.
    let report = first
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), id, 100, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_over_tls_on_tcp() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let ids: Vec<_> = (0..3).map(|n| oid(24, n)).collect();
    for id in &ids {
        put(&mut source.store(), *id, 70_000, 1);
    }
    let client = stream::Client::builder()
        .insecure()
        .transport(stream::TransportMode::Tcp)
        .connect(destination.addr)
        .await
        .unwrap();
    assert_eq!(client.connection_kind(), stream::ConnectionKind::Tcp);
    // Several exchanges in a row over the recycled socket.
    for id in &ids {
        let report = client
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![*id],
            }])
            .await
            .unwrap();
        assert!(report.is_success(), "{report:?}");
    }
    let pulled = client.copy(&ids).await.unwrap();
    assert_eq!(pulled.len(), 3);
    for id in &ids {
        verify(&mut destination.store(), *id, 70_000, 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn already_present_comes_before_peer_connection_failed() {
    let destination = Server::embedded(16 * MIB);
    let unused = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (present, absent) = (oid(25, 1), oid(25, 2));
    put(&mut destination.store(), present, 10, 0);
    let report = client(destination.addr)
        .await
        .sync(vec![PeerRequest::Copy {
            from: unused,
            objects: vec![absent, present],
        }])
        .await
        .unwrap();
    let objects = &report.peer_reports[0].objects;
    assert_eq!(
        objects[0].status,
        Status::PeerConnectionFailed,
        "{report:?}"
    );
    assert_eq!(objects[1].status, Status::AlreadyInStore, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_copies_many_objects_in_order() {
    let server = Server::embedded(32 * MIB);
    let ids: Vec<_> = (0..64).map(|n| oid(26, n)).collect();
    for (n, id) in ids.iter().enumerate() {
        put(&mut server.store(), *id, 1000 + n as u64 * 3000, n % 7);
    }
    let pulled = client(server.addr).await.copy(&ids).await.unwrap();
    assert_eq!(pulled.len(), ids.len());
    for (n, (object, id)) in pulled.iter().zip(&ids).enumerate() {
        assert_eq!(object.id, *id);
        let mut expected = vec![0; 1000 + n * 3000];
        plasma_stream_tests::fill_pattern(id, 0, &mut expected);
        assert!(object.data == expected, "data of {id}");
        assert_eq!(
            object.metadata,
            plasma_stream_tests::metadata_for(id, n % 7)
        );
    }
}

/// `plasma-stream-cli --issue-cert OUT --ca-dir CA`: a CA-issued certificate; its fingerprint.
fn issue(out: &std::path::Path, ca_dir: &std::path::Path) -> String {
    let output = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"))
        .arg("--issue-cert")
        .arg(out)
        .arg("--ca-dir")
        .arg(ca_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_ca_mode_between_servers_and_client() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    let dirs: Vec<_> = ["source", "destination", "client"]
        .iter()
        .map(|n| root.path().join(n))
        .collect();
    for dir in &dirs {
        issue(dir, &ca_dir);
    }
    let ca_pem = ca_dir.join("ca.pem");
    let start = |dir: &std::path::Path| {
        let mut config = ServerConfig::embedded(16 * MIB);
        config.insecure = false;
        config.cert_dir = Some(dir.to_path_buf());
        config.extra = vec!["--ca".into(), ca_pem.display().to_string()];
        Server::start(config)
    };
    let source = start(&dirs[0]);
    let destination = start(&dirs[1]);
    let id = oid(27, 1);
    put(&mut source.store(), id, 4096, 2);
    let client = stream::Client::builder()
        .ca(&ca_pem)
        .unwrap()
        .identity_dir(&dirs[2])
        .connect(destination.addr)
        .await
        .unwrap();
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), id, 4096, 2);

    // A self-signed client (not issued by the CA) is refused.
    let stranger = tempfile::tempdir().unwrap();
    let refused = async {
        stream::Client::builder()
            .ca(&ca_pem)?
            .identity_dir(stranger.path())
            .connect(destination.addr)
            .await?
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![oid(27, 2)],
            }])
            .await
    };
    assert!(
        refused.await.is_err(),
        "a certificate the CA did not issue must be refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prefault_keeps_every_byte() {
    let source = Server::embedded(128 * MIB);
    let destination = Server::start(ServerConfig::embedded(128 * MIB).with_args(&["--prefault"]));
    let objects = [(oid(28, 1), 48 * MIB + 123, 9), (oid(28, 2), 9 * MIB, 0)];
    put_pull_verify(&source, &destination, TransferKind::Copy, &objects).await;
}

/// Resident shared memory of a process in KiB (`RssShmem` in /proc/PID/status).
fn rss_shmem_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssShmem:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn populated_store_is_resident_from_the_start_and_keeps_freed_pages() {
    let source = Server::embedded(128 * MIB);
    let destination = Server::start(ServerConfig::embedded(128 * MIB).with_args(&["--populate"]));
    // The whole store is mapped before the first object arrives (a lazy store maps ~nothing).
    let at_start = rss_shmem_kib(destination.process.pid());
    assert!(at_start >= 120 * 1024, "RssShmem {at_start} KiB at start");

    // Fill, free and fill again: objects land in recycled pages and keep their bytes.
    for round in 0..2u32 {
        let objects = [
            (oid(29, 2 * round + 1), 40 * MIB + 7, 5),
            (oid(29, 2 * round + 2), 3 * MIB, 0),
        ];
        put_pull_verify(&source, &destination, TransferKind::Take, &objects).await;
        let store_ids: Vec<_> = objects
            .iter()
            .map(|&(id, _, _)| plasma_stream_tests::store_id(id))
            .collect();
        destination.store().delete(&store_ids).unwrap();
    }
    // A lazy store hands freed pages back after 2 s; a populated one keeps them.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let after = rss_shmem_kib(destination.process.pid());
    assert!(after >= 120 * 1024, "RssShmem {after} KiB after frees");
}

#[test]
fn populate_needs_an_embedded_store() {
    let out = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-server"))
        .args(["--populate", "-s", "/nonexistent/plasma.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--embedded-store"), "{stderr}");
}

/// Threads of a process whose name starts with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_sets_the_runtime_size() {
    let source = Server::embedded(16 * MIB);
    let destination =
        Server::start(ServerConfig::embedded(16 * MIB).with_args(&["--worker-threads", "3"]));
    assert_eq!(
        threads_named(destination.process.pid(), "tokio-rt-worker"),
        3
    );
    let objects = [(oid(30, 1), 2 * MIB + 1, 3)];
    put_pull_verify(&source, &destination, TransferKind::Copy, &objects).await;

    let zero = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-server"))
        .args(["--worker-threads", "0", "--embedded-store", "1MiB"])
        .output()
        .unwrap();
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--worker-threads"));
}

/// Seconds from the start of a COPY of `count` objects of `size` bytes until each one was
/// sealed at the destination (polled through its Plasma socket every 2 ms), in request order.
async fn completion_times(holder_args: &[&str], count: u32, size: u64) -> Vec<f64> {
    let mut config = ServerConfig::embedded(count as u64 * size + 64 * MIB);
    config.transport = "quic";
    let source = Server::start(config.clone().with_args(holder_args));
    let destination = Server::start(config);
    let ids: Vec<_> = (0..count).map(|n| oid(31, n)).collect();
    for &id in &ids {
        put(&mut source.store(), id, size, 0);
    }
    let client = client(destination.addr).await;
    // The destination keeps its connection to the source for the next SYNC: make it now, so
    // the clock measures the transfer alone. (With the dial inside it, a CI run whose
    // transfer took 0.15 s after a dial of about as long put the first pair at 0.502× the
    // last object's time.)
    let warm_up = [(oid(31, count), 1, 0)];
    put_pull_verify(&source, &destination, TransferKind::Copy, &warm_up).await;
    let start = std::time::Instant::now();
    let watcher = {
        let mut store = destination.store();
        let ids = ids.clone();
        std::thread::spawn(move || {
            let mut done = vec![None; ids.len()];
            while done.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(60) {
                for (slot, &id) in done.iter_mut().zip(&ids) {
                    if slot.is_none() && contains(&mut store, id) {
                        *slot = Some(start.elapsed().as_secs_f64());
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            done
        })
    };
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: ids.clone(),
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    let done = watcher.join().unwrap();
    done.into_iter()
        .map(|t| t.expect("every object was seen sealed"))
        .collect()
}

/// Pairs of objects requested at least `distance` places apart that completed the other way
/// round.
fn completed_out_of_order(times: &[f64], distance: usize) -> Vec<(usize, usize)> {
    (0..times.len())
        .flat_map(|i| (i + distance..times.len()).map(move |j| (i, j)))
        .filter(|&(i, j)| times[j] < times[i])
        .collect()
}

/// Over QUIC the holder sends large objects in the order they were requested, two lanes at a
/// time (`send_order`), so they complete in about that order: the first pair is done long
/// before the last object.
///
/// Neighbours may swap. The two objects in the lanes share the link, and a lane passes to the
/// next object when the holder has *written* its object, while the tail of it is still in
/// flight: a CI run under load finished object 3 before object 1 (0.148 s, 0.162 s). So only
/// objects three or more places apart must complete in request order. (A check on all pairs,
/// allowing two swaps, failed that run with three; a check on object 0 alone failed 1–2 runs
/// in 10.) With `--send-fairness` on the holder the streams share the link and finish in no
/// particular order near the end: 4 runs in 4 failed the check of far pairs.
#[tokio::test(flavor = "multi_thread")]
async fn large_objects_complete_in_request_order_heavy() {
    let times = completion_times(&[], 6, 24 * MIB).await;
    eprintln!("completion times (s), in request order: {times:.3?}");
    let far_swaps = completed_out_of_order(&times, 3);
    let last = times.iter().cloned().fold(0.0, f64::max);
    assert!(
        far_swaps.is_empty(),
        "objects requested 3+ places apart completed out of request order {far_swaps:?}: {times:.3?}"
    );
    assert!(
        times[0].min(times[1]) <= 0.5 * last,
        "the first pair should start finishing well before the last object: {times:.3?}"
    );
}

#[test]
fn out_of_order_counts_only_pairs_far_enough_apart() {
    let ci_run = [0.059, 0.162, 0.170, 0.148, 0.237, 0.229];
    assert_eq!(completed_out_of_order(&ci_run, 1), [(1, 3), (2, 3), (4, 5)]);
    assert!(completed_out_of_order(&ci_run, 3).is_empty());
    let reversed = [0.3, 0.2, 0.1, 0.0];
    assert_eq!(completed_out_of_order(&reversed, 3), [(0, 3)]);
}
