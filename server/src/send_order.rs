//! Earlier-requested objects first, on one QUIC connection.
//!
//! A puller opens one stream per object and keeps many open at once (`--streams-per-peer`), so
//! a loss on one stream never stalls the others. If the holder let every stream write as fast
//! as quinn accepts, the streams would share the send window and every object would finish
//! near the end of the transfer: under loss, half the objects took ~70 % of the transfer time
//! (S4 in docs/benchmarks.md). Stream priorities alone do not fix it: while the earliest stream
//! is waiting for window space, the later ones take it.
//!
//! So the holder lets only a few *lanes* of large objects write at a time, in stream order
//! (the order the puller requested them), and gives earlier streams the higher quinn priority.
//! Every stream takes its place when it is accepted, in stream order, before its request is
//! read: a stream that registered only when ready to send could overtake an earlier one whose
//! store lookup took longer. Streams that carry no large object leave at once.
//! A lane whose write has made no progress for [`STALL`] (a puller that stopped reading, a
//! slow store at the other end) stops counting, so one stuck stream never holds the others
//! back for longer than that.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// Large objects of one connection writing at once. Two keep the send window full (one is
/// draining its last window while the next one starts) without sharing it more widely.
pub const LANES: usize = 2;

/// Objects smaller than this are not ordered: they fit in flight at once anyway.
pub const ORDERED_MIN: usize = 1 << 20;

/// A write that has waited this long without completing no longer holds a lane.
pub const STALL: Duration = Duration::from_millis(500);

/// The send order of one connection.
#[derive(Debug)]
pub struct SendOrder {
    /// Streams that want to write or are writing: stream index → counts toward the lanes.
    streams: Mutex<BTreeMap<u64, bool>>,
    changed: Notify,
    lanes: usize,
}

impl SendOrder {
    pub fn new(lanes: usize) -> Arc<Self> {
        Arc::new(SendOrder {
            streams: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            lanes: lanes.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, bool>> {
        // The map is consistent at every return point; a panic elsewhere cannot corrupt it.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the stream with this index as (possibly) wanting to send.
    pub fn enter(self: &Arc<Self>, index: u64) -> Ticket {
        self.lock().insert(index, true);
        Ticket {
            order: self.clone(),
            index,
        }
    }

    /// Counting streams ahead of `index`.
    fn ahead_of(&self, index: u64) -> usize {
        self.lock()
            .range(..index)
            .filter(|(_, counts)| **counts)
            .count()
    }
}

/// One stream's place in the order; leaving it (drop) lets the next stream go.
#[derive(Debug)]
pub struct Ticket {
    order: Arc<SendOrder>,
    index: u64,
}

impl Ticket {
    /// Waits until fewer than `lanes` counting streams opened earlier remain.
    pub async fn turn(&self) {
        loop {
            let changed = self.order.changed.notified();
            tokio::pin!(changed);
            // Register for the wake-up before checking, so a change in between is not missed.
            changed.as_mut().enable();
            if self.order.ahead_of(self.index) < self.order.lanes {
                return;
            }
            changed.await;
        }
    }

    /// Marks this stream as stalled (not counting toward the lanes) or progressing again.
    pub fn set_stalled(&self, stalled: bool) {
        if let Some(counts) = self.order.lock().get_mut(&self.index) {
            *counts = !stalled;
        }
        if stalled {
            self.order.changed.notify_waiters();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.order.lock().remove(&self.index);
        self.order.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `ticket.turn()` completes within a short wait.
    async fn goes(ticket: &Ticket) -> bool {
        tokio::time::timeout(Duration::from_millis(50), ticket.turn())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn earlier_streams_go_first_in_lanes() {
        let order = SendOrder::new(2);
        // Registered out of order, as spawned tasks may be.
        let t8 = order.enter(8);
        let t0 = order.enter(0);
        let t4 = order.enter(4);
        assert!(goes(&t0).await);
        assert!(goes(&t4).await);
        assert!(!goes(&t8).await, "two earlier streams hold both lanes");
        let waiter = tokio::spawn(async move {
            t8.turn().await;
            t8
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(t0);
        let t8 = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("a finished stream lets the next one go")
            .unwrap();
        drop(t8);
        drop(t4);
        assert_eq!(order.lock().len(), 0);
    }

    #[tokio::test]
    async fn a_stalled_stream_does_not_hold_its_lane() {
        let order = SendOrder::new(1);
        let t0 = order.enter(0);
        let t4 = order.enter(4);
        assert!(!goes(&t4).await);
        t0.set_stalled(true);
        assert!(goes(&t4).await);
        t0.set_stalled(false);
        assert!(!goes(&t4).await, "progressing again, it counts again");
    }
}
