//! A scripted fake store sends the client broken replies: every case must end in an error
//! (never a panic, a hang or a huge allocation). Needs nothing but a Unix socket.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use plasma_store::wire::fd_passing::send_fd;
use plasma_store::wire::frame::encode_header;
use plasma_store::wire::messages::{ConnectReply, CreateReply, GetReply, ObjectSpec, PlasmaError};
use plasma_store::wire::{read_frame, write_frame, Message, MessageType, WireError};
use plasma_store::{ConnectOptions, Error, ObjectId, PlasmaClient};

/// A fake store serving one connection with `script`, on a socket in a fresh directory.
fn fake_store(
    script: impl FnOnce(UnixStream) + Send + 'static,
) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        script(stream);
    });
    (dir, socket, handle)
}

fn options() -> ConnectOptions {
    ConnectOptions {
        retries: 0,
        retry_interval: Duration::from_millis(10),
        reply_timeout: Some(Duration::from_secs(5)),
    }
}

/// Reads the client's Connect and answers it properly.
fn accept_connect(stream: &UnixStream) {
    let frame = read_frame(stream, 1 << 20).unwrap();
    assert_eq!(frame.kind, MessageType::ConnectRequest);
    let reply = ConnectReply {
        memory_capacity: 1 << 20,
    };
    write_frame(stream, MessageType::ConnectReply, &reply.encode()).unwrap();
}

fn connect_error(script: impl FnOnce(UnixStream) + Send + 'static) -> Error {
    let (_dir, socket, handle) = fake_store(script);
    let err = PlasmaClient::connect_with(&socket, &options()).expect_err("connect must fail");
    handle.join().unwrap();
    err
}

fn id() -> ObjectId {
    ObjectId([7; 20])
}

fn segment_file(len: u64) -> std::fs::File {
    let file = tempfile::tempfile().unwrap();
    file.set_len(len).unwrap();
    file
}

#[test]
fn no_store_is_a_connect_error_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let start = Instant::now();
    let err = PlasmaClient::connect_with(
        &socket,
        &ConnectOptions {
            retries: 3,
            retry_interval: Duration::from_millis(20),
            ..options()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Connect { attempts: 4, .. }), "{err:?}");
    assert!(err.to_string().contains(socket.to_str().unwrap()), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(60));
}

#[test]
fn wrong_reply_type_is_malformed() {
    let err = connect_error(|s| {
        read_frame(&s, 1 << 20).unwrap();
        write_frame(&s, MessageType::GetReply, &GetReply::default().encode()).unwrap();
    });
    assert!(
        matches!(err, Error::MalformedReply(WireError::UnexpectedType { .. })),
        "{err:?}"
    );
}

#[test]
fn bad_version_and_unknown_type_are_malformed() {
    for (version, kind) in [(1i64, 20i64), (0, 99)] {
        let err = connect_error(move |mut s| {
            read_frame(&s, 1 << 20).unwrap();
            let mut header = Vec::new();
            header.extend_from_slice(&version.to_le_bytes());
            header.extend_from_slice(&kind.to_le_bytes());
            header.extend_from_slice(&0i64.to_le_bytes());
            s.write_all(&header).unwrap();
        });
        assert!(matches!(err, Error::MalformedReply(_)), "{err:?}");
    }
}

#[test]
fn hostile_length_is_refused_without_allocating_it() {
    let err = connect_error(|mut s| {
        read_frame(&s, 1 << 20).unwrap();
        s.write_all(&encode_header(MessageType::ConnectReply, 1 << 40))
            .unwrap();
    });
    assert!(
        matches!(err, Error::MalformedReply(WireError::BodyLength { .. })),
        "{err:?}"
    );
}

#[test]
fn truncated_reply_means_the_store_is_gone() {
    let err = connect_error(|mut s| {
        read_frame(&s, 1 << 20).unwrap();
        s.write_all(&encode_header(MessageType::ConnectReply, 24))
            .unwrap();
        s.write_all(&[0u8; 10]).unwrap();
    });
    assert!(matches!(err, Error::StoreGone { .. }), "{err:?}");
}

#[test]
fn garbage_flatbuffer_is_malformed() {
    let err = connect_error(|s| {
        read_frame(&s, 1 << 20).unwrap();
        write_frame(&s, MessageType::ConnectReply, &[0xff; 24]).unwrap();
    });
    assert!(
        matches!(
            err,
            Error::MalformedReply(WireError::InvalidFlatbuffer { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn silent_store_times_out() {
    let (_dir, socket, handle) = fake_store(|s| {
        read_frame(&s, 1 << 20).unwrap();
        std::thread::sleep(Duration::from_millis(800));
    });
    let start = Instant::now();
    let err = PlasmaClient::connect_with(
        &socket,
        &ConnectOptions {
            reply_timeout: Some(Duration::from_millis(200)),
            ..options()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(700));
    handle.join().unwrap();
}

fn create_reply(spec: ObjectSpec, mmap_size: i64) -> Vec<u8> {
    CreateReply {
        object_id: id(),
        object: spec,
        error: PlasmaError::Ok,
        store_fd: 4,
        mmap_size,
        ipc_handle: None,
    }
    .encode()
}

fn good_spec(size: u64) -> ObjectSpec {
    ObjectSpec {
        segment_key: 4,
        data_offset: 64,
        data_size: size,
        metadata_offset: 64 + size,
        metadata_size: 0,
        device_num: 0,
    }
}

/// Runs a create against a fake store whose reply and fd behaviour `after_reply` scripts.
fn create_error(
    reply: Vec<u8>,
    after_reply: impl FnOnce(&UnixStream) + Send + 'static,
    size: u64,
) -> Error {
    let (_dir, socket, handle) = fake_store(move |s| {
        accept_connect(&s);
        let frame = read_frame(&s, 1 << 20).unwrap();
        assert_eq!(frame.kind, MessageType::CreateRequest);
        write_frame(&s, MessageType::CreateReply, &reply).unwrap();
        after_reply(&s);
    });
    let mut client = PlasmaClient::connect_with(&socket, &options()).unwrap();
    let err = client.create(id(), size, 0).expect_err("create must fail");
    // The connection is poisoned: later calls fail fast.
    assert!(client.list().is_err());
    drop(client);
    handle.join().unwrap();
    err
}

#[test]
fn missing_fd_after_create_is_an_error() {
    let err = create_error(create_reply(good_spec(10), 4096 + 8), |_| {}, 10);
    assert!(matches!(err, Error::StoreGone { .. }), "{err:?}");
}

#[test]
fn byte_without_fd_is_an_error() {
    let err = create_error(
        create_reply(good_spec(10), 4096 + 8),
        |mut s| s.write_all(&[0]).unwrap(),
        10,
    );
    assert!(
        matches!(err, Error::MalformedReply(WireError::FdPassing { .. })),
        "{err:?}"
    );
}

#[test]
fn segment_shorter_than_mmap_size_is_refused() {
    let err = create_error(
        create_reply(good_spec(10), 1 << 30),
        |s| send_fd(s, segment_file(4096).as_fd()).unwrap(),
        10,
    );
    assert!(matches!(err, Error::MalformedReply(_)), "{err:?}");
}

#[test]
fn object_outside_the_segment_is_refused() {
    let err = create_error(
        create_reply(good_spec(1 << 20), 4096 + 8),
        |s| send_fd(s, segment_file(4096 + 8).as_fd()).unwrap(),
        1 << 20,
    );
    assert!(matches!(err, Error::MalformedReply(_)), "{err:?}");
}

#[test]
fn sizes_other_than_requested_are_refused() {
    let err = create_error(
        create_reply(good_spec(11), 4096 + 8),
        |s| send_fd(s, segment_file(4096 + 8).as_fd()).unwrap(),
        10,
    );
    assert!(matches!(err, Error::MalformedReply(_)), "{err:?}");
}

#[test]
fn metadata_not_after_data_is_refused() {
    let mut spec = good_spec(10);
    spec.metadata_offset = 0;
    let err = create_error(
        create_reply(spec, 4096 + 8),
        |s| send_fd(s, segment_file(4096 + 8).as_fd()).unwrap(),
        10,
    );
    assert!(matches!(err, Error::MalformedReply(_)), "{err:?}");
}

#[test]
fn get_reply_for_other_ids_or_unknown_segment_is_refused() {
    let replies = [
        // Different ids from the request.
        GetReply {
            object_ids: vec![ObjectId([1; 20])],
            objects: vec![ObjectSpec::MISSING],
            store_fds: vec![],
            mmap_sizes: vec![],
        },
        // A found object in a segment never announced.
        GetReply {
            object_ids: vec![id()],
            objects: vec![good_spec(10)],
            store_fds: vec![],
            mmap_sizes: vec![],
        },
    ];
    for reply in replies {
        let body = reply.encode();
        let (_dir, socket, handle) = fake_store(move |s| {
            accept_connect(&s);
            read_frame(&s, 1 << 20).unwrap();
            write_frame(&s, MessageType::GetReply, &body).unwrap();
        });
        let mut client = PlasmaClient::connect_with(&socket, &options()).unwrap();
        let err = client
            .get(&[id()], Some(Duration::ZERO))
            .expect_err("get must fail");
        assert!(matches!(err, Error::MalformedReply(_)), "{err:?}");
        handle.join().unwrap();
    }
}

#[test]
fn get_reply_with_good_segment_reads_zero_copy() {
    // The positive control for the cases above: a well-formed reply with one new segment.
    let (_dir, socket, handle) = fake_store(|s| {
        accept_connect(&s);
        read_frame(&s, 1 << 20).unwrap();
        let mut file = segment_file(4096 + 8);
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(64)).unwrap();
        file.write_all(b"0123456789META").unwrap();
        let mut spec = good_spec(10);
        spec.metadata_size = 4;
        let reply = GetReply {
            object_ids: vec![id()],
            objects: vec![spec],
            store_fds: vec![4],
            mmap_sizes: vec![4096 + 8],
        };
        write_frame(&s, MessageType::GetReply, &reply.encode()).unwrap();
        send_fd(&s, file.as_fd()).unwrap();
        // The client releases when the buffers are dropped and it flushes.
        let release = read_frame(&s, 1 << 20).unwrap();
        assert_eq!(release.kind, MessageType::ReleaseRequest);
    });
    let mut client = PlasmaClient::connect_with(&socket, &options()).unwrap();
    let got = client.get(&[id()], Some(Duration::ZERO)).unwrap();
    let object = got[0].as_ref().unwrap();
    assert_eq!(&object.data[..], b"0123456789");
    assert_eq!(&object.metadata[..], b"META");
    drop(got);
    client.flush_releases().unwrap();
    handle.join().unwrap();
}
