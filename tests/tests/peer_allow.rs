//! `--peer-allow`: a server dials only peers inside the allowed networks. A SYNC naming a peer
//! outside them fails with 0x63 (not permitted) for every object, and no packet reaches the
//! peer (its debug log shows no accepted connection); inside them the same SYNC works.

use plasma_stream_tests::{client, contains, oid, put, verify, Server, ServerConfig};
use stream::{PeerRequest, Status};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_outside_peer_allow_is_refused_with_0x63_and_not_dialled() {
    let source = Server::start(ServerConfig::embedded(16 * MIB).with_args(&["--log", "debug"]));
    let id = oid(71, 1);
    put(&mut source.store(), id, 1000, 4);

    let refusing =
        Server::start(ServerConfig::embedded(16 * MIB).with_args(&["--peer-allow", "10.0.0.0/8"]));
    let report = client(refusing.addr)
        .await
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    let peer = &report.peer_reports[0];
    assert_eq!(peer.status, Status::NotPermitted, "{report:?}");
    assert!(peer
        .objects
        .iter()
        .all(|o| o.status == Status::NotPermitted));
    assert!(!contains(&mut refusing.store(), id));
    assert!(
        refusing.process.log().contains("outside --peer-allow"),
        "the log says why"
    );
    assert!(
        !source.process.log().contains("connection accepted"),
        "the refused peer was dialled:\n{}",
        source.process.log()
    );

    // The control: inside the allowed networks the same SYNC dials and moves the object (and
    // the source's log does show the connection, so the assertion above can fail).
    let allowing = Server::start(ServerConfig::embedded(16 * MIB).with_args(&[
        "--peer-allow",
        "10.0.0.0/8",
        "--peer-allow",
        "127.0.0.0/8",
    ]));
    let report = client(allowing.addr)
        .await
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id],
        }])
        .await
        .unwrap();
    assert_eq!(report.peer_reports[0].status, Status::Success, "{report:?}");
    verify(&mut allowing.store(), id, 1000, 4);
    assert!(source.process.log().contains("connection accepted"));
}

/// A SYNC naming 12 unreachable peers (closed UDP ports on loopback: each QUIC-only dial waits
/// out its handshake, ~10 s) on a server with `--max-dials 4` and `--retries 0`: at most 4
/// dials are in progress at once (counted from the server's log: "dialling the peer" opens one,
/// "cannot connect to the peer" closes it), so it takes three rounds; every object gets 0x90.
#[tokio::test(flavor = "multi_thread")]
async fn dials_of_one_sync_are_capped() {
    const PEERS: usize = 12;
    const CAP: usize = 4;
    let mut config = ServerConfig::embedded(16 * MIB);
    // QUIC only: a dial then waits its connect timeout (auto mode's TCP fallback is refused
    // at once on loopback, and the dials would be too short to overlap).
    config.transport = "quic";
    let destination =
        Server::start(config.with_args(&["--max-dials", "4", "--retries", "0", "--log", "debug"]));
    let unused: Vec<_> = (0..PEERS)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let peers: Vec<_> = unused.iter().map(|s| s.local_addr().unwrap()).collect();
    drop(unused);
    let requests = peers
        .iter()
        .enumerate()
        .map(|(i, &from)| PeerRequest::Copy {
            from,
            objects: vec![oid(72, i as u32)],
        })
        .collect();
    let started = std::time::Instant::now();
    let report = client(destination.addr).await.sync(requests).await.unwrap();
    let elapsed = started.elapsed();
    assert!(report
        .peer_reports
        .iter()
        .all(|p| p.status == Status::PeerConnectionFailed));

    let log = destination.process.log();
    let (mut in_flight, mut most, mut dials) = (0usize, 0usize, 0usize);
    for line in log.lines() {
        if line.contains("dialling the peer") {
            in_flight += 1;
            dials += 1;
            most = most.max(in_flight);
        } else if line.contains("cannot connect to the peer") {
            in_flight = in_flight.saturating_sub(1);
        }
    }
    eprintln!("{dials} dials, at most {most} at once, SYNC answered in {elapsed:?}");
    assert_eq!(dials, PEERS, "one dial per peer (--retries 0)");
    assert!(most <= CAP, "{most} dials at once, cap {CAP}");
    // Three rounds of one dial's wait (~30 s measured); uncapped, all 12 wait together.
    assert!(elapsed >= std::time::Duration::from_secs(4), "{elapsed:?}");
    assert!(elapsed < std::time::Duration::from_secs(60), "{elapsed:?}");
}
