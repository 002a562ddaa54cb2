//! Reading whole messages from the receiving side of an exchange, for the side that *accepts*
//! exchanges (a server's request streams, a legacy connection) and for a reply that is the
//! last thing on its stream (a SYNC report).
//!
//! A [`MessageReader`] owns the receive half for the life of the stream (over TCP: many
//! exchanges in a row), keeps whatever bytes arrived past one message for the next, and drives
//! an incremental decoder (`Ok(None)` = read more) that this crate knows nothing about.
//!
//! On a server, what a reader may cost is bounded three ways, so that neither many streams nor
//! a slow sender can make it hold memory or a stream without end:
//! - **bytes**: every byte of buffer a reader holds is drawn from a [`ReadBudget`]: the
//!   connection's (at most [`PER_CONNECTION_BUDGET`]), which draws in turn on the server's, so
//!   the server's budget bounds all undecoded request bytes of all its streams together, with
//!   nothing beside it; one message may not pass [`MAX_BUFFERED_MESSAGE`];
//! - **idleness**: every wait for bytes ends after the idle timeout;
//! - **time per message**: a message must arrive whole within the idle timeout plus one second
//!   per [`MIN_REQUEST_RATE`] bytes received of it, counted from its first byte (a request
//!   trickled a byte at a time, each just within the idle timeout, is dropped).
//!
//! Not for a puller's replies on a TCP socket that goes back to a pool: reading ahead there
//! would take bytes of the next exchange (pullers read exactly what the protocol says comes
//! next, with [`RecvStream::read_chunk_within`](crate::RecvStream::read_chunk_within)).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
// tokio's clock, so tests with a paused clock see a message's deadline pass.
use tokio::time::Instant;

use crate::error::{explain_io_error, TransportError};

/// Most bytes one buffered message may take before the stream is dropped as abusive. The
/// largest legal SYNC (1,024 peer requests × 65,536 IDs, about 249 MB) fits; this bounds what
/// a hostile client can make a server hold without limiting real use.
pub const MAX_BUFFERED_MESSAGE: usize = 256 * 1024 * 1024;

/// Most undecoded bytes the streams of one connection may hold together: one largest legal
/// message, whatever the number of streams (a connection of 256 stalled streams holds no more
/// than one that sends a maximal SYNC).
pub const PER_CONNECTION_BUDGET: usize = MAX_BUFFERED_MESSAGE + 4 * READ_CHUNK;

/// The slowest a message may arrive once it started, beyond the idle timeout it always has:
/// 1 MiB/s gives a maximal SYNC 4 minutes more, and a 30-byte OBJECT request none.
pub const MIN_REQUEST_RATE: usize = 1024 * 1024;

/// The first read of a message: every message but a large SYNC fits in it, so a stream that
/// sent part of a request holds only this much of the budget.
const FIRST_READ: usize = 4 * 1024;

/// How much a reader asks the stream for at a time once a message is longer than
/// [`FIRST_READ`].
const READ_CHUNK: usize = 64 * 1024;

/// Budget permits are taken in multiples of this many bytes: one semaphore operation per read,
/// and a stream that sent a few bytes holds no more than [`FIRST_READ`] of the budget.
const BUDGET_STEP: usize = FIRST_READ;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// The bytes are not a valid message (the decoder's error).
    #[error("malformed message: {0}")]
    Decode(E),
    /// The stream ended in the middle of a message.
    #[error("the stream ended in the middle of a message")]
    Truncated,
    /// One message grew past [`MAX_BUFFERED_MESSAGE`].
    #[error("a message longer than {limit} bytes was refused")]
    MessageTooLong {
        /// The limit.
        limit: usize,
    },
    /// The connection's or the server's budget is spent on other unfinished requests.
    #[error("{holder} is holding {budget} bytes of unfinished requests already; try again later")]
    BudgetExhausted {
        /// That budget's size.
        budget: usize,
        /// Whose budget: "this connection" or "the server".
        holder: &'static str,
    },
    /// A message did not arrive whole in the time its size allows (see the module docs).
    #[error("a request arrived too slowly: {received} bytes in {elapsed:?}, not yet whole")]
    TooSlow {
        /// Bytes of it that had arrived.
        received: usize,
        /// Since its first byte.
        elapsed: Duration,
    },
    /// The stream failed underneath, or nothing arrived within the idle timeout.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A budget of undecoded message bytes shared by many readers. Cheap to clone. A server has
/// one, and each connection a smaller one that draws on it ([`ReadBudget::for_connection`]).
/// Without it, connections × streams × [`MAX_BUFFERED_MESSAGE`] could make a server hold tens
/// of GiB.
#[derive(Clone, Debug)]
pub struct ReadBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    holder: &'static str,
    /// The budget this one draws on as well (a connection's draws on the server's).
    parent: Option<Arc<ReadBudget>>,
}

impl ReadBudget {
    /// A server's budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
            holder: "the server",
            parent: None,
        }
    }

    /// A budget for one connection's streams: at most [`PER_CONNECTION_BUDGET`] bytes, each
    /// also drawn from this one.
    pub fn for_connection(&self) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(PER_CONNECTION_BUDGET)),
            total: PER_CONNECTION_BUDGET,
            holder: "this connection",
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Bytes not drawn at the moment (for tests and diagnostics).
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// A claim on the budget for one reader's buffer, empty to begin with.
    pub fn claim(&self) -> BudgetClaim {
        BudgetClaim {
            budget: self.clone(),
            held: Vec::new(),
        }
    }

    /// Takes `bytes` from this budget and every one it draws on, or none of them.
    fn take<E>(&self, bytes: usize) -> Result<Vec<OwnedSemaphorePermit>, ReadError<E>> {
        let exhausted = || ReadError::BudgetExhausted {
            budget: self.total,
            holder: self.holder,
        };
        let count = u32::try_from(bytes).map_err(|_| exhausted())?;
        let own = Arc::clone(&self.bytes)
            .try_acquire_many_owned(count)
            .map_err(|_| exhausted())?;
        // On a refusal from the parent, `own` is dropped here and goes back.
        let mut permits = match &self.parent {
            Some(parent) => parent.take(bytes)?,
            None => Vec::new(),
        };
        permits.push(own);
        Ok(permits)
    }
}

/// The part of a [`ReadBudget`] (and of what it draws on) that one reader's buffer holds;
/// returned when dropped or released.
#[derive(Debug)]
pub struct BudgetClaim {
    budget: ReadBudget,
    /// One permit per budget in the chain, each for the same number of bytes (empty: none).
    held: Vec<OwnedSemaphorePermit>,
}

impl BudgetClaim {
    /// Bytes this claim covers.
    fn covered(&self) -> usize {
        self.held.first().map_or(0, |p| p.num_permits())
    }

    /// Makes the claim cover a buffer of `buffered` bytes, or refuses without waiting: a
    /// server out of budget turns the stream away rather than hold more.
    pub fn cover<E>(&mut self, buffered: usize) -> Result<(), ReadError<E>> {
        let held = self.covered();
        if buffered <= held {
            return Ok(());
        }
        let more = (buffered - held).div_ceil(BUDGET_STEP) * BUDGET_STEP;
        let permits = self.budget.take(more)?;
        if self.held.is_empty() {
            self.held = permits;
        } else {
            // Same chain, same order: permit i of each take belongs to budget i.
            for (held, permit) in self.held.iter_mut().zip(permits) {
                held.merge(permit);
            }
        }
        Ok(())
    }

    /// Gives the whole claim back (the buffer it covered was freed).
    pub fn release(&mut self) {
        self.held.clear();
    }
}

/// Reads whole messages from `R` (a [`RecvStream`](crate::RecvStream) or a
/// [`LegacyStream`](crate::LegacyStream)).
#[derive(Debug)]
pub struct MessageReader<R> {
    recv: R,
    buffered: BytesMut,
    /// `None` for a reply this side asked for (a client's SYNC report): its size is bounded
    /// by `max_message` alone.
    claim: Option<BudgetClaim>,
    /// `None` when the wait is legitimately long (a SYNC report comes when the transfers end).
    idle_timeout: Option<Duration>,
    max_message: usize,
    /// When the first byte of the message being read arrived (`None` between messages).
    message_started: Option<Instant>,
}

impl MessageReader<crate::RecvStream> {
    /// Reads the raw bytes that follow the last message (an object's bytes after a PUT
    /// request) into `target`: first what was read ahead, then straight from the stream, each
    /// wait bounded by the idle timeout, handing each piece to `observe` once written. Returns
    /// how many bytes were written: fewer than `target.len()` only if the stream ended first
    /// or `observe` said stop. Nothing is buffered on the way (no budget is drawn).
    pub async fn read_raw(
        &mut self,
        target: &mut [u8],
        mut observe: impl FnMut(&[u8]) -> std::ops::ControlFlow<()>,
    ) -> crate::Result<usize> {
        let ahead = self.buffered.len().min(target.len());
        let (head, rest) = target.split_at_mut(ahead);
        if let Some(bytes) = self.buffered.get(..ahead) {
            head.copy_from_slice(bytes);
        }
        self.consumed(ahead);
        if ahead > 0 && observe(head).is_break() {
            return Ok(ahead);
        }
        // A reply reader has no idle timeout; a year stands for "as long as it takes".
        let idle = self
            .idle_timeout
            .unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let read = self.recv.read_into(rest, idle, observe).await?;
        Ok(ahead + read)
    }
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Wraps a receive half; every wait for bytes is bounded by `idle_timeout`, each message
    /// by the time its size allows, and its buffer is drawn from `budget`.
    pub fn new(recv: R, idle_timeout: Duration, budget: &ReadBudget) -> Self {
        Self {
            recv,
            buffered: BytesMut::new(),
            claim: Some(budget.claim()),
            idle_timeout: Some(idle_timeout),
            max_message: MAX_BUFFERED_MESSAGE,
            message_started: None,
        }
    }

    /// A reader for the reply to our own request, as long as the other side takes (no idle
    /// timeout) and at most `max_message` bytes long, outside any budget.
    pub fn for_reply(recv: R, max_message: usize) -> Self {
        Self {
            recv,
            buffered: BytesMut::new(),
            claim: None,
            idle_timeout: None,
            max_message,
            message_started: None,
        }
    }

    /// Decodes the next message with `decode`. `Ok(None)` when the stream ended cleanly
    /// *between* messages; an end inside a message is [`ReadError::Truncated`].
    pub async fn next<T, E>(
        &mut self,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<Option<T>, ReadError<E>> {
        loop {
            if !self.buffered.is_empty() {
                if let Some((message, used)) = decode(&self.buffered).map_err(ReadError::Decode)? {
                    self.consumed(used);
                    return Ok(Some(message));
                }
            }
            if self.buffered.len() >= self.max_message {
                return Err(ReadError::MessageTooLong {
                    limit: self.max_message,
                });
            }
            if self.fill().await? == 0 {
                return if self.buffered.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated)
                };
            }
        }
    }

    /// Like [`MessageReader::next`], but an end of stream is an error too.
    pub async fn expect<T, E>(
        &mut self,
        decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<T, ReadError<E>> {
        self.next(decode).await?.ok_or(ReadError::Truncated)
    }

    /// The bytes received but not yet consumed (e.g. a refused message, to read its header).
    pub fn buffered(&self) -> &[u8] {
        &self.buffered
    }

    /// The receive half back, with any bytes read past the last message (over TCP, a socket
    /// may serve the next exchange only if none were).
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.recv, self.buffered)
    }

    /// The first byte of the next message, without consuming it; `None` at a clean end.
    pub async fn peek_byte<E>(&mut self) -> Result<Option<u8>, ReadError<E>> {
        if self.buffered.is_empty() && self.fill().await? == 0 {
            return Ok(None);
        }
        Ok(self.buffered.first().copied())
    }

    /// A message of `used` bytes was decoded. What follows it is the start of the next one;
    /// when nothing follows, the buffer is freed and its budget returned, so a stream waiting
    /// for its next request holds neither.
    fn consumed(&mut self, used: usize) {
        self.buffered.advance(used);
        if self.buffered.is_empty() {
            self.buffered = BytesMut::new();
            self.message_started = None;
            if let Some(claim) = self.claim.as_mut() {
                claim.release();
            }
        } else {
            self.message_started = Some(Instant::now());
        }
    }

    /// Reads what the stream has, covering it by the budget first, within the idle timeout
    /// and the message's deadline; 0 at the end of the stream. A new message is read
    /// [`FIRST_READ`] bytes at a time until it is longer, so a stream that sent a few bytes
    /// holds only what they need.
    async fn fill<E>(&mut self) -> Result<usize, ReadError<E>> {
        let len = self.buffered.len();
        let want = if len < FIRST_READ {
            FIRST_READ - len
        } else {
            READ_CHUNK
        };
        // What the buffer holds once this read is done. (Growth beyond it is address space
        // that large buffers, mapped rather than on the heap, do not occupy until written.)
        if let Some(claim) = self.claim.as_mut() {
            claim.cover(len + want)?;
        }
        self.buffered.reserve(want);
        let mut room = (&mut self.buffered).limit(want);
        let read = self.recv.read_buf(&mut room);
        let read = match self.idle_timeout {
            Some(idle_timeout) => {
                let (wait, deadline_first) = match self.message_started {
                    Some(started) => {
                        let allowed = idle_timeout
                            + Duration::from_secs_f64(len as f64 / MIN_REQUEST_RATE as f64);
                        let left = allowed.saturating_sub(started.elapsed());
                        (left.min(idle_timeout), left <= idle_timeout)
                    }
                    None => (idle_timeout, false),
                };
                match tokio::time::timeout(wait, read).await {
                    Ok(read) => read,
                    Err(_) if deadline_first => {
                        return Err(ReadError::TooSlow {
                            received: len,
                            elapsed: self.message_started.map_or(wait, |s| s.elapsed()),
                        })
                    }
                    Err(_) => return Err(TransportError::Idle(idle_timeout).into()),
                }
            }
            None => read.await,
        };
        let read = read
            .map_err(|error| ReadError::Transport(TransportError::Io(explain_io_error(error))))?;
        if read > 0 && self.message_started.is_none() {
            self.message_started = Some(Instant::now());
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;
    type Claimed = Result<(), ReadError<()>>;

    fn refused_by(result: Claimed) -> Option<&'static str> {
        match result {
            Err(ReadError::BudgetExhausted { holder, .. }) => Some(holder),
            _ => None,
        }
    }

    #[test]
    fn every_buffered_byte_is_drawn_from_the_budget() {
        let budget = ReadBudget::new(0);
        let mut claim = budget.claim();
        assert_eq!(refused_by(claim.cover(1)), Some("the server"));
        let covered: Claimed = claim.cover(0);
        assert!(covered.is_ok());
    }

    #[test]
    fn readers_share_one_budget_and_give_it_back() {
        let budget = ReadBudget::new(8 * MIB);
        let mut first = budget.claim();
        let mut second = budget.claim();
        let covered: Claimed = first.cover(6 * MIB);
        assert!(covered.is_ok());
        assert_eq!(budget.available(), 2 * MIB);
        assert_eq!(refused_by(second.cover(3 * MIB)), Some("the server"));
        // The first reader's message was decoded and its buffer freed.
        first.release();
        let covered: Claimed = second.cover(3 * MIB);
        assert!(covered.is_ok(), "budget given back");
        drop(second);
        let covered: Claimed = first.cover(8 * MIB);
        assert!(covered.is_ok(), "all of it again");
    }

    #[test]
    fn a_claim_grows_with_its_buffer() {
        let budget = ReadBudget::new(4 * MIB);
        let mut claim = budget.claim();
        for step in 1..=4 {
            let covered: Claimed = claim.cover(step * MIB);
            assert!(covered.is_ok(), "grows within budget");
        }
        assert!(refused_by(claim.cover(4 * MIB + 1)).is_some());
        assert_eq!(budget.available(), 0);
        drop(claim);
        assert_eq!(budget.available(), 4 * MIB);
    }

    #[test]
    fn a_connections_budget_is_inside_the_servers() {
        let server = ReadBudget::new(8 * MIB);
        let one = server.for_connection();
        let other = server.for_connection();
        let mut first = one.claim();
        let covered: Claimed = first.cover(6 * MIB);
        assert!(covered.is_ok());
        assert_eq!(server.available(), 2 * MIB, "drawn from the server's too");
        // The other connection has room of its own, but the server has not.
        let mut second = other.claim();
        assert_eq!(refused_by(second.cover(3 * MIB)), Some("the server"));
        assert_eq!(
            other.available(),
            PER_CONNECTION_BUDGET,
            "a refusal takes nothing"
        );
        drop(first);
        assert_eq!(server.available(), 8 * MIB);
        assert_eq!(one.available(), PER_CONNECTION_BUDGET);
    }

    #[test]
    fn one_connection_holds_at_most_one_largest_message() {
        let server = ReadBudget::new(4 * PER_CONNECTION_BUDGET);
        let connection = server.for_connection();
        // Many streams of one connection, each with part of a large request.
        let mut claims: Vec<BudgetClaim> = (0..256).map(|_| connection.claim()).collect();
        let mut refused = None;
        for claim in &mut claims {
            if let Some(holder) = refused_by(claim.cover(2 * MIB)) {
                refused = Some(holder);
                break;
            }
        }
        assert_eq!(refused, Some("this connection"));
        let held = 4 * PER_CONNECTION_BUDGET - server.available();
        assert!(held <= PER_CONNECTION_BUDGET, "{held}");
        // Another connection is still served.
        let mut other = server.for_connection().claim();
        let covered: Claimed = other.cover(MAX_BUFFERED_MESSAGE);
        assert!(covered.is_ok());
    }

    /// Messages of one length byte then that many bytes, decoded from a stream delivered in
    /// pieces: every message comes out whole, and an end inside one is Truncated.
    #[tokio::test]
    async fn messages_are_read_whole_across_pieces() {
        fn decode(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ()> {
            let Some(&len) = buf.first() else {
                return Ok(None);
            };
            let len = usize::from(len);
            Ok(buf.get(1..1 + len).map(|body| (body.to_vec(), 1 + len)))
        }
        let (mut write, read) = tokio::io::duplex(3);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            write
                .write_all(&[2, b'h', b'i', 3, b'y', b'o', b'u', 4, b'x'])
                .await
        });
        let budget = ReadBudget::new(MIB);
        let mut reader = MessageReader::new(read, Duration::from_secs(5), &budget);
        assert_eq!(
            reader.next(decode).await.ok().flatten(),
            Some(b"hi".to_vec())
        );
        assert_eq!(
            reader.next(decode).await.ok().flatten(),
            Some(b"you".to_vec())
        );
        assert!(writer.await.is_ok());
        assert!(matches!(
            reader.next(decode).await,
            Err(ReadError::Truncated)
        ));
    }

    /// Messages of a 4-byte length then that many bytes.
    fn decode_u32_framed(buf: &[u8]) -> Result<Option<(usize, usize)>, ()> {
        let Some(header) = buf.get(..4) else {
            return Ok(None);
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(header);
        let len = u32::from_le_bytes(len) as usize;
        Ok((buf.len() >= 4 + len).then_some((len, 4 + len)))
    }

    /// Writes `message` in pieces of `piece` bytes, `every` apart, then keeps the stream open.
    fn trickle(
        message: Vec<u8>,
        piece: usize,
        every: Duration,
    ) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
        let (mut write, read) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in message.chunks(piece) {
                if write.write_all(part).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
            std::future::pending::<()>().await;
        });
        (read, writer)
    }

    fn framed(len: usize) -> Vec<u8> {
        let mut message = (len as u32).to_le_bytes().to_vec();
        message.resize(4 + len, 7);
        message
    }

    /// A request trickled a byte at a time, each well within the idle timeout, is dropped once
    /// its whole-message allowance has passed: the idle timeout alone never ends it.
    #[tokio::test(start_paused = true)]
    async fn a_trickled_request_is_dropped_at_its_deadline() {
        let idle = Duration::from_secs(3);
        let (read, writer) = trickle(framed(1000), 1, Duration::from_secs(1));
        let budget = ReadBudget::new(MIB);
        let mut reader = MessageReader::new(read, idle, &budget);
        let started = Instant::now();
        let result = reader.next(decode_u32_framed).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(result, Err(ReadError::TooSlow { received, .. }) if (2..10).contains(&received)),
            "{result:?}"
        );
        // The allowance is the idle timeout plus a second per MiB: ~3 s here.
        assert!(
            elapsed >= idle && elapsed < idle + Duration::from_secs(2),
            "{elapsed:?}"
        );
        writer.abort();
    }

    /// A large request gets more time than a small one: 3 MiB sent over ~2.3 s, beyond a 1 s
    /// idle timeout but within its 1 s + 3 s allowance, arrives whole; and its budget goes back
    /// once it was decoded.
    #[tokio::test(start_paused = true)]
    async fn a_large_request_has_time_in_proportion_to_its_size() {
        let idle = Duration::from_secs(1);
        let len = 3 * MIB;
        let (read, writer) = trickle(framed(len), 64 * 1024, Duration::from_millis(45));
        let budget = ReadBudget::new(8 * MIB);
        let mut reader = MessageReader::new(read, idle, &budget);
        let started = Instant::now();
        let result = reader.next(decode_u32_framed).await;
        assert!(matches!(result, Ok(Some(got)) if got == len), "{result:?}");
        assert!(started.elapsed() > 2 * idle, "{:?}", started.elapsed());
        assert_eq!(
            budget.available(),
            8 * MIB,
            "buffer freed and budget returned"
        );
        writer.abort();
    }

    /// Waiting for the *next* request is bounded by the idle timeout only, as before: a stream
    /// between messages holds no budget and has no message deadline.
    #[tokio::test(start_paused = true)]
    async fn between_messages_only_the_idle_timeout_counts() {
        let idle = Duration::from_secs(2);
        let (read, writer) = trickle(framed(10), 14, Duration::from_secs(60));
        let budget = ReadBudget::new(MIB);
        let mut reader = MessageReader::new(read, idle, &budget);
        let first = reader.next(decode_u32_framed).await;
        assert!(matches!(first, Ok(Some(10))), "{first:?}");
        assert_eq!(budget.available(), MIB);
        let started = Instant::now();
        let second = reader.next(decode_u32_framed).await;
        assert!(
            matches!(second, Err(ReadError::Transport(TransportError::Idle(_)))),
            "{second:?}"
        );
        assert!(started.elapsed() >= idle);
        writer.abort();
    }
}
