//! Raw protocol bytes a well-behaved client would never send: the server answers with the
//! documented code or drops that stream, and keeps serving.

use plasma_stream_certs::{Identity, Trust};
use plasma_stream_protocol::wire::SyncReport;
use plasma_stream_protocol::Status;
use plasma_stream_tests::{oid, put, put_pull_verify, raw_exchange, raw_sync_bytes, Server};
use plasma_stream_transport::{Endpoint, TransportConfig, TransportMode};
use stream::TransferKind;
use tokio::io::AsyncReadExt;

const MIB: u64 = 1 << 20;

/// A connection of a fresh, untrusted-by-anyone identity to `server` (insecure mode), with
/// the endpoint that must outlive it: for sending bytes no well-behaved client would.
async fn raw_connection(
    server: &Server,
    mode: TransportMode,
) -> (Endpoint, plasma_stream_transport::Connection) {
    let identity = Identity::generate(["test"]).unwrap();
    let config = TransportConfig {
        mode,
        ..TransportConfig::default()
    };
    let endpoint = Endpoint::client(&identity, &Trust::Insecure, config)
        .await
        .unwrap();
    let connection = endpoint.connect(server.addr).await.unwrap();
    (endpoint, connection)
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_ids_are_refused_with_0x80_for_the_whole_sync() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let id = oid(60, 1);
    put(&mut source.store(), id, 10, 0);
    let reply = raw_exchange(&destination, &raw_sync_bytes(source.addr, &[vec![id, id]])).await;
    let (report, _) = SyncReport::decode(&reply).unwrap().expect("a whole report");
    assert_eq!(report.peer_reports.len(), 1);
    assert_eq!(report.peer_reports[0].status, Status::AlreadyReceiving);
    assert!(!plasma_stream_tests::contains(&mut destination.store(), id));
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_drops_the_stream_and_the_server_goes_on() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    // Unknown stream kind; a SYNC declaring 4 billion peer requests; an OBJECT with bad flags.
    for request in [vec![0x7f, 1, 2, 3], vec![0x01, 0xff, 0xff, 0xff, 0xff], {
        let mut object = vec![0x02, 0x02];
        object.extend_from_slice(&[0u8; 20]);
        object.extend_from_slice(&0u64.to_le_bytes());
        object.push(0x80);
        object
    }] {
        let reply = raw_exchange(&destination, &request).await;
        assert!(reply.is_empty(), "no reply to {request:02x?}: {reply:02x?}");
    }
    let objects = [(oid(61, 1), 10, 0)];
    put_pull_verify(&source, &destination, TransferKind::Copy, &objects).await;
}

/// A SYNC trickled a byte a second (each byte well within the 3 s stream timeout, so the idle
/// timeout alone would never end it) is dropped once its whole-request allowance has passed,
/// and the server says why; a normal SYNC on the same server works throughout.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_trickled_within_the_idle_timeout_is_dropped_at_its_deadline() {
    use std::time::{Duration, Instant};
    let source = Server::embedded(16 * MIB);
    let destination = Server::start(
        plasma_stream_tests::ServerConfig::embedded(16 * MIB).with_args(&["--stream-timeout", "3"]),
    );
    let id = oid(62, 1);
    put(&mut source.store(), id, 10, 0);
    let (_endpoint, connection) = raw_connection(&destination, TransportMode::Auto).await;
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let request = raw_sync_bytes(source.addr, &[vec![id]]);
    let started = Instant::now();
    let trickler = tokio::spawn(async move {
        for byte in request.iter().take(request.len() - 1) {
            if send.write_all_bytes(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        std::future::pending::<()>().await;
    });
    // The server ends the stream: our read sees the reset (or an end) long before the request
    // would have been whole (~40 s at this pace).
    let mut reply = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(15), recv.read_to_end(&mut reply)).await;
    let elapsed = started.elapsed();
    trickler.abort();
    assert!(
        ended.is_ok(),
        "the trickled request was still open after {elapsed:?}"
    );
    assert!(reply.is_empty(), "{reply:02x?}");
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert!(
        destination.process.log().contains("arrived too slowly"),
        "{}",
        destination.process.log()
    );
    put_pull_verify(
        &source,
        &destination,
        TransferKind::Copy,
        &[(oid(62, 2), 10, 0)],
    )
    .await;
}

/// One connection may have 256 exchanges open at once: a 257th stream waits until some of
/// them end, whatever its owner sends.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_cannot_open_more_than_256_streams_at_once() {
    use std::time::Duration;
    let server = Server::embedded(16 * MIB);
    let (_endpoint, connection) = raw_connection(&server, TransportMode::Quic).await;
    let mut open = Vec::new();
    for _ in 0..256 {
        let (mut send, recv) = connection.open_bi().await.unwrap();
        // The first bytes of a SYNC that never completes: the server holds the stream open.
        send.write_all_bytes(&[0x01, 1, 0]).await.unwrap();
        open.push((send, recv));
    }
    let extra = tokio::time::timeout(Duration::from_secs(2), connection.open_bi()).await;
    assert!(extra.is_err(), "a 257th stream opened at once");
    // Exchanges end (their owner gives up on them): the 257th opens. quinn grants new streams
    // in batches, once more than an eighth of the limit (32) is free again.
    for _ in 0..40 {
        let (mut send, mut recv) = open.pop().unwrap();
        send.reset(0).await.unwrap();
        // The server drops the exchange in turn (its reset is what this read sees).
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(&mut rest)).await;
        assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    }
    let extra = tokio::time::timeout(Duration::from_secs(10), connection.open_bi()).await;
    assert!(
        matches!(extra, Ok(Ok(_))),
        "no stream after 40 ended: {}",
        server.process.log()
    );
    drop(open);
}

/// On a connection it accepted, a server gives the peer little credit to send ahead of its
/// reading (only requests and acknowledgements arrive there): bytes pushed after a request,
/// while the holder is busy with it, stall at about a MiB instead of filling the 16 MiB a
/// pulling stream gets. (quinn would otherwise hold up to 32 MiB per connection of them.)
#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_connection_lets_little_be_sent_ahead_of_the_server() {
    use plasma_stream_protocol::wire::ObjectRequest;
    use std::time::Duration;
    // The holder waits 5 s for the (missing) object to be sealed: it is not reading meanwhile.
    let holder = Server::start(
        plasma_stream_tests::ServerConfig::embedded(16 * MIB).with_args(&["-t", "5000"]),
    );
    let (_endpoint, connection) = raw_connection(&holder, TransportMode::Quic).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let mut request = Vec::new();
    ObjectRequest {
        kind: TransferKind::Copy,
        id: oid(63, 1),
        resume_offset: 0,
        digest_trailer: false,
        object_digest: false,
    }
    .encode(&mut request)
    .unwrap();
    send.write_all_bytes(&request).await.unwrap();
    let piece = vec![0u8; 64 * 1024];
    let mut pushed = 0usize;
    let pushing = async {
        loop {
            send.write_all_bytes(&piece).await.unwrap();
            pushed += piece.len();
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), pushing).await;
    assert!(
        pushed <= 2 * MIB as usize,
        "{pushed} bytes were accepted ahead of the server's reading"
    );
}
