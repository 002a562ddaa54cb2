//! Reading whole messages from the receiving side of an exchange, for the side that *accepts*
//! exchanges (a server's request streams, a legacy connection) and for a reply that is the
//! last thing on its stream (a SYNC report).
//!
//! A [`MessageReader`] owns the receive half for the life of the stream (over TCP: many
//! exchanges in a row), keeps whatever bytes arrived past one message for the next, and drives
//! an incremental decoder (`Ok(None)` = read more) that this crate knows nothing about. What it
//! buffers is bounded twice: by [`MAX_BUFFERED_MESSAGE`] for one message, and by a
//! [`ReadBudget`] that every reader of a server shares.
//!
//! Not for a puller's replies on a TCP socket that goes back to a pool: reading ahead there
//! would take bytes of the next exchange (pullers read exactly what the protocol says comes
//! next, with [`RecvStream::read_chunk_within`](crate::RecvStream::read_chunk_within)).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{explain_io_error, TransportError};

/// Most bytes one buffered message may take before the stream is dropped as abusive. The
/// largest legal SYNC (1,024 peer requests × 65,536 IDs) is far larger than any real one;
/// this bounds what a hostile client can make a server hold without limiting real use.
pub const MAX_BUFFERED_MESSAGE: usize = 256 * 1024 * 1024;

/// What one reader may buffer without drawing on the shared budget: every message but a large
/// SYNC fits in it, so ordinary exchanges never touch the semaphore.
const FREE_PER_READER: usize = 256 * 1024;

/// Budget permits are taken in steps of this many bytes (fewer semaphore operations).
const BUDGET_STEP: usize = 1024 * 1024;

/// How much a reader asks the stream for at a time.
const READ_CHUNK: usize = 64 * 1024;

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
    /// All readers together already hold as many undecoded bytes as the budget allows.
    #[error(
        "the server is holding {budget} bytes of unfinished requests already; try again later"
    )]
    BudgetExhausted {
        /// The whole budget.
        budget: usize,
    },
    /// The stream failed underneath, or nothing arrived within the idle timeout.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A budget of undecoded message bytes shared by many readers (one server's streams). Cheap
/// to clone. Without it, connections × streams × [`MAX_BUFFERED_MESSAGE`] could make a server
/// hold tens of GiB.
#[derive(Clone, Debug)]
pub struct ReadBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl ReadBudget {
    /// A budget of `total` bytes (beyond each reader's small free allowance).
    pub fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// A claim on the budget for one reader's buffer, empty to begin with.
    pub fn claim(&self) -> BudgetClaim {
        BudgetClaim {
            budget: self.clone(),
            held: None,
        }
    }
}

/// The part of a [`ReadBudget`] one reader's buffer holds; returned when dropped or reset.
#[derive(Debug)]
pub struct BudgetClaim {
    budget: ReadBudget,
    held: Option<OwnedSemaphorePermit>,
}

impl BudgetClaim {
    /// Makes the claim cover a buffer of `buffered` bytes, or refuses without waiting: a
    /// server out of budget turns the stream away rather than hold more.
    pub fn cover<E>(&mut self, buffered: usize) -> Result<(), ReadError<E>> {
        let needed = buffered.saturating_sub(FREE_PER_READER);
        let held = self.held.as_ref().map_or(0, |p| p.num_permits());
        if needed <= held {
            return Ok(());
        }
        let exhausted = || ReadError::BudgetExhausted {
            budget: self.budget.total,
        };
        let more = (needed - held).div_ceil(BUDGET_STEP) * BUDGET_STEP;
        let more = u32::try_from(more).map_err(|_| exhausted())?;
        let permit = Arc::clone(&self.budget.bytes)
            .try_acquire_many_owned(more)
            .map_err(|_| exhausted())?;
        match self.held.as_mut() {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Gives the claim back once the buffer is small again (a message was consumed).
    pub fn release_if_small(&mut self, buffered: usize) {
        if buffered <= FREE_PER_READER {
            self.held = None;
        }
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
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Wraps a receive half; every wait for bytes is bounded by `idle_timeout`, and what it
    /// buffers beyond a small allowance is drawn from `budget`.
    pub fn new(recv: R, idle_timeout: Duration, budget: &ReadBudget) -> Self {
        Self {
            recv,
            buffered: BytesMut::new(),
            claim: Some(budget.claim()),
            idle_timeout: Some(idle_timeout),
            max_message: MAX_BUFFERED_MESSAGE,
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
                    self.buffered.advance(used);
                    if let Some(claim) = self.claim.as_mut() {
                        claim.release_if_small(self.buffered.len());
                    }
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

    /// Reads what the stream has (at most [`READ_CHUNK`]), covering it by the budget first;
    /// 0 at the end of the stream.
    async fn fill<E>(&mut self) -> Result<usize, ReadError<E>> {
        self.buffered.reserve(READ_CHUNK);
        let room = self.buffered.capacity() - self.buffered.len();
        // Cover what this read may add before making it (read_buf fills up to the spare room).
        if let Some(claim) = self.claim.as_mut() {
            claim.cover(self.buffered.len() + room)?;
        }
        let read = self.recv.read_buf(&mut self.buffered);
        let read = match self.idle_timeout {
            Some(idle_timeout) => tokio::time::timeout(idle_timeout, read)
                .await
                .map_err(|_| TransportError::Idle(idle_timeout))?,
            None => read.await,
        };
        read.map_err(|error| ReadError::Transport(TransportError::Io(explain_io_error(error))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;
    type Claimed = Result<(), ReadError<()>>;

    #[test]
    fn small_buffers_never_touch_the_budget() {
        let budget = ReadBudget::new(0);
        let mut claim = budget.claim();
        let covered: Claimed = claim.cover(FREE_PER_READER);
        assert!(covered.is_ok());
    }

    #[test]
    fn readers_share_one_budget_and_give_it_back() {
        let budget = ReadBudget::new(8 * MIB);
        let mut first = budget.claim();
        let mut second = budget.claim();
        let covered: Claimed = first.cover(FREE_PER_READER + 6 * MIB);
        assert!(covered.is_ok());
        let refused: Claimed = second.cover(FREE_PER_READER + 3 * MIB);
        assert!(
            matches!(refused, Err(ReadError::BudgetExhausted { budget }) if budget == 8 * MIB),
            "{refused:?}"
        );
        // The first reader's message was decoded: its buffer is small again.
        first.release_if_small(10);
        let covered: Claimed = second.cover(FREE_PER_READER + 3 * MIB);
        assert!(covered.is_ok(), "budget given back");
        drop(second);
        let covered: Claimed = first.cover(FREE_PER_READER + 8 * MIB);
        assert!(covered.is_ok(), "all of it again");
    }

    #[test]
    fn a_claim_grows_with_its_buffer() {
        let budget = ReadBudget::new(4 * MIB);
        let mut claim = budget.claim();
        for step in 1..=4 {
            let covered: Claimed = claim.cover(FREE_PER_READER + step * MIB);
            assert!(covered.is_ok(), "grows within budget");
        }
        let refused: Claimed = claim.cover(FREE_PER_READER + 4 * MIB + 1);
        assert!(refused.is_err());
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
        let mut reader = MessageReader::new(read, Duration::from_secs(5), &ReadBudget::new(0));
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
}
