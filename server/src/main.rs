//! `plasma-stream-server`: thin wiring; the work lives in the library (see its docs).

use clap::Parser;
use plasma_stream_server::options::LogFormat;
use plasma_stream_server::{run, Options};
use tracing_subscriber::EnvFilter;

fn main() {
    plasma_stream_server::heap::keep_freed_heap_memory();
    let options = Options::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&options.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match options.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // The event's fields beside `message` at the top level (what log collectors index),
        // and every span it is in (connection, peer request, object) with their fields.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = options.worker_threads {
        builder.worker_threads(usize::from(workers));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => fatal(
            options.log_format,
            &format!("cannot start the async runtime: {error}"),
        ),
    };
    let format = options.log_format;
    if let Err(error) = runtime.block_on(run(options)) {
        fatal(format, &error.to_string());
    }
}

/// Says why the server stops (as a log line in JSON mode, so that every line of stderr is
/// JSON) and exits with 1.
fn fatal(format: LogFormat, message: &str) -> ! {
    match format {
        LogFormat::Text => eprintln!("plasma-stream-server: {message}"),
        LogFormat::Json => tracing::error!(error = message, "plasma-stream-server cannot go on"),
    }
    std::process::exit(1);
}
