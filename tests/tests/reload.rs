//! SIGHUP re-reads the trust (`--trust-file`, `--revoked`) beside the access file, with real
//! servers in pinned mode: a peer is let in and out again without a restart, a transfer in
//! flight during the reload completes, a certificate revoked later is refused, and a trust
//! file that does not parse leaves the old trust in force.

use std::time::{Duration, Instant};

use plasma_stream_tests::{
    contains, oid, pinned_client, pinned_config, put, unsealed, verify, write_file, Identities,
    Server,
};
use stream::{PeerRequest, Status};

const MIB: u64 = 1 << 20;
const SOURCE: usize = 0;
const DEST: usize = 1;
const CLIENT: usize = 2;

/// Sends SIGHUP and waits until the log shows `expect` once more than before.
fn hangup(server: &Server, expect: &str) {
    let before = server.process.log().matches(expect).count();
    server.process.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.process.log().matches(expect).count() == before {
        assert!(Instant::now() < deadline, "no `{expect}` after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status of one COPY of `id` from `from`, asked of `client`'s server.
async fn copy(client: &stream::Client, from: std::net::SocketAddr, id: stream::ObjectId) -> Status {
    client
        .sync(vec![PeerRequest::Copy {
            from,
            objects: vec![id],
        }])
        .await
        .unwrap()
        .peer_reports[0]
        .status
}

/// The destination's trust file first lacks the source: the destination refuses the
/// source's certificate when it dials it. Added + SIGHUP, the COPY works; removed + SIGHUP
/// while a 192 MiB COPY runs, that COPY completes byte for byte and the next is refused.
#[tokio::test(flavor = "multi_thread")]
async fn heavy_sighup_reloads_the_trust_file_and_a_transfer_in_flight_completes() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    let without_source = format!("{}  client\n", ids.fp(CLIENT));
    let with_source = format!("{without_source}{}  source\n", ids.fp(SOURCE));
    let trust_file = write_file(&files, "trusted", &without_source);
    let source = Server::start(pinned_config(400 * MIB, ids.dir(SOURCE), &[ids.fp(DEST)]));
    let destination = Server::start(
        pinned_config(400 * MIB, ids.dir(DEST), &[])
            .with_args(&["--trust-file", trust_file.to_str().unwrap()]),
    );
    let (small, big, after) = (oid(70, 1), oid(70, 2), oid(70, 3));
    let big_size = 192 * MIB;
    put(&mut source.store(), small, 1000, 0);
    put(&mut source.store(), big, big_size, 16);
    put(&mut source.store(), after, 1000, 0);
    let client = pinned_client(ids.dir(CLIENT), &destination).await;

    assert_ne!(copy(&client, source.addr, small).await, Status::Success);
    assert!(!contains(&mut destination.store(), small));

    std::fs::write(&trust_file, &with_source).unwrap();
    hangup(&destination, "trust reloaded");
    assert!(destination.process.log().contains("pinned_added=1"));
    assert_eq!(copy(&client, source.addr, small).await, Status::Success);
    verify(&mut destination.store(), small, 1000, 0);

    let in_flight = tokio::spawn({
        let client = client.clone();
        let from = source.addr;
        async move { copy(&client, from, big).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !unsealed(&destination.socket).contains(&big) {
        assert!(Instant::now() < deadline, "the big COPY never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(&trust_file, &without_source).unwrap();
    hangup(&destination, "trust reloaded");
    assert!(destination.process.log().contains("pinned_removed=1"));
    assert!(
        !in_flight.is_finished(),
        "the reload must happen while the COPY is in flight (make the object bigger)"
    );
    assert_eq!(in_flight.await.unwrap(), Status::Success);
    verify(&mut destination.store(), big, big_size, 16);

    assert_ne!(copy(&client, source.addr, after).await, Status::Success);
    assert!(!contains(&mut destination.store(), after));
}

/// A trust file that does not parse leaves the old trust in force (new handshakes still
/// succeed) and the log names the file and line; a certificate added to `--revoked` and
/// SIGHUP is refused from then on.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_rereads_the_revocation_list_and_keeps_the_trust_if_the_file_is_broken() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    let trusted = format!("{}\n{}\n", ids.fp(CLIENT), ids.fp(SOURCE));
    let trust_file = write_file(&files, "trusted", &trusted);
    let revoked = write_file(&files, "revoked", "# nobody yet\n");
    let source = Server::start(pinned_config(16 * MIB, ids.dir(SOURCE), &[ids.fp(DEST)]));
    let destination = Server::start(pinned_config(16 * MIB, ids.dir(DEST), &[]).with_args(&[
        "--trust-file",
        trust_file.to_str().unwrap(),
        "--revoked",
        revoked.to_str().unwrap(),
    ]));
    for n in 1..=3 {
        put(&mut source.store(), oid(71, n), 1000, 0);
    }
    let client = pinned_client(ids.dir(CLIENT), &destination).await;
    assert_eq!(
        copy(&client, source.addr, oid(71, 1)).await,
        Status::Success
    );

    std::fs::write(
        &trust_file,
        format!("{}\nnot-a-fingerprint\n", ids.fp(CLIENT)),
    )
    .unwrap();
    hangup(&destination, "trust not reloaded");
    let log = destination.process.log();
    let named = format!("{}:2", trust_file.display());
    assert!(log.contains(&named), "the log names {named}:\n{log}");
    // A new handshake, of the client and of the destination dialing the source afresh,
    // still goes by the old trust.
    let again = pinned_client(ids.dir(CLIENT), &destination).await;
    assert_eq!(copy(&again, source.addr, oid(71, 2)).await, Status::Success);

    std::fs::write(&trust_file, &trusted).unwrap();
    std::fs::write(&revoked, format!("{}\n", ids.fp(CLIENT))).unwrap();
    hangup(&destination, "trust reloaded");
    assert!(destination.process.log().contains("revoked_now=1"));
    let refused = async {
        let client = stream::Client::builder()
            .identity_dir(ids.dir(CLIENT))
            .trust_fingerprint(destination.fingerprint.parse().unwrap())
            .connect(destination.addr)
            .await?;
        client
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![oid(71, 3)],
            }])
            .await
    };
    assert!(
        refused.await.is_err(),
        "a client revoked on SIGHUP must be refused"
    );
    assert!(!contains(&mut destination.store(), oid(71, 3)));
}
