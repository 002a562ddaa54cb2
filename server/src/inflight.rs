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
        self.set.lock().remove(&self.id);
    }
}

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
}
