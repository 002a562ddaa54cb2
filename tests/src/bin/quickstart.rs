//! The README quickstart: two `plasma-stream-server`s with embedded stores on loopback; put
//! objects into one, SYNC them to the other with the `stream` client, verify every byte,
//! print a summary, clean up. Exit code 0 only if every object arrived intact.
//!
//! `cargo run --release -p plasma-stream-tests --bin quickstart` (builds the server first if
//! needed: run `cargo build --release --bins` when it says the server binary is missing).

use std::process::ExitCode;
use std::time::Instant;

use plasma_stream_tests::{oid, put, verify, Server};
use stream::{Client, PeerRequest};

/// (data bytes, metadata bytes) of the objects moved.
const OBJECTS: &[(u64, usize)] = &[
    (0, 16),
    (1, 0),
    (4096, 64),
    (1 << 20, 65_536),
    (16 << 20, 128),
    (64 << 20, 0),
    (100_000_007, 7),
];

const USAGE: &str = "quickstart: the README quickstart, end to end on this machine.

Starts two plasma-stream-servers with embedded stores on 127.0.0.1 (ports chosen by the
system, sockets in a temporary directory), puts 7 objects (0 bytes to 100 MB, about 185 MB in
all) into the first, has the second COPY them in one SYNC, verifies every byte, prints a
summary and cleans up. Exit code 0 only if every object arrived intact.

Usage: quickstart [-h]
  from the checkout: cargo run --release -p plasma-stream-tests --bin quickstart

Options:
  -h, --help  print this help and exit";

fn main() -> ExitCode {
    // No option parser for one flag: -h/--help helps, anything else is refused rather than
    // ignored (a user typing `quickstart --port 2021` must not get a run on other ports).
    if let Some(argument) = std::env::args().nth(1) {
        if argument == "-h" || argument == "--help" {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        eprintln!("quickstart: unexpected argument `{argument}` (it takes none; -h for help)");
        return ExitCode::from(2);
    }
    println!("quickstart: starting two servers with embedded stores on 127.0.0.1 ...");
    let source = Server::embedded(512 << 20);
    let destination = Server::embedded(512 << 20);
    println!(
        "  source      {} (store {})",
        source.addr,
        source.socket.display()
    );
    println!(
        "  destination {} (store {})",
        destination.addr,
        destination.socket.display()
    );

    let ids: Vec<_> = (0..OBJECTS.len() as u32).map(|n| oid(0x51, n)).collect();
    let mut source_store = source.store();
    for (id, (data, metadata)) in ids.iter().zip(OBJECTS) {
        put(&mut source_store, *id, *data, *metadata);
    }
    let total: u64 = OBJECTS.iter().map(|(d, m)| d + *m as u64).sum();
    println!(
        "  put {} objects ({total} bytes) into the source store",
        ids.len()
    );

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("quickstart: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let report = runtime.block_on(async {
        let client = Client::builder()
            .insecure()
            .connect(destination.addr)
            .await?;
        println!(
            "  client connected to the destination over {}",
            client.connection_kind()
        );
        client
            .sync(vec![PeerRequest::Copy {
                from: source.addr,
                objects: ids.clone(),
            }])
            .await
    });
    let elapsed = started.elapsed();
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("quickstart: SYNC failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    for peer in &report.peer_reports {
        println!("  SYNC COPY from {}: {}", source.addr, peer.status);
        for object in &peer.objects {
            println!(
                "    {}  {:>10} bytes  {}",
                object.id, object.bytes_moved, object.status
            );
        }
    }
    if !report.is_success() {
        eprintln!("quickstart: some objects did not arrive");
        return ExitCode::FAILURE;
    }
    let mut destination_store = destination.store();
    for (id, (data, metadata)) in ids.iter().zip(OBJECTS) {
        verify(&mut destination_store, *id, *data, *metadata);
    }
    let seconds = elapsed.as_secs_f64();
    println!(
        "quickstart: OK — {} objects, {total} bytes moved and verified byte for byte in {:.3} s ({:.1} MiB/s)",
        ids.len(),
        seconds,
        total as f64 / seconds / (1 << 20) as f64
    );
    ExitCode::SUCCESS
}
