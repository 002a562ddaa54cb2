//! `plasma-stream-server`: thin wiring; the work lives in the library (see its docs).

use clap::Parser;
use plasma_stream_server::{run, Options};
use tracing_subscriber::EnvFilter;

fn main() {
    keep_freed_heap_memory();
    let options = Options::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&options.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = options.worker_threads {
        builder.worker_threads(usize::from(workers));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("plasma-stream-server: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run(options)) {
        eprintln!("plasma-stream-server: {error}");
        std::process::exit(1);
    }
}

/// Tells glibc's allocator to keep freed heap memory instead of handing it back to the kernel
/// at once. Transfers allocate and free receive buffers (quinn's datagram batches, TLS reads)
/// at line rate; with glibc's defaults (trim above 128 KiB free) the pages went back to the
/// kernel and came back zero-filled, page fault by page fault (the figures are in
/// docs/benchmarks.md, "Figures behind code defaults"). Freed memory stays reusable by the process; peak use is
/// unchanged, only the return of memory after a peak is delayed until the next trim.
fn keep_freed_heap_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD: libc::c_int = 256 << 20;
        const MMAP_THRESHOLD: libc::c_int = 4 << 20;
        // SAFETY: mallopt only changes allocator tuning; called before any other thread
        // exists. A refused setting (return 0) leaves glibc's default, which is harmless.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}
