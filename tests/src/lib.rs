//! Support for the end-to-end tests: starting stores and servers as real processes, putting
//! objects into stores and verifying them byte for byte through the Plasma client.
//!
//! Everything a test starts is stopped when its handle drops (SIGTERM, then SIGKILL after a
//! grace period), and every socket lives in a per-test temporary directory; servers listen on
//! port 0 and report the chosen port through `--ready-file`, so tests run in parallel.

pub mod attack;
pub mod netns;
pub mod trickler;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use plasma_store::{ObjectId as StoreId, PlasmaClient};
pub use plasma_stream_protocol::ObjectId;
use tempfile::TempDir;

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A binary of this workspace, from the target directory the running executable is in
/// (`target/debug/deps/x` for a test, `target/release/quickstart` for the quickstart).
///
/// If it is missing (a fresh checkout where only this package was built, as
/// `cargo run -p plasma-stream-tests --bin quickstart` does), it is built first with the same
/// profile, so the quickstart is one command.
///
/// `PLASMA_STREAM_BIN_DIR` overrides the directory (e.g. `target/release`, to measure the
/// release build from debug-built tests, as the front-door figures in docs/operations.md are).
pub fn binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PLASMA_STREAM_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.exists() {
        build_binary(name, dir.ends_with("release"));
    }
    assert!(
        path.exists(),
        "{} not found: build the binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// Runs `cargo build [--release] -p PACKAGE --bin NAME` for one of this workspace's binaries.
fn build_binary(name: &str, release: bool) {
    let package = match name {
        "plasma-stream-server" | "plasma-stream-cli" => name,
        "plasma-store" => "plasma-store",
        "quickstart" | "measure" => "plasma-stream-tests",
        _ => return,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building {name} (cargo build{} -p {package})...",
        if release { " --release" } else { "" }
    );
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .args(["-p", package, "--bin", name]);
    if release {
        command.arg("--release");
    }
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("building {name} failed: {status}"),
        Err(error) => eprintln!("cannot run cargo to build {name}: {error}"),
    }
}

/// Python with pyarrow 11: `PLASMA_STREAM_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    std::env::var_os("PLASMA_STREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// pyarrow 11's `plasma_store` executable, next to [`python`].
pub fn real_plasma_store_binary() -> PathBuf {
    python()
        .parent()
        .map(|dir| dir.join("plasma_store"))
        .unwrap_or_default()
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Process {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> Process {
        let log_file = std::fs::File::create(&log).expect("create log file");
        let log_err = log_file.try_clone().expect("clone log file");
        command
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .stdin(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            child: Some(child),
            name: name.to_owned(),
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) without waiting.
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
        }
    }

    /// SIGKILLs the process and reaps it: a crash, with no chance to clean up.
    pub fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Bytes of shared memory the process has touched (`RssShmem` of /proc/PID/status): a
    /// server writing an arriving object into a store's mapping grows it page by page, which
    /// is how a test learns that a transfer is under way without asking the process.
    pub fn shared_memory_touched(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("RssShmem:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// Waits up to `timeout` for the process to exit by itself; whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.has_exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits up to `grace` for the exit; SIGKILL after. Returns whether it
    /// exited by itself.
    pub fn stop(&mut self, grace: Duration) -> bool {
        self.terminate();
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("{} did not stop within {grace:?}; killed", self.name);
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Which store a server uses.
#[derive(Clone, Debug)]
pub enum StoreKind {
    /// `--embedded-store BYTES`.
    Embedded(u64),
    /// A store already running on this socket (e.g. [`RealStore`]).
    Socket(PathBuf),
}

/// How to start a server; see [`Server::start`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub store: StoreKind,
    pub bind: String,
    pub port: u16,
    pub insecure: bool,
    pub transport: &'static str,
    pub legacy_tcp: bool,
    pub cert_dir: Option<PathBuf>,
    pub trust: Vec<String>,
    pub drain_timeout_secs: u64,
    pub extra: Vec<String>,
    /// A network namespace to run the server in (`ip netns exec NAME`), see [`netns`].
    pub namespace: Option<String>,
}

impl ServerConfig {
    /// An insecure server on 127.0.0.1, port chosen by the OS, with an embedded store.
    pub fn embedded(capacity: u64) -> Self {
        ServerConfig {
            store: StoreKind::Embedded(capacity),
            bind: "127.0.0.1".into(),
            port: 0,
            insecure: true,
            transport: "auto",
            legacy_tcp: false,
            cert_dir: None,
            trust: Vec::new(),
            drain_timeout_secs: 3,
            extra: Vec::new(),
            namespace: None,
        }
    }

    /// The same, run inside `namespace` and listening on its address.
    pub fn in_namespace(mut self, namespace: &netns::Namespace) -> Self {
        self.namespace = Some(namespace.name().to_owned());
        self.bind = namespace.inner_addr().to_string();
        self
    }

    /// The same configuration with these extra server options.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The same configuration with `--access FILE`: the server's access rights file.
    pub fn with_access(self, path: &Path) -> Self {
        let path = path.display().to_string();
        self.with_args(&["--access", &path])
    }

    /// The same, on an existing store's socket.
    pub fn on_socket(socket: impl Into<PathBuf>) -> Self {
        ServerConfig {
            store: StoreKind::Socket(socket.into()),
            ..Self::embedded(0)
        }
    }
}

/// A running `plasma-stream-server` (and, with an embedded store, its store).
pub struct Server {
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate's fingerprint (hex).
    pub fingerprint: String,
    /// The Plasma socket of its store.
    pub socket: PathBuf,
    /// Where its metrics are served, when started with `--metrics` (the ready file's
    /// `metrics=ADDRESS`).
    pub metrics: Option<SocketAddr>,
    _dir: TempDir,
}

impl Server {
    /// Starts a server and waits until it listens.
    pub fn start(config: ServerConfig) -> Server {
        Self::try_start(config)
            .unwrap_or_else(|log| panic!("plasma-stream-server did not start:\n{log}"))
    }

    /// Like [`Server::start`], but a server that exits or does not get ready in 20 s is an
    /// `Err` with its log, for callers that may try again (a restart on a fixed port that
    /// another process took meanwhile).
    pub fn try_start(config: ServerConfig) -> Result<Server, String> {
        let dir = tempfile::Builder::new()
            .prefix("ps-server")
            .tempdir()
            .expect("tempdir");
        let ready = dir.path().join("ready");
        let socket = match &config.store {
            StoreKind::Embedded(_) => dir.path().join("plasma.sock"),
            StoreKind::Socket(path) => path.clone(),
        };
        // `ip netns exec` execs the server after entering the namespace: same pid, so
        // signals and kills reach the server itself.
        let mut command = match &config.namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", namespace])
                    .arg(binary("plasma-stream-server"));
                command
            }
            None => Command::new(binary("plasma-stream-server")),
        };
        command
            .arg("--bind")
            .arg(&config.bind)
            .arg("-p")
            .arg(config.port.to_string())
            .arg("-s")
            .arg(&socket)
            .arg("--transport")
            .arg(config.transport)
            .arg("--ready-file")
            .arg(&ready)
            .arg("--drain-timeout")
            .arg(config.drain_timeout_secs.to_string());
        if let StoreKind::Embedded(capacity) = config.store {
            command.arg("--embedded-store").arg(capacity.to_string());
        }
        if config.insecure {
            command.arg("--insecure");
        }
        if config.legacy_tcp {
            command.arg("--legacy-tcp");
        }
        if let Some(cert_dir) = &config.cert_dir {
            command.arg("--cert-dir").arg(cert_dir);
        }
        for fingerprint in &config.trust {
            command.arg("--trust").arg(fingerprint);
        }
        command.args(&config.extra);
        command.env("RUST_LOG", "info,plasma_stream_server=debug");
        let mut process = Process::spawn(
            "plasma-stream-server",
            command,
            dir.path().join("server.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let line = loop {
            if let Ok(line) = std::fs::read_to_string(&ready) {
                break line;
            }
            if process.has_exited() || Instant::now() > deadline {
                return Err(process.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut parts = line.split_whitespace();
        let addr: SocketAddr = parts
            .next()
            .and_then(|a| a.parse().ok())
            .expect("address in ready file");
        let fingerprint = parts.next().unwrap_or_default().to_owned();
        let metrics = parts
            .find_map(|part| part.strip_prefix("metrics="))
            .map(|a| a.parse().expect("metrics address in ready file"));
        Ok(Server {
            process,
            addr,
            fingerprint,
            socket,
            metrics,
            _dir: dir,
        })
    }

    /// Starts a server on the fixed port of one that was stopped (`config.port`). Test ports
    /// come from the kernel's ephemeral range, so while the old server was down another
    /// test's outgoing socket may have been given it (CI saw "Address already in use" once):
    /// try again, as a supervisor would, for up to 10 s.
    pub fn restart(config: ServerConfig) -> Server {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Self::try_start(config.clone()) {
                Ok(server) => return server,
                Err(log) if log.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(log) => panic!("plasma-stream-server did not restart:\n{log}"),
            }
        }
    }

    /// An insecure server with an embedded store of `capacity` bytes on 127.0.0.1.
    pub fn embedded(capacity: u64) -> Server {
        Self::start(ServerConfig::embedded(capacity))
    }

    /// A Plasma client connected to this server's store.
    pub fn store(&self) -> PlasmaClient {
        store_client(&self.socket)
    }
}

/// A real pyarrow 11 `plasma_store` process.
pub struct RealStore {
    pub process: Process,
    pub socket: PathBuf,
    binary: PathBuf,
    capacity: u64,
    _dir: TempDir,
}

impl RealStore {
    /// Starts pyarrow 11's `plasma_store -m capacity -s <tmp>/plasma.sock` and waits for its
    /// socket.
    pub fn start(capacity: u64) -> RealStore {
        let binary = real_plasma_store_binary();
        assert!(
            binary.exists(),
            "{} not found: install pyarrow==11.0.0 into .venv (bash .ci/run does)",
            binary.display()
        );
        Self::start_binary(binary, capacity)
    }

    /// Starts this project's `plasma-store` binary (the embedded store as its own process).
    pub fn ours(capacity: u64) -> RealStore {
        Self::start_binary(binary("plasma-store"), capacity)
    }

    fn start_binary(binary: PathBuf, capacity: u64) -> RealStore {
        let dir = tempfile::Builder::new()
            .prefix("ps-store")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("plasma.sock");
        let process = spawn_store(&binary, capacity, &socket, &dir.path().join("store.log"));
        RealStore {
            process,
            socket,
            binary,
            capacity,
            _dir: dir,
        }
    }

    /// SIGKILLs the store (a crash: its objects are gone) and starts a fresh, empty one on the
    /// same socket path, as a supervisor would; servers using the socket must reconnect.
    pub fn crash_and_restart(&mut self) {
        self.process.kill_now();
        // A killed store leaves its socket file behind; a new store cannot bind over it.
        let _ = std::fs::remove_file(&self.socket);
        let log = self.socket.with_file_name("store-restarted.log");
        self.process = spawn_store(&self.binary, self.capacity, &self.socket, &log);
    }
}

fn spawn_store(binary: &Path, capacity: u64, socket: &Path, log: &Path) -> Process {
    let mut command = Command::new(binary);
    command
        .arg("-m")
        .arg(capacity.to_string())
        .arg("-s")
        .arg(socket);
    let mut process = Process::spawn("plasma_store", command, log.to_path_buf());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        if process.has_exited() || Instant::now() > deadline {
            panic!("plasma_store did not start:\n{}", process.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    process
}

/// Objects of the store at `socket` that are created but not sealed (a transfer's leftovers).
pub fn unsealed(socket: &Path) -> Vec<ObjectId> {
    let mut store = store_client(socket);
    store
        .list()
        .expect("list the store")
        .into_iter()
        .filter(|info| info.digest.is_none())
        .map(|info| ObjectId::from_bytes(info.object_id.0))
        .collect()
}

/// A Plasma client on `socket` (retries briefly while the store starts).
pub fn store_client(socket: &Path) -> PlasmaClient {
    PlasmaClient::connect_with(
        socket,
        &plasma_store::ConnectOptions::waiting(Duration::from_secs(5)),
    )
    .unwrap_or_else(|e| panic!("cannot connect to the store at {}: {e}", socket.display()))
}

/// A test object ID: `tag` in the first byte, `n` in the last four.
pub fn oid(tag: u8, n: u32) -> ObjectId {
    let mut bytes = [0u8; 20];
    bytes[0] = tag;
    bytes[16..].copy_from_slice(&n.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

/// The store crate's form of an object ID.
pub fn store_id(id: ObjectId) -> StoreId {
    StoreId(*id.as_bytes())
}

fn seed_of(id: &ObjectId) -> u64 {
    id.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The 8 pattern bytes of object `seed` at word `index` (a cheap mix, so that a shifted or
/// swapped piece of data never matches).
fn pattern_word(seed: u64, index: u64) -> [u8; 8] {
    let mut x = index.wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x.to_le_bytes()
}

/// Fills `buffer` with `id`'s data pattern starting at `offset` (a multiple of 8).
pub fn fill_pattern(id: &ObjectId, offset: u64, buffer: &mut [u8]) {
    debug_assert_eq!(offset % 8, 0);
    let seed = seed_of(id);
    let first = offset / 8;
    let whole_words = (buffer.len() / 8) as u64;
    let mut words = buffer.chunks_exact_mut(8);
    for (i, word) in (&mut words).enumerate() {
        word.copy_from_slice(&pattern_word(seed, first + i as u64));
    }
    let tail = words.into_remainder();
    let last = pattern_word(seed, first + whole_words);
    let n = tail.len();
    tail.copy_from_slice(&last[..n]);
}

/// The metadata a test object of `len` metadata bytes carries.
pub fn metadata_for(id: &ObjectId, len: usize) -> Vec<u8> {
    let mut metadata = vec![0u8; len];
    fill_pattern(id, 1 << 60, &mut metadata);
    metadata
}

/// Creates and seals object `id` (`data_size` pattern bytes, `metadata_size` metadata bytes)
/// in the store, writing straight into the shared memory.
pub fn put(store: &mut PlasmaClient, id: ObjectId, data_size: u64, metadata_size: usize) {
    let mut object = store
        .create(store_id(id), data_size, metadata_size as u64)
        .unwrap_or_else(|e| panic!("create {id}: {e}"));
    {
        let (data, metadata) = object.buffers_mut();
        const STEP: usize = 1 << 20;
        for (index, piece) in data.chunks_mut(STEP).enumerate() {
            fill_pattern(&id, (index * STEP) as u64, piece);
        }
        metadata.copy_from_slice(&metadata_for(&id, metadata_size));
    }
    store
        .seal(object)
        .unwrap_or_else(|e| panic!("seal {id}: {e}"));
}

/// Whether the store holds a sealed object `id`.
pub fn contains(store: &mut PlasmaClient, id: ObjectId) -> bool {
    store
        .contains(store_id(id))
        .unwrap_or_else(|e| panic!("contains {id}: {e}"))
}

/// Asserts the store holds `id` with exactly the content [`put`] gave it, byte for byte.
pub fn verify(store: &mut PlasmaClient, id: ObjectId, data_size: u64, metadata_size: usize) {
    let found = store
        .get(&[store_id(id)], Some(Duration::from_millis(500)))
        .unwrap_or_else(|e| panic!("get {id}: {e}"));
    let object = found
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_else(|| panic!("object {id} is not in the store"));
    assert_eq!(object.data.len() as u64, data_size, "data size of {id}");
    assert_eq!(
        object.metadata.as_ref(),
        metadata_for(&id, metadata_size).as_slice(),
        "metadata of {id}"
    );
    const STEP: usize = 1 << 20;
    let mut expected = vec![0u8; STEP.min(object.data.len())];
    for (index, piece) in object.data.chunks(STEP).enumerate() {
        let expected = &mut expected[..piece.len()];
        fill_pattern(&id, (index * STEP) as u64, expected);
        assert!(
            piece == &expected[..],
            "data of {id} differs in the MiB starting at {}",
            index * STEP
        );
    }
}

/// Runs `plasma-stream-cli -a addr --insecure args…` and returns its output.
pub fn cli(addr: SocketAddr, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(binary("plasma-stream-cli"));
    command
        .arg("-a")
        .arg(addr.to_string())
        .arg("--insecure")
        .args(args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().expect("start plasma-stream-cli");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes()).expect("write cli stdin");
    }
    child
        .wait_with_output()
        .expect("wait for plasma-stream-cli")
}

/// The fingerprint of the identity kept in `dir` (generated there first if need be): what a
/// peer or client pins, and what an access file names.
pub fn fingerprint_of(dir: &Path) -> String {
    let output = Command::new(binary("plasma-stream-server"))
        .arg("--cert-dir")
        .arg(dir)
        .arg("--print-fingerprint")
        .output()
        .expect("run plasma-stream-server --print-fingerprint");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A server in pinned mode: its identity in `cert_dir`, trusting these fingerprints.
pub fn pinned_config(capacity: u64, cert_dir: &Path, trust: &[&str]) -> ServerConfig {
    let mut config = ServerConfig::embedded(capacity);
    config.insecure = false;
    config.cert_dir = Some(cert_dir.to_path_buf());
    config.trust = trust.iter().map(|fp| fp.to_string()).collect();
    config
}

/// A client whose identity lives in `identity_dir`, pinning `server`'s fingerprint.
pub async fn pinned_client(identity_dir: &Path, server: &Server) -> stream::Client {
    stream::Client::builder()
        .identity_dir(identity_dir)
        .trust_fingerprint(server.fingerprint.parse().expect("server fingerprint"))
        .connect(server.addr)
        .await
        .expect("connect pinned client")
}

/// An insecure client of `server`.
pub async fn client(addr: SocketAddr) -> stream::Client {
    stream::Client::builder()
        .insecure()
        .connect(addr)
        .await
        .expect("connect client")
}

/// Puts `objects` (ID, data bytes, metadata bytes) into `source`'s store, has `destination`
/// pull them all with `kind` in one SYNC, asserts that every one arrived, and verifies each
/// byte for byte at the destination.
pub async fn put_pull_verify(
    source: &Server,
    destination: &Server,
    kind: stream::TransferKind,
    objects: &[(ObjectId, u64, usize)],
) {
    let ids: Vec<ObjectId> = objects.iter().map(|&(id, _, _)| id).collect();
    for &(id, data_size, metadata_size) in objects {
        put(&mut source.store(), id, data_size, metadata_size);
    }
    let request = match kind {
        stream::TransferKind::Copy => stream::PeerRequest::Copy {
            from: source.addr,
            objects: ids,
        },
        stream::TransferKind::Take => stream::PeerRequest::Take {
            from: source.addr,
            objects: ids,
        },
    };
    let report = client(destination.addr)
        .await
        .sync(vec![request])
        .await
        .expect("SYNC");
    assert!(report.is_success(), "{report:?}");
    for &(id, data_size, metadata_size) in objects {
        verify(&mut destination.store(), id, data_size, metadata_size);
    }
}

/// Objects of the edge sizes (data bytes, metadata bytes): 0-byte data with metadata, 1 byte,
/// 1 + 1, 64 KiB metadata, a few MiB.
pub const EDGE_SIZES: &[(u64, usize)] = &[
    (0, 9),
    (1, 0),
    (1, 1),
    (100, 65_536),
    (3 * (1 << 20) + 5, 100),
];

/// One SYNC from `destination` with a COPY and a TAKE of every [`EDGE_SIZES`] object from
/// `source` (IDs tagged `copy_tag` and `take_tag`), then checks every object byte for byte at
/// the destination, that COPY kept and TAKE removed the source's copy. Returns the IDs.
/// Whichever stores run under the two servers (embedded, pyarrow's), the scenario is the same.
pub async fn copy_and_take_edge_sizes(
    source: &Server,
    destination: &Server,
    copy_tag: u8,
    take_tag: u8,
) -> (Vec<ObjectId>, Vec<ObjectId>) {
    let count = EDGE_SIZES.len() as u32;
    let copies: Vec<_> = (0..count).map(|n| oid(copy_tag, n)).collect();
    let takes: Vec<_> = (0..count).map(|n| oid(take_tag, n)).collect();
    let mut store = source.store();
    for ((copy, take), (data, metadata)) in copies.iter().zip(&takes).zip(EDGE_SIZES) {
        put(&mut store, *copy, *data, *metadata);
        put(&mut store, *take, *data, *metadata);
    }
    let report = client(destination.addr)
        .await
        .sync(vec![
            stream::PeerRequest::Copy {
                from: source.addr,
                objects: copies.clone(),
            },
            stream::PeerRequest::Take {
                from: source.addr,
                objects: takes.clone(),
            },
        ])
        .await
        .expect("sync");
    assert!(report.is_success(), "{report:?}");
    let mut dest = destination.store();
    for ((copy, take), (data, metadata)) in copies.iter().zip(&takes).zip(EDGE_SIZES) {
        verify(&mut dest, *copy, *data, *metadata);
        verify(&mut dest, *take, *data, *metadata);
        assert!(
            contains(&mut store, *copy),
            "COPY must keep the source object"
        );
        assert!(
            !contains(&mut store, *take),
            "TAKE must delete the source object after the Ack"
        );
    }
    (copies, takes)
}

/// Client or server identities in temporary directories (created on first use of each), with
/// their fingerprints, for tests that pin or list them.
pub struct Identities {
    dirs: Vec<TempDir>,
    fingerprints: Vec<String>,
}

impl Identities {
    pub fn new(count: usize) -> Self {
        let dirs: Vec<TempDir> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
        let fingerprints = dirs.iter().map(|d| fingerprint_of(d.path())).collect();
        Identities { dirs, fingerprints }
    }

    pub fn dir(&self, index: usize) -> &Path {
        self.dirs[index].path()
    }

    pub fn fp(&self, index: usize) -> &str {
        &self.fingerprints[index]
    }
}

/// Writes `text` to the file `name` in `dir` (an access, trust or revocation file).
pub fn write_file(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Sends raw request bytes on one stream of a fresh connection (a new identity, insecure
/// mode) and returns whatever comes back: empty when the server resets the stream, which is
/// the documented answer to a malformed count. For bytes the client library would refuse to
/// encode.
pub async fn raw_exchange(server: &Server, request: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let identity = plasma_stream_certs::Identity::generate(["test"]).unwrap();
    // The maximal SYNC keeps a debug-build server busy for a minute or more under CI load,
    // long enough for it to miss the default 60 s idle timeout's keep-alives: the idle
    // timeout here matches the `--stream-timeout 300` that test gives its server.
    let config = plasma_stream_transport::TransportConfig {
        idle_timeout: Duration::from_secs(300),
        ..Default::default()
    };
    let endpoint = plasma_stream_transport::Endpoint::client(
        &identity,
        &plasma_stream_certs::Trust::Insecure,
        config,
    )
    .await
    .unwrap();
    let connection = endpoint.connect(server.addr).await.unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    // A server refusing the request stops reading it: the rest may not be writable then
    // (a server gives an accepted connection only a MiB of credit ahead of its reading).
    if send.write_all_bytes(request).await.is_ok() {
        let _ = send.finish().await;
    }
    let mut reply = Vec::new();
    // A reset stream is an answer too (an empty reply); the error is shown for diagnosis.
    if let Err(error) = recv.read_to_end(&mut reply).await {
        eprintln!(
            "reading the reply ended with {error} after {} bytes",
            reply.len()
        );
    }
    reply
}

/// A SYNC frame built by hand, so counts the client library refuses to encode can be sent:
/// one COPY peer request per ID list, all from `peer` (IPv4).
pub fn raw_sync_bytes(peer: SocketAddr, lists: &[Vec<ObjectId>]) -> Vec<u8> {
    let SocketAddr::V4(v4) = peer else {
        panic!("IPv4 expected")
    };
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(&(lists.len() as u32).to_le_bytes());
    for ids in lists {
        bytes.extend_from_slice(&[0x02, 0x04]);
        bytes.extend_from_slice(&v4.ip().octets());
        bytes.extend_from_slice(&v4.port().to_le_bytes());
        bytes.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            bytes.extend_from_slice(id.as_bytes());
        }
    }
    bytes
}
