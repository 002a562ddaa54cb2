//! The legacy TCP format read as a connection reads it: messages that arrive in pieces cut at
//! fuzzer-chosen points (see `plasma_stream_fuzz::stream` for the input layout and every
//! property checked: the cuts change nothing, `used` is in range, "read more" never comes with
//! a whole message buffered, allocations follow the bytes).
//!
//! `selector % 3` picks the reader:
//! - 0, the legacy server (`server/src/legacy.rs` `read_request`): `Request::decode_legacy`
//!   over and over on one connection. How the connection ends matters here: a clean end
//!   after a TAKE's reply deletes the objects, a truncated request or an error keeps them.
//! - 1, a client that sent a SYNC, reading `SyncReply`s (one per SYNC it sends on the
//!   connection). The reply has no length: its size is the peer-request count the client
//!   sent, `param + 1`, or with `selector` bit 7 `param * 5` (0 and past 1024 included, which
//!   the decoder must refuse whatever the bytes).
//! - 2, a client that sent a COPY/TAKE of `param` IDs: `TransferReply`; after BEGIN one
//!   `FrameHeader` and the body it announces per ID, then the next request's reply; after an
//!   error status the server closes the connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_stream_fuzz::stream::{check, Decoded, Input, Next, Script};
use plasma_stream_protocol::legacy::{FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::Request;

#[derive(Debug, Clone, PartialEq)]
enum Message {
    Request(Request),
    SyncReply(SyncReply),
    Transfer(TransferReply),
    Frame(FrameHeader),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Server: the next request.
    Request,
    /// Client: the reply to a SYNC of this many peer requests.
    SyncReply(usize),
    /// Client: the first byte of the reply to a COPY/TAKE.
    Transfer,
    /// Client: the header of an object frame, with this many frames still to come after it.
    Frame { after: usize },
    /// Client: an object frame's metadata and data, then `after` more frames.
    Body { len: u64, after: usize },
    /// Client: the server closed the connection after an error status.
    Closed,
}

#[derive(Debug, Clone)]
struct Legacy {
    state: State,
    /// IDs in the client's COPY/TAKE: frames after BEGIN.
    ids: usize,
}

fn map<T, M>(decoded: Decoded<T>, wrap: impl FnOnce(T) -> M) -> Decoded<M> {
    decoded.map(|found| found.map(|(message, used)| (wrap(message), used)))
}

impl Legacy {
    fn frames(&self, count: usize) -> State {
        match count.checked_sub(1) {
            Some(after) => State::Frame { after },
            // All frames read: the client's next request gets the next reply.
            None => State::Transfer,
        }
    }
}

impl Script for Legacy {
    type Message = Message;

    fn next(&self) -> Next {
        match self.state {
            State::Body { len, .. } => Next::Body(len),
            State::Closed => Next::Done,
            _ => Next::Message,
        }
    }

    fn decode(&self, buf: &[u8]) -> Decoded<Message> {
        match self.state {
            State::Request => map(Request::decode_legacy(buf), Message::Request),
            State::SyncReply(count) => map(SyncReply::decode(buf, count), Message::SyncReply),
            State::Transfer => map(TransferReply::decode(buf), Message::Transfer),
            State::Frame { .. } => map(FrameHeader::decode(buf), Message::Frame),
            State::Body { .. } | State::Closed => unreachable!("not decoded"),
        }
    }

    fn accept(&mut self, message: &Message) {
        self.state = match (self.state, message) {
            (State::Request, _) => State::Request,
            (State::SyncReply(count), _) => State::SyncReply(count),
            (_, Message::Transfer(TransferReply::Begin)) => self.frames(self.ids),
            (_, Message::Transfer(TransferReply::Failed(_))) => State::Closed,
            (State::Frame { after }, Message::Frame(header)) => State::Body {
                len: header.body_len(),
                after,
            },
            (state, message) => unreachable!("{message:?} decoded in state {state:?}"),
        };
    }

    fn body_done(&mut self) {
        if let State::Body { after, .. } = self.state {
            self.state = self.frames(after);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let param = usize::from(input.param);
    let state = match input.selector % 3 {
        0 => State::Request,
        1 if input.selector & 0x80 != 0 => State::SyncReply(param * 5),
        1 => State::SyncReply(param + 1),
        _ => State::Transfer,
    };
    let script = || Legacy { state, ids: param };
    check(script, &input);
});
