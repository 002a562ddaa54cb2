//! Moving protocol messages over one exchange, client side. Reads never go past the message
//! the protocol says comes next, so a TCP socket can be recycled for the next exchange.

use std::time::Duration;

use plasma_stream_protocol::DecodeError;
use plasma_stream_transport::{RecvStream, SendStream};

use crate::{Error, Result};

pub async fn write_message(send: &mut SendStream, bytes: &[u8]) -> Result<()> {
    send.write_all_bytes(bytes).await?;
    tokio::io::AsyncWriteExt::flush(send).await?;
    Ok(())
}

async fn read_some(
    recv: &mut RecvStream,
    max: usize,
    timeout: Option<Duration>,
) -> Result<Vec<u8>> {
    let read = recv.read_chunk(max);
    let chunk = match timeout {
        Some(timeout) => tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| Error::Timeout(timeout))??,
        None => read.await?,
    };
    chunk.map(|c| c.to_vec()).ok_or(Error::Truncated)
}

pub async fn read_exact(recv: &mut RecvStream, len: usize, timeout: Duration) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len.min(1 << 20));
    while out.len() < len {
        out.extend(read_some(recv, len - out.len(), Some(timeout)).await?);
    }
    Ok(out)
}

/// Reads one variable-length message (a SYNC report). It is the last thing the server sends
/// on the exchange before the client's next request, so reading ahead cannot steal bytes.
pub async fn read_message<T>(
    recv: &mut RecvStream,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>,
    timeout: Option<Duration>,
) -> Result<T> {
    let mut buffered = Vec::new();
    loop {
        if !buffered.is_empty() {
            if let Some((message, _)) = decode(&buffered)? {
                return Ok(message);
            }
        }
        buffered.extend(read_some(recv, 64 * 1024, timeout).await?);
    }
}
