//! One cached connection per peer.
//!
//! The pool only caches: it does not dial (the caller passes the dial, e.g. the endpoint's
//! `connect`) and does not decide between QUIC and TCP.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::connection::Connection;
use crate::error::Result;

/// Caches one connection per peer address. A closed connection is replaced on the next
/// request; concurrent requests for the same peer share one dial (the slot is locked while
/// dialing), while different peers dial in parallel.
#[derive(Debug, Default)]
pub struct ConnectionPool {
    slots: Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<Option<Connection>>>>>,
}

impl ConnectionPool {
    /// The open cached connection to `peer`, or a new one from `connect` (then cached).
    pub async fn get_or_connect<F, Fut>(&self, peer: SocketAddr, connect: F) -> Result<Connection>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Connection>>,
    {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.entry(peer).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(connection) = cached.as_ref() {
            if connection.is_open() {
                return Ok(connection.clone());
            }
        }
        let connection = connect().await?;
        *cached = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets (and closes) the connection to `peer`, e.g. after it misbehaved.
    pub fn remove(&self, peer: SocketAddr) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&peer);
        if let Some(slot) = slot {
            if let Ok(cached) = slot.try_lock() {
                if let Some(connection) = cached.as_ref() {
                    connection.close();
                }
            }
        }
    }

    /// Stops handing out `connection` for `peer` (if it is still the cached one), without
    /// closing it: exchanges still running on it go on, and the next request dials anew. For
    /// a connection that may be dead (a stalled exchange, a peer that restarted and cannot
    /// tell us), where closing it would also end the exchanges that still work.
    pub fn forget(&self, peer: SocketAddr, connection: &Connection) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&peer)
            .cloned();
        if let Some(slot) = slot {
            if let Ok(mut cached) = slot.try_lock() {
                if cached.as_ref().is_some_and(|c| c.is_same(connection)) {
                    *cached = None;
                }
            }
        }
    }

    /// Stops handing out every cached connection, without closing any: after a trust reload,
    /// so that the next request to each peer dials anew and is judged by the new trust, while
    /// the transfers still running on the old connections finish.
    pub fn forget_all(&self) {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// Closes and forgets every cached connection.
    pub fn clear(&self) {
        let slots: Vec<_> = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        for slot in slots {
            if let Ok(cached) = slot.try_lock() {
                if let Some(connection) = cached.as_ref() {
                    connection.close();
                }
            }
        }
    }
}
