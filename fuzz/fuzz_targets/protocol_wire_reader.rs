//! The QUIC wire format read as the server and the pullers read it: a stream of messages that
//! arrives in pieces cut at fuzzer-chosen points (see `plasma_stream_fuzz::stream` for the
//! input layout and every property checked: the cuts change nothing, `used` is in range,
//! "read more" never comes with a whole message buffered, allocations follow the bytes).
//!
//! `selector % 3` picks the reader:
//! - 0, a server on a stream it accepted (`server/src/listener.rs` `serve_exchange`):
//!   `StreamRequest`, and after an OBJECT request the puller's `Ack`; a TCP stream carries a
//!   sequence of such exchanges, so the script repeats. A refused SYNC's answer (status and
//!   declared peer-request count, `refusal_report`) is compared too.
//! - 1, a puller on an OBJECT stream (`server/src/receiver.rs`, `client`): `ObjectHeader`,
//!   the body it announces, a `DigestTrailer` if `selector` bit 3 asked for one, a
//!   `DeleteResult` if bit 4 made it a TAKE; then the next exchange (a recycled TCP stream).
//! - 2, a client on a SYNC stream: `SyncReport`, repeated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_stream_fuzz::stream::{check, Decoded, Input, Next, Script};
use plasma_stream_protocol::wire::{
    Ack, DeleteResult, DigestTrailer, ObjectHeader, StreamRequest, SyncReport, SyncRequest,
};
use plasma_stream_protocol::{DecodeError, Status};

#[derive(Debug, Clone, PartialEq)]
enum Message {
    Request(StreamRequest),
    Ack(Ack),
    Header(ObjectHeader),
    Trailer(DigestTrailer),
    Deleted(DeleteResult),
    Report(SyncReport),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Server: the first message of the next exchange.
    Request,
    /// Server: the puller's acknowledgement of the object it was sent.
    Ack,
    /// Puller: the holder's header.
    Header,
    /// Puller: the metadata and data bytes the header announced.
    Body(u64),
    /// Server: the raw object bytes a PUT announced.
    PutBody(u64),
    /// Puller: the digest trailer it asked for.
    Trailer,
    /// Puller: a TAKE's delete result.
    Deleted,
    /// Client: the SYNC report.
    Report,
}

#[derive(Debug, Clone)]
struct Wire {
    state: State,
    trailer: bool,
    take: bool,
}

impl Wire {
    /// Where a puller goes after the object's bytes.
    fn after_body(&self) -> State {
        if self.trailer {
            State::Trailer
        } else {
            self.after_trailer()
        }
    }

    fn after_trailer(&self) -> State {
        if self.take {
            State::Deleted
        } else {
            State::Header
        }
    }
}

fn map<T, M>(decoded: Decoded<T>, wrap: impl FnOnce(T) -> M) -> Decoded<M> {
    decoded.map(|found| found.map(|(message, used)| (wrap(message), used)))
}

impl Script for Wire {
    type Message = Message;

    fn next(&self) -> Next {
        match self.state {
            State::Body(len) | State::PutBody(len) => Next::Body(len),
            _ => Next::Message,
        }
    }

    fn decode(&self, buf: &[u8]) -> Decoded<Message> {
        match self.state {
            State::Request => map(StreamRequest::decode(buf), Message::Request),
            State::Ack => map(Ack::decode(buf), Message::Ack),
            State::Header => map(ObjectHeader::decode(buf), Message::Header),
            State::Trailer => map(DigestTrailer::decode(buf), Message::Trailer),
            State::Deleted => map(DeleteResult::decode(buf), Message::Deleted),
            State::Report => map(SyncReport::decode(buf), Message::Report),
            State::Body(_) | State::PutBody(_) => unreachable!("bodies are not decoded"),
        }
    }

    fn accept(&mut self, message: &Message) {
        self.state = match message {
            Message::Request(StreamRequest::Object(_)) => State::Ack,
            // The server answers a SYNC with its report; the stream may then carry another
            // exchange.
            Message::Request(StreamRequest::Sync(_) | StreamRequest::SyncWithEvents(_) | StreamRequest::CancelSync) | Message::Ack(_) => State::Request,
            // LIST and STATS are answered whole; a PUT's object bytes follow it raw (read
            // into the store by the server, not decoded), after which the stream may carry
            // another exchange.
            Message::Request(StreamRequest::List(_) | StreamRequest::Stats) => State::Request,
            Message::Request(StreamRequest::Put(put)) => {
                State::PutBody(put.data_size.saturating_add(put.metadata_size))
            }
            Message::Header(header @ ObjectHeader::Begin { .. }) => State::Body(header.body_len()),
            Message::Header(ObjectHeader::Failed(_)) => State::Header,
            Message::Trailer(_) => self.after_trailer(),
            Message::Deleted(_) => State::Header,
            Message::Report(_) => State::Report,
        };
    }

    fn body_done(&mut self) {
        self.state = match self.state {
            State::PutBody(_) => State::Request,
            _ => self.after_body(),
        };
    }

    fn refusal(&self, error: &DecodeError, buffered: &[u8]) -> Option<(Status, u32)> {
        // What `refusal_report` in server/src/listener.rs builds its answer from.
        match self.state {
            State::Request | State::Ack => error
                .status()
                .zip(SyncRequest::declared_peer_request_count(buffered)),
            _ => None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let state = match input.selector % 3 {
        0 => State::Request,
        1 => State::Header,
        _ => State::Report,
    };
    let script = || Wire {
        state,
        trailer: input.selector & 0x08 != 0,
        take: input.selector & 0x10 != 0,
    };
    check(script, &input);
});
