//! The puller's half of an OBJECT exchange.

use bytes::BufMut;

use super::ExchangeError;
use crate::wire::{Ack, DataDigest, DeleteResult, DigestTrailer, ObjectHeader, ObjectRequest};
use crate::{ObjectId, Status, TransferKind};

/// The holder's answer to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The object follows: this body.
    Begin(Body),
    /// The holder will not send it (0x70, 0x71, 0x60, 0x50, 0x51, …).
    Refused(Status),
}

/// What a `Begin` header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    /// The object's whole data size.
    pub data_size: u64,
    /// Its metadata size (all of it follows).
    pub metadata_size: u64,
    /// The first data byte that follows: the requested resume offset, or 0 when the holder
    /// starts over.
    pub offset: u64,
}

impl Body {
    /// Data bytes that follow (from the offset to the end).
    pub fn data_len(&self) -> u64 {
        self.data_size.saturating_sub(self.offset)
    }

    /// Every body byte that follows: metadata, then data from the offset.
    pub fn len(&self) -> u64 {
        self.metadata_size.saturating_add(self.data_len())
    }

    /// Whether nothing follows the header.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the driver reads next. It never needs to read past this, so a TCP socket recycled
/// after the exchange starts exactly at the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRead {
    /// The holder's header: give [`ObjectPull::on_header`] the bytes as they come; a header
    /// is never longer than [`ObjectHeader::BEGIN_LEN`], and [`ObjectPull::header_len`] says
    /// how much of it to read without reading past it.
    Header,
    /// This many metadata bytes are still to come.
    Metadata(u64),
    /// This many data bytes are still to come.
    Data(u64),
    /// The digest trailer ([`DigestTrailer::ENCODED_LEN`] bytes).
    Trailer,
    /// The body is complete: acknowledge with [`ObjectPull::acknowledge`].
    Acknowledge,
    /// A TAKE was acknowledged: the holder's delete result comes next.
    DeleteResult,
    /// The exchange is over; nothing more comes on this stream.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Metadata { left: u64 },
    Data { left: u64 },
    Trailer,
    Acknowledge,
    DeleteResult,
    Done,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Header => "before the holder's header",
            State::Metadata { .. } => "while the metadata arrives",
            State::Data { .. } => "while the data arrives",
            State::Trailer => "before the digest trailer",
            State::Acknowledge => "once the body is complete",
            State::DeleteResult => "while waiting for the delete result",
            State::Done => "after the exchange ended",
        }
    }
}

/// The puller's side of one OBJECT exchange, sans I/O: what to send, what to read next, and
/// whether what arrived is allowed. See the [module docs](super) for the sequence.
#[derive(Debug, Clone)]
pub struct ObjectPull {
    request: ObjectRequest,
    /// The sizes of the object a resume holds part of.
    resuming: Option<(u64, u64)>,
    body: Option<Body>,
    state: State,
    received: u64,
    digest: Option<DataDigest>,
    holder_digest: Option<[u8; 8]>,
}

impl ObjectPull {
    /// Pulls a whole object, from data byte 0.
    pub fn new(kind: TransferKind, id: ObjectId) -> Self {
        Self::with_request(ObjectRequest::new(kind, id), None)
    }

    /// Pulls the rest of an object of which the puller already holds the first `offset` data
    /// bytes. The holder's object must still have these sizes ([`ExchangeError::ObjectChanged`] otherwise). The holder may start over
    /// from 0 instead (its [`Body::offset`] says so): the puller then rewrites from 0.
    pub fn resume(
        kind: TransferKind,
        id: ObjectId,
        offset: u64,
        data_size: u64,
        metadata_size: u64,
    ) -> Self {
        let mut request = ObjectRequest::new(kind, id);
        request.resume_offset = offset.min(data_size);
        Self::with_request(request, Some((data_size, metadata_size)))
    }

    fn with_request(request: ObjectRequest, resuming: Option<(u64, u64)>) -> Self {
        ObjectPull {
            request,
            resuming,
            body: None,
            state: State::Header,
            received: 0,
            digest: None,
            holder_digest: None,
        }
    }

    /// Asks the holder for an XXH64 trailer of the data it sends, checked on arrival.
    pub fn with_digest_trailer(mut self) -> Self {
        self.request.digest_trailer = true;
        self.request.object_digest = false;
        self
    }

    /// Asks the holder for the Plasma digest of its whole object after the data
    /// ([`ObjectPull::holder_object_digest`]): what a resumed pull compares with the digest
    /// of everything it received, over all attempts.
    pub fn with_object_digest(mut self) -> Self {
        self.request.object_digest = true;
        self.request.digest_trailer = false;
        self
    }

    /// The holder's Plasma digest of its whole object, once its trailer arrived (only when
    /// asked for with [`ObjectPull::with_object_digest`]).
    pub fn holder_object_digest(&self) -> Option<[u8; 8]> {
        self.holder_digest
    }

    /// The request this exchange sends.
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

    /// The body the holder announced, once its header arrived.
    pub fn body(&self) -> Option<Body> {
        self.body
    }

    /// Body bytes received so far (metadata, then data from the offset).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// What to read next.
    pub fn next_read(&self) -> PullRead {
        match self.state {
            State::Header => PullRead::Header,
            State::Metadata { left } => PullRead::Metadata(left),
            State::Data { left } => PullRead::Data(left),
            State::Trailer => PullRead::Trailer,
            State::Acknowledge => PullRead::Acknowledge,
            State::DeleteResult => PullRead::DeleteResult,
            State::Done => PullRead::Done,
        }
    }

    /// Appends the request (the first message of the stream).
    pub fn encode_request<B: BufMut>(&self, out: &mut B) -> Result<(), ExchangeError> {
        Ok(self.request.encode(out)?)
    }

    /// How many bytes the header has in all, given its first `buffered` bytes: 1 until the
    /// status byte is known, [`ObjectHeader::BEGIN_LEN`] after a BEGIN byte.
    pub fn header_len(buffered: &[u8]) -> usize {
        match buffered.first() {
            Some(&byte) if byte == Status::Begin.code() => ObjectHeader::BEGIN_LEN,
            _ => 1,
        }
    }

    /// Takes the holder's header from `buf`: `Ok(None)` until it is all there; then the
    /// answer and the bytes it used. Refuses offsets we did not ask for and, on a resume,
    /// an object whose sizes changed.
    pub fn on_header(&mut self, buf: &[u8]) -> Result<Option<(Answer, usize)>, ExchangeError> {
        self.expect(State::Header, "the holder's header")?;
        let Some((header, used)) = ObjectHeader::decode(buf)? else {
            return Ok(None);
        };
        let (data_size, metadata_size, offset) = match header {
            ObjectHeader::Failed(status) => {
                self.state = State::Done;
                return Ok(Some((Answer::Refused(status), used)));
            }
            ObjectHeader::Begin {
                data_size,
                metadata_size,
                offset,
            } => (data_size, metadata_size, offset),
        };
        let asked = self.request.resume_offset;
        if offset != asked && offset != 0 {
            self.state = State::Done;
            return Err(ExchangeError::UnexpectedOffset {
                asked,
                answered: offset,
            });
        }
        if let Some((expected_data_size, expected_metadata_size)) = self.resuming {
            if (data_size, metadata_size) != (expected_data_size, expected_metadata_size) {
                self.state = State::Done;
                return Err(ExchangeError::ObjectChanged {
                    data_size,
                    metadata_size,
                    expected_data_size,
                    expected_metadata_size,
                });
            }
        }
        let body = Body {
            data_size,
            metadata_size,
            offset,
        };
        self.body = Some(body);
        if self.request.digest_trailer {
            self.digest = Some(DataDigest::new());
        }
        self.state = State::Metadata {
            left: metadata_size,
        };
        self.settle();
        Ok(Some((Answer::Begin(body), used)))
    }

    /// `len` metadata bytes arrived (the driver wrote them where they belong).
    pub fn on_metadata(&mut self, len: usize) -> Result<(), ExchangeError> {
        if len == 0 && self.body.is_some() {
            // Nothing moved: an empty part is no step, whatever part comes next.
            return Ok(());
        }
        let State::Metadata { left } = self.state else {
            return Err(self.out_of_order("metadata"));
        };
        let len = len as u64;
        if len > left {
            return Err(self.overrun());
        }
        self.state = State::Metadata { left: left - len };
        self.received += len;
        self.settle();
        Ok(())
    }

    /// This chunk of data arrived, in order (the driver wrote it where it belongs).
    pub fn on_data(&mut self, chunk: &[u8]) -> Result<(), ExchangeError> {
        if chunk.is_empty() && self.body.is_some() {
            // Nothing moved: an empty part is no step, whatever part comes next.
            return Ok(());
        }
        let State::Data { left } = self.state else {
            return Err(self.out_of_order("data"));
        };
        let len = chunk.len() as u64;
        if len > left {
            return Err(self.overrun());
        }
        if let Some(digest) = self.digest.as_mut() {
            digest.update(chunk);
        }
        self.state = State::Data { left: left - len };
        self.received += len;
        self.settle();
        Ok(())
    }

    /// Takes the digest trailer from `buf` and checks it against the data that arrived.
    pub fn on_trailer(&mut self, buf: &[u8]) -> Result<Option<usize>, ExchangeError> {
        self.expect(State::Trailer, "the digest trailer")?;
        let Some((trailer, used)) = DigestTrailer::decode(buf)? else {
            return Ok(None);
        };
        if self.request.object_digest {
            // The whole object's digest: the driver compares it with what it computed.
            self.holder_digest = Some(trailer.xxh64.to_le_bytes());
            self.state = State::Acknowledge;
            return Ok(Some(used));
        }
        let received = self.digest.as_ref().map_or(0, DataDigest::finish);
        if trailer.xxh64 != received {
            self.state = State::Done;
            return Err(ExchangeError::DigestMismatch {
                sent: trailer.xxh64,
                received,
            });
        }
        self.state = State::Acknowledge;
        Ok(Some(used))
    }

    /// What the end of the stream means now: always an error, since the holder ends the
    /// stream only after a refusal or its last message, both of which end the exchange.
    pub fn on_end(&mut self) -> ExchangeError {
        let error = match self.state {
            State::Metadata { .. } | State::Data { .. } => ExchangeError::ShortBody {
                expected: self.body.map_or(0, |b| b.len()),
                received: self.received,
            },
            State::Header => ExchangeError::Truncated {
                message: "holder's header",
            },
            State::Trailer => ExchangeError::Truncated {
                message: "digest trailer",
            },
            State::DeleteResult => ExchangeError::Truncated {
                message: "delete result",
            },
            State::Acknowledge | State::Done => self.out_of_order("an end of stream"),
        };
        self.state = State::Done;
        error
    }

    /// Appends the Ack: 0x41 once the object is sealed in the puller's store (the body must
    /// be complete), or why not (allowed at any point of the body: the puller gives up and
    /// the holder keeps its object).
    pub fn acknowledge<B: BufMut>(
        &mut self,
        status: Status,
        out: &mut B,
    ) -> Result<(), ExchangeError> {
        let allowed = match self.state {
            State::Acknowledge => true,
            State::Metadata { .. } | State::Data { .. } | State::Trailer => !status.is_success(),
            _ => false,
        };
        if !allowed {
            return Err(self.out_of_order(if status.is_success() {
                "a success acknowledgement"
            } else {
                "an acknowledgement"
            }));
        }
        Ack { status }.encode(out)?;
        self.state = if status.is_success() && self.request.kind == TransferKind::Take {
            State::DeleteResult
        } else {
            State::Done
        };
        Ok(())
    }

    /// Takes a TAKE's delete result from `buf`: the holder's status for its delete.
    pub fn on_delete_result(
        &mut self,
        buf: &[u8],
    ) -> Result<Option<(Status, usize)>, ExchangeError> {
        self.expect(State::DeleteResult, "a delete result")?;
        let Some((result, used)) = DeleteResult::decode(buf)? else {
            return Ok(None);
        };
        self.state = State::Done;
        Ok(Some((result.status, used)))
    }

    /// Whether the exchange is over.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Moves past body parts that are complete (or empty).
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
                State::Acknowledge
            };
        }
    }

    fn expect(&mut self, state: State, step: &'static str) -> Result<(), ExchangeError> {
        if self.state == state {
            Ok(())
        } else {
            Err(self.out_of_order(step))
        }
    }

    fn out_of_order(&self, step: &'static str) -> ExchangeError {
        ExchangeError::OutOfOrder {
            step,
            state: self.state.name(),
        }
    }

    fn overrun(&mut self) -> ExchangeError {
        self.state = State::Done;
        ExchangeError::Overrun {
            expected: self.body.map_or(0, |b| b.len()),
        }
    }
}
