//! The access policy (`--access`), with real servers in pinned mode: each case an attacker
//! tried is refused with 0x63 and moves or deletes nothing; each right granted works.

use std::path::Path;
use std::time::Duration;

use plasma_stream_tests::{
    contains, oid, pinned_client, pinned_config, put, verify, write_file, Identities, Server,
};
use stream::{PeerRequest, Status, TransferKind};

const MIB: u64 = 1 << 20;

const SOURCE: usize = 0;
const DEST: usize = 1;
const CLIENT: usize = 2;

/// B (source) grants A (destination) `copy` only: a read-only peer. A's client may SYNC with
/// TAKE. A can COPY from B; A's TAKE from B is refused and B keeps every object; the client
/// pulling from B directly with its own certificate is no peer of B and gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_peer_can_copy_but_not_take() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    let source_access = write_file(&files, "b", &format!("{} copy hold\n", ids.fp(DEST)));
    let dest_access = write_file(
        &files,
        "a",
        &format!("{} sync-take\n{} hold\n", ids.fp(CLIENT), ids.fp(SOURCE)),
    );
    let source = Server::start(
        pinned_config(16 * MIB, ids.dir(SOURCE), &[ids.fp(DEST), ids.fp(CLIENT)])
            .with_access(&source_access),
    );
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(DEST), &[ids.fp(SOURCE), ids.fp(CLIENT)])
            .with_access(&dest_access),
    );
    let (copied, taken) = (oid(60, 1), oid(60, 2));
    put(&mut source.store(), copied, 5000, 3);
    put(&mut source.store(), taken, 6000, 0);

    let client = pinned_client(ids.dir(CLIENT), &destination).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![copied],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), copied, 5000, 3);

    let report = client
        .sync(vec![PeerRequest::Take {
            from: source.addr,
            objects: vec![taken],
        }])
        .await
        .unwrap();
    assert_eq!(
        report.peer_reports[0].status,
        Status::NotPermitted,
        "{report:?}"
    );
    assert!(
        contains(&mut source.store(), taken),
        "a refused TAKE deletes nothing"
    );
    assert!(!contains(&mut destination.store(), taken));
    assert!(source.process.log().contains("does not grant `take`"));

    // The client, trusted by B's TLS but given no right there, pulls directly: refused
    // before any byte, and its TAKE (which would end in a forged Ack) deletes nothing.
    let direct = pinned_client(ids.dir(CLIENT), &source).await;
    for kind in [TransferKind::Copy, TransferKind::Take] {
        match direct.pull(kind, taken).await {
            Err(stream::Error::Object { status, .. }) => assert_eq!(status, Status::NotPermitted),
            other => panic!("{kind} by an identity without the right: {other:?}"),
        }
    }
    assert!(contains(&mut source.store(), taken));
}

/// A client with `sync` but not `sync-take` cannot make a server TAKE from its peer, and a
/// peer's certificate cannot issue SYNCs.
#[tokio::test(flavor = "multi_thread")]
async fn sync_take_is_a_right_of_its_own_and_peers_are_not_clients() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    let dest_access = write_file(
        &files,
        "a",
        &format!("{} sync\n{} copy hold\n", ids.fp(CLIENT), ids.fp(SOURCE)),
    );
    let source = Server::start(pinned_config(16 * MIB, ids.dir(SOURCE), &[ids.fp(DEST)]));
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(DEST), &[ids.fp(SOURCE), ids.fp(CLIENT)])
            .with_access(&dest_access),
    );
    let id = oid(61, 1);
    put(&mut source.store(), id, 100, 1);

    let client = pinned_client(ids.dir(CLIENT), &destination).await;
    let report = client
        .sync(vec![PeerRequest::Take {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert_eq!(report.peer_reports[0].status, Status::NotPermitted);
    assert_eq!(
        report.peer_reports[0].objects[0].status,
        Status::NotPermitted
    );
    assert!(
        contains(&mut source.store(), id),
        "no TAKE reached the peer"
    );
    assert!(!source.process.log().contains("deleted by TAKE"));

    // The source's certificate is a peer's: as a client of the destination it is refused.
    let as_client = pinned_client(ids.dir(SOURCE), &destination).await;
    let report = as_client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert_eq!(report.peer_reports[0].status, Status::NotPermitted);
    assert!(!contains(&mut destination.store(), id));
    let log = destination.process.log();
    assert!(
        log.contains("refused SYNC") && log.contains(ids.fp(SOURCE)),
        "{log}"
    );
}

/// A client's certificate run as a holder (a rogue server with the client's identity) cannot
/// plant objects: the puller refuses it before creating anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_is_refused_as_a_holder() {
    let ids = Identities::new(2);
    let (dest, client_id) = (0, 1);
    let files = tempfile::tempdir().unwrap();
    let dest_access = write_file(&files, "a", &format!("{} sync\n", ids.fp(client_id)));
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(dest), &[ids.fp(client_id)]).with_access(&dest_access),
    );
    // The rogue holder presents the client's certificate, which the destination trusts.
    let rogue = Server::start(pinned_config(16 * MIB, ids.dir(client_id), &[ids.fp(dest)]));
    let planted = oid(62, 1);
    put(&mut rogue.store(), planted, 4096, 0);

    let client = pinned_client(ids.dir(client_id), &destination).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: rogue.addr,
            objects: vec![planted],
        }])
        .await
        .unwrap();
    assert_eq!(
        report.peer_reports[0].status,
        Status::NotPermitted,
        "{report:?}"
    );
    assert!(
        !contains(&mut destination.store(), planted),
        "nothing planted"
    );
    assert!(destination.process.log().contains("does not grant `hold`"));
}

/// SIGHUP reloads the access file: a client is let in, then out again, without a restart;
/// a file that does not parse leaves the policy as it was.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_access_policy() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    let without_client = format!("{} hold\n", ids.fp(SOURCE));
    let with_client = format!("{}{} sync\n", without_client, ids.fp(CLIENT));
    let dest_access = write_file(&files, "a", &without_client);
    let source = Server::start(pinned_config(16 * MIB, ids.dir(SOURCE), &[ids.fp(DEST)]));
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(DEST), &[ids.fp(SOURCE), ids.fp(CLIENT)])
            .with_access(&dest_access),
    );
    for n in 1..=3 {
        put(&mut source.store(), oid(63, n), 1000, 0);
    }
    let client = pinned_client(ids.dir(CLIENT), &destination).await;
    let sync = |n: u32| {
        let client = client.clone();
        let from = source.addr;
        async move {
            client
                .sync(vec![PeerRequest::Copy {
                    from,
                    objects: vec![oid(63, n)],
                }])
                .await
                .unwrap()
                .peer_reports[0]
                .status
        }
    };
    let hangup = |expect: &str| {
        let before = destination.process.log().matches(expect).count();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &destination.process.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while destination.process.log().matches(expect).count() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no `{expect}` after SIGHUP"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    assert_eq!(sync(1).await, Status::NotPermitted);
    std::fs::write(&dest_access, &with_client).unwrap();
    hangup("access policy reloaded");
    assert_eq!(sync(1).await, Status::Success);
    verify(&mut destination.store(), oid(63, 1), 1000, 0);

    std::fs::write(&dest_access, "this is not an access file\n").unwrap();
    hangup("access file not reloaded");
    assert_eq!(sync(2).await, Status::Success, "a bad file changes nothing");

    std::fs::write(&dest_access, &without_client).unwrap();
    hangup("access policy reloaded");
    assert_eq!(sync(3).await, Status::NotPermitted);
    assert!(!contains(&mut destination.store(), oid(63, 3)));
}

/// A certificate on the revocation list (`--revoked`) is refused although it is pinned.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_certificate_is_refused() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    let revoked = write_file(&files, "revoked", &format!("{}\n", ids.fp(CLIENT)));
    let source = Server::start(pinned_config(16 * MIB, ids.dir(SOURCE), &[ids.fp(DEST)]));
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(DEST), &[ids.fp(SOURCE), ids.fp(CLIENT)])
            .with_args(&["--revoked", revoked.to_str().unwrap()]),
    );
    let id = oid(64, 1);
    put(&mut source.store(), id, 100, 0);
    let refused = async {
        let client = stream::Client::builder()
            .identity_dir(ids.dir(CLIENT))
            .trust_fingerprint(destination.fingerprint.parse().unwrap())
            .connect(destination.addr)
            .await?;
        client
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![id],
            }])
            .await
    };
    assert!(refused.await.is_err(), "a revoked client must be refused");
    assert!(!contains(&mut destination.store(), id));
}

/// An incoming object never evicts what the store holds: one that does not fit fails with
/// 0x64 (store full) and every sealed object stays.
#[tokio::test(flavor = "multi_thread")]
async fn an_object_that_does_not_fit_evicts_nothing() {
    let source = Server::embedded(96 * MIB);
    let destination = Server::embedded(64 * MIB);
    let resident: Vec<_> = (1..=4).map(|n| oid(65, n)).collect();
    for id in &resident {
        put(&mut destination.store(), *id, 10 * MIB, 0);
    }
    let big = oid(65, 9);
    put(&mut source.store(), big, 60 * MIB, 0);
    let client = plasma_stream_tests::client(destination.addr).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![big],
        }])
        .await
        .unwrap();
    assert_eq!(
        report.peer_reports[0].objects[0].status,
        Status::StoreFull,
        "{report:?}"
    );
    for id in &resident {
        verify(&mut destination.store(), *id, 10 * MIB, 0);
    }
    assert!(!contains(&mut destination.store(), big));
    assert!(contains(&mut source.store(), big));
}

/// A granted TAKE leaves an audit trail an operator can join on the object id: the puller
/// logs which client (identity and address) asked for it and from which holder, the holder
/// logs the deletion with the puller's identity.
#[tokio::test(flavor = "multi_thread")]
async fn a_take_is_logged_by_the_puller_and_the_holder_with_the_same_object_id() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    let source_access = write_file(&files, "b", &format!("{} copy take\n", ids.fp(DEST)));
    let dest_access = write_file(
        &files,
        "a",
        &format!("{} sync-take\n{} hold\n", ids.fp(CLIENT), ids.fp(SOURCE)),
    );
    let source = Server::start(
        pinned_config(16 * MIB, ids.dir(SOURCE), &[ids.fp(DEST)]).with_access(&source_access),
    );
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(DEST), &[ids.fp(SOURCE), ids.fp(CLIENT)])
            .with_access(&dest_access),
    );
    let id = oid(65, 1);
    put(&mut source.store(), id, 4000, 2);
    let client = pinned_client(ids.dir(CLIENT), &destination).await;
    let report = client
        .sync(vec![PeerRequest::Take {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), id, 4000, 2);
    assert!(!contains(&mut source.store(), id));

    let hex = id.to_string();
    let asked = destination
        .process
        .log()
        .lines()
        .find(|l| l.contains("TAKE asked by a client"))
        .map(str::to_owned)
        .expect("the puller's audit line");
    assert!(asked.contains(&format!("object={hex}")), "{asked}");
    assert!(asked.contains(ids.fp(CLIENT)), "{asked}");
    assert!(asked.contains("client_addr=127.0.0.1:"), "{asked}");
    assert!(
        asked.contains(&format!("holder={}", source.addr)),
        "{asked}"
    );
    let deleted = source
        .process
        .log()
        .lines()
        .find(|l| l.contains("deleted by TAKE"))
        .map(str::to_owned)
        .expect("the holder's audit line");
    assert!(deleted.contains(&format!("object={hex}")), "{deleted}");
    assert!(deleted.contains(ids.fp(DEST)), "{deleted}");
}

/// `--issue-cert` of the cluster CA in `ca_dir` for `name` into `out`.
fn issue_for(name: &str, out: &Path, ca_dir: &Path) {
    let output = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"))
        .arg("--issue-cert")
        .arg(out)
        .arg("--ca-dir")
        .arg(ca_dir)
        .args(["--cert-name", name])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_ca_mode_the_access_file_names_members_by_their_issued_subject() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    let dir = |name: &str| root.path().join(name);
    for name in ["node-a", "node-b", "scheduler", "intern"] {
        issue_for(name, &dir(name), &ca_dir);
    }
    let ca_pem = ca_dir.join("ca.pem");
    let start = |name: &str, access: &Path| {
        let mut config = plasma_stream_tests::ServerConfig::embedded(16 * MIB);
        config.insecure = false;
        config.cert_dir = Some(dir(name));
        config.extra = vec![
            "--ca".into(),
            ca_pem.display().to_string(),
            "--access".into(),
            access.display().to_string(),
        ];
        Server::start(config)
    };
    let files = tempfile::tempdir().unwrap();
    let source_access = write_file(&files, "a", "subject:node-b copy take\n");
    let dest_access = write_file(
        &files,
        "b",
        "subject:scheduler sync-take\nsubject:intern sync\nsubject:node-a hold\n",
    );
    let source = start("node-a", &source_access);
    let destination = start("node-b", &dest_access);
    let connect = |who: &str| {
        let identity = dir(who);
        let ca_pem = ca_pem.clone();
        let addr = destination.addr;
        async move {
            stream::Client::builder()
                .ca(&ca_pem)
                .unwrap()
                .identity_dir(&identity)
                .connect(addr)
                .await
                .unwrap()
        }
    };
    let (taken, copied) = (oid(62, 1), oid(62, 2));
    put(&mut source.store(), taken, 100, 1);
    put(&mut source.store(), copied, 100, 1);

    // The intern may SYNC, but only COPY: its TAKE is refused and deletes nothing.
    let intern = connect("intern").await;
    let take = |id| {
        vec![PeerRequest::Take {
            from: source.addr,
            objects: vec![id],
        }]
    };
    let report = intern.sync(take(taken)).await.unwrap();
    assert_eq!(
        report.peer_reports[0].status,
        Status::NotPermitted,
        "{report:?}"
    );
    assert!(
        contains(&mut source.store(), taken),
        "the refused TAKE deleted"
    );
    let report = intern
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![copied],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), copied, 100, 1);

    // The scheduler's certificate, issued for `scheduler`, holds sync-take: the TAKE moves
    // the object, and the source allowed it because the destination is `node-b`.
    let scheduler = connect("scheduler").await;
    let report = scheduler.sync(take(taken)).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), taken, 100, 1);
    assert!(
        !contains(&mut source.store(), taken),
        "TAKE left the source's copy"
    );
    assert!(
        destination.process.log().contains("(scheduler)"),
        "the audit names the client by its subject"
    );
}
