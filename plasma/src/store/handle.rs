//! The in-process [`ObjectStore`]: direct calls on the shared store state, no socket hop.
//!
//! Reads are zero-copy: a [`SealedObject`]'s `Bytes` point into the arena mapping and hold a
//! reference on the object (the store will not evict or free it) until the last clone of either
//! buffer is dropped. A [`NewObject`] writes straight into the arena.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::state::{
    CreateError, DeleteStatus, GetDeadline, GetOutcome, ObjectLocation, SealError, EMBEDDED_CLIENT,
};
use super::Shared;
use crate::object_store::{
    DeleteOutcome, NewObject, ObjectStore, ObjectWriter, SealedObject, StoredObject,
};
use crate::{Error, ObjectId};

/// A cheap, cloneable handle on an [`super::EmbeddedStore`] that implements [`ObjectStore`]
/// with direct calls. Every operation takes the store's mutex briefly and never blocks on I/O;
/// a Get that must wait for a seal awaits a channel instead of holding a thread.
#[derive(Clone)]
pub struct EmbeddedHandle {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for EmbeddedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedHandle").finish_non_exhaustive()
    }
}

/// One in-process reference on a sealed object; released when dropped.
struct Lease {
    shared: Arc<Shared>,
    id: ObjectId,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.shared.lock().release(EMBEDDED_CLIENT, self.id);
    }
}

/// A byte range of an arena, kept alive (mapping and object reference) by its owner.
struct ArenaSlice {
    _lease: Arc<Lease>,
    location: ObjectLocation,
    start: u64,
    len: usize,
}

impl AsRef<[u8]> for ArenaSlice {
    fn as_ref(&self) -> &[u8] {
        match self.location.arena.ptr(self.start, self.len as u64) {
            // SAFETY: `ptr` checked that the range lies inside the mapping, which lives as long
            // as the `Arc<Arena>` in `location`; the object is sealed and referenced, so the
            // store neither frees nor reuses the range while this slice exists.
            Some(p) => unsafe { std::slice::from_raw_parts(p, self.len) },
            None => &[],
        }
    }
}

fn sealed_object(shared: &Arc<Shared>, id: ObjectId, location: ObjectLocation) -> SealedObject {
    let lease = Arc::new(Lease {
        shared: shared.clone(),
        id,
    });
    let data_len = location.data_size as usize;
    let meta_len = location.metadata_size as usize;
    let data_start = location.offset;
    let meta_start = location.offset + location.data_size;
    let data = Bytes::from_owner(ArenaSlice {
        _lease: lease.clone(),
        location: location.clone(),
        start: data_start,
        len: data_len,
    });
    let metadata = Bytes::from_owner(ArenaSlice {
        _lease: lease,
        location,
        start: meta_start,
        len: meta_len,
    });
    SealedObject { id, data, metadata }
}

/// Cancels a registered Get waiter if the awaiting future is dropped first.
struct WaitGuard {
    shared: Arc<Shared>,
    waiter: Option<u64>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if let Some(wid) = self.waiter {
            self.shared.lock().cancel_waiter(wid);
        }
    }
}

impl EmbeddedHandle {
    /// Whole-store statistics as free text (the same as GetDebugString).
    pub fn debug_string(&self) -> String {
        self.shared.lock().debug_string()
    }

    /// Bytes of live objects (data + metadata).
    pub fn allocated(&self) -> u64 {
        self.shared.lock().allocated()
    }

    /// Evicts released objects, oldest first, until `num_bytes` are freed; returns the bytes
    /// freed.
    pub fn evict(&self, num_bytes: u64) -> u64 {
        self.shared.lock().evict(num_bytes)
    }
}

impl EmbeddedHandle {
    fn create_in_arena(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
        evict_if_full: bool,
    ) -> Result<NewObject, Error> {
        let needed = data_size.saturating_add(metadata_size);
        let location = {
            let mut state = self.shared.lock();
            match state.create(EMBEDDED_CLIENT, id, data_size, metadata_size, evict_if_full) {
                Ok(location) => location,
                Err(CreateError::Exists) => return Err(Error::ObjectExists(id)),
                Err(CreateError::OutOfMemory) if !evict_if_full => {
                    // Measured under the same lock as the refusal, so the numbers agree.
                    let free = state.capacity().saturating_sub(state.allocated());
                    return Err(Error::StoreFull { needed, free });
                }
                Err(CreateError::OutOfMemory) => return Err(Error::OutOfMemory { needed }),
            }
        };
        let writer = EmbeddedWriter {
            shared: self.shared.clone(),
            id,
            location,
        };
        Ok(NewObject::new(id, Box::new(writer)))
    }
}

impl ObjectStore for EmbeddedHandle {
    async fn get(
        &self,
        ids: Vec<ObjectId>,
        timeout: Duration,
    ) -> Result<Vec<Option<SealedObject>>, Error> {
        let deadline = if timeout.is_zero() {
            GetDeadline::Now
        } else {
            match Instant::now().checked_add(timeout) {
                Some(t) => GetDeadline::At(t),
                None => GetDeadline::Never,
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = self.shared.clone();
        let sink_ids = ids.clone();
        let sink = Box::new(move |results: Vec<Option<ObjectLocation>>| {
            let objects: Vec<Option<SealedObject>> = sink_ids
                .into_iter()
                .zip(results)
                .map(|(id, loc)| loc.map(|loc| sealed_object(&shared, id, loc)))
                .collect();
            // If the caller is gone, dropping the objects releases their references.
            let _ = tx.send(objects);
        });
        let outcome = self.shared.lock().get(EMBEDDED_CLIENT, ids, deadline, sink);
        let _guard = match outcome {
            GetOutcome::Ready(completion) => {
                completion.deliver();
                WaitGuard {
                    shared: self.shared.clone(),
                    waiter: None,
                }
            }
            GetOutcome::Waiting(wid) => {
                self.shared.wake_timer();
                WaitGuard {
                    shared: self.shared.clone(),
                    waiter: Some(wid),
                }
            }
        };
        rx.await
            .map_err(|_| Error::Io(std::io::Error::other("the embedded store shut down")))
    }

    async fn create(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> Result<NewObject, Error> {
        self.create_in_arena(id, data_size, metadata_size, true)
    }

    async fn create_without_eviction(
        &self,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
    ) -> Result<NewObject, Error> {
        self.create_in_arena(id, data_size, metadata_size, false)
    }

    async fn free_space(&self) -> Result<u64, Error> {
        let state = self.shared.lock();
        Ok(state.capacity().saturating_sub(state.allocated()))
    }

    async fn contains(&self, id: ObjectId) -> Result<bool, Error> {
        Ok(self.shared.lock().contains(&id))
    }

    async fn delete(&self, ids: Vec<ObjectId>) -> Result<Vec<DeleteOutcome>, Error> {
        let statuses = self.shared.lock().delete(&ids);
        Ok(statuses
            .into_iter()
            .map(|s| match s {
                DeleteStatus::Deleted => DeleteOutcome::Deleted,
                DeleteStatus::NotFound => DeleteOutcome::NotFound,
                DeleteStatus::NotSealed | DeleteStatus::InUse => DeleteOutcome::Scheduled,
            })
            .collect())
    }

    async fn capacity(&self) -> Result<u64, Error> {
        Ok(self.shared.lock().capacity())
    }

    async fn list(&self) -> Result<Vec<StoredObject>, Error> {
        let objects = self.shared.lock().list();
        Ok(objects
            .into_iter()
            .map(|info| StoredObject {
                id: info.id,
                data_size: info.data_size,
                metadata_size: info.metadata_size,
                sealed: info.digest.is_some(),
                created: u64::try_from(info.create_time).unwrap_or(0),
            })
            .collect())
    }
}

/// Writes an unsealed object directly in the arena.
struct EmbeddedWriter {
    shared: Arc<Shared>,
    id: ObjectId,
    location: ObjectLocation,
}

impl EmbeddedWriter {
    fn range_mut(&mut self, start: u64, len: u64) -> &mut [u8] {
        match self.location.arena.ptr(start, len) {
            // SAFETY: the range is inside the mapping (checked by `ptr`) and belongs to this
            // unsealed object, which only this writer may fill: Get never returns unsealed
            // objects, and `&mut self` makes the borrow exclusive in this process.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p, len as usize) },
            None => &mut [],
        }
    }

    fn finish_seal(&self, digest: [u8; 8]) -> Result<(), Error> {
        let completions = {
            let mut state = self.shared.lock();
            let completions =
                state
                    .seal(EMBEDDED_CLIENT, self.id, digest)
                    .map_err(|e| match e {
                        SealError::NotFound => Error::ObjectNotFound(self.id),
                        SealError::AlreadySealed => Error::ObjectExists(self.id),
                    })?;
            let _ = state.release(EMBEDDED_CLIENT, self.id);
            completions
        };
        for c in completions {
            c.deliver();
        }
        Ok(())
    }

    fn finish_abort(&self) -> Result<(), Error> {
        self.shared
            .lock()
            .abort(EMBEDDED_CLIENT, self.id)
            .map_err(|_| Error::ObjectNotFound(self.id))
    }
}

impl ObjectWriter for EmbeddedWriter {
    fn data_mut(&mut self) -> &mut [u8] {
        let (start, len) = (self.location.offset, self.location.data_size);
        self.range_mut(start, len)
    }

    fn metadata_mut(&mut self) -> &mut [u8] {
        let start = self.location.offset + self.location.data_size;
        let len = self.location.metadata_size;
        self.range_mut(start, len)
    }

    fn seal(
        self: Box<Self>,
        digest: [u8; 8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>> {
        let result = self.finish_seal(digest);
        Box::pin(async move { result })
    }

    fn abort(
        self: Box<Self>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>> {
        let result = self.finish_abort();
        Box::pin(async move { result })
    }

    fn abort_in_background(self: Box<Self>) {
        // Not blocking: the abort is a short critical section on the store's mutex.
        let _ = self.finish_abort();
    }
}
