//! The puller's side of an OBJECT exchange, into the local store: the shared driver
//! (`stream::pull`, over the `protocol::exchange::ObjectPull` state machine) moves the bytes;
//! this file creates the object, writes the bytes straight into it as they arrive (one copy,
//! hashing on the way), seals it, and acknowledges. Never holds a whole object in memory.
//!
//! **Faults.** A transient failure (the connection failed, reset or stalled; the peer
//! restarted or is draining) is retried up to `--retries` times, after an exponential backoff
//! with jitter, on the peer's pooled connection (redialed if it died): one stream per object at
//! a time, never a burst of duplicates. If some data had arrived, the unsealed object is kept
//! and the retry asks only for the rest (a resume at the data offset it holds), then compares
//! the Plasma digest of everything received with the holder's digest of its whole object. An
//! object that changed at the holder meanwhile (other sizes, or a digest that differs) is
//! aborted and pulled again from 0, once; a second mismatch fails the object clearly.
//!
//! Any failure that is final aborts the unsealed object: nothing half-written stays.

use std::net::SocketAddr;
use std::time::Duration;

use plasma_store::digest::Digester;
use plasma_store::{NewObject, ObjectStore};
use plasma_stream_protocol::events::{DetailedOutcome, Reason, ReasonCode};
use plasma_stream_protocol::exchange::{ExchangeError, ObjectPull};
use plasma_stream_protocol::{ObjectId, Status, TransferKind};
use plasma_stream_transport::Connection;
use stream::pull::{self, PullError, Pulling, Started};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::access::Right;
use crate::error::local_store_status;
use crate::node::{store_id, Node};
use crate::options::Prefault;
use crate::progress::ObjectTrack;
use crate::reasons;
use crate::shutdown::Phase;

/// Longest wait between two attempts, whatever the backoff doubled to.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How transient failures are retried (`--retries`, `--retry-backoff`).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// The wait before the first retry; doubled for each next one (at most [`MAX_BACKOFF`]).
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first), with ±50 % jitter so that the
    /// objects of a link that failed at once do not all come back at once.
    pub fn delay(&self, retry: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        doubled.min(MAX_BACKOFF).mul_f64(0.5 + fastrand::f64())
    }

    /// The longest a whole object can spend waiting between attempts.
    pub fn total_backoff(&self) -> Duration {
        (1..=self.retries)
            .map(|retry| {
                self.backoff
                    .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
                    .min(MAX_BACKOFF)
                    .mul_f64(1.5)
            })
            .sum()
    }
}

/// Why a peer cannot serve a pull at all (every object of the peer request gets it).
#[derive(Debug, Clone)]
pub struct Unusable {
    /// The documented status.
    pub status: Status,
    /// Why, finer.
    pub reason: Reason,
    /// Dials made.
    pub attempts: u32,
}

/// The pooled connection to the holder, dialled with retries, or why it cannot be used.
pub async fn connect_holder<S: ObjectStore>(
    node: &Node<S>,
    peer: SocketAddr,
    sync_dials: &Semaphore,
) -> Result<Connection, Unusable> {
    let mut retry = 0;
    loop {
        // A permit of the SYNC's and of the server's dial budgets for each attempt, not held
        // through the backoff: unreachable peers cost at most the budgets' dials at once.
        let dialled = match (sync_dials.acquire().await, node.dials.acquire().await) {
            (Ok(_sync_permit), Ok(_permit)) => {
                debug!(%peer, "dialling the peer");
                node.endpoint.pooled(peer).await
            }
            // Closed semaphores: never closed; treat as the server going away.
            _ => {
                return Err(Unusable {
                    status: Status::PeerConnectionFailed,
                    reason: Reason::new(ReasonCode::ShuttingDown, "this server is shutting down"),
                    attempts: retry + 1,
                })
            }
        };
        match dialled {
            Ok(connection) => {
                return check_holder(node, connection).map_err(|(status, reason)| Unusable {
                    status,
                    reason,
                    attempts: retry + 1,
                })
            }
            Err(error) if retry < node.retry.retries => {
                retry += 1;
                let delay = node.retry.delay(retry);
                info!(%peer, %error, retry, ?delay, "cannot connect to the peer; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                warn!(%peer, %error, attempts = retry + 1, "cannot connect to the peer");
                return Err(Unusable {
                    status: Status::PeerConnectionFailed,
                    reason: reasons::transport(&error),
                    attempts: retry + 1,
                });
            }
        }
    }
}

/// The peer must not be this server, and must hold the `hold` right (a client's certificate,
/// or any identity without it, must not plant objects here). Checked on every (re)connection:
/// a restarted peer may present another certificate.
fn check_holder<S>(node: &Node<S>, connection: Connection) -> Result<Connection, (Status, Reason)> {
    if connection.peer_fingerprint() == Some(node.fingerprint) {
        warn!("refusing a peer request whose peer is this server (same certificate)");
        return Err((
            Status::PeerConnectionFailed,
            Reason::new(
                ReasonCode::PeerIsSelf,
                "the peer is this server (same certificate)",
            ),
        ));
    }
    let holder = node.who(&connection);
    if !node.access().allows(&holder, Right::Hold) {
        warn!(%holder, "refused the peer as a holder: the access policy does not grant `hold`");
        return Err((
            Status::NotPermitted,
            Reason::new(
                ReasonCode::NotPermitted,
                "the access policy does not grant the peer `hold`",
            ),
        ));
    }
    Ok(connection)
}

/// Pulls one object from `peer` into the local store, starting on `connection`. Always returns
/// the object's outcome: the documented status, why, the bytes that arrived (over all
/// attempts, also on failure), the attempts and the time it took.
pub async fn pull_object<S: ObjectStore>(
    node: &Node<S>,
    peer: SocketAddr,
    connection: &Connection,
    kind: TransferKind,
    track: &mut ObjectTrack,
) -> DetailedOutcome {
    let id = track.id();
    let _transfer = node.shutdown.transfer();
    let started = std::time::Instant::now();
    let sync = track.sync();
    // Biased: an object of a SYNC already cancelled (or a server already aborting) is never
    // requested from its holder.
    let (status, reason) = tokio::select! {
        biased;
        // Abort phase: dropping the pull drops (and so aborts) any unsealed object.
        _ = node.shutdown.reached(Phase::Aborting) => {
            (Status::PeerRequestFailed, Reason::new(ReasonCode::ShuttingDown, "this server is shutting down"))
        }
        // The same for a cancel by the SYNC's client.
        () = sync.cancelled() => reasons::cancelled(),
        outcome = pull_with_retries(node, peer, connection.clone(), kind, id, &mut *track) => outcome,
    };
    let outcome = DetailedOutcome {
        id,
        status,
        reason,
        bytes_moved: track.arrived(),
        attempts: track.attempts(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    node.metrics
        .pulled(peer, outcome.bytes_moved, outcome.status.is_success());
    debug!(object = %id, %kind, %peer, status = %outcome.status, reason = %outcome.reason,
        bytes = outcome.bytes_moved, attempts = outcome.attempts, elapsed_ms = outcome.duration_ms, "pulled");
    outcome
}

/// What an attempt left for the next one.
struct Partial {
    object: NewObject,
    digester: Digester,
    /// Data bytes `[0, data_received)` are in `object` and fed to `digester`.
    data_received: u64,
    data_size: u64,
    metadata_size: u64,
}

/// How one attempt ended.
// One value per attempt, moved once: not worth boxing the partial object.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    /// Final: the status and reason to report.
    Done(Status, Reason),
    /// Transient: retry (resuming from `partial`, if any); `status` and `reason` are what to
    /// report if no retry is left.
    Retry {
        error: String,
        status: Status,
        reason: Reason,
        partial: Option<Partial>,
    },
    /// The holder's object is not the one we hold part of: start over from 0.
    StartOver { error: String },
}

async fn pull_with_retries<S: ObjectStore>(
    node: &Node<S>,
    peer: SocketAddr,
    mut connection: Connection,
    kind: TransferKind,
    id: ObjectId,
    track: &mut ObjectTrack,
) -> (Status, Reason) {
    let mut partial: Option<Partial> = None;
    let mut started_over = false;
    let mut retry = 0;
    loop {
        track.attempt();
        let (error, last_status, last_reason) = match attempt(
            node,
            &connection,
            kind,
            id,
            partial.take(),
            &mut *track,
        )
        .await
        {
            Attempt::Done(status, reason) => {
                if retry > 0 {
                    info!(object = %id, %status, attempts = retry + 1, "pulled after retrying");
                }
                return (status, reason);
            }
            Attempt::Retry {
                error,
                status,
                reason,
                partial: kept,
            } => {
                partial = kept;
                (error, status, reason)
            }
            Attempt::StartOver { error } if !started_over => {
                // Once: an object that keeps changing under us is not one we can pull.
                started_over = true;
                warn!(object = %id, %error, "the holder's object changed; pulling it again from 0");
                continue;
            }
            Attempt::StartOver { error } => {
                warn!(object = %id, %error, "the holder's object changed again; giving up");
                return (
                    Status::PeerRequestFailed,
                    Reason::new(
                        ReasonCode::ObjectChanged,
                        format!("the peer's object changed twice while we pulled it: {error}"),
                    ),
                );
            }
        };
        if retry >= node.retry.retries {
            warn!(object = %id, %peer, attempts = retry + 1, last_error = %error, "giving up on the object");
            if let Some(partial) = partial {
                abort(partial.object).await;
            }
            return (last_status, last_reason);
        }
        retry += 1;
        // The connection may be dead without knowing it (a peer that restarted cannot reset
        // it): the retry dials anew, while exchanges still moving on it go on.
        node.endpoint.pool().forget(peer, &connection);
        let delay = node.retry.delay(retry);
        let resume_at = partial.as_ref().map_or(0, |p| p.data_received);
        info!(object = %id, %peer, %error, retry, ?delay, resume_at, "transient failure; retrying");
        tokio::time::sleep(delay).await;
        match node.endpoint.pooled(peer).await {
            Ok(fresh) => match check_holder(node, fresh) {
                Ok(fresh) => connection = fresh,
                Err(refusal) => {
                    if let Some(partial) = partial {
                        abort(partial.object).await;
                    }
                    return refusal;
                }
            },
            // Counts as a failed attempt: the next turn of the loop gives up or waits again
            // (on the old connection, which is as good as any while the peer is away).
            Err(error) => {
                info!(object = %id, %peer, %error, "cannot reconnect to the peer");
            }
        }
    }
}

/// A final status whose reason is the status's own.
fn failed(status: Status) -> Attempt {
    Attempt::Done(status, reasons::status(status))
}

/// A final failure caused by `error`.
fn failed_by(error: &PullError) -> Attempt {
    Attempt::Done(error.status(), reasons::pull(error))
}

/// Whether a failure is worth another attempt: the link or the peer failed, not the
/// protocol.
fn is_transient(error: &PullError) -> bool {
    match error {
        PullError::Transport(_) => true,
        PullError::Exchange(exchange) => matches!(
            exchange,
            ExchangeError::ShortBody { .. } | ExchangeError::Truncated { .. }
        ),
    }
}

/// One attempt: a fresh pull, or the rest of `partial`.
async fn attempt<S: ObjectStore>(
    node: &Node<S>,
    connection: &Connection,
    kind: TransferKind,
    id: ObjectId,
    partial: Option<Partial>,
    track: &mut ObjectTrack,
) -> Attempt {
    // Plain values: a reference to the partial object must not live across an await (its
    // store writer is `Send`, not `Sync`).
    let resume = partial
        .as_ref()
        .filter(|p| p.data_received > 0)
        .map(|p| (p.data_received, p.data_size, p.metadata_size));
    let request = match resume {
        Some((offset, data_size, metadata_size)) => {
            ObjectPull::resume(kind, id, offset, data_size, metadata_size).with_object_digest()
        }
        None => ObjectPull::new(kind, id),
    };
    let resuming = resume.is_some();
    let mut pulling = match pull::start(connection, request, node.idle_timeout).await {
        Ok(Started::Begin(pulling)) => *pulling,
        // A TAKE in progress holds the object at the holder: it ends (the object gone: 0x71
        // next time) or fails (the object stays), e.g. a TAKE of ours whose puller died and
        // whose stream the holder has not yet timed out. Worth waiting for, within the budget.
        Ok(Started::Refused(Status::BeingDeleted)) => {
            return Attempt::Retry {
                error: "a TAKE in progress at the holder claims the object (0x70)".into(),
                status: Status::BeingDeleted,
                reason: reasons::status(Status::BeingDeleted),
                partial,
            }
        }
        Ok(Started::Refused(status)) => {
            if let Some(partial) = partial {
                abort(partial.object).await;
            }
            return failed(status.as_reported_by_puller());
        }
        Err(PullError::Exchange(error @ ExchangeError::ObjectChanged { .. })) => {
            if let Some(partial) = partial {
                abort(partial.object).await;
            }
            return Attempt::StartOver {
                error: error.to_string(),
            };
        }
        Err(error) if is_transient(&error) => {
            return Attempt::Retry {
                error: error.to_string(),
                status: error.status(),
                reason: reasons::pull(&error),
                partial,
            }
        }
        Err(error) => {
            warn!(object = %id, peer = %connection.remote_addr(), %error, "object request failed");
            if let Some(partial) = partial {
                abort(partial.object).await;
            }
            return failed_by(&error);
        }
    };
    let body = pulling.body();
    track.started(body.data_size + body.metadata_size);
    if partial.is_none() && body.offset == 0 && is_inline(body.data_size, body.metadata_size) {
        return pull_inline(node, connection, pulling, id, track).await;
    }
    let mut partial = match partial {
        // The holder honoured the resume, or started over (offset 0) on the same object
        // (its sizes were checked against ours): either way, continue in the object we have.
        Some(mut partial) => {
            if body.offset == 0 {
                partial.digester = Digester::new(body.data_size);
                partial.data_received = 0;
            }
            partial
        }
        None => match create(node, id, body.data_size, body.metadata_size).await {
            Ok(object) => Partial {
                object,
                digester: Digester::new(body.data_size),
                data_received: 0,
                data_size: body.data_size,
                metadata_size: body.metadata_size,
            },
            Err(status) => {
                // Tell the holder (a TAKE keeps its copy), then drop the exchange.
                pulling.give_up(status).await;
                return failed(status);
            }
        },
    };
    if node.prefault == Prefault::Background && partial.data_received == 0 {
        crate::prefault::populate_in_background(partial.object.data_mut());
    }

    let received = receive_body(&mut pulling, &mut partial, node.prefault, track).await;
    if let Err(error) = received {
        let peer = connection.remote_addr();
        if is_transient(&error) {
            return Attempt::Retry {
                error: error.to_string(),
                status: error.status(),
                reason: reasons::pull(&error),
                partial: Some(partial),
            };
        }
        warn!(object = %id, %peer, %error, "receiving the object failed; aborting it");
        abort(partial.object).await;
        return failed_by(&error);
    }
    let Partial {
        mut object,
        digester,
        ..
    } = partial;
    let digest = digester.finish(object.metadata_mut());
    if resuming {
        if let Some(holder) = pulling.holder_object_digest() {
            if holder != digest {
                pulling.give_up(Status::PeerRequestFailed).await;
                abort(object).await;
                return Attempt::StartOver {
                    error: format!(
                        "the resumed object's digest {} differs from the holder's {}",
                        hex::encode(digest),
                        hex::encode(holder)
                    ),
                };
            }
        }
    }
    if let Err(error) = object.seal(digest).await {
        warn!(object = %id, %error, "sealing failed");
        let _ = pulling.finish(Status::StoreError).await;
        return Attempt::Done(
            Status::StoreError,
            Reason::new(
                ReasonCode::LocalStoreError,
                format!("sealing in the local store failed: {error}"),
            ),
        );
    }
    acknowledge(pulling, id).await;
    Attempt::Done(Status::Success, Reason::none())
}

/// Objects up to this size (data and metadata) are received into memory and stored with one
/// CreateAndSeal: beside a socket store each store call is a round trip through a
/// connection thread and the store's event loop, and Create, Seal and Release are three of
/// them. At most `--streams-per-peer` of these buffers exist per peer request.
pub const INLINE_MAX: u64 = 64 * 1024;

fn is_inline(data_size: u64, metadata_size: u64) -> bool {
    data_size
        .checked_add(metadata_size)
        .is_some_and(|total| total <= INLINE_MAX)
}

/// A small object, whole: received into memory (its sizes checked against [`INLINE_MAX`]
/// first), then created, filled and sealed in the store in one step. Nothing unsealed exists
/// in the store meanwhile, so a failed attempt leaves nothing to abort or resume: a retry
/// starts over (it is at most 64 KiB).
async fn pull_inline<S: ObjectStore>(
    node: &Node<S>,
    connection: &Connection,
    mut pulling: Pulling,
    id: ObjectId,
    track: &mut ObjectTrack,
) -> Attempt {
    let body = pulling.body();
    // Both sizes are at most INLINE_MAX (checked by `is_inline`).
    let mut metadata = vec![0u8; body.metadata_size as usize];
    let mut data = vec![0u8; body.data_size as usize];
    let mut digester = Digester::new(body.data_size);
    let received = async {
        pulling.read_metadata(&mut metadata).await?;
        track.received(body.metadata_size);
        pulling
            .read_data(&mut data, |chunk| {
                digester.update(chunk);
                track.received(chunk.len() as u64);
            })
            .await
    }
    .await;
    if let Err(error) = received {
        if is_transient(&error) {
            return Attempt::Retry {
                error: error.to_string(),
                status: error.status(),
                reason: reasons::pull(&error),
                partial: None,
            };
        }
        warn!(object = %id, peer = %connection.remote_addr(), %error, "receiving the object failed");
        return failed_by(&error);
    }
    let digest = digester.finish(&metadata);
    let stored = node
        .store
        .create_and_seal(
            store_id(id),
            data,
            metadata,
            digest,
            node.evict_for_incoming,
        )
        .await;
    if let Err(error) = stored {
        let status = local_store_status(&error);
        warn!(object = %id, %error, "cannot store the object in the local store");
        // Not an Ack of a sealed object: a TAKE's holder keeps its copy.
        let _ = pulling.finish(status).await;
        return failed(status);
    }
    acknowledge(pulling, id).await;
    Attempt::Done(Status::Success, Reason::none())
}

/// Acknowledges a sealed object (a TAKE's holder then deletes it and says how that went).
async fn acknowledge(pulling: Pulling, id: ObjectId) {
    match pulling.finish(Status::Success).await {
        Ok(Some(status)) if !status.is_success() => {
            warn!(object = %id, %status, "the holder kept its copy after TAKE")
        }
        Ok(_) => {}
        // The object is sealed here; without our Ack a TAKE's holder keeps its copy.
        Err(error) => warn!(object = %id, %error, "acknowledgement or delete result failed"),
    }
}

/// Creates the object in the local store. Without `--evict-for-incoming` the store may not
/// evict for it: an object that does not fit fails with 0x64, and nothing here is lost (a
/// holder that declares a huge size cannot wipe this store). The declared size is checked
/// by the store against its free space before anything is allocated.
pub(crate) async fn create<S: ObjectStore>(
    node: &Node<S>,
    id: ObjectId,
    data_size: u64,
    metadata_size: u64,
) -> Result<NewObject, Status> {
    let created = if node.evict_for_incoming {
        node.store
            .create(store_id(id), data_size, metadata_size)
            .await
    } else {
        node.store
            .create_without_eviction(store_id(id), data_size, metadata_size)
            .await
    };
    created.map_err(|error| {
        let status = local_store_status(&error);
        warn!(object = %id, %error, "cannot create the object in the local store");
        status
    })
}

/// Metadata, then data from the body's offset, straight into the object, feeding the digest
/// as the data arrives (no second pass over the object). On failure `partial` says how much
/// data arrived, for a resume.
async fn receive_body(
    pulling: &mut Pulling,
    partial: &mut Partial,
    prefault: Prefault,
    track: &mut ObjectTrack,
) -> Result<(), PullError> {
    pulling.read_metadata(partial.object.metadata_mut()).await?;
    track.received(partial.metadata_size);
    let offset = usize::try_from(partial.data_received).unwrap_or(usize::MAX);
    let Partial {
        object,
        digester,
        data_received,
        ..
    } = partial;
    let target = object.data_mut().get_mut(offset..).unwrap_or_default();
    let prepare = |window: &mut [u8]| {
        if prefault == Prefault::Window {
            crate::prefault::populate_window(window);
        }
    };
    let result = pulling
        .read_data_prepared(target, prepare, |chunk| {
            digester.update(chunk);
            *data_received += chunk.len() as u64;
            track.received(chunk.len() as u64);
        })
        .await;
    result
}

pub(crate) async fn abort(object: NewObject) {
    let id = object.id;
    if let Err(error) = object.abort().await {
        warn!(object = %id, %error, "abort failed (the store frees it when we disconnect)");
    }
}
