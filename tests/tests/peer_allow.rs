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
