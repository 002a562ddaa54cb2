//! Graceful shutdown as a value (mini-redis style): a [`Shutdown`] signal every handler can
//! watch, and a count of transfers in flight the main task can wait on.
//!
//! Phases: `Running` → `Draining` (SIGINT/SIGTERM: stop accepting, let transfers finish) →
//! `Aborting` (the drain deadline passed or a second signal came: every transfer stops; an
//! object being received is aborted in the store, never left unsealed).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Aborting,
}

/// The shutdown signal, cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    phase: watch::Sender<Phase>,
    in_flight: Arc<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Running),
            in_flight: Arc::default(),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Moves to `phase` (never backwards).
    pub fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|current| {
            if phase > *current {
                *current = phase;
                true
            } else {
                false
            }
        });
    }

    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut receiver = self.phase.subscribe();
        // `wait_for` only fails if the sender is gone, and we hold it.
        let _ = receiver.wait_for(|current| *current >= phase).await;
    }

    /// Marks a transfer as in flight until the guard drops.
    pub fn transfer(&self) -> TransferGuard {
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        TransferGuard {
            in_flight: self.in_flight.clone(),
        }
    }

    /// Transfers in flight now.
    pub fn transfers_in_flight(&self) -> usize {
        self.in_flight.count.load(Ordering::Acquire)
    }

    /// Resolves when no transfer is in flight.
    pub async fn all_transfers_done(&self) {
        loop {
            let notified = self.in_flight.idle.notified();
            if self.transfers_in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One transfer in flight; see [`Shutdown::transfer`].
#[derive(Debug)]
pub struct TransferGuard {
    in_flight: Arc<InFlight>,
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        if self.in_flight.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.in_flight.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_transfers_and_phases() {
        let shutdown = Shutdown::new();
        let guard = shutdown.transfer();
        assert_eq!(shutdown.transfers_in_flight(), 1);
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.all_transfers_done().await }
        });
        shutdown.enter(Phase::Draining);
        shutdown.enter(Phase::Running);
        assert_eq!(shutdown.phase(), Phase::Draining);
        shutdown.reached(Phase::Draining).await;
        drop(guard);
        waiter.await.unwrap();
    }
}
