//! What the fuzz targets share: an allocation meter, and a model of a stateful message reader
//! over a byte stream that arrives in pieces (`stream`).
//!
//! The decoders themselves are pure functions of a buffer; the servers and clients call them
//! from a reader that buffers what the socket gave so far, decodes, advances by `used` and
//! keeps the rest for the next message. The `*_reader` targets drive that loop with the
//! stream cut at fuzzer-chosen points and check that the cuts change nothing.

pub mod meter;
pub mod stream;
