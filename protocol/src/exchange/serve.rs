//! The holder's half of an OBJECT exchange.

use bytes::BufMut;

use super::policy::{self, Lookup, WireFormat};
use super::pull::Body;
use super::ExchangeError;
use crate::wire::{Ack, DataDigest, DeleteResult, DigestTrailer, ObjectHeader, ObjectRequest};
use crate::{ObjectId, Status, TransferKind};

/// What the holder does with its object once the puller's Ack arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckVerdict {
    /// TAKE acknowledged with 0x41: delete it now, then send [`ObjectServe::delete_result`].
    Delete,
    /// Keep it: a COPY, or a TAKE the puller did not acknowledge with 0x41 (the status says
    /// what the puller reported).
    Keep(Status),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    CheckTaken,
    CheckObject,
    Metadata {
        left: u64,
    },
    Data {
        left: u64,
    },
    Trailer,
    AwaitingAck,
    /// The wait for the Ack ran out: the object is kept, and any Ack now is late.
    AckTimedOut,
    Deleting,
    Done,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::CheckTaken | State::CheckObject => "before the check-out",
            State::Metadata { .. } => "while the metadata is sent",
            State::Data { .. } => "while the data is sent",
            State::Trailer => "before the digest trailer",
            State::AwaitingAck => "while waiting for the acknowledgement",
            State::AckTimedOut => "after the acknowledgement timed out",
            State::Deleting => "while deleting",
            State::Done => "after the exchange ended",
        }
    }
}

/// The holder's side of one OBJECT exchange, sans I/O: the check-out policy, what to send,
/// and what the Ack allows. See the [module docs](super) for the sequence.
///
/// The one rule that matters most: [`AckVerdict::Delete`] comes only from a 0x41 Ack to a
/// TAKE, after the whole body was sent, while the holder was still waiting. No Ack, no
/// delete: a TAKE can leave a duplicate, never a loss.
#[derive(Debug, Clone)]
pub struct ObjectServe {
    request: ObjectRequest,
    body: Option<Body>,
    state: State,
    digest: Option<DataDigest>,
}

impl ObjectServe {
    /// Serves this request.
    pub fn new(request: ObjectRequest) -> Self {
        ObjectServe {
            request,
            body: None,
            state: State::CheckTaken,
            digest: None,
        }
    }

    /// The request being served.
    pub fn request(&self) -> &ObjectRequest {
        &self.request
    }

    /// The object.
    pub fn id(&self) -> ObjectId {
        self.request.id
    }

    /// COPY or TAKE.
    pub fn kind(&self) -> TransferKind {
        self.request.kind
    }

    /// The body being sent, once checked out.
    pub fn body(&self) -> Option<Body> {
        self.body
    }

    /// Check-out step 1 ([`policy::check_taken`]): `Err` is the status to refuse with.
    pub fn check_taken(&mut self, taken_elsewhere: bool) -> Result<(), Status> {
        if self.state != State::CheckTaken {
            return Err(Status::PeerRequestFailed);
        }
        policy::check_taken(taken_elsewhere).inspect_err(|_| self.state = State::Done)?;
        self.state = State::CheckObject;
        Ok(())
    }

    /// Check-out steps 2 and 3 ([`policy::check_lookup`], [`policy::check_sizes`]) and the
    /// resume offset (past the data: 0x62). `Ok` is the body to announce with
    /// [`ObjectServe::encode_header`]; `Err` the status to refuse with
    /// ([`ObjectServe::encode_refusal`]).
    pub fn check_object(&mut self, lookup: Lookup) -> Result<Body, Status> {
        if self.state != State::CheckObject {
            return Err(Status::PeerRequestFailed);
        }
        let checked = policy::check_lookup(lookup).and_then(|(data_size, metadata_size)| {
            policy::check_sizes(WireFormat::V1, data_size, metadata_size)?;
            if self.request.resume_offset > data_size {
                return Err(Status::PeerRequestFailed);
            }
            Ok(Body {
                data_size,
                metadata_size,
                offset: self.request.resume_offset,
            })
        });
        match checked {
            Ok(body) => {
                self.body = Some(body);
                Ok(body)
            }
            Err(status) => {
                self.state = State::Done;
                Err(status)
            }
        }
    }

    /// Appends the refusal header (the holder then finishes the stream).
    pub fn encode_refusal<B: BufMut>(status: Status, out: &mut B) -> Result<(), ExchangeError> {
        Ok(ObjectHeader::Failed(status).encode(out)?)
    }

    /// Appends the BEGIN header of the checked-out body; metadata, then data from the body's
    /// offset, follow.
    pub fn encode_header<B: BufMut>(&mut self, out: &mut B) -> Result<(), ExchangeError> {
        let (State::CheckObject, Some(body)) = (self.state, self.body) else {
            return Err(self.out_of_order("the header"));
        };
        ObjectHeader::Begin {
            data_size: body.data_size,
            metadata_size: body.metadata_size,
            offset: body.offset,
        }
        .encode(out)?;
        if self.request.digest_trailer {
            self.digest = Some(DataDigest::new());
        }
        self.state = State::Metadata {
            left: body.metadata_size,
        };
        self.settle();
        Ok(())
    }

    /// `len` metadata bytes went to the transport.
    pub fn on_metadata_sent(&mut self, len: usize) -> Result<(), ExchangeError> {
        if len == 0 && self.body.is_some() {
            // Nothing moved: an empty part is no step, whatever part comes next.
            return Ok(());
        }
        let State::Metadata { left } = self.state else {
            return Err(self.out_of_order("metadata"));
        };
        let left = left
            .checked_sub(len as u64)
            .ok_or_else(|| self.too_much())?;
        self.state = State::Metadata { left };
        self.settle();
        Ok(())
    }

    /// This piece of data went to the transport, in order.
    pub fn on_data_sent(&mut self, piece: &[u8]) -> Result<(), ExchangeError> {
        if piece.is_empty() && self.body.is_some() {
            // Nothing moved: an empty part is no step, whatever part comes next.
            return Ok(());
        }
        let State::Data { left } = self.state else {
            return Err(self.out_of_order("data"));
        };
        let left = left
            .checked_sub(piece.len() as u64)
            .ok_or_else(|| self.too_much())?;
        if let Some(digest) = self.digest.as_mut() {
            digest.update(piece);
        }
        self.state = State::Data { left };
        self.settle();
        Ok(())
    }

    /// Whether the request asked for a digest trailer and the data is all sent: append it
    /// with [`ObjectServe::encode_trailer`].
    pub fn wants_trailer(&self) -> bool {
        self.state == State::Trailer && self.request.digest_trailer
    }

    /// Whether the request asked for the whole object's digest and the data is all sent:
    /// append it with [`ObjectServe::encode_object_digest`].
    pub fn wants_object_digest(&self) -> bool {
        self.state == State::Trailer && self.request.object_digest
    }

    /// Appends the digest trailer of the data sent.
    pub fn encode_trailer<B: BufMut>(&mut self, out: &mut B) -> Result<(), ExchangeError> {
        let (State::Trailer, Some(digest)) = (self.state, self.digest.as_ref()) else {
            return Err(self.out_of_order("the digest trailer"));
        };
        digest.trailer().encode(out)?;
        self.state = State::AwaitingAck;
        Ok(())
    }

    /// Appends the Plasma digest of the whole object (the holder computes it from its store's
    /// bytes; the machine only places it).
    pub fn encode_object_digest<B: BufMut>(
        &mut self,
        digest: [u8; 8],
        out: &mut B,
    ) -> Result<(), ExchangeError> {
        if !self.wants_object_digest() {
            return Err(self.out_of_order("the object digest"));
        }
        DigestTrailer {
            xxh64: u64::from_le_bytes(digest),
        }
        .encode(out)?;
        self.state = State::AwaitingAck;
        Ok(())
    }

    /// Takes the puller's Ack from `buf` (`Ok(None)` until it is there) and says what to do.
    pub fn on_ack(&mut self, buf: &[u8]) -> Result<Option<(AckVerdict, usize)>, ExchangeError> {
        match self.state {
            State::AwaitingAck => {}
            State::AckTimedOut => return Err(ExchangeError::LateAck),
            _ => return Err(self.out_of_order("an acknowledgement")),
        }
        let Some((Ack { status }, used)) = Ack::decode(buf)? else {
            return Ok(None);
        };
        let verdict = if status.is_success() && self.request.kind == TransferKind::Take {
            self.state = State::Deleting;
            AckVerdict::Delete
        } else {
            self.state = State::Done;
            AckVerdict::Keep(status)
        };
        Ok(Some((verdict, used)))
    }

    /// The wait for the Ack ran out (the driver's clock): the object is kept, and an Ack that
    /// arrives later is refused as [`ExchangeError::LateAck`].
    pub fn on_ack_timeout(&mut self) -> AckVerdict {
        if self.state == State::AwaitingAck {
            self.state = State::AckTimedOut;
        }
        AckVerdict::Keep(Status::PeerConnectionFailed)
    }

    /// The stream ended (or failed) before the Ack: the object is kept.
    pub fn on_end(&mut self) -> AckVerdict {
        self.state = State::Done;
        AckVerdict::Keep(Status::PeerConnectionFailed)
    }

    /// Appends a TAKE's delete result (after [`AckVerdict::Delete`]): 0x41 deleted, or the
    /// store's failure (the object may then exist twice).
    pub fn delete_result<B: BufMut>(
        &mut self,
        status: Status,
        out: &mut B,
    ) -> Result<(), ExchangeError> {
        if self.state != State::Deleting {
            return Err(self.out_of_order("a delete result"));
        }
        DeleteResult { status }.encode(out)?;
        self.state = State::Done;
        Ok(())
    }

    fn settle(&mut self) {
        if self.state == (State::Metadata { left: 0 }) {
            self.state = State::Data {
                left: self.body.map_or(0, |b| b.data_len()),
            };
        }
        if self.state == (State::Data { left: 0 }) {
            self.state = if self.request.digest_trailer || self.request.object_digest {
                State::Trailer
            } else {
                State::AwaitingAck
            };
        }
    }

    fn out_of_order(&self, step: &'static str) -> ExchangeError {
        ExchangeError::OutOfOrder {
            step,
            state: self.state.name(),
        }
    }

    fn too_much(&self) -> ExchangeError {
        ExchangeError::Overrun {
            expected: self.body.map_or(0, |b| b.len()),
        }
    }
}
