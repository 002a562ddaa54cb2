//! Moves one large object (default 1 GiB) between two servers with embedded stores on
//! loopback, once over QUIC and once over the TLS-over-TCP fallback (peer in `--transport
//! tcp`), and once through the legacy plaintext format, and prints the throughput of each.
//! Every object is verified byte for byte. A quick figure for the README and reports; the
//! benchmark harness in `bench/` is the full comparison.
//!
//! `cargo run --release -p plasma-stream-tests --bin measure [BYTES] [--prefault]`

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use plasma_stream_tests::{oid, put, verify, Server, ServerConfig};
use stream::{Client, PeerRequest};

fn main() {
    let size: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1 << 30);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let capacity = size + (64 << 20);

    let prefault = std::env::args().any(|a| a == "--prefault");
    for (label, transport) in [("QUIC", "auto"), ("TLS over TCP (fallback)", "tcp")] {
        let mut config = ServerConfig::embedded(capacity);
        config.transport = transport;
        config.legacy_tcp = true;
        let source = Server::start(config);
        let mut destination_config = ServerConfig::embedded(capacity);
        if prefault {
            destination_config.extra = vec!["--prefault".into()];
        }
        let destination = Server::start(destination_config);
        let id = oid(0x77, 1);
        put(&mut source.store(), id, size, 0);
        let elapsed = runtime.block_on(async {
            let client = Client::builder()
                .insecure()
                .connect(destination.addr)
                .await
                .expect("connect");
            let started = Instant::now();
            let report = client
                .sync(vec![PeerRequest::Copy {
                    from: source.addr,
                    objects: vec![id],
                }])
                .await
                .expect("sync");
            assert!(report.is_success(), "{report:?}");
            started.elapsed()
        });
        verify(&mut destination.store(), id, size, 0);
        print_rate(label, size, elapsed);

        if transport == "tcp" {
            // The same object through the legacy plaintext COPY (no TLS): the copy limit.
            let mut socket = std::net::TcpStream::connect(source.addr).expect("legacy connect");
            let mut request = vec![0x02, 0x01, 0x00];
            request.extend_from_slice(id.as_bytes());
            let started = Instant::now();
            socket.write_all(&request).expect("legacy request");
            let mut head = [0u8; 9];
            socket.read_exact(&mut head).expect("legacy reply");
            let mut buffer = vec![0u8; 4 << 20];
            let mut left = size;
            while left > 0 {
                let n = socket
                    .read(&mut buffer[..(left.min(4 << 20)) as usize])
                    .expect("legacy data");
                assert!(n > 0, "legacy stream ended early");
                left -= n as u64;
            }
            print_rate(
                "legacy plaintext TCP (same servers, into a buffer)",
                size,
                started.elapsed(),
            );
        }
    }
}

fn print_rate(label: &str, size: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{label:>52}: {size} bytes in {seconds:.3} s = {:.0} MiB/s ({:.2} Gbit/s)",
        size as f64 / seconds / (1 << 20) as f64,
        size as f64 * 8.0 / seconds / 1e9
    );
}
