//! [`StorePool`]: the async face of the socket client, implementing [`ObjectStore`].
//!
//! The Plasma protocol is blocking and one-request-at-a-time per connection, so the pool owns a
//! few connections, each on its own dedicated OS thread, and hands requests to them over
//! channels. Async callers only ever await a oneshot: no socket call runs on a tokio worker.
//!
//! What callers may rely on:
//! - Requests go to the least busy connection, so a Get waiting for an unsealed object stalls
//!   only its own connection.
//! - A [`NewObject`] is sealed or aborted on the connection that created it (the store requires
//!   it). Dropping it aborts it in the background.
//! - Dropping a got object's last `Bytes` wakes its connection's thread, which sends the
//!   Release; the dropping thread never blocks on the socket.
//! - When a connection fails (store gone), its requests fail with that error and the next
//!   request on it tries to reconnect once.
//! - Cloning the pool is cheap; the threads stop when the last clone is dropped.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::client::{ConnectOptions, CreatedObject, PlasmaClient};
use crate::wire::messages::ObjectInfo;
use crate::{
    DeleteOutcome, Error, NewObject, ObjectId, ObjectStore, ObjectWriter, SealedObject,
    StoredObject,
};

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a connection thread can be asked to do.
enum Command {
    Get {
        ids: Vec<ObjectId>,
        timeout: Option<Duration>,
        reply: Reply<Vec<Option<SealedObject>>>,
    },
    Create {
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
        /// False: fail with `Error::StoreFull` rather than evict.
        evict_if_full: bool,
        reply: Reply<CreatedObject>,
    },
    Seal {
        object: CreatedObject,
        digest: [u8; 8],
        reply: Reply<()>,
    },
    CreateAndSeal {
        id: ObjectId,
        data: Vec<u8>,
        metadata: Vec<u8>,
        digest: [u8; 8],
        evict_if_full: bool,
        reply: Reply<()>,
    },
    Abort {
        object: CreatedObject,
        reply: Reply<()>,
    },
    Contains {
        id: ObjectId,
        reply: Reply<bool>,
    },
    Delete {
        ids: Vec<ObjectId>,
        reply: Reply<Vec<DeleteOutcome>>,
    },
    List {
        reply: Reply<Vec<ObjectInfo>>,
    },
    Evict {
        num_bytes: u64,
        reply: Reply<u64>,
    },
    /// Dropped buffers queued releases or aborts.
    Flush,
    Shutdown,
}

/// One connection and its thread.
struct Worker {
    commands: mpsc::Sender<Command>,
    /// Requests queued or running on this connection.
    busy: Arc<AtomicUsize>,
}

struct PoolInner {
    workers: Vec<Worker>,
    capacity: u64,
    socket_path: PathBuf,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        for worker in &self.workers {
            let _ = worker.commands.send(Command::Shutdown);
        }
    }
}

/// A small pool of blocking store connections behind an async API. See the module docs.
#[derive(Clone)]
pub struct StorePool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for StorePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePool")
            .field("socket_path", &self.inner.socket_path)
            .field("connections", &self.inner.workers.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl StorePool {
    /// Opens `connections` connections (at least one) to the store at `socket_path`, retrying
    /// for up to `timeout` while no store listens there yet.
    pub async fn connect(
        socket_path: impl AsRef<Path>,
        connections: usize,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let socket_path = socket_path.as_ref().to_path_buf();
        let options = ConnectOptions::waiting(timeout);
        let mut ready = Vec::new();
        let mut workers = Vec::new();
        for index in 0..connections.max(1) {
            let (commands, receiver) = mpsc::channel();
            let (connected, connected_rx) = oneshot::channel();
            let path = socket_path.clone();
            let opts = options.clone();
            let waker_commands = commands.clone();
            std::thread::Builder::new()
                .name(format!("plasma-conn-{index}"))
                .spawn(move || {
                    let first = match PlasmaClient::connect_with(&path, &opts) {
                        Ok(client) => client,
                        Err(e) => {
                            let _ = connected.send(Err(e));
                            return;
                        }
                    };
                    let _ = connected.send(Ok(first.capacity()));
                    run_connection(first, path, opts, receiver, waker_commands);
                })?;
            ready.push(connected_rx);
            workers.push(Worker {
                commands,
                busy: Arc::new(AtomicUsize::new(0)),
            });
        }
        let mut capacity = 0;
        let mut failure = None;
        for rx in ready {
            match rx.await {
                Ok(Ok(c)) => capacity = c,
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => {
                    failure = failure.or(Some(Error::ConnectionClosed(
                        "connection thread ended while connecting".into(),
                    )))
                }
            }
        }
        let inner = PoolInner {
            workers,
            capacity,
            socket_path,
        };
        if let Some(e) = failure {
            return Err(e); // dropping `inner` stops the threads that did connect
        }
        debug!(socket = %inner.socket_path.display(), connections = inner.workers.len(), capacity, "Plasma store pool ready");
        Ok(StorePool {
            inner: Arc::new(inner),
        })
    }

    /// The store's capacity in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.inner.capacity
    }

    pub fn socket_path(&self) -> &Path {
        &self.inner.socket_path
    }

    /// Every object in the store.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, Error> {
        self.request(|reply| Command::List { reply }).await
    }

    /// Evicts at least `num_bytes` of released objects; returns the bytes freed.
    pub async fn evict(&self, num_bytes: u64) -> Result<u64, Error> {
        self.request(|reply| Command::Evict { num_bytes, reply })
            .await
    }

    fn least_busy(&self) -> usize {
        let mut best = 0;
        let mut best_load = usize::MAX;
        for (i, w) in self.inner.workers.iter().enumerate() {
            let load = w.busy.load(Ordering::Relaxed);
            if load < best_load {
                best = i;
                best_load = load;
            }
        }
        best
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let index = self.least_busy();
        let (commands, busy) = match self.inner.workers.get(index) {
            Some(w) => (w.commands.clone(), Arc::clone(&w.busy)),
            None => {
                return Err(Error::ConnectionClosed(
                    "the pool has no connections".into(),
                ))
            }
        };
        let (reply, receiver) = oneshot::channel();
        WorkerHandle { commands, busy }
            .submit(make(reply), receiver)
            .await
    }
}

/// A handle on one connection thread (what a `NewObject` keeps to seal on its creator).
#[derive(Clone)]
struct WorkerHandle {
    commands: mpsc::Sender<Command>,
    busy: Arc<AtomicUsize>,
}

impl WorkerHandle {
    async fn submit<T>(
        &self,
        command: Command,
        receiver: oneshot::Receiver<Result<T, Error>>,
    ) -> Result<T, Error> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        let _done = BusyGuard(Arc::clone(&self.busy));
        if self.commands.send(command).is_err() {
            return Err(Error::ConnectionClosed("the pool was shut down".into()));
        }
        match receiver.await {
            Ok(result) => result,
            Err(_) => Err(Error::ConnectionClosed(
                "the connection thread stopped".into(),
            )),
        }
    }
}

struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The loop of one connection thread. Reconnects once per request after a fatal error.
fn run_connection(
    first: PlasmaClient,
    path: PathBuf,
    options: ConnectOptions,
    commands: mpsc::Receiver<Command>,
    waker_commands: mpsc::Sender<Command>,
) {
    let install_waker = |client: &PlasmaClient| {
        let wake = waker_commands.clone();
        client.pending_queue().set_waker(move || {
            let _ = wake.send(Command::Flush);
        });
    };
    install_waker(&first);
    let mut client = Some(first);
    let reconnect_options = ConnectOptions {
        retries: 0,
        ..options
    };
    while let Ok(command) = commands.recv() {
        if matches!(command, Command::Shutdown) {
            break;
        }
        if matches!(command, Command::Flush) {
            if let Some(c) = client.as_mut() {
                if let Err(e) = c.flush_releases() {
                    warn!(error = %e, "Plasma connection failed while releasing");
                }
            }
            if client.as_ref().is_some_and(|c| c.poisoned().is_some()) {
                client = None;
            }
            continue;
        }
        if client.as_ref().is_none_or(|c| c.poisoned().is_some()) {
            if let Some(old) = client.take() {
                old.pending_queue().clear_waker();
            }
            match PlasmaClient::connect_with(&path, &reconnect_options) {
                Ok(c) => {
                    debug!(socket = %path.display(), "reconnected to Plasma store");
                    install_waker(&c);
                    client = Some(c);
                }
                Err(e) => {
                    fail(command, e);
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else {
            continue;
        };
        execute(c, command);
    }
    if let Some(c) = client {
        c.pending_queue().clear_waker();
    }
}

/// Answers a command with an error (used when no connection is available).
fn fail(command: Command, error: Error) {
    let closed = || Error::ConnectionClosed(error.to_string());
    match command {
        Command::Get { reply, .. } => drop(reply.send(Err(error))),
        Command::Create { reply, .. } => drop(reply.send(Err(error))),
        Command::Seal { reply, .. } => drop(reply.send(Err(closed()))),
        Command::CreateAndSeal { reply, .. } => drop(reply.send(Err(error))),
        Command::Abort { reply, .. } => drop(reply.send(Err(closed()))),
        Command::Contains { reply, .. } => drop(reply.send(Err(error))),
        Command::Delete { reply, .. } => drop(reply.send(Err(error))),
        Command::List { reply } => drop(reply.send(Err(error))),
        Command::Evict { reply, .. } => drop(reply.send(Err(error))),
        Command::Flush | Command::Shutdown => {}
    }
}

fn execute(client: &mut PlasmaClient, command: Command) {
    match command {
        Command::Get {
            ids,
            timeout,
            reply,
        } => {
            let _ = reply.send(client.get(&ids, timeout));
        }
        Command::Create {
            id,
            data_size,
            metadata_size,
            evict_if_full,
            reply,
        } => {
            let result = if evict_if_full {
                client.create(id, data_size, metadata_size)
            } else {
                client.create_without_eviction(id, data_size, metadata_size)
            };
            if let Err(Ok(object)) = reply.send(result) {
                // The caller went away: don't leave an unsealed object behind.
                let _ = client.abort(object);
            }
        }
        Command::Seal {
            object,
            digest,
            reply,
        } => {
            let _ = reply.send(client.seal_with_digest(object, digest));
        }
        Command::Abort { object, reply } => {
            let _ = reply.send(client.abort(object));
        }
        Command::CreateAndSeal {
            id,
            data,
            metadata,
            digest,
            evict_if_full,
            reply,
        } => {
            let _ = reply.send(client.create_and_seal_inline(
                id,
                data,
                metadata,
                digest,
                evict_if_full,
            ));
        }
        Command::Contains { id, reply } => {
            let _ = reply.send(client.contains(id));
        }
        Command::Delete { ids, reply } => {
            let _ = reply.send(client.delete(&ids));
        }
        Command::List { reply } => {
            let _ = reply.send(client.list());
        }
        Command::Evict { num_bytes, reply } => {
            let _ = reply.send(client.evict(num_bytes));
        }
        Command::Flush | Command::Shutdown => {}
    }
}

/// The writer behind a pool's [`NewObject`]: the created object and the connection that must
/// seal or abort it.
struct PoolWriter {
    object: Option<CreatedObject>,
    worker: WorkerHandle,
    /// Counts this unsealed object as load on its connection, so other requests (a Get that
    /// may wait) prefer other connections and the seal is not queued behind them.
    _in_progress: BusyGuard,
}

impl ObjectWriter for PoolWriter {
    fn data_mut(&mut self) -> &mut [u8] {
        match self.object.as_mut() {
            Some(o) => o.data_mut(),
            None => &mut [],
        }
    }

    fn metadata_mut(&mut self) -> &mut [u8] {
        match self.object.as_mut() {
            Some(o) => o.metadata_mut(),
            None => &mut [],
        }
    }

    fn seal(
        mut self: Box<Self>,
        digest: [u8; 8],
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>> {
        let object = self.object.take();
        let worker = self.worker.clone();
        Box::pin(async move {
            let Some(object) = object else {
                return Ok(());
            };
            let (reply, receiver) = oneshot::channel();
            worker
                .submit(
                    Command::Seal {
                        object,
                        digest,
                        reply,
                    },
                    receiver,
                )
                .await
        })
    }

    fn abort(
        mut self: Box<Self>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>> {
        let object = self.object.take();
        let worker = self.worker.clone();
        Box::pin(async move {
            let Some(object) = object else {
                return Ok(());
            };
            let (reply, receiver) = oneshot::channel();
            worker
                .submit(Command::Abort { object, reply }, receiver)
                .await
        })
    }

    fn abort_in_background(mut self: Box<Self>) {
        // Dropping the created object queues its abort on its connection and wakes the
        // connection's thread; nothing here blocks.
        drop(self.object.take());
    }
}

impl ObjectStore for StorePool {
    async fn get(
        &self,
        ids: Vec<ObjectId>,
        timeout: Duration,
    ) -> Result<Vec<Option<SealedObject>>, Error> {
        self.request(|reply| Command::Get {
            ids,
            timeout: Some(timeout),
            reply,
        })
        .await
    }

    async fn create(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> Result<NewObject, Error> {
        self.create_on_a_connection(id, data_size, metadata_size, true)
            .await
    }

    async fn create_without_eviction(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> Result<NewObject, Error> {
        self.create_on_a_connection(id, data_size, metadata_size, false)
            .await
    }

    async fn free_space(&self) -> Result<u64, Error> {
        let objects = self.list().await?;
        Ok(crate::client::free_bytes(self.inner.capacity, &objects))
    }

    async fn contains(&self, id: ObjectId) -> Result<bool, Error> {
        self.request(|reply| Command::Contains { id, reply }).await
    }

    /// One Get that does not wait, instead of a Contains per ID. The Plasma protocol's
    /// Contains names one object, and each is a round trip through a connection thread and
    /// the store: for 4 KiB objects beside `plasma_store`, the server's check before each
    /// pull cost the destination's store half its CPU (S3 in docs/benchmarks.md). A Get
    /// answers "sealed or not" for many IDs alike (an unsealed object counts as absent, as
    /// for Contains). The objects it finds are released again when their handles drop here.
    async fn contains_many(&self, ids: Vec<ObjectId>) -> Result<Vec<bool>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = ObjectStore::get(self, ids, Duration::ZERO).await?;
        Ok(found.iter().map(Option::is_some).collect())
    }

    /// One request on one connection (CreateAndSeal), instead of Create, Seal and Release.
    async fn create_and_seal(
        &self,
        id: ObjectId,
        data: Vec<u8>,
        metadata: Vec<u8>,
        digest: [u8; 8],
        evict_if_full: bool,
    ) -> Result<(), Error> {
        self.request(|reply| Command::CreateAndSeal {
            id,
            data,
            metadata,
            digest,
            evict_if_full,
            reply,
        })
        .await
    }

    async fn delete(&self, ids: Vec<ObjectId>) -> Result<Vec<DeleteOutcome>, Error> {
        self.request(|reply| Command::Delete { ids, reply }).await
    }

    async fn capacity(&self) -> Result<u64, Error> {
        Ok(self.inner.capacity)
    }

    async fn list(&self) -> Result<Vec<StoredObject>, Error> {
        let objects = StorePool::list(self).await?;
        Ok(objects
            .into_iter()
            .map(|info| StoredObject {
                id: info.object_id,
                data_size: u64::try_from(info.data_size).unwrap_or(0),
                metadata_size: u64::try_from(info.metadata_size).unwrap_or(0),
                // The store sends a digest only for a sealed object.
                sealed: info.digest.is_some(),
                created: u64::try_from(info.create_time).unwrap_or(0),
            })
            .collect())
    }
}

impl StorePool {
    /// Creates on the least busy connection, which then owns the unsealed object.
    async fn create_on_a_connection(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
        evict_if_full: bool,
    ) -> Result<NewObject, Error> {
        let index = self.least_busy();
        let worker = match self.inner.workers.get(index) {
            Some(w) => WorkerHandle {
                commands: w.commands.clone(),
                busy: Arc::clone(&w.busy),
            },
            None => {
                return Err(Error::ConnectionClosed(
                    "the pool has no connections".into(),
                ))
            }
        };
        let (reply, receiver) = oneshot::channel();
        let object = worker
            .submit(
                Command::Create {
                    id,
                    data_size,
                    metadata_size,
                    evict_if_full,
                    reply,
                },
                receiver,
            )
            .await?;
        worker.busy.fetch_add(1, Ordering::Relaxed);
        let in_progress = BusyGuard(Arc::clone(&worker.busy));
        Ok(NewObject::new(
            id,
            Box::new(PoolWriter {
                object: Some(object),
                worker,
                _in_progress: in_progress,
            }),
        ))
    }
}
