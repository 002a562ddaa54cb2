//! The accept loop and per-connection handling: every accepted exchange starts with a
//! [`StreamKind`](plasma_stream_protocol::wire::StreamKind) byte and is dispatched to the
//! SYNC dispatcher or the object holder. Over TCP one socket carries exchanges in a row, so
//! each handler loops until the peer ends the stream.

use std::sync::Arc;

use plasma_store::ObjectStore;
use plasma_stream_protocol::store_requests::encode_status;
use plasma_stream_protocol::wire::{StreamKind, StreamRequest, SyncReport, SyncRequest};
use plasma_stream_protocol::Status;
use plasma_stream_transport::{
    Connection, ConnectionKind, Endpoint, Incoming, MessageReader, ReadBudget, RecvStream,
    SendStream,
};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::error::ServeError;
use crate::heap;
use crate::holder::{serve_object, Puller};
use crate::legacy::serve_legacy;
use crate::node::Node;
use crate::send_order::{self, SendOrder, Ticket};
use crate::shutdown::Phase;
use crate::store_requests::{serve_list, serve_put, serve_stats};
use crate::sync::run_sync;
use crate::sync_events::{is_sync_with_events, serve_sync_with_events, write_refusal};

/// Accepts connections until shutdown begins.
pub async fn accept_loop<S: ObjectStore>(node: Arc<Node<S>>, endpoint: Endpoint) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = node.shutdown.reached(Phase::Draining) => break,
        };
        match incoming {
            Some(Incoming::Connection(connection)) => {
                let span = info_span!("connection", peer = %connection.remote_addr(), kind = %connection.kind());
                tokio::spawn(serve_connection(node.clone(), connection).instrument(span));
            }
            Some(Incoming::Legacy(socket)) => {
                let peer = socket.peer_addr();
                let span = info_span!("legacy", %peer);
                tokio::spawn(serve_legacy(node.clone(), socket, peer).instrument(span));
            }
            None => break,
        }
    }
    debug!("accept loop ended");
}

async fn serve_connection<S: ObjectStore>(node: Arc<Node<S>>, connection: Connection) {
    debug!("connection accepted");
    // Over QUIC, large objects are sent in the order the puller opened their streams (see
    // `send_order`); TCP exchanges each have a socket of their own.
    let order = (connection.kind() == ConnectionKind::Quic && !node.send_fairness)
        .then(|| SendOrder::new(send_order::LANES));
    // The connection's streams together hold at most one largest request, inside the server's
    // budget: many stalled streams of one peer cannot take it all.
    let budget = node.read_budget.for_connection();
    loop {
        let exchange = tokio::select! {
            exchange = connection.accept_bi() => exchange,
            _ = node.shutdown.reached(Phase::Aborting) => break,
        };
        match exchange {
            Ok(Some((send, recv))) => {
                // The stream takes its place in the send order as it is accepted, in the order
                // the puller opened it, before anything about it is known; it leaves when it
                // turns out not to carry a large object.
                let ticket = order
                    .as_ref()
                    .zip(send.quic_index())
                    .map(|(order, index)| order.enter(index));
                if ticket.is_some() {
                    send.prioritize_by_order();
                }
                tokio::spawn(
                    serve_exchange(
                        node.clone(),
                        connection.clone(),
                        budget.clone(),
                        send,
                        recv,
                        ticket,
                    )
                    .in_current_span(),
                );
            }
            Ok(None) => break,
            Err(error) => {
                debug!(%error, "connection ended");
                break;
            }
        }
    }
}

/// A whole SYNC request at least this long is decoded inside `block_in_place`.
const DECODE_ASIDE_ABOVE: usize = 1 << 20;

/// Decodes a stream's request. The largest SYNC (1,024 × 65,536 IDs, 1.3 GB) takes seconds
/// to decode: its IDs are copied and checked for uniqueness. On a runtime worker that would
/// hold up every task queued on it (with `--worker-threads 1`, every connection of the
/// server: keep-alives, transfers, other clients). So once a large request is all buffered,
/// the worker hands its other tasks to a fresh thread for the decode (`block_in_place`).
/// A current-thread runtime (tests that run a server in-process) has no other thread to
/// hand them to, and decodes in place.
fn decode_request(
    buf: &[u8],
) -> Result<Option<(StreamRequest, usize)>, plasma_stream_protocol::DecodeError> {
    let aside = buf.len() >= DECODE_ASIDE_ABOVE
        && tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
            runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        })
        && StreamRequest::complete_sync_len(buf)?.is_some();
    if aside {
        debug!(
            bytes = buf.len(),
            "decoding a large SYNC request off the runtime worker"
        );
        tokio::task::block_in_place(|| StreamRequest::decode(buf))
    } else {
        StreamRequest::decode(buf)
    }
}

/// Serves the exchanges of one stream (one over QUIC, a sequence over TCP) until it ends.
async fn serve_exchange<S: ObjectStore>(
    node: Arc<Node<S>>,
    connection: Connection,
    budget: ReadBudget,
    mut send: SendStream,
    recv: RecvStream,
    mut ticket: Option<Ticket>,
) {
    let mut reader = MessageReader::new(recv, node.idle_timeout, &budget);
    let who = node.who(&connection);
    let puller = Puller {
        addr: connection.remote_addr(),
        who: who.clone(),
    };
    loop {
        let request = tokio::select! {
            request = reader.next(decode_request) => request,
            _ = node.shutdown.reached(Phase::Aborting) => return,
        };
        let result = match request {
            Ok(None) => return,
            Ok(Some(StreamRequest::Object(request))) => {
                let span = info_span!("object", object = %request.id, kind = %request.kind);
                let _transfer = node.shutdown.transfer();
                let served = tokio::select! {
                    served = serve_object(&node, request, &mut send, &mut reader, ticket.take(), puller.clone()).instrument(span) => served,
                    _ = node.shutdown.reached(Phase::Aborting) => Err(ServeError::ShuttingDown),
                };
                node.metrics.served(puller.addr, &served);
                served.map(|_| ())
            }
            Ok(Some(StreamRequest::Sync(request))) => {
                drop(ticket.take());
                let span = info_span!("sync", client = %who);
                // Counted as a transfer until the report is delivered, so a drain waits for it.
                let _transfer = node.shutdown.transfer();
                let objects = request.object_count();
                let sync = async {
                    let report =
                        run_sync(&node, request, who.clone(), connection.remote_addr()).await;
                    let written = write_report(&mut send, &report, node.idle_timeout).await;
                    drop(report);
                    if objects > heap::GIVE_BACK_ABOVE_OBJECTS {
                        heap::give_back_freed_memory();
                    }
                    written
                }
                .instrument(span);
                tokio::select! {
                    done = sync => done,
                    _ = node.shutdown.reached(Phase::Aborting) => Err(ServeError::ShuttingDown),
                }
            }
            Ok(Some(StreamRequest::SyncWithEvents(request))) => {
                drop(ticket.take());
                let span = info_span!("sync", client = %who, events = true);
                let _transfer = node.shutdown.transfer();
                let sync = serve_sync_with_events(
                    &node,
                    request,
                    who.clone(),
                    connection.remote_addr(),
                    &mut send,
                    &mut reader,
                )
                .instrument(span);
                tokio::select! {
                    done = sync => done,
                    _ = node.shutdown.reached(Phase::Aborting) => Err(ServeError::ShuttingDown),
                }
            }
            Ok(Some(StreamRequest::List(request))) => {
                drop(ticket.take());
                serve_list(&node, request, &who, &mut send)
                    .instrument(info_span!("list", client = %who))
                    .await
            }
            Ok(Some(StreamRequest::Stats)) => {
                drop(ticket.take());
                serve_stats(&node, &who, &mut send)
                    .instrument(info_span!("stats", client = %who))
                    .await
            }
            Ok(Some(StreamRequest::Put(request))) => {
                drop(ticket.take());
                let span = info_span!("put", client = %who, object = %request.id);
                let _transfer = node.shutdown.transfer();
                let put = serve_put(&node, request, &who, &mut send, &mut reader).instrument(span);
                tokio::select! {
                    done = put => done,
                    _ = node.shutdown.reached(Phase::Aborting) => Err(ServeError::ShuttingDown),
                }
            }
            // A cancel that crossed the report of its SYNC: nothing left to cancel.
            Ok(Some(StreamRequest::CancelSync)) => {
                debug!("a cancel after its SYNC ended; ignored");
                Ok(())
            }
            Err(error) => Err(error.into()),
        };
        if let Err(error) = result {
            if let Some(report) = refusal_report(&error, reader.buffered()) {
                // A well-formed SYNC that breaks a rule with a documented code (a duplicate ID:
                // 0x80): answer it with that code for every peer request, then end the stream.
                warn!(%error, "refusing SYNC");
                let _ = if is_sync_with_events(reader.buffered()) {
                    write_refusal(&mut send, &report, node.idle_timeout).await
                } else {
                    write_report(&mut send, &report, node.idle_timeout).await
                };
                return;
            }
            if let Some(status) = put_refusal(&error, reader.buffered()) {
                // A PUT of sizes past the limits: answer with their code (0x50, 0x51).
                warn!(%error, "refusing PUT");
                let mut bytes = Vec::with_capacity(1);
                encode_status(status, &mut bytes);
                let _ = send.write_message(&bytes, node.idle_timeout).await;
                let _ = send.finish().await;
                return;
            }
            if error.is_malformed() {
                warn!(%error, "malformed request; dropping the stream")
            } else {
                info!(%error, "exchange failed")
            }
            let _ = send.reset(1).await;
            return;
        }
    }
}

/// The report refusing a whole SYNC, when the decode error has a documented status code and
/// the bytes declare how many peer requests the SYNC had.
fn refusal_report(error: &ServeError, buffered: &[u8]) -> Option<SyncReport> {
    let ServeError::Decode(decode) = error else {
        return None;
    };
    let status = decode.status()?;
    let count = SyncRequest::declared_peer_request_count(buffered)?;
    Some(SyncReport::refused(count as usize, status))
}

/// The status refusing a PUT whose declared sizes break a limit.
fn put_refusal(error: &ServeError, buffered: &[u8]) -> Option<Status> {
    let ServeError::Decode(decode) = error else {
        return None;
    };
    (buffered.first() == Some(&StreamKind::Put.code()))
        .then(|| decode.status())
        .flatten()
}

/// Longest wait for a client to confirm it has the whole report (a few round trips at most on
/// any working link).
const REPORT_DELIVERY: std::time::Duration = std::time::Duration::from_secs(2);

async fn write_report(
    send: &mut SendStream,
    report: &SyncReport,
    timeout: std::time::Duration,
) -> Result<(), ServeError> {
    // Piece by piece: a maximal report is 361 MB encoded, one peer report at most 1.9 MB.
    // Each piece has its own idle timeout: a slow client is judged on progress, not on the
    // time a whole report takes.
    for piece in report.encode_pieces()? {
        send.write_message(&piece?, timeout).await?;
    }
    send.finish().await?;
    // Closing the connection at shutdown would discard bytes still in flight; but a client
    // that neither reads the end of the stream nor closes (killed, or an old client) must not
    // hold this transfer, and so a shutdown, for a whole idle timeout.
    send.wait_delivered(timeout.min(REPORT_DELIVERY)).await;
    Ok(())
}
