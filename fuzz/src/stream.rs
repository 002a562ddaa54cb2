//! A model of the readers in `server` and `client`: bytes arrive in pieces, are appended to a
//! buffer, and after each piece the reader decodes what is buffered, advances by `used` and
//! keeps the rest for the next message (`server/src/framing.rs` `MessageReader::next`, the
//! legacy server's `read_request`). Which decoder reads the next message depends on the
//! messages before it: that is the [`Script`].
//!
//! [`check`] runs a script twice over the same stream: once with the whole stream buffered at
//! once (the reference), once cut into the fuzzer's pieces. The decoder contract
//! (`protocol/src/codec.rs`) says the cuts cannot matter, so it asserts:
//! - the same messages, with the same `used`, in the same order, and the same end: a clean
//!   end, a truncated message, the script's end, or the same error at the same stream offset
//!   (with the same refusal a server derives from it);
//! - `used` is never 0 (a reader would spin) nor past the buffer;
//! - `Ok(None)` ("read more") never comes back while the buffer already holds a message the
//!   reference decoded whole;
//! - a message decodes the same from exactly its own bytes as with more bytes after it;
//! - one decode call never holds more memory than a small multiple of the bytes it was given
//!   (see [`crate::meter`]): a claimed count or length must not size an allocation.

use std::fmt::Debug;

use plasma_stream_protocol::{DecodeError, Status};

use crate::meter::peak_during;

/// What every protocol decoder returns.
pub type Decoded<M> = Result<Option<(M, usize)>, DecodeError>;

/// What a reader reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A message, read with [`Script::decode`].
    Message,
    /// This many raw bytes (an object's metadata and data), not decoded.
    Body(u64),
    /// Nothing more: this reader stops reading the stream.
    Done,
}

/// The protocol state of one reader: which decoder reads the next message.
pub trait Script {
    /// Every message the reader can decode, as one type so both runs can be compared.
    type Message: Clone + PartialEq + Debug;

    /// What comes next.
    fn next(&self) -> Next;

    /// Decodes the next message (called only when [`Script::next`] is [`Next::Message`]).
    fn decode(&self, buf: &[u8]) -> Decoded<Self::Message>;

    /// Moves past a decoded message.
    fn accept(&mut self, message: &Self::Message);

    /// Moves past a body.
    fn body_done(&mut self);

    /// What the real reader answers a refused message with, worked out from the bytes buffered
    /// when the error came (the server refuses a well-formed SYNC with a report sized by the
    /// count its bytes declare). It must come out the same however the stream was cut.
    fn refusal(&self, _error: &DecodeError, _buffered: &[u8]) -> Option<(Status, u32)> {
        None
    }
}

/// One step of a reader's progress through the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<M> {
    /// A decoded message and the bytes it took.
    Message {
        /// The message.
        message: M,
        /// Bytes it took from the buffer.
        used: usize,
    },
    /// A body of this many bytes, skipped.
    Body(u64),
}

/// How a reader's run over a stream ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The stream ended between two messages with nothing buffered (a clean end of stream,
    /// which a legacy server takes as "the requester read everything": it deletes TAKEn
    /// objects).
    Clean,
    /// The script read all it reads; this many bytes followed.
    Done {
        /// Bytes after the last message.
        trailing: usize,
    },
    /// The stream ended inside the message or body that starts at this stream offset.
    Truncated {
        /// Where the unfinished message or body starts.
        at: usize,
    },
    /// The decoder refused the message that starts at this stream offset.
    Error {
        /// Where the refused message starts.
        at: usize,
        /// The decoder's error.
        error: DecodeError,
        /// What the reader answers it with ([`Script::refusal`]).
        refusal: Option<(Status, u32)>,
    },
}

/// Everything a run over a stream produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<M> {
    /// The steps, in stream order.
    pub events: Vec<Event<M>>,
    /// How it ended.
    pub end: End,
}

/// Bytes one decode call may hold at once, for a buffer of `len` bytes. Decoded messages take
/// more room than their wire form (a 32-byte peer request becomes a 64-byte `PeerRequest`
/// plus its ID list; the duplicate-ID check's hash set about doubles the IDs; a 5-byte empty
/// peer report becomes a 32-byte `PeerReport`), but by a constant factor; a capacity taken
/// from a count field instead is unbounded in `len` and shows up here at once.
pub fn allocation_allowed(len: usize) -> usize {
    16 * len + 4096
}

/// The reader: a buffer of what arrived and not yet consumed, and the script's state.
struct Reader<'r, S: Script> {
    script: S,
    buffered: Vec<u8>,
    /// Stream offset of `buffered[0]`.
    consumed: usize,
    /// The body being skipped: its length and the bytes of it still to come.
    body: Option<(u64, u64)>,
    events: Vec<Event<S::Message>>,
    error: Option<End>,
    /// The whole-stream run, when this is the cut run.
    reference: Option<&'r Outcome<S::Message>>,
}

impl<'r, S: Script> Reader<'r, S> {
    fn new(script: S, reference: Option<&'r Outcome<S::Message>>) -> Self {
        Reader {
            script,
            buffered: Vec::new(),
            consumed: 0,
            body: None,
            events: Vec::new(),
            error: None,
            reference,
        }
    }

    /// Records a step, failing at once (with both runs' context) if the reference took a
    /// different one here: a diverging message is easier to read than two whole outcomes.
    fn record(&mut self, event: Event<S::Message>) {
        if let Some(reference) = self.reference {
            let index = self.events.len();
            assert_eq!(
                reference.events.get(index),
                Some(&event),
                "step {index} at stream offset {} differs from the whole-stream decode \
                 (whole-stream steps: {:?}, end {:?})",
                self.consumed,
                reference.events,
                reference.end
            );
        }
        self.events.push(event);
    }

    fn consume(&mut self, len: usize) {
        self.buffered.drain(..len);
        self.consumed += len;
    }

    /// A piece arrived: buffer it and read every message it completes.
    fn feed(&mut self, piece: &[u8]) {
        self.buffered.extend_from_slice(piece);
        self.pump();
    }

    fn pump(&mut self) {
        while self.error.is_none() {
            match self.script.next() {
                Next::Done => return,
                Next::Body(len) => {
                    let (_, left) = self.body.get_or_insert((len, len));
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(self.buffered.len());
                    *left -= take as u64;
                    let finished = *left == 0;
                    self.consume(take);
                    if !finished {
                        return;
                    }
                    self.body = None;
                    self.record(Event::Body(len));
                    self.script.body_done();
                }
                Next::Message => {
                    // As the real readers: no decode of an empty buffer, read first.
                    if self.buffered.is_empty() {
                        return;
                    }
                    if !self.decode_one() {
                        return;
                    }
                }
            }
        }
    }

    /// Decodes one message from the buffer; false when it needs more bytes or failed.
    fn decode_one(&mut self) -> bool {
        let len = self.buffered.len();
        let (result, peak) = peak_during(|| self.script.decode(&self.buffered));
        assert!(
            peak <= allocation_allowed(len),
            "one decode call held {peak} bytes for a {len}-byte buffer (result {result:?})"
        );
        match result {
            Ok(Some((message, used))) => {
                assert!(
                    used > 0 && used <= len,
                    "decoded {message:?} using {used} bytes of a {len}-byte buffer"
                );
                assert_eq!(
                    self.script.decode(&self.buffered[..used]),
                    Ok(Some((message.clone(), used))),
                    "{message:?} decodes differently from exactly its own {used} bytes"
                );
                self.script.accept(&message);
                self.record(Event::Message { message, used });
                self.consume(used);
                true
            }
            Ok(None) => {
                if let Some(Event::Message { message, used }) = self
                    .reference
                    .and_then(|reference| reference.events.get(self.events.len()))
                {
                    assert!(
                        *used > len,
                        "asked for more bytes with {len} buffered, but the whole-stream \
                         decode read {message:?} from the first {used} of them"
                    );
                }
                false
            }
            Err(error) => {
                let refusal = self.script.refusal(&error, &self.buffered);
                self.error = Some(End::Error {
                    at: self.consumed,
                    error,
                    refusal,
                });
                false
            }
        }
    }

    /// The stream ended.
    fn finish(self) -> Outcome<S::Message> {
        let end = match self.error {
            Some(error) => error,
            None => match (self.script.next(), self.body) {
                (Next::Done, _) => End::Done {
                    trailing: self.buffered.len(),
                },
                (Next::Body(_), Some((len, left))) => End::Truncated {
                    at: self.consumed - (len - left) as usize,
                },
                (Next::Body(_), None) => End::Truncated { at: self.consumed },
                (Next::Message, _) if self.buffered.is_empty() => End::Clean,
                (Next::Message, _) => End::Truncated { at: self.consumed },
            },
        };
        Outcome {
            events: self.events,
            end,
        }
    }
}

/// A fuzzer input split into its parts: `[selector, param, k, k piece lengths..., stream...]`.
///
/// `selector` and `param` are the target's (which reader, what it asked for). Piece `i` is
/// `lengths[i % k] + 1` bytes (1..=256, cycled until the stream is used up); `k == 0` feeds
/// the stream one byte at a time, the hardest cut. Keeping the cuts ahead of the stream means
/// a mutation of the stream leaves the cuts alone, and the reverse.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Picks the reader (the target's meaning).
    pub selector: u8,
    /// A parameter of the reader (the target's meaning).
    pub param: u8,
    /// Piece lengths minus one, cycled.
    pub lengths: &'a [u8],
    /// The bytes the reader receives.
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits a fuzzer input; `None` if it is too short to have a header.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&[selector, param, k], rest) = data.split_first_chunk::<3>()?;
        let k = usize::from(k).min(rest.len());
        let (lengths, stream) = rest.split_at(k);
        Some(Input {
            selector,
            param,
            lengths,
            stream,
        })
    }

    /// The fuzzer input that [`Input::parse`] splits into these parts (for seeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        let k = u8::try_from(self.lengths.len()).expect("at most 255 piece lengths");
        let mut out = vec![self.selector, self.param, k];
        out.extend_from_slice(self.lengths);
        out.extend_from_slice(self.stream);
        out
    }

    /// The stream, cut into its pieces.
    pub fn pieces(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let lengths = self.lengths;
        let mut rest = self.stream;
        let mut index = 0;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let len = match lengths {
                [] => 1,
                _ => usize::from(lengths[index % lengths.len()]) + 1,
            };
            index += 1;
            let (piece, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            Some(piece)
        })
    }
}

/// Runs `script` (a fresh copy per run) over the input's stream whole, then cut into its
/// pieces, and asserts the contract in the module docs. Returns the whole-stream outcome.
pub fn check<S: Script>(make_script: impl Fn() -> S, input: &Input<'_>) -> Outcome<S::Message> {
    let mut whole = Reader::new(make_script(), None);
    whole.feed(input.stream);
    let reference = whole.finish();

    let mut cut = Reader::new(make_script(), Some(&reference));
    for piece in input.pieces() {
        cut.feed(piece);
        if cut.error.is_some() {
            // The real readers stop at the first error (reset the stream, close the
            // connection); what follows is never read.
            break;
        }
    }
    let outcome = cut.finish();
    assert_eq!(
        outcome,
        reference,
        "the stream cut into pieces ({} piece lengths {:?}) reads differently from the whole \
         stream",
        input.lengths.len(),
        input.lengths
    );
    reference
}
