//! The SYNC-with-events stream (kind `0x03`): the SYNC runs as on a plain SYNC stream, while
//! this side writes its progress to the client, then the detailed report
//! (`protocol::events`, `docs/protocol.md` §4.3).
//!
//! The SYNC runs in a task of its own, so a client that reads slowly delays only the events,
//! never a transfer: events are sampled from counters at most [`TICK`] apart, and a write
//! that waits for the client simply means the next sample coalesces everything that happened
//! meanwhile (intermediate byte counts are dropped; object state changes are queued, within a
//! bound; the final report is always sent).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use plasma_store::ObjectStore;
use plasma_stream_protocol::codec::DecodeError;
use plasma_stream_protocol::events::{DetailedReport, SyncEvent};
use plasma_stream_protocol::wire::{StreamRequest, SyncRequest};
use plasma_stream_transport::{MessageReader, ReadError, RecvStream, SendStream, TransportError};
use tracing::{debug, info, warn, Instrument};

use crate::access::Who;
use crate::error::ServeError;
use crate::node::Node;
use crate::progress::SyncProgress;
use crate::sync::run_sync_detailed;

/// Shortest time between two batches of events: at most ~10 per second per SYNC.
const TICK: Duration = Duration::from_millis(100);

/// Longest wait for a client to confirm it has the whole report.
const REPORT_DELIVERY: Duration = Duration::from_secs(2);

/// Aborts the SYNC's task if this side is dropped (the stream was abandoned at shutdown), as
/// dropping the future of a plain SYNC does.
struct AbortOnDrop(tokio::task::JoinHandle<DetailedReport>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a SYNC, writing its progress events and then its detailed report to `send`, and
/// cancels it if the client says so on `recv` ([`CANCEL_SYNC`](plasma_stream_protocol::wire::CANCEL_SYNC)).
pub async fn serve_sync_with_events<S: ObjectStore>(
    node: &Arc<Node<S>>,
    request: SyncRequest,
    client: Who,
    client_addr: SocketAddr,
    send: &mut SendStream,
    recv: &mut MessageReader<RecvStream>,
) -> Result<(), ServeError> {
    let objects = request.object_count();
    let progress = SyncProgress::new(
        request.peer_requests().iter().map(|p| p.objects().len()),
        true,
    );
    let task = {
        let node = node.clone();
        let progress = progress.clone();
        tokio::spawn(
            async move { run_sync_detailed(&node, request, client, client_addr, &progress).await }
                .in_current_span(),
        )
    };
    let mut task = AbortOnDrop(task);
    let mut last_sent: Option<Vec<plasma_stream_protocol::events::Progress>> = None;
    let mut events_ok = true;
    let mut listening = true;
    let report = loop {
        tokio::select! {
            biased;
            joined = &mut task.0 => break joined,
            // Reading is cancel-safe: bytes read stay buffered for the next call.
            message = recv.next(StreamRequest::decode), if listening => {
                listening = on_client_message(message, &progress);
                continue;
            }
            _ = tokio::time::sleep(TICK) => {}
        }
        if !events_ok {
            continue;
        }
        // The write may wait for the client: the SYNC's task goes on meanwhile.
        if let Err(error) = write_events(send, &progress, &mut last_sent, node.idle_timeout).await {
            // The client does not take events: stop sending them, let the SYNC finish, and
            // still try to deliver the report.
            warn!(%error, "cannot write SYNC progress events; sending only the report");
            events_ok = false;
        }
    };
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            warn!(%error, "the SYNC task failed");
            return Err(ServeError::ShuttingDown);
        }
    };
    if events_ok {
        // The last states and the final counts, before the report.
        write_events(send, &progress, &mut last_sent, node.idle_timeout).await?;
    }
    let dropped = progress.dropped_events();
    if dropped > 0 {
        debug!(
            dropped,
            "object events dropped for a slow client (the report has them all)"
        );
    }
    let written = write_report(send, report, node.idle_timeout).await;
    if objects > crate::heap::GIVE_BACK_ABOVE_OBJECTS {
        crate::heap::give_back_freed_memory();
    }
    written
}

/// What the client sent while its SYNC runs; `false` once there is nothing more to listen for.
/// The one message it may send is a cancel; the stream's end (the client sends no more) or
/// anything else ends the listening, never the SYNC, whose report is still owed.
fn on_client_message(
    message: Result<Option<StreamRequest>, ReadError<DecodeError>>,
    progress: &SyncProgress,
) -> bool {
    match message {
        Ok(Some(StreamRequest::CancelSync)) => {
            if progress.cancel() {
                info!("the client cancelled the SYNC: aborting the objects not yet sealed");
            }
            true
        }
        Ok(Some(_)) => {
            warn!("the client sent a request inside its running SYNC's stream; discarded it, and reading nothing more until the report");
            false
        }
        Ok(None) => false,
        // A SYNC may run for hours without a word from its client.
        Err(ReadError::Transport(TransportError::Idle(_))) => true,
        Err(error) => {
            debug!(%error, "cannot read from the client of a running SYNC; it can no longer cancel it");
            false
        }
    }
}

/// One batch: the queued object events, then the progress of every peer request (and the
/// whole SYNC) that changed since the last batch, in a single write.
async fn write_events(
    send: &mut SendStream,
    progress: &SyncProgress,
    last_sent: &mut Option<Vec<plasma_stream_protocol::events::Progress>>,
    timeout: Duration,
) -> Result<(), ServeError> {
    let mut bytes = Vec::new();
    for event in progress.take_events() {
        SyncEvent::Object(event).encode(&mut bytes)?;
    }
    let now = progress.snapshot();
    for (index, snapshot) in now.iter().enumerate() {
        let changed = last_sent
            .as_ref()
            .and_then(|last| last.get(index))
            .is_none_or(|last| last != snapshot);
        if changed {
            SyncEvent::Progress(*snapshot).encode(&mut bytes)?;
        }
    }
    *last_sent = Some(now);
    if bytes.is_empty() {
        return Ok(());
    }
    send.write_message(&bytes, timeout).await?;
    Ok(())
}

/// The detailed report: one message per peer request, then the end; then the stream ends.
pub async fn write_report(
    send: &mut SendStream,
    report: DetailedReport,
    timeout: Duration,
) -> Result<(), ServeError> {
    for event in report.into_events() {
        let mut bytes = Vec::with_capacity(event.encoded_len());
        event.encode(&mut bytes)?;
        send.write_message(&bytes, timeout).await?;
    }
    send.finish().await?;
    send.wait_delivered(timeout.min(REPORT_DELIVERY)).await;
    Ok(())
}

/// Whether a stream's first bytes are a SYNC-with-events request (so a refusal is answered
/// in that stream's reply format).
pub fn is_sync_with_events(buffered: &[u8]) -> bool {
    buffered.first() == Some(&plasma_stream_protocol::wire::StreamKind::SyncWithEvents.code())
}

/// A refused SYNC's report (every peer request carries the code, no per-object detail) in
/// the SYNC-with-events reply format.
pub async fn write_refusal(
    send: &mut SendStream,
    refused: &plasma_stream_protocol::wire::SyncReport,
    timeout: Duration,
) -> Result<(), ServeError> {
    let report = DetailedReport {
        peer_reports: refused
            .peer_reports
            .iter()
            .map(|p| plasma_stream_protocol::events::DetailedPeerReport {
                status: p.status,
                objects: Vec::new(),
            })
            .collect(),
    };
    write_report(send, report, timeout).await
}
