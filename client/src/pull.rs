//! The puller's async loop: drives one [`ObjectPull`] over one exchange of a transport
//! [`Connection`]. Used by [`Client::pull`](crate::Client::pull) (into this process) and by
//! the server (into its store), so the puller's steps exist once.
//!
//! It only moves bytes: the state machine says what comes next and whether it is allowed.
//! Reads never go past what the machine says comes next, so a TCP socket recycled after the
//! exchange starts exactly at the next one.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use plasma_stream_protocol::exchange::{Answer, Body, ExchangeError, ObjectPull, PullRead};
use plasma_stream_protocol::wire::{DigestTrailer, ObjectHeader};
use plasma_stream_protocol::{ObjectId, Status, TransferKind};
use plasma_stream_transport::{Connection, RecvStream, SendStream, TransportError};

/// The window [`Pulling::read_data_prepared`] prepares at a time: large enough that one
/// mapping call replaces a thousand page faults, small enough to stay ahead of the bytes by
/// at most one window.
pub const DATA_WINDOW: usize = 4 * 1024 * 1024;

/// Least a pull must receive per idle timeout to count as progress (64 KiB per 30 s by
/// default, ~2 KB/s: far below any working link, far above a trickle meant to hold a stream).
pub const MIN_PROGRESS: u64 = 64 * 1024;

/// Progress measured over windows of one idle timeout: a holder that keeps a stream alive
/// with a byte now and then, each within the idle timeout, is stalled all the same. Pure: it is
/// told the time, so it is tested without clocks or sockets.
#[derive(Debug)]
struct ProgressWatch {
    window: Duration,
    started: Instant,
    bytes: u64,
}

impl ProgressWatch {
    fn new(window: Duration, now: Instant) -> Self {
        ProgressWatch {
            window,
            started: now,
            bytes: 0,
        }
    }

    /// `bytes` more arrived at `now`; an error once a whole window passed with fewer than
    /// [`MIN_PROGRESS`] bytes in it.
    fn on_bytes(&mut self, bytes: u64, now: Instant) -> Result<(), TransportError> {
        self.bytes += bytes;
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < self.window {
            return Ok(());
        }
        if self.bytes < MIN_PROGRESS {
            return Err(TransportError::TooSlow {
                bytes: self.bytes,
                within: elapsed,
            });
        }
        self.started = now;
        self.bytes = 0;
        Ok(())
    }
}

/// Why one pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// A step of the exchange was broken (by the holder, or out of order).
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The connection or stream failed, or stalled past the idle timeout.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl PullError {
    /// The documented status a puller reports for this failure: 0x90 when the connection
    /// failed or stalled, 0x62 when the holder broke the protocol.
    pub fn status(&self) -> Status {
        match self {
            PullError::Exchange(error) => error.pull_status(),
            PullError::Transport(_) => Status::PeerConnectionFailed,
        }
    }
}

/// How the holder answered.
#[derive(Debug)]
pub enum Started {
    /// The object is coming: read its body from this exchange.
    Begin(Box<Pulling>),
    /// The holder refused with this status (its code as the holder sent it); the exchange
    /// was recycled.
    Refused(Status),
}

/// Sends the request of `pull` on a new exchange of `connection` and reads the holder's
/// header; every wait is bounded by `idle_timeout`.
pub async fn start(
    connection: &Connection,
    mut pull: ObjectPull,
    idle_timeout: Duration,
) -> Result<Started, PullError> {
    let (mut send, mut recv) = tokio::time::timeout(idle_timeout, connection.open_bi())
        .await
        .map_err(|_| TransportError::Idle(idle_timeout))??;
    let mut request = Vec::with_capacity(ObjectHeader::BEGIN_LEN);
    pull.encode_request(&mut request)?;
    send.write_message(&request, idle_timeout).await?;
    let mut header = Vec::with_capacity(ObjectHeader::BEGIN_LEN);
    let answer = loop {
        let want = ObjectPull::header_len(&header).saturating_sub(header.len());
        match recv.read_chunk_within(want.max(1), idle_timeout).await? {
            Some(chunk) => header.extend_from_slice(&chunk),
            None => return Err(pull.on_end().into()),
        }
        if let Some((answer, _)) = pull.on_header(&header)? {
            break answer;
        }
    };
    match answer {
        Answer::Refused(status) => {
            connection.recycle(send, recv);
            Ok(Started::Refused(status))
        }
        Answer::Begin(body) => Ok(Started::Begin(Box::new(Pulling {
            connection: connection.clone(),
            pull,
            body,
            send,
            recv,
            idle_timeout,
        }))),
    }
}

/// One object arriving: its header is here, its body comes next. Dropping it abandons the
/// exchange (a TAKE then keeps the object at the holder).
#[derive(Debug)]
pub struct Pulling {
    connection: Connection,
    pull: ObjectPull,
    body: Body,
    send: SendStream,
    recv: RecvStream,
    idle_timeout: Duration,
}

impl Pulling {
    /// The object.
    pub fn id(&self) -> ObjectId {
        self.pull.id()
    }

    /// COPY or TAKE.
    pub fn kind(&self) -> TransferKind {
        self.pull.kind()
    }

    /// What the holder announced: sizes, and the offset the data starts at.
    pub fn body(&self) -> Body {
        self.body
    }

    /// The holder's Plasma digest of its whole object, once the data is read, when the pull
    /// asked for it (`ObjectPull::with_object_digest`, on a resume).
    pub fn holder_object_digest(&self) -> Option<[u8; 8]> {
        self.pull.holder_object_digest()
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.pull.received()
    }

    /// Data bytes still to come.
    pub fn data_left(&self) -> u64 {
        match self.pull.next_read() {
            PullRead::Metadata(_) => self.body.data_len(),
            PullRead::Data(left) => left,
            _ => 0,
        }
    }

    /// Reads the metadata into `target`, which must be exactly its size.
    pub async fn read_metadata(&mut self, target: &mut [u8]) -> Result<(), PullError> {
        if target.is_empty() && self.body.metadata_size == 0 {
            return Ok(());
        }
        match self.pull.next_read() {
            PullRead::Metadata(left) if left == target.len() as u64 => {}
            _ => {
                return Err(ExchangeError::OutOfOrder {
                    step: "reading metadata into a buffer of another size",
                    state: "before the metadata",
                }
                .into())
            }
        }
        let read = self
            .recv
            .read_into(target, self.idle_timeout, |_| ControlFlow::Continue(()))
            .await?;
        self.pull.on_metadata(read)?;
        if read < target.len() {
            return Err(self.pull.on_end().into());
        }
        Ok(())
    }

    /// Reads the data that follows into `target` (exactly [`Pulling::data_left`] bytes),
    /// feeding each piece to `observe` once written (the server hashes it this way).
    pub async fn read_data(
        &mut self,
        target: &mut [u8],
        observe: impl FnMut(&[u8]),
    ) -> Result<(), PullError> {
        self.read_data_prepared(target, |_| {}, observe).await
    }

    /// [`Pulling::read_data`], handing each window of `target` ([`DATA_WINDOW`] bytes, the
    /// last one shorter) to `prepare` just before filling it: the server maps a store
    /// object's pages there, one call per window instead of a page fault per 4 KiB.
    pub async fn read_data_prepared(
        &mut self,
        target: &mut [u8],
        mut prepare: impl FnMut(&mut [u8]),
        mut observe: impl FnMut(&[u8]),
    ) -> Result<(), PullError> {
        if self.data_left() != target.len() as u64 {
            return Err(ExchangeError::OutOfOrder {
                step: "reading data into a buffer of another size",
                state: "before the data",
            }
            .into());
        }
        let mut broken = None;
        let mut too_slow = None;
        let mut watch = ProgressWatch::new(self.idle_timeout, Instant::now());
        let pull = &mut self.pull;
        for window in target.chunks_mut(DATA_WINDOW) {
            prepare(window);
            let read = self
                .recv
                .read_into(window, self.idle_timeout, |piece| {
                    observe(piece);
                    if broken.is_none() {
                        broken = pull.on_data(piece).err();
                    }
                    if too_slow.is_none() {
                        too_slow = watch.on_bytes(piece.len() as u64, Instant::now()).err();
                    }
                    if broken.is_some() || too_slow.is_some() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .await?;
            if let Some(error) = broken {
                return Err(error.into());
            }
            if let Some(error) = too_slow {
                return Err(error.into());
            }
            if read < window.len() {
                return Err(pull.on_end().into());
            }
        }
        self.read_trailer().await
    }

    /// The next piece of data (at most `max` bytes), in order; `None` once all of it came.
    pub async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>, PullError> {
        let left = match self.pull.next_read() {
            PullRead::Data(left) => left,
            PullRead::Trailer => {
                self.read_trailer().await?;
                return Ok(None);
            }
            PullRead::Metadata(_) => {
                return Err(ExchangeError::OutOfOrder {
                    step: "reading data",
                    state: "before the metadata was read",
                }
                .into())
            }
            _ => return Ok(None),
        };
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(max.max(1));
        match self.recv.read_chunk_within(want, self.idle_timeout).await? {
            Some(chunk) => {
                self.pull.on_data(&chunk)?;
                if self.pull.next_read() == PullRead::Trailer {
                    self.read_trailer().await?;
                }
                Ok(Some(chunk))
            }
            None => Err(self.pull.on_end().into()),
        }
    }

    async fn read_trailer(&mut self) -> Result<(), PullError> {
        if self.pull.next_read() != PullRead::Trailer {
            return Ok(());
        }
        let mut trailer = Vec::with_capacity(DigestTrailer::ENCODED_LEN);
        loop {
            let want = DigestTrailer::ENCODED_LEN - trailer.len();
            match self.recv.read_chunk_within(want, self.idle_timeout).await? {
                Some(chunk) => trailer.extend_from_slice(&chunk),
                None => return Err(self.pull.on_end().into()),
            }
            if self.pull.on_trailer(&trailer)?.is_some() {
                return Ok(());
            }
        }
    }

    /// Acknowledges with `status` (0x41 once the object is safe; anything else tells the
    /// holder to keep it). For a TAKE acknowledged with 0x41, returns the holder's delete
    /// result. The exchange is then recycled (over TCP its socket serves the next one).
    pub async fn finish(mut self, status: Status) -> Result<Option<Status>, PullError> {
        let body_complete = self.pull.next_read() == PullRead::Acknowledge;
        let mut ack = Vec::with_capacity(1);
        self.pull.acknowledge(status, &mut ack)?;
        self.send.write_message(&ack, self.idle_timeout).await?;
        self.send.finish().await?;
        let mut deleted = None;
        if self.pull.next_read() == PullRead::DeleteResult {
            let mut result = Vec::with_capacity(1);
            while deleted.is_none() {
                match self.recv.read_chunk_within(1, self.idle_timeout).await? {
                    Some(chunk) => result.extend_from_slice(&chunk),
                    None => return Err(self.pull.on_end().into()),
                }
                deleted = self.pull.on_delete_result(&result)?.map(|(s, _)| s);
            }
        }
        if body_complete {
            self.connection.recycle(self.send, self.recv);
        }
        Ok(deleted)
    }

    /// Gives up before the body was all read (e.g. the local store cannot hold it): tells the
    /// holder why, so a TAKE keeps its object, and drops the exchange (its body is unread, so
    /// the stream cannot serve another exchange).
    pub async fn give_up(mut self, status: Status) {
        let mut ack = Vec::with_capacity(1);
        if self.pull.acknowledge(status, &mut ack).is_ok()
            && self
                .send
                .write_message(&ack, self.idle_timeout)
                .await
                .is_ok()
        {
            let _ = self.send.finish().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(2);

    #[test]
    fn a_trickle_is_stalled_after_one_window() {
        let start = Instant::now();
        let mut watch = ProgressWatch::new(WINDOW, start);
        // 1 KiB every 500 ms: each piece well within any idle timeout.
        let mut failed = None;
        for step in 1..=8u32 {
            if let Err(error) = watch.on_bytes(1024, start + step * Duration::from_millis(500)) {
                failed = Some((step, error));
                break;
            }
        }
        let (step, error) = failed.expect("the trickle is stalled");
        assert_eq!(step, 4, "at the end of the first window");
        assert!(
            matches!(error, TransportError::TooSlow { bytes: 4096, within } if within == WINDOW),
            "{error:?}"
        );
    }

    #[test]
    fn steady_progress_is_never_stalled_even_in_small_pieces() {
        let start = Instant::now();
        let mut watch = ProgressWatch::new(WINDOW, start);
        // 1,200-byte datagrams, 100 per second (~120 KB/s): slow, but progress.
        for step in 1..=1000u32 {
            let now = start + step * Duration::from_millis(10);
            assert!(watch.on_bytes(1200, now).is_ok(), "stalled at step {step}");
        }
    }

    #[test]
    fn each_window_is_judged_on_its_own() {
        let start = Instant::now();
        let mut watch = ProgressWatch::new(WINDOW, start);
        // A fast first window does not pay for a slow second one.
        assert!(watch.on_bytes(10 * MIN_PROGRESS, start + WINDOW).is_ok());
        assert!(watch.on_bytes(10, start + WINDOW + WINDOW / 2).is_ok());
        assert!(watch.on_bytes(10, start + 2 * WINDOW).is_err());
    }
}
