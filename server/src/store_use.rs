//! The bytes in use in an external Plasma store, for `--metrics`.
//!
//! The embedded store keeps this count itself. A socket store (pyarrow's `plasma_store`) has
//! no question for it: the only way to learn it is a List of every object, whose cost grows
//! with the number of objects. A scrape must cost nothing, so a scrape never lists. Instead,
//! while `--metrics` is on, one task lists every [`REFRESH`] and keeps the last answer, and
//! a scrape reads that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plasma_store::ObjectStore;
use tracing::debug;

/// How often the store is listed. Prometheus scrapes every 15 s by default, so each scrape
/// sees a count at most this old.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Lists the store once now (so the first scrape has a count), then every `every` in a
/// background task that ends when the runtime does. Returns what a scrape reads: the bytes
/// in use at the last List that succeeded. A failed List keeps the last count and is
/// retried at the next tick: the store's own failure shows in every transfer anyway.
pub async fn sampled_by_listing<S: ObjectStore>(store: S, every: Duration) -> Arc<AtomicU64> {
    let used = Arc::new(AtomicU64::new(0));
    refresh(&store, &used).await;
    let task_used = used.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        // A List slower than the interval (a huge store) is followed by a pause, not by
        // another List at once.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once, and the List above was that one.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            refresh(&store, &task_used).await;
        }
    });
    used
}

async fn refresh<S: ObjectStore>(store: &S, used: &AtomicU64) {
    let capacity = match store.capacity().await {
        Ok(capacity) => capacity,
        Err(error) => {
            debug!(%error, "store capacity unknown: store use not refreshed");
            return;
        }
    };
    match store.free_space().await {
        Ok(free) => used.store(capacity.saturating_sub(free), Ordering::Relaxed),
        Err(error) => debug!(%error, "listing the store failed: store use not refreshed"),
    }
}
