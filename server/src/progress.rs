//! What a SYNC has done so far, counted by the pullers as bytes arrive and read by whoever
//! reports it (the SYNC-with-events stream). Counting is a few relaxed atomic additions and,
//! per object state change, a short lock on a bounded queue: the transfer never waits for
//! the reader, whose slowness only makes it see fewer, coarser updates.
//!
//! It is also where a SYNC's pulls learn that its client cancelled it ([`SyncProgress::cancel`]):
//! every puller holds a tracker of it already, so no other handle has to reach them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use plasma_stream_protocol::events::{ObjectEvent, ObjectState, Progress, UNKNOWN_TOTAL};
use plasma_stream_protocol::ObjectId;

/// Object events kept for a reader that has not taken them; past this, new ones are dropped
/// (counted), since the final report carries every object's outcome anyway and a SYNC of
/// millions of objects must not queue millions of events for a slow client.
const MAX_QUEUED_EVENTS: usize = 16_384;

/// Counters of one peer request.
#[derive(Debug, Default)]
struct PeerCounters {
    bytes_done: AtomicU64,
    /// Sizes announced so far (metadata + data) of the objects that started.
    bytes_known: AtomicU64,
    /// Objects whose size is not known yet (not started, not finished).
    sizes_unknown: AtomicU32,
    objects_done: AtomicU32,
    objects_total: u32,
}

/// The progress of one SYNC. Cheap to update from many pullers at once.
#[derive(Debug)]
pub struct SyncProgress {
    peers: Vec<PeerCounters>,
    events: Mutex<VecDeque<ObjectEvent>>,
    dropped: AtomicU64,
    /// Whether anyone reads the events (a plain SYNC does not: nothing is queued then).
    watched: bool,
    /// Set once, when the client cancels the SYNC.
    cancelled: tokio::sync::watch::Sender<bool>,
}

impl SyncProgress {
    /// Progress for a SYNC whose peer requests have these object counts.
    pub fn new(objects_per_peer: impl IntoIterator<Item = usize>, watched: bool) -> Arc<Self> {
        let peers = objects_per_peer
            .into_iter()
            .map(|n| {
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                PeerCounters {
                    sizes_unknown: AtomicU32::new(n),
                    objects_total: n,
                    ..PeerCounters::default()
                }
            })
            .collect();
        Arc::new(SyncProgress {
            peers,
            events: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            watched,
            cancelled: tokio::sync::watch::Sender::new(false),
        })
    }

    /// The client cancelled the SYNC: every pull of it stops (aborting what is not sealed)
    /// and the objects not yet pulled are not started. `true` the first time.
    pub fn cancel(&self) -> bool {
        !self.cancelled.send_replace(true)
    }

    /// Whether the client cancelled the SYNC.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves once the client cancels the SYNC (at once if it already did).
    pub async fn cancelled(&self) {
        let mut watch = self.cancelled.subscribe();
        // The sender lives as long as `self`: the wait ends only by a cancel.
        let _ = watch.wait_for(|cancelled| *cancelled).await;
    }

    /// The tracker of one object of peer request `peer`.
    pub fn object(self: &Arc<Self>, peer: usize, id: ObjectId) -> ObjectTrack {
        ObjectTrack {
            progress: self.clone(),
            peer,
            id,
            arrived: 0,
            attempts: 0,
            size: None,
        }
    }

    fn counters(&self, peer: usize) -> Option<&PeerCounters> {
        self.peers.get(peer)
    }

    fn push(&self, event: ObjectEvent) {
        if !self.watched {
            return;
        }
        // A poisoned lock only means a panic elsewhere; the queue itself is still sound.
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() >= MAX_QUEUED_EVENTS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        events.push_back(event);
    }

    /// Takes every queued object event.
    pub fn take_events(&self) -> Vec<ObjectEvent> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.drain(..).collect()
    }

    /// Object events dropped because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A snapshot per peer request, then the whole SYNC's ([`WHOLE_SYNC`](plasma_stream_protocol::events::WHOLE_SYNC)).
    pub fn snapshot(&self) -> Vec<Progress> {
        let mut all = Progress {
            peer_request: plasma_stream_protocol::events::WHOLE_SYNC,
            bytes_done: 0,
            bytes_total: 0,
            objects_done: 0,
            objects_total: 0,
        };
        let mut out = Vec::with_capacity(self.peers.len() + 1);
        for (index, peer) in self.peers.iter().enumerate() {
            let known = peer.bytes_known.load(Ordering::Relaxed);
            let unknown = peer.sizes_unknown.load(Ordering::Relaxed);
            let total = if unknown == 0 { known } else { UNKNOWN_TOTAL };
            // A restarted object re-counts bytes it had already received: never show more done
            // than there is.
            let done = peer.bytes_done.load(Ordering::Relaxed).min(total);
            let p = Progress {
                peer_request: index as u32,
                bytes_done: done,
                bytes_total: total,
                objects_done: peer.objects_done.load(Ordering::Relaxed),
                objects_total: peer.objects_total,
            };
            all.bytes_done = all.bytes_done.saturating_add(p.bytes_done);
            all.bytes_total = if all.bytes_total == UNKNOWN_TOTAL || total == UNKNOWN_TOTAL {
                UNKNOWN_TOTAL
            } else {
                all.bytes_total.saturating_add(total)
            };
            all.objects_done = all.objects_done.saturating_add(p.objects_done);
            all.objects_total = all.objects_total.saturating_add(p.objects_total);
            out.push(p);
        }
        out.push(all);
        out
    }
}

/// One object's part of the progress, and what its report entry needs beyond the status: the
/// bytes that really arrived over all attempts, and the attempts made.
#[derive(Debug)]
pub struct ObjectTrack {
    progress: Arc<SyncProgress>,
    peer: usize,
    id: ObjectId,
    arrived: u64,
    attempts: u32,
    size: Option<u64>,
}

impl ObjectTrack {
    /// The SYNC this object belongs to (e.g. to watch for its cancel while the track is lent).
    pub fn sync(&self) -> Arc<SyncProgress> {
        self.progress.clone()
    }

    /// The object.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// An attempt begins.
    pub fn attempt(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Object bytes that arrived so far, over all attempts.
    pub fn arrived(&self) -> u64 {
        self.arrived
    }

    /// The holder announced the object (the first time only counts towards the total).
    pub fn started(&mut self, size: u64) {
        if self.size.is_some() {
            return;
        }
        self.size = Some(size);
        if let Some(counters) = self.progress.counters(self.peer) {
            counters.bytes_known.fetch_add(size, Ordering::Relaxed);
            counters.sizes_unknown.fetch_sub(1, Ordering::Relaxed);
        }
        self.event(ObjectState::Started);
    }

    /// `bytes` more object bytes arrived.
    pub fn received(&mut self, bytes: u64) {
        self.arrived = self.arrived.saturating_add(bytes);
        if let Some(counters) = self.progress.counters(self.peer) {
            counters.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// The object's final state (arrived, or failed: also for one decided without pulling).
    pub fn finished(&mut self, success: bool) {
        if let Some(counters) = self.progress.counters(self.peer) {
            if self.size.is_none() {
                // Its size will never be known: it no longer holds the total back.
                counters.sizes_unknown.fetch_sub(1, Ordering::Relaxed);
                self.size = Some(0);
            }
            counters.objects_done.fetch_add(1, Ordering::Relaxed);
        }
        self.event(if success {
            ObjectState::Arrived
        } else {
            ObjectState::Failed
        });
    }

    fn event(&self, state: ObjectState) {
        self.progress.push(ObjectEvent {
            peer_request: self.peer as u32,
            id: self.id,
            state,
            size: self.size.unwrap_or(0),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_known_once_every_size_is() {
        let progress = SyncProgress::new([2], true);
        let mut a = progress.object(0, ObjectId::from_bytes([1; 20]));
        let mut b = progress.object(0, ObjectId::from_bytes([2; 20]));
        a.started(100);
        a.received(40);
        assert_eq!(progress.snapshot()[0].bytes_total, UNKNOWN_TOTAL);
        b.finished(false);
        let now = progress.snapshot();
        assert_eq!((now[0].bytes_done, now[0].bytes_total), (40, 100));
        assert_eq!(now[1].bytes_total, 100, "the whole SYNC's");
        a.received(200); // restarted: never more done than the total
        a.finished(true);
        let now = progress.snapshot();
        assert_eq!((now[0].bytes_done, now[0].objects_done), (100, 2));
        let states: Vec<_> = progress.take_events().iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [
                ObjectState::Started,
                ObjectState::Failed,
                ObjectState::Arrived
            ]
        );
        assert_eq!(a.arrived(), 240);
    }
}
