//! `plasma-store`: the embedded Plasma-compatible store as a standalone process, for users who
//! only want a store that unmodified `pyarrow.plasma` 11 clients can use.
//!
//! Same flags as Arrow's `plasma_store`: `-m BYTES` (capacity; also `4GiB`, `512MiB`, ...) and
//! `-s SOCKET`. Runs until SIGINT or SIGTERM, then removes its socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use plasma_store::store::{parse_size, EmbeddedStore, StoreConfig};

#[derive(Parser, Debug)]
#[command(
    name = "plasma-store",
    about = "A Plasma-compatible object store (Apache Arrow 11 protocol) on a Unix socket"
)]
struct Args {
    /// Capacity in bytes: objects (data + metadata) the store may hold, e.g. 100000000 or 4GiB.
    #[arg(short = 'm', long = "memory", value_parser = parse_size)]
    memory: u64,
    /// Path of the Unix socket to serve on. A stale socket there is replaced; one a running
    /// store answers on is refused.
    #[arg(short = 's', long = "socket")]
    socket: PathBuf,
    /// Length of each shared-memory arena (default: the capacity). Objects larger than an
    /// arena get an arena of their own.
    #[arg(long = "arena-size", value_parser = parse_size)]
    arena_size: Option<u64>,
    /// Accepted for compatibility with Arrow's `plasma_store -d DIR`; unused: arenas are
    /// anonymous memfds, not files in a directory.
    #[arg(short = 'd', long = "directory")]
    directory: Option<PathBuf>,
    /// Commit the whole first arena at start (allocated, zeroed, mapped) and keep freed pages:
    /// writes never wait for page faults, and the store holds its capacity in RAM from the start.
    #[arg(long)]
    populate: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(dir) = &args.directory {
        eprintln!(
            "plasma-store: ignoring -d {}: shared memory is anonymous (memfd)",
            dir.display()
        );
    }
    let config = StoreConfig {
        socket_path: args.socket.clone(),
        capacity: args.memory,
        arena_size: args.arena_size,
        populate: args.populate,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plasma-store: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Listen for SIGTERM/SIGINT before the socket exists: a client may connect and a
    // supervisor signal as soon as it appears, and the default action would kill the process
    // without removing the socket.
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        let _runtime = runtime.enter();
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("plasma-store: cannot listen for SIGTERM/SIGINT: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let store = match EmbeddedStore::start(config) {
        Ok(store) => store,
        Err(e) => {
            eprintln!(
                "plasma-store: cannot serve on {}: {e}",
                args.socket.display()
            );
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "plasma-store: serving {} bytes on {}",
        args.memory,
        args.socket.display()
    );
    runtime.block_on(async {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    });
    drop(store);
    ExitCode::SUCCESS
}
