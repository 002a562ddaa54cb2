//! A blocking, pure-Rust client of a Plasma store (Arrow 11 protocol): one connection, one
//! request at a time, as the C++ client does.
//!
//! What callers may rely on:
//! - Objects read with [`PlasmaClient::get`] are zero-copy `Bytes` over the store's shared
//!   memory; they keep the mapping and the store reference alive, and release the reference
//!   when the last clone is dropped (from any thread, without blocking: see `buffer`).
//! - [`PlasmaClient::seal`] computes the Plasma digest (`crate::digest`) so pyarrow's
//!   `client.hash()` agrees, then releases the creator's reference like the C++ client.
//! - A failure of the connection itself (store gone, malformed reply, I/O error) poisons the
//!   client: every later call fails fast with the same story. Refusals about one object
//!   (exists, out of memory) leave it usable.
//! - Nothing a store sends can make this code panic or allocate by an unchecked length.
//!
//! Use one client per thread; for async code use [`crate::pool::StorePool`].

mod buffer;
mod segment;

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, debug_span};

use buffer::{shared_bytes, HeldObject, Pending};
pub use buffer::{CreatedObject, PendingQueue};
pub use segment::{Segment, SegmentTable, MMAP_REGIONS_GAP};

use crate::digest::object_digest;
use crate::wire::fd_passing::recv_fd;
use crate::wire::messages::{
    AbortReply, AbortRequest, ConnectReply, ConnectRequest, ContainsReply, ContainsRequest,
    CreateAndSealReply, CreateAndSealRequest, CreateReply, CreateRequest, DeleteReply,
    DeleteRequest, EvictReply, EvictRequest, GetDebugStringReply, GetDebugStringRequest, GetReply,
    GetRequest, ListReply, ListRequest, ObjectInfo, ObjectSpec, PlasmaError, ReleaseRequest,
    SealReply, SealRequest,
};
use crate::wire::{read_frame, write_frame, Message, MessageType, WireError};
use crate::{DeleteOutcome, Error, ObjectId, SealedObject};

/// Largest reply body we accept. Replies are small except `ListReply` (~100 bytes per object);
/// this allows lists of millions of objects and still bounds what a broken store can make us
/// buffer. (Bodies are read incrementally, so memory follows what actually arrives.)
pub const MAX_REPLY_BODY: usize = 1 << 30;

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Retries after the first failed attempt while the socket is missing or refuses
    /// connections (the store may still be starting). The C++ client uses 80.
    pub retries: u32,
    /// Pause between attempts (the C++ client uses 100 ms).
    pub retry_interval: Duration,
    /// Longest wait for a reply (beyond a Get's own timeout) before the connection is
    /// declared dead. `None` waits forever.
    pub reply_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            retries: 80,
            retry_interval: Duration::from_millis(100),
            reply_timeout: Some(Duration::from_secs(120)),
        }
    }
}

impl ConnectOptions {
    /// Options that keep retrying for about `wait` in total.
    pub fn waiting(wait: Duration) -> Self {
        let interval = Duration::from_millis(100);
        let retries = (wait.as_millis() / interval.as_millis()).min(u32::MAX as u128) as u32;
        Self {
            retries,
            retry_interval: interval,
            ..Self::default()
        }
    }
}

/// A connection to a Plasma store.
pub struct PlasmaClient {
    stream: UnixStream,
    socket_path: PathBuf,
    capacity: u64,
    segments: SegmentTable,
    /// Local uses per object: one per created-unsealed object and one per got entry alive.
    /// The store holds one reference per object for this connection while this is non-zero.
    local_refs: HashMap<ObjectId, usize>,
    pending: Arc<PendingQueue>,
    reply_timeout: Option<Duration>,
    /// Read timeout currently set on the socket (avoids a syscall per request).
    current_read_timeout: Option<Duration>,
    /// Why the connection is unusable, once it is.
    poisoned: Option<String>,
}

impl std::fmt::Debug for PlasmaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlasmaClient")
            .field("socket_path", &self.socket_path)
            .field("capacity", &self.capacity)
            .field("segments", &self.segments.len())
            .field("held_objects", &self.local_refs.len())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

fn timeout_ms(timeout: Option<Duration>) -> i64 {
    match timeout {
        None => -1,
        Some(t) => i64::try_from(t.as_millis()).unwrap_or(i64::MAX),
    }
}

impl PlasmaClient {
    /// Connects with the default options (about 8 s of retries, like the C++ client).
    pub fn connect(socket_path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::connect_with(socket_path, &ConnectOptions::default())
    }

    /// Connects, retrying while no store listens yet, then does the Connect exchange.
    /// `Error::Connect` names the socket path when no store answers.
    pub fn connect_with(
        socket_path: impl AsRef<Path>,
        options: &ConnectOptions,
    ) -> Result<Self, Error> {
        let socket_path = socket_path.as_ref().to_path_buf();
        let mut attempts = 0u32;
        let stream = loop {
            attempts += 1;
            match UnixStream::connect(&socket_path) {
                Ok(stream) => break stream,
                Err(e)
                    if attempts <= options.retries
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                        ) =>
                {
                    std::thread::sleep(options.retry_interval);
                }
                Err(source) => {
                    return Err(Error::Connect {
                        path: socket_path,
                        attempts,
                        source,
                    })
                }
            }
        };
        let mut client = PlasmaClient {
            stream,
            socket_path,
            capacity: 0,
            segments: SegmentTable::default(),
            local_refs: HashMap::new(),
            pending: Arc::new(PendingQueue::default()),
            reply_timeout: options.reply_timeout,
            current_read_timeout: None,
            poisoned: None,
        };
        let reply: ConnectReply = client.call(&ConnectRequest, Some(Duration::ZERO))?;
        client.capacity = u64::try_from(reply.memory_capacity).unwrap_or(0);
        debug!(socket = %client.socket_path.display(), capacity = client.capacity, "connected to Plasma store");
        Ok(client)
    }

    /// The store's capacity in bytes (from the Connect exchange).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Number of segments mapped on this connection.
    pub fn mapped_segments(&self) -> usize {
        self.segments.len()
    }

    /// The queue that dropped buffers of this connection report to; install a waker on it to
    /// be told when releases are waiting (see [`PlasmaClient::flush_releases`]).
    pub fn pending_queue(&self) -> &Arc<PendingQueue> {
        &self.pending
    }

    /// Why the connection is unusable, if it is.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    // -----------------------------------------------------------------------------------------
    // Operations
    // -----------------------------------------------------------------------------------------

    /// Creates an unsealed object with room for `data_size` bytes of data followed by
    /// `metadata_size` bytes of metadata. Asks the store to evict if full (as pyarrow does).
    pub fn create(
        &mut self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> Result<CreatedObject, Error> {
        self.create_evicting(id, data_size, metadata_size, true)
    }

    /// Like [`PlasmaClient::create`], but the store must not evict anything to make room
    /// (`evict_if_full = false` on the wire): an object that does not fit in the free space
    /// fails with [`Error::StoreFull`] and every sealed object stays. For objects received
    /// from elsewhere, which must not push out what local users rely on.
    ///
    /// The `free` of the error comes from a List after the refusal (one more round trip, only
    /// on failure).
    pub fn create_without_eviction(
        &mut self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> Result<CreatedObject, Error> {
        match self.create_evicting(id, data_size, metadata_size, false) {
            Err(Error::OutOfMemory { needed }) => {
                let free = self.free_space()?;
                Err(Error::StoreFull { needed, free })
            }
            other => other,
        }
    }

    /// Bytes the store can still hold without evicting: its capacity minus the sizes of every
    /// object in it, sealed or not (the protocol has no free-space query, so this is a List:
    /// its cost grows with the number of objects). The store's allocator overhead and
    /// fragmentation are not counted, so a create of exactly this size may still fail.
    pub fn free_space(&mut self) -> Result<u64, Error> {
        let objects = self.list()?;
        Ok(free_bytes(self.capacity, &objects))
    }

    fn create_evicting(
        &mut self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
        evict_if_full: bool,
    ) -> Result<CreatedObject, Error> {
        let _span =
            debug_span!("plasma_create", object = %id, data_size, metadata_size, evict_if_full)
                .entered();
        self.flush_releases()?;
        let request = CreateRequest {
            object_id: id,
            evict_if_full,
            data_size,
            metadata_size,
            device_num: 0,
        };
        let reply: CreateReply = self.call(&request, Some(Duration::ZERO))?;
        match reply.error {
            PlasmaError::Ok => {}
            PlasmaError::ObjectExists => return Err(Error::ObjectExists(id)),
            PlasmaError::OutOfMemory => {
                return Err(Error::OutOfMemory {
                    needed: data_size.saturating_add(metadata_size),
                })
            }
            other => {
                return self.poison_with(malformed(
                    MessageType::CreateReply,
                    format!("error {other:?} for object {id}"),
                ))
            }
        }
        let result = self.finish_create(id, data_size, metadata_size, &reply);
        if result.is_err() {
            // The store may have sent an fd we did not take, or handed us a bad layout: the
            // stream can no longer be trusted.
            self.poison("create reply could not be used");
        }
        result
    }

    fn finish_create(
        &mut self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
        reply: &CreateReply,
    ) -> Result<CreatedObject, Error> {
        const M: MessageType = MessageType::CreateReply;
        if reply.object_id != id {
            return Err(malformed(
                M,
                format!("asked for {id}, got {}", reply.object_id),
            ));
        }
        if !self.segments.contains(reply.store_fd) {
            let fd = recv_fd(&self.stream).map_err(Error::from_wire)?;
            let segment = Segment::map(reply.store_fd, fd, reply.mmap_size, M)?;
            debug!(
                segment = reply.store_fd,
                len = segment.mapped_len(),
                "mapped new segment"
            );
            self.segments.insert(segment);
        }
        let spec = reply.object;
        if spec.segment_key != reply.store_fd {
            return Err(malformed(
                M,
                format!(
                    "segment_index {} != store_fd {}",
                    spec.segment_key, reply.store_fd
                ),
            ));
        }
        if spec.data_size != data_size || spec.metadata_size != metadata_size {
            return Err(malformed(
                M,
                format!(
                    "asked for {data_size}+{metadata_size} bytes, got {}+{}",
                    spec.data_size, spec.metadata_size
                ),
            ));
        }
        let (segment, data_offset, data_len, metadata_len) = self.locate(&spec, M)?;
        *self.local_refs.entry(id).or_insert(0) += 1;
        Ok(CreatedObject {
            id,
            segment,
            data_offset,
            data_size: data_len,
            metadata_size: metadata_len,
            queue: Arc::clone(&self.pending),
            armed: true,
        })
    }

    /// Creates an object and copies `metadata` into place (the C++ client's `Create`).
    pub fn create_with_metadata(
        &mut self,
        id: ObjectId,
        data_size: u64,
        metadata: &[u8],
    ) -> Result<CreatedObject, Error> {
        let mut object = self.create(id, data_size, metadata.len() as u64)?;
        object.metadata_mut().copy_from_slice(metadata);
        Ok(object)
    }

    /// Seals the object with the digest of its current contents (`docs/plasma.md` §5.8), then
    /// releases the creator's reference.
    pub fn seal(&mut self, object: CreatedObject) -> Result<(), Error> {
        let digest = {
            let (data, metadata) = object.buffers();
            object_digest(data, metadata)
        };
        self.seal_with_digest(object, digest)
    }

    /// Seals with a digest the caller computed (e.g. with `digest::Digester` while writing).
    pub fn seal_with_digest(
        &mut self,
        mut object: CreatedObject,
        digest: [u8; 8],
    ) -> Result<(), Error> {
        let id = object.id;
        let _span = debug_span!("plasma_seal", object = %id).entered();
        self.check_owner(&object)?;
        object.armed = false;
        let reply: SealReply = self.call(
            &SealRequest {
                object_id: id,
                digest,
            },
            Some(Duration::ZERO),
        )?;
        if reply.object_id != id {
            return self.poison_with(malformed(
                MessageType::SealReply,
                format!("sealed {id}, reply names {}", reply.object_id),
            ));
        }
        let outcome = match reply.error {
            PlasmaError::Ok => Ok(()),
            PlasmaError::ObjectNotFound => Err(Error::ObjectNotFound(id)),
            PlasmaError::ObjectExists => Err(Error::ObjectExists(id)),
            other => Err(Error::Refused {
                id,
                reason: format!("seal answered {other:?}"),
            }),
        };
        // Seal or not, this use of the object ends here (the C++ client releases right after).
        self.release_local(id)?;
        outcome
    }

    /// Aborts an unsealed object: the store frees it.
    pub fn abort(&mut self, mut object: CreatedObject) -> Result<(), Error> {
        let id = object.id;
        let _span = debug_span!("plasma_abort", object = %id).entered();
        self.check_owner(&object)?;
        object.armed = false;
        self.abort_id(id)
    }

    fn abort_id(&mut self, id: ObjectId) -> Result<(), Error> {
        let reply: AbortReply = self.call(&AbortRequest { object_id: id }, Some(Duration::ZERO))?;
        self.local_refs.remove(&id);
        if reply.object_id != id {
            return self.poison_with(malformed(
                MessageType::AbortReply,
                format!("aborted {id}, reply names {}", reply.object_id),
            ));
        }
        Ok(())
    }

    /// Creates and seals an object in one exchange, with the data sent inline through the
    /// socket (no shared memory, no reference left). For small objects.
    pub fn create_and_seal(
        &mut self,
        id: ObjectId,
        data: &[u8],
        metadata: &[u8],
    ) -> Result<(), Error> {
        let digest = object_digest(data, metadata);
        self.create_and_seal_inline(id, data.to_vec(), metadata.to_vec(), digest, true)
    }

    /// [`PlasmaClient::create_and_seal`] with a digest the caller computed (while receiving
    /// the bytes) and a choice of eviction: without it, an object that does not fit fails
    /// with [`Error::StoreFull`] and every sealed object stays, as with
    /// [`PlasmaClient::create_without_eviction`]. One round trip instead of the three of
    /// Create, Seal and Release.
    pub fn create_and_seal_inline(
        &mut self,
        id: ObjectId,
        data: Vec<u8>,
        metadata: Vec<u8>,
        digest: [u8; 8],
        evict_if_full: bool,
    ) -> Result<(), Error> {
        let _span = debug_span!("plasma_create_and_seal", object = %id, data_size = data.len(),
            metadata_size = metadata.len(), evict_if_full)
        .entered();
        self.flush_releases()?;
        let needed = (data.len() + metadata.len()) as u64;
        let request = CreateAndSealRequest {
            object_id: id,
            evict_if_full,
            data,
            metadata,
            digest,
        };
        let reply: CreateAndSealReply = self.call(&request, Some(Duration::ZERO))?;
        match reply.error {
            PlasmaError::Ok => Ok(()),
            PlasmaError::ObjectExists => Err(Error::ObjectExists(id)),
            PlasmaError::OutOfMemory if evict_if_full => Err(Error::OutOfMemory { needed }),
            PlasmaError::OutOfMemory => {
                let free = self.free_space()?;
                Err(Error::StoreFull { needed, free })
            }
            other => Err(Error::Refused {
                id,
                reason: format!("create-and-seal answered {other:?}"),
            }),
        }
    }

    /// Gets sealed objects, waiting up to `timeout` (`None`: forever) for ones not sealed yet.
    /// One entry per id, in order (duplicates allowed); `None` for an object not available in
    /// time. Each returned object holds one local use until all its `Bytes` are dropped.
    pub fn get(
        &mut self,
        ids: &[ObjectId],
        timeout: Option<Duration>,
    ) -> Result<Vec<Option<SealedObject>>, Error> {
        let _span = debug_span!(
            "plasma_get",
            objects = ids.len(),
            first = %ids.first().copied().unwrap_or_default()
        )
        .entered();
        self.flush_releases()?;
        let request = GetRequest {
            object_ids: ids.to_vec(),
            timeout_ms: timeout_ms(timeout),
        };
        let reply: GetReply = self.call(&request, timeout)?;
        let result = self.finish_get(ids, reply);
        if result.is_err() {
            self.poison("get reply could not be used");
        }
        result
    }

    fn finish_get(
        &mut self,
        ids: &[ObjectId],
        reply: GetReply,
    ) -> Result<Vec<Option<SealedObject>>, Error> {
        const M: MessageType = MessageType::GetReply;
        if reply.object_ids.as_slice() != ids {
            return Err(malformed(M, "object ids differ from the request".into()));
        }
        // New segments arrive as one fd each, in `store_fds` order.
        for (&key, &mmap_size) in reply.store_fds.iter().zip(&reply.mmap_sizes) {
            if !self.segments.contains(key) {
                let fd = recv_fd(&self.stream).map_err(Error::from_wire)?;
                let segment = Segment::map(key, fd, mmap_size, M)?;
                debug!(
                    segment = key,
                    len = segment.mapped_len(),
                    "mapped new segment"
                );
                self.segments.insert(segment);
            }
        }
        // Check every found object before taking any local use, so an error leaves counts
        // consistent.
        let mut located = Vec::with_capacity(ids.len());
        for spec in &reply.objects {
            if spec.is_missing() {
                located.push(None);
            } else {
                located.push(Some(self.locate(spec, M)?));
            }
        }
        let mut objects = Vec::with_capacity(ids.len());
        for (&id, place) in ids.iter().zip(located) {
            let Some((segment, data_offset, data_len, metadata_len)) = place else {
                objects.push(None);
                continue;
            };
            *self.local_refs.entry(id).or_insert(0) += 1;
            let held = Arc::new(HeldObject {
                id,
                queue: Arc::clone(&self.pending),
            });
            objects.push(Some(SealedObject {
                id,
                data: shared_bytes(&segment, data_offset, data_len, &held),
                metadata: shared_bytes(&segment, data_offset + data_len, metadata_len, &held),
            }));
        }
        Ok(objects)
    }

    /// Ends one use of a got object now (rather than whenever its last `Bytes` is dropped) and
    /// sends any releases that are due.
    pub fn release(&mut self, object: SealedObject) -> Result<(), Error> {
        drop(object);
        self.flush_releases()
    }

    /// Sends the releases and aborts that dropped buffers queued. Called before every request;
    /// call it yourself when idle so the store can evict or delete released objects.
    pub fn flush_releases(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        for item in self.pending.take() {
            match item {
                Pending::Release(id) => self.release_local(id)?,
                Pending::Abort(id) => {
                    if self.local_refs.contains_key(&id) {
                        self.abort_id(id)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops one local use; at zero, sends the (reply-less) Release.
    fn release_local(&mut self, id: ObjectId) -> Result<(), Error> {
        let Some(count) = self.local_refs.get_mut(&id) else {
            // Not held (e.g. already aborted): releasing would crash the real store.
            return Ok(());
        };
        *count -= 1;
        if *count == 0 {
            self.local_refs.remove(&id);
            debug!(object = %id, "release");
            self.send(&ReleaseRequest { object_id: id })?;
        }
        Ok(())
    }

    /// Whether the store has a sealed object with this id.
    pub fn contains(&mut self, id: ObjectId) -> Result<bool, Error> {
        self.flush_releases()?;
        let reply: ContainsReply =
            self.call(&ContainsRequest { object_id: id }, Some(Duration::ZERO))?;
        if reply.object_id != id {
            return self.poison_with(malformed(
                MessageType::ContainsReply,
                format!("asked about {id}, reply names {}", reply.object_id),
            ));
        }
        Ok(reply.has_object)
    }

    /// Deletes objects; one outcome per id, in order. Objects in use or unsealed are deleted
    /// by the store when their last reference goes (`Scheduled`).
    pub fn delete(&mut self, ids: &[ObjectId]) -> Result<Vec<DeleteOutcome>, Error> {
        let _span = debug_span!("plasma_delete", objects = ids.len()).entered();
        self.flush_releases()?;
        let reply: DeleteReply = self.call(
            &DeleteRequest {
                object_ids: ids.to_vec(),
            },
            Some(Duration::ZERO),
        )?;
        if reply.object_ids.as_slice() != ids {
            return self.poison_with(malformed(
                MessageType::DeleteReply,
                "object ids differ from the request".into(),
            ));
        }
        Ok(reply
            .errors
            .iter()
            .map(|e| match e {
                PlasmaError::Ok => DeleteOutcome::Deleted,
                PlasmaError::ObjectNotFound => DeleteOutcome::NotFound,
                _ => DeleteOutcome::Scheduled,
            })
            .collect())
    }

    /// Every object in the store, sealed or not.
    pub fn list(&mut self) -> Result<Vec<ObjectInfo>, Error> {
        self.flush_releases()?;
        let reply: ListReply = self.call(&ListRequest, Some(Duration::ZERO))?;
        Ok(reply.objects)
    }

    /// Asks the store to evict at least `num_bytes` of released objects; returns the bytes it
    /// freed (may be more, or less if not enough was evictable).
    pub fn evict(&mut self, num_bytes: u64) -> Result<u64, Error> {
        self.flush_releases()?;
        let reply: EvictReply = self.call(&EvictRequest { num_bytes }, Some(Duration::ZERO))?;
        Ok(reply.num_bytes)
    }

    /// The store's free-text debug description.
    pub fn debug_string(&mut self) -> Result<String, Error> {
        self.flush_releases()?;
        let reply: GetDebugStringReply = self.call(&GetDebugStringRequest, Some(Duration::ZERO))?;
        Ok(reply.debug_string)
    }

    // -----------------------------------------------------------------------------------------
    // Plumbing
    // -----------------------------------------------------------------------------------------

    /// Finds an object's bytes: the segment must be mapped, the layout must be data then
    /// metadata, on the host, inside the mapping. Returns (segment, data offset, data length,
    /// metadata length).
    fn locate(
        &self,
        spec: &ObjectSpec,
        message: MessageType,
    ) -> Result<(Arc<Segment>, usize, usize, usize), Error> {
        let segment = self.segments.get(spec.segment_key).ok_or_else(|| {
            malformed(
                message,
                format!("object in unknown segment {}", spec.segment_key),
            )
        })?;
        if spec.device_num != 0 {
            return Err(malformed(
                message,
                format!("object on device {}", spec.device_num),
            ));
        }
        if spec.data_offset.checked_add(spec.data_size) != Some(spec.metadata_offset) {
            return Err(malformed(message, "metadata does not follow data".into()));
        }
        let total = spec
            .data_size
            .checked_add(spec.metadata_size)
            .ok_or_else(|| malformed(message, "object size overflows".into()))?;
        let (offset, _) = segment
            .check_range(spec.data_offset, total)
            .ok_or_else(|| {
                malformed(
                    message,
                    format!(
                        "object [{}, +{total}) outside segment {} of {} bytes",
                        spec.data_offset,
                        spec.segment_key,
                        segment.mapped_len()
                    ),
                )
            })?;
        // Both fit in usize because their sum does.
        Ok((
            Arc::clone(segment),
            offset,
            spec.data_size as usize,
            spec.metadata_size as usize,
        ))
    }

    fn check_owner(&self, object: &CreatedObject) -> Result<(), Error> {
        self.check_usable()?;
        if !Arc::ptr_eq(&object.queue, &self.pending) {
            return Err(Error::InvalidArgument(format!(
                "object {} was created on another connection",
                object.id
            )));
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(why) => Err(Error::ConnectionClosed(why.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, why: &str) {
        if self.poisoned.is_none() {
            self.poisoned = Some(why.to_string());
            // Closing our end makes the store drop every reference this connection held.
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn poison_with<T>(&mut self, err: Error) -> Result<T, Error> {
        self.poison(&err.to_string());
        Err(err)
    }

    /// Sends a request that has no reply.
    fn send<Q: Message>(&mut self, request: &Q) -> Result<(), Error> {
        self.check_usable()?;
        match write_frame(&self.stream, Q::TYPE, &request.encode()) {
            Ok(()) => Ok(()),
            Err(e) => self.poison_with(Error::from_wire(e)),
        }
    }

    /// Sends a request and reads its reply. `wait` is how long the store may legitimately take
    /// (a Get's timeout; `None` = forever); the reply timeout comes on top.
    fn call<Q: Message, R: Message>(
        &mut self,
        request: &Q,
        wait: Option<Duration>,
    ) -> Result<R, Error> {
        self.send(request)?;
        let timeout = match (wait, self.reply_timeout) {
            (Some(w), Some(r)) => Some(w.saturating_add(r)),
            _ => None,
        };
        if timeout != self.current_read_timeout {
            if let Err(e) = self.stream.set_read_timeout(timeout) {
                return self.poison_with(Error::Io(e));
            }
            self.current_read_timeout = timeout;
        }
        let frame = match read_frame(&self.stream, MAX_REPLY_BODY) {
            Ok(frame) => frame,
            Err(e) => return self.poison_with(Error::from_wire(e)),
        };
        match frame.expect(R::TYPE).and_then(R::decode) {
            Ok(reply) => Ok(reply),
            Err(e) => self.poison_with(Error::MalformedReply(e)),
        }
    }
}

/// `capacity` minus the data and metadata of `objects` (what a List reports), never below 0.
pub(crate) fn free_bytes(capacity: u64, objects: &[ObjectInfo]) -> u64 {
    let used = objects.iter().fold(0u64, |sum, info| {
        // A store reporting negative sizes is wrong; count them as zero rather than wrap.
        let data = u64::try_from(info.data_size).unwrap_or(0);
        let metadata = u64::try_from(info.metadata_size).unwrap_or(0);
        sum.saturating_add(data).saturating_add(metadata)
    });
    capacity.saturating_sub(used)
}

fn malformed(message: MessageType, detail: String) -> Error {
    Error::MalformedReply(WireError::Inconsistent { message, detail })
}

impl Drop for PlasmaClient {
    fn drop(&mut self) {
        // Buffers that outlive us must not wake anyone about a dead connection.
        self.pending.clear_waker();
    }
}
