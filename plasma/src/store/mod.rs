//! The embedded Plasma-compatible store.
//!
//! What it is: a store that unmodified `pyarrow.plasma` 11 clients (and this crate's client)
//! can use over a Unix socket, plus an in-process [`EmbeddedHandle`] implementing
//! [`crate::ObjectStore`] with direct calls, for the stream server running the store inside
//! itself (`--embedded-store SIZE`). Protocol behaviour follows `docs/plasma.md` §5–6.
//!
//! How it is built:
//! - [`arena`]: a few large memfd arenas, keys never reused, freed pages punched out.
//! - [`allocator`]: 64-byte aligned first-fit offset allocation inside an arena.
//! - [`state`]: the object table, references, LRU eviction, Get waiters, subscribers; all
//!   behind one mutex, never blocking while it is held.
//! - `server`: one thread per socket connection; replies to a connection are written under
//!   that connection's own writer lock, never under the store lock, so a client that stops
//!   reading stalls only itself.
//! - a timer thread completes Gets at their deadline and retries queued notifications.

pub mod allocator;
pub mod arena;
mod handle;
pub mod notify;
mod server;
pub mod state;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use handle::EmbeddedHandle;
use state::{Limits, StoreState};

use crate::Error;

/// Default length of one arena when the configuration does not say: one arena holds the whole
/// capacity (like the real store's first segment), up to this many bytes.
pub const DEFAULT_MAX_ARENA_SIZE: u64 = 1 << 40;

/// How to run an [`EmbeddedStore`].
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Unix socket to serve the Plasma protocol on. Empty: no socket, in-process use only.
    /// A stale socket left at this path by a store that is gone is replaced; a path where a
    /// store still answers, or that is not a socket, is refused ([`Error::SocketInUse`],
    /// [`Error::NotASocket`]), so a second store cannot cut the first one's clients off.
    pub socket_path: PathBuf,
    /// Bytes of objects the store may hold (`-m`).
    pub capacity: u64,
    /// Length of each arena; `None` = the capacity (one arena, more only under fragmentation
    /// or for objects larger than the arena).
    pub arena_size: Option<u64>,
    /// Commit the first arena's memory at start (allocated, zeroed, mapped: the kernel's
    /// zeroing rate, in `docs/benchmarks.md`, sets how long that takes) and keep freed pages
    /// instead of handing them back.
    /// Receiving an object then never waits for page faults, at the price of holding the
    /// whole arena in RAM from the start.
    pub populate: bool,
}

impl StoreConfig {
    pub fn new(socket_path: impl Into<PathBuf>, capacity: u64) -> Self {
        Self {
            socket_path: socket_path.into(),
            capacity,
            arena_size: None,
            populate: false,
        }
    }
}

/// State shared by the socket server, the timer thread and in-process handles.
pub(crate) struct Shared {
    state: Mutex<StoreState>,
    timer_wake: Condvar,
    shutdown: AtomicBool,
}

impl Shared {
    /// Locks the store state. A panic in another thread while holding the lock does not make
    /// the store unusable: the state is only changed through methods that keep it consistent
    /// at every return point.
    pub(crate) fn lock(&self) -> MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the timer thread to re-check deadlines (a new waiter may expire sooner).
    pub(crate) fn wake_timer(&self) {
        self.timer_wake.notify_one();
    }

    fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// A running embedded store: the socket server (if configured) and the timer thread run in the
/// background until this value is dropped.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    timer: Option<JoinHandle<()>>,
    server: Option<server::ServerHandle>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Creates the first arena, binds the socket (if any) and starts serving.
    pub fn start(config: StoreConfig) -> Result<EmbeddedStore, Error> {
        if config.capacity == 0 {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "store capacity must be at least 1 byte",
            )));
        }
        let arena_size = config
            .arena_size
            .unwrap_or(config.capacity.min(DEFAULT_MAX_ARENA_SIZE))
            .max(arena::PAGE_SIZE);
        let limits = Limits {
            capacity: config.capacity,
            arena_size,
            resident: config.populate,
        };
        let state = StoreState::new(limits, server::encode_notification)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            timer_wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let timer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("plasma-store-timer".into())
                .spawn(move || run_timer(&shared))?
        };
        let server = if config.socket_path.as_os_str().is_empty() {
            None
        } else {
            match server::ServerHandle::start(&config.socket_path, shared.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    shared.shutdown.store(true, Ordering::Release);
                    shared.wake_timer();
                    let _ = timer.join();
                    return Err(e);
                }
            }
        };
        tracing::info!(
            capacity = config.capacity,
            arena_size,
            socket = %config.socket_path.display(),
            "embedded Plasma store started"
        );
        Ok(EmbeddedStore {
            shared,
            timer: Some(timer),
            server,
        })
    }

    /// An in-process handle implementing [`crate::ObjectStore`] without a socket.
    pub fn handle(&self) -> EmbeddedHandle {
        EmbeddedHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops serving: closes the listener and every connection, and stops the timer. Objects
    /// still referenced through in-process handles stay readable until dropped.
    pub fn shutdown(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        if let Some(server) = self.server.take() {
            server.stop();
        }
        self.shared.wake_timer();
        if let Some(timer) = self.timer.take() {
            let _ = timer.join();
        }
        // Nobody would answer pending Gets any more (in-process ones would wait forever).
        let pending = self.shared.lock().finish_all_waiters();
        for c in pending {
            c.deliver();
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Completes Gets at their deadline and retries notifications that did not fit in a
/// subscriber's socket.
fn run_timer(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if shared.is_shut_down() {
            return;
        }
        let now = Instant::now();
        let (ready, next) = state.expire_waiters(now);
        if !ready.is_empty() {
            drop(state);
            for c in ready {
                c.deliver();
            }
            state = shared.lock();
            continue;
        }
        let notes_pending = state.flush_subscribers();
        let next_punch = state.punch_freed(now);
        let next = match (next, next_punch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut wait = next.map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
        if notes_pending {
            wait = wait.min(Duration::from_millis(10));
        }
        state = match shared.timer_wake.wait_timeout(state, wait) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// Parses a byte size: a plain integer (`100000000`) or a number with a unit: `k`/`KB` (10³),
/// `KiB` (2¹⁰), `M`/`MB`, `MiB`, `G`/`GB`, `GiB`, `T`/`TB`, `TiB`; case-insensitive, e.g.
/// `4GiB`, `512MiB`, `1.5GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number = number.replace('_', "");
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(multiplier)
            .ok_or_else(|| format!("size {text:?} is too large"));
    }
    let n: f64 = number
        .parse()
        .map_err(|_| format!("not a size: {text:?} (e.g. 100000000, 512MiB, 4GiB)"))?;
    let bytes = n * multiplier as f64;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64) {
        return Err(format!("size {text:?} is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests;
