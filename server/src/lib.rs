//! `plasma-stream-server`: runs beside a Plasma store, serves COPY/TAKE to peers and executes
//! SYNC requests from clients (`docs/design.md`, "One SYNC, step by step").
//!
//! How it is built (one idea per module):
//! - [`options`]: the command line, with the documented defaults;
//! - [`access`]: who may SYNC, COPY, TAKE or serve objects (`--access`, reloaded on SIGHUP);
//! - [`listener`]: accept loop, per-connection and per-exchange dispatch;
//! - [`sync`]: the SYNC dispatcher (validate, claim, pull from peers concurrently, report);
//! - [`puller`]: pulling one object into the local store (create, copy, seal, Ack), driving
//!   the shared `stream::pull` loop over `protocol::exchange::ObjectPull`;
//! - [`holder`]: serving one object out of the store's shared memory over
//!   `protocol::exchange::ObjectServe` (TAKE deletes after Ack);
//! - [`legacy`]: the original plaintext format behind `--legacy-tcp`;
//! - [`inflight`]: the *receiving* and *taking* ID sets; [`shutdown`]: drain, then abort;
//! - [`metrics`]: what is counted for `--metrics`; [`metrics_endpoint`]: its HTTP listener;
//! - [`error`]: errors → status codes.
//!
//! The server is generic over [`plasma_store::ObjectStore`]: the socket pool (any Plasma
//! store, e.g. pyarrow 11's `plasma_store`) or the embedded store's in-process handle.

pub mod access;
pub mod error;
pub mod heap;
pub mod holder;
pub mod inflight;
pub mod legacy;
pub mod listener;
pub mod metrics;
pub mod metrics_endpoint;
pub mod node;
pub mod options;
pub mod prefault;
pub mod progress;
pub mod puller;
pub mod reasons;
pub mod send_order;
pub mod shutdown;
pub mod store_requests;
pub mod store_use;
pub mod sync;
pub mod sync_events;

use std::sync::Arc;
use std::time::Duration;

use plasma_store::ObjectStore;
use plasma_stream_certs::{Identity, SharedTrust, Trust, TrustedFingerprints};
use plasma_stream_transport::{Endpoint, TransportConfig};
use tracing::{error, info, warn};

pub use error::StartError;
pub use options::Options;

use crate::inflight::InFlightIds;
use crate::node::Node;
use crate::shutdown::{Phase, Shutdown};

/// Connections the socket-store pool keeps (the Plasma store serves each one sequentially).
const STORE_CONNECTIONS: usize = 4;

/// Starts everything the options ask for and serves until SIGINT/SIGTERM.
pub async fn run(options: Options) -> Result<(), StartError> {
    if options.print_fingerprint {
        if let Some(dir) = &options.cert_dir {
            println!("{}", Identity::load_or_generate(dir)?.fingerprint());
        }
        return Ok(());
    }
    let trust = load_trust(&options)?;
    let identity = match (&options.cert_dir, &options.ca) {
        (Some(dir), Some(_)) => {
            let (cert, key) = (
                dir.join(plasma_stream_certs::CERT_FILE),
                dir.join(plasma_stream_certs::KEY_FILE),
            );
            if !cert.exists() || !key.exists() {
                return Err(StartError::Usage(format!(
                    "--ca needs a CA-issued certificate in --cert-dir {}: create it with \
                     `plasma-stream-cli --issue-cert {} --ca-dir <CA directory>`",
                    dir.display(),
                    dir.display()
                )));
            }
            Identity::load_pem(cert, key)?
        }
        (None, Some(_)) => {
            return Err(StartError::Usage(
                "--ca needs --cert-dir holding this server's CA-issued certificate".into(),
            ))
        }
        (Some(dir), None) => Identity::load_or_generate(dir)?,
        (None, None) => Identity::generate(["localhost", "plasma-stream"])?,
    };
    info!(fingerprint = %identity.fingerprint(), "this server's certificate fingerprint (peers and clients pin it with --trust)");

    match options.embedded_store {
        Some(capacity) => {
            let mut config =
                plasma_store::store::StoreConfig::new(&options.plasma_socket, capacity);
            config.populate = options.populate;
            let store = plasma_store::store::EmbeddedStore::start(config)?;
            info!(socket = %options.plasma_socket.display(), capacity, "embedded Plasma store running");
            let handle = store.handle();
            let used = {
                let handle = handle.clone();
                move || handle.allocated()
            };
            let result = serve(options, identity, trust, handle, Some(Box::new(used))).await;
            drop(store);
            result
        }
        None => {
            if !options.plasma_socket.exists() {
                return Err(StartError::Usage(format!(
                    "no Plasma store at {socket}: start one first (e.g. `plasma_store -m 4000000000 -s {socket}`), \
                     point -s/--plasma-socket at yours, or run the embedded store with `--embedded-store 4GiB`",
                    socket = options.plasma_socket.display()
                )));
            }
            let pool = plasma_store::pool::StorePool::connect(
                &options.plasma_socket,
                STORE_CONNECTIONS,
                Duration::from_secs(2),
            )
            .await?;
            info!(socket = %options.plasma_socket.display(), "connected to the Plasma store");
            // A socket store tells its use only by listing every object: with --metrics, a
            // task lists it now and then (`store_use`), and scrapes read the last count.
            let used: Option<StoreUse> = match options.metrics {
                Some(_) => {
                    let used =
                        store_use::sampled_by_listing(pool.clone(), store_use::REFRESH).await;
                    Some(Box::new(move || {
                        used.load(std::sync::atomic::Ordering::Relaxed)
                    }))
                }
                None => None,
            };
            serve(options, identity, trust, pool, used).await
        }
    }
}

/// The access policy of `--access`, or (said once, here) every trusted identity may do
/// anything.
fn load_access(options: &Options) -> Result<access::AccessPolicy, StartError> {
    match &options.access {
        Some(path) => {
            let policy = access::AccessPolicy::load(path)?;
            info!(file = %path.display(), "access policy loaded (reloaded on SIGHUP)");
            Ok(policy)
        }
        None => {
            info!(
                "no --access: every trusted identity may SYNC, COPY, TAKE and serve objects; \
                 `anonymous` (legacy) may copy and sync. Give --access FILE to separate \
                 clients from peers and read-only peers from those that may TAKE"
            );
            Ok(access::AccessPolicy::trusted_may_do_anything())
        }
    }
}

/// The trust of the options: pinned fingerprints or the cluster CA, less `--revoked`. Except
/// in insecure mode it is a [`SharedTrust`], so SIGHUP can replace it under the running
/// endpoint (inbound and outbound handshakes alike).
fn load_trust(options: &Options) -> Result<Trust, StartError> {
    let trust = with_revocations(trust_from(options)?, options)?;
    if trust.is_insecure() {
        return Ok(trust);
    }
    Ok(Trust::Shared(SharedTrust::new(trust)?))
}

/// SIGHUP: reads the trust (`--trust-file`, `--ca`, `--revoked`) and the access file again.
/// A file that does not parse leaves what it governs in force as it was (and says why, with
/// the file and line): a typo must not open or close the door. Each is replaced whole, so a
/// handshake sees the old set or the new one; connections already made are not judged again.
fn reload<S>(node: &Node<S>, options: &Options, trust: &Trust) {
    if reload_trust(options, trust) {
        // A pooled connection to a peer was judged by the old trust: new requests dial anew.
        node.endpoint.pool().forget_all();
    }
    reload_access(node, options);
}

/// True when the trust was replaced.
fn reload_trust(options: &Options, trust: &Trust) -> bool {
    let Trust::Shared(shared) = trust else {
        info!("SIGHUP: insecure mode, no trust to reload");
        return false;
    };
    let fresh = match trust_from(options).and_then(|t| with_revocations(t, options)) {
        Ok(fresh) => fresh,
        Err(error) => {
            error!(%error, "SIGHUP: trust not reloaded; the previous trust stays in force");
            return false;
        }
    };
    let before = shared.current();
    if let Err(error) = shared.replace(fresh) {
        error!(%error, "SIGHUP: trust not reloaded; the previous trust stays in force");
        return false;
    }
    let after = shared.current();
    let pins = |t: &Trust| -> std::collections::BTreeSet<plasma_stream_certs::Fingerprint> {
        t.pinned()
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    };
    let (old, new) = (pins(&before), pins(&after));
    let revoked = |t: &Trust| t.revoked().map_or(0, |r| r.len());
    info!(
        pinned = new.len(),
        pinned_added = new.difference(&old).count(),
        pinned_removed = old.difference(&new).count(),
        revoked_before = revoked(&before),
        revoked_now = revoked(&after),
        "SIGHUP: trust reloaded (new handshakes use it; connections already made are unaffected)"
    );
    true
}

fn reload_access<S>(node: &Node<S>, options: &Options) {
    let Some(path) = &options.access else {
        info!("SIGHUP: no --access file to reload");
        return;
    };
    match access::AccessPolicy::load(path) {
        Ok(policy) => {
            node.set_access(policy);
            info!(file = %path.display(), "SIGHUP: access policy reloaded");
        }
        Err(error) => {
            error!(%error, "SIGHUP: access file not reloaded; the previous policy stays in force")
        }
    }
}

/// Adds `--revoked`: those certificates are refused even if pinned or CA-issued.
fn with_revocations(trust: Trust, options: &Options) -> Result<Trust, StartError> {
    let Some(path) = &options.revoked else {
        return Ok(trust);
    };
    let revoked = plasma_stream_certs::RevocationList::from_file(path)?;
    info!(file = %path.display(), "revocation list loaded: its certificates are refused");
    Ok(trust.with_revoked(revoked))
}

fn trust_from(options: &Options) -> Result<Trust, StartError> {
    if let Some(ca) = &options.ca {
        let ca = plasma_stream_certs::ClusterCa::from_pem_file(ca)?;
        info!(ca = %ca.fingerprint(), "cluster CA mode: peers and clients need a certificate issued by this CA");
        return Ok(Trust::Ca(ca));
    }
    if options.insecure {
        warn!("************************************************************************");
        warn!("--insecure: ANY peer or client is accepted, certificates are not checked.");
        warn!("Anyone who can reach this port can read and TAKE (delete) objects.");
        warn!("Development only. Pin fingerprints with --trust / --trust-file instead.");
        warn!("************************************************************************");
        return Ok(Trust::Insecure);
    }
    let mut trusted = match &options.trust_file {
        Some(path) => TrustedFingerprints::from_file(path)?,
        None => TrustedFingerprints::new(),
    };
    for text in &options.trust {
        let fingerprint = text
            .parse()
            .map_err(|e| StartError::Usage(format!("--trust `{text}`: {e}")))?;
        trusted.add(fingerprint);
    }
    if trusted.is_empty() {
        warn!(
            "no trusted fingerprints: every peer and client will be refused until you add some \
               with --trust FINGERPRINT or --trust-file FILE (or use --insecure for development)"
        );
    }
    Ok(Trust::Pinned(trusted))
}

/// Tells the bytes of live objects in the store: the embedded store's own count, or a socket
/// store's at its last List (`store_use`).
type StoreUse = Box<dyn Fn() -> u64 + Send + Sync>;

async fn serve<S: ObjectStore>(
    options: Options,
    identity: Identity,
    trust: Trust,
    store: S,
    store_used: Option<StoreUse>,
) -> Result<(), StartError> {
    let capacity = store.capacity().await.ok();
    let metrics = Arc::new(metrics::Metrics::new(capacity, store_used.is_some()));
    let on_refusal = {
        let metrics = metrics.clone();
        plasma_stream_transport::RefusalHook::new(move |reason| metrics.refused(reason))
    };
    let config = TransportConfig {
        mode: options.transport,
        congestion: options.congestion,
        max_connections: options.max_connections,
        max_connections_per_identity: options.max_connections_per_identity as usize,
        max_handshakes: options.max_handshakes as usize,
        max_handshakes_per_source: options.max_handshakes_per_source as usize,
        inbound_handshake_timeout: options.handshake_timeout,
        quic_retry_above: options.quic_retry_above,
        legacy_tcp: options.legacy_tcp,
        send_fairness: options.send_fairness,
        on_refusal: Some(on_refusal),
        ..TransportConfig::default()
    };
    // Listen for SIGINT/SIGTERM before anyone can see this server (the ready file, the port):
    // a supervisor may stop it at once, and until tokio's handler is installed the default
    // action would kill the process without a drain.
    let mut signals = Signals::listen()?;
    let fingerprint = identity.fingerprint();
    let endpoint = Endpoint::server(options.listen_addr(), &identity, &trust, config).await?;
    let listen = endpoint
        .local_addr()
        .unwrap_or_else(|| options.listen_addr());
    info!(%listen, transport = ?options.transport, legacy_tcp = options.legacy_tcp, "listening");
    if options.legacy_tcp {
        let networks: Vec<String> = options
            .legacy_networks()
            .iter()
            .map(|n| n.to_string())
            .collect();
        warn!("************************************************************************");
        warn!(
            "--legacy-tcp: the plaintext format is accepted on TCP port {}.",
            listen.port()
        );
        warn!("No encryption, no identity: its requests act as `anonymous`.");
        warn!("Allowed from: {} (--legacy-allow).", networks.join(", "));
        warn!("************************************************************************");
    }
    if !options.peer_allow.is_empty() {
        let networks: Vec<String> = options.peer_allow.iter().map(|n| n.to_string()).collect();
        info!(
            "Peers dialled only in: {} (--peer-allow).",
            networks.join(", ")
        );
    }
    let shutdown = Shutdown::new();
    // Bound before the ready file is written: a ready server can be scraped, and a metrics
    // port already taken fails the start instead of a scrape later.
    let metrics_listener = match options.metrics {
        Some(addr) => Some(metrics_endpoint::bind(addr).await?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    if let Some(path) = &options.ready_file {
        // Written to a temporary name first, so a reader never sees half a line.
        let partial = path.with_extension("partial");
        let metrics_field = metrics_addr.map_or(String::new(), |addr| format!(" metrics={addr}"));
        std::fs::write(&partial, format!("{listen} {fingerprint}{metrics_field}\n"))?;
        std::fs::rename(&partial, path)?;
    }
    let scrapes = metrics_listener.map(|listener| {
        let sample: metrics_endpoint::Sampler = {
            let shutdown = shutdown.clone();
            Arc::new(move || metrics::Sample {
                transfers_in_flight: shutdown.transfers_in_flight() as u64,
                store_used: store_used.as_ref().map(|used| used()),
            })
        };
        tokio::spawn(metrics_endpoint::serve(listener, metrics.clone(), sample))
    });

    let access = load_access(&options)?;
    let node = Arc::new(Node {
        store,
        store_timeout: options.store_timeout(),
        receiving: InFlightIds::new(),
        taking: InFlightIds::new(),
        idle_timeout: Duration::from_secs(options.stream_timeout.max(1)),
        streams_per_peer: options.streams_per_peer.max(1),
        prefault: options.prefault,
        send_fairness: options.send_fairness,
        endpoint: endpoint.clone(),
        fingerprint,
        ca_mode: options.ca.is_some(),
        listen,
        shutdown: shutdown.clone(),
        read_budget: plasma_stream_transport::ReadBudget::new(node::READ_BUDGET),
        access: std::sync::RwLock::new(Arc::new(access)),
        legacy_networks: options.legacy_networks(),
        peer_networks: options.peer_allow.clone(),
        dials: tokio::sync::Semaphore::new(options.max_dials as usize),
        evict_for_incoming: options.evict_for_incoming,
        retry: puller::RetryPolicy {
            retries: options.retries,
            backoff: Duration::from_millis(options.retry_backoff),
        },
        metrics,
        started: std::time::Instant::now(),
    });
    let accept = tokio::spawn(listener::accept_loop(node.clone(), endpoint.clone()));

    while let Signal::Reload = signals.next().await {
        reload(&node, &options, &trust);
    }
    info!(
        in_flight = shutdown.transfers_in_flight(),
        "shutting down: draining transfers in flight"
    );
    shutdown.enter(Phase::Draining);
    let drain = Duration::from_secs(options.drain_timeout);
    tokio::select! {
        _ = shutdown.all_transfers_done() => info!("drained"),
        _ = tokio::time::sleep(drain) => warn!(in_flight = shutdown.transfers_in_flight(), "drain timeout: aborting transfers"),
        _ = signals.next_stop() => warn!("second signal: aborting transfers"),
    }
    shutdown.enter(Phase::Aborting);
    // Aborted receivers abort their unsealed objects as they unwind.
    if tokio::time::timeout(Duration::from_secs(5), shutdown.all_transfers_done())
        .await
        .is_err()
    {
        error!("some transfers did not stop within 5 s");
    }
    accept.abort();
    if let Some(scrapes) = scrapes {
        scrapes.abort();
    }
    endpoint.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    // Give background aborts a moment to reach the store.
    tokio::time::sleep(Duration::from_millis(100)).await;
    info!("stopped");
    Ok(())
}

/// What a signal asks for.
enum Signal {
    /// SIGHUP: reload the access policy.
    Reload,
    /// SIGINT or SIGTERM: drain, then stop.
    Stop,
}

/// SIGINT, SIGTERM and SIGHUP, listened for from the moment this is made (a signal that
/// arrives before a listener exists is either fatal or lost, so the listeners live for the
/// whole run; SIGHUP's default action would kill the server without a drain).
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves on the next signal.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Stop,
            _ = self.terminate.recv() => Signal::Stop,
            _ = self.hangup.recv() => Signal::Reload,
        }
    }

    /// Resolves on the next SIGINT or SIGTERM (a SIGHUP meanwhile is ignored).
    async fn next_stop(&mut self) {
        while let Signal::Reload = self.next().await {}
    }
}
