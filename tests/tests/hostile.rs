//! Raw protocol bytes a well-behaved client would never send: the server answers with the
//! documented code or drops that stream, and keeps serving.

use plasma_stream_certs::{Identity, Trust};
use plasma_stream_protocol::wire::SyncReport;
use plasma_stream_protocol::Status;
use plasma_stream_tests::{oid, put, put_pull_verify, Server};
use plasma_stream_transport::{Endpoint, TransportConfig};
use stream::TransferKind;
use tokio::io::AsyncReadExt;

const MIB: u64 = 1 << 20;

async fn raw_exchange(server: &Server, request: &[u8]) -> Vec<u8> {
    let identity = Identity::generate(["test"]).unwrap();
    let endpoint = Endpoint::client(&identity, &Trust::Insecure, TransportConfig::default())
        .await
        .unwrap();
    let connection = endpoint.connect(server.addr).await.unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all_bytes(request).await.unwrap();
    send.finish().await.unwrap();
    let mut reply = Vec::new();
    let _ = recv.read_to_end(&mut reply).await;
    reply
}

fn sync_bytes(peer: std::net::SocketAddr, ids: &[plasma_stream_tests::ObjectId]) -> Vec<u8> {
    let std::net::SocketAddr::V4(v4) = peer else {
        panic!("IPv4 expected")
    };
    let mut bytes = vec![0x01, 1, 0, 0, 0, 0x02, 0x04];
    bytes.extend_from_slice(&v4.ip().octets());
    bytes.extend_from_slice(&v4.port().to_le_bytes());
    bytes.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        bytes.extend_from_slice(id.as_bytes());
    }
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_ids_are_refused_with_0x80_for_the_whole_sync() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let id = oid(60, 1);
    put(&mut source.store(), id, 10, 0);
    let reply = raw_exchange(&destination, &sync_bytes(source.addr, &[id, id])).await;
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
