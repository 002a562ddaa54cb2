//! The Plasma Stream benchmark harness.
//!
//! One command runs each scenario of issue 6 a few times against real processes, beside the
//! peers a user would otherwise pick (plain TCP, rustls over TCP, Arrow Flight with and
//! without TLS, the legacy plaintext format), and prints throughput, objects/s, peak private
//! memory of every process and the ratios between them. `docs/benchmarks.md` explains the
//! scenarios and keeps every result.
//!
//! Modules, one idea each:
//! - [`goals`]: issue 6's goals checked against a run;
//! - [`report`]: samples, medians, ratios, text and Markdown tables;
//! - [`memory`]: peak `RssAnon` of processes, sampled;
//! - [`shm`]: memfd regions, so peers hold bytes in shared memory as a store does;
//! - [`peers`]: the copy peers (TCP, rustls) and Arrow Flight;
//! - [`objects`]: the objects' contents, filling the source store, verifying the destination;
//! - [`netns`]: namespaces `ta`/`tb`, rate, delay and loss;
//! - [`wan_delay`]: the delayer behind an NFQUEUE rule (`tc netem delay` in user space);
//! - [`procs`]: starting this binary's peer processes, possibly inside a namespace;
//! - [`servers`]: two `plasma-stream-server`s with embedded stores, filled, synced, verified;
//! - [`scenarios`]: what each scenario moves and with which systems, and the runner.

pub mod client;
pub mod goals;
pub mod memory;
pub mod netns;
pub mod objects;
pub mod peers;
pub mod procs;
pub mod report;
pub mod scenarios;
pub mod servers;
pub mod shm;
pub mod wan_delay;

use std::path::PathBuf;

/// Everything that can stop one measurement (the runner records it and goes on).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("set-up: {0}")]
    Setup(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("peer protocol: {0}")]
    Protocol(String),
    #[error("peer: {0}")]
    Peer(String),
    #[error("server: {0}")]
    Server(String),
    #[error("WAN delayer: {0}")]
    Delay(#[from] wan_delay::DelayError),
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the harness, so the run stops after
/// the current measurement and still tears down its namespaces and processes.
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Python with pyarrow 11: `$PLASMA_STREAM_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    std::env::var_os("PLASMA_STREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// A binary of this workspace built next to the running executable (`target/<profile>/NAME`;
/// tests run from `target/<profile>/deps/`).
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC` (for the results log).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn utc_now_is_well_formed() {
        let now = utc_now();
        assert_eq!(now.len(), "2026-11-25 21:00 UTC".len(), "{now}");
        assert!(now.ends_with(" UTC"));
    }
}
