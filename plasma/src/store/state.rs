//! The store's state machine: arenas, the object table, references, the LRU, Get waiters and
//! subscribers. No sockets and no threads here: every method runs under the store's one mutex,
//! returns what must be done afterwards (e.g. [`Completion`]s of Gets, to be delivered after the
//! lock is released) and never blocks.
//!
//! Semantics follow `docs/plasma.md` §5 (what pyarrow 11's `plasma_store` does), except that
//! input that would abort the real store is reported as an error to the caller instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};

use super::allocator::{allocation_size, OffsetAllocator, ALIGNMENT};
use super::arena::{Arena, SegmentKey, PAGE_SIZE};
use super::notify::{FlushOutcome, Subscriber};
use crate::ObjectId;

/// Who holds references and creates objects: one per socket connection, plus
/// [`EMBEDDED_CLIENT`] for the in-process handle.
pub type ClientId = u64;

/// The in-process handle's client id. Its references are counted (each `SealedObject` holds
/// one); a socket connection holds at most one reference per object, like the real store.
pub const EMBEDDED_CLIENT: ClientId = 0;

/// Identifies a registered Get waiter (for cancellation).
pub type WaiterId = u64;

/// Where a sealed (or newly created) object's bytes are.
#[derive(Clone, Debug)]
pub struct ObjectLocation {
    pub arena: Arc<Arena>,
    pub offset: u64,
    pub data_size: u64,
    pub metadata_size: u64,
}

/// One row of List, or one entry of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub id: ObjectId,
    pub data_size: u64,
    pub metadata_size: u64,
    pub ref_count: i32,
    pub create_time: i64,
    pub construct_duration: i64,
    /// `Some` when sealed; `None` while unsealed, and in deletion notices.
    pub digest: Option<[u8; 8]>,
    pub is_deletion: bool,
}

/// An object sent whole in one request (CreateAndSeal and its batch form).
#[derive(Debug, Clone, Copy)]
pub struct InlineObject<'a> {
    pub id: ObjectId,
    pub data: &'a [u8],
    pub metadata: &'a [u8],
    pub digest: [u8; 8],
}

/// Why a Create failed (wire errors 1 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateError {
    Exists,
    OutOfMemory,
}

/// Why a Seal failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// No such object, or not created by this client.
    NotFound,
    AlreadySealed,
}

/// Why an Abort, Release or similar request is a protocol violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MisuseError {
    NotFound,
    Sealed,
    NotCreator,
    NotHeld,
}

impl std::fmt::Display for MisuseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MisuseError::NotFound => "no such object",
            MisuseError::Sealed => "the object is sealed",
            MisuseError::NotCreator => "the object was created by another client",
            MisuseError::NotHeld => "this client holds no reference to the object",
        })
    }
}

/// The per-ID result of Delete, as the wire's PlasmaError codes 0, 2, 4, 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteStatus {
    Deleted = 0,
    NotFound = 2,
    /// Unsealed: deleted once sealed and released.
    NotSealed = 4,
    /// Referenced: deleted when the last reference goes.
    InUse = 5,
}

/// How long a Get may wait for objects to be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetDeadline {
    Now,
    At(Instant),
    Never,
}

/// Receives a Get's result: one entry per requested ID, `None` if not sealed in time. Called
/// after the store lock is released.
pub type GetSink = Box<dyn FnOnce(Vec<Option<ObjectLocation>>) + Send>;

/// A Get that is ready to be answered; call [`Completion::deliver`] outside the lock.
pub struct Completion {
    sink: GetSink,
    results: Vec<Option<ObjectLocation>>,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("results", &self.results.len())
            .finish_non_exhaustive()
    }
}

impl Completion {
    pub fn deliver(self) {
        (self.sink)(self.results)
    }
}

/// What [`StoreState::get`] did.
pub enum GetOutcome {
    Ready(Completion),
    Waiting(WaiterId),
}

/// Encodes a Notification FlatBuffer body (without the length prefix).
pub type NotificationEncoder = fn(&[ObjectInfo]) -> Vec<u8>;

/// Store-wide limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of objects (data + metadata, as requested) the store may hold: `-m`.
    pub capacity: u64,
    /// Length of a normal arena; an object that does not fit gets an arena of its own size.
    pub arena_size: u64,
    /// Populate the first arena at start and never punch its freed pages: the memory stays
    /// resident, so writing an object never page-faults (see [`Arena::populate`]).
    pub resident: bool,
}

/// The first object offset in an arena (the real store's first object also sits at 64).
const FIRST_OFFSET: u64 = ALIGNMENT;

struct ArenaSlot {
    arena: Arc<Arena>,
    alloc: OffsetAllocator,
}

struct ObjectEntry {
    arena_key: SegmentKey,
    arena: Arc<Arena>,
    offset: u64,
    alloc_size: u64,
    data_size: u64,
    metadata_size: u64,
    digest: Option<[u8; 8]>,
    creator: ClientId,
    /// Client → reference count (always 1 for socket clients).
    holders: HashMap<ClientId, u32>,
    delete_pending: bool,
    create_time: i64,
    created_at: Instant,
    construct_duration: i64,
    lru_seq: Option<u64>,
}

impl ObjectEntry {
    fn location(&self) -> ObjectLocation {
        ObjectLocation {
            arena: self.arena.clone(),
            offset: self.offset,
            data_size: self.data_size,
            metadata_size: self.metadata_size,
        }
    }
    fn size(&self) -> u64 {
        self.data_size + self.metadata_size
    }
    fn info(&self, id: ObjectId) -> ObjectInfo {
        ObjectInfo {
            id,
            data_size: self.data_size,
            metadata_size: self.metadata_size,
            ref_count: i32::try_from(self.holders.len()).unwrap_or(i32::MAX),
            create_time: self.create_time,
            construct_duration: self.construct_duration,
            digest: self.digest,
            is_deletion: false,
        }
    }
}

#[derive(Default)]
struct ClientRecord {
    /// Objects this client holds a reference to.
    held: HashSet<ObjectId>,
    /// Unsealed objects this client created (aborted when it disconnects).
    creating: HashSet<ObjectId>,
    waiters: HashSet<WaiterId>,
}

struct Waiter {
    client: ClientId,
    ids: Vec<ObjectId>,
    pending: HashSet<ObjectId>,
    deadline: Option<Instant>,
    sink: GetSink,
}

/// Everything the store knows, guarded by one mutex.
pub struct StoreState {
    limits: Limits,
    /// Requested bytes (data + metadata) of all live objects; checked against the capacity.
    allocated: u64,
    arenas: BTreeMap<SegmentKey, ArenaSlot>,
    next_key: SegmentKey,
    objects: HashMap<ObjectId, ObjectEntry>,
    /// Sealed objects with no reference, by release order (smallest = evicted first).
    lru: BTreeMap<u64, ObjectId>,
    next_lru_seq: u64,
    clients: HashMap<ClientId, ClientRecord>,
    waiters: HashMap<WaiterId, Waiter>,
    waiting_on: HashMap<ObjectId, Vec<WaiterId>>,
    deadlines: BTreeSet<(Instant, WaiterId)>,
    next_waiter: WaiterId,
    subscribers: BTreeMap<ClientId, Subscriber>,
    encode_notification: NotificationEncoder,
    /// Freed page ranges to punch out of their arenas once due (oldest first).
    pending_punches: VecDeque<PendingPunch>,
}

/// How long freed pages stay resident before they are handed back to the kernel (if still
/// free). Re-faulting zeroed pages costs about as much as copying the data, so a store that
/// frees and re-creates objects quickly would be several times slower if it punched at once.
pub const PUNCH_DELAY: Duration = Duration::from_secs(2);

struct PendingPunch {
    due: Instant,
    arena: SegmentKey,
    start: u64,
    end: u64,
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StoreState {
    /// A store with its first arena already created (like the real store, which maps one
    /// capacity-sized segment at startup).
    pub fn new(limits: Limits, encode_notification: NotificationEncoder) -> std::io::Result<Self> {
        let mut state = Self {
            limits,
            allocated: 0,
            arenas: BTreeMap::new(),
            next_key: 1,
            objects: HashMap::new(),
            lru: BTreeMap::new(),
            next_lru_seq: 0,
            clients: HashMap::new(),
            waiters: HashMap::new(),
            waiting_on: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_waiter: 1,
            subscribers: BTreeMap::new(),
            encode_notification,
            pending_punches: VecDeque::new(),
        };
        state
            .clients
            .insert(EMBEDDED_CLIENT, ClientRecord::default());
        let first = state.add_arena(limits.arena_size)?;
        if limits.resident {
            if let Some(slot) = state.arenas.get(&first) {
                let started = Instant::now();
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                slot.arena.populate(threads)?;
                tracing::info!(
                    bytes = slot.arena.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "store memory populated"
                );
            }
        }
        Ok(state)
    }

    pub fn capacity(&self) -> u64 {
        self.limits.capacity
    }

    /// Bytes of live objects (data + metadata).
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    pub fn arena_count(&self) -> usize {
        self.arenas.len()
    }

    /// Registers a new client (socket connection).
    pub fn connect(&mut self, client: ClientId) {
        self.clients.entry(client).or_default();
    }

    fn add_arena(&mut self, len: u64) -> std::io::Result<SegmentKey> {
        let key = self.next_key;
        let arena = Arena::create(key, len)?;
        self.next_key = self
            .next_key
            .checked_add(1)
            .ok_or_else(|| std::io::Error::other("segment keys exhausted"))?;
        debug!(key, len = arena.len(), "new arena");
        let alloc = OffsetAllocator::new(FIRST_OFFSET, arena.len());
        self.arenas.insert(
            key,
            ArenaSlot {
                arena: Arc::new(arena),
                alloc,
            },
        );
        Ok(key)
    }

    fn try_allocate(&mut self, size: u64) -> Option<(SegmentKey, u64)> {
        self.arenas
            .iter_mut()
            .find_map(|(&key, slot)| slot.alloc.allocate(size).map(|o| (key, o)))
    }

    /// Creates an unsealed object; the creator holds one reference.
    pub fn create(
        &mut self,
        client: ClientId,
        id: ObjectId,
        data_size: u64,
        metadata_size: u64,
        evict_if_full: bool,
    ) -> Result<ObjectLocation, CreateError> {
        if self.objects.contains_key(&id) {
            return Err(CreateError::Exists);
        }
        let need = data_size
            .checked_add(metadata_size)
            .ok_or(CreateError::OutOfMemory)?;
        let alloc_size = allocation_size(need).ok_or(CreateError::OutOfMemory)?;
        if need > self.limits.capacity {
            return Err(CreateError::OutOfMemory);
        }
        if self.allocated + need > self.limits.capacity {
            if !evict_if_full {
                return Err(CreateError::OutOfMemory);
            }
            let required = self.allocated + need - self.limits.capacity;
            self.evict(required.max(self.limits.capacity / 5));
            if self.allocated + need > self.limits.capacity {
                return Err(CreateError::OutOfMemory);
            }
        }
        let (key, offset) = loop {
            if let Some(found) = self.try_allocate(alloc_size) {
                break found;
            }
            // No arena has a large enough hole: map another one (an object larger than the
            // normal arena size gets an arena of its own size).
            let len = self.limits.arena_size.max(alloc_size + FIRST_OFFSET);
            match self.add_arena(len) {
                Ok(_) => continue,
                Err(e) => {
                    warn!(error = %e, "cannot create another arena");
                    if evict_if_full && !self.lru.is_empty() {
                        self.evict(1);
                        continue;
                    }
                    return Err(CreateError::OutOfMemory);
                }
            }
        };
        let Some(slot) = self.arenas.get(&key) else {
            return Err(CreateError::OutOfMemory);
        };
        let arena = slot.arena.clone();
        let mut holders = HashMap::new();
        holders.insert(client, 1);
        let entry = ObjectEntry {
            arena_key: key,
            arena,
            offset,
            alloc_size,
            data_size,
            metadata_size,
            digest: None,
            creator: client,
            holders,
            delete_pending: false,
            create_time: unix_seconds(),
            created_at: Instant::now(),
            construct_duration: -1,
            lru_seq: None,
        };
        let location = entry.location();
        self.objects.insert(id, entry);
        self.allocated += need;
        let record = self.clients.entry(client).or_default();
        record.held.insert(id);
        record.creating.insert(id);
        debug!(object = %id, data_size, metadata_size, arena = key, offset, "created");
        Ok(location)
    }

    /// Seals an object this client created: stores the digest, notifies subscribers and
    /// completes the Gets that were waiting for it. The creator keeps its reference.
    pub fn seal(
        &mut self,
        client: ClientId,
        id: ObjectId,
        digest: [u8; 8],
    ) -> Result<Vec<Completion>, SealError> {
        let entry = self.objects.get_mut(&id).ok_or(SealError::NotFound)?;
        if entry.creator != client {
            return Err(SealError::NotFound);
        }
        if entry.digest.is_some() {
            return Err(SealError::AlreadySealed);
        }
        entry.digest = Some(digest);
        entry.construct_duration = entry.created_at.elapsed().as_secs() as i64;
        let info = entry.info(id);
        if let Some(record) = self.clients.get_mut(&client) {
            record.creating.remove(&id);
        }
        debug!(object = %id, "sealed");
        self.notify(std::slice::from_ref(&info));
        let ready = self.wake_waiters(&[id]);
        // The creator may have released before sealing: then the object is evictable (or due
        // for its scheduled delete) right away.
        self.after_unref(id);
        Ok(ready)
    }

    /// Seals several objects, sending one notification listing them all.
    fn wake_waiters(&mut self, sealed: &[ObjectId]) -> Vec<Completion> {
        let mut ready = Vec::new();
        for id in sealed {
            let Some(waiter_ids) = self.waiting_on.remove(id) else {
                continue;
            };
            for wid in waiter_ids {
                let done = match self.waiters.get_mut(&wid) {
                    Some(w) => {
                        w.pending.remove(id);
                        w.pending.is_empty()
                    }
                    None => false,
                };
                if done {
                    if let Some(c) = self.finish_waiter(wid) {
                        ready.push(c);
                    }
                }
            }
        }
        ready
    }

    /// Creates, fills and seals objects in one step (CreateAndSeal and its batch form); no
    /// reference is left. On failure the objects already created by this call are aborted.
    pub fn create_and_seal(
        &mut self,
        client: ClientId,
        objects: &[InlineObject<'_>],
        evict_if_full: bool,
    ) -> Result<Vec<Completion>, CreateError> {
        let mut done: Vec<ObjectId> = Vec::new();
        for InlineObject {
            id, data, metadata, ..
        } in objects
        {
            match self.create(
                client,
                *id,
                data.len() as u64,
                metadata.len() as u64,
                evict_if_full,
            ) {
                Ok(loc) => {
                    if let Some(p) = loc.arena.ptr(loc.offset, loc.data_size + loc.metadata_size) {
                        // SAFETY: the range was just allocated for this object and lies within
                        // the mapping; no client knows the object yet.
                        unsafe {
                            std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
                            std::ptr::copy_nonoverlapping(
                                metadata.as_ptr(),
                                p.add(data.len()),
                                metadata.len(),
                            );
                        }
                    }
                    done.push(*id);
                }
                Err(e) => {
                    for id in done {
                        let _ = self.abort(client, id);
                    }
                    return Err(e);
                }
            }
        }
        let mut infos = Vec::with_capacity(objects.len());
        for InlineObject { id, digest, .. } in objects {
            if let Some(entry) = self.objects.get_mut(id) {
                entry.digest = Some(*digest);
                entry.construct_duration = 0;
                infos.push(entry.info(*id));
            }
            if let Some(record) = self.clients.get_mut(&client) {
                record.creating.remove(id);
            }
        }
        self.notify(&infos);
        let ids: Vec<ObjectId> = objects.iter().map(|o| o.id).collect();
        let ready = self.wake_waiters(&ids);
        for id in &ids {
            let _ = self.release(client, *id);
        }
        Ok(ready)
    }

    /// Frees an unsealed object created by this client.
    pub fn abort(&mut self, client: ClientId, id: ObjectId) -> Result<(), MisuseError> {
        let entry = self.objects.get(&id).ok_or(MisuseError::NotFound)?;
        if entry.digest.is_some() {
            return Err(MisuseError::Sealed);
        }
        if entry.creator != client {
            return Err(MisuseError::NotCreator);
        }
        debug!(object = %id, "aborted");
        self.free_object(id, false);
        Ok(())
    }

    /// Drops this client's reference (all of them for a socket client; one for the in-process
    /// handle). At zero references a sealed object joins the LRU, or is deleted if a delete
    /// was scheduled.
    pub fn release(&mut self, client: ClientId, id: ObjectId) -> Result<(), MisuseError> {
        let entry = self.objects.get_mut(&id).ok_or(MisuseError::NotHeld)?;
        let count = entry.holders.get_mut(&client).ok_or(MisuseError::NotHeld)?;
        *count -= 1;
        if *count > 0 {
            return Ok(());
        }
        entry.holders.remove(&client);
        if let Some(record) = self.clients.get_mut(&client) {
            record.held.remove(&id);
        }
        self.after_unref(id);
        Ok(())
    }

    fn after_unref(&mut self, id: ObjectId) {
        let Some(entry) = self.objects.get_mut(&id) else {
            return;
        };
        if !entry.holders.is_empty() || entry.digest.is_none() {
            return;
        }
        if entry.delete_pending {
            self.free_object(id, true);
        } else {
            let seq = self.next_lru_seq;
            self.next_lru_seq += 1;
            entry.lru_seq = Some(seq);
            self.lru.insert(seq, id);
        }
    }

    fn add_ref(&mut self, client: ClientId, id: ObjectId) {
        let Some(entry) = self.objects.get_mut(&id) else {
            return;
        };
        let count = entry.holders.entry(client).or_insert(0);
        if client == EMBEDDED_CLIENT || *count == 0 {
            *count += 1;
        }
        if let Some(seq) = entry.lru_seq.take() {
            self.lru.remove(&seq);
        }
        self.clients.entry(client).or_default().held.insert(id);
    }

    /// The sealed objects among `ids` (one entry per ID), taking a reference on each.
    fn collect(&mut self, client: ClientId, ids: &[ObjectId]) -> Vec<Option<ObjectLocation>> {
        ids.iter()
            .map(|id| {
                let loc = self
                    .objects
                    .get(id)
                    .filter(|e| e.digest.is_some())
                    .map(|e| e.location())?;
                self.add_ref(client, *id);
                Some(loc)
            })
            .collect()
    }

    /// Answers a Get now if every distinct ID is sealed (or the deadline is `Now`), else
    /// registers a waiter that completes when they are all sealed or at the deadline.
    pub fn get(
        &mut self,
        client: ClientId,
        ids: Vec<ObjectId>,
        deadline: GetDeadline,
        sink: GetSink,
    ) -> GetOutcome {
        let pending: HashSet<ObjectId> = ids
            .iter()
            .filter(|id| !self.contains(id))
            .copied()
            .collect();
        if pending.is_empty() || deadline == GetDeadline::Now {
            let results = self.collect(client, &ids);
            return GetOutcome::Ready(Completion { sink, results });
        }
        let wid = self.next_waiter;
        self.next_waiter += 1;
        for id in &pending {
            self.waiting_on.entry(*id).or_default().push(wid);
        }
        let deadline = match deadline {
            GetDeadline::At(t) => Some(t),
            _ => None,
        };
        if let Some(t) = deadline {
            self.deadlines.insert((t, wid));
        }
        self.clients.entry(client).or_default().waiters.insert(wid);
        self.waiters.insert(
            wid,
            Waiter {
                client,
                ids,
                pending,
                deadline,
                sink,
            },
        );
        GetOutcome::Waiting(wid)
    }

    fn unregister_waiter(&mut self, wid: WaiterId) -> Option<Waiter> {
        let w = self.waiters.remove(&wid)?;
        for id in &w.pending {
            if let Some(list) = self.waiting_on.get_mut(id) {
                list.retain(|&x| x != wid);
                if list.is_empty() {
                    self.waiting_on.remove(id);
                }
            }
        }
        if let Some(t) = w.deadline {
            self.deadlines.remove(&(t, wid));
        }
        if let Some(record) = self.clients.get_mut(&w.client) {
            record.waiters.remove(&wid);
        }
        Some(w)
    }

    fn finish_waiter(&mut self, wid: WaiterId) -> Option<Completion> {
        let w = self.unregister_waiter(wid)?;
        let results = self.collect(w.client, &w.ids);
        Some(Completion {
            sink: w.sink,
            results,
        })
    }

    /// Answers every pending Get now with what is sealed (the store is shutting down).
    pub fn finish_all_waiters(&mut self) -> Vec<Completion> {
        let ids: Vec<WaiterId> = self.waiters.keys().copied().collect();
        ids.into_iter()
            .filter_map(|wid| self.finish_waiter(wid))
            .collect()
    }

    /// Drops a waiter without answering it (its caller went away).
    pub fn cancel_waiter(&mut self, wid: WaiterId) {
        self.unregister_waiter(wid);
    }

    /// Completes the waiters whose deadline has passed; returns them and the next deadline.
    pub fn expire_waiters(&mut self, now: Instant) -> (Vec<Completion>, Option<Instant>) {
        let mut ready = Vec::new();
        while let Some(&(t, wid)) = self.deadlines.first() {
            if t > now {
                return (ready, Some(t));
            }
            if let Some(c) = self.finish_waiter(wid) {
                ready.push(c);
            } else {
                self.deadlines.remove(&(t, wid));
            }
        }
        (ready, None)
    }

    /// Whether a sealed object with this ID exists.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.objects.get(id).is_some_and(|e| e.digest.is_some())
    }

    /// Deletes now what is sealed and unreferenced; schedules the rest.
    pub fn delete(&mut self, ids: &[ObjectId]) -> Vec<DeleteStatus> {
        ids.iter()
            .map(|id| {
                let Some(entry) = self.objects.get_mut(id) else {
                    return DeleteStatus::NotFound;
                };
                if entry.digest.is_none() {
                    entry.delete_pending = true;
                    DeleteStatus::NotSealed
                } else if !entry.holders.is_empty() {
                    entry.delete_pending = true;
                    DeleteStatus::InUse
                } else {
                    self.free_object(*id, true);
                    DeleteStatus::Deleted
                }
            })
            .collect()
    }

    /// Every object in the table, sealed and unsealed.
    pub fn list(&self) -> Vec<ObjectInfo> {
        self.objects.iter().map(|(id, e)| e.info(*id)).collect()
    }

    /// Evicts least-recently released objects until at least `num_bytes` are freed or the LRU
    /// is empty; returns the bytes freed (data + metadata).
    pub fn evict(&mut self, num_bytes: u64) -> u64 {
        let mut freed = 0;
        while freed < num_bytes {
            let Some((_, id)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.objects.get_mut(&id) {
                e.lru_seq = None;
                freed += e.size();
            }
            debug!(object = %id, "evicted");
            self.free_object(id, true);
        }
        freed
    }

    /// Moves the listed objects that are in the LRU to its most-recently-used end.
    pub fn refresh_lru(&mut self, ids: &[ObjectId]) {
        for id in ids {
            if let Some(e) = self.objects.get_mut(id) {
                if let Some(seq) = e.lru_seq {
                    self.lru.remove(&seq);
                    let new_seq = self.next_lru_seq;
                    self.next_lru_seq += 1;
                    e.lru_seq = Some(new_seq);
                    self.lru.insert(new_seq, *id);
                }
            }
        }
    }

    /// Removes an object, returns its memory (punching the freed pages out of the arena) and,
    /// if it was sealed, tells subscribers.
    fn free_object(&mut self, id: ObjectId, announce: bool) {
        let Some(entry) = self.objects.remove(&id) else {
            return;
        };
        if let Some(seq) = entry.lru_seq {
            self.lru.remove(&seq);
        }
        for client in entry.holders.keys() {
            if let Some(record) = self.clients.get_mut(client) {
                record.held.remove(&id);
            }
        }
        if let Some(record) = self.clients.get_mut(&entry.creator) {
            record.creating.remove(&id);
        }
        self.allocated -= entry.size();
        let first_key = self.arenas.keys().next().copied();
        if let Some(slot) = self.arenas.get_mut(&entry.arena_key) {
            slot.alloc.free(entry.offset, entry.alloc_size);
            if slot.alloc.is_empty() && Some(entry.arena_key) != first_key {
                // Extra arenas go away when empty. Punch the whole file first: clients that
                // mapped it keep the file alive, but then only as an empty mapping.
                if let Err(e) = slot.arena.punch_hole(0, slot.arena.len()) {
                    warn!(error = %e, "cannot punch a hole in the arena");
                }
                self.arenas.remove(&entry.arena_key);
                debug!(key = entry.arena_key, "dropped empty arena");
            } else if !(self.limits.resident && Some(entry.arena_key) == first_key) {
                // Hand the object's pages back to the kernel a little later, if they are still
                // free then: memory freed and soon reused (the common create/delete cycle)
                // keeps its pages instead of being zero-filled again on every fault.
                self.pending_punches.push_back(PendingPunch {
                    due: Instant::now() + PUNCH_DELAY,
                    arena: entry.arena_key,
                    start: entry.offset / PAGE_SIZE * PAGE_SIZE,
                    end: (entry.offset + entry.alloc_size)
                        .div_ceil(PAGE_SIZE)
                        .saturating_mul(PAGE_SIZE),
                });
            }
        }
        if announce && entry.digest.is_some() {
            self.notify(&[ObjectInfo {
                id,
                data_size: 0,
                metadata_size: 0,
                ref_count: 0,
                create_time: 0,
                construct_duration: 0,
                digest: None,
                is_deletion: true,
            }]);
        }
    }

    /// Forgets a client: its pending Gets, references and unsealed objects, and its
    /// subscription.
    pub fn disconnect(&mut self, client: ClientId) {
        let Some(record) = self.clients.remove(&client) else {
            return;
        };
        for wid in record.waiters {
            self.unregister_waiter(wid);
        }
        for id in record.creating {
            if self.objects.get(&id).is_some_and(|e| e.digest.is_none()) {
                debug!(object = %id, "aborted: creator disconnected");
                self.free_object(id, false);
            }
        }
        for id in record.held {
            if let Some(e) = self.objects.get_mut(&id) {
                e.holders.remove(&client);
                self.after_unref(id);
            }
        }
        self.subscribers.remove(&client);
    }

    /// Adds a subscriber and sends it one notification per sealed object.
    pub fn subscribe(&mut self, client: ClientId, subscriber: Subscriber) {
        let mut subscriber = subscriber;
        let mut dead = false;
        for (id, e) in &self.objects {
            if e.digest.is_some() {
                let body = (self.encode_notification)(&[e.info(*id)]);
                if subscriber.push(&body) == FlushOutcome::Dead {
                    dead = true;
                    break;
                }
            }
        }
        if !dead {
            self.subscribers.insert(client, subscriber);
        }
    }

    fn notify(&mut self, infos: &[ObjectInfo]) {
        if self.subscribers.is_empty() || infos.is_empty() {
            return;
        }
        let body = (self.encode_notification)(infos);
        self.subscribers
            .retain(|_, s| s.push(&body) != FlushOutcome::Dead);
    }

    /// Retries queued notification bytes; returns whether some are still queued.
    pub fn flush_subscribers(&mut self) -> bool {
        self.subscribers
            .retain(|_, s| s.flush() != FlushOutcome::Dead);
        self.subscribers.values().any(|s| s.has_pending())
    }

    /// Punches out the freed page ranges that are due and still free; returns when the next
    /// one is due.
    pub fn punch_freed(&mut self, now: Instant) -> Option<Instant> {
        while let Some(p) = self.pending_punches.front() {
            if p.due > now {
                return Some(p.due);
            }
            let Some(p) = self.pending_punches.pop_front() else {
                break;
            };
            let Some(slot) = self.arenas.get(&p.arena) else {
                continue;
            };
            for (start, len) in slot.alloc.free_within(p.start, p.end) {
                if let Err(e) = slot.arena.punch_hole(start, len) {
                    warn!(error = %e, "cannot punch a hole in the arena");
                }
            }
        }
        None
    }

    /// Free text for GetDebugString.
    pub fn debug_string(&self) -> String {
        let sealed = self.objects.values().filter(|e| e.digest.is_some()).count();
        let mut s = format!(
            "plasma-stream embedded store\ncapacity: {}\nallocated: {}\nobjects: {} ({} sealed, {} unsealed)\nevictable (LRU): {}\nclients: {}\nwaiting gets: {}\nsubscribers: {}\narenas:\n",
            self.limits.capacity,
            self.allocated,
            self.objects.len(),
            sealed,
            self.objects.len() - sealed,
            self.lru.len(),
            self.clients.len().saturating_sub(1),
            self.waiters.len(),
            self.subscribers.len(),
        );
        for (key, slot) in &self.arenas {
            s.push_str(&format!(
                "  key {key}: {} bytes, {} free\n",
                slot.arena.len(),
                slot.alloc.free_bytes()
            ));
        }
        s
    }
}
