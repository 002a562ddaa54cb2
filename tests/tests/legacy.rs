//! The original plaintext format against a server started with `--legacy-tcp`, byte for byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use plasma_stream_tests::{
    contains, fill_pattern, metadata_for, oid, put, verify, Server, ServerConfig,
};

const MIB: u64 = 1 << 20;

fn legacy_server() -> Server {
    let mut config = ServerConfig::embedded(32 * MIB);
    config.legacy_tcp = true;
    Server::start(config)
}

/// A legacy server whose access policy lets `anonymous` (the plaintext format) TAKE; the file
/// lives as long as the returned directory.
fn legacy_server_granting_take() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access");
    std::fs::write(&access, "anonymous sync copy take\n").unwrap();
    let mut config =
        ServerConfig::embedded(32 * MIB).with_args(&["--access", access.to_str().unwrap()]);
    config.legacy_tcp = true;
    (Server::start(config), dir)
}

fn connect(server: &Server) -> TcpStream {
    let socket = TcpStream::connect(server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    socket
}

#[test]
fn legacy_sync_worked_example() {
    let source = Server::embedded(32 * MIB);
    let destination = legacy_server();
    // The worked example's object ID, 0102…14.
    let id = plasma_stream_tests::ObjectId::from_bytes(std::array::from_fn(|i| i as u8 + 1));
    put(&mut source.store(), id, 4321, 3);

    // `01 | 01 00 | 02 | 04 | port LE | 7F 00 00 01 | 01 00 | 01 02 … 14`
    let mut request = vec![0x01, 0x01, 0x00, 0x02, 0x04];
    request.extend_from_slice(&source.addr.port().to_le_bytes());
    request.extend_from_slice(&[0x7F, 0x00, 0x00, 0x01, 0x01, 0x00]);
    request.extend_from_slice(id.as_bytes());
    let mut socket = connect(&destination);
    socket.write_all(&request).unwrap();
    let mut reply = [0u8; 1];
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x41], "one status byte per peer request: success");
    verify(&mut destination.store(), id, 4321, 3);

    // The same SYNC again on the same connection: the object is already there.
    socket.write_all(&request).unwrap();
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x81]);
}

#[test]
fn legacy_copy_and_take_as_a_peer() {
    let (holder, _access) = legacy_server_granting_take();
    let (a, b) = (oid(20, 1), oid(20, 2));
    put(&mut holder.store(), a, 1000, 5);
    put(&mut holder.store(), b, 1, 0);
    let mut socket = connect(&holder);

    // COPY a, b: BEGIN, then per object u64 (metadata_size | data_size << 16), metadata, data.
    let mut request = vec![0x02, 0x02, 0x00];
    request.extend_from_slice(a.as_bytes());
    request.extend_from_slice(b.as_bytes());
    socket.write_all(&request).unwrap();
    let mut begin = [0u8; 1];
    socket.read_exact(&mut begin).unwrap();
    assert_eq!(begin, [0x00]);
    for (id, data_size, metadata_size) in [(a, 1000usize, 5usize), (b, 1, 0)] {
        let mut word = [0u8; 8];
        socket.read_exact(&mut word).unwrap();
        let word = u64::from_le_bytes(word);
        assert_eq!(word & 0xFFFF, metadata_size as u64);
        assert_eq!(word >> 16, data_size as u64);
        let mut metadata = vec![0u8; metadata_size];
        socket.read_exact(&mut metadata).unwrap();
        assert_eq!(metadata, metadata_for(&id, metadata_size));
        let mut data = vec![0u8; data_size];
        socket.read_exact(&mut data).unwrap();
        let mut expected = vec![0u8; data_size];
        fill_pattern(&id, 0, &mut expected);
        assert_eq!(data, expected);
    }

    // TAKE b on the same connection; the holder deletes once we show we read the reply
    // (half-close).
    let mut request = vec![0x03, 0x01, 0x00];
    request.extend_from_slice(b.as_bytes());
    socket.write_all(&request).unwrap();
    let mut reply = vec![0u8; 1 + 8 + 1];
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 0x00);
    socket.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let mut store = holder.store();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while contains(&mut store, b) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !contains(&mut store, b),
        "TAKE deletes after the requester read the reply"
    );
    assert!(contains(&mut store, a), "COPY keeps");
}

#[test]
fn legacy_take_is_refused_by_default_and_deletes_nothing() {
    let holder = legacy_server();
    let id = oid(20, 9);
    put(&mut holder.store(), id, 100, 0);
    let mut socket = connect(&holder);
    let mut request = vec![0x03, 0x01, 0x00];
    request.extend_from_slice(id.as_bytes());
    socket.write_all(&request).unwrap();
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply).unwrap();
    assert_eq!(
        reply,
        [0x63],
        "0x63 not permitted, then the connection closes"
    );
    assert!(contains(&mut holder.store(), id));
    assert!(holder.process.log().contains("`anonymous` lacks `take`"));
}

#[test]
fn a_legacy_sync_take_never_reaches_the_peer() {
    let source = Server::embedded(32 * MIB);
    let destination = legacy_server();
    let id = oid(20, 10);
    put(&mut source.store(), id, 321, 0);
    // SYNC with one TAKE peer request for `id` from the source.
    let mut request = vec![0x01, 0x01, 0x00, 0x03, 0x04];
    request.extend_from_slice(&source.addr.port().to_le_bytes());
    request.extend_from_slice(&[0x7F, 0x00, 0x00, 0x01, 0x01, 0x00]);
    request.extend_from_slice(id.as_bytes());
    let mut socket = connect(&destination);
    socket.write_all(&request).unwrap();
    let mut reply = [0u8; 1];
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x63]);
    assert!(contains(&mut source.store(), id), "the source keeps it");
    assert!(!contains(&mut destination.store(), id));
}

#[test]
fn legacy_missing_object_is_one_error_byte_then_close() {
    let holder = legacy_server();
    let mut socket = connect(&holder);
    let mut request = vec![0x02, 0x01, 0x00];
    request.extend_from_slice(oid(21, 9).as_bytes());
    socket.write_all(&request).unwrap();
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, vec![0x71]);
}

#[test]
fn legacy_zero_byte_data_is_refused_with_0x52() {
    let holder = legacy_server();
    let id = oid(22, 1);
    put(&mut holder.store(), id, 0, 4);
    let mut socket = connect(&holder);
    let mut request = vec![0x02, 0x01, 0x00];
    request.extend_from_slice(id.as_bytes());
    socket.write_all(&request).unwrap();
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, vec![0x52]);
}

#[test]
fn legacy_malformed_request_closes_without_reply_and_the_server_goes_on() {
    let holder = legacy_server();
    let mut socket = connect(&holder);
    // A COPY with an ID count of 0 is invalid.
    socket.write_all(&[0x02, 0x00, 0x00]).unwrap();
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply).unwrap();
    assert!(reply.is_empty());
    // Still serving.
    let id = oid(23, 1);
    put(&mut holder.store(), id, 10, 0);
    let mut socket = connect(&holder);
    let mut request = vec![0x02, 0x01, 0x00];
    request.extend_from_slice(id.as_bytes());
    socket.write_all(&request).unwrap();
    let mut begin = [0u8; 1];
    socket.read_exact(&mut begin).unwrap();
    assert_eq!(begin, [0x00]);
}

#[test]
fn legacy_sync_with_an_ipv6_peer() {
    let mut source_config = ServerConfig::embedded(16 * MIB);
    source_config.bind = "::1".into();
    let source = Server::start(source_config);
    let mut config = ServerConfig::embedded(16 * MIB);
    config.bind = "::1".into();
    config.legacy_tcp = true;
    let destination = Server::start(config);
    let id = oid(24, 6);
    put(&mut source.store(), id, 66, 6);
    // `01 | 01 00 | 02 | 06 | port LE | 16 IP bytes | 01 00 | id` (port before IP).
    let mut request = vec![0x01, 0x01, 0x00, 0x02, 0x06];
    request.extend_from_slice(&source.addr.port().to_le_bytes());
    request.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    request.extend_from_slice(&[0x01, 0x00]);
    request.extend_from_slice(id.as_bytes());
    let mut socket = connect(&destination);
    socket.write_all(&request).unwrap();
    let mut reply = [0u8; 1];
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x41]);
    verify(&mut destination.store(), id, 66, 6);
}
