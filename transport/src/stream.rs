//! The two halves of one exchange: over QUIC a bidirectional stream, over TCP a TLS socket.
//!
//! Both implement tokio's `AsyncRead` / `AsyncWrite`; the chunk methods are the fast path
//! (over QUIC, `write_chunk` hands a `Bytes` to quinn without copying and `read_chunk` returns
//! quinn's own buffers).

use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::error::{explain_io_error, Result, TransportError};

/// A TLS session over TCP, client or server side. The TCP socket is read through a buffer
/// ([`buffered_tcp`]): rustls asks the socket for at most about 4 KiB per read, so unbuffered a
/// GiB costs a quarter of a million `recvfrom` calls.
pub(crate) type TlsSocket = tokio_rustls::TlsStream<BufReader<TcpStream>>;

/// Bytes read from the kernel at once under rustls (one buffer per TLS-over-TCP socket).
const TCP_READ_BUFFER: usize = 64 * 1024;

/// Most encrypted bytes rustls queues before writing them to the socket (its default is
/// 64 KiB): fewer, larger `writev` calls for bulk data, a few hundred KiB per busy socket.
const TLS_SEND_BUFFER: usize = 256 * 1024;

/// Wraps a freshly connected or accepted TCP socket for rustls: reads go through a
/// [`TCP_READ_BUFFER`] buffer (writes pass straight through). The buffer only ever holds TLS
/// records, which rustls consumes in order, so nothing is read past the TLS session.
pub(crate) fn buffered_tcp(tcp: TcpStream) -> BufReader<TcpStream> {
    BufReader::with_capacity(TCP_READ_BUFFER, tcp)
}

/// Tunes a TLS session once its handshake is done (see [`TLS_SEND_BUFFER`]).
pub(crate) fn tune_tls(socket: &mut TlsSocket) {
    let limit = Some(TLS_SEND_BUFFER);
    match socket {
        tokio_rustls::TlsStream::Client(stream) => stream.get_mut().1.set_buffer_limit(limit),
        tokio_rustls::TlsStream::Server(stream) => stream.get_mut().1.set_buffer_limit(limit),
    }
}

/// Largest buffer `read_chunk` allocates over TCP in one call.
const TCP_CHUNK_LIMIT: usize = 256 * 1024;

/// Keeps whatever slot a TCP exchange socket occupies (an inbound connection permit on a
/// server, a busy-socket permit on a client) until both halves are gone.
#[derive(Debug)]
pub(crate) struct SocketGuard {
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
}

/// The sending half of an exchange.
#[derive(Debug)]
pub enum SendStream {
    /// A QUIC stream.
    Quic(quinn::SendStream),
    /// The write half of a TLS-over-TCP socket.
    Tcp(TcpSend),
}

/// The receiving half of an exchange.
#[derive(Debug)]
pub enum RecvStream {
    /// A QUIC stream.
    Quic(quinn::RecvStream),
    /// The read half of a TLS-over-TCP socket.
    Tcp(TcpRecv),
}

/// Write half of a TLS-over-TCP exchange socket.
pub struct TcpSend {
    pub(crate) half: WriteHalf<TlsSocket>,
    pub(crate) _guard: Arc<SocketGuard>,
}

/// Read half of a TLS-over-TCP exchange socket, with an idle timeout on reads.
pub struct TcpRecv {
    pub(crate) half: ReadHalf<TlsSocket>,
    pub(crate) _guard: Arc<SocketGuard>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    waiting: bool,
    buffer: BytesMut,
}

impl std::fmt::Debug for TcpSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TcpSend")
    }
}

impl std::fmt::Debug for TcpRecv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TcpRecv")
    }
}

/// Splits a TLS socket into the pair of halves one exchange uses.
pub(crate) fn tcp_pair(
    socket: TlsSocket,
    permit: Option<OwnedSemaphorePermit>,
    idle_timeout: Duration,
) -> (SendStream, RecvStream) {
    let guard = Arc::new(SocketGuard { _permit: permit });
    let (read, write) = tokio::io::split(socket);
    let send = SendStream::Tcp(TcpSend {
        half: write,
        _guard: guard.clone(),
    });
    let recv = RecvStream::Tcp(TcpRecv {
        half: read,
        _guard: guard,
        idle_timeout,
        idle: Box::pin(tokio::time::sleep(idle_timeout)),
        waiting: false,
        buffer: BytesMut::new(),
    });
    (send, recv)
}

/// Puts a socket back together from its halves, or gives them back if they are not a pair.
pub(crate) fn tcp_unsplit(send: TcpSend, recv: TcpRecv) -> Option<TlsSocket> {
    if recv.half.is_pair_of(&send.half) {
        Some(recv.half.unsplit(send.half))
    } else {
        None
    }
}

impl SendStream {
    /// Sends one chunk. Over QUIC the `Bytes` is handed to quinn as is (no copy: a chunk
    /// backed by shared memory goes straight into the send buffer); over TCP it is written and
    /// encrypted by rustls.
    pub async fn write_chunk(&mut self, chunk: Bytes) -> Result<()> {
        match self {
            SendStream::Quic(stream) => Ok(stream.write_chunk(chunk).await?),
            SendStream::Tcp(tcp) => {
                Ok(tcp.half.write_all(&chunk).await.map_err(explain_io_error)?)
            }
        }
    }

    /// Writes a small encoded message (a copy, fine for a few bytes) and flushes it, so the
    /// peer can act on it (over TLS on TCP, bytes otherwise wait in the TLS buffer); all of it
    /// within `idle_timeout`.
    pub async fn write_message(&mut self, bytes: &[u8], idle_timeout: Duration) -> Result<()> {
        let write = async {
            self.write_all_bytes(bytes).await?;
            self.flush_all().await
        };
        within(idle_timeout, write).await
    }

    /// Writes bulk bytes without copying them (over QUIC the `Bytes`, which may be backed by
    /// a store's shared memory, goes to quinn as is), within `idle_timeout`.
    pub async fn write_bytes(&mut self, bytes: Bytes, idle_timeout: Duration) -> Result<()> {
        within(idle_timeout, self.write_chunk(bytes)).await
    }

    /// Like [`SendStream::write_bytes`], and tells `stalled(true)` when the write has not
    /// completed after `stall` (the peer is not taking bytes: the caller may let other
    /// streams go first meanwhile), then `stalled(false)` once it completes.
    pub async fn write_bytes_watching_stall(
        &mut self,
        bytes: Bytes,
        idle_timeout: Duration,
        stall: Duration,
        mut stalled: impl FnMut(bool),
    ) -> Result<()> {
        let write = self.write_bytes(bytes, idle_timeout);
        tokio::pin!(write);
        tokio::select! {
            written = &mut write => written,
            _ = tokio::time::sleep(stall) => {
                stalled(true);
                let written = write.await;
                stalled(false);
                written
            }
        }
    }

    /// Pushes buffered bytes out (TLS over TCP); a no-op for QUIC streams.
    pub async fn flush_all(&mut self) -> Result<()> {
        Ok(AsyncWriteExt::flush(self).await.map_err(explain_io_error)?)
    }

    /// Waits (at most `timeout`) until the peer has received everything written and
    /// [`finished`](SendStream::finish): over QUIC, until the peer acknowledged the stream's
    /// data, since closing the connection (at shutdown) would otherwise discard bytes still
    /// in flight; over TCP the flushed bytes are with the kernel, which delivers them.
    pub async fn wait_delivered(&mut self, timeout: Duration) {
        if let SendStream::Quic(stream) = self {
            let _ = tokio::time::timeout(timeout, stream.stopped()).await;
        }
    }

    /// Gives this stream precedence over every stream the peer opened after it on the same
    /// connection, so that objects requested in parallel complete in the order they were
    /// requested instead of all near the end (a lost packet on one stream still does not
    /// stall the others: lower-priority streams use what the earlier ones cannot send).
    /// Over TCP each exchange has its own socket, and this does nothing.
    pub fn prioritize_by_order(&self) {
        if let SendStream::Quic(stream) = self {
            // quinn sends higher priorities first; stream IDs grow in the order streams are
            // opened, so the earlier a stream, the higher its priority.
            let index = stream.id().index();
            let priority = -(i32::try_from(index).unwrap_or(i32::MAX));
            // Fails only when the stream is already closed, and then there is nothing to send.
            let _ = stream.set_priority(priority);
        }
    }

    /// The QUIC stream's index among the streams its opener opened (0, 1, 2, ... in opening
    /// order); `None` over TCP.
    pub fn quic_index(&self) -> Option<u64> {
        match self {
            SendStream::Quic(stream) => Some(stream.id().index()),
            SendStream::Tcp(_) => None,
        }
    }

    /// Writes all of `bytes` (a copy; prefer [`SendStream::write_chunk`] for bulk data).
    pub async fn write_all_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            SendStream::Quic(stream) => Ok(stream.write_all(bytes).await?),
            SendStream::Tcp(tcp) => {
                Ok(tcp.half.write_all(bytes).await.map_err(explain_io_error)?)
            }
        }
    }

    /// Ends this side of the exchange.
    ///
    /// Over QUIC the stream is finished: the peer reads end-of-stream after the last byte.
    /// Over TCP the socket carries further exchanges after this one (client sockets are
    /// recycled), so `finish` only **flushes**: the peer sees no end-of-stream, and message
    /// boundaries must come from the protocol's own lengths, as they do in `docs/protocol.md`.
    pub async fn finish(&mut self) -> Result<()> {
        match self {
            SendStream::Quic(stream) => stream.finish().map_err(|_| TransportError::Closed),
            SendStream::Tcp(tcp) => Ok(tcp.half.flush().await?),
        }
    }

    /// Abandons the exchange: over QUIC the stream is reset with `code` (the peer's reads fail);
    /// over TCP the socket is shut down, which the peer reads as end-of-stream.
    pub async fn reset(&mut self, code: u32) -> Result<()> {
        match self {
            SendStream::Quic(stream) => stream
                .reset(quinn::VarInt::from_u32(code))
                .map_err(|_| TransportError::Closed),
            SendStream::Tcp(tcp) => Ok(tcp.half.shutdown().await?),
        }
    }
}

impl RecvStream {
    /// Reads the next chunk of at most `max` bytes, in order; `None` at the end of the stream.
    /// Over QUIC this is quinn's own buffer (no copy); over TCP a fresh buffer.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        match self {
            RecvStream::Quic(stream) => {
                Ok(stream.read_chunk(max, true).await?.map(|chunk| chunk.bytes))
            }
            RecvStream::Tcp(tcp) => {
                let want = max.clamp(1, TCP_CHUNK_LIMIT);
                let mut buffer = std::mem::take(&mut tcp.buffer);
                buffer.reserve(want);
                let read = (&mut *tcp).take(want as u64).read_buf(&mut buffer).await;
                let chunk = buffer.split().freeze();
                tcp.buffer = buffer;
                match read? {
                    0 => Ok(None),
                    _ => Ok(Some(chunk)),
                }
            }
        }
    }
}

impl RecvStream {
    /// [`RecvStream::read_chunk`] bounded by `idle_timeout`.
    pub async fn read_chunk_within(
        &mut self,
        max: usize,
        idle_timeout: Duration,
    ) -> Result<Option<Bytes>> {
        within(idle_timeout, self.read_chunk(max)).await
    }

    /// After the last message of an exchange: over QUIC, reads the end of the stream (at most
    /// `timeout`), so the sender learns the whole stream was received (quinn's `stopped`
    /// resolves) instead of waiting for a timeout; over TCP, where an exchange ends without an
    /// end of stream (the socket serves the next one), does nothing. Returns whether anything
    /// other than the end came (a protocol error of the sender).
    pub async fn read_end_of_stream(&mut self, timeout: Duration) -> bool {
        match self {
            RecvStream::Quic(stream) => matches!(
                tokio::time::timeout(timeout, stream.read_chunk(1, true)).await,
                Ok(Ok(Some(_)))
            ),
            RecvStream::Tcp(_) => false,
        }
    }

    /// Reads up to `target.len()` bytes straight into `target` (e.g. an object being created
    /// in a store's shared memory), feeding each piece to `observe` once written, each wait
    /// bounded by `idle_timeout`. Returns how many bytes were written: fewer than
    /// `target.len()` only if the stream ended first or `observe` said stop (a caller that
    /// judged the bytes bad, or their pace too slow, need not wait for the rest).
    ///
    /// Over QUIC the bytes are copied out of quinn's own buffers (taking whole chunks keeps
    /// quinn from defragmenting); over TLS rustls decrypts straight into `target`. Either way
    /// this is the one copy, with no intermediate allocation.
    pub async fn read_into(
        &mut self,
        target: &mut [u8],
        idle_timeout: Duration,
        mut observe: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<usize> {
        /// Largest single read: bounds how long one read may take against the idle timeout.
        const READ_PIECE: usize = 4 * 1024 * 1024;
        let mut filled = 0;
        while filled < target.len() {
            let end = (filled + READ_PIECE).min(target.len());
            let Some(slot) = target.get_mut(filled..end) else {
                break;
            };
            let read = match self {
                RecvStream::Quic(stream) => {
                    let chunk = within(idle_timeout, async {
                        Ok(stream.read_chunk(slot.len(), true).await?)
                    })
                    .await?;
                    match chunk {
                        Some(chunk) => match slot.get_mut(..chunk.bytes.len()) {
                            Some(written) => {
                                written.copy_from_slice(&chunk.bytes);
                                chunk.bytes.len()
                            }
                            // quinn never returns more than asked for.
                            None => 0,
                        },
                        None => 0,
                    }
                }
                RecvStream::Tcp(tcp) => {
                    within(idle_timeout, async {
                        Ok(tcp.read(slot).await.map_err(explain_io_error)?)
                    })
                    .await?
                }
            };
            if read == 0 {
                break;
            }
            filled += read;
            if let Some(written) = slot.get(..read) {
                if observe(written).is_break() {
                    break;
                }
            }
        }
        Ok(filled)
    }
}

/// Runs `io`, failing with [`TransportError::Idle`] if it takes longer than `idle_timeout`.
async fn within<T>(idle_timeout: Duration, io: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(idle_timeout, io).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::Idle(idle_timeout)),
    }
}

impl TcpRecv {
    fn poll_read_with_idle(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.waiting {
            self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
            self.waiting = true;
        }
        let filled_before = buf.filled().len();
        match Pin::new(&mut self.half).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.waiting = false;
                match result {
                    // A peer that closes without TLS close_notify (a client that drops a socket
                    // between exchanges) reads as end-of-stream: the protocol's lengths detect
                    // truncation inside a message.
                    Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                        debug_assert_eq!(buf.filled().len(), filled_before);
                        Poll::Ready(Ok(()))
                    }
                    other => Poll::Ready(other.map_err(explain_io_error)),
                }
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.waiting = false;
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data for {:?} (idle timeout)", self.idle_timeout),
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for TcpRecv {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_read_with_idle(cx, buf)
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RecvStream::Quic(stream) => Pin::new(stream)
                .poll_read(cx, buf)
                .map_err(explain_io_error),
            RecvStream::Tcp(tcp) => tcp.poll_read_with_idle(cx, buf).map_err(explain_io_error),
        }
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SendStream::Quic(stream) => {
                AsyncWrite::poll_write(Pin::new(stream), cx, buf).map_err(explain_io_error)
            }
            SendStream::Tcp(tcp) => Pin::new(&mut tcp.half)
                .poll_write(cx, buf)
                .map_err(explain_io_error),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendStream::Quic(stream) => {
                AsyncWrite::poll_flush(Pin::new(stream), cx).map_err(explain_io_error)
            }
            SendStream::Tcp(tcp) => Pin::new(&mut tcp.half)
                .poll_flush(cx)
                .map_err(explain_io_error),
        }
    }

    /// Over QUIC, finishes the stream; over TCP, shuts the socket down (use
    /// [`SendStream::finish`] to end one exchange on a socket that will be recycled).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendStream::Quic(stream) => AsyncWrite::poll_shutdown(Pin::new(stream), cx),
            SendStream::Tcp(tcp) => Pin::new(&mut tcp.half).poll_shutdown(cx),
        }
    }
}
