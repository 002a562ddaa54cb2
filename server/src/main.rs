//! `plasma-stream-server`: thin wiring; the work lives in the library (see its docs).

use clap::Parser;
use plasma_stream_server::{run, Options};
use tracing_subscriber::EnvFilter;

fn main() {
    plasma_stream_server::heap::keep_freed_heap_memory();
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
