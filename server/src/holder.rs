//! The holder's side of an OBJECT exchange: a puller (a peer server or a client) asked for one
//! object by COPY or TAKE; send it straight out of the store's shared memory.
//!
//! Order of checks (legacy-wire.md): being taken (0x70), missing or store error (0x71/0x60),
//! sizes (0x50/0x51), only then BEGIN. TAKE deletes **after** the puller's 0x41 Ack, never
//! before: no Ack, no delete — a TAKE can leave a duplicate, never a loss.

use std::time::Duration;

use bytes::Bytes;
use plasma_store::{DeleteOutcome, ObjectStore};
use plasma_stream_protocol::wire::{Ack, DataDigest, DeleteResult, ObjectHeader, ObjectRequest};
use plasma_stream_protocol::{limits, Status, TransferKind};
use plasma_stream_transport::SendStream;
use tracing::{debug, info, warn};

use crate::error::ExchangeError;
use crate::framing::{write_bytes, write_message, MessageReader};
use crate::node::{store_id, Node};
use crate::send_order::{self, Ticket};

/// Largest piece handed to the transport at once. Pieces are zero-copy slices of the store's
/// mapping; slicing only keeps each write's timeout meaningful on slow links.
const SEND_PIECE: usize = 4 * 1024 * 1024;

/// What happened to one requested object, for the log (and the legacy format's bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Refused with this status before any byte of the object.
    Refused(Status),
    /// Sent; the puller acknowledged with this status.
    Sent { ack: Status, deleted: bool },
}

/// Serves one OBJECT request on an accepted stream. Returns what happened; an `Err` means the
/// stream failed (the caller drops it).
pub async fn serve_object<S: ObjectStore>(
    node: &Node<S>,
    request: ObjectRequest,
    send: &mut SendStream,
    reader: &mut MessageReader,
    mut ticket: Option<Ticket>,
) -> Result<Served, ExchangeError> {
    let id = request.id;
    let timeout = node.idle_timeout;

    // A TAKE claims the ID for its whole exchange; anyone else asking meanwhile gets 0x70.
    let take_claim = match request.kind {
        TransferKind::Take => match node.taking.claim(id) {
            Some(claim) => Some(claim),
            None => return refuse(send, Status::BeingDeleted, timeout).await,
        },
        TransferKind::Copy if node.taking.contains(&id) => {
            return refuse(send, Status::BeingDeleted, timeout).await
        }
        TransferKind::Copy => None,
    };

    let object = match node.store.get(vec![store_id(id)], node.store_timeout).await {
        Ok(mut found) => match found.pop().flatten() {
            Some(object) => object,
            None => return refuse(send, Status::NotFound, timeout).await,
        },
        Err(error) => {
            warn!(object = %id, %error, "store get failed");
            return refuse(send, Status::StoreError, timeout).await;
        }
    };
    let data_size = object.data.len() as u64;
    let metadata_size = object.metadata.len() as u64;
    if let Err(limit) = limits::validate_object_sizes(data_size, metadata_size) {
        return refuse(
            send,
            limit.status().unwrap_or(Status::DataTooLarge),
            timeout,
        )
        .await;
    }
    if request.resume_offset > data_size {
        return refuse(send, Status::PeerRequestFailed, timeout).await;
    }

    let header = ObjectHeader::Begin {
        data_size,
        metadata_size,
        offset: request.resume_offset,
    };
    let mut bytes = Vec::with_capacity(ObjectHeader::BEGIN_LEN);
    header.encode(&mut bytes)?;
    write_message(send, &bytes, timeout).await?;
    if !object.metadata.is_empty() {
        write_bytes(send, object.metadata.clone(), timeout).await?;
    }
    let data = object.data.slice(request.resume_offset as usize..);
    let mut digest = request.digest_trailer.then(DataDigest::new);
    if data.len() < send_order::ORDERED_MIN {
        // Small objects fit in flight at once: they need no turn, and hold none.
        ticket = None;
    }
    if let Some(ticket) = &ticket {
        ticket.turn().await;
    }
    send_data(send, &data, timeout, digest.as_mut(), ticket.as_ref()).await?;
    // All data is with the transport: the next object may start filling the window.
    drop(ticket);
    crate::framing::flush(send).await?;
    if let Some(digest) = digest {
        let mut trailer = Vec::with_capacity(8);
        digest.trailer().encode(&mut trailer)?;
        write_message(send, &trailer, timeout).await?;
    }
    // Release our reference before a delete, so the store can free the object at once.
    drop(data);
    drop(object);

    let ack = reader.expect(Ack::decode).await?.status;
    let mut deleted = false;
    if request.kind == TransferKind::Take {
        let result = if ack.is_success() {
            match node.store.delete(vec![store_id(id)]).await {
                Ok(outcomes) => match outcomes.first() {
                    Some(DeleteOutcome::Deleted | DeleteOutcome::Scheduled) => {
                        deleted = true;
                        Status::Success
                    }
                    // Someone else deleted it meanwhile: it is gone here, which is what TAKE wants.
                    Some(DeleteOutcome::NotFound) => Status::Success,
                    None => Status::StoreError,
                },
                Err(error) => {
                    warn!(object = %id, %error, "delete after TAKE failed; the object stays here");
                    Status::StoreError
                }
            }
        } else {
            info!(object = %id, ack = %ack, "puller did not acknowledge; TAKE keeps the object here");
            Status::StoreError
        };
        if ack.is_success() {
            let mut bytes = Vec::with_capacity(DeleteResult::ENCODED_LEN);
            DeleteResult { status: result }.encode(&mut bytes)?;
            write_message(send, &bytes, timeout).await?;
        }
    }
    drop(take_claim);
    send.finish().await?;
    debug!(object = %id, kind = %request.kind, bytes = data_size, ack = %ack, deleted, "served object");
    Ok(Served::Sent { ack, deleted })
}

/// Sends `data` in zero-copy pieces, feeding the optional end-to-end digest.
async fn send_data(
    send: &mut SendStream,
    data: &Bytes,
    timeout: Duration,
    mut digest: Option<&mut DataDigest>,
    ticket: Option<&Ticket>,
) -> Result<(), ExchangeError> {
    let mut start = 0;
    while start < data.len() {
        let end = (start + SEND_PIECE).min(data.len());
        let piece = data.slice(start..end);
        if let Some(digest) = digest.as_deref_mut() {
            digest.update(&piece);
        }
        match ticket {
            None => write_bytes(send, piece, timeout).await?,
            Some(ticket) => {
                let write = write_bytes(send, piece, timeout);
                tokio::pin!(write);
                tokio::select! {
                    written = &mut write => written?,
                    _ = tokio::time::sleep(send_order::STALL) => {
                        // Not moving: let the next object use the lane meanwhile.
                        ticket.set_stalled(true);
                        write.await?;
                        ticket.set_stalled(false);
                    }
                }
            }
        }
        start = end;
    }
    Ok(())
}

async fn refuse(
    send: &mut SendStream,
    status: Status,
    timeout: Duration,
) -> Result<Served, ExchangeError> {
    let mut bytes = Vec::with_capacity(1);
    ObjectHeader::Failed(status).encode(&mut bytes)?;
    write_message(send, &bytes, timeout).await?;
    send.finish().await?;
    Ok(Served::Refused(status))
}
