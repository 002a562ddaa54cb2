//! `plasma_stream._native`: the `stream` client library for Python.
//!
//! This half does the network work and nothing Pythonic: it takes and returns plain values
//! (strings, bytes, tuples) and raises the exception classes of `plasma_stream._errors`. The
//! pure-Python package around it (`python/plasma_stream/`) turns those into the public API
//! (argument checking and normalisation, report and event classes, writing into a
//! pyarrow.plasma store), where it is easy to read and to type-check.
//!
//! Every wait on the network runs with the GIL released and wakes every
//! [`SIGNAL_CHECK`] to let Python handle signals, so Ctrl-C interrupts a long SYNC.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plasma_stream_certs::Fingerprint;
use plasma_stream_protocol::{grammar, ObjectId, PeerRequest, Status};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyTuple};
use stream::{
    Client, ClientBuilder, DetailedReport, ObjectState, ProgressEvent, ReasonCode, TransportMode,
    UNKNOWN_TOTAL, WHOLE_SYNC,
};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// How often a wait wakes up to run Python's signal handlers (KeyboardInterrupt) and the
/// progress callback: short enough that Ctrl-C feels immediate, long enough to cost nothing.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Progress events handed to the callback per wake-up at most (the rest wait for the next).
const EVENT_BATCH: usize = 1024;

/// Worker threads of the runtime: the client's work is TLS and copying, and a Python process
/// usually has other things to do with its cores.
const MAX_WORKERS: usize = 4;

/// The process's runtime, with the pid that built it. A forked child (multiprocessing's
/// default on Linux) inherits the parent's runtime without its worker threads, so it gets a
/// runtime of its own.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

fn runtime() -> PyResult<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((owner, runtime)) = *slot {
        if owner == pid {
            return Ok(runtime);
        }
    }
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, MAX_WORKERS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("plasma-stream")
        .enable_all()
        .build()
        .map_err(|error| {
            raise(
                "PlasmaStreamError",
                format!("cannot start the client's runtime: {error}"),
            )
        })?;
    // Leaked on purpose: it lives as long as the process. A parent's runtime left behind in a
    // forked child is leaked too, since shutting it down would wait for threads that the child
    // does not have.
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *slot = Some((pid, runtime));
    Ok(runtime)
}

/// An exception of `plasma_stream._errors` (see `_from_native` there). Building it can only
/// fail if the package is broken; then that failure is raised instead, which names the cause.
fn raise(kind: &str, message: String) -> PyErr {
    raise_with(kind, message, None, None)
}

fn raise_with(
    kind: &str,
    message: String,
    object_id: Option<ObjectId>,
    status: Option<Status>,
) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("plasma_stream._errors")
            .and_then(|errors| errors.getattr("_from_native"))
            .and_then(|make| {
                make.call1((
                    kind,
                    message,
                    object_id.map(|id| PyBytes::new(py, id.as_bytes())),
                    status.map(Status::code),
                ))
            });
        match made {
            Ok(exception) => PyErr::from_value(exception),
            Err(error) => error,
        }
    })
}

/// The exception class for a client error (the classes are documented in `_errors.py`).
fn classify(error: &stream::Error) -> &'static str {
    use stream::Error as E;
    match error {
        E::Address(_) | E::ObjectId(_) | E::Limit(_) | E::Encode(_) => "RequestError",
        E::Decode(_) | E::Protocol(_) => "ProtocolError",
        E::Transport(transport) => classify_transport(transport),
        E::Certs(_) | E::NoTrust => "TrustError",
        E::Resolve(_) | E::Io(_) | E::Truncated => "ConnectError",
        E::Object { status, .. } if *status == Status::NotFound => "ObjectNotFoundError",
        E::Object { .. } => "ObjectError",
        E::Timeout(_) => "TimeoutError",
        E::Refused { .. } => "RequestError",
        E::Pull(stream::pull::PullError::Exchange(_)) => "ProtocolError",
        E::Pull(stream::pull::PullError::Transport(transport)) => classify_transport(transport),
    }
}

fn classify_transport(error: &plasma_stream_transport::TransportError) -> &'static str {
    use plasma_stream_transport::TransportError as T;
    match error {
        // A refused certificate, either way (the message names the fingerprint to trust).
        T::Handshake { .. } | T::Certs(_) => "TrustError",
        T::Timeout { .. } | T::Idle(_) | T::TooSlow { .. } => "TimeoutError",
        T::Bind { .. }
        | T::Refused { .. }
        | T::Connect { .. }
        | T::ConnectionLost { .. }
        | T::Closed
        | T::Write(_)
        | T::Read(_)
        | T::Io(_) => "ConnectError",
        T::QuicTls(_) | T::Unsupported(_) => "PlasmaStreamError",
    }
}

fn to_py(error: stream::Error) -> PyErr {
    let kind = classify(&error);
    let message = error.to_string();
    match error {
        stream::Error::Object { id, status } => raise_with(kind, message, Some(id), Some(status)),
        _ => raise(kind, message),
    }
}

/// Aborts a spawned task when dropped: a wait that ends early (Ctrl-C, a callback that
/// raised, a deadline) must not leave the exchange running unseen.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a wait's progress events come from, and what hands them to Python.
type Events<'a> = (
    mpsc::UnboundedReceiver<ProgressEvent>,
    &'a mut dyn FnMut(ProgressEvent) -> PyResult<()>,
);

enum Step<T> {
    Done(Result<stream::Result<T>, tokio::task::JoinError>),
    Events(usize),
    Tick,
}

/// Runs `future` on the runtime and waits for it with the GIL released, waking every
/// [`SIGNAL_CHECK`] to run signal handlers and hand `events` to `on_event`. Ends early (and
/// abandons the future) when a signal handler or `on_event` raises, or at `deadline`
/// (raising `TimeoutError` with its message).
fn wait<T, F>(
    py: Python<'_>,
    runtime: &'static Runtime,
    future: F,
    mut events: Option<Events<'_>>,
    deadline: Option<(Instant, String)>,
) -> PyResult<T>
where
    F: Future<Output = stream::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let mut task = runtime.spawn(future);
    let _abort = AbortOnDrop(task.abort_handle());
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    // False once the sender is gone (the task is finishing): a closed receiver would wake
    // every round.
    let mut receiving = events.is_some();
    loop {
        let nap = match &deadline {
            Some((at, _)) => SIGNAL_CHECK.min(at.saturating_duration_since(Instant::now())),
            None => SIGNAL_CHECK,
        };
        let receiver = events.as_mut().map(|(receiver, _)| receiver);
        let step = py.detach(|| {
            runtime.block_on(async {
                let receive = async {
                    match receiver {
                        Some(receiver) => receiver.recv_many(&mut batch, EVENT_BATCH).await,
                        None => 0,
                    }
                };
                tokio::select! {
                    biased;
                    joined = &mut task => Step::Done(joined),
                    received = receive, if receiving => Step::Events(received),
                    () = tokio::time::sleep(nap) => Step::Tick,
                }
            })
        });
        if let Some((receiver, on_event)) = events.as_mut() {
            if let Step::Done(_) = step {
                // Events the task sent just before it finished still belong before the result.
                while let Ok(event) = receiver.try_recv() {
                    batch.push(event);
                }
            }
            for event in batch.drain(..) {
                on_event(event)?;
            }
        }
        match step {
            Step::Done(Ok(result)) => return result.map_err(to_py),
            Step::Done(Err(join)) => {
                return Err(raise(
                    "PlasmaStreamError",
                    format!("internal error in the client (please report it): {join}"),
                ))
            }
            Step::Events(0) => receiving = false,
            Step::Events(_) | Step::Tick => {}
        }
        py.check_signals()?;
        if let Some((at, message)) = &deadline {
            if Instant::now() >= *at {
                return Err(raise("TimeoutError", message.clone()));
            }
        }
    }
}

fn duration(seconds: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a non-negative number of seconds, not {seconds}"
        ))
    })
}

/// A connection to one plasma-stream-server (wrapped by `plasma_stream.Client`).
#[pyclass(frozen, module = "plasma_stream._native")]
struct NativeClient {
    /// `None` only while dropping.
    client: Option<Client>,
    runtime: &'static Runtime,
    /// The process that connected: the connection's tasks run on that process's runtime.
    pid: u32,
}

#[pymethods]
impl NativeClient {
    /// Connects. With `from_env`, trust comes from the `PLASMA_STREAM_*` variables as for
    /// `Client::connect`; otherwise from the arguments only.
    #[new]
    #[pyo3(signature = (address, *, from_env, insecure, trust, trust_file, ca, identity_dir, timeout, transport))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        address: String,
        from_env: bool,
        insecure: bool,
        trust: Vec<String>,
        trust_file: Option<std::path::PathBuf>,
        ca: Option<std::path::PathBuf>,
        identity_dir: Option<std::path::PathBuf>,
        timeout: Option<f64>,
        transport: &str,
    ) -> PyResult<Self> {
        let mut builder = if from_env {
            ClientBuilder::from_env().map_err(to_py)?
        } else {
            ClientBuilder::new()
        };
        if insecure {
            builder = builder.insecure();
        }
        for token in &trust {
            let fingerprint: Fingerprint = token
                .parse()
                .map_err(|error| to_py(stream::Error::Certs(error)))?;
            builder = builder.trust_fingerprint(fingerprint);
        }
        if let Some(path) = trust_file {
            builder = builder.trust_file(path).map_err(to_py)?;
        }
        if let Some(path) = ca {
            builder = builder.ca(path).map_err(to_py)?;
        }
        // The variable applies whatever the trust, as for the Rust library's `from_env`.
        if let Some(dir) =
            identity_dir.or_else(|| std::env::var_os("PLASMA_STREAM_IDENTITY_DIR").map(Into::into))
        {
            builder = builder.identity_dir(dir);
        }
        if let Some(seconds) = timeout {
            builder = builder.timeout(duration(seconds, "timeout")?);
        }
        let mode: TransportMode = transport.parse().map_err(PyValueError::new_err)?;
        builder = builder.transport(mode);
        let runtime = runtime()?;
        let client = wait(py, runtime, builder.connect(address), None, None)?;
        Ok(NativeClient {
            client: Some(client),
            runtime,
            pid: std::process::id(),
        })
    }

    /// The server's socket address, e.g. `127.0.0.1:2021`.
    #[getter]
    fn server(&self) -> PyResult<String> {
        Ok(self.client()?.server().to_string())
    }

    /// `"quic"`, or `"tcp"` for the TLS-over-TCP fallback.
    #[getter]
    fn transport(&self) -> PyResult<String> {
        Ok(self.client()?.connection_kind().to_string())
    }

    /// Runs a SYNC. `requests`: `(kind, peer, ids)` with kind `"copy"` or `"take"`, peer
    /// `IP:port`, ids the concatenated 20-byte IDs. Returns per peer request
    /// `(status, [(id, status, reason code, reason name, reason text, bytes, attempts,
    /// duration ms)])`. `progress` is called with `("progress", peer request or None, bytes
    /// done, bytes total or None, objects done, objects total)` and `("object", peer request,
    /// id, state, size)` tuples.
    #[pyo3(signature = (requests, progress=None, timeout=None))]
    fn sync<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<(String, String, Bound<'py, PyBytes>)>,
        progress: Option<Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<(u8, Vec<Outcome>)>> {
        let client = self.client()?.clone();
        let peer_requests = requests
            .iter()
            .enumerate()
            .map(|(index, (kind, peer, ids))| peer_request(index, kind, peer, ids.as_bytes()))
            .collect::<PyResult<Vec<_>>>()?;
        let deadline = timeout
            .map(|seconds| {
                let after = duration(seconds, "timeout")?;
                Ok::<_, PyErr>((
                    Instant::now() + after,
                    format!(
                        "no SYNC report within {after:?}; the server goes on with the SYNC \
                         (the same SYNC sent again reports what arrived meanwhile)"
                    ),
                ))
            })
            .transpose()?;
        let report = match progress {
            None => wait(
                py,
                self.runtime,
                async move { client.sync_with_progress(peer_requests, |_| {}).await },
                None,
                deadline,
            )?,
            Some(callback) => {
                let (sender, receiver) = mpsc::unbounded_channel();
                let mut deliver = |event: ProgressEvent| -> PyResult<()> {
                    callback.call1((event_tuple(py, event)?,)).map(drop)
                };
                wait(
                    py,
                    self.runtime,
                    async move {
                        client
                            .sync_with_progress(peer_requests, move |event| {
                                // A receiver that is gone (the wait ended early) wants nothing.
                                let _ = sender.send(event);
                            })
                            .await
                    },
                    Some((receiver, &mut deliver)),
                    deadline,
                )?
            }
        };
        Ok(report_tuples(report))
    }

    /// Pulls copies of these objects (concatenated 20-byte IDs) into this process:
    /// `[(id, data, metadata)]` in order.
    fn copy<'py>(&self, py: Python<'py>, ids: &[u8]) -> PyResult<Vec<Received<'py>>> {
        self.pull(py, ids, stream::TransferKind::Copy)
    }

    /// The same, and the server deletes each object once this client has it.
    fn take<'py>(&self, py: Python<'py>, ids: &[u8]) -> PyResult<Vec<Received<'py>>> {
        self.pull(py, ids, stream::TransferKind::Take)
    }

    /// Stores an object in the server's store and returns once the server sealed it.
    /// `id`: 20 bytes. A refusal raises `ObjectError` with the server's status (0x81 already
    /// there, 0x64 no room, 0x63 not permitted).
    fn put(
        &self,
        py: Python<'_>,
        id: &[u8],
        data: PyBackedBytes,
        metadata: PyBackedBytes,
    ) -> PyResult<()> {
        let client = self.client()?.clone();
        let id = one_object_id(id)?;
        // The transfer reads the bytes where Python holds them, without the GIL: a `bytes`
        // object is immutable, and `PyBackedBytes` keeps it alive (a bytearray was copied
        // once, on extraction).
        let (data, metadata) = (Bytes::from_owner(data), Bytes::from_owner(metadata));
        self.wait_for(
            py,
            async move { client.put_bytes(id, data, metadata).await },
        )
    }

    /// Every object in the server's store, ordered by ID: `[(id, data size, metadata size,
    /// sealed, created in Unix seconds or 0)]`.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Listed>> {
        let client = self.client()?.clone();
        let objects = self.wait_for(py, async move { client.list().await })?;
        Ok(objects.into_iter().map(listed_tuple).collect())
    }

    /// One object of the server's store as in `list`, or `None` if the store lacks it.
    fn info(&self, py: Python<'_>, id: &[u8]) -> PyResult<Option<Listed>> {
        let client = self.client()?.clone();
        let id = one_object_id(id)?;
        let object = self.wait_for(py, async move { client.info(id).await })?;
        Ok(object.map(listed_tuple))
    }

    /// The server's counters: `(uptime s, transfers in flight, received bytes, received
    /// objects, sent bytes, sent objects, failed objects, store capacity, store used or
    /// None, [(peer, received bytes, sent bytes)])`.
    fn stats(&self, py: Python<'_>) -> PyResult<Stats> {
        let client = self.client()?.clone();
        let stats = self.wait_for(py, async move { client.stats().await })?;
        Ok((
            stats.uptime_seconds,
            stats.transfers_in_flight,
            stats.received_bytes,
            stats.received_objects,
            stats.sent_bytes,
            stats.sent_objects,
            stats.failed_objects,
            stats.store_capacity,
            stats.store_used,
            stats
                .peers
                .into_iter()
                .map(|peer| (peer.label, peer.received_bytes, peer.sent_bytes))
                .collect(),
        ))
    }

    /// Closes the connection, telling the server (waits at most about a second).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let client = self.client()?.clone();
        self.wait_for(py, async move {
            client.close().await;
            Ok(())
        })
    }
}

/// One object's outcome, as `sync` returns it.
type Outcome = (
    [u8; ObjectId::LEN],
    u8,
    u8,
    &'static str,
    String,
    u64,
    u32,
    u64,
);

/// One object of a server's store, as `list` and `info` return it.
type Listed = ([u8; ObjectId::LEN], u64, u64, bool, u64);

/// A server's counters, as `stats` returns them.
type Stats = (
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    Option<u64>,
    Vec<(String, u64, u64)>,
);

fn listed_tuple(object: stream::ListedObject) -> Listed {
    (
        *object.id.as_bytes(),
        object.data_size,
        object.metadata_size,
        object.sealed,
        object.created,
    )
}

/// One received object: id, data, metadata.
type Received<'py> = (
    [u8; ObjectId::LEN],
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
);

impl NativeClient {
    /// [`wait`] for `future` on this client's runtime, with no events and no deadline.
    fn wait_for<T, F>(&self, py: Python<'_>, future: F) -> PyResult<T>
    where
        F: Future<Output = stream::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        wait(py, self.runtime, future, None, None)
    }

    fn client(&self) -> PyResult<&Client> {
        if self.pid != std::process::id() {
            return Err(raise(
                "PlasmaStreamError",
                format!(
                    "this Client was connected in process {} and cannot be used in a forked \
                     child: connect a new Client in the child process",
                    self.pid
                ),
            ));
        }
        self.client
            .as_ref()
            .ok_or_else(|| raise("ConnectError", "the client is closed".into()))
    }

    fn pull<'py>(
        &self,
        py: Python<'py>,
        ids: &[u8],
        kind: stream::TransferKind,
    ) -> PyResult<Vec<Received<'py>>> {
        let client = self.client()?.clone();
        let ids = object_ids(ids)?;
        let objects = self.wait_for(py, async move {
            match kind {
                stream::TransferKind::Copy => client.copy(&ids).await,
                stream::TransferKind::Take => client.take(&ids).await,
            }
        })?;
        Ok(objects
            .into_iter()
            .map(|object| {
                (
                    *object.id.as_bytes(),
                    PyBytes::new(py, &object.data),
                    PyBytes::new(py, &object.metadata),
                )
            })
            .collect())
    }
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        // The connection's sockets belong to the runtime's I/O driver: drop them in its
        // context (Python may drop the client on any thread).
        let _context = self.runtime.enter();
        self.client.take();
    }
}

/// Concatenated 20-byte IDs (the Python layer checks each ID; this guards the count).
fn object_ids(bytes: &[u8]) -> PyResult<Vec<ObjectId>> {
    if bytes.len() % ObjectId::LEN != 0 {
        return Err(raise(
            "RequestError",
            format!(
                "object IDs must be 20 bytes each; got {} bytes in all",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(ObjectId::LEN)
        .filter_map(|chunk| ObjectId::from_slice(chunk).ok())
        .collect())
}

/// Exactly one 20-byte ID.
fn one_object_id(bytes: &[u8]) -> PyResult<ObjectId> {
    ObjectId::from_slice(bytes).map_err(|_| {
        raise(
            "RequestError",
            format!("an object ID is 20 bytes, not {}", bytes.len()),
        )
    })
}

fn peer_request(index: usize, kind: &str, peer: &str, ids: &[u8]) -> PyResult<PeerRequest> {
    let kind = if kind.eq_ignore_ascii_case("copy") {
        stream::TransferKind::Copy
    } else if kind.eq_ignore_ascii_case("take") {
        stream::TransferKind::Take
    } else {
        let message =
            format!("peer request {index}: unknown kind {kind:?}: expected \"copy\" or \"take\"");
        return Err(raise("RequestError", message));
    };
    let from = grammar::parse_address(peer).map_err(|reason| {
        raise(
            "RequestError",
            format!("peer request {index}: peer `{peer}`: {reason}"),
        )
    })?;
    Ok(PeerRequest::new(kind, from, object_ids(ids)?))
}

fn event_tuple(py: Python<'_>, event: ProgressEvent) -> PyResult<Bound<'_, PyTuple>> {
    let known = |value: u64| (value != UNKNOWN_TOTAL).then_some(value);
    match event {
        ProgressEvent::Progress(p) => (
            "progress",
            (p.peer_request != WHOLE_SYNC).then_some(p.peer_request),
            p.bytes_done,
            known(p.bytes_total),
            p.objects_done,
            p.objects_total,
        )
            .into_pyobject(py),
        ProgressEvent::Object(o) => (
            "object",
            o.peer_request,
            *o.id.as_bytes(),
            match o.state {
                ObjectState::Started => "started",
                ObjectState::Arrived => "arrived",
                ObjectState::Failed => "failed",
            },
            o.size,
        )
            .into_pyobject(py),
    }
}

fn report_tuples(report: DetailedReport) -> Vec<(u8, Vec<Outcome>)> {
    report
        .peer_reports
        .into_iter()
        .map(|peer| {
            let objects = peer
                .objects
                .into_iter()
                .map(|o| {
                    (
                        *o.id.as_bytes(),
                        o.status.code(),
                        o.reason.code.code(),
                        o.reason.code.name(),
                        o.reason.text.to_string(),
                        o.bytes_moved,
                        o.attempts,
                        o.duration_ms,
                    )
                })
                .collect();
            (peer.status.code(), objects)
        })
        .collect()
}

/// Every documented status: `[(code, meaning)]` (the Python `Status` enum is checked
/// against it by the tests).
#[pyfunction]
fn status_table() -> Vec<(u8, &'static str)> {
    Status::ALL
        .iter()
        .map(|status| (status.code(), status.message()))
        .collect()
}

/// Every defined reason: `[(code, name)]`.
#[pyfunction]
fn reason_table() -> Vec<(u8, &'static str)> {
    ReasonCode::ALL
        .iter()
        .map(|reason| (reason.code(), reason.name()))
        .collect()
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeClient>()?;
    module.add_function(wrap_pyfunction!(status_table, module)?)?;
    module.add_function(wrap_pyfunction!(reason_table, module)?)?;
    Ok(())
}
