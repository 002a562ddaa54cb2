//! The CLI's commands about the server's own store (`ls`, `info`, `stats`, `put`, `get`) and
//! the library calls under them, against real servers: a file put and got back byte for
//! byte, listings that match the store, counters that match what moved, refusals with their
//! documented codes, and a PUT cut short that leaves nothing in the store.

use plasma_stream_tests::{
    cli, client, oid, pinned_client, pinned_config, put, verify, write_file, Identities, Server,
};
use stream::{Error, Status};

const MIB: u64 = 1 << 20;

/// Bytes no pattern of the tests' helpers makes: a file's content of its own.
fn file_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn put_and_get_round_trip_a_file_byte_for_byte_and_ls_and_info_show_it() {
    let server = Server::embedded(64 * MIB);
    let files = tempfile::tempdir().unwrap();
    let original = files.path().join("in.bin");
    let content = file_bytes(5 * MIB as usize + 123);
    std::fs::write(&original, &content).unwrap();

    let output = cli(
        server.addr,
        &["--json", "put", &original.display().to_string()],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let put_event = &json_lines(&output)[0];
    assert_eq!(put_event["status_hex"], "0x41", "{put_event}");
    assert_eq!(put_event["bytes"], content.len() as u64);
    let id: stream::ObjectId = put_event["id"].as_str().unwrap().parse().unwrap();

    // The store holds exactly the file, sealed.
    let found = server
        .store()
        .get(&[plasma_store::ObjectId(*id.as_bytes())], None)
        .unwrap();
    let object = found.into_iter().next().flatten().expect("the put object");
    assert!(
        object.data[..] == content[..],
        "the stored data is the file"
    );
    assert!(object.metadata.is_empty());

    // And back out to a file.
    let copy = files.path().join("out.bin");
    let output = cli(
        server.addr,
        &["get", &id.to_string(), &copy.display().to_string()],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        std::fs::read(&copy).unwrap() == content,
        "get wrote the file"
    );
    assert!(!files.path().join("out.bin.partial").exists());

    // The same file again: its content ID is already there; success unless --strict.
    let output = cli(server.addr, &["put", &original.display().to_string()], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("0x81"), "{output:?}");
    let output = cli(
        server.addr,
        &["--strict", "put", &original.display().to_string()],
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");

    // With --id (after `--`, as one command), beside an object put by a Plasma client.
    let chosen = oid(90, 1);
    let output = cli(
        server.addr,
        &[
            "--",
            "put",
            &original.display().to_string(),
            "--id",
            &chosen.to_string(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let other = oid(90, 2);
    put(&mut server.store(), other, 1000, 7);

    let output = cli(server.addr, &["--json", "ls"], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let listed = json_lines(&output);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let entry = |id: stream::ObjectId| {
        listed
            .iter()
            .find(|o| o["id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} not listed: {listed:?}"))
    };
    assert_eq!(entry(id)["data_size"], content.len() as u64);
    assert_eq!(entry(chosen)["data_size"], content.len() as u64);
    assert_eq!(entry(other)["data_size"], 1000);
    assert_eq!(entry(other)["metadata_size"], 7);
    assert!(listed.iter().all(|o| o["state"] == "sealed"), "{listed:?}");
    assert!(entry(other)["created"].as_u64().unwrap() > 1_700_000_000);

    let text = stdout(&cli(server.addr, &["ls"], None));
    assert!(text.contains("3 objects (0 unsealed)"), "{text}");
    let output = cli(server.addr, &["info", &other.to_string()], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("1000 bytes"), "{output:?}");
    let output = cli(server.addr, &["info", &oid(90, 3).to_string()], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).contains("not in the server's store"));
    // A get of an object the store does not hold: 0x71, exit 1, no file.
    let missing = files.path().join("missing.bin");
    let output = cli(
        server.addr,
        &[
            "get",
            &oid(90, 3).to_string(),
            &missing.display().to_string(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).contains("0x71"), "{output:?}");
    assert!(!missing.exists());
}

#[test]
fn stats_count_what_moved_on_both_sides() {
    let source = Server::embedded(32 * MIB);
    let destination = Server::embedded(32 * MIB);
    let (a, b) = (oid(91, 1), oid(91, 2));
    put(&mut source.store(), a, 3 * MIB, 10);
    put(&mut source.store(), b, 1000, 0);
    let from = source.addr.to_string();
    let missing = oid(91, 3);
    let output = cli(
        destination.addr,
        &[
            "COPY",
            &from,
            &a.to_string(),
            &b.to_string(),
            &missing.to_string(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    verify(&mut destination.store(), a, 3 * MIB, 10);

    let stats = |server: &Server| {
        let output = cli(server.addr, &["--json", "stats"], None);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        json_lines(&output).remove(0)
    };
    let moved = 3 * MIB + 10 + 1000;
    let received = stats(&destination);
    assert_eq!(received["received_objects"], 2, "{received}");
    assert_eq!(received["received_bytes"], moved, "{received}");
    assert_eq!(
        received["failed_objects"], 1,
        "the missing object: {received}"
    );
    assert_eq!(received["store_capacity"], 32 * MIB);
    assert_eq!(received["store_used"], moved, "{received}");
    assert_eq!(received["peers"][0]["peer"], "127.0.0.1");
    assert_eq!(received["peers"][0]["received_bytes"], moved);
    // The source counts an object sent once it has read the puller's acknowledgement, which
    // may come after the report: wait for the count, not for a fixed time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut sent = stats(&source);
    while sent["sent_objects"] != 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        sent = stats(&source);
    }
    assert_eq!(sent["sent_objects"], 2, "{sent}");
    assert_eq!(sent["sent_bytes"], moved, "{sent}");
    assert_eq!(sent["received_objects"], 0);
    let text = stdout(&cli(destination.addr, &["stats"], None));
    assert!(text.contains("received             2 objects"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_that_does_not_fit_or_ends_early_leaves_nothing_in_the_store() {
    let server = Server::embedded(4 * MIB);
    let client = client(server.addr).await;
    // Larger than the store: refused before any data is sent (0x64), nothing created.
    let big = oid(92, 1);
    let error = client
        .put(big, bytes::Bytes::new(), 8 * MIB, tokio::io::empty())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Object {
                status: Status::StoreFull,
                ..
            }
        ),
        "{error:?}"
    );
    // Metadata past 64 KiB is refused by the encoder, as the server would (0x50).
    let error = client
        .put_bytes(oid(92, 2), bytes::Bytes::new(), vec![0u8; 70_000].into())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Encode(_)), "{error:?}");

    // Declares 1 MiB, sends 1000 bytes: the client gives up, the server aborts the object.
    let short = oid(92, 3);
    let error = client
        .put(short, bytes::Bytes::new(), MIB, &vec![1u8; 1000][..])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ended"), "{error}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = client.list().await.unwrap();
        if listed.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cut PUT left {listed:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        server.process.log().contains("aborting"),
        "{}",
        server.process.log()
    );

    // The same connection still works: a whole put, then info.
    let whole = oid(92, 4);
    client
        .put_bytes(whole, vec![7u8; 300_000].into(), b"meta".to_vec().into())
        .await
        .unwrap();
    let info = client.info(whole).await.unwrap().expect("listed");
    assert_eq!(
        (info.data_size, info.metadata_size, info.sealed),
        (300_000, 4, true)
    );
    let pulled = client.copy(&[whole]).await.unwrap();
    assert_eq!(&pulled[0].metadata[..], b"meta");
    assert!(pulled[0].data.iter().all(|&b| b == 7));
}

/// ls, info, stats and put need `sync`; a client with only `copy` gets 0x63 for each and
/// can still get (copy) an object.
#[tokio::test(flavor = "multi_thread")]
async fn store_requests_need_the_sync_right() {
    let ids = Identities::new(3);
    let files = tempfile::tempdir().unwrap();
    const SERVER: usize = 0;
    const READER: usize = 1;
    const WRITER: usize = 2;
    let access = write_file(
        &files,
        "access",
        &format!("{} copy\n{} sync\n", ids.fp(READER), ids.fp(WRITER)),
    );
    let server = Server::start(
        pinned_config(16 * MIB, ids.dir(SERVER), &[ids.fp(READER), ids.fp(WRITER)])
            .with_access(&access),
    );
    let present = oid(93, 1);
    put(&mut server.store(), present, 500, 0);

    let reader = pinned_client(ids.dir(READER), &server).await;
    let refused = |error: Error| match error {
        Error::Refused { status, .. } | Error::Object { status, .. } => status,
        other => panic!("not a refusal: {other:?}"),
    };
    assert_eq!(
        refused(reader.list().await.unwrap_err()),
        Status::NotPermitted
    );
    assert_eq!(
        refused(reader.info(present).await.unwrap_err()),
        Status::NotPermitted
    );
    assert_eq!(
        refused(reader.stats().await.unwrap_err()),
        Status::NotPermitted
    );
    let error = reader
        .put_bytes(oid(93, 2), vec![1u8; 10].into(), bytes::Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(refused(error), Status::NotPermitted);
    assert_eq!(reader.copy(&[present]).await.unwrap()[0].data.len(), 500);
    assert!(server.process.log().contains("does not grant `sync`"));

    let writer = pinned_client(ids.dir(WRITER), &server).await;
    writer
        .put_bytes(oid(93, 2), vec![1u8; 10].into(), bytes::Bytes::new())
        .await
        .unwrap();
    let listed = writer.list().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(writer.stats().await.unwrap().store_capacity, 16 * MIB);
}
