//! The holder's side of an OBJECT exchange: a puller (a peer server or a client) asked for one
//! object by COPY or TAKE; the `protocol::exchange::ObjectServe` state machine decides (the
//! check-out policy shared with the legacy format, what may be sent, what the Ack allows),
//! and this file moves the bytes straight out of the store's shared memory.
//!
//! TAKE deletes **after** the puller's 0x41 Ack of the whole object, never before: no Ack, no
//! delete — a TAKE can leave a duplicate, never a loss.

use std::time::Duration;

use bytes::Bytes;
use plasma_store::{DeleteOutcome, ObjectStore};
use plasma_stream_protocol::exchange::policy::Lookup;
use plasma_stream_protocol::exchange::{AckVerdict, ObjectServe};
use plasma_stream_protocol::wire::ObjectRequest;
use plasma_stream_protocol::{Status, TransferKind};
use plasma_stream_transport::{MessageReader, ReadError, RecvStream, SendStream, TransportError};
use tracing::{debug, info, warn};

use crate::access::{Right, Who};
use crate::error::ServeError;
use crate::node::{store_id, Node};
use crate::send_order::{self, Ticket};

/// Largest piece handed to the transport at once. Pieces are zero-copy slices of the store's
/// mapping; slicing only keeps each write's timeout meaningful on slow links.
const SEND_PIECE: usize = 4 * 1024 * 1024;

/// What happened to one requested object, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Refused with this status before any byte of the object.
    Refused(Status),
    /// Sent (`bytes` of metadata and data, from the requested offset); the puller
    /// acknowledged with this status.
    Sent {
        ack: Status,
        deleted: bool,
        bytes: u64,
    },
}

/// Who is pulling: what the access policy decides on, and what the audit log names.
#[derive(Debug, Clone)]
pub struct Puller {
    pub addr: std::net::SocketAddr,
    pub who: Who,
}

/// Serves one OBJECT request on an accepted stream. Returns what happened; an `Err` means the
/// stream failed (the caller drops it).
pub async fn serve_object<S: ObjectStore>(
    node: &Node<S>,
    request: ObjectRequest,
    send: &mut SendStream,
    reader: &mut MessageReader<RecvStream>,
    mut ticket: Option<Ticket>,
    puller: Puller,
) -> Result<Served, ServeError> {
    let id = request.id;
    let timeout = node.idle_timeout;
    let mut serve = ObjectServe::new(request);

    // The access policy first: a puller without the right learns nothing about the object.
    let right = match request.kind {
        TransferKind::Copy => Right::Copy,
        TransferKind::Take => Right::Take,
    };
    if !node.access().allows(&puller.who, right) {
        warn!(object = %id, kind = %request.kind, puller = %puller.addr, identity = %puller.who,
            "refused: the access policy does not grant `{right}`");
        return refuse(send, Status::NotPermitted, timeout).await;
    }

    // A TAKE claims the ID for its whole exchange; anyone else asking meanwhile gets 0x70.
    let (taken_elsewhere, take_claim) = match request.kind {
        TransferKind::Take => match node.taking.claim(id) {
            Some(claim) => (false, Some(claim)),
            None => (true, None),
        },
        TransferKind::Copy => (node.taking.contains(&id), None),
    };
    if let Err(status) = serve.check_taken(taken_elsewhere) {
        return refuse(send, status, timeout).await;
    }
    let (lookup, object) = match node.store.get(vec![store_id(id)], node.store_timeout).await {
        Ok(mut found) => match found.pop().flatten() {
            Some(object) => (
                Lookup::Found {
                    data_size: object.data.len() as u64,
                    metadata_size: object.metadata.len() as u64,
                },
                Some(object),
            ),
            None => (Lookup::Missing, None),
        },
        Err(error) => {
            warn!(object = %id, %error, "store get failed");
            (Lookup::StoreFailed, None)
        }
    };
    let (body, object) = match (serve.check_object(lookup), object) {
        (Ok(body), Some(object)) => (body, object),
        (Err(status), _) => return refuse(send, status, timeout).await,
        (Ok(_), None) => return refuse(send, Status::StoreError, timeout).await,
    };

    let mut header = Vec::with_capacity(32);
    serve.encode_header(&mut header)?;
    send.write_message(&header, timeout).await?;
    if !object.metadata.is_empty() {
        send.write_bytes(object.metadata.clone(), timeout).await?;
        serve.on_metadata_sent(object.metadata.len())?;
    }
    let offset = usize::try_from(body.offset).unwrap_or(usize::MAX);
    let data = object.data.slice(offset.min(object.data.len())..);
    if data.len() < send_order::ORDERED_MIN {
        // Small objects fit in flight at once: they need no turn, and hold none.
        ticket = None;
    }
    if let Some(ticket) = &ticket {
        ticket.turn().await;
    }
    send_data(send, &mut serve, &data, timeout, ticket.as_ref()).await?;
    // All data is with the transport: the next object may start filling the window.
    drop(ticket);
    send.flush_all().await?;
    if serve.wants_trailer() {
        let mut trailer = Vec::with_capacity(8);
        serve.encode_trailer(&mut trailer)?;
        send.write_message(&trailer, timeout).await?;
    }
    if serve.wants_object_digest() {
        // A resumed pull checks what it holds against the whole object: hash it off the
        // async workers (a large object takes a while).
        let (data, metadata) = (object.data.clone(), object.metadata.clone());
        let digest = tokio::task::spawn_blocking(move || {
            plasma_store::digest::object_digest(&data, &metadata)
        })
        .await
        .map_err(|_| ServeError::ShuttingDown)?;
        let mut trailer = Vec::with_capacity(8);
        serve.encode_object_digest(digest, &mut trailer)?;
        send.write_message(&trailer, timeout).await?;
    }
    // Release our reference before a delete, so the store can free the object at once.
    let size = object.data.len() as u64 + object.metadata.len() as u64;
    let sent = object.metadata.len() as u64 + data.len() as u64;
    drop(data);
    drop(object);

    let verdict = match reader.expect(|buf| serve.on_ack(buf)).await {
        Ok(verdict) => verdict,
        Err(ReadError::Transport(TransportError::Idle(_))) => {
            // No Ack in time: the object stays; an Ack arriving later changes nothing.
            let kept = serve.on_ack_timeout();
            debug!(object = %id, ?kept, "no acknowledgement in time; keeping the object");
            return Err(ServeError::Transport(TransportError::Idle(timeout)));
        }
        Err(error) => {
            serve.on_end();
            return Err(error.into());
        }
    };
    let (ack, deleted) = match verdict {
        AckVerdict::Keep(ack) => {
            if request.kind == TransferKind::Take {
                info!(object = %id, %ack, "puller did not acknowledge; TAKE keeps the object here");
            }
            (ack, false)
        }
        AckVerdict::Delete => {
            let (status, deleted) = delete_taken(node, request, size, puller).await;
            let mut result = Vec::with_capacity(1);
            serve.delete_result(status, &mut result)?;
            send.write_message(&result, timeout).await?;
            (Status::Success, deleted)
        }
    };
    drop(take_claim);
    send.finish().await?;
    debug!(object = %id, kind = %request.kind, bytes = size, offset = body.offset,
        sent = body.len(), ack = %ack, deleted, "served object");
    Ok(Served::Sent {
        ack,
        deleted,
        bytes: sent,
    })
}

/// Deletes a TAKEn object after its 0x41 Ack, and says so in the audit log.
async fn delete_taken<S: ObjectStore>(
    node: &Node<S>,
    request: ObjectRequest,
    size: u64,
    puller: Puller,
) -> (Status, bool) {
    let id = request.id;
    match node.store.delete(vec![store_id(id)]).await {
        Ok(outcomes) => match outcomes.first() {
            Some(DeleteOutcome::Deleted | DeleteOutcome::Scheduled) => {
                info!(object = %id, bytes = size, puller = %puller.addr,
                    identity = %puller.who, "deleted by TAKE");
                (Status::Success, true)
            }
            // Someone else deleted it meanwhile: it is gone here, which is what TAKE wants.
            Some(DeleteOutcome::NotFound) => (Status::Success, false),
            None => (Status::StoreError, false),
        },
        Err(error) => {
            warn!(object = %id, %error, "delete after TAKE failed; the object stays here");
            (Status::StoreError, false)
        }
    }
}

/// Sends `data` in zero-copy pieces, telling the machine each piece (it feeds the optional
/// digest trailer, and refuses more than was announced).
async fn send_data(
    send: &mut SendStream,
    serve: &mut ObjectServe,
    data: &Bytes,
    timeout: Duration,
    ticket: Option<&Ticket>,
) -> Result<(), ServeError> {
    let mut start = 0;
    while start < data.len() {
        let end = (start + SEND_PIECE).min(data.len());
        let piece = data.slice(start..end);
        serve.on_data_sent(&piece)?;
        match ticket {
            None => send.write_bytes(piece, timeout).await?,
            Some(ticket) => {
                // Not moving: let the next object use the lane meanwhile.
                send.write_bytes_watching_stall(piece, timeout, send_order::STALL, |stalled| {
                    ticket.set_stalled(stalled)
                })
                .await?
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
) -> Result<Served, ServeError> {
    let mut bytes = Vec::with_capacity(1);
    ObjectServe::encode_refusal(status, &mut bytes)?;
    send.write_message(&bytes, timeout).await?;
    send.finish().await?;
    Ok(Served::Refused(status))
}
