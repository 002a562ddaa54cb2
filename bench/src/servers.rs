//! Two `plasma-stream-server`s with embedded stores: the source is filled through its Plasma
//! socket, the destination is told to SYNC (COPY) from it by the `stream` client library, and
//! a sample of the objects is verified at the destination.
//!
//! Every measurement starts fresh servers (so the congestion controller, transport and store
//! state are exactly what the row says) and stops them afterwards. The source runs in `ta`
//! and the destination in `tb` for [`Placement::Namespaces`]; the client and the legacy
//! puller then run on threads that joined `tb` ([`crate::netns::in_namespace`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plasma_store::{ObjectId, PlasmaClient};

use crate::memory::PeakSampler;
use crate::netns::in_namespace;
use crate::objects::{self, Progress, PutObjects};
use crate::procs::{command_in, thread_cpu_secs, ChildGuard, CpuMeter};
use crate::report::Sample;
use crate::scenarios::{Placement, Workload};
use crate::shm::SharedRegion;
use crate::BenchError;

/// How a measurement's servers and stores are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// The bench's tuned set-up: embedded stores with `--populate` (unless `--lazy-store`),
    /// `--worker-threads` of `--server-workers`, the transport pinned (`--transport quic|tcp`).
    Bench,
    /// As deployed with the embedded store: `--embedded-store SIZE` and nothing else (no
    /// `--populate`, the default runtime workers, `--transport` only for TLS/TCP).
    EmbeddedDefaults,
    /// Beside pyarrow 11's `plasma_store` (one per side, `-m SIZE -s SOCKET`), the servers at
    /// their defaults (no `--embedded-store`, `--populate` or `--worker-threads`; `--transport`
    /// only for TLS/TCP). `warm`: the destination store's memory was used once before the
    /// clock (an object of the workload's total size filled and deleted), as in a
    /// long-running store; cold: fresh store memory, first touched by the transfer.
    PlasmaStore { warm: bool },
}

impl Setup {
    /// How rows name it, after the transport (`""` for the bench's own set-up).
    pub fn label(self) -> &'static str {
        match self {
            Setup::Bench => "",
            Setup::EmbeddedDefaults => ", defaults, embedded store",
            Setup::PlasmaStore { warm: false } => ", defaults, beside plasma_store (cold)",
            Setup::PlasmaStore { warm: true } => ", defaults, beside plasma_store (warm)",
        }
    }
}

impl Setup {
    /// For file names: `""`, `-defaults`, `-plasma_store-cold`, `-plasma_store-warm`.
    pub fn slug(self) -> &'static str {
        match self {
            Setup::Bench => "",
            Setup::EmbeddedDefaults => "-defaults",
            Setup::PlasmaStore { warm: false } => "-plasma_store-cold",
            Setup::PlasmaStore { warm: true } => "-plasma_store-warm",
        }
    }
}

/// pyarrow 11's `plasma_store`: `$PLASMA_STREAM_PLASMA_STORE`, else beside the Python of
/// [`crate::python`] (the venv's `bin/plasma_store`).
pub fn pyarrow_store_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PLASMA_STREAM_PLASMA_STORE") {
        return PathBuf::from(p);
    }
    let python = crate::python();
    python
        .parent()
        .map(|d| d.join("plasma_store"))
        .unwrap_or_else(|| PathBuf::from("plasma_store"))
}

/// A running pyarrow `plasma_store`.
pub struct PyarrowStore {
    pub process: ChildGuard,
    pub socket: PathBuf,
}

impl PyarrowStore {
    /// Starts `plasma_store -m BYTES -s SOCKET` (in namespace `ns` when given) and waits until
    /// its socket accepts.
    pub fn start(
        name: &str,
        dir: &Path,
        ns: Option<&'static str>,
        bytes: u64,
    ) -> Result<Self, BenchError> {
        let socket = dir.join(format!("{name}-plasma_store.sock"));
        let log = std::fs::File::create(dir.join(format!("{name}-plasma_store.log")))?;
        let binary = pyarrow_store_binary();
        if !binary.is_file() {
            return Err(BenchError::Setup(format!(
                "pyarrow's plasma_store not found at {} (pip install pyarrow==11.0.0, or set \
                 PLASMA_STREAM_PLASMA_STORE)",
                binary.display()
            )));
        }
        let mut cmd = command_in(ns, binary);
        cmd.args(["-m", &bytes.to_string(), "-s"]).arg(&socket);
        let mut process = ChildGuard::spawn(format!("{name} plasma_store"), cmd, Some(log))?;
        let start = Instant::now();
        loop {
            if !process.is_running() {
                return Err(BenchError::Setup(format!(
                    "{name} plasma_store exited during start-up"
                )));
            }
            if socket.exists() && std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(Self { process, socket });
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(BenchError::Setup(format!("{name} plasma_store not ready")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Uses `bytes` of the store's memory once: one object created, written, sealed and
    /// deleted (pyarrow's store keeps the pages of its memory file after a delete).
    pub fn warm_up(&self, bytes: u64) -> Result<(), BenchError> {
        let mut client = PlasmaClient::connect(&self.socket)
            .map_err(|e| BenchError::Setup(format!("warming {}: {e}", self.socket.display())))?;
        let id = ObjectId([0x77; 20]);
        let mut created = client
            .create(id, bytes, 0)
            .map_err(|e| BenchError::Setup(format!("warm-up create of {bytes} B: {e}")))?;
        created.data_mut().fill(0x5a);
        client
            .seal(created)
            .map_err(|e| BenchError::Setup(format!("warm-up seal: {e}")))?;
        client
            .delete(&[id])
            .map_err(|e| BenchError::Setup(format!("warm-up delete: {e}")))?;
        Ok(())
    }
}

/// Which transport the servers use between themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `--transport quic`, with `--congestion` when given (the server's default otherwise).
    Quic { congestion: Option<String> },
    /// `--transport tcp`: TLS over TCP only.
    TcpFallback,
}

/// Whether both servers' stores start with `--populate` (the default; `--lazy-store` turns it
/// off). The copy peers read from and write into memory faulted in before their clock starts;
/// `--populate` is the server's way to have the same (the destination does not zero fresh
/// pages, the source's mapping is already in its page tables), so both sides measure the
/// transfer and not the kernel's page faults. Every server of a deployment would run with the
/// same options, so source and destination get it alike.
static POPULATE_STORES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Sets whether stores are populated at start (see [`POPULATE_STORES`]).
pub fn set_populate_stores(on: bool) {
    POPULATE_STORES.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether stores are populated at start.
pub fn populate_stores() -> bool {
    POPULATE_STORES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runtime workers per server (`--worker-threads`); 0 keeps the server's default (one per
/// core). Default 1: the two servers of a measurement share this machine's cores, and one
/// worker each is one core each, as each server would have its own machine in a deployment
/// (the copy peers likewise run one thread per side). `--server-workers` changes it.
static SERVER_WORKERS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);

/// Sets the runtime workers per server (see [`SERVER_WORKERS`]).
pub fn set_server_workers(workers: u16) {
    SERVER_WORKERS.store(workers, std::sync::atomic::Ordering::Relaxed);
}

/// Runtime workers per server; 0 = the server's default.
pub fn server_workers() -> u16 {
    SERVER_WORKERS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Objects up to this count get a progress watcher (time until half are done); beyond it the
/// watcher's polling would cost more than it tells.
const WATCH_MAX_OBJECTS: u64 = 1024;

/// The server binary: `$PLASMA_STREAM_SERVER`, else next to this executable.
pub fn server_binary() -> Result<PathBuf, BenchError> {
    if let Some(p) = std::env::var_os("PLASMA_STREAM_SERVER") {
        return Ok(PathBuf::from(p));
    }
    crate::sibling_binary("plasma-stream-server").ok_or_else(|| {
        BenchError::Server(
            "plasma-stream-server not found next to the harness (cargo build --release \
             -p plasma-stream-server)"
                .into(),
        )
    })
}

/// Store capacity for a workload: the bytes plus room for allocation overhead.
pub fn store_bytes(w: &Workload) -> u64 {
    let total = w.total_bytes();
    total + (total / 8).max(64 << 20) + w.objects * 4096
}

/// One running server.
pub struct Server {
    pub process: ChildGuard,
    pub addr: SocketAddr,
    pub socket: PathBuf,
    pub log: PathBuf,
    ns: Option<&'static str>,
}

impl Server {
    /// Starts a server and waits until it is ready: for [`Setup::Bench`], until its store
    /// socket answers and (when it listens on TCP) its port accepts; otherwise until it has
    /// written its `--ready-file` (it listens then). `store` is the socket of an external
    /// store to use ([`Setup::PlasmaStore`]); without it the server embeds one of
    /// `store_bytes`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        name: &str,
        dir: &Path,
        ns: Option<&'static str>,
        ip: IpAddr,
        store_bytes: u64,
        store: Option<&Path>,
        transport: &Transport,
        setup: Setup,
        legacy: bool,
    ) -> Result<Self, BenchError> {
        let port = crate::free_port()?;
        let log = dir.join(format!("{name}.log"));
        let ready_file = dir.join(format!("{name}.ready"));
        let mut cmd = command_in(ns, server_binary()?);
        let socket = match store {
            Some(external) => external.to_path_buf(),
            None => dir.join(format!("{name}.sock")),
        };
        cmd.args(["-p", &port.to_string()]).arg("-s").arg(&socket);
        if store.is_none() {
            cmd.args(["--embedded-store", &store_bytes.to_string()]);
        }
        cmd.args(["--insecure", "--bind", &ip.to_string()]);
        if setup == Setup::Bench {
            cmd.args(["--log", "warn"]);
            match transport {
                Transport::Quic { congestion } => {
                    cmd.args(["--transport", if legacy { "auto" } else { "quic" }]);
                    if let Some(cc) = congestion {
                        cmd.args(["--congestion", cc]);
                    }
                }
                Transport::TcpFallback => {
                    cmd.args(["--transport", "tcp"]);
                }
            }
            if legacy {
                cmd.arg("--legacy-tcp");
            }
            if populate_stores() {
                cmd.arg("--populate");
            }
            if server_workers() > 0 {
                cmd.args(["--worker-threads", &server_workers().to_string()]);
            }
        } else {
            // As deployed: the server's defaults (transport auto, which pulls over QUIC; the
            // log at info, which is a few lines per SYNC). Only TLS/TCP must be asked for.
            if let Transport::Quic {
                congestion: Some(cc),
            } = transport
            {
                cmd.args(["--congestion", cc]);
            }
            if *transport == Transport::TcpFallback {
                cmd.args(["--transport", "tcp"]);
            }
            cmd.arg("--ready-file").arg(&ready_file);
        }
        // A/B knob: extra server options for every server of the run, e.g. `--prefault`.
        if let Some(extra) = std::env::var_os("PLASMA_STREAM_BENCH_SERVER_ARGS") {
            cmd.args(extra.to_string_lossy().split_whitespace());
        }
        let log_file = std::fs::File::create(&log)?;
        let process = ChildGuard::spawn(format!("{name} server"), cmd, Some(log_file))?;
        let mut server = Server {
            process,
            addr: SocketAddr::new(ip, port),
            socket,
            log,
            ns,
        };
        if setup == Setup::Bench {
            let listens_tcp = legacy || *transport == Transport::TcpFallback;
            server.wait_ready(listens_tcp, Duration::from_secs(30))?;
        } else {
            server.wait_ready_file(&ready_file, Duration::from_secs(60))?;
        }
        Ok(server)
    }

    fn wait_ready_file(&mut self, ready: &Path, timeout: Duration) -> Result<(), BenchError> {
        let start = Instant::now();
        while !ready.exists() {
            if !self.process.is_running() {
                return Err(self.failure("exited during start-up"));
            }
            if start.elapsed() > timeout {
                return Err(self.failure("not ready in time"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn wait_ready(&mut self, probe_tcp: bool, timeout: Duration) -> Result<(), BenchError> {
        let start = Instant::now();
        loop {
            if !self.process.is_running() {
                return Err(self.failure("exited during start-up"));
            }
            let store_up = self.socket.exists()
                && std::os::unix::net::UnixStream::connect(&self.socket).is_ok();
            let port_up = !probe_tcp || {
                let addr = self.addr;
                let probe = move || {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                };
                match self.ns {
                    Some(ns) => in_namespace(ns, probe).unwrap_or(false),
                    None => probe(),
                }
            };
            if store_up && port_up {
                if !probe_tcp {
                    // QUIC only: no TCP port to probe; give the UDP endpoint a moment.
                    std::thread::sleep(Duration::from_millis(300));
                }
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(self.failure("not ready in time"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An error naming this server and the end of its log.
    pub fn failure(&self, what: &str) -> BenchError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        BenchError::Server(format!(
            "{} {what}; log tail: {}",
            self.process.name,
            tail.join(" / ")
        ))
    }
}

/// A source and a destination server, the source filled.
pub struct Pair {
    pub src: Server,
    pub dst: Server,
    /// The external stores of [`Setup::PlasmaStore`] (source, destination).
    pub stores: Option<(PyarrowStore, PyarrowStore)>,
    pub put: PutObjects,
    _dir: tempfile::TempDir,
}

impl Pair {
    pub fn start(
        transport: &Transport,
        setup: Setup,
        workload: &Workload,
        placement: Placement,
        legacy: bool,
    ) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("plasma-stream-bench")
            .tempdir()?;
        let bytes = store_bytes(workload);
        // Both stores end up holding every byte: refuse rather than push the machine into OOM.
        let needed = 2 * workload.total_bytes() + (512 << 20);
        if let Some(available) = crate::memory::mem_available() {
            if available < needed {
                return Err(BenchError::Setup(format!(
                    "not enough memory: {} MiB needed for two stores, {} MiB available",
                    needed >> 20,
                    available >> 20
                )));
            }
        }
        let (src_ns, src_ip) = placement.source();
        let (dst_ns, dst_ip) = placement.destination();
        let parse = |ip: &str| -> Result<IpAddr, BenchError> {
            ip.parse()
                .map_err(|_| BenchError::Setup(format!("bad address {ip}")))
        };
        let stores = match setup {
            Setup::PlasmaStore { warm } => {
                let src_store = PyarrowStore::start("src", dir.path(), src_ns, bytes)?;
                let dst_store = PyarrowStore::start("dst", dir.path(), dst_ns, bytes)?;
                if warm {
                    dst_store.warm_up(workload.total_bytes())?;
                }
                Some((src_store, dst_store))
            }
            Setup::Bench | Setup::EmbeddedDefaults => None,
        };
        let src = Server::start(
            "src",
            dir.path(),
            src_ns,
            parse(src_ip)?,
            bytes,
            stores.as_ref().map(|(s, _)| s.socket.as_path()),
            transport,
            setup,
            legacy,
        )?;
        let dst = Server::start(
            "dst",
            dir.path(),
            dst_ns,
            parse(dst_ip)?,
            bytes,
            stores.as_ref().map(|(_, d)| d.socket.as_path()),
            transport,
            setup,
            false,
        )?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let put = objects::put_objects(&src.socket, nonce, workload.objects, workload.object_size)?;
        Ok(Self {
            src,
            dst,
            stores,
            put,
            _dir: dir,
        })
    }

    /// Every process of the pair by role: `src`, `dst` (the servers) and, beside pyarrow's
    /// store, `src store`, `dst store`.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut v = vec![
            ("src".to_string(), self.src.process.pid()),
            ("dst".to_string(), self.dst.process.pid()),
        ];
        if let Some((s, d)) = &self.stores {
            v.push(("src store".into(), s.process.pid()));
            v.push(("dst store".into(), d.process.pid()));
        }
        v
    }
}

/// What one SYNC did.
#[derive(Clone, Debug)]
pub struct SyncOutcome {
    pub secs: f64,
    /// Objects the report says arrived (status success), or that were seen sealed at the
    /// destination when the deadline cut the SYNC off.
    pub objects_ok: u64,
    pub timed_out: bool,
    /// The first failure the report named, if any.
    pub failure: Option<String>,
}

/// Times one SYNC between two fresh servers, then verifies a sample at the destination.
/// Counts the CPU time of every process of the pair (servers and external stores) from just
/// before the SYNC to its report.
pub fn measure_sync(
    transport: &Transport,
    setup: Setup,
    workload: &Workload,
    placement: Placement,
    deadline: Duration,
    events: bool,
) -> Result<Sample, BenchError> {
    let mut pair = Pair::start(transport, setup, workload, placement, false)?;
    let pids: Vec<u32> = pair.processes().iter().map(|(_, pid)| *pid).collect();
    let profiler = Profiler::attach(
        &pids,
        &format!(
            "{}-{}{}",
            workload.label(),
            transport_label(transport),
            setup.slug()
        ),
    );
    let sampler = PeakSampler::start(
        vec![
            ("src".into(), pair.src.process.pid()),
            ("dst".into(), pair.dst.process.pid()),
        ],
        Duration::from_millis(10),
    );
    let watch = (workload.objects <= WATCH_MAX_OBJECTS).then(|| {
        Progress::start(
            &pair.dst.socket,
            pair.put.ids.clone(),
            Duration::from_millis(10),
        )
    });
    let outcome = run_sync(transport, placement, &pair, deadline, events);
    let progress = watch.map(Progress::finish);
    let peaks = sampler.finish();
    drop(profiler);
    let (outcome, cpu) = match outcome {
        Ok((o, cpu)) => (Ok(o), cpu),
        Err(e) => (Err(e), BTreeMap::new()),
    };
    let outcome = outcome.map_err(|e| match e {
        BenchError::Server(m) => {
            let dst = pair.dst.failure("");
            BenchError::Server(format!("{m} ({dst})"))
        }
        other => other,
    })?;
    let objects_ok = if outcome.timed_out {
        progress.map(|p| p.done).unwrap_or(outcome.objects_ok)
    } else {
        outcome.objects_ok
    };
    if let Some(f) = &outcome.failure {
        if !outcome.timed_out {
            return Err(BenchError::Server(format!("SYNC reported a failure: {f}")));
        }
    }
    if !outcome.timed_out {
        objects::verify(&pair.dst.socket, &pair.put)?;
    }
    pair.src.process.stop(Duration::from_secs(3));
    pair.dst.process.stop(Duration::from_secs(3));
    Ok(Sample {
        bytes: objects_ok * workload.object_size,
        objects: objects_ok,
        secs: outcome.secs,
        half_secs: progress.and_then(|p| p.half_secs),
        peaks,
        cpu,
        note: outcome.timed_out.then(|| {
            format!(
                "cut off at {:.0} s: {objects_ok}/{} objects arrived",
                outcome.secs, workload.objects
            )
        }),
    })
}

fn transport_label(t: &Transport) -> String {
    match t {
        Transport::Quic { congestion } => {
            format!("quic-{}", congestion.as_deref().unwrap_or("default"))
        }
        Transport::TcpFallback => "tcp".into(),
    }
}

/// `perf record -e cpu-clock --call-graph dwarf` attached to the servers (and pyarrow's stores,
/// beside them) for the duration of one transfer,
/// when `$PLASMA_STREAM_BENCH_PERF` names a directory (one `.data` file per measurement).
/// Read them with `perf report -i FILE --no-children`.
struct Profiler(Option<ChildGuard>);

impl Profiler {
    fn attach(pids: &[u32], label: &str) -> Self {
        let Some(dir) = std::env::var_os("PLASMA_STREAM_BENCH_PERF") else {
            return Self(None);
        };
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let name: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let file = dir.join(format!("{name}-{}.data", std::process::id()));
        let pid_list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut cmd = std::process::Command::new("perf");
        // DWARF unwinding: the release profile keeps no frame pointers, and `-g` alone stops
        // at the first Rust frame. 999 Hz with 16 KiB of stack per sample keeps files small.
        cmd.args(["record", "-q", "-e", "cpu-clock", "-F", "999"])
            .args([
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid_list.join(","),
                "-o",
            ])
            .arg(&file);
        let guard = ChildGuard::spawn("perf", cmd, None).ok();
        std::thread::sleep(Duration::from_millis(300)); // let perf attach
        eprintln!("profiling into {}", file.display());
        Self(guard)
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Some(mut g) = self.0.take() {
            // SIGINT makes perf write its file and exit.
            // SAFETY: signals our own child by its pid.
            unsafe { libc::kill(g.pid() as libc::pid_t, libc::SIGINT) };
            let _ = g.wait_timeout(Duration::from_secs(30));
        }
    }
}

/// Runs the client's SYNC on a thread in the destination's namespace, and the CPU seconds
/// each of `processes` used during the `sync` call (see [`crate::client::sync_copy`]).
fn run_sync(
    transport: &Transport,
    placement: Placement,
    pair: &Pair,
    deadline: Duration,
    events: bool,
) -> Result<(SyncOutcome, BTreeMap<String, f64>), BenchError> {
    let (dst, src, ids, processes) = (
        pair.dst.addr,
        pair.src.addr,
        pair.put.ids.clone(),
        pair.processes(),
    );
    let mode = match transport {
        Transport::Quic { .. } => stream::TransportMode::Quic,
        Transport::TcpFallback => stream::TransportMode::Tcp,
    };
    let work = move || -> Result<(SyncOutcome, BTreeMap<String, f64>), BenchError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(crate::client::sync_copy(
            dst, src, mode, ids, deadline, processes, events,
        ))
    };
    match placement.destination().0 {
        Some(ns) => in_namespace(ns, work)?,
        None => work(),
    }
}

/// Times a legacy plaintext COPY straight from a server started with `--legacy-tcp`; the
/// harness reads the objects into pre-faulted shared memory (it is the receiver).
pub fn measure_legacy(
    workload: &Workload,
    placement: Placement,
    deadline: Duration,
) -> Result<Sample, BenchError> {
    let pair = Pair::start(
        &Transport::Quic { congestion: None },
        Setup::Bench,
        workload,
        placement,
        true,
    )?;
    let sampler = PeakSampler::start(
        vec![("src".into(), pair.src.process.pid())],
        Duration::from_millis(10),
    );
    let ids = pair.put.ids.clone();
    let addr = pair.src.addr;
    let size = workload.object_size;
    let src_cpu = CpuMeter::start(vec![("src".into(), pair.src.process.pid())]);
    // The receiver is this thread: its own CPU time is the destination's.
    let work = move || {
        let t0 = thread_cpu_secs();
        legacy_pull(addr, &ids, size, deadline).map(|r| (r, thread_cpu_secs() - t0))
    };
    let result = match placement.destination().0 {
        Some(ns) => in_namespace(ns, work)?,
        None => work(),
    };
    let mut cpu = src_cpu.finish();
    let peaks = sampler.finish();
    let result = result.map(|(r, dst_cpu)| {
        cpu.insert("dst".into(), dst_cpu);
        r
    });
    let r = result.map_err(|e| match e {
        BenchError::Io(io) => pair.src.failure(&format!("legacy COPY: {io}")),
        other => other,
    })?;
    Ok(Sample {
        bytes: r.bytes,
        objects: r.objects,
        secs: r.secs,
        half_secs: r.half_secs,
        peaks,
        cpu,
        note: r.timed_out.then(|| {
            format!(
                "cut off at {:.0} s: {}/{} objects arrived",
                r.secs, r.objects, workload.objects
            )
        }),
    })
}

/// The legacy format's largest ID list (its u16 count cannot say 65,536).
const LEGACY_MAX_IDS: usize = 65_535;

/// Sends legacy COPY requests (several if there are more than 65,535 IDs) on one connection
/// and reads every object frame into shared memory.
fn legacy_pull(
    addr: SocketAddr,
    ids: &[ObjectId],
    object_size: u64,
    deadline: Duration,
) -> Result<crate::peers::copy::PullResult, BenchError> {
    use plasma_stream_protocol::legacy::{FrameHeader, TransferReply};
    use plasma_stream_protocol::Request;
    use std::io::{Read, Write};

    let mut dest = SharedRegion::new_populated((ids.len() as u64 * object_size) as usize)?;
    let start = Instant::now();
    let mut tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(deadline))?;
    let mut request = Vec::new();
    for chunk in ids.chunks(LEGACY_MAX_IDS) {
        let list: Vec<plasma_stream_protocol::ObjectId> =
            chunk.iter().map(|id| id.0.into()).collect();
        Request::Copy(list)
            .encode_legacy(&mut request)
            .map_err(|e| BenchError::Protocol(format!("encoding legacy COPY: {e}")))?;
    }
    tcp.write_all(&request)?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, tcp);
    let mut result = crate::peers::copy::PullResult {
        bytes: 0,
        objects: 0,
        secs: 0.0,
        half_secs: None,
        timed_out: false,
        cpu_secs: None,
    };
    let half = (ids.len() as u64).div_ceil(2).max(1);
    let mut offset = 0usize;
    let mut metadata = vec![0u8; 1 << 16];
    for chunk in ids.chunks(LEGACY_MAX_IDS) {
        let mut first = [0u8; 1];
        r.read_exact(&mut first)?;
        match TransferReply::decode(&first) {
            Ok(Some((TransferReply::Begin, _))) => {}
            Ok(Some((TransferReply::Failed(status), _))) => {
                return Err(BenchError::Server(format!(
                    "legacy COPY refused: {status:?}"
                )))
            }
            other => {
                return Err(BenchError::Protocol(format!(
                    "bad legacy reply byte {:#04x}: {other:?}",
                    first[0]
                )))
            }
        }
        for _ in chunk {
            let mut word = [0u8; 8];
            r.read_exact(&mut word)?;
            let header = FrameHeader::decode(&word)
                .ok()
                .flatten()
                .map(|(h, _)| h)
                .ok_or_else(|| BenchError::Protocol("bad legacy frame header".into()))?;
            if header.data_size != object_size {
                return Err(BenchError::Protocol(format!(
                    "legacy frame of {} bytes, expected {object_size}",
                    header.data_size
                )));
            }
            r.read_exact(&mut metadata[..header.metadata_size as usize])?;
            let end = offset + object_size as usize;
            let slot = dest
                .as_mut_slice()
                .get_mut(offset..end)
                .ok_or_else(|| BenchError::Protocol("more data than asked for".into()))?;
            r.read_exact(slot)?;
            offset = end;
            result.bytes += object_size;
            result.objects += 1;
            if result.objects == half {
                result.half_secs = Some(start.elapsed().as_secs_f64());
            }
            if start.elapsed() > deadline {
                result.timed_out = true;
                break;
            }
        }
        if result.timed_out {
            break;
        }
    }
    result.secs = start.elapsed().as_secs_f64();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Workload {
        Workload {
            objects: 6,
            object_size: 256 << 10,
        }
    }

    /// The harness's own path through real processes: two servers (debug build, as CI builds
    /// `--bins`), filled, synced by the client library, verified by XXH64, memory sampled.
    #[test]
    fn sync_between_two_real_servers_is_measured_and_verified() {
        for (transport, events) in [
            (
                Transport::Quic {
                    congestion: Some("bbr".into()),
                },
                false,
            ),
            (Transport::TcpFallback, false),
            // The progress-events row: the same SYNC, its events taken by the client.
            (Transport::Quic { congestion: None }, true),
        ] {
            let s = measure_sync(
                &transport,
                Setup::Bench,
                &small(),
                Placement::Loopback,
                Duration::from_secs(60),
                events,
            )
            .unwrap_or_else(|e| panic!("{transport:?}: {e}"));
            assert_eq!(s.objects, 6, "{transport:?}");
            assert_eq!(s.bytes, 6 * (256 << 10));
            assert!(s.secs > 0.0 && s.note.is_none(), "{s:?}");
            assert!(s.half_secs.is_some());
            assert!(s.peaks.get("src").is_some_and(|b| *b > 0), "{s:?}");
            assert!(s.peaks.get("dst").is_some_and(|b| *b > 0), "{s:?}");
            assert!(
                s.cpu.contains_key("src") && s.cpu.contains_key("dst"),
                "{s:?}"
            );
        }
    }

    /// The issue-14 set-ups: servers at their defaults beside pyarrow's real `plasma_store`
    /// (cold and warm) and with the embedded store; CPU counted for every process.
    #[test]
    #[ignore = "needs pyarrow 11's plasma_store in .venv or $PLASMA_STREAM_PYTHON's venv"]
    fn sync_beside_pyarrow_plasma_store_and_at_defaults() {
        for setup in [
            Setup::PlasmaStore { warm: false },
            Setup::PlasmaStore { warm: true },
            Setup::EmbeddedDefaults,
        ] {
            for transport in [Transport::Quic { congestion: None }, Transport::TcpFallback] {
                let s = measure_sync(
                    &transport,
                    setup,
                    &small(),
                    Placement::Loopback,
                    Duration::from_secs(60),
                    false,
                )
                .unwrap_or_else(|e| panic!("{setup:?} {transport:?}: {e}"));
                assert_eq!((s.objects, s.bytes), (6, 6 * (256 << 10)), "{setup:?}");
                let roles: Vec<&str> = s.cpu.keys().map(String::as_str).collect();
                if setup == Setup::EmbeddedDefaults {
                    assert_eq!(roles, ["dst", "src"], "{setup:?}");
                } else {
                    assert_eq!(roles, ["dst", "dst store", "src", "src store"], "{setup:?}");
                }
            }
        }
    }

    #[test]
    fn legacy_copy_from_a_real_server_is_measured() {
        let s = measure_legacy(&small(), Placement::Loopback, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.objects, s.bytes), (6, 6 * (256 << 10)));
        assert!(s.note.is_none());
        assert!(
            s.cpu.contains_key("src") && s.cpu.contains_key("dst"),
            "{s:?}"
        );
    }

    #[test]
    fn store_sizes_leave_room() {
        let w = Workload {
            objects: 65_536,
            object_size: 4096,
        };
        assert!(store_bytes(&w) >= w.total_bytes() + (64 << 20));
        let big = Workload {
            objects: 1,
            object_size: 8 << 30,
        };
        assert_eq!(store_bytes(&big), (8 << 30) + (1 << 30) + 4096);
    }
}
