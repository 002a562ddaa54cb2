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

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use plasma_stream_protocol::DecodeError;
use plasma_stream_transport::{RecvStream, SendStream};

use crate::error::ExchangeError;

/// Most bytes one buffered message may take before the stream is dropped as abusive. The
/// largest legal SYNC (1,024 peer requests × 65,536 IDs) is far larger than any real one;
/// this bounds what a hostile client can make the server hold without limiting real use.
pub const MAX_BUFFERED_MESSAGE: usize = 256 * 1024 * 1024;

/// How much a [`MessageReader`] asks the transport for at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Reads whole protocol messages from the receive half of an accepted exchange.
pub struct MessageReader {
    recv: RecvStream,
    buffered: BytesMut,
    idle_timeout: Duration,
}

impl MessageReader {
    /// Wraps a receive half; every wait for bytes is bounded by `idle_timeout`.
    pub fn new(recv: RecvStream, idle_timeout: Duration) -> Self {
        Self {
            recv,
            buffered: BytesMut::new(),
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
                    return Ok(Some(message));
                }
            }
            if self.buffered.len() >= MAX_BUFFERED_MESSAGE {
                return Err(ExchangeError::MessageTooLong {
                    limit: MAX_BUFFERED_MESSAGE,
                });
            }
            match read_chunk(&mut self.recv, READ_CHUNK, self.idle_timeout).await? {
                Some(chunk) => self.buffered.extend_from_slice(&chunk),
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
