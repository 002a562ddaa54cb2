//! The original plaintext TCP format (`docs/protocol.md`, "The legacy TCP format"), byte for byte, behind `--legacy-tcp`:
//! this server answers COPY/TAKE as a holder and SYNC as a server, so old clients and peers
//! keep working.
//!
//! Done better than the original, within what the bytes allow: a TAKE deletes nothing until
//! the requester shows it read the whole reply (it sends its next request, or half-closes
//! cleanly); a reset connection keeps the objects. Edge values the format cannot say
//! (65,536 bytes of metadata) are refused with their status code, never encoded wrongly.

use std::net::SocketAddr;
use std::sync::Arc;

use plasma_store::{ObjectStore, SealedObject};
use plasma_stream_protocol::exchange::policy::{self, Lookup, WireFormat};
use plasma_stream_protocol::legacy::{FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::wire::SyncRequest;
use plasma_stream_protocol::{ObjectId, Request, Status, TransferKind};
use plasma_stream_transport::{LegacyStream, MessageReader};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tracing::{debug, info, warn};

use crate::access::{Right, Who};
use crate::error::ServeError;
use crate::inflight::Claim;
use crate::node::{store_id, Node};
use crate::sync::run_sync;

type LegacyWriter = WriteHalf<LegacyStream>;

/// Serves one legacy connection until the peer half-closes, a request is malformed, or the
/// server aborts.
pub async fn serve_legacy<S: ObjectStore>(
    node: Arc<Node<S>>,
    socket: LegacyStream,
    peer: SocketAddr,
) {
    let (read, mut socket) = tokio::io::split(socket);
    let mut reader = MessageReader::new(read, node.idle_timeout, &node.read_budget);
    // Objects sent by a TAKE whose requester has not yet shown it read them.
    let mut awaiting_delete: Vec<(ObjectId, Claim)> = Vec::new();
    loop {
        let request = match reader.next(Request::decode_legacy).await {
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
                info!(%peer, error = %ServeError::from(error), "legacy connection dropped");
                return;
            }
        };
        // The next request proves the previous reply was read.
        delete_taken(&node, &mut awaiting_delete).await;
        let result = match request {
            Request::Sync(peer_requests) => {
                serve_sync(&node, &mut socket, peer_requests, peer).await
            }
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

async fn serve_sync<S: ObjectStore>(
    node: &Arc<Node<S>>,
    socket: &mut LegacyWriter,
    peer_requests: Vec<plasma_stream_protocol::PeerRequest>,
    peer: SocketAddr,
) -> Result<(), ServeError> {
    let count = peer_requests.len();
    // The legacy decoder enforced the SYNC limits already; a refusal here is one status per
    // peer request, as the format's reply has.
    let statuses = match SyncRequest::new(peer_requests) {
        Ok(request) => run_sync(node, request, Who::Anonymous, peer)
            .await
            .peer_reports
            .iter()
            .map(|p| p.status)
            .collect(),
        Err(limit) => vec![limit.status().unwrap_or(Status::PeerRequestFailed); count],
    };
    let reply = SyncReply { statuses };
    let mut bytes = Vec::with_capacity(reply.statuses.len());
    reply.encode(&mut bytes)?;
    socket.write_all(&bytes).await?;
    Ok(())
}
async fn serve_transfer<S: ObjectStore>(
    node: &Node<S>,
    socket: &mut LegacyWriter,
    kind: TransferKind,
    ids: Vec<ObjectId>,
    awaiting_delete: &mut Vec<(ObjectId, Claim)>,
) -> Result<(), ServeError> {
    let right = match kind {
        TransferKind::Copy => Right::Copy,
        TransferKind::Take => Right::Take,
    };
    let permitted = node.access().allows(&Who::Anonymous, right);
    if !permitted {
        warn!(%kind, objects = ids.len(), "legacy request refused: `anonymous` lacks `{right}`");
    }
    let gathered = if permitted {
        gather(node, kind, &ids).await
    } else {
        Err(Status::NotPermitted)
    };
    match gathered {
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
            Err(ServeError::Truncated)
        }
    }
}

/// The holder's check-out policy (`protocol::exchange::policy`, shared with OBJECT streams),
/// each step applied to the whole list before the next, as the format documents; fetches every
/// object. The first failure is the reply's status byte.
async fn gather<S: ObjectStore>(
    node: &Node<S>,
    kind: TransferKind,
    ids: &[ObjectId],
) -> Result<(Vec<SealedObject>, Vec<Claim>), Status> {
    let mut claims = Vec::new();
    for &id in ids {
        let taken_elsewhere = match kind {
            TransferKind::Take => match node.taking.claim(id) {
                Some(claim) => {
                    claims.push(claim);
                    false
                }
                None => true,
            },
            TransferKind::Copy => node.taking.contains(&id),
        };
        policy::check_taken(taken_elsewhere)?;
    }
    let found = match node
        .store
        .get(
            ids.iter().map(|id| store_id(*id)).collect(),
            node.store_timeout,
        )
        .await
    {
        Ok(found) => found,
        Err(error) => {
            warn!(%error, "store get failed");
            policy::check_lookup(Lookup::StoreFailed)?;
            Vec::new() // not reached: a failed lookup never checks out
        }
    };
    let mut objects = Vec::with_capacity(found.len());
    for object in found {
        let lookup = object
            .as_ref()
            .map_or(Lookup::Missing, |object| Lookup::Found {
                data_size: object.data.len() as u64,
                metadata_size: object.metadata.len() as u64,
            });
        policy::check_lookup(lookup)?;
        objects.extend(object);
    }
    if objects.len() != ids.len() {
        // The store answers one entry per ID; anything else is its failure.
        return Err(Status::StoreError);
    }
    for object in &objects {
        let (data, metadata) = (object.data.len() as u64, object.metadata.len() as u64);
        policy::check_sizes(WireFormat::Legacy, data, metadata)?;
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
