//! Moving protocol messages over one exchange (a QUIC stream, or a TLS socket over TCP).
//!
//! Two reading styles, for two situations:
//! - [`MessageReader`] serves the side that *accepts* exchanges. It owns the receive half for
//!   the whole life of the stream (over TCP: many exchanges in a row), keeps whatever bytes
//!   arrived past one message for the next, and drives the protocol's incremental decoders
//!   (`Ok(None)` = read more).
//! - [`read_exact`] serves the puller, whose TCP socket goes back to a pool after each
//!   exchange: it never reads a byte past what the protocol says comes next, so a recycled
//!   socket starts exactly at the next exchange.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use plasma_stream_protocol::DecodeError;
use plasma_stream_transport::{RecvStream, SendStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ExchangeError;

/// Most bytes one buffered message may take before the stream is dropped as abusive. The
/// largest legal SYNC (1,024 peer requests × 65,536 IDs) is far larger than any real one;
/// this bounds what a hostile client can make the server hold without limiting real use.
pub const MAX_BUFFERED_MESSAGE: usize = 256 * 1024 * 1024;

/// Bytes of undecoded messages all streams of one server may hold together, beyond each
/// stream's free allowance. Without it, `-c` connections × streams × [`MAX_BUFFERED_MESSAGE`]
/// would let a few clients make the server hold tens of GiB.
pub const MESSAGE_BUDGET: usize = 512 * 1024 * 1024;

/// What one stream may buffer without drawing on the shared budget: every message but a large
/// SYNC fits in it, so ordinary exchanges never touch the semaphore.
const FREE_PER_STREAM: usize = 256 * 1024;

/// Budget permits are taken in steps of this many bytes (fewer semaphore operations).
const BUDGET_STEP: usize = 1024 * 1024;

/// The server-wide budget of buffered message bytes (see [`MESSAGE_BUDGET`]). Cheap to clone.
#[derive(Clone)]
pub struct MessageBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl MessageBudget {
    pub fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// A claim on the budget for one stream's buffer, empty to begin with.
    pub fn claim(&self) -> BudgetClaim {
        BudgetClaim {
            budget: self.clone(),
            held: None,
        }
    }
}

/// The part of the shared budget one stream's buffer holds; returned when dropped or reset.
pub struct BudgetClaim {
    budget: MessageBudget,
    held: Option<OwnedSemaphorePermit>,
}

impl BudgetClaim {
    /// Makes the claim cover a buffer of `buffered` bytes, or refuses without waiting: a
    /// server out of budget turns the stream away rather than hold more.
    pub fn cover(&mut self, buffered: usize) -> Result<(), ExchangeError> {
        let needed = buffered.saturating_sub(FREE_PER_STREAM);
        let held = self.held.as_ref().map_or(0, |p| p.num_permits());
        if needed <= held {
            return Ok(());
        }
        let more = (needed - held).div_ceil(BUDGET_STEP) * BUDGET_STEP;
        let exhausted = ExchangeError::BudgetExhausted {
            budget: self.budget.total,
        };
        let more = u32::try_from(more).map_err(|_| exhausted)?;
        let permit = Arc::clone(&self.budget.bytes)
            .try_acquire_many_owned(more)
            .map_err(|_| ExchangeError::BudgetExhausted {
                budget: self.budget.total,
            })?;
        match self.held.as_mut() {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Gives the claim back once the buffer is small again (a message was consumed).
    pub fn release_if_small(&mut self, buffered: usize) {
        if buffered <= FREE_PER_STREAM {
            self.held = None;
        }
    }
}

/// How much a [`MessageReader`] asks the transport for at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Reads whole protocol messages from the receive half of an accepted exchange.
pub struct MessageReader {
    recv: RecvStream,
    buffered: BytesMut,
    claim: BudgetClaim,
    idle_timeout: Duration,
}

impl MessageReader {
    /// Wraps a receive half; every wait for bytes is bounded by `idle_timeout`, and what it
    /// buffers beyond a small allowance is drawn from the server-wide `budget`.
    pub fn new(recv: RecvStream, idle_timeout: Duration, budget: &MessageBudget) -> Self {
        Self {
            recv,
            buffered: BytesMut::new(),
            claim: budget.claim(),
            idle_timeout,
        }
    }

    /// Decodes the next message with `decode`. `Ok(None)` when the peer ended the stream
    /// cleanly *between* messages; an end inside a message is [`ExchangeError::Truncated`].
    pub async fn next<T>(
        &mut self,
        decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>,
    ) -> Result<Option<T>, ExchangeError> {
        loop {
            if !self.buffered.is_empty() {
                if let Some((message, used)) = decode(&self.buffered)? {
                    self.buffered.advance(used);
                    self.claim.release_if_small(self.buffered.len());
                    return Ok(Some(message));
                }
            }
            if self.buffered.len() >= MAX_BUFFERED_MESSAGE {
                return Err(ExchangeError::MessageTooLong {
                    limit: MAX_BUFFERED_MESSAGE,
                });
            }
            match read_chunk(&mut self.recv, READ_CHUNK, self.idle_timeout).await? {
                Some(chunk) => {
                    self.claim.cover(self.buffered.len() + chunk.len())?;
                    self.buffered.extend_from_slice(&chunk)
                }
                None if self.buffered.is_empty() => return Ok(None),
                None => return Err(ExchangeError::Truncated),
            }
        }
    }

    /// Like [`MessageReader::next`], but an end of stream is an error too.
    pub async fn expect<T>(
        &mut self,
        decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>,
    ) -> Result<T, ExchangeError> {
        self.next(decode).await?.ok_or(ExchangeError::Truncated)
    }

    /// The bytes received but not yet consumed (e.g. a refused message, to read its header).
    pub fn buffered(&self) -> &[u8] {
        &self.buffered
    }

    /// The first byte of the next message, without consuming it; `None` at a clean end.
    pub async fn peek_byte(&mut self) -> Result<Option<u8>, ExchangeError> {
        if self.buffered.is_empty() {
            match read_chunk(&mut self.recv, READ_CHUNK, self.idle_timeout).await? {
                Some(chunk) => self.buffered.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
        Ok(self.buffered.first().copied())
    }
}

/// One chunk from the stream (at most `max` bytes), bounded by `idle_timeout`.
pub async fn read_chunk(
    recv: &mut RecvStream,
    max: usize,
    idle_timeout: Duration,
) -> Result<Option<Bytes>, ExchangeError> {
    match tokio::time::timeout(idle_timeout, recv.read_chunk(max)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ExchangeError::Timeout(idle_timeout)),
    }
}

/// Reads exactly `len` bytes (small messages: headers, acknowledgements), never more.
pub async fn read_exact(
    recv: &mut RecvStream,
    len: usize,
    idle_timeout: Duration,
) -> Result<Vec<u8>, ExchangeError> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        match read_chunk(recv, len - out.len(), idle_timeout).await? {
            Some(chunk) => out.extend_from_slice(&chunk),
            None => return Err(ExchangeError::Truncated),
        }
    }
    Ok(out)
}

/// Reads exactly `target.len()` bytes into `target`, feeding each piece to `observe` after it
/// is written (the receiver hashes data this way while writing it into the store).
///
/// Reads go straight into `target` (the created object's shared memory): over QUIC from
/// quinn's receive buffers, over TLS rustls decrypts into it; either way the one copy the
/// design allows, and no intermediate allocation of ours.
pub async fn read_into(
    recv: &mut RecvStream,
    target: &mut [u8],
    idle_timeout: Duration,
    mut observe: impl FnMut(&[u8]),
) -> Result<(), ExchangeError> {
    use tokio::io::AsyncReadExt;
    /// Largest single read: bounds how long one read may take against the idle timeout.
    const READ_PIECE: usize = 4 * 1024 * 1024;
    let mut filled = 0;
    while filled < target.len() {
        let end = (filled + READ_PIECE).min(target.len());
        let slot = target.get_mut(filled..end).ok_or(ExchangeError::Overrun)?;
        let read = match recv {
            // quinn hands out its own buffers: copying them into the object is the one copy,
            // and taking whole chunks keeps quinn's reassembly from defragmenting.
            RecvStream::Quic(_) => {
                let chunk = read_chunk(recv, slot.len(), idle_timeout)
                    .await?
                    .ok_or(ExchangeError::Truncated)?;
                let written = slot.get_mut(..chunk.len()).ok_or(ExchangeError::Overrun)?;
                written.copy_from_slice(&chunk);
                chunk.len()
            }
            // rustls decrypts straight into the object.
            RecvStream::Tcp(_) => match tokio::time::timeout(idle_timeout, recv.read(slot)).await {
                Ok(result) => result?,
                Err(_) => return Err(ExchangeError::Timeout(idle_timeout)),
            },
        };
        if read == 0 {
            return Err(ExchangeError::Truncated);
        }
        if let Some(written) = slot.get(..read) {
            observe(written);
        }
        filled += read;
    }
    Ok(())
}

/// Writes a small encoded message (a copy, which is fine for a few bytes) and flushes it, so
/// the peer can act on it (over TLS-on-TCP bytes otherwise wait in the TLS buffer).
pub async fn write_message(
    send: &mut SendStream,
    bytes: &[u8],
    idle_timeout: Duration,
) -> Result<(), ExchangeError> {
    let write = async {
        send.write_all_bytes(bytes).await?;
        flush(send).await
    };
    match tokio::time::timeout(idle_timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(ExchangeError::Timeout(idle_timeout)),
    }
}

/// Pushes buffered bytes out (TLS over TCP); a no-op for QUIC streams.
pub async fn flush(send: &mut SendStream) -> Result<(), ExchangeError> {
    Ok(tokio::io::AsyncWriteExt::flush(send).await?)
}

/// Writes bulk bytes without copying them (over QUIC, the `Bytes` goes to quinn as is).
pub async fn write_bytes(
    send: &mut SendStream,
    bytes: Bytes,
    idle_timeout: Duration,
) -> Result<(), ExchangeError> {
    match tokio::time::timeout(idle_timeout, send.write_chunk(bytes)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ExchangeError::Timeout(idle_timeout)),
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn small_buffers_never_touch_the_budget() {
        let budget = MessageBudget::new(0);
        let mut claim = budget.claim();
        assert!(claim.cover(FREE_PER_STREAM).is_ok());
    }

    #[test]
    fn streams_share_one_budget_and_give_it_back() {
        let budget = MessageBudget::new(8 * MIB);
        let mut first = budget.claim();
        let mut second = budget.claim();
        first
            .cover(FREE_PER_STREAM + 6 * MIB)
            .expect("within budget");
        let refused = second.cover(FREE_PER_STREAM + 3 * MIB);
        assert!(
            matches!(refused, Err(ExchangeError::BudgetExhausted { budget }) if budget == 8 * MIB),
            "{refused:?}"
        );
        // The first stream's message was decoded: its buffer is small again.
        first.release_if_small(10);
        second
            .cover(FREE_PER_STREAM + 3 * MIB)
            .expect("budget given back");
        drop(second);
        first
            .cover(FREE_PER_STREAM + 8 * MIB)
            .expect("all of it again");
    }

    #[test]
    fn a_claim_grows_with_its_buffer() {
        let budget = MessageBudget::new(4 * MIB);
        let mut claim = budget.claim();
        for step in 1..=4 {
            claim
                .cover(FREE_PER_STREAM + step * MIB)
                .expect("grows within budget");
        }
        assert!(claim.cover(FREE_PER_STREAM + 4 * MIB + 1).is_err());
    }
}
