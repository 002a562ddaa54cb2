#![doc = include_str!("../../README.md")]
//!
//! # The `stream` library
//!
//! [`Client`] talks to one `plasma-stream-server`:
//! - [`Client::sync`] asks it to pull objects from its peers into its store (COPY or TAKE per
//!   [`PeerRequest`]) and returns a [`SyncReport`]: a status per peer request and every
//!   object's outcome.
//! - [`Client::copy`] / [`Client::take`] pull objects from the server straight into this
//!   process (no local store), and [`Client::pull`] streams one object chunk by chunk.
//! - [`Client::list`], [`Client::info`] and [`Client::stats`] say what the server's store
//!   holds and what the server did; [`Client::put`] stores an object in the server's store.
//!
//! ## Trust
//!
//! Every connection is TLS 1.3 (QUIC, or TLS over TCP where UDP is blocked). Who is trusted is
//! decided by [`ClientBuilder`]: [`ClientBuilder::insecure`] (development: any server),
//! pinned server fingerprints ([`ClientBuilder::trust_fingerprint`],
//! [`ClientBuilder::trust_file`]), or a cluster CA ([`ClientBuilder::ca`]). Pinned mode is mutual TLS: the client presents its own
//! certificate, kept in [`ClientBuilder::identity_dir`] so that servers can pin it in turn.
//!
//! [`Client::connect`] (no builder) reads the same choices from the environment, so the
//! README example works unchanged:
//! - `PLASMA_STREAM_INSECURE=1`: insecure mode;
//! - `PLASMA_STREAM_TRUST`: server fingerprints (separated by commas or blanks);
//! - `PLASMA_STREAM_TRUST_FILE`: a file of fingerprints (one per line, `#` comments);
//! - `PLASMA_STREAM_CA`: cluster CA mode, the CA certificate (PEM) that issued the servers'
//!   certificates and this client's (in the identity directory);
//! - otherwise `~/.config/plasma-stream/trusted` if it exists;
//! - `PLASMA_STREAM_IDENTITY_DIR`: where the client certificate lives (default
//!   `~/.config/plasma-stream/client`, generated on first use; its fingerprint is what servers
//!   pin with `--trust`).
//!
//! With none of these, `connect` fails with [`Error::NoTrust`], which says how to fix it.

mod builder;
mod error;
pub mod pull;
mod store_requests;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use plasma_stream_protocol::events::SyncEvent;
use plasma_stream_protocol::exchange::ObjectPull;
use plasma_stream_protocol::wire::{SyncRequest, CANCEL_SYNC};
use plasma_stream_transport::{Connection, Endpoint, MessageReader, RecvStream, SendStream};

pub use builder::ClientBuilder;
pub use error::{Error, Result};
pub use plasma_stream_protocol::events::{
    DetailedOutcome, DetailedPeerReport, DetailedReport, ObjectEvent, ObjectState, Progress,
    Reason, ReasonCode, UNKNOWN_TOTAL, WHOLE_SYNC,
};
pub use plasma_stream_protocol::wire::{ObjectOutcome, PeerReport, SyncReport};
pub use plasma_stream_protocol::{ObjectId, PeerRequest, Status, TransferKind};
pub use plasma_stream_transport::{ConnectionKind, TransportMode};
pub use store_requests::{ListedObject, PeerStats, ServerStats};

use pull::{Pulling, Started};

/// The longest SYNC report a client reads: the report of the largest legal SYNC (1,024 peer
/// requests of 65,536 objects, 29 bytes each) fits; a server sending more is refused.
const MAX_REPORT: usize = 2 << 30;

/// A connection to one `plasma-stream-server`. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    // Keeps the endpoint (its UDP socket) alive as long as the connection.
    _endpoint: Endpoint,
    connection: Connection,
    server: SocketAddr,
    timeout: Duration,
}

/// What [`Client::sync_with_progress`] tells its callback while the SYNC runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// Bytes and objects done, for one peer request (`peer_request` is its index) or, with
    /// `peer_request == WHOLE_SYNC`, for the whole SYNC. `bytes_total` is
    /// [`UNKNOWN_TOTAL`] until every object's size is known. At most about ten per second.
    Progress(Progress),
    /// One object started, arrived, or did not arrive (the report says why).
    Object(ObjectEvent),
}

/// A SYNC's stream while its reply is read.
struct Exchange {
    send: SendStream,
    reader: MessageReader<RecvStream>,
}

/// Objects [`Client::copy`] and [`Client::take`] pull at once (one stream each).
const PULLS_IN_FLIGHT: usize = 16;

/// One object pulled into this process by [`Client::copy`] or [`Client::take`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedObject {
    pub id: ObjectId,
    pub data: Bytes,
    pub metadata: Bytes,
}

impl Client {
    /// Connects to a server with trust and identity from the environment (see the crate docs).
    /// For explicit choices use [`Client::builder`].
    pub async fn connect(address: impl tokio::net::ToSocketAddrs) -> Result<Client> {
        ClientBuilder::from_env()?.connect(address).await
    }

    /// A builder for trust, identity and transport choices.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Closes the connection and waits (briefly) until the server was told: a process that
    /// exits without this leaves the server waiting for its QUIC idle timeout to learn it.
    pub async fn close(&self) {
        self.connection.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), self._endpoint.wait_idle()).await;
    }

    /// QUIC, or TLS over TCP (the fallback).
    pub fn connection_kind(&self) -> ConnectionKind {
        self.connection.kind()
    }

    /// Asks the server to pull objects from its peers (one [`PeerRequest`] per peer and kind)
    /// and waits for the report. A report is returned whatever the objects' fate: check
    /// [`SyncReport::is_success`] or each [`PeerReport`]. `Err` means the request was invalid
    /// (limits, duplicate IDs) or the connection to the server failed.
    pub async fn sync(&self, peer_requests: Vec<PeerRequest>) -> Result<SyncReport> {
        let request = SyncRequest::new(peer_requests)?;
        let mut bytes = Vec::with_capacity(request.encoded_len());
        request.encode(&mut bytes)?;
        let mut exchange = self.open_exchange(&bytes, MAX_REPORT).await?;
        let report = exchange.reader.expect(SyncReport::decode).await?;
        self.end_exchange(exchange).await;
        Ok(report)
    }

    /// Like [`Client::sync`], and calls `on_event` with the server's progress while the SYNC
    /// runs; returns the detailed report: per object the status byte, a finer [`Reason`], the
    /// bytes that really arrived (also on failure), the attempts made and the time taken.
    /// Speaks the SYNC-with-events stream (`docs/protocol.md` §4.3), which servers of this
    /// version serve; the callback runs on this task, so a slow callback only makes the
    /// server coalesce its updates, never slows a transfer.
    pub async fn sync_with_progress(
        &self,
        peer_requests: Vec<PeerRequest>,
        on_event: impl FnMut(ProgressEvent),
    ) -> Result<DetailedReport> {
        self.sync_with_progress_until(peer_requests, on_event, std::future::pending())
            .await
    }

    /// Like [`Client::sync_with_progress`], and once `cancel` resolves (e.g. on Ctrl-C), asks
    /// the server to cancel the SYNC: it aborts the objects not yet sealed and starts no
    /// other. The report still comes, and says what happened to each object: sealed ones as
    /// usual, the others with status 0x62 and reason [`ReasonCode::Cancelled`] (or 0x81 if
    /// already there). Dropping the returned future instead leaves the SYNC running on the
    /// server.
    pub async fn sync_with_progress_until(
        &self,
        peer_requests: Vec<PeerRequest>,
        mut on_event: impl FnMut(ProgressEvent),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<DetailedReport> {
        let request = SyncRequest::new(peer_requests)?;
        let expected = request.peer_requests().len();
        let mut bytes = Vec::with_capacity(request.encoded_len());
        request.encode_with_events(&mut bytes)?;
        let mut exchange = self.open_exchange(&bytes, MAX_REPORT).await?;
        let mut cancel = std::pin::pin!(cancel);
        let mut cancel_sent = false;
        let mut report = DetailedReport::default();
        loop {
            let event = tokio::select! {
                event = exchange.reader.expect(SyncEvent::decode) => event?,
                () = &mut cancel, if !cancel_sent => {
                    cancel_sent = true;
                    exchange.send.write_message(&[CANCEL_SYNC], self.timeout).await?;
                    continue;
                }
            };
            match event {
                SyncEvent::Progress(progress) => on_event(ProgressEvent::Progress(progress)),
                SyncEvent::Object(object) => on_event(ProgressEvent::Object(object)),
                SyncEvent::PeerReport {
                    index,
                    report: peer,
                } => {
                    if index as usize != report.peer_reports.len() || index as usize >= expected {
                        return Err(Error::Protocol(format!(
                            "peer report {index} out of order (expected {} of {expected})",
                            report.peer_reports.len()
                        )));
                    }
                    report.peer_reports.push(peer);
                }
                SyncEvent::End { peer_request_count } => {
                    if peer_request_count as usize != expected
                        || report.peer_reports.len() != expected
                    {
                        return Err(Error::Protocol(format!(
                            "the report has {} of {expected} peer reports (end says {peer_request_count})",
                            report.peer_reports.len()
                        )));
                    }
                    break;
                }
            }
        }
        self.end_exchange(exchange).await;
        Ok(report)
    }

    /// Opens a stream and sends one request on it; its reply may hold up to `reply_limit`
    /// bytes in one message. The reader has no idle timeout of its own: a SYNC's report comes
    /// as late as the transfers take, and store requests bound their replies with
    /// `self.timeout` where they read them.
    async fn open_exchange(&self, request: &[u8], reply_limit: usize) -> Result<Exchange> {
        let (mut send, recv) = self.connection.open_bi().await?;
        send.write_message(request, self.timeout).await?;
        Ok(Exchange {
            send,
            reader: MessageReader::for_reply(recv, reply_limit),
        })
    }

    /// After the report, the stream's last message: reading its end tells the server the
    /// report arrived (so it does not wait for that at shutdown), and a stream with nothing
    /// left over may serve the next exchange.
    async fn end_exchange(&self, exchange: Exchange) {
        let (mut recv, read_ahead) = exchange.reader.into_parts();
        let extra = recv
            .read_end_of_stream(self.timeout.min(Duration::from_secs(2)))
            .await;
        if read_ahead.is_empty() && !extra {
            self.connection.recycle(exchange.send, recv);
        }
    }

    /// Pulls copies of these objects into this process (several at once, returned in order);
    /// the server keeps them. The first object that cannot be pulled fails the call with
    /// [`Error::Object`] naming it and its status.
    pub async fn copy(&self, ids: &[ObjectId]) -> Result<Vec<ReceivedObject>> {
        self.pull_all(TransferKind::Copy, ids).await
    }

    /// Pulls these objects into this process; the server deletes each after this client
    /// acknowledged it (all of it received).
    pub async fn take(&self, ids: &[ObjectId]) -> Result<Vec<ReceivedObject>> {
        self.pull_all(TransferKind::Take, ids).await
    }

    async fn pull_all(&self, kind: TransferKind, ids: &[ObjectId]) -> Result<Vec<ReceivedObject>> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        stream::iter(ids.iter().copied())
            .map(|id| self.pull_whole(kind, id))
            .buffered(PULLS_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn pull_whole(&self, kind: TransferKind, id: ObjectId) -> Result<ReceivedObject> {
        let mut incoming = self.pull(kind, id).await?;
        // The size comes from the server: reserve at most 64 MiB up front, grow as bytes arrive.
        let reserve = incoming.data_size().min(64 << 20) as usize;
        let mut data = BytesMut::with_capacity(reserve);
        while let Some(chunk) = incoming.next_chunk().await? {
            data.extend_from_slice(&chunk);
        }
        let metadata = incoming.metadata().clone();
        incoming.finish().await?;
        Ok(ReceivedObject {
            id,
            data: data.freeze(),
            metadata,
        })
    }

    /// Starts pulling one object: returns once the server said it has it (with its sizes and
    /// metadata). Read the data with [`IncomingObject::next_chunk`], then call
    /// [`IncomingObject::finish`] (which acknowledges; a TAKE deletes at the server only then).
    pub async fn pull(&self, kind: TransferKind, id: ObjectId) -> Result<IncomingObject> {
        let pulling =
            match pull::start(&self.connection, ObjectPull::new(kind, id), self.timeout).await? {
                Started::Begin(pulling) => pulling,
                Started::Refused(status) => return Err(Error::Object { id, status }),
            };
        let mut pulling = *pulling;
        let metadata_len =
            usize::try_from(pulling.body().metadata_size).map_err(|_| Error::Truncated)?;
        // Metadata is at most 64 KiB (the header was checked against the limits).
        let mut metadata = vec![0; metadata_len];
        pulling.read_metadata(&mut metadata).await?;
        Ok(IncomingObject {
            pulling,
            metadata: Bytes::from(metadata),
        })
    }
}

/// An object arriving from the server, streamed: its metadata is here, its data comes chunk
/// by chunk. Dropping it before [`IncomingObject::finish`] abandons the exchange (a TAKE then
/// keeps the object at the server).
#[derive(Debug)]
pub struct IncomingObject {
    pulling: Pulling,
    metadata: Bytes,
}

impl IncomingObject {
    /// The object.
    pub fn id(&self) -> ObjectId {
        self.pulling.id()
    }

    /// Its whole data size.
    pub fn data_size(&self) -> u64 {
        self.pulling.body().data_size
    }

    /// Its metadata.
    pub fn metadata(&self) -> &Bytes {
        &self.metadata
    }

    /// The next piece of data, in order; `None` once all `data_size` bytes were returned.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.pulling.next_chunk(1 << 20).await?)
    }

    /// Acknowledges the whole object (call after the last chunk). For a TAKE, returns once the
    /// server reported its delete; `Err(Error::Object{..})` if it kept its copy.
    pub async fn finish(self) -> Result<()> {
        let id = self.pulling.id();
        let left = self.pulling.data_left();
        if left != 0 {
            return Err(Error::Protocol(format!(
                "finish called with {left} bytes of object {id} unread"
            )));
        }
        match self.pulling.finish(Status::Success).await? {
            Some(status) if !status.is_success() => Err(Error::Object { id, status }),
            _ => Ok(()),
        }
    }
}
