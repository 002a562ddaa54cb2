//! What can go wrong in one OBJECT exchange, on either side, before any I/O error.

use crate::{DecodeError, EncodeError, Status};

/// A broken step of an OBJECT exchange. The exchange (one stream) is over; nothing else is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// Bytes that are not the message this step expects.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A message we built breaks a protocol rule (never sent half-written).
    #[error("cannot encode message: {0}")]
    Encode(#[from] EncodeError),
    /// The stream ended before the announced body was all there.
    #[error("the stream ended after {received} of {expected} body bytes")]
    ShortBody {
        /// Bytes announced by the header (metadata plus data from the offset).
        expected: u64,
        /// Bytes that arrived.
        received: u64,
    },
    /// The stream ended inside a message other than the body (a header, an Ack, a delete
    /// result).
    #[error("the stream ended inside the {message}")]
    Truncated {
        /// Which message.
        message: &'static str,
    },
    /// More body bytes than the header announced.
    #[error("the holder sent more than the {expected} body bytes it announced")]
    Overrun {
        /// Bytes announced by the header.
        expected: u64,
    },
    /// The holder answered with a data offset the request did not ask for (it may only
    /// honour the requested offset, or restart from 0).
    #[error("the holder answered with offset {answered}; we asked for {asked} (or 0)")]
    UnexpectedOffset {
        /// The requested resume offset.
        asked: u64,
        /// The header's offset.
        answered: u64,
    },
    /// A resumed object is not the one we hold part of: its sizes changed (deleted and
    /// re-created meanwhile). The puller starts over.
    #[error(
        "the holder's object changed: it has {data_size} + {metadata_size} bytes, \
         we hold part of {expected_data_size} + {expected_metadata_size}"
    )]
    ObjectChanged {
        /// The holder's data size now.
        data_size: u64,
        /// The holder's metadata size now.
        metadata_size: u64,
        /// The data size of what we hold part of.
        expected_data_size: u64,
        /// The metadata size of what we hold part of.
        expected_metadata_size: u64,
    },
    /// The digest trailer does not match the data that arrived.
    #[error("the data does not match the holder's digest ({sent:#018x} sent, {received:#018x} received)")]
    DigestMismatch {
        /// The trailer's digest.
        sent: u64,
        /// The digest of what arrived.
        received: u64,
    },
    /// The Ack came after the holder stopped waiting for it: the object was kept, and a late
    /// Ack changes nothing.
    #[error("acknowledgement arrived after the holder stopped waiting; the object was kept")]
    LateAck,
    /// A step taken out of order: e.g. a success Ack before the whole body arrived, or a
    /// delete result after a COPY.
    #[error("{step} is not allowed {state}")]
    OutOfOrder {
        /// What was attempted.
        step: &'static str,
        /// Where the exchange was.
        state: &'static str,
    },
}

impl ExchangeError {
    /// How a puller reports an exchange that broke this way: a peer that spoke nonsense is an
    /// internal failure of the peer request (0x62); an object that changed under a resume or
    /// failed its digest too (the puller retries it from 0, once).
    pub fn pull_status(&self) -> Status {
        match self {
            ExchangeError::ShortBody { .. }
            | ExchangeError::Truncated { .. }
            | ExchangeError::LateAck => Status::PeerConnectionFailed,
            _ => Status::PeerRequestFailed,
        }
    }
}
