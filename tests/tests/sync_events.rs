//! The SYNC-with-events stream end to end: failed objects' reasons, attempts and bytes in the
//! detailed report, and progress events during a large transfer.

use std::net::SocketAddr;

use plasma_stream_tests::trickler::Trickler;
use plasma_stream_tests::{
    client, contains, oid, pinned_client, pinned_config, put, unsealed, verify, Identities, Server,
    ServerConfig,
};
use stream::{
    ObjectState, PeerRequest, ProgressEvent, ReasonCode, Status, UNKNOWN_TOTAL, WHOLE_SYNC,
};

const MIB: u64 = 1 << 20;

/// An address where nothing listens (a port the OS just gave us and took back), on UDP and
/// TCP.
fn dead_address() -> SocketAddr {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    drop(tcp);
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_peer_is_reported_with_its_reason_and_attempts() {
    let destination =
        Server::start(ServerConfig::embedded(16 * MIB).with_args(&["--retries", "1"]));
    let id = oid(0x51, 1);
    let client = client(destination.addr).await;
    let request = vec![PeerRequest::Copy {
        from: dead_address(),
        objects: vec![id],
    }];
    let report = client
        .sync_with_progress(request.clone(), |_| {})
        .await
        .unwrap();
    let peer = &report.peer_reports[0];
    assert_eq!(peer.status, Status::PeerConnectionFailed, "{report:?}");
    let object = &peer.objects[0];
    assert_eq!(object.id, id);
    assert_eq!(object.status, Status::PeerConnectionFailed);
    assert!(
        matches!(
            object.reason.code,
            ReasonCode::ConnectionRefused | ReasonCode::TimedOut
        ),
        "{object:?}"
    );
    let text = object.reason.text.to_lowercase();
    assert!(
        text.contains("connection refused") || text.contains("timed out"),
        "{object:?}"
    );
    // --retries 1: the dial was tried twice.
    assert_eq!(object.attempts, 2, "{object:?}");
    assert_eq!(object.bytes_moved, 0);

    // The plain SYNC stream still answers the same status, in its old format.
    let plain = client.sync(request).await.unwrap();
    assert_eq!(plain.peer_reports[0].status, Status::PeerConnectionFailed);
    assert_eq!(plain.peer_reports[0].objects[0].id, id);
}

/// A COPY of `id` from `source` through `destination`, asked by the client identity in
/// `client_dir`, fails with 0x90 and this reason.
async fn expect_refused(
    client_dir: &std::path::Path,
    destination: &Server,
    source: std::net::SocketAddr,
    id: plasma_stream_tests::ObjectId,
    code: ReasonCode,
    text: &str,
) {
    let client = pinned_client(client_dir, destination).await;
    let report = client
        .sync_with_progress(
            vec![PeerRequest::Copy {
                from: source,
                objects: vec![id],
            }],
            |_| {},
        )
        .await
        .unwrap();
    let object = &report.peer_reports[0].objects[0];
    assert_eq!(object.status, Status::PeerConnectionFailed, "{report:?}");
    assert_eq!(object.reason.code, code, "{object:?}");
    assert!(object.reason.text.contains(text), "{object:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_refusals_are_named_on_each_side() {
    // 0: the destination, 1: the source, 2: the client.
    let ids = Identities::new(3);
    let client_fp = ids.fp(2);
    let id = oid(0x52, 1);

    // The source does not trust the destination: "the peer refused our certificate".
    let source = Server::start(pinned_config(16 * MIB, ids.dir(1), &[client_fp]));
    put(&mut source.store(), id, 1000, 0);
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(0), &[ids.fp(1), client_fp]).with_args(&["--retries", "0"]),
    );
    let (client, from) = (ids.dir(2), source.addr);
    let refused = ReasonCode::PeerRefusedOurCertificate;
    expect_refused(
        client,
        &destination,
        from,
        id,
        refused,
        "refused our certificate",
    )
    .await;
    drop(destination);

    // The destination does not trust the source: "we do not trust the peer's certificate".
    let destination = Server::start(
        pinned_config(16 * MIB, ids.dir(0), &[client_fp]).with_args(&["--retries", "0"]),
    );
    let untrusted = ReasonCode::UntrustedPeerCertificate;
    expect_refused(client, &destination, from, id, untrusted, "do not trust").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_sync_reports_increasing_progress_and_a_final_total() {
    let source = Server::embedded(160 * MIB);
    let destination = Server::embedded(160 * MIB);
    let id = oid(0x53, 1);
    let size = 64 * MIB;
    put(&mut source.store(), id, size, 0);
    let client = client(destination.addr).await;
    let mut whole = Vec::new();
    let mut states = Vec::new();
    let report = client
        .sync_with_progress(
            vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![id],
            }],
            |event| match event {
                ProgressEvent::Progress(p) if p.peer_request == WHOLE_SYNC => whole.push(p),
                ProgressEvent::Progress(_) => {}
                ProgressEvent::Object(o) => states.push((o.id, o.state)),
            },
        )
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    let object = &report.peer_reports[0].objects[0];
    assert_eq!(object.bytes_moved, size);
    assert_eq!(object.attempts, 1);
    assert_eq!(object.reason.code, ReasonCode::None);
    verify(&mut destination.store(), id, size, 0);

    assert!(whole.len() >= 2, "progress events: {whole:?}");
    assert!(
        whole
            .windows(2)
            .all(|w| w[0].bytes_done <= w[1].bytes_done && w[0].bytes_done < u64::MAX),
        "bytes done must never go down: {whole:?}"
    );
    assert!(
        whole
            .iter()
            .any(|p| p.bytes_done > 0 && p.bytes_done < size),
        "no progress seen mid-transfer: {whole:?}"
    );
    let last = whole.last().unwrap();
    assert_eq!(
        (last.bytes_done, last.bytes_total),
        (size, size),
        "{whole:?}"
    );
    assert_eq!((last.objects_done, last.objects_total), (1, 1));
    assert!(whole
        .iter()
        .all(|p| p.bytes_total == size || p.bytes_total == UNKNOWN_TOTAL));
    assert_eq!(
        states,
        [
            (id, stream::ObjectState::Started),
            (id, stream::ObjectState::Arrived)
        ]
    );
}

/// A cancel while one object is half received and others wait: what arrived stays sealed,
/// the half-received object is aborted (nothing unsealed is left), the waiting ones are never
/// started, and each is reported as cancelled — within seconds, where the trickling holder
/// would take minutes.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_sync_keeps_what_arrived_and_aborts_the_rest() {
    let trickler = Trickler::start(MIB).await;
    let source = Server::embedded(16 * MIB);
    let arrived: Vec<_> = (0..2).map(|n| oid(0x55, n)).collect();
    for &id in &arrived {
        put(&mut source.store(), id, 4096, 8);
    }
    let slow: Vec<_> = (0..3).map(|n| oid(0x56, n)).collect();
    // One stream per peer request: the trickler's first object holds up the other two.
    let destination =
        Server::start(ServerConfig::embedded(64 * MIB).with_args(&["--streams-per-peer", "1"]));
    let client = client(destination.addr).await;
    let request = vec![
        PeerRequest::Copy {
            from: source.addr,
            objects: arrived.clone(),
        },
        PeerRequest::Copy {
            from: trickler.addr,
            objects: slow.clone(),
        },
    ];
    // Cancel once the fast objects are in and the slow one has started arriving.
    let (ready, cancel) = tokio::sync::oneshot::channel::<()>();
    let mut ready = Some(ready);
    let (mut sealed, mut started_slow) = (0, false);
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        client.sync_with_progress_until(
            request,
            |event| {
                if let ProgressEvent::Object(o) = event {
                    match (o.peer_request, o.state) {
                        (0, ObjectState::Arrived) => sealed += 1,
                        (1, ObjectState::Started) => started_slow = true,
                        _ => {}
                    }
                }
                if sealed == 2 && started_slow {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
            },
            async {
                let _ = cancel.await;
            },
        ),
    )
    .await
    .expect("a cancelled SYNC answers at once")
    .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let fast = &report.peer_reports[0];
    assert_eq!(fast.status, Status::Success, "{report:?}");
    for &id in &arrived {
        verify(&mut destination.store(), id, 4096, 8);
    }
    let cut = &report.peer_reports[1];
    assert_eq!(cut.objects.len(), 3, "{report:?}");
    for outcome in &cut.objects {
        assert_eq!(outcome.status, Status::PeerRequestFailed, "{outcome:?}");
        assert_eq!(outcome.reason.code, ReasonCode::Cancelled, "{outcome:?}");
        assert!(!contains(&mut destination.store(), outcome.id));
    }
    // The half-received one had bytes; the two behind it were never started.
    assert_eq!(cut.objects[0].id, slow[0]);
    assert!(cut.objects[0].bytes_moved > 0, "{report:?}");
    assert_eq!(cut.objects[0].attempts, 1, "{report:?}");
    assert_eq!((cut.objects[1].attempts, cut.objects[2].attempts), (0, 0));
    assert_eq!(trickler.requests(), 1, "no object started after the cancel");
    assert!(
        unsealed(&destination.socket).is_empty(),
        "unsealed leftover"
    );
    let log = destination.process.log();
    assert!(log.contains("the client cancelled the SYNC"), "{log}");

    // The connection still serves: the same SYNC again finds the fast objects already there.
    let again = client
        .sync_with_progress(
            vec![PeerRequest::Copy {
                from: source.addr,
                objects: arrived.clone(),
            }],
            |_| {},
        )
        .await
        .unwrap();
    assert!(again.peer_reports[0]
        .objects
        .iter()
        .all(|o| o.status == Status::AlreadyInStore));
}
