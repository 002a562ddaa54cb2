//! A pure-Rust client for the Apache Arrow Plasma object store (Arrow 11's socket protocol),
//! and an embedded Plasma-compatible store.
//!
//! What this crate is for: reading and writing objects in a Plasma store from Rust without C++
//! or FFI, and running a store when none is installed. What it is not: anything about networks,
//! peers or TLS (that is the stream server's business).
//!
//! The protocol is written up in `docs/plasma.md` (framing §1, messages §2–3, shared memory
//! and fd passing §4, object lifecycle and digest §5, the embedded store §6).
//!
//! Map of the crate:
//! - [`wire`]: frames, fd passing and the FlatBuffers messages, shared by client and store.
//! - [`digest`]: the Plasma object digest that pyarrow's `client.hash()` reports.
//! - [`client`]: [`PlasmaClient`], a blocking connection to any Arrow 11 Plasma store.
//! - [`pool`]: [`StorePool`], a few client connections on their own threads behind the async
//!   [`ObjectStore`] trait (what the stream server uses).
//! - [`store`]: the embedded Plasma-compatible store.
//!
//! ```no_run
//! use std::time::Duration;
//! use plasma_store::{ObjectId, PlasmaClient};
//!
//! # fn main() -> Result<(), plasma_store::Error> {
//! let mut client = PlasmaClient::connect("/tmp/plasma")?;
//! let id = ObjectId([1; 20]);
//! let mut object = client.create(id, 5, 4)?;
//! object.data_mut().copy_from_slice(b"hello");
//! object.metadata_mut().copy_from_slice(b"meta");
//! client.seal(object)?; // digest computed here; pyarrow's client.hash() agrees
//! let got = client.get(&[id], Some(Duration::from_secs(1)))?;
//! if let Some(object) = &got[0] {
//!     assert_eq!(&object.data[..], b"hello"); // zero-copy view of the shared memory
//! }
//! # Ok(())
//! # }
//! ```

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
pub use object_store::{
    DeleteOutcome, NewObject, ObjectStore, ObjectWriter, SealedObject, StoredObject,
};
pub use pool::StorePool;
