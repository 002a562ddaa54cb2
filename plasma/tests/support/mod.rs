//! Test support shared by the plasma crate's integration tests: finding the pyarrow 11 venv,
//! starting stores, running small pyarrow scripts, deterministic payloads.
//!
//! Scenarios in `scenarios` are generic over a [`StoreLauncher`] (a function that starts a
//! store of a given capacity and returns a [`RunningStore`] with its socket path), so the same
//! client checks run against pyarrow's real `plasma_store` and against the embedded store.
#![allow(dead_code)]

pub mod scenarios;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the embedded store inside this test process (`EmbeddedStore::start`), serving a
/// socket in a fresh temporary directory. Stopping it closes every connection.
pub fn start_embedded_in_process(capacity: u64) -> RunningStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("plasma.sock");
    let store = plasma_store::store::EmbeddedStore::start(plasma_store::store::StoreConfig::new(
        &socket, capacity,
    ))
    .expect("start the embedded store in-process");
    RunningStore::new(socket, dir, Box::new(move || drop(store)))
}

/// Starts a store with `capacity` bytes and returns it once its socket accepts connections.
pub type StoreLauncher = dyn Fn(u64) -> RunningStore;

/// Stops (kills) a store started by [`spawn_store_at`].
pub type StoreStopper = Box<dyn FnOnce() + Send>;

/// Starts a store of a capacity on a given socket path (e.g. to restart one).
pub type StoreRelauncher = dyn Fn(&Path, u64) -> StoreStopper;

/// A store started for one test. Stopped (killed) when dropped.
pub struct RunningStore {
    pub socket: PathBuf,
    /// Keeps the socket's directory alive.
    pub dir: tempfile::TempDir,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl RunningStore {
    /// A store whose socket is `socket` (inside `dir`); `stop` kills it abruptly (like
    /// SIGKILL: no cleanup the clients could notice other than the socket closing).
    pub fn new(socket: PathBuf, dir: tempfile::TempDir, stop: Box<dyn FnOnce() + Send>) -> Self {
        Self {
            socket,
            dir,
            stop: Some(stop),
        }
    }

    /// Kills the store now (tests of "the store died mid-session").
    pub fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

impl Drop for RunningStore {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate has a parent directory")
        .to_path_buf()
}

/// Python with pyarrow 11: `$PLASMA_STREAM_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    match std::env::var_os("PLASMA_STREAM_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/python"),
    }
}

/// pyarrow 11's `plasma_store`, next to [`python`].
pub fn plasma_store_binary() -> PathBuf {
    python()
        .parent()
        .expect("python lives in a bin directory")
        .join("plasma_store")
}

/// Waits until something listens on `socket`.
pub fn wait_for_socket(socket: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "store exited before listening on {}: {status}",
                socket.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "store did not listen on {} within 20 s",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts pyarrow 11's real `plasma_store -m capacity -s <tempdir>/plasma.sock`.
pub fn start_pyarrow_store(capacity: u64) -> RunningStore {
    start_store_process(&plasma_store_binary(), capacity, &[])
}

/// Starts any store program that takes Arrow's `-m BYTES -s SOCKET` flags (plus `extra_args`)
/// on a fresh socket in a temporary directory, and waits until it listens. Its stderr goes
/// to `store.log` in that directory.
pub fn start_store_process(program: &Path, capacity: u64, extra_args: &[&str]) -> RunningStore {
    let dir = tempfile::Builder::new()
        .prefix("plasma-test")
        .tempdir()
        .expect("tempdir");
    let socket = dir.path().join("plasma.sock");
    let stop = spawn_store_at(program, &socket, capacity, extra_args);
    RunningStore::new(socket, dir, stop)
}

/// Starts a store program on a given socket path (e.g. again after killing one there) and
/// waits until it listens; returns the function that kills it. Its stderr is appended to
/// `store.log` next to the socket.
pub fn spawn_store_at(
    program: &Path,
    socket: &Path,
    capacity: u64,
    extra_args: &[&str],
) -> StoreStopper {
    let log_path = socket.with_file_name("store.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("store log");
    let mut child = Command::new(program)
        .arg("-m")
        .arg(capacity.to_string())
        .arg("-s")
        .arg(socket)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    wait_for_socket(socket, &mut child);
    Box::new(move || kill_child(child))
}

/// Starts pyarrow's `plasma_store` on a given socket path; returns the function that kills it.
pub fn spawn_pyarrow_store_at(socket: &Path, capacity: u64) -> StoreStopper {
    spawn_store_at(&plasma_store_binary(), socket, capacity, &[])
}

fn kill_child(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs a Python snippet with pyarrow (plasma deprecation warnings silenced) and returns its
/// stdout. `args` become `sys.argv[1:]`. Panics with the script's stderr if it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let prelude = "import sys, warnings\nwarnings.simplefilter('ignore')\nimport pyarrow as pa\nimport pyarrow.plasma as plasma\n";
    let output = Command::new(python())
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python().display()));
    assert!(
        output.status.success(),
        "python failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A deterministic payload (the same formula is used in the Python snippets:
/// `bytes((i * 131 + seed) % 251 for i in range(n))`, computed there with numpy).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x = u32::from(seed) % 251;
    for _ in 0..len {
        v.push(x as u8);
        x = (x + 131) % 251;
    }
    v
}

/// The Python side of [`pattern`] (numpy), as an expression of `n` and `seed`.
pub const PY_PATTERN: &str =
    "def pattern(n, seed):\n    import numpy as np\n    return ((np.arange(n, dtype=np.int64) * 131 + seed) % 251).astype(np.uint8).tobytes()\n";

/// An object id derived from a test name and a number (unique per test).
pub fn oid(test: &str, n: u32) -> plasma_store::ObjectId {
    let mut id = [0u8; 20];
    let name = test.as_bytes();
    for (i, b) in name.iter().take(16).enumerate() {
        id[i] = *b;
    }
    id[16..].copy_from_slice(&n.to_be_bytes());
    plasma_store::ObjectId(id)
}
