//! The Plasma socket server: an accept thread and one thread per connection.
//!
//! Each connection thread reads one frame at a time (exact lengths, so passed fds are never
//! swallowed), applies it to the shared [`StoreState`](super::state::StoreState) under the store
//! mutex, releases the mutex, and only then writes the reply. Replies to a connection go through
//! that connection's own writer lock, which also owns the set of segment keys already sent to
//! it, so "send the fd only if this connection lacks it" is decided at the moment of writing,
//! in the order the bytes go out. A Get that must wait is parked as a waiter in the state;
//! whoever completes it (a sealing connection, or the timer thread) writes its reply, so a
//! blocked Get never blocks its own connection's later requests, nor other clients.
//!
//! Bad input closes only the offending connection (or gets an error reply where the message has
//! an error field; only errors 0..3, which every client can map): the store never aborts.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, info_span, warn};

use super::arena::Arena;
use super::state::{
    ClientId, Completion, CreateError, DeleteStatus, GetDeadline, GetOutcome, InlineObject,
    MisuseError, ObjectInfo, ObjectLocation, SealError,
};
use super::Shared;
use crate::wire::fd_passing::{recv_fd, send_fd};
use crate::wire::messages::{self, Message, ObjectSpec, PlasmaError, Request};
use crate::wire::{read_frame, write_frame, MessageType, WireError};
use crate::{Error, ObjectId};

/// A peer that does not read its replies for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request body accepted beyond the capacity (CreateAndSeal carries object bytes
/// inline, and no object can exceed the capacity).
const BODY_SLACK: u64 = 1 << 20;

fn to_wire_info(info: &ObjectInfo) -> messages::ObjectInfo {
    messages::ObjectInfo {
        object_id: info.id,
        data_size: i64::try_from(info.data_size).unwrap_or(i64::MAX),
        metadata_size: i64::try_from(info.metadata_size).unwrap_or(i64::MAX),
        ref_count: info.ref_count,
        create_time: info.create_time,
        construct_duration: info.construct_duration,
        digest: info.digest,
        is_deletion: info.is_deletion,
    }
}

/// Encodes a Notification body for subscribers.
pub(super) fn encode_notification(infos: &[ObjectInfo]) -> Vec<u8> {
    messages::Notification {
        object_info: infos.iter().map(to_wire_info).collect(),
    }
    .encode()
}

fn spec_of(loc: &ObjectLocation) -> ObjectSpec {
    ObjectSpec {
        segment_key: loc.arena.key(),
        data_offset: loc.offset,
        data_size: loc.data_size,
        metadata_offset: loc.offset + loc.data_size,
        metadata_size: loc.metadata_size,
        device_num: 0,
    }
}

/// The writing half of a connection.
struct ConnWriter {
    stream: UnixStream,
    /// Segment keys whose fd this connection already received (the client's mmap table).
    sent_segments: HashSet<i32>,
    broken: bool,
}

/// The reply side of one client connection.
struct ReplyChannel {
    id: ClientId,
    writer: Mutex<ConnWriter>,
}

/// A Get completed by another thread, waiting to be written by the connection's own
/// deferred-reply thread.
type DeferredGet = (Vec<ObjectId>, Vec<Option<ObjectLocation>>);

/// One client connection, shared by its reader thread and by whoever completes its Gets.
///
/// Replies written by the connection's own reader thread go straight to the socket. A Get
/// completed elsewhere (a seal on another connection, the timer) is handed to this
/// connection's deferred-reply thread instead, so a client that stops reading can stall only
/// its own threads, never the sealing client or the timer.
struct Connection {
    id: ClientId,
    out: Arc<ReplyChannel>,
    owner: std::thread::ThreadId,
    deferred: std::sync::mpsc::Sender<DeferredGet>,
}

impl Connection {
    fn send(&self, kind: MessageType, body: &[u8], arenas: &[Arc<Arena>]) {
        self.out.send(kind, body, arenas)
    }

    fn reply<M: Message>(&self, message: &M) {
        self.out.reply(message)
    }

    /// Writes a Get's reply now if called on the connection's own thread, else queues it for
    /// the deferred-reply thread.
    fn deliver_get(&self, ids: Vec<ObjectId>, results: Vec<Option<ObjectLocation>>) {
        if std::thread::current().id() == self.owner {
            self.out.send_get_reply(ids, results);
        } else {
            // If the connection is gone, the references these results took were already
            // dropped with it (or will be at its disconnect).
            let _ = self.deferred.send((ids, results));
        }
    }
}

impl ReplyChannel {
    /// Writes one reply frame, then one fd per listed arena this connection has not received
    /// yet, in order. A write failure shuts the socket down, so the reader sees EOF and cleans
    /// up.
    fn send(&self, kind: MessageType, body: &[u8], arenas: &[Arc<Arena>]) {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if w.broken {
            return;
        }
        let result = (|| -> Result<(), WireError> {
            write_frame(&mut w.stream, kind, body)?;
            for arena in arenas {
                if !w.sent_segments.contains(&arena.key()) {
                    send_fd(&w.stream, arena.fd())?;
                    w.sent_segments.insert(arena.key());
                }
            }
            w.stream.flush()?;
            Ok(())
        })();
        if let Err(e) = result {
            warn!(client = self.id, error = %e, "cannot write to client; closing its connection");
            w.broken = true;
            let _ = w.stream.shutdown(Shutdown::Both);
        }
    }

    fn reply<M: Message>(&self, message: &M) {
        self.send(M::TYPE, &message.encode(), &[]);
    }

    /// Answers a Get: one spec per requested id; `store_fds`/`mmap_sizes` list each distinct
    /// arena of the found objects in order of first appearance.
    fn send_get_reply(&self, ids: Vec<ObjectId>, results: Vec<Option<ObjectLocation>>) {
        let mut arenas: Vec<Arc<Arena>> = Vec::new();
        let mut objects = Vec::with_capacity(results.len());
        for r in &results {
            match r {
                Some(loc) => {
                    if !arenas.iter().any(|a| a.key() == loc.arena.key()) {
                        arenas.push(loc.arena.clone());
                    }
                    objects.push(spec_of(loc));
                }
                None => objects.push(ObjectSpec::MISSING),
            }
        }
        let reply = messages::GetReply {
            object_ids: ids,
            objects,
            store_fds: arenas.iter().map(|a| a.key()).collect(),
            mmap_sizes: arenas
                .iter()
                .map(|a| i64::try_from(a.mmap_size()).unwrap_or(i64::MAX))
                .collect(),
        };
        self.send(MessageType::GetReply, &reply.encode(), &arenas);
    }
}

/// Why a connection is closed by the store.
#[derive(Debug)]
enum Violation {
    Wire(WireError),
    Misuse(&'static str, ObjectId, MisuseError),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Wire(e) => write!(f, "{e}"),
            Violation::Misuse(what, id, e) => write!(f, "{what} of object {id}: {e}"),
        }
    }
}

fn deliver(completions: Vec<Completion>) {
    for c in completions {
        c.deliver();
    }
}

fn plasma_error(e: CreateError) -> PlasmaError {
    match e {
        CreateError::Exists => PlasmaError::ObjectExists,
        CreateError::OutOfMemory => PlasmaError::OutOfMemory,
    }
}

/// Serves one connection until EOF or a protocol violation.
fn serve_connection(shared: Arc<Shared>, stream: UnixStream, id: ClientId) {
    let span = info_span!("plasma_client", client = id);
    let _enter = span.enter();
    let writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "cannot clone the client socket");
            return;
        }
    };
    let _ = writer.set_write_timeout(Some(WRITE_TIMEOUT));
    let out = Arc::new(ReplyChannel {
        id,
        writer: Mutex::new(ConnWriter {
            stream: writer,
            sent_segments: HashSet::new(),
            broken: false,
        }),
    });
    let (deferred, deferred_rx) = std::sync::mpsc::channel::<DeferredGet>();
    {
        // Ends when the last `Connection` (held by this thread and by pending Gets) is gone.
        let out = out.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("plasma-replies-{id}"))
            .spawn(move || {
                for (ids, results) in deferred_rx {
                    out.send_get_reply(ids, results);
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the connection's reply thread");
            return;
        }
    }
    let conn = Arc::new(Connection {
        id,
        out,
        owner: std::thread::current().id(),
        deferred,
    });
    let max_body = {
        let mut state = shared.lock();
        state.connect(id);
        usize::try_from(state.capacity().saturating_add(BODY_SLACK)).unwrap_or(usize::MAX)
    };
    debug!("client connected");
    let mut reader = &stream;
    loop {
        let frame = match read_frame(&mut reader, max_body) {
            Ok(f) => f,
            Err(WireError::Closed) => {
                debug!("client disconnected");
                break;
            }
            Err(e) => {
                warn!(error = %e, "bad frame from client; closing its connection");
                break;
            }
        };
        let outcome = Request::decode(frame.kind, &frame.body)
            .map_err(Violation::Wire)
            .and_then(|request| handle_request(&shared, &conn, &stream, request));
        if let Err(v) = outcome {
            warn!(violation = %v, "protocol violation; closing the client's connection");
            break;
        }
    }
    shared.lock().disconnect(id);
    let _ = stream.shutdown(Shutdown::Both);
}

fn handle_request(
    shared: &Arc<Shared>,
    conn: &Arc<Connection>,
    stream: &UnixStream,
    request: Request,
) -> Result<(), Violation> {
    let client = conn.id;
    match request {
        Request::Connect(_) => {
            let capacity = shared.lock().capacity();
            conn.reply(&messages::ConnectReply {
                memory_capacity: i64::try_from(capacity).unwrap_or(i64::MAX),
            });
        }
        Request::Create(r) => {
            let result = if r.device_num != 0 {
                Err(CreateError::OutOfMemory)
            } else {
                shared.lock().create(
                    client,
                    r.object_id,
                    r.data_size,
                    r.metadata_size,
                    r.evict_if_full,
                )
            };
            match result {
                Ok(loc) => {
                    debug!(object = %r.object_id, size = r.data_size, "create");
                    let reply = messages::CreateReply {
                        object_id: r.object_id,
                        object: spec_of(&loc),
                        error: PlasmaError::Ok,
                        store_fd: loc.arena.key(),
                        mmap_size: i64::try_from(loc.arena.mmap_size()).unwrap_or(i64::MAX),
                        ipc_handle: None,
                    };
                    conn.send(MessageType::CreateReply, &reply.encode(), &[loc.arena]);
                }
                Err(e) => conn.reply(&messages::CreateReply {
                    object_id: r.object_id,
                    error: plasma_error(e),
                    ..Default::default()
                }),
            }
        }
        Request::CreateAndSeal(r) => {
            let object = InlineObject {
                id: r.object_id,
                data: &r.data,
                metadata: &r.metadata,
                digest: r.digest,
            };
            let result = shared
                .lock()
                .create_and_seal(client, &[object], r.evict_if_full);
            let error = match result {
                Ok(completions) => {
                    deliver(completions);
                    PlasmaError::Ok
                }
                Err(e) => plasma_error(e),
            };
            conn.reply(&messages::CreateAndSealReply { error });
        }
        Request::CreateAndSealBatch(r) => {
            let objects: Vec<InlineObject<'_>> = r
                .object_ids
                .iter()
                .zip(&r.data)
                .zip(&r.metadata)
                .zip(&r.digests)
                .map(|(((id, data), metadata), digest)| InlineObject {
                    id: *id,
                    data,
                    metadata,
                    digest: *digest,
                })
                .collect();
            let result = shared
                .lock()
                .create_and_seal(client, &objects, r.evict_if_full);
            let error = match result {
                Ok(completions) => {
                    deliver(completions);
                    PlasmaError::Ok
                }
                Err(e) => plasma_error(e),
            };
            conn.reply(&messages::CreateAndSealBatchReply { error });
        }
        Request::Abort(r) => {
            shared
                .lock()
                .abort(client, r.object_id)
                .map_err(|e| Violation::Misuse("abort", r.object_id, e))?;
            conn.reply(&messages::AbortReply {
                object_id: r.object_id,
            });
        }
        Request::Seal(r) => {
            let result = shared.lock().seal(client, r.object_id, r.digest);
            let error = match result {
                Ok(completions) => {
                    deliver(completions);
                    PlasmaError::Ok
                }
                Err(SealError::NotFound) => PlasmaError::ObjectNotFound,
                Err(SealError::AlreadySealed) => PlasmaError::ObjectExists,
            };
            conn.reply(&messages::SealReply {
                object_id: r.object_id,
                error,
            });
        }
        Request::Get(r) => {
            let deadline = match r.timeout_ms {
                0 => GetDeadline::Now,
                ms if ms < 0 => GetDeadline::Never,
                ms => Instant::now()
                    .checked_add(Duration::from_millis(ms as u64))
                    .map_or(GetDeadline::Never, GetDeadline::At),
            };
            let ids = r.object_ids.clone();
            let target = conn.clone();
            let sink = Box::new(move |results| target.deliver_get(ids, results));
            let outcome = shared.lock().get(client, r.object_ids, deadline, sink);
            match outcome {
                GetOutcome::Ready(c) => c.deliver(),
                GetOutcome::Waiting(_) => shared.wake_timer(),
            }
        }
        Request::Release(r) => {
            shared
                .lock()
                .release(client, r.object_id)
                .map_err(|e| Violation::Misuse("release", r.object_id, e))?;
        }
        Request::Delete(r) => {
            let statuses = shared.lock().delete(&r.object_ids);
            let errors = statuses
                .into_iter()
                .map(|s| match s {
                    DeleteStatus::Deleted => PlasmaError::Ok,
                    DeleteStatus::NotFound => PlasmaError::ObjectNotFound,
                    DeleteStatus::NotSealed => PlasmaError::ObjectNotSealed,
                    DeleteStatus::InUse => PlasmaError::ObjectInUse,
                })
                .collect();
            conn.reply(&messages::DeleteReply {
                object_ids: r.object_ids,
                errors,
            });
        }
        Request::Contains(r) => {
            let has_object = shared.lock().contains(&r.object_id);
            conn.reply(&messages::ContainsReply {
                object_id: r.object_id,
                has_object,
            });
        }
        Request::List(_) => {
            let infos = shared.lock().list();
            conn.reply(&messages::ListReply {
                objects: infos.iter().map(to_wire_info).collect(),
            });
        }
        Request::Evict(r) => {
            let num_bytes = shared.lock().evict(r.num_bytes);
            conn.reply(&messages::EvictReply { num_bytes });
        }
        Request::Subscribe(_) => {
            // No reply; the client now passes its end of a socketpair.
            let fd = recv_fd(stream).map_err(Violation::Wire)?;
            match super::notify::Subscriber::new(UnixStream::from(fd)) {
                Ok(subscriber) => shared.lock().subscribe(client, subscriber),
                Err(e) => warn!(error = %e, "cannot use the subscriber socket"),
            }
        }
        Request::SetOptions(_) => {
            conn.reply(&messages::SetOptionsReply {
                error: PlasmaError::Ok,
            });
        }
        Request::GetDebugString(_) => {
            let debug_string = shared.lock().debug_string();
            conn.reply(&messages::GetDebugStringReply { debug_string });
        }
        Request::RefreshLru(r) => {
            shared.lock().refresh_lru(&r.object_ids);
            conn.reply(&messages::RefreshLruReply);
        }
    }
    Ok(())
}

/// The running listener and the sockets of live connections (to close them on stop).
pub(super) struct ServerHandle {
    path: PathBuf,
    /// Device and inode of the socket file this store bound: on stop the file at `path` is
    /// removed only if it is still this one (another store may have taken the path since).
    bound: (u64, u64),
    /// A second handle on the listening socket, to wake `accept` on stop.
    listener: UnixListener,
    accept: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    live: Arc<Mutex<HashMap<ClientId, UnixStream>>>,
}

/// What is at a socket path before binding.
#[derive(Debug, PartialEq, Eq)]
enum PathState {
    /// Nothing: bind there.
    Free,
    /// A socket nobody listens on (its store exited without removing it): safe to replace.
    Stale,
    /// A store answers there: taking the path would cut its clients off from it.
    Live,
}

/// Probes a socket file with a non-blocking connect: a blocking one could wait forever on a
/// live store whose backlog is full, which is still a live store.
fn probe_socket(path: &Path) -> std::io::Result<PathState> {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let address = SocketAddrUnix::new(path)?;
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&socket, &address) {
        // Someone accepted, or is listening with a full backlog.
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => Ok(PathState::Live),
        // A socket file without a listener: what a killed store leaves behind.
        Err(Errno::CONNREFUSED) => Ok(PathState::Stale),
        // Removed between our look and the connect.
        Err(Errno::NOENT) => Ok(PathState::Free),
        Err(e) => Err(e.into()),
    }
}

/// Decides whether this store may bind `path`, removing a stale socket left by a store that
/// did not exit cleanly. Refuses a live store's socket and anything that is not a socket.
///
/// Two stores starting at the same instant on the same path can still race (both see it free);
/// this guards against the common mistake of starting a second store on a running one's path.
fn claim_socket_path(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::SocketPath {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(Error::NotASocket {
            path: path.to_path_buf(),
        });
    }
    let state = probe_socket(path).map_err(|source| Error::SocketPath {
        path: path.to_path_buf(),
        source,
    })?;
    match state {
        PathState::Free => Ok(()),
        PathState::Live => Err(Error::SocketInUse {
            path: path.to_path_buf(),
        }),
        PathState::Stale => {
            info!(socket = %path.display(), "removing a stale socket (no store listens on it)");
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(Error::SocketPath {
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
    }
}

/// Device and inode of the file at `path` (not following a symlink).
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

impl ServerHandle {
    /// Binds `path` and starts accepting. A stale socket there is replaced; a live store's
    /// socket, or a file that is no socket, is refused (see [`claim_socket_path`]).
    pub(super) fn start(path: &Path, shared: Arc<Shared>) -> Result<Self, Error> {
        claim_socket_path(path)?;
        let io = |source| Error::SocketPath {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(io)?;
        let bound = file_identity(path).map_err(io)?;
        let waker = listener.try_clone().map_err(io)?;
        let live: Arc<Mutex<HashMap<ClientId, UnixStream>>> = Arc::default();
        let accept = {
            let shared = shared.clone();
            let live = live.clone();
            std::thread::Builder::new()
                .name("plasma-store-accept".into())
                .spawn(move || accept_loop(listener, shared, live))?
        };
        info!(socket = %path.display(), "serving the Plasma protocol");
        Ok(Self {
            path: path.to_path_buf(),
            bound,
            listener: waker,
            accept: Some(accept),
            shared,
            live,
        })
    }

    /// Whether the file at our path is still the socket this store bound.
    fn path_is_ours(&self) -> bool {
        file_identity(&self.path).is_ok_and(|identity| identity == self.bound)
    }

    /// Stops accepting, closes every connection and removes the socket file if it is still
    /// ours (never another store's that took the path meanwhile).
    pub(super) fn stop(mut self) {
        // The shutdown flag is already set. Shutting the listening socket down makes a blocked
        // `accept` return on Linux (even if the socket file was already removed by someone);
        // a connection attempt is the fallback, only to our own socket.
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both);
        if self.path_is_ours() {
            let _ = UnixStream::connect(&self.path);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let live = std::mem::take(&mut *self.live.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, stream) in live {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if self.path_is_ours() {
            let _ = std::fs::remove_file(&self.path);
        } else {
            info!(socket = %self.path.display(), "socket path was taken over or removed; leaving it");
        }
        let _ = &self.shared;
    }
}

fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    live: Arc<Mutex<HashMap<ClientId, UnixStream>>>,
) {
    static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
    loop {
        let accepted = listener.accept();
        if shared.is_shut_down() {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
            Err(e) => {
                // E.g. out of fds: back off instead of spinning.
                warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let id = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            live.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, clone);
        }
        let shared = shared.clone();
        let live = live.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("plasma-client-{id}"))
            .spawn(move || {
                serve_connection(shared, stream, id);
                live.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a connection thread");
        }
    }
}
