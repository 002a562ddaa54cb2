//! A pure-Rust client for the Apache Arrow Plasma object store (Arrow 11's socket protocol),
//! and an embedded Plasma-compatible store.
//!
//! What this crate is for: reading and writing objects in a Plasma store from Rust without C++
//! or FFI, and running a store when none is installed. What it is not: anything about networks,
//! peers or TLS (that is the stream server's business).
//!
//! The protocol is written up in `shared/docs/plasma-protocol.md` (framing §1, messages §2–3,
//! shared memory and fd passing §4, semantics §5, store design §6).

pub mod client;
pub mod digest;
mod error;
mod object_id;
pub mod object_store;
pub mod pool;
pub mod store;
pub mod wire;

pub use client::{ConnectOptions, CreatedObject, PlasmaClient};
pub use error::Error;
pub use object_id::ObjectId;
pub use object_store::{DeleteOutcome, NewObject, ObjectStore, ObjectWriter, SealedObject};
pub use pool::StorePool;
