use crate::ObjectId;

/// Everything that can go wrong talking to (or being) a Plasma store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("object {0} already exists in the store")]
    ObjectExists(ObjectId),
    #[error("object {0} not found in the store")]
    ObjectNotFound(ObjectId),
    #[error("the store is out of memory (needed {needed} bytes)")]
    OutOfMemory { needed: u64 },
    #[error("I/O error talking to the Plasma store: {0}")]
    Io(#[from] std::io::Error),
}
