//! The original plaintext TCP format (`legacy-wire.md`), byte for byte, behind `--legacy-tcp`:
//! this server answers COPY/TAKE as a holder and SYNC as a server, so old clients and peers
//! keep working.
//!
//! Done better than the original, within what the bytes allow: a TAKE deletes nothing until
//! the requester shows it read the whole reply (it sends its next request, or half-closes
//! cleanly); a reset connection keeps the objects. Edge values the format cannot say
//! (65,536 bytes of metadata) are refused with their status code, never encoded wrongly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use plasma_store::{ObjectStore, SealedObject};
use plasma_stream_protocol::legacy::{FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::wire::SyncRequest;
use plasma_stream_protocol::{limits, ObjectId, Request, Status, TransferKind};
use plasma_stream_transport::LegacyStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::error::ExchangeError;
use crate::framing::BudgetClaim;
use crate::inflight::Claim;
use crate::node::{store_id, Node};
use crate::sync::run_sync;

/// Serves one legacy connection until the peer half-closes, a request is malformed, or the
/// server aborts.
pub async fn serve_legacy<S: ObjectStore>(
    node: Arc<Node<S>>,
    mut socket: LegacyStream,
    peer: SocketAddr,
) {
    let mut buffered = BytesMut::with_capacity(4096);
    let mut claim = node.message_budget.claim();
    // Objects sent by a TAKE whose requester has not yet shown it read them.
    let mut awaiting_delete: Vec<(ObjectId, Claim)> = Vec::new();
    loop {
        let request = match read_request(&mut socket, &mut buffered, &mut claim, node.idle_timeout)
            .await
        {
            Ok(Some(request)) => request,
            Ok(None) => {
                // A clean half-close after the reply: the requester read everything.
                delete_taken(&node, &mut awaiting_delete).await;
                debug!(%peer, "legacy connection closed");
                return;
            }
            Err(error) => {
                if !awaiting_delete.is_empty() {
                    warn!(%peer, objects = awaiting_delete.len(), "legacy TAKE not confirmed; objects stay here");
                }
                info!(%peer, %error, "legacy connection dropped");
                return;
            }
        };
        // The next request proves the previous reply was read.
        delete_taken(&node, &mut awaiting_delete).await;
        let result = match request {
            Request::Sync(peer_requests) => serve_sync(&node, &mut socket, peer_requests).await,
            Request::Copy(ids) => {
                serve_transfer(
                    &node,
                    &mut socket,
                    TransferKind::Copy,
                    ids,
                    &mut awaiting_delete,
                )
                .await
            }
            Request::Take(ids) => {
                serve_transfer(
                    &node,
                    &mut socket,
                    TransferKind::Take,
                    ids,
                    &mut awaiting_delete,
                )
                .await
            }
        };
        if let Err(error) = result {
            info!(%peer, %error, "legacy connection ended");
            return;
        }
    }
}

async fn read_request(
    socket: &mut LegacyStream,
    buffered: &mut BytesMut,
    claim: &mut BudgetClaim,
    timeout: Duration,
) -> Result<Option<Request>, ExchangeError> {
    loop {
        if !buffered.is_empty() {
            if let Some((request, used)) = Request::decode_legacy(buffered)? {
                buffered.advance(used);
                claim.release_if_small(buffered.len());
                return Ok(Some(request));
            }
        }
        if buffered.len() >= crate::framing::MAX_BUFFERED_MESSAGE {
            return Err(ExchangeError::MessageTooLong {
                limit: crate::framing::MAX_BUFFERED_MESSAGE,
            });
        }
        buffered.reserve(64 * 1024);
        // Cover what this read may add before making it (read_buf fills up to the spare room).
        claim.cover(buffered.len() + (buffered.capacity() - buffered.len()))?;
        let read = tokio::time::timeout(timeout, socket.read_buf(buffered))
            .await
            .map_err(|_| ExchangeError::Timeout(timeout))??;
        if read == 0 {
            return if buffered.is_empty() {
                Ok(None)
            } else {
                Err(ExchangeError::Truncated)
            };
        }
    }
}

async fn serve_sync<S: ObjectStore>(
    node: &Arc<Node<S>>,
    socket: &mut LegacyStream,
    peer_requests: Vec<plasma_stream_protocol::PeerRequest>,
) -> Result<(), ExchangeError> {
    let report = run_sync(node, SyncRequest { peer_requests }).await;
    let reply = SyncReply {
        statuses: report.peer_reports.iter().map(|p| p.status).collect(),
    };
    let mut bytes = Vec::with_capacity(reply.statuses.len());
    reply.encode(&mut bytes)?;
    socket.write_all(&bytes).await?;
    Ok(())
}

async fn serve_transfer<S: ObjectStore>(
    node: &Node<S>,
    socket: &mut LegacyStream,
    kind: TransferKind,
    ids: Vec<ObjectId>,
    awaiting_delete: &mut Vec<(ObjectId, Claim)>,
) -> Result<(), ExchangeError> {
    match gather(node, kind, &ids).await {
        Ok((objects, claims)) => {
            let mut bytes = Vec::with_capacity(1);
            TransferReply::Begin.encode(&mut bytes)?;
            socket.write_all(&bytes).await?;
            for object in &objects {
                let header = FrameHeader {
                    data_size: object.data.len() as u64,
                    metadata_size: object.metadata.len() as u64,
                };
                let mut word = Vec::with_capacity(FrameHeader::ENCODED_LEN);
                header.encode(&mut word)?;
                socket.write_all(&word).await?;
                socket.write_all(&object.metadata).await?;
                socket.write_all(&object.data).await?;
            }
            socket.flush().await?;
            drop(objects);
            awaiting_delete.extend(ids.into_iter().zip(claims));
            Ok(())
        }
        Err(status) => {
            let mut bytes = Vec::with_capacity(1);
            TransferReply::Failed(status).encode(&mut bytes)?;
            socket.write_all(&bytes).await?;
            socket.flush().await?;
            // The format says: an error status byte, and the connection closes.
            Err(ExchangeError::Truncated)
        }
    }
}

/// Checks, in the documented order, and fetches every object of a COPY/TAKE; the first
/// failure is the reply's status byte.
async fn gather<S: ObjectStore>(
    node: &Node<S>,
    kind: TransferKind,
    ids: &[ObjectId],
) -> Result<(Vec<SealedObject>, Vec<Claim>), Status> {
    let mut claims = Vec::new();
    for &id in ids {
        match kind {
            TransferKind::Take => claims.push(node.taking.claim(id).ok_or(Status::BeingDeleted)?),
            TransferKind::Copy if node.taking.contains(&id) => return Err(Status::BeingDeleted),
            TransferKind::Copy => {}
        }
    }
    let found = node
        .store
        .get(
            ids.iter().map(|id| store_id(*id)).collect(),
            node.store_timeout,
        )
        .await
        .map_err(|error| {
            warn!(%error, "store get failed");
            Status::StoreError
        })?;
    let mut objects = Vec::with_capacity(found.len());
    for object in found {
        objects.push(object.ok_or(Status::NotFound)?);
    }
    for object in &objects {
        let (data, metadata) = (object.data.len() as u64, object.metadata.len() as u64);
        limits::validate_legacy_object_sizes(data, metadata)
            .map_err(|e| e.status().unwrap_or(Status::DataTooLarge))?;
        if metadata >= limits::MAX_METADATA_SIZE {
            return Err(Status::MetadataTooLarge);
        }
    }
    Ok((objects, claims))
}

async fn delete_taken<S: ObjectStore>(node: &Node<S>, awaiting: &mut Vec<(ObjectId, Claim)>) {
    if awaiting.is_empty() {
        return;
    }
    let taken: Vec<_> = std::mem::take(awaiting);
    let ids = taken.iter().map(|(id, _)| store_id(*id)).collect();
    if let Err(error) = node.store.delete(ids).await {
        warn!(%error, "delete after legacy TAKE failed; objects stay here");
    }
    drop(taken);
}
