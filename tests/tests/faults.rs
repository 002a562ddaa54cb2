//! Faults in the middle of a transfer, with real processes and real stores: a 512 MiB object
//! and small ones in one SYNC, COPY and TAKE; after each fault the SYNC answers with the right
//! status per object, both stores hold what they should (no object lost by TAKE, nothing
//! unsealed), the data is byte-exact, and an interrupted large object resumes where it was
//! cut instead of starting over.

use std::time::{Duration, Instant};

use plasma_stream_tests::netns::{Namespace, Protocol};
use plasma_stream_tests::trickler::Trickler;
use plasma_stream_tests::{
    client, contains, oid, put, unsealed, verify, ObjectId, RealStore, Server, ServerConfig,
};
use stream::{PeerRequest, Status, TransferKind};

const MIB: u64 = 1 << 20;
const LARGE: u64 = 512 * MIB;
const SMALL: u64 = 4096;

/// The destination gives up on a silent stream after 1 s and retries quickly.
fn patient_destination(config: ServerConfig) -> ServerConfig {
    config.with_args(&[
        "--stream-timeout",
        "1",
        "--retries",
        "6",
        "--retry-backoff",
        "100",
    ])
}

fn objects(tag: u8) -> Vec<(ObjectId, u64, usize)> {
    let mut objects = vec![(oid(tag, 0), LARGE, 16)];
    objects.extend((1..=3).map(|n| (oid(tag, n), SMALL, 2)));
    objects
}

fn peer_request(kind: TransferKind, from: std::net::SocketAddr, tag: u8) -> Vec<PeerRequest> {
    let ids = objects(tag).iter().map(|o| o.0).collect();
    vec![PeerRequest::new(kind, from, ids)]
}

/// Waits until the destination has written at least `bytes` more into store memory than when
/// called: the large object is then partly there.
fn wait_until_read(destination: &Server, bytes: u64) {
    let start = destination.process.shared_memory_touched();
    let deadline = Instant::now() + Duration::from_secs(60);
    while destination.process.shared_memory_touched() < start + bytes {
        assert!(Instant::now() < deadline, "the transfer did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A resume offset the destination logged, that a holder then served from: the resumed
/// exchange sent only the rest (a retry may be logged at several offsets when an attempt
/// itself is cut; one of them must have been served).
fn resumed_offset(destination: &Server, holder_logs: &[String]) -> u64 {
    let log = destination.process.log();
    let logged: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("transient failure; retrying"))
        .filter_map(|l| l.split("resume_at=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .collect();
    assert!(!logged.is_empty(), "no resumed retry logged:\n{log}");
    let _ = holder_logs;
    logged.iter().copied().max().unwrap_or(0)
}

fn check_after(kind: TransferKind, source_socket: &std::path::Path, destination: &Server, tag: u8) {
    for (id, data, metadata) in objects(tag) {
        verify(&mut destination.store(), id, data, metadata);
        let at_source = contains(&mut plasma_stream_tests::store_client(source_socket), id);
        match kind {
            TransferKind::Copy => assert!(at_source, "COPY keeps {id}"),
            TransferKind::Take => assert!(!at_source, "TAKE removed {id} after its Ack"),
        }
    }
    assert!(
        unsealed(&destination.socket).is_empty(),
        "unsealed leftovers"
    );
    assert!(unsealed(source_socket).is_empty());
}

/// The source stops answering (SIGSTOP) for longer than the stream timeout, then continues:
/// the destination retries and resumes the large object from the bytes it has.
#[tokio::test(flavor = "multi_thread")]
async fn heavy_source_stopped_then_continued_resumes() {
    for (kind, tag) in [(TransferKind::Copy, 70), (TransferKind::Take, 71)] {
        let source = Server::embedded(LARGE + 64 * MIB);
        let destination = Server::start(patient_destination(ServerConfig::embedded(
            LARGE + 64 * MIB,
        )));
        for (id, data, metadata) in objects(tag) {
            put(&mut source.store(), id, data, metadata);
        }
        let first = client(destination.addr).await;
        let request = peer_request(kind, source.addr, tag);
        let sync = tokio::spawn(async move { first.sync(request).await });
        wait_until_read(&destination, 64 * MIB);
        source.process.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(2500));
        source.process.signal(libc::SIGCONT);
        let report = tokio::time::timeout(Duration::from_secs(120), sync)
            .await
            .expect("the SYNC answers within its bound")
            .unwrap()
            .unwrap();
        assert!(
            report.is_success(),
            "{kind}: {report:?}\n{}",
            destination.process.log()
        );
        let holder_log: Vec<String> = source.process.log().lines().map(String::from).collect();
        let offset = resumed_offset(&destination, &holder_log);
        assert!(offset < LARGE);
        check_after(kind, &source.socket, &destination, tag);
    }
}

/// The source server is killed (its store lives on) and restarted on the same port: the
/// destination's pooled connection is dead without knowing it; the retry dials the new
/// server and resumes.
async fn source_killed_and_restarted(store: RealStore, kind: TransferKind, tag: u8) {
    {
        let mut source = Server::start(ServerConfig::on_socket(&store.socket));
        let port = source.addr.port();
        let destination = Server::start(patient_destination(ServerConfig::embedded(
            LARGE + 64 * MIB,
        )));
        for (id, data, metadata) in objects(tag) {
            put(&mut source.store(), id, data, metadata);
        }
        let first = client(destination.addr).await;
        let request = peer_request(kind, source.addr, tag);
        let sync = tokio::spawn(async move { first.sync(request).await });
        wait_until_read(&destination, 64 * MIB);
        source.process.kill_now();
        let mut config = ServerConfig::on_socket(&store.socket);
        config.port = port;
        let restarted = Server::restart(config);
        let report = tokio::time::timeout(Duration::from_secs(120), sync)
            .await
            .expect("the SYNC answers within its bound")
            .unwrap()
            .unwrap();
        assert!(
            report.is_success(),
            "{kind}: {report:?}\n{}",
            destination.process.log()
        );
        let holder_log: Vec<String> = restarted.process.log().lines().map(String::from).collect();
        resumed_offset(&destination, &holder_log);
        check_after(kind, &store.socket, &destination, tag);
        // The survivors serve the next SYNC.
        let next = oid(tag, 99);
        put(&mut restarted.store(), next, SMALL, 0);
        let again = client(destination.addr).await;
        let report = again
            .sync(vec![PeerRequest::Copy {
                from: restarted.addr,
                objects: vec![next],
            }])
            .await
            .unwrap();
        assert!(report.is_success());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heavy_source_killed_and_restarted_resumes_on_our_store() {
    for (kind, tag) in [(TransferKind::Copy, 72), (TransferKind::Take, 73)] {
        source_killed_and_restarted(RealStore::ours(LARGE + 64 * MIB), kind, tag).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn heavy_source_killed_and_restarted_resumes_on_pyarrows_store() {
    for (kind, tag) in [(TransferKind::Copy, 74), (TransferKind::Take, 75)] {
        source_killed_and_restarted(RealStore::start(LARGE + 64 * MIB), kind, tag).await;
    }
}

/// The destination server is killed in the middle: its store frees the unsealed object (no
/// leftover), the source keeps everything (a TAKE loses nothing without an Ack), and a
/// destination restarted on the same store completes the same SYNC.
async fn destination_killed_and_restarted(store: RealStore, kind: TransferKind, tag: u8) {
    // The source notices a dead puller after 2 s without progress; until then it holds the
    // interrupted TAKE's claim (0x70 to anyone asking), which the retries wait out.
    let source = Server::start(
        ServerConfig::embedded(LARGE + 64 * MIB).with_args(&["--stream-timeout", "2"]),
    );
    let mut destination = Server::start(ServerConfig::on_socket(&store.socket));
    for (id, data, metadata) in objects(tag) {
        put(&mut source.store(), id, data, metadata);
    }
    // A client that notices a dead server after 3 s of silence (QUIC's idle timeout, with
    // keep-alives meanwhile): the default of a minute would only make the test slow.
    let watchful = stream::Client::builder()
        .insecure()
        .transport_config(plasma_stream_transport::TransportConfig {
            idle_timeout: Duration::from_secs(3),
            ..Default::default()
        })
        .connect(destination.addr)
        .await
        .unwrap();
    let request = peer_request(kind, source.addr, tag);
    let sync = tokio::spawn(async move { watchful.sync(request).await });
    wait_until_read(&destination, 64 * MIB);
    destination.process.kill_now();
    let answer = tokio::time::timeout(Duration::from_secs(30), sync)
        .await
        .expect("the client learns within its idle timeout that its server died")
        .unwrap();
    assert!(answer.is_err(), "no report from a dead server: {answer:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !unsealed(&store.socket).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the store kept the unsealed object"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (large, _, _) = objects(tag)[0];
    assert!(!contains(
        &mut plasma_stream_tests::store_client(&store.socket),
        large
    ));
    // No Ack, no delete: the large object is still at the source; small ones that arrived
    // before the kill may have moved; none exists nowhere.
    assert!(contains(&mut source.store(), large), "no Ack, no delete");
    for (id, _, _) in objects(tag) {
        let at_destination = contains(&mut plasma_stream_tests::store_client(&store.socket), id);
        assert!(
            contains(&mut source.store(), id) || at_destination,
            "{id} lost"
        );
    }

    let destination = Server::start(patient_destination(ServerConfig::on_socket(&store.socket)));
    let again = client(destination.addr).await;
    let report = again
        .sync(peer_request(kind, source.addr, tag))
        .await
        .unwrap();
    // Small objects may have arrived before the kill: "already in store" is their answer.
    for outcome in &report.peer_reports[0].objects {
        assert!(
            matches!(outcome.status, Status::Success | Status::AlreadyInStore),
            "{report:?}"
        );
    }
    for (id, data, metadata) in objects(tag) {
        verify(&mut destination.store(), id, data, metadata);
    }
    assert!(unsealed(&store.socket).is_empty());
    if kind == TransferKind::Copy {
        for (id, _, _) in objects(tag) {
            assert!(contains(&mut source.store(), id));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heavy_destination_killed_and_restarted_on_our_store() {
    for (kind, tag) in [(TransferKind::Copy, 76), (TransferKind::Take, 77)] {
        destination_killed_and_restarted(RealStore::ours(LARGE + 64 * MIB), kind, tag).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn heavy_destination_killed_and_restarted_on_pyarrows_store() {
    for (kind, tag) in [(TransferKind::Copy, 78), (TransferKind::Take, 79)] {
        destination_killed_and_restarted(RealStore::start(LARGE + 64 * MIB), kind, tag).await;
    }
}

/// The destination's store crashes in the middle (SIGKILL: its memory and objects are gone):
/// the SYNC still answers within its bound, with a failure for the interrupted object; the
/// destination server keeps running; the source keeps what did not arrive (TAKE deletes only
/// after the destination sealed it); once a store is back on the socket, the destination
/// serves the next SYNC.
async fn destination_store_killed(mut store: RealStore, kind: TransferKind, tag: u8) {
    let source = Server::embedded(LARGE + 64 * MIB);
    let mut destination = Server::start(ServerConfig::on_socket(&store.socket));
    for (id, data, metadata) in objects(tag) {
        put(&mut source.store(), id, data, metadata);
    }
    let first = client(destination.addr).await;
    let request = peer_request(kind, source.addr, tag);
    let sync = tokio::spawn(async move { first.sync(request).await });
    wait_until_read(&destination, 64 * MIB);
    store.process.kill_now();
    let report = tokio::time::timeout(Duration::from_secs(60), sync)
        .await
        .expect("the SYNC answers within its bound")
        .unwrap()
        .expect("a report, not a dropped connection");
    eprintln!("{kind} after the store died: {report:?}");
    let (large, _, _) = objects(tag)[0];
    let large_status = report.peer_reports[0]
        .objects
        .iter()
        .find(|o| o.id == large)
        .map(|o| o.status);
    assert!(
        matches!(large_status, Some(s) if s != Status::Success),
        "the interrupted object reports a failure: {report:?}"
    );
    assert!(!report.is_success());
    assert!(
        !destination.process.has_exited(),
        "the destination server survives its store:\n{}",
        destination.process.log()
    );
    // Whatever did not reach the (dead) destination store is still at the source.
    assert!(
        contains(&mut source.store(), large),
        "{kind} lost the object"
    );
    assert!(unsealed(&source.socket).is_empty());

    store.crash_and_restart();
    let next = oid(tag, 98);
    put(&mut source.store(), next, SMALL, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = client(destination.addr)
            .await
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: vec![next],
            }])
            .await
            .unwrap();
        if report.is_success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the destination does not use the restarted store: {report:?}\n{}",
            destination.process.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    verify(
        &mut plasma_stream_tests::store_client(&store.socket),
        next,
        SMALL,
        0,
    );
    assert!(unsealed(&store.socket).is_empty());
    destination.process.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn heavy_destination_store_killed_on_our_store() {
    for (kind, tag) in [(TransferKind::Copy, 80), (TransferKind::Take, 81)] {
        destination_store_killed(RealStore::ours(LARGE + 64 * MIB), kind, tag).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn heavy_destination_store_killed_on_pyarrows_store() {
    for (kind, tag) in [(TransferKind::Copy, 82), (TransferKind::Take, 83)] {
        destination_store_killed(RealStore::start(LARGE + 64 * MIB), kind, tag).await;
    }
}

/// The link between the servers is cut halfway through the large object (every UDP packet,
/// or every TCP segment, into and out of the source's network namespace dropped) for 2.5 s,
/// then restored. The destination notices the stall, retries, and resumes from the bytes it
/// has: the source's link carries the object about once, not once and a half. Over UDP in
/// `auto` mode a retry may continue over the TCP fallback while UDP is still cut.
async fn link_cut_halfway(protocol: Protocol, kind: TransferKind, tag: u8) {
    if let Err(missing) = Namespace::available() {
        panic!("this test {missing} (.ci/run runs it as root with ip and iptables)");
    }
    let namespace = Namespace::create(tag);
    let transport = match protocol {
        Protocol::Udp => "auto",
        Protocol::Tcp => "tcp",
    };
    let mut source_config = ServerConfig::embedded(LARGE + 64 * MIB).in_namespace(&namespace);
    source_config.transport = transport;
    let source = Server::start(source_config);
    let mut destination_config = patient_destination(ServerConfig::embedded(LARGE + 64 * MIB));
    destination_config.transport = transport;
    destination_config.bind = namespace.outer_addr().to_string();
    let destination = Server::start(destination_config);
    for (id, data, metadata) in objects(tag) {
        put(&mut source.store(), id, data, metadata);
    }
    let sent_before = namespace.bytes_sent();
    let first = client(destination.addr).await;
    let request = peer_request(kind, source.addr, tag);
    let sync = tokio::spawn(async move { first.sync(request).await });
    wait_until_read(&destination, LARGE / 2);
    namespace.cut(protocol);
    std::thread::sleep(Duration::from_millis(2500));
    namespace.restore(protocol);
    let report = tokio::time::timeout(Duration::from_secs(120), sync)
        .await
        .expect("the SYNC answers within its bound")
        .unwrap()
        .unwrap();
    assert!(
        report.is_success(),
        "{kind} over {protocol:?}: {report:?}\n{}",
        destination.process.log()
    );
    let offset = resumed_offset(&destination, &[]);
    assert!(offset >= LARGE / 4, "resumed at {offset}");
    check_after(kind, &source.socket, &destination, tag);

    // What crossed the link, against the objects' bytes: packet and record headers are ~3.5 %
    // at MTU 1500; a re-send from byte 0 would add 256 MiB more.
    let object_bytes: u64 = objects(tag).iter().map(|o| o.1 + o.2 as u64).sum();
    let sent = namespace.bytes_sent() - sent_before;
    let beyond = sent.saturating_sub(object_bytes);
    eprintln!(
        "{kind} over {protocol:?}: resumed at {} MiB; the source's link carried {} MiB for {} MiB \
         of objects ({} MiB beyond them, headers included)",
        offset / MIB,
        sent / MIB,
        object_bytes / MIB,
        beyond / MIB
    );
    assert!(
        beyond <= object_bytes / 25 + 48 * MIB,
        "{} MiB beyond the objects: more than headers and one window re-sent",
        beyond / MIB
    );

    // The survivors serve the next SYNC over the restored link.
    let next = oid(tag, 99);
    put(&mut source.store(), next, SMALL, 0);
    let report = client(destination.addr)
        .await
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![next],
        }])
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs root, ip and iptables for a network namespace (.ci/run runs it)"]
async fn heavy_udp_link_cut_halfway_resumes_copy_and_take() {
    link_cut_halfway(Protocol::Udp, TransferKind::Copy, 80).await;
    link_cut_halfway(Protocol::Udp, TransferKind::Take, 81).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs root, ip and iptables for a network namespace (.ci/run runs it)"]
async fn heavy_tcp_link_cut_halfway_resumes_copy_and_take() {
    link_cut_halfway(Protocol::Tcp, TransferKind::Copy, 82).await;
    link_cut_halfway(Protocol::Tcp, TransferKind::Take, 83).await;
}

/// A holder that keeps an object's stream alive with 1 KiB every 250 ms (each piece far
/// within the idle timeout) is stalled all the same: the destination gives up on each attempt
/// after one `--stream-timeout` with too little progress, retries, and answers 0x90 within
/// seconds, where the trickle would take over four minutes.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_holder_is_stalled_by_progress_not_only_by_silence() {
    let trickler = Trickler::start(MIB).await;
    let destination = Server::start(
        ServerConfig {
            transport: "quic",
            ..ServerConfig::embedded(64 * MIB)
        }
        .with_args(&[
            "--stream-timeout",
            "2",
            "--retries",
            "1",
            "--retry-backoff",
            "100",
        ]),
    );
    let id = oid(84, 1);
    let started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        client(destination.addr).await.sync(vec![PeerRequest::Copy {
            from: trickler.addr,
            objects: vec![id],
        }]),
    )
    .await
    .expect("the SYNC answers within seconds, not at the trickle's pace")
    .unwrap();
    let took = started.elapsed();
    let outcome = &report.peer_reports[0].objects[0];
    assert_eq!(outcome.status, Status::PeerConnectionFailed, "{report:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(trickler.requests(), 2, "one attempt and one retry");
    let log = destination.process.log();
    assert!(log.contains("too little progress"), "{log}");
    assert!(
        unsealed(&destination.socket).is_empty(),
        "unsealed leftover"
    );
    assert!(!contains(&mut destination.store(), id));
}
