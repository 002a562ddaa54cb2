//! Buffers over the store's shared memory: the writable buffer of a created object, and the
//! zero-copy `Bytes` of a got object that release the store reference when dropped.
//!
//! Dropping happens anywhere (a tokio worker sending the bytes, another thread), while the
//! connection is owned by one thread. So a drop never touches the socket: it appends the
//! release (or abort) to the connection's [`PendingQueue`] and calls its waker, and the
//! connection's owner sends the messages before its next request or when woken.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::segment::Segment;
use crate::ObjectId;

/// Work a dropped buffer leaves for the connection's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// One local use of a got (or sealed) object ended.
    Release(ObjectId),
    /// A created object was dropped without seal or abort.
    Abort(ObjectId),
}

type Waker = Box<dyn Fn() + Send + Sync>;

/// The queue between dropped buffers and the connection that owns their references.
#[derive(Default)]
pub struct PendingQueue {
    items: Mutex<Vec<Pending>>,
    waker: Mutex<Option<Waker>>,
    /// Set once the owner has been woken and has not taken the queue since: a burst of drops
    /// wakes the owner once.
    woken: AtomicBool,
}

impl PendingQueue {
    /// Queues work and wakes the owner. Never blocks beyond a short mutex hold.
    pub(crate) fn push(&self, item: Pending) {
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(item);
        if self.woken.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(wake) = self
            .waker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            wake();
        }
    }

    /// Takes everything queued so far.
    pub(crate) fn take(&self) -> Vec<Pending> {
        // Cleared before taking: anything pushed from now on wakes the owner again.
        self.woken.store(false, Ordering::Release);
        std::mem::take(
            &mut *self
                .items
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Installs the function called after each push (e.g. "send a flush command to the thread
    /// that owns the connection"). It must not block.
    pub fn set_waker(&self, waker: impl Fn() + Send + Sync + 'static) {
        *self
            .waker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(waker));
    }

    /// Removes the waker (breaks reference cycles when the owner shuts down).
    pub fn clear_waker(&self) {
        *self
            .waker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// One store reference held for a got object; dropping it queues the release.
pub(crate) struct HeldObject {
    pub(crate) id: ObjectId,
    pub(crate) queue: Arc<PendingQueue>,
}

impl Drop for HeldObject {
    fn drop(&mut self) {
        self.queue.push(Pending::Release(self.id));
    }
}

/// The owner behind a got object's `Bytes`: a range of a segment plus the held reference.
struct ObjectView {
    segment: Arc<Segment>,
    offset: usize,
    len: usize,
    _held: Arc<HeldObject>,
}

impl AsRef<[u8]> for ObjectView {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range was checked against the mapping when the view was made, the
        // mapping lives as long as `segment`, and a sealed object's bytes are never written
        // again while a reference on it is held (the store cannot free or reuse it).
        unsafe { std::slice::from_raw_parts(self.segment.ptr_at(self.offset), self.len) }
    }
}

/// A zero-copy `Bytes` over `[offset, offset + len)` of `segment` (range already checked).
pub(crate) fn shared_bytes(
    segment: &Arc<Segment>,
    offset: usize,
    len: usize,
    held: &Arc<HeldObject>,
) -> Bytes {
    Bytes::from_owner(ObjectView {
        segment: Arc::clone(segment),
        offset,
        len,
        _held: Arc::clone(held),
    })
}

/// An unsealed object this connection created: its data and metadata buffers are writable
/// views into the shared segment. Seal it or abort it through the connection that created it;
/// dropping it queues an abort.
pub struct CreatedObject {
    pub(crate) id: ObjectId,
    pub(crate) segment: Arc<Segment>,
    pub(crate) data_offset: usize,
    pub(crate) data_size: usize,
    pub(crate) metadata_size: usize,
    pub(crate) queue: Arc<PendingQueue>,
    /// False once sealed or aborted (then dropping does nothing).
    pub(crate) armed: bool,
}

impl CreatedObject {
    pub fn id(&self) -> ObjectId {
        self.id
    }

    pub fn data_size(&self) -> usize {
        self.data_size
    }

    pub fn metadata_size(&self) -> usize {
        self.metadata_size
    }

    /// The data buffer (exactly `data_size` bytes). Not zeroed: the store does not clear
    /// allocations, so write all of it.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: the range was checked against the mapping at create time; an unsealed
        // object is reachable only through this value (the store hands unsealed objects to no
        // one else), and `&mut self` makes the borrow exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.segment.ptr_at(self.data_offset), self.data_size)
        }
    }

    /// The metadata buffer (exactly `metadata_size` bytes), right after the data.
    pub fn metadata_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `data_mut`; the metadata range follows the data range and was checked.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.segment.ptr_at(self.data_offset + self.data_size),
                self.metadata_size,
            )
        }
    }

    /// Both buffers at once.
    pub fn buffers_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        // SAFETY: as above; the two ranges are disjoint.
        unsafe {
            (
                std::slice::from_raw_parts_mut(
                    self.segment.ptr_at(self.data_offset),
                    self.data_size,
                ),
                std::slice::from_raw_parts_mut(
                    self.segment.ptr_at(self.data_offset + self.data_size),
                    self.metadata_size,
                ),
            )
        }
    }

    /// Read access to data and metadata (for computing the digest at seal time).
    pub fn buffers(&self) -> (&[u8], &[u8]) {
        // SAFETY: as above, shared borrow.
        unsafe {
            (
                std::slice::from_raw_parts(self.segment.ptr_at(self.data_offset), self.data_size),
                std::slice::from_raw_parts(
                    self.segment.ptr_at(self.data_offset + self.data_size),
                    self.metadata_size,
                ),
            )
        }
    }
}

impl Drop for CreatedObject {
    fn drop(&mut self) {
        if self.armed {
            self.queue.push(Pending::Abort(self.id));
        }
    }
}

impl std::fmt::Debug for CreatedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedObject")
            .field("id", &self.id)
            .field("segment", &self.segment.key())
            .field("data_offset", &self.data_offset)
            .field("data_size", &self.data_size)
            .field("metadata_size", &self.metadata_size)
            .finish()
    }
}
