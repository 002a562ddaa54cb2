//! The one interface the stream server uses to reach a Plasma store, whichever it is.
//!
//! Two implementations exist (see `docs/design.md` §3): the pure-Rust socket client's async pool
//! (`crate::pool`, talking to any Plasma store, e.g. pyarrow 11's `plasma_store`) and the
//! embedded store's in-process handle (`crate::store`, no socket hop). The server is generic
//! over this trait.
//!
//! Contract shared by both implementations:
//! - Every method may be called from tokio's async workers: blocking socket I/O happens on
//!   blocking threads, never on the caller's worker.
//! - A [`SealedObject`] keeps its shared mapping *and* its store reference alive until the last
//!   `Bytes` cloned from it is dropped; then the reference is released. Sending it never copies.
//! - A [`NewObject`] is a writable, unsealed object. Dropping it without [`NewObject::seal`]
//!   aborts it in the store, so no half-written object can stay behind.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::{Error, ObjectId};

/// A sealed object read from a store: zero-copy views into the store's shared memory.
#[derive(Clone, Debug)]
pub struct SealedObject {
    pub id: ObjectId,
    pub data: Bytes,
    pub metadata: Bytes,
}

/// What a store says about one ID of a batch delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Freed now.
    Deleted,
    /// No such object.
    NotFound,
    /// In use or unsealed: the store deletes it when the last reference is released.
    Scheduled,
}

/// The behaviour of an unsealed object that the caller is filling in.
///
/// Implemented by each store; the server only sees [`NewObject`].
pub trait ObjectWriter: Send + 'static {
    /// The object's data buffer (exactly `data_size` bytes), inside the store's shared mapping.
    fn data_mut(&mut self) -> &mut [u8];
    /// The object's metadata buffer (exactly `metadata_size` bytes), right after the data.
    fn metadata_mut(&mut self) -> &mut [u8];
    /// Seals the object with the given Plasma digest (see `crate::digest`) and drops the
    /// creator's reference.
    fn seal(
        self: Box<Self>,
        digest: [u8; 8],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;
    /// Aborts the unsealed object: the store frees it.
    fn abort(self: Box<Self>) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;
    /// Called from `Drop` when neither `seal` nor `abort` ran: must abort without blocking the
    /// caller (e.g. hand the abort to a background thread or task).
    fn abort_in_background(self: Box<Self>);
}

/// An unsealed object being written. Seal it, or drop it to abort it.
pub struct NewObject {
    pub id: ObjectId,
    writer: Option<Box<dyn ObjectWriter>>,
}

impl NewObject {
    pub fn new(id: ObjectId, writer: Box<dyn ObjectWriter>) -> Self {
        Self {
            id,
            writer: Some(writer),
        }
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        match self.writer.as_mut() {
            Some(w) => w.data_mut(),
            None => &mut [],
        }
    }
    pub fn metadata_mut(&mut self) -> &mut [u8] {
        match self.writer.as_mut() {
            Some(w) => w.metadata_mut(),
            None => &mut [],
        }
    }
    /// Seals with the digest the caller computed while writing (`crate::digest::Digester`).
    pub async fn seal(mut self, digest: [u8; 8]) -> Result<(), Error> {
        match self.writer.take() {
            Some(w) => w.seal(digest).await,
            None => Ok(()),
        }
    }
    pub async fn abort(mut self) -> Result<(), Error> {
        match self.writer.take() {
            Some(w) => w.abort().await,
            None => Ok(()),
        }
    }
}

impl Drop for NewObject {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            w.abort_in_background();
        }
    }
}

/// One object as [`ObjectStore::list`] describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredObject {
    pub id: ObjectId,
    pub data_size: u64,
    pub metadata_size: u64,
    /// Sealed (readable), or still being written.
    pub sealed: bool,
    /// Creation time in Unix seconds, as the store keeps it (0 if it does not).
    pub created: u64,
}

/// A Plasma store as the stream server sees it.
pub trait ObjectStore: Send + Sync + 'static {
    /// Gets sealed objects, waiting up to `timeout` for ones not sealed yet. One entry per ID,
    /// in order; `None` for an object that was not sealed in time (missing is not an error).
    fn get(
        &self,
        ids: Vec<ObjectId>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Option<SealedObject>>, Error>> + Send;

    /// Creates an unsealed object of these sizes. `Error::ObjectExists` if the ID is taken,
    /// `Error::OutOfMemory` if it cannot fit even after eviction.
    fn create(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> impl Future<Output = Result<NewObject, Error>> + Send;

    /// Like [`ObjectStore::create`], but nothing is evicted to make room: an object larger
    /// than the free space fails with [`Error::StoreFull`] (`needed` and `free` bytes) and the
    /// store keeps every sealed object. For objects arriving from peers, which must never push
    /// out sealed objects that local users rely on. `Error::ObjectExists` as for `create`.
    fn create_without_eviction(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> impl Future<Output = Result<NewObject, Error>> + Send;

    /// Bytes the store can hold without evicting anything: its capacity minus every object in
    /// it, sealed or not (evictable objects count as used). The embedded store answers from
    /// memory; a socket store answers with a List, whose cost grows with the object count.
    fn free_space(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Creates, fills and seals an object whose bytes are all at hand, in one step where the
    /// store allows it (a socket store: one CreateAndSeal round trip instead of Create, Seal
    /// and Release). `digest` is the Plasma digest of `data` and `metadata`. Without
    /// `evict_if_full`, as [`ObjectStore::create_without_eviction`]. For small objects: the
    /// bytes travel by value.
    fn create_and_seal(
        &self,
        id: ObjectId,
        data: Vec<u8>,
        metadata: Vec<u8>,
        digest: [u8; 8],
        evict_if_full: bool,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            let (data_size, metadata_size) = (data.len() as u64, metadata.len() as u64);
            let mut object = if evict_if_full {
                self.create(id, data_size, metadata_size).await?
            } else {
                self.create_without_eviction(id, data_size, metadata_size)
                    .await?
            };
            let fits = object.data_mut().len() == data.len()
                && object.metadata_mut().len() == metadata.len();
            if !fits {
                object.abort().await?;
                return Err(Error::Refused {
                    id,
                    reason: "the created object's buffers differ from its sizes".into(),
                });
            }
            object.data_mut().copy_from_slice(&data);
            object.metadata_mut().copy_from_slice(&metadata);
            object.seal(digest).await
        }
    }

    /// Whether a sealed object with this ID is in the store.
    fn contains(&self, id: ObjectId) -> impl Future<Output = Result<bool, Error>> + Send;

    /// [`ObjectStore::contains`] for each ID, in order. A store whose calls are cheap asks
    /// one at a time; a socket store asks in one round trip.
    fn contains_many(
        &self,
        ids: Vec<ObjectId>,
    ) -> impl Future<Output = Result<Vec<bool>, Error>> + Send {
        async move {
            let mut here = Vec::with_capacity(ids.len());
            for id in ids {
                here.push(self.contains(id).await?);
            }
            Ok(here)
        }
    }

    /// Deletes objects; one outcome per ID, in order.
    fn delete(
        &self,
        ids: Vec<ObjectId>,
    ) -> impl Future<Output = Result<Vec<DeleteOutcome>, Error>> + Send;

    /// The store's capacity in bytes.
    fn capacity(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Every object in the store, sealed and unsealed (a socket store: one List request).
    fn list(&self) -> impl Future<Output = Result<Vec<StoredObject>, Error>> + Send;
}
