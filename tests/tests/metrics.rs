//! `--metrics` and `--log-format json` with real server processes.
//!
//! The metrics port is learnt from the ready file: a server started with `--metrics
//! 127.0.0.1:0` binds a free port and writes `metrics=ADDRESS` after its address and
//! fingerprint (`Server::metrics`), so tests run in parallel without guessing free ports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use plasma_stream_tests::{
    client, oid, put, put_pull_verify, store_client, verify, ObjectId, Server, ServerConfig,
};
use stream::{PeerRequest, Status, TransferKind};

const STORE: u64 = 64 << 20;
const MIB: u64 = 1 << 20;

fn server_with_metrics() -> Server {
    let server =
        Server::start(ServerConfig::embedded(STORE).with_args(&["--metrics", "127.0.0.1:0"]));
    assert!(
        server.metrics.is_some(),
        "the ready file names the metrics address"
    );
    server
}

/// Sends `request` as is and returns what came back before the server closed (lossy UTF-8);
/// a reset after the answer is not an error here (the server closes on what it refuses).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics port");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    // The server may stop reading (and answer) before all of a long request is written.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// `GET /metrics` over plain HTTP/1.1; the body of a 200 answer.
fn scrape(server: &Server) -> String {
    let addr = server.metrics.expect("started with --metrics");
    let answer = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n",
    );
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(
        body.trim_end().ends_with("# EOF"),
        "a whole exposition:\n{body}"
    );
    body.to_owned()
}

/// The value of the sample whose name and labels are exactly `series`, if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `check` holds, for at most `within`; the last scrape. (The holder counts an
/// object once its exchange has ended, which may come just after the puller's report; an
/// external store's use is refreshed every 10 s.)
fn scrape_until(server: &Server, within: Duration, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(server);
        if check(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const PEER: &str = "{peer=\"127.0.0.1\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_moved_and_bad_scrapes_harm_nothing() {
    let source = server_with_metrics();
    let destination = server_with_metrics();

    // Sizes across the puller's two paths (received into memory up to 64 KiB, straight into
    // the store above) and the holder's pieces (4 MiB).
    let objects: Vec<(ObjectId, u64, usize)> = vec![
        (oid(0x51, 0), 0, 9),
        (oid(0x51, 1), 1, 1),
        (oid(0x51, 2), 10_000, 100),
        (oid(0x51, 3), 65_537, 0),
        (oid(0x51, 4), 5 * (1 << 20) + 3, 17),
    ];
    let total: u64 = objects.iter().map(|&(_, d, m)| d + m as u64).sum();
    let mut store = source.store();
    for &(id, data, metadata) in &objects {
        put(&mut store, id, data, metadata);
    }
    let missing = oid(0x52, 0);
    let mut ids: Vec<ObjectId> = objects.iter().map(|&(id, _, _)| id).collect();
    ids.push(missing);

    let client = client(destination.addr).await;
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: ids,
        }])
        .await
        .expect("SYNC");
    let outcome = |id: ObjectId| {
        report.peer_reports[0]
            .objects
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.status)
    };
    assert_eq!(outcome(missing), Some(Status::NotFound), "{report:?}");
    for &(id, data, metadata) in &objects {
        assert_eq!(outcome(id), Some(Status::Success), "{report:?}");
        verify(&mut destination.store(), id, data, metadata);
    }

    // The puller: bytes and objects in from the source, one SYNC, the missing object's 0x71.
    let text = scrape(&destination);
    let received = |text: &str| value(text, &format!("plasma_stream_received_bytes_total{PEER}"));
    assert_eq!(received(&text), Some(total as f64), "{text}");
    assert_eq!(
        value(
            &text,
            &format!("plasma_stream_received_objects_total{PEER}")
        ),
        Some(objects.len() as f64),
        "{text}"
    );
    assert_eq!(
        value(&text, "plasma_stream_sync_duration_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "plasma_stream_object_failures_total{side=\"pull\",status=\"0x71\",name=\"object not found\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "plasma_stream_store_capacity_bytes"),
        Some(STORE as f64),
        "{text}"
    );
    let used = value(&text, "plasma_stream_store_used_bytes").expect("embedded store use");
    assert!(used >= total as f64, "{used} < {total}:\n{text}");
    // The QUIC path to the source was sampled when the peer request ended.
    let rtt = value(&text, &format!("plasma_stream_quic_rtt_seconds{PEER}")).expect("rtt");
    assert!(rtt > 0.0 && rtt < 1.0, "{text}");
    let cwnd = value(
        &text,
        &format!("plasma_stream_quic_congestion_window_bytes{PEER}"),
    )
    .expect("congestion window");
    assert!(cwnd > 0.0, "{text}");
    // Nothing left the destination.
    assert_eq!(
        value(&text, &format!("plasma_stream_sent_bytes_total{PEER}")),
        None,
        "{text}"
    );

    // The holder: the same bytes and objects out, and the object it did not have.
    let sent = |text: &str| value(text, &format!("plasma_stream_sent_objects_total{PEER}"));
    let text = scrape_until(&source, Duration::from_secs(10), |text| {
        sent(text) == Some(objects.len() as f64)
    });
    assert_eq!(sent(&text), Some(objects.len() as f64), "{text}");
    assert_eq!(
        value(&text, &format!("plasma_stream_sent_bytes_total{PEER}")),
        Some(total as f64),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "plasma_stream_object_failures_total{side=\"serve\",status=\"0x71\",name=\"object not found\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "plasma_stream_sync_duration_seconds_count"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "plasma_stream_transfers_in_flight"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "plasma_stream_connections_refused_total{reason=\"handshake_failed\"}"
        ),
        Some(0.0),
        "every refusal reason is exported from the start:\n{text}"
    );

    // Bad requests get an error, never the metrics, and never hurt the server.
    let metrics = destination.metrics.unwrap();
    let other_path = exchange(metrics, b"GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(other_path.starts_with("HTTP/1.1 404"), "{other_path}");
    let post = exchange(
        metrics,
        b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let garbage = exchange(metrics, b"\x16\x03\x01\x02\x00garbage\x00\xff\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Padding: ".to_vec();
    huge.resize(huge.len() + 256 * 1024, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    let huge_answer = exchange(metrics, &huge);
    // 431 when the answer outruns the reset that the unread rest of the request causes;
    // either way, not the metrics.
    assert!(
        huge_answer.is_empty() || huge_answer.starts_with("HTTP/1.1 431"),
        "{huge_answer:?}"
    );
    // A scraper that connects and says nothing is dropped after the head timeout (5 s).
    let mut silent = TcpStream::connect(metrics).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = silent.read_to_end(&mut answer);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "a silent connection held for {:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&answer).contains("plasma_stream_"));

    // The server still moves objects, and the metrics still count them.
    let again = oid(0x53, 0);
    put(&mut source.store(), again, 4096, 0);
    let report = client
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![again],
        }])
        .await
        .expect("SYNC after the bad scrapes");
    assert!(report.is_success(), "{report:?}");
    let text = scrape(&destination);
    assert_eq!(received(&text), Some((total + 4096) as f64), "{text}");
    assert_eq!(
        value(&text, "plasma_stream_sync_duration_seconds_count"),
        Some(2.0),
        "{text}"
    );
}

/// Beside pyarrow's `plasma_store`, the store's use comes from a List made at the start and
/// every `store_use::REFRESH` (10 s): the first scrape already counts what the store held
/// before the server started, and a later one counts an object the server received.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run provides it)"]
async fn store_use_beside_a_real_store_is_listed_and_refreshed() {
    let real = plasma_stream_tests::RealStore::start(STORE);
    let before = 3 * MIB + 5;
    put(&mut store_client(&real.socket), oid(0x5a, 0), before, 7);
    let destination = Server::start(
        ServerConfig::on_socket(&real.socket).with_args(&["--metrics", "127.0.0.1:0"]),
    );
    let text = scrape(&destination);
    assert_eq!(
        value(&text, "plasma_stream_store_capacity_bytes"),
        Some(STORE as f64),
        "{text}"
    );
    assert_eq!(
        value(&text, "plasma_stream_store_used_bytes"),
        Some((before + 7) as f64),
        "the object put before the start: {text}"
    );

    let source = Server::embedded(16 * MIB);
    let copied = [(oid(0x5a, 1), MIB, 0)];
    put_pull_verify(&source, &destination, TransferKind::Copy, &copied).await;
    let after = (before + 7 + MIB) as f64;
    let text = scrape_until(&destination, Duration::from_secs(25), |text| {
        value(text, "plasma_stream_store_used_bytes") == Some(after)
    });
    assert_eq!(
        value(&text, "plasma_stream_store_used_bytes"),
        Some(after),
        "both objects, within two refreshes: {text}"
    );
}

#[test]
fn a_taken_metrics_port_fails_the_start_and_says_so() {
    let first = server_with_metrics();
    let taken = first.metrics.unwrap().to_string();
    let log = Server::try_start(ServerConfig::embedded(STORE).with_args(&["--metrics", &taken]))
        .err()
        .expect("a second server on the same metrics port must not start");
    assert!(
        log.contains(&format!("cannot listen for --metrics on {taken}")),
        "{log}"
    );
}

fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_log_format_json_every_stderr_line_is_a_json_object() {
    let source = Server::start(ServerConfig::embedded(STORE).with_args(&["--log-format", "json"]));
    let mut destination =
        Server::start(ServerConfig::embedded(STORE).with_args(&["--log-format", "json"]));
    let id = oid(0x54, 0);
    put(&mut source.store(), id, 1000, 10);
    let report = client(destination.addr)
        .await
        .sync(vec![PeerRequest::Copy {
            from: source.addr,
            objects: vec![id, oid(0x54, 1)],
        }])
        .await
        .expect("SYNC");
    assert!(!report.is_success(), "one object is missing: {report:?}");
    assert!(
        destination.process.stop(Duration::from_secs(10)),
        "stops on SIGTERM"
    );

    let lines = json_lines(&destination.process.log());
    assert!(lines.len() >= 5, "{lines:?}");
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(
                line.get(field).is_some_and(|v| v.is_string()),
                "no string `{field}` in {line}"
            );
        }
        let level = line["level"].as_str().unwrap_or_default();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "{line}"
        );
    }
    let with_message = |message: &str| {
        lines
            .iter()
            .find(|line| line["message"] == message)
            .unwrap_or_else(|| panic!("no `{message}` line in {lines:?}"))
    };
    // The event's fields sit beside the message, not under another key.
    let listening = with_message("listening");
    assert_eq!(
        listening["listen"].as_str(),
        Some(destination.addr.to_string().as_str()),
        "{listening}"
    );
    let done = with_message("SYNC done");
    assert_eq!(done["arrived"], 1, "{done}");
    assert_eq!(done["objects"], 2, "{done}");
    // An event inside spans lists them with their fields.
    let spans = done["spans"].as_array().expect("spans of `SYNC done`");
    assert!(
        spans
            .iter()
            .any(|span| span["name"] == "sync" && span["client"].is_string()),
        "{done}"
    );
    with_message("stopped");

    // A start that fails says why in JSON too.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-server"))
        .args([
            "--log-format",
            "json",
            "--insecure",
            "-p",
            "0",
            "--bind",
            "127.0.0.1",
        ])
        .arg("-s")
        .arg(dir.path().join("no-store.sock"))
        .output()
        .expect("run the server");
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&String::from_utf8_lossy(&output.stderr));
    let last = lines.last().expect("a line saying why");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("no Plasma store at")),
        "{last}"
    );
}
