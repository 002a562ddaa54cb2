//! What every exchange of one server shares: the store, the in-flight sets, the endpoint used
//! to dial peers, timeouts and the shutdown signal.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use plasma_stream_certs::Fingerprint;
use plasma_stream_protocol::ObjectId;
use plasma_stream_transport::{Endpoint, ReadBudget};

use crate::access::AccessPolicy;
use crate::inflight::InFlightIds;
use crate::puller::RetryPolicy;
use crate::shutdown::Shutdown;

/// Bytes of undecoded requests all streams of one server may hold together, beyond each
/// stream's small free allowance. Without it, `-c` connections × streams × the longest message
/// would let a few clients make the server hold tens of GiB.
pub const READ_BUDGET: usize = 512 * 1024 * 1024;

/// The state one server shares between all its connections. Held in an `Arc`.
pub struct Node<S> {
    /// The local Plasma store (socket pool or embedded).
    pub store: S,
    /// How long a Get waits for an object to be sealed (`-t/--plasma-timeout`).
    pub store_timeout: Duration,
    /// Objects this server is receiving now (0x80 for a concurrent duplicate).
    pub receiving: InFlightIds,
    /// Objects a peer is taking from this server now (0x70 for anyone else asking).
    pub taking: InFlightIds,
    /// Longest wait for any progress on a stream.
    pub idle_timeout: Duration,
    /// How a received object's pages are mapped ahead of its bytes (`--prefault`).
    pub prefault: crate::options::Prefault,
    /// Share the send window between object streams round-robin (`--send-fairness`) instead
    /// of serving earlier-requested objects first.
    pub send_fairness: bool,
    /// Object streams in flight per peer request (bounds memory and open streams).
    pub streams_per_peer: usize,
    /// Dials peers (pooled: one connection per peer, shared by concurrent SYNCs).
    pub endpoint: Endpoint,
    /// This server's certificate fingerprint: a peer presenting it is this server.
    pub fingerprint: Fingerprint,
    /// Cluster CA mode (`--ca`): every accepted certificate is CA-issued, so its names are an
    /// identity (`subject:` lines of the access file).
    pub ca_mode: bool,
    /// The address this server listens on (port, and IP unless it is a wildcard).
    pub listen: SocketAddr,
    /// Tells exchanges to stop.
    pub shutdown: Shutdown,
    /// Undecoded request bytes all streams may hold together (see [`READ_BUDGET`]).
    pub read_budget: ReadBudget,
    /// Who may do what; replaced whole on SIGHUP (see [`Node::access`]).
    pub access: RwLock<Arc<AccessPolicy>>,
    /// Networks allowed to speak the plaintext legacy format.
    pub legacy_networks: Vec<ipnet::IpNet>,
    /// Networks of peers this server may dial (`--peer-allow`); empty: any.
    pub peer_networks: Vec<ipnet::IpNet>,
    /// Dials in progress at once, all SYNCs together (`--max-dials`).
    pub dials: tokio::sync::Semaphore,
    /// Whether an incoming object may evict sealed objects (`--evict-for-incoming`).
    pub evict_for_incoming: bool,
    /// How transient failures of a pull are retried.
    pub retry: RetryPolicy,
    /// What `--metrics` serves (counted whether or not it is served: a few atomics).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// When the server started (its uptime in `stats`).
    pub started: std::time::Instant,
}

impl<S> Node<S> {
    /// The access policy in force now (a snapshot: a reload does not change a decision
    /// already taken).
    /// Who the peer of `connection` is: its certificate, and in cluster CA mode the names
    /// the CA issued it for (a pinned certificate's names are only its owner's claim).
    pub fn who(&self, connection: &plasma_stream_transport::Connection) -> crate::access::Who {
        let fingerprint = connection.peer_fingerprint();
        if self.ca_mode {
            crate::access::Who::vouched(fingerprint, connection.peer_names())
        } else {
            crate::access::Who::certificate(fingerprint)
        }
    }

    pub fn access(&self) -> Arc<AccessPolicy> {
        match self.access.read() {
            Ok(policy) => policy.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts a new access policy in force.
    pub fn set_access(&self, policy: AccessPolicy) {
        let policy = Arc::new(policy);
        match self.access.write() {
            Ok(mut current) => *current = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
    }

    /// Whether `peer` may speak the plaintext legacy format.
    pub fn legacy_allowed(&self, peer: SocketAddr) -> bool {
        let ip = canonical_ip(peer.ip());
        self.legacy_networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether this server may dial `peer` to pull from it (`--peer-allow`).
    pub fn peer_allowed(&self, peer: SocketAddr) -> bool {
        let ip = canonical_ip(peer.ip());
        self.peer_networks.is_empty() || self.peer_networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether `peer` is (by address) this very server: the same port on a loopback, wildcard
    /// or our own bound address. The fingerprint check after connecting catches the rest.
    pub fn is_own_address(&self, peer: SocketAddr) -> bool {
        if peer.port() != self.listen.port() {
            return false;
        }
        let ip = canonical_ip(peer.ip());
        let own = canonical_ip(self.listen.ip());
        ip.is_unspecified()
            || ip == own
            || (ip.is_loopback() && (own.is_unspecified() || own.is_loopback()))
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The store crate's name for an object ID (same 20 bytes).
pub fn store_id(id: ObjectId) -> plasma_store::ObjectId {
    plasma_store::ObjectId(*id.as_bytes())
}

/// Shared handle to a [`Node`].
pub type SharedNode<S> = Arc<Node<S>>;
