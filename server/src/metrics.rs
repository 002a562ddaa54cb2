//! What the server counts for `--metrics` (served by [`crate::metrics_endpoint`]), named by
//! Prometheus conventions under the prefix `plasma_stream_` (docs/deployment.md, "Metrics").
//!
//! The hot path stays cheap: every counter is a prometheus-client atomic; a transfer touches
//! them once per object (never per chunk), after one short read lock that finds the peer's
//! counters. Gauges that describe the moment (transfers in flight, the store's use) are set
//! when a scrape asks, not kept up to date by the transfers.
//!
//! Peers are labelled by IP address, without the port: a dialer on the TCP fallback uses a
//! fresh port for every socket, which would make a new label each time. At most
//! [`MAX_PEER_LABELS`] distinct peers get a label of their own; the rest are counted together
//! as [`OTHER_PEERS`], so a SYNC naming thousands of peers cannot grow the registry (and each
//! scrape) without bound. A label is never taken back: counters are cumulative.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use plasma_stream_protocol::events::DetailedReport;
use plasma_stream_protocol::Status;
use plasma_stream_transport::Connection;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::holder::Served;

/// Distinct peers that get a label of their own.
pub const MAX_PEER_LABELS: usize = 64;

/// The label of every peer past the first [`MAX_PEER_LABELS`].
pub const OTHER_PEERS: &str = "other";

/// QUIC connections whose lost-packet count is remembered between samples (so that only the
/// losses since the last sample are added). Past it, a new connection's losses are not
/// counted: a bound on memory that normal clusters (a few peers, one connection each) never
/// reach.
const MAX_TRACKED_CONNECTIONS: usize = 4096;

/// SYNC durations from 1 ms to ~9 min, doubling: small SYNCs on a LAN take milliseconds,
/// large ones minutes.
fn sync_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 20)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabel {
    /// `pull`: an object a SYNC asked this server to pull did not arrive; `serve`: this
    /// server refused an object a puller asked it for.
    side: &'static str,
    /// The status code in hex, as docs/protocol.md writes it (`0x90`).
    status: String,
    /// The status's meaning in words.
    name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Folds peer addresses into at most `cap` labels (see the module's comment).
#[derive(Debug)]
pub struct PeerLabels {
    cap: usize,
    known: RwLock<HashMap<IpAddr, String>>,
}

impl PeerLabels {
    pub fn new(cap: usize) -> Self {
        PeerLabels {
            cap,
            known: RwLock::new(HashMap::new()),
        }
    }

    /// The label of `peer`: its IP address (IPv4-mapped IPv6 as IPv4), or [`OTHER_PEERS`]
    /// once `cap` other addresses have labels.
    pub fn label(&self, peer: SocketAddr) -> String {
        let ip = canonical(peer.ip());
        if let Ok(known) = self.known.read() {
            if let Some(label) = known.get(&ip) {
                return label.clone();
            }
        }
        let Ok(mut known) = self.known.write() else {
            return OTHER_PEERS.to_owned();
        };
        if let Some(label) = known.get(&ip) {
            return label.clone();
        }
        if known.len() >= self.cap {
            return OTHER_PEERS.to_owned();
        }
        let label = ip.to_string();
        known.insert(ip, label.clone());
        label
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// What a scrape reads from the running server just before encoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Transfers (objects moving either way, SYNCs until their report is delivered).
    pub transfers_in_flight: u64,
    /// Bytes of live objects in the store, where the store says (the embedded one does).
    pub store_used: Option<u64>,
}

/// The counters summed over peers (see [`Metrics::totals`]).
#[derive(Debug, Default)]
pub struct Totals {
    pub received_bytes: u64,
    pub received_objects: u64,
    pub sent_bytes: u64,
    pub sent_objects: u64,
    pub failed_objects: u64,
    /// Each peer with bytes either way: its label, bytes received from it, bytes sent to it.
    pub peers: Vec<(String, u64, u64)>,
}

/// Every metric of one server, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    peers: PeerLabels,
    received_bytes: Family<PeerLabel, Counter>,
    received_objects: Family<PeerLabel, Counter>,
    sent_bytes: Family<PeerLabel, Counter>,
    sent_objects: Family<PeerLabel, Counter>,
    failures: Family<FailureLabel, Counter>,
    /// All failures, whatever their labels (not exported: the family's sum).
    failed_total: Counter,
    transfers_in_flight: Gauge,
    sync_duration: Histogram,
    quic_rtt: Family<PeerLabel, Gauge<f64, AtomicU64>>,
    quic_cwnd: Family<PeerLabel, Gauge>,
    quic_lost: Family<PeerLabel, Counter>,
    /// Per QUIC connection (quinn's stable id): the lost packets already counted.
    lost_seen: Mutex<HashMap<usize, u64>>,
    /// One counter per front-door reason, found by name without a lock.
    refused: Vec<(&'static str, Counter)>,
    store_used: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The registry of a server whose store has `store_capacity` bytes; `store_used_known`
    /// says whether the server samples the store's use (only then is that gauge exported: an
    /// external Plasma store's use is known only when `--metrics` has it listed, `store_use`).
    pub fn new(store_capacity: Option<u64>, store_used_known: bool) -> Self {
        let mut registry = Registry::with_prefix("plasma_stream");
        let received_bytes = Family::<PeerLabel, Counter>::default();
        registry.register_with_unit(
            "received",
            "Object bytes (data and metadata) this server received from each peer, including those of attempts that failed",
            Unit::Bytes,
            received_bytes.clone(),
        );
        let received_objects = Family::<PeerLabel, Counter>::default();
        registry.register(
            "received_objects",
            "Objects this server received from each peer and sealed in its store",
            received_objects.clone(),
        );
        let sent_bytes = Family::<PeerLabel, Counter>::default();
        registry.register_with_unit(
            "sent",
            "Object bytes (data and metadata) this server sent to each puller, counted when an object was sent whole",
            Unit::Bytes,
            sent_bytes.clone(),
        );
        let sent_objects = Family::<PeerLabel, Counter>::default();
        registry.register(
            "sent_objects",
            "Objects this server sent whole to each puller and that puller acknowledged",
            sent_objects.clone(),
        );
        let failures = Family::<FailureLabel, Counter>::default();
        registry.register(
            "object_failures",
            "Objects that did not move, by side (pull: a SYNC's object that did not arrive here; serve: an object this server refused a puller) and status",
            failures.clone(),
        );
        let transfers_in_flight = Gauge::default();
        registry.register(
            "transfers_in_flight",
            "Transfers in progress: objects moving either way, and SYNCs until their report is delivered",
            transfers_in_flight.clone(),
        );
        let sync_duration = Histogram::new(sync_buckets());
        registry.register_with_unit(
            "sync_duration",
            "Time from the start of a SYNC's transfers to its last object's outcome",
            Unit::Seconds,
            sync_duration.clone(),
        );
        let quic_rtt = Family::<PeerLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "quic_rtt",
            "Smoothed round-trip time of the QUIC connection to each peer, sampled when a peer request ends",
            Unit::Seconds,
            quic_rtt.clone(),
        );
        let quic_cwnd = Family::<PeerLabel, Gauge>::default();
        registry.register_with_unit(
            "quic_congestion_window",
            "Congestion window of the QUIC connection to each peer, sampled when a peer request ends",
            Unit::Bytes,
            quic_cwnd.clone(),
        );
        let quic_lost = Family::<PeerLabel, Counter>::default();
        registry.register(
            "quic_lost_packets",
            "Packets the QUIC connections to each peer lost, counted when a peer request ends",
            quic_lost.clone(),
        );
        let refused_family = Family::<ReasonLabel, Counter>::default();
        let refused = plasma_stream_transport::REFUSAL_REASONS
            .iter()
            .map(|reason| {
                (
                    *reason,
                    refused_family.get_or_create_owned(&ReasonLabel { reason }),
                )
            })
            .collect();
        registry.register(
            "connections_refused",
            "Inbound connection attempts the front door refused or dropped, by reason",
            refused_family,
        );
        if let Some(capacity) = store_capacity {
            let gauge = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
            gauge.set(i64::try_from(capacity).unwrap_or(i64::MAX));
            registry.register_with_unit(
                "store_capacity",
                "Capacity of the Plasma store (data and metadata of its objects)",
                Unit::Bytes,
                gauge,
            );
        }
        let store_used = Gauge::default();
        if store_used_known {
            registry.register_with_unit(
                "store_used",
                "Bytes of live objects in the Plasma store (an external store: at its last List, made every 10 s)",
                Unit::Bytes,
                store_used.clone(),
            );
        }
        Metrics {
            registry,
            peers: PeerLabels::new(MAX_PEER_LABELS),
            received_bytes,
            received_objects,
            sent_bytes,
            sent_objects,
            failures,
            failed_total: Counter::default(),
            transfers_in_flight,
            sync_duration,
            quic_rtt,
            quic_cwnd,
            quic_lost,
            lost_seen: Mutex::new(HashMap::new()),
            refused,
            store_used,
        }
    }

    fn peer(&self, peer: SocketAddr) -> PeerLabel {
        PeerLabel {
            peer: self.peers.label(peer),
        }
    }

    /// One object's pull from `peer` ended: `bytes` arrived (over all attempts), and it was
    /// sealed here if `arrived`. Its failure, if any, is counted with its SYNC
    /// ([`Metrics::sync_done`]), which sees every outcome, also those decided without a pull.
    pub fn pulled(&self, peer: SocketAddr, bytes: u64, arrived: bool) {
        let label = self.peer(peer);
        if bytes > 0 {
            self.received_bytes.get_or_create(&label).inc_by(bytes);
        }
        if arrived {
            self.received_objects.get_or_create(&label).inc();
        }
    }

    /// One OBJECT exchange this server held ended as `served` (an `Err`: the stream failed;
    /// its bytes are not counted).
    pub fn served<E>(&self, puller: SocketAddr, served: &Result<Served, E>) {
        match served {
            Ok(Served::Sent { ack, bytes, .. }) => {
                let label = self.peer(puller);
                self.sent_bytes.get_or_create(&label).inc_by(*bytes);
                if ack.is_success() {
                    self.sent_objects.get_or_create(&label).inc();
                }
            }
            Ok(Served::Refused(status)) => self.failed("serve", *status),
            Err(_) => {}
        }
    }

    /// What the counters say now, for a STATS request: totals over every peer, and each
    /// labelled peer's bytes (at most [`MAX_PEER_LABELS`] and `other`).
    pub fn totals(&self) -> Totals {
        let mut labels: Vec<String> = match self.peers.known.read() {
            Ok(known) => known.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        labels.sort();
        labels.push(OTHER_PEERS.to_owned());
        let value = |family: &Family<PeerLabel, Counter>, label: &PeerLabel| {
            family.get(label).map_or(0, |counter| counter.get())
        };
        let mut totals = Totals::default();
        for peer in labels {
            let label = PeerLabel { peer };
            let received = value(&self.received_bytes, &label);
            let sent = value(&self.sent_bytes, &label);
            totals.received_bytes += received;
            totals.sent_bytes += sent;
            totals.received_objects += value(&self.received_objects, &label);
            totals.sent_objects += value(&self.sent_objects, &label);
            if received > 0 || sent > 0 {
                totals.peers.push((label.peer, received, sent));
            }
        }
        totals.failed_objects = self.failed_total.get();
        totals
    }

    fn failed(&self, side: &'static str, status: Status) {
        self.failed_total.inc();
        self.failures
            .get_or_create(&FailureLabel {
                side,
                status: format!("{:#04x}", status.code()),
                name: status.message(),
            })
            .inc();
    }

    /// A SYNC's transfers ended after `elapsed`: its duration, and every object that did not
    /// arrive (an object already here, 0x81, is not a failure: it is where it was asked to be).
    pub fn sync_done(&self, report: &DetailedReport, elapsed: Duration) {
        self.sync_duration.observe(elapsed.as_secs_f64());
        for outcome in report.peer_reports.iter().flat_map(|p| &p.objects) {
            if !is_failure(outcome.status) {
                continue;
            }
            self.failed("pull", outcome.status);
        }
    }

    /// Samples the QUIC path to `peer` (RTT, congestion window, losses since the last sample
    /// of the same connection); nothing for a TCP connection.
    pub fn sample_path(&self, peer: SocketAddr, connection: &Connection) {
        let Some(quic) = connection.quic_connection() else {
            return;
        };
        let stats = quic.stats();
        let label = self.peer(peer);
        self.quic_rtt
            .get_or_create(&label)
            .set(stats.path.rtt.as_secs_f64());
        self.quic_cwnd
            .get_or_create(&label)
            .set(i64::try_from(stats.path.cwnd).unwrap_or(i64::MAX));
        let new_losses = match self.lost_seen.lock() {
            Ok(mut seen) => losses_since(&mut seen, quic.stable_id(), stats.path.lost_packets),
            Err(_) => 0,
        };
        if new_losses > 0 {
            self.quic_lost.get_or_create(&label).inc_by(new_losses);
        }
    }

    /// Counts a front-door refusal (the transport's [`plasma_stream_transport::RefusalHook`]).
    pub fn refused(&self, reason: &'static str) {
        if let Some((_, counter)) = self.refused.iter().find(|(name, _)| *name == reason) {
            counter.inc();
        }
    }

    /// The metrics as Prometheus scrapes them (the OpenMetrics text format), with the
    /// moment's gauges set from `sample` first.
    pub fn encode(&self, sample: Sample) -> Result<String, std::fmt::Error> {
        self.transfers_in_flight
            .set(i64::try_from(sample.transfers_in_flight).unwrap_or(i64::MAX));
        if let Some(used) = sample.store_used {
            self.store_used.set(i64::try_from(used).unwrap_or(i64::MAX));
        }
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Whether an object's outcome counts as a failure.
fn is_failure(status: Status) -> bool {
    !matches!(status, Status::Success | Status::AlreadyInStore)
}

/// The losses of connection `id` not counted yet, given its running total `lost`; remembers
/// it. A connection never seen before counts all its losses (unless the table is full).
fn losses_since(seen: &mut HashMap<usize, u64>, id: usize, lost: u64) -> u64 {
    if let Some(counted) = seen.get_mut(&id) {
        let new = lost.saturating_sub(*counted);
        *counted = (*counted).max(lost);
        return new;
    }
    if seen.len() < MAX_TRACKED_CONNECTIONS {
        seen.insert(id, lost);
        return lost;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use plasma_stream_protocol::events::{DetailedOutcome, DetailedPeerReport, Reason};
    use plasma_stream_protocol::ObjectId;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn peers_past_the_cap_fold_into_other_and_ports_do_not_count() {
        let labels = PeerLabels::new(2);
        assert_eq!(labels.label(addr("10.0.0.1:2021")), "10.0.0.1");
        // Another port of the same host (a TCP fallback socket) is the same peer.
        assert_eq!(labels.label(addr("10.0.0.1:40000")), "10.0.0.1");
        // IPv4 through a dual-stack socket is the same address.
        assert_eq!(labels.label(addr("[::ffff:10.0.0.1]:5")), "10.0.0.1");
        assert_eq!(labels.label(addr("[2001:db8::7]:2021")), "2001:db8::7");
        assert_eq!(labels.label(addr("10.0.0.3:2021")), OTHER_PEERS);
        assert_eq!(labels.label(addr("10.0.0.4:2021")), OTHER_PEERS);
        // Peers labelled before the cap keep their label.
        assert_eq!(labels.label(addr("10.0.0.1:2022")), "10.0.0.1");
        assert_eq!(labels.known.read().unwrap().len(), 2);
    }

    #[test]
    fn losses_are_counted_once_per_connection() {
        let mut seen = HashMap::new();
        assert_eq!(losses_since(&mut seen, 1, 5), 5);
        assert_eq!(losses_since(&mut seen, 1, 5), 0);
        assert_eq!(losses_since(&mut seen, 1, 8), 3);
        // A new connection starts from its own count.
        assert_eq!(losses_since(&mut seen, 2, 4), 4);
        assert_eq!(losses_since(&mut seen, 1, 9), 1);
    }

    fn outcome(n: u8, status: Status) -> DetailedOutcome {
        DetailedOutcome {
            id: ObjectId::from_bytes([n; 20]),
            status,
            reason: Reason::none(),
            bytes_moved: 0,
            attempts: 1,
            duration_ms: 0,
        }
    }

    /// The value of the sample line that starts with `series` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn encoding_names_follow_the_conventions_and_counts_add_up() {
        let metrics = Metrics::new(Some(1 << 30), true);
        let holder = addr("192.0.2.9:2021");
        metrics.pulled(holder, 100, true);
        metrics.pulled(holder, 50, false);
        let report = DetailedReport {
            peer_reports: vec![DetailedPeerReport::from_outcomes(vec![
                outcome(1, Status::Success),
                outcome(2, Status::NotFound),
                outcome(3, Status::AlreadyInStore),
                outcome(4, Status::NotFound),
            ])],
        };
        metrics.sync_done(&report, Duration::from_millis(20));
        metrics.served::<()>(
            addr("192.0.2.10:5000"),
            &Ok(Served::Sent {
                ack: Status::Success,
                deleted: false,
                bytes: 7,
            }),
        );
        metrics.served::<()>(
            addr("192.0.2.10:5001"),
            &Ok(Served::Refused(Status::NotFound)),
        );
        metrics.refused("per_source_limit");
        metrics.refused("not a reason");
        let text = metrics
            .encode(Sample {
                transfers_in_flight: 3,
                store_used: Some(4096),
            })
            .unwrap();
        let peer = "{peer=\"192.0.2.9\"}";
        assert_eq!(
            value(&text, &format!("plasma_stream_received_bytes_total{peer}")),
            Some(150.0)
        );
        assert_eq!(
            value(
                &text,
                &format!("plasma_stream_received_objects_total{peer}")
            ),
            Some(1.0)
        );
        let puller = "{peer=\"192.0.2.10\"}";
        assert_eq!(
            value(&text, &format!("plasma_stream_sent_bytes_total{puller}")),
            Some(7.0)
        );
        assert_eq!(
            value(&text, &format!("plasma_stream_sent_objects_total{puller}")),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "plasma_stream_object_failures_total{side=\"pull\",status=\"0x71\",name=\"object not found\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                "plasma_stream_object_failures_total{side=\"serve\",status=\"0x71\",name=\"object not found\"}"
            ),
            Some(1.0)
        );
        assert!(
            !text.contains("status=\"0x81\""),
            "0x81 is no failure:\n{text}"
        );
        assert_eq!(
            value(&text, "plasma_stream_sync_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(value(&text, "plasma_stream_transfers_in_flight"), Some(3.0));
        assert_eq!(value(&text, "plasma_stream_store_used_bytes"), Some(4096.0));
        assert_eq!(
            value(&text, "plasma_stream_store_capacity_bytes"),
            Some(f64::from(1u32 << 30))
        );
        assert_eq!(
            value(
                &text,
                "plasma_stream_connections_refused_total{reason=\"per_source_limit\"}"
            ),
            Some(1.0)
        );
        // Every reason exists from the start, at 0.
        assert_eq!(
            value(
                &text,
                "plasma_stream_connections_refused_total{reason=\"handshake_timeout\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn an_external_store_exports_no_use() {
        let text = Metrics::new(Some(1000), false)
            .encode(Sample::default())
            .unwrap();
        assert!(
            text.contains("plasma_stream_store_capacity_bytes 1000"),
            "{text}"
        );
        assert!(!text.contains("store_used"), "{text}");
    }
}
