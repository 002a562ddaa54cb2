//! Measures a resume: one object (default 1 GiB) pulled from a server inside a network
//! namespace, once uncut and once with the link cut (every TCP segment, or every UDP packet,
//! dropped in the namespace) for 2.5 s when half of it has arrived. Prints the time and the
//! bytes the source's link carried for each, and what a re-send from byte 0 would cost instead
//! (computed: the cut run plus the first half again, at the uncut run's rate). Needs root, `ip`,
//! `iptables`; run with release servers:
//!
//! `cargo build --release -p plasma-stream-server -p plasma-stream-tests --bins &&
//!  PLASMA_STREAM_BIN_DIR=$PWD/target/release target/release/resume [BYTES] [tcp|udp]`

use std::time::{Duration, Instant};

use plasma_stream_tests::netns::{Namespace, Protocol};
use plasma_stream_tests::{oid, put, verify, Server, ServerConfig};
use stream::{Client, PeerRequest};

const MIB: f64 = (1u64 << 20) as f64;
const OUTAGE: Duration = Duration::from_millis(2500);

struct Run {
    seconds: f64,
    link_bytes: u64,
    resumed_at: Option<u64>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1 << 30);
    let protocol = match args.next().as_deref() {
        Some("udp") => Protocol::Udp,
        _ => Protocol::Tcp,
    };
    if let Err(missing) = Namespace::available() {
        eprintln!("resume: this measurement {missing}");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let uncut = run(&runtime, size, protocol, false);
    let cut = run(&runtime, size, protocol, true);
    let half = size as f64 / 2.0;
    // The same outage, detection and reconnection as the cut run, plus the first half again.
    let full_resend_seconds = cut.seconds + uncut.seconds / 2.0;
    let full_resend_bytes = cut.link_bytes as f64 + half;
    println!(
        "object {:.0} MiB over {protocol:?}, link cut for {:.1} s at 50 %",
        size as f64 / MIB,
        OUTAGE.as_secs_f64()
    );
    println!(
        "  uncut:                 {:7.2} s, link carried {:7.0} MiB",
        uncut.seconds,
        uncut.link_bytes as f64 / MIB
    );
    println!(
        "  cut, resumed at {:4.0} MiB: {:7.2} s, link carried {:7.0} MiB ({:.0} MiB more than uncut)",
        cut.resumed_at.unwrap_or(0) as f64 / MIB,
        cut.seconds,
        cut.link_bytes as f64 / MIB,
        (cut.link_bytes as f64 - uncut.link_bytes as f64) / MIB
    );
    println!(
        "  re-sent from byte 0 (computed): {full_resend_seconds:7.2} s, link would carry {:7.0} MiB",
        full_resend_bytes / MIB
    );
}

fn run(runtime: &tokio::runtime::Runtime, size: u64, protocol: Protocol, cut: bool) -> Run {
    let namespace = Namespace::create(if cut { 91 } else { 90 });
    let transport = match protocol {
        Protocol::Udp => "auto",
        Protocol::Tcp => "tcp",
    };
    let capacity = size + (64 << 20);
    let mut source_config = ServerConfig::embedded(capacity).in_namespace(&namespace);
    source_config.transport = transport;
    let source = Server::start(source_config);
    let mut destination_config = ServerConfig::embedded(capacity).with_args(&[
        "--stream-timeout",
        "1",
        "--retries",
        "6",
        "--retry-backoff",
        "100",
    ]);
    destination_config.transport = transport;
    destination_config.bind = namespace.outer_addr().to_string();
    let destination = Server::start(destination_config);
    let id = oid(0x78, 1);
    put(&mut source.store(), id, size, 0);
    let before = namespace.bytes_sent();
    let started = Instant::now();
    let report = runtime.block_on(async {
        let client = Client::builder()
            .insecure()
            .connect(destination.addr)
            .await
            .expect("connect");
        let sync = tokio::spawn(async move {
            client
                .sync(vec![PeerRequest::Copy {
                    from: source.addr,
                    objects: vec![id],
                }])
                .await
        });
        if cut {
            let touched = destination.process.shared_memory_touched();
            while destination.process.shared_memory_touched() < touched + size / 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            namespace.cut(protocol);
            tokio::time::sleep(OUTAGE).await;
            namespace.restore(protocol);
        }
        sync.await.expect("sync task").expect("sync")
    });
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.is_success(), "{report:?}");
    verify(&mut destination.store(), id, size, 0);
    let resumed_at = destination
        .process
        .log()
        .lines()
        .filter_map(|l| l.split("resume_at=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .max();
    Run {
        seconds,
        link_bytes: namespace.bytes_sent() - before,
        resumed_at,
    }
}
