//! Sets of object IDs that some exchange currently owns: the objects this server is
//! *receiving* (a second SYNC for one of them gets 0x80), and the objects a peer is *taking*
//! from this server (a second request for one of them gets 0x70).
//!
//! Membership is held by a [`Claim`]: dropping the claim, on success, failure or cancellation,
//! releases the ID, so a crashed or aborted exchange can never leave an ID stuck.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use plasma_stream_protocol::ObjectId;

/// A set of IDs claimed by exchanges in flight. Cheap to clone (shared).
#[derive(Clone, Default, Debug)]
pub struct InFlightIds {
    ids: Arc<Mutex<HashSet<ObjectId>>>,
}

impl InFlightIds {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<ObjectId>> {
        // The set is consistent after every operation, so a poisoned lock is still usable.
        self.ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `id`; `None` if another exchange holds it.
    pub fn claim(&self, id: ObjectId) -> Option<Claim> {
        if self.lock().insert(id) {
            Some(Claim {
                set: self.clone(),
                id,
            })
        } else {
            None
        }
    }

    /// Makes room for `additional` more claims at once, so a SYNC of millions of objects
    /// grows the set once instead of doubling it (a doubling holds the old and the new table).
    pub fn reserve(&self, additional: usize) {
        self.lock().reserve(additional);
    }

    /// Whether some exchange holds `id`.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.lock().contains(id)
    }

    /// How many IDs are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no ID is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ownership of one ID in an [`InFlightIds`] set; released on drop.
#[derive(Debug)]
pub struct Claim {
    set: InFlightIds,
    id: ObjectId,
}

impl Claim {
    pub fn id(&self) -> ObjectId {
        self.id
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut ids = self.set.lock();
        ids.remove(&self.id);
        // A hash set never shrinks by itself: after one SYNC of millions of objects it would
        // keep hundreds of MB for good. Shrinking when it is an eighth full costs O(len) once
        // per halving, so the amortised cost per claim stays constant.
        if ids.capacity() > SHRINK_ABOVE && ids.len() * 8 < ids.capacity() {
            let keep = ids.len() * 2;
            ids.shrink_to(keep);
        }
    }
}

/// Sets this small are left at their size (a few KiB).
const SHRINK_ABOVE: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_dropped() {
        let set = InFlightIds::new();
        let id = ObjectId::from_bytes([7; 20]);
        let first = set.claim(id).expect("first claim");
        assert!(set.claim(id).is_none());
        assert!(set.contains(&id));
        drop(first);
        assert!(set.is_empty());
        assert!(set.claim(id).is_some());
    }

    #[test]
    fn a_large_set_gives_its_memory_back_as_claims_end() {
        let set = InFlightIds::new();
        let claims: Vec<Claim> = (0..100_000u32)
            .filter_map(|n| {
                let mut bytes = [0u8; 20];
                bytes[..4].copy_from_slice(&n.to_le_bytes());
                set.claim(ObjectId::from_bytes(bytes))
            })
            .collect();
        assert_eq!(set.len(), 100_000);
        let grown = set.lock().capacity();
        assert!(grown >= 100_000);
        drop(claims);
        assert!(set.is_empty());
        let left = set.lock().capacity();
        assert!(left <= SHRINK_ABOVE * 2, "{grown} -> {left}");
    }
}
