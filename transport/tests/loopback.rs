//! The transport over real sockets on loopback: QUIC, the TCP fallback, trust, limits.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use plasma_stream_certs::{Fingerprint, Identity, Trust, TrustedFingerprints};
use plasma_stream_transport::{
    Connection, ConnectionKind, Endpoint, Incoming, RecvStream, SendStream, TransportConfig,
    TransportError, TransportMode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the echo server reports about each connection it accepted.
#[derive(Debug)]
struct Accepted {
    kind: ConnectionKind,
    peer_fingerprint: Option<Fingerprint>,
}

fn localhost() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)
}

fn pinned(fingerprints: &[Fingerprint]) -> Trust {
    Trust::Pinned(
        fingerprints
            .iter()
            .copied()
            .collect::<TrustedFingerprints>(),
    )
}

/// Test defaults: the default QUIC connect timeout (1.5 s, generous enough that a loaded CI
/// machine does not fall back by accident); the fallback test shortens it.
fn config(mode: TransportMode) -> TransportConfig {
    TransportConfig {
        mode,
        handshake_timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    }
}

/// Starts a server that echoes length-prefixed messages (u32 LE length, payload) on every
/// exchange until end-of-stream, and reports each accepted connection.
async fn echo_server(
    bind: SocketAddr,
    identity: &Identity,
    trust: &Trust,
    config: TransportConfig,
) -> (Endpoint, mpsc::UnboundedReceiver<Accepted>) {
    let endpoint = Endpoint::server(bind, identity, trust, config)
        .await
        .unwrap();
    let (report, reports) = mpsc::unbounded_channel();
    let server = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let Incoming::Connection(connection) = incoming else {
                continue;
            };
            let _ = report.send(Accepted {
                kind: connection.kind(),
                peer_fingerprint: connection.peer_fingerprint(),
            });
            tokio::spawn(async move {
                while let Ok(Some((send, recv))) = connection.accept_bi().await {
                    tokio::spawn(echo_exchanges(send, recv));
                }
            });
        }
    });
    (endpoint, reports)
}

async fn echo_exchanges(mut send: SendStream, mut recv: RecvStream) {
    loop {
        let mut length = [0u8; 4];
        if recv.read_exact(&mut length).await.is_err() {
            return;
        }
        let mut payload = vec![0u8; u32::from_le_bytes(length) as usize];
        if recv.read_exact(&mut payload).await.is_err() {
            return;
        }
        if send.write_all(&length).await.is_err() || send.write_all(&payload).await.is_err() {
            return;
        }
        if send.flush().await.is_err() {
            return;
        }
    }
}

/// One request/response exchange on an open pair; returns the halves for reuse.
async fn exchange(
    send: &mut SendStream,
    recv: &mut RecvStream,
    payload: &[u8],
) -> Result<Vec<u8>, std::io::Error> {
    send.write_all(&(payload.len() as u32).to_le_bytes())
        .await?;
    send.write_chunk(bytes::Bytes::copy_from_slice(payload))
        .await
        .map_err(std::io::Error::from)?;
    send.flush().await?;
    let mut length = [0u8; 4];
    recv.read_exact(&mut length).await?;
    let mut echoed = vec![0u8; u32::from_le_bytes(length) as usize];
    recv.read_exact(&mut echoed).await?;
    Ok(echoed)
}

async fn echo_once(connection: &Connection, payload: &[u8]) -> Result<(), TransportError> {
    let (mut send, mut recv) = connection.open_bi().await?;
    let echoed = exchange(&mut send, &mut recv, payload).await?;
    assert_eq!(echoed, payload);
    send.finish().await?;
    connection.recycle(send, recv);
    Ok(())
}

#[tokio::test]
async fn quic_connect_and_echo_with_pinned_trust_both_ways() {
    let server_id = Identity::generate(["server"]).unwrap();
    let client_id = Identity::generate(["client"]).unwrap();
    let (server, mut accepted) = echo_server(
        localhost(),
        &server_id,
        &pinned(&[client_id.fingerprint()]),
        config(TransportMode::Auto),
    )
    .await;
    let addr = server.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(server.fingerprint(), server_id.fingerprint());

    let client = Endpoint::client(
        &client_id,
        &pinned(&[server_id.fingerprint()]),
        config(TransportMode::Auto),
    )
    .await
    .unwrap();
    let connection = client.connect(addr).await.unwrap();
    assert_eq!(connection.kind(), ConnectionKind::Quic);
    assert_eq!(connection.peer_fingerprint(), Some(server_id.fingerprint()));
    assert_eq!(connection.remote_addr(), addr);

    // Several concurrent streams on one connection, including a large message.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    let (a, b, c) = tokio::join!(
        echo_once(&connection, b"hello"),
        echo_once(&connection, &big),
        echo_once(&connection, b""),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();

    let seen = accepted.recv().await.unwrap();
    assert_eq!(seen.kind, ConnectionKind::Quic);
    assert_eq!(seen.peer_fingerprint, Some(client_id.fingerprint()));
}

#[tokio::test]
async fn quic_read_chunk_sees_end_of_stream_after_finish() {
    let server_id = Identity::generate(["server"]).unwrap();
    let server = Endpoint::server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Quic),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let sink = tokio::spawn(async move {
        let Some(Incoming::Connection(connection)) = server.accept().await else {
            panic!("no connection")
        };
        let (_send, mut recv) = connection.accept_bi().await.unwrap().unwrap();
        let mut total = 0usize;
        while let Some(chunk) = recv.read_chunk(1 << 20).await.unwrap() {
            assert!(chunk.len() <= 1 << 20);
            total += chunk.len();
        }
        total
    });
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Quic),
    )
    .await
    .unwrap();
    let connection = client.connect(addr).await.unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    for _ in 0..8 {
        send.write_chunk(bytes::Bytes::from(vec![7u8; 1 << 20]))
            .await
            .unwrap();
    }
    send.finish().await.unwrap();
    assert_eq!(sink.await.unwrap(), 8 << 20);
}

#[tokio::test]
async fn client_refuses_an_untrusted_server_and_says_how_to_trust_it() {
    let server_id = Identity::generate(["server"]).unwrap();
    let client_id = Identity::generate(["client"]).unwrap();
    let stranger = Identity::generate(["stranger"]).unwrap().fingerprint();
    let (server, _) = echo_server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await;
    let addr = server.local_addr().unwrap();
    let fp = server_id.fingerprint().to_string();

    for mode in [TransportMode::Quic, TransportMode::Tcp, TransportMode::Auto] {
        let client = Endpoint::client(&client_id, &pinned(&[stranger]), config(mode))
            .await
            .unwrap();
        let err = client.connect(addr).await.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, TransportError::Handshake { .. }),
            "{mode:?}: {message}"
        );
        assert!(
            message.contains(&format!("pass --trust {fp}")),
            "{mode:?}: {message}"
        );
        assert!(message.contains("trust file"), "{mode:?}: {message}");
    }
}

#[tokio::test]
async fn server_refuses_an_untrusted_client() {
    let server_id = Identity::generate(["server"]).unwrap();
    let client_id = Identity::generate(["client"]).unwrap();
    let stranger = Identity::generate(["stranger"]).unwrap().fingerprint();
    let (server, mut accepted) = echo_server(
        localhost(),
        &server_id,
        &pinned(&[stranger]),
        config(TransportMode::Auto),
    )
    .await;
    let addr = server.local_addr().unwrap();
    for mode in [TransportMode::Quic, TransportMode::Tcp] {
        let client = Endpoint::client(
            &client_id,
            &pinned(&[server_id.fingerprint()]),
            config(mode),
        )
        .await
        .unwrap();
        // In TLS 1.3 the client may finish its side of the handshake before the server has
        // judged the client certificate, so the refusal shows at connect or at first use.
        let outcome = match client.connect(addr).await {
            Err(err) => Err(err),
            Ok(connection) => echo_once(&connection, b"let me in").await,
        };
        let err = outcome.expect_err("an untrusted client must not be served");
        let message = err.to_string();
        eprintln!("{mode:?}: {message}");
        assert!(
            message.contains("refused our certificate"),
            "{mode:?}: {message}"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), accepted.recv())
            .await
            .is_err(),
        "the server must not hand out a connection from an untrusted client"
    );
}

#[tokio::test]
async fn insecure_mode_connects_without_pinning_over_quic_and_tcp() {
    let server_id = Identity::generate(["server"]).unwrap();
    let client_id = Identity::generate(["client"]).unwrap();
    let (server, mut accepted) = echo_server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await;
    let addr = server.local_addr().unwrap();
    for (mode, kind) in [
        (TransportMode::Quic, ConnectionKind::Quic),
        (TransportMode::Tcp, ConnectionKind::Tcp),
    ] {
        let client = Endpoint::client(&client_id, &Trust::Insecure, config(mode))
            .await
            .unwrap();
        let connection = client.connect(addr).await.unwrap();
        assert_eq!(connection.kind(), kind);
        assert_eq!(connection.peer_fingerprint(), Some(server_id.fingerprint()));
        echo_once(&connection, b"insecure but encrypted")
            .await
            .unwrap();
        let seen = accepted.recv().await.unwrap();
        assert_eq!(seen.kind, kind);
        assert_eq!(seen.peer_fingerprint, Some(client_id.fingerprint()));
    }
}

#[tokio::test]
async fn auto_falls_back_to_tcp_when_the_peer_serves_no_udp() {
    let server_id = Identity::generate(["server"]).unwrap();
    let client_id = Identity::generate(["client"]).unwrap();
    let trust = pinned(&[server_id.fingerprint(), client_id.fingerprint()]);
    let (server, mut accepted) =
        echo_server(localhost(), &server_id, &trust, config(TransportMode::Tcp)).await;
    let addr = server.local_addr().unwrap();

    // Nothing listens on the UDP port: the ICMP "port unreachable" answer to QUIC's probe
    // triggers the fallback at once, long before the (here generous) QUIC timeout.
    let patient = TransportConfig {
        quic_connect_timeout: Duration::from_secs(20),
        ..config(TransportMode::Auto)
    };
    let client = Endpoint::client(&client_id, &trust, patient).await.unwrap();
    let started = std::time::Instant::now();
    let connection = client.connect(addr).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fell back on port unreachable, not after the QUIC timeout ({:?})",
        started.elapsed()
    );
    assert_eq!(connection.kind(), ConnectionKind::Tcp);
    assert_eq!(connection.peer_fingerprint(), Some(server_id.fingerprint()));
    let big = vec![0x5au8; 2_000_000];
    let (a, b) = tokio::join!(
        echo_once(&connection, b"over tcp"),
        echo_once(&connection, &big)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(accepted.recv().await.unwrap().kind, ConnectionKind::Tcp);

    // The endpoint remembers: the next connection to that peer goes straight to TCP.
    let started = std::time::Instant::now();
    let again = client.connect(addr).await.unwrap();
    assert_eq!(again.kind(), ConnectionKind::Tcp);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    // Quic-only mode does not fall back.
    let quic_only = Endpoint::client(
        &client_id,
        &trust,
        TransportConfig {
            handshake_timeout: Duration::from_millis(500),
            ..config(TransportMode::Quic)
        },
    )
    .await
    .unwrap();
    let err = quic_only.connect(addr).await.unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn recycle_reuses_the_tcp_socket_and_drop_closes_it() {
    let server_id = Identity::generate(["server"]).unwrap();
    let (server, mut accepted) = echo_server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Tcp),
    )
    .await;
    let addr = server.local_addr().unwrap();
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Tcp),
    )
    .await
    .unwrap();
    let connection = client.connect(addr).await.unwrap();
    for round in 0..5 {
        echo_once(&connection, format!("round {round}").as_bytes())
            .await
            .unwrap();
    }
    accepted.recv().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), accepted.recv())
            .await
            .is_err(),
        "five recycled exchanges must use one socket"
    );

    // Not recycled: the socket closes and the next exchange dials a new one.
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    exchange(&mut send, &mut recv, b"abandoned").await.unwrap();
    drop((send, recv));
    echo_once(&connection, b"after drop").await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), accepted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.kind, ConnectionKind::Tcp);
}

#[tokio::test]
async fn tcp_client_dials_parallel_sockets_up_to_its_bound() {
    let server_id = Identity::generate(["server"]).unwrap();
    let (server, mut accepted) = echo_server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Tcp),
    )
    .await;
    let addr = server.local_addr().unwrap();
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        TransportConfig {
            tcp_sockets_per_peer: 3,
            ..config(TransportMode::Tcp)
        },
    )
    .await
    .unwrap();
    let connection = client.connect(addr).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connection.open_bi().await.unwrap());
    }
    // A fourth waits until one is handed back.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), connection.open_bi())
            .await
            .is_err()
    );
    let (send, recv) = held.pop().unwrap();
    connection.recycle(send, recv);
    let (mut send, mut recv) = tokio::time::timeout(Duration::from_secs(5), connection.open_bi())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        exchange(&mut send, &mut recv, b"fourth").await.unwrap(),
        b"fourth"
    );
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(10), accepted.recv())
            .await
            .expect("three sockets were dialed")
            .unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), accepted.recv())
            .await
            .is_err(),
        "a fourth socket was dialed although one was handed back"
    );
}

#[tokio::test]
async fn max_connections_refuses_the_extra_one_and_spares_the_others() {
    let server_id = Identity::generate(["server"]).unwrap();
    let limited = TransportConfig {
        max_connections: 1,
        ..config(TransportMode::Auto)
    };
    let (server, _) = echo_server(localhost(), &server_id, &Trust::Insecure, limited).await;
    let addr = server.local_addr().unwrap();
    let id = Identity::generate(["c"]).unwrap();

    let first = Endpoint::client(&id, &Trust::Insecure, config(TransportMode::Quic))
        .await
        .unwrap();
    let first_connection = first.connect(addr).await.unwrap();
    echo_once(&first_connection, b"first").await.unwrap();

    // A second QUIC connection is refused at once (not timed out, and no fallback to TCP).
    let second = Endpoint::client(&id, &Trust::Insecure, config(TransportMode::Auto))
        .await
        .unwrap();
    let err = second.connect(addr).await.unwrap_err();
    assert!(matches!(err, TransportError::Refused { .. }), "{err}");
    // And over TCP the extra socket is refused before any handshake, with a TLS alert that
    // the dialer words as a refusal (not "tls handshake eof").
    let tcp = Endpoint::client(&id, &Trust::Insecure, config(TransportMode::Tcp))
        .await
        .unwrap();
    let err = tcp.connect(addr).await.unwrap_err();
    assert!(matches!(err, TransportError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("connection limit"), "{err}");

    // The first connection is unaffected.
    echo_once(&first_connection, b"still here").await.unwrap();

    // Once it closes, its slot is free again.
    first_connection.close();
    let mut reconnected = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(connection) = second.connect(addr).await {
            reconnected = Some(connection);
            break;
        }
    }
    echo_once(&reconnected.expect("slot released after close"), b"third")
        .await
        .unwrap();
}

#[tokio::test]
async fn handshakes_racing_for_the_last_slot_end_in_one_connection_and_one_refusal() {
    let server_id = Identity::generate(["server"]).unwrap();
    let limited = TransportConfig {
        max_connections: 1,
        ..config(TransportMode::Quic)
    };
    let (server, _) = echo_server(localhost(), &server_id, &Trust::Insecure, limited).await;
    let addr = server.local_addr().unwrap();
    let id = Identity::generate(["c"]).unwrap();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(
            Endpoint::client(&id, &Trust::Insecure, config(TransportMode::Quic))
                .await
                .unwrap(),
        );
    }
    // Started together, so that several pass the slot check before any takes the slot: the
    // losers are refused before the handshake (Busy) or closed after it (ConnectionLimit),
    // either way as a refusal that says so (over a stream that was already open, the stream
    // error carries the reason).
    let attempts = clients.iter().map(|client| async move {
        let connection = client.connect(addr).await?;
        echo_once(&connection, b"race").await?;
        Ok::<_, TransportError>(connection)
    });
    let results = futures_util::future::join_all(attempts).await;
    let connected = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(connected, 1, "{results:?}");
    for err in results.iter().filter_map(|result| result.as_ref().err()) {
        assert!(
            matches!(err, TransportError::Refused { .. })
                || err.to_string().contains("connection limit"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn legacy_first_byte_is_detected_only_when_enabled() {
    let server_id = Identity::generate(["server"]).unwrap();
    let legacy = TransportConfig {
        legacy_tcp: true,
        ..config(TransportMode::Auto)
    };
    let server = Endpoint::server(localhost(), &server_id, &Trust::Insecure, legacy)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    for first_byte in [0x01u8, 0x02, 0x03] {
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(&[first_byte, 0xaa, 0xbb]).await.unwrap();
        let Some(Incoming::Legacy(mut stream)) = server.accept().await else {
            panic!("expected a legacy connection for {first_byte:#04x}")
        };
        let mut got = [0u8; 3];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(
            got,
            [first_byte, 0xaa, 0xbb],
            "the first byte must still be there"
        );
        stream.write_all(b"ok").await.unwrap();
        let mut reply = [0u8; 2];
        raw.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ok");
    }

    // Without legacy_tcp (and for bytes that are neither TLS nor legacy), the socket is closed.
    let plain = Endpoint::server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await
    .unwrap();
    let plain_addr = plain.local_addr().unwrap();
    for (target, first_byte) in [(plain_addr, 0x02u8), (addr, b'G')] {
        let mut raw = tokio::net::TcpStream::connect(target).await.unwrap();
        raw.write_all(&[first_byte, 0, 0, 0]).await.unwrap();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "{first_byte:#04x}: expected close, got {read:?}"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(100), plain.accept())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn ipv6_loopback_and_dual_stack() {
    let server_id = Identity::generate(["server"]).unwrap();
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await
    .unwrap();

    let (v6, _) = echo_server(
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await;
    let addr = v6.local_addr().unwrap();
    assert!(addr.is_ipv6());
    let connection = client.connect(addr).await.unwrap();
    assert_eq!(connection.kind(), ConnectionKind::Quic);
    echo_once(&connection, b"over ::1").await.unwrap();

    // `[::]` accepts IPv4 and IPv6, over QUIC and TCP.
    let (dual, _) = echo_server(
        plasma_stream_transport::all_interfaces(0),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await;
    let port = dual.local_addr().unwrap().port();
    for ip in [
        std::net::IpAddr::from(Ipv4Addr::LOCALHOST),
        Ipv6Addr::LOCALHOST.into(),
    ] {
        let connection = client.connect(SocketAddr::new(ip, port)).await.unwrap();
        assert_eq!(connection.kind(), ConnectionKind::Quic);
        assert_eq!(connection.remote_addr(), SocketAddr::new(ip, port));
        echo_once(&connection, b"dual stack").await.unwrap();
        let tcp = Endpoint::client(
            &Identity::generate(["c"]).unwrap(),
            &Trust::Insecure,
            config(TransportMode::Tcp),
        )
        .await
        .unwrap();
        echo_once(
            &tcp.connect(SocketAddr::new(ip, port)).await.unwrap(),
            b"dual stack tcp",
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn pooled_connections_are_shared_and_replaced_when_closed() {
    let server_id = Identity::generate(["server"]).unwrap();
    let (server, mut accepted) = echo_server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await;
    let addr = server.local_addr().unwrap();
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await
    .unwrap();
    let (a, b) = tokio::join!(client.pooled(addr), client.pooled(addr));
    let (a, b) = (a.unwrap(), b.unwrap());
    let id = |c: &Connection| c.quic_connection().unwrap().stable_id();
    assert_eq!(id(&a), id(&b));
    echo_once(&a, b"pooled").await.unwrap();
    accepted.recv().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), accepted.recv())
            .await
            .is_err(),
        "one dial for two callers"
    );

    a.close();
    let c = client.pooled(addr).await.unwrap();
    assert_ne!(id(&c), id(&a));
    echo_once(&c, b"reconnected").await.unwrap();
}

#[tokio::test]
async fn every_congestion_controller_moves_data() {
    use plasma_stream_transport::CongestionControl;
    let server_id = Identity::generate(["server"]).unwrap();
    for congestion in [
        CongestionControl::Cubic,
        CongestionControl::NewReno,
        CongestionControl::Bbr,
    ] {
        let tuned = TransportConfig {
            congestion,
            ..config(TransportMode::Quic)
        };
        let (server, _) =
            echo_server(localhost(), &server_id, &Trust::Insecure, tuned.clone()).await;
        let client = Endpoint::client(&Identity::generate(["c"]).unwrap(), &Trust::Insecure, tuned)
            .await
            .unwrap();
        let connection = client.connect(server.local_addr().unwrap()).await.unwrap();
        echo_once(&connection, &vec![1u8; 4_000_000]).await.unwrap();
    }
}

#[tokio::test]
async fn a_silent_tcp_client_takes_no_connection_slot_and_its_handshake_place_only_briefly() {
    let server_id = Identity::generate(["server"]).unwrap();
    let tight = TransportConfig {
        max_connections: 1,
        max_handshakes: 1,
        inbound_handshake_timeout: Duration::from_millis(400),
        ..config(TransportMode::Auto)
    };
    let (server, _) = echo_server(localhost(), &server_id, &Trust::Insecure, tight).await;
    let addr = server.local_addr().unwrap();
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Quic),
    )
    .await
    .unwrap();

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let opened = std::time::Instant::now();
    // Give the server a moment to accept it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // While the silent socket holds the only handshake place, a handshake is refused at once,
    // and the dialer says why.
    let err = client.connect(addr).await.unwrap_err();
    assert!(matches!(err, TransportError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("handshakes in progress"), "{err}");

    // The silent socket is closed after the inbound handshake timeout, not the dial one.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the silent socket is closed: {read:?}"
    );
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "{:?}",
        opened.elapsed()
    );
    // Then a real client gets in, and a silent socket next to it does not take its slot.
    let connection = client.connect(addr).await.unwrap();
    let _silent_again = tokio::net::TcpStream::connect(addr).await.unwrap();
    echo_once(&connection, b"after the silent one")
        .await
        .unwrap();
}

#[tokio::test]
async fn handshakes_from_one_source_are_capped() {
    let server_id = Identity::generate(["server"]).unwrap();
    let capped = TransportConfig {
        max_handshakes_per_source: 2,
        inbound_handshake_timeout: Duration::from_secs(5),
        ..config(TransportMode::Auto)
    };
    let (server, _) = echo_server(localhost(), &server_id, &Trust::Insecure, capped).await;
    let addr = server.local_addr().unwrap();
    // Two silent sockets from 127.0.0.1 take its share: a third handshake from there is
    // refused over either transport.
    let _silent = [
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = Identity::generate(["c"]).unwrap();
    for mode in [TransportMode::Tcp, TransportMode::Quic] {
        let client = Endpoint::client(&id, &Trust::Insecure, config(mode))
            .await
            .unwrap();
        let err = client.connect(addr).await.unwrap_err();
        assert!(
            matches!(err, TransportError::Refused { .. }),
            "{mode:?}: {err}"
        );
    }
}

#[tokio::test]
async fn a_peer_that_is_down_fails_quickly_with_a_clear_error() {
    // Bind and drop, so nothing listens on either protocol at that port.
    let port = std::net::TcpListener::bind(localhost())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let err = client.connect(addr).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn pooled_tcp_fallback_connection_is_reused() {
    let server_id = Identity::generate(["server"]).unwrap();
    let (server, mut accepted) = echo_server(
        localhost(),
        &server_id,
        &Trust::Insecure,
        config(TransportMode::Tcp),
    )
    .await;
    let addr = server.local_addr().unwrap();
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Auto),
    )
    .await
    .unwrap();
    let first = client.pooled(addr).await.unwrap();
    assert_eq!(first.kind(), ConnectionKind::Tcp);
    echo_once(&first, b"one").await.unwrap();
    let started = std::time::Instant::now();
    let second = client.pooled(addr).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "no second QUIC attempt"
    );
    echo_once(&second, b"two").await.unwrap();
    accepted.recv().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), accepted.recv())
            .await
            .is_err(),
        "one socket, recycled"
    );
}

#[tokio::test]
async fn cluster_ca_mode_over_quic_and_tcp() {
    let ca = plasma_stream_certs::CertificateAuthority::generate().unwrap();
    let trust = ca.trust().unwrap();
    let server_id = ca.issue(["server"]).unwrap().identity;
    let (server, mut accepted) =
        echo_server(localhost(), &server_id, &trust, config(TransportMode::Auto)).await;
    let addr = server.local_addr().unwrap();
    let member = ca.issue(["client"]).unwrap().identity;
    for mode in [TransportMode::Quic, TransportMode::Tcp] {
        let client = Endpoint::client(&member, &trust, config(mode))
            .await
            .unwrap();
        let connection = client.connect(addr).await.unwrap();
        echo_once(&connection, b"member").await.unwrap();
        assert_eq!(
            accepted.recv().await.unwrap().peer_fingerprint,
            Some(member.fingerprint())
        );
    }
    // A client with a certificate from elsewhere is refused.
    let outsider = Identity::generate(["outsider"]).unwrap();
    let client = Endpoint::client(&outsider, &Trust::Insecure, config(TransportMode::Quic))
        .await
        .unwrap();
    let outcome = match client.connect(addr).await {
        Err(err) => Err(err),
        Ok(connection) => echo_once(&connection, b"let me in").await,
    };
    assert!(outcome.is_err());
}

#[tokio::test]
async fn an_idle_tcp_exchange_times_out_on_the_server() {
    let server_id = Identity::generate(["server"]).unwrap();
    let impatient = TransportConfig {
        idle_timeout: Duration::from_millis(300),
        ..config(TransportMode::Tcp)
    };
    let (server, _) = echo_server(localhost(), &server_id, &Trust::Insecure, impatient).await;
    let client = Endpoint::client(
        &Identity::generate(["c"]).unwrap(),
        &Trust::Insecure,
        config(TransportMode::Tcp),
    )
    .await
    .unwrap();
    let connection = client.connect(server.local_addr().unwrap()).await.unwrap();
    let (_send, mut recv) = connection.open_bi().await.unwrap();
    // We send nothing; the server's read times out and it closes the socket.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), recv.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}
