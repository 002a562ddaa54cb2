//! Transport tuning, one documented field at a time (in the spirit of quinn's
//! `TransportConfig`): what each knob does, and why its default is what it is. The same
//! defaults in one table: docs/transport.md, "Tuning"; the measurements behind them:
//! docs/benchmarks.md. Not here: sockets, dialing, listening (the endpoint's).

use std::sync::Arc;
use std::time::Duration;

use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
use quinn::{IdleTimeout, VarInt};

/// Which transports an endpoint listens on and dials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransportMode {
    /// Listen on both; dial QUIC first and fall back to TLS over TCP when QUIC cannot connect
    /// within [`TransportConfig::quic_connect_timeout`] (UDP blocked somewhere on the path).
    #[default]
    Auto,
    /// QUIC only: no TCP/TLS listener (unless `legacy_tcp`), no fallback when dialing.
    Quic,
    /// TLS over TCP only: no UDP socket at all. What a server behind a UDP-blocking firewall,
    /// or a test of the fallback, uses.
    Tcp,
}

impl std::str::FromStr for TransportMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(TransportMode::Auto),
            "quic" => Ok(TransportMode::Quic),
            "tcp" => Ok(TransportMode::Tcp),
            _ => Err(format!(
                "unknown transport {text:?}: expected auto, quic or tcp"
            )),
        }
    }
}

/// The QUIC congestion controller.
///
/// Loss-based controllers (Cubic, NewReno) collapse under random loss on a long link, where
/// BBR keeps much of the link's rate (measured in docs/benchmarks.md, scenario S4). On a clean
/// LAN or loopback they are all equivalent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CongestionControl {
    /// quinn's default and the kernel's; the safe choice on shared links.
    #[default]
    Cubic,
    /// The classic AIMD controller; mostly for comparison.
    NewReno,
    /// Model-based: best on long fat or lossy links (WAN), where it is the lever that matters.
    Bbr,
}

impl std::str::FromStr for CongestionControl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "cubic" => Ok(CongestionControl::Cubic),
            "newreno" | "new-reno" | "reno" => Ok(CongestionControl::NewReno),
            "bbr" => Ok(CongestionControl::Bbr),
            _ => Err(format!(
                "unknown congestion controller {text:?}: expected cubic, newreno or bbr"
            )),
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// What one stream of an inbound connection may send ahead of the server's reading: a request
/// of 1 MiB takes one round trip of window (a maximal 249 MB SYNC ~250 round trips, seconds on
/// a LAN; such SYNCs are rare, requests of a few bytes are the rule).
pub(crate) const INBOUND_STREAM_RECEIVE_WINDOW: u64 = MIB;

/// What all streams of an inbound connection together may send ahead of the server's reading.
pub(crate) const INBOUND_RECEIVE_WINDOW: u64 = 2 * MIB;

/// Largest loopback datagram: 10 GSO segments of it must fit the kernel's 64 KiB limit.
pub(crate) const MAX_LOOPBACK_MTU: u16 = 6500;

/// Everything the transport lets an operator tune. [`Default`] is right for a LAN and good
/// for a WAN up to ~1 Gbit/s × 100 ms; each field says why.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Which transports to listen on and dial. Default [`TransportMode::Auto`].
    pub mode: TransportMode,

    /// How long a QUIC dial may take before Auto mode gives up on it and tries TLS over TCP.
    /// Default 1.5 s: a QUIC handshake on any sane path takes one or two RTTs (well under
    /// 0.5 s); waiting longer only delays the fallback when UDP is silently dropped.
    pub quic_connect_timeout: Duration,

    /// Limit on a whole outbound handshake (TCP connect + TLS, or QUIC in Quic mode).
    /// Default 10 s: generous for slow links; it only bounds how long a dialer waits. The
    /// inbound side has its own, shorter limit ([`TransportConfig::inbound_handshake_timeout`]).
    pub handshake_timeout: Duration,

    /// How long an inbound connection may take from its first packet (QUIC) or its accept
    /// (TCP) to a completed, authenticated TLS handshake; after it the attempt is dropped and
    /// its place in the handshake budget freed (`--handshake-timeout`). Default 3 s: a real
    /// handshake takes 1–3 round trips (milliseconds on a LAN, well under a second across a
    /// continent, with room for a lost flight or two), while every second allowed is a second
    /// a silent socket keeps its place: the budget divided by this is the rate of new stalled
    /// handshakes that can lock out newcomers (64 / 3 s ≈ 21 per second, from one source
    /// prefix at most 16 at a time).
    pub inbound_handshake_timeout: Duration,

    /// Inbound handshakes in progress at once, QUIC and TCP together (`--max-handshakes`): the
    /// budget for unauthenticated work, separate from `max_connections`. One more is refused
    /// at once (QUIC: CONNECTION_REFUSED; TCP: a TLS `internal_error` alert), which the
    /// dialer reports as the peer being busy. Default 64: a legitimate handshake holds its
    /// place for milliseconds, so 64 places carry thousands of handshakes per second, while 64
    /// half-open handshakes cost at most a few MiB (quinn connection state or a socket and a
    /// rustls session each; the flood measurements are in docs/operations.md).
    pub max_handshakes: usize,

    /// Of [`TransportConfig::max_handshakes`], how many one source may have in progress: one
    /// IPv4 address or one IPv6 /64 (`--max-handshakes-per-source`). One attacking host then
    /// cannot take the whole budget. Default 16: a peer on the TCP fallback dials up to
    /// `tcp_sockets_per_peer` (8) sockets at once, and a client may share its host. QUIC source
    /// addresses are validated first (see [`TransportConfig::quic_retry_above`]), so a spoofed
    /// source cannot use up a victim's share.
    pub max_handshakes_per_source: usize,

    /// QUIC address validation: an Initial from a source address not yet validated is
    /// answered with a stateless Retry when at least this many handshakes are in progress
    /// (`--quic-retry-above`). Default 0, Retry always: a spoofed or replayed Initial then
    /// costs one small packet and no state, no TLS work and no place in the budget, and the
    /// per-source limit counts only addresses that proved they receive our packets. The price
    /// is one round trip on each new QUIC connection, paid once per pooled connection (peers
    /// keep theirs for as long as they are used). `usize::MAX` disables Retry.
    pub quic_retry_above: usize,

    /// How often refused inbound attempts are summarised in the log: the first refusal of each
    /// reason in an interval is logged at once, the rest in one line at its end. Default 10 s.
    pub refusal_log_interval: Duration,

    /// A connection with no traffic for this long is closed (QUIC idle timeout; TCP sockets
    /// idle in the client pool are dropped after it; inbound TCP reads time out after it).
    /// Keep-alives are sent at a third of it, so pooled QUIC connections stay up.
    /// Default 60 s.
    pub idle_timeout: Duration,

    /// Per-stream receive window (QUIC `stream_receive_window`): the most one object stream
    /// can have in flight. One stream moves at most window / RTT, so it must cover
    /// bandwidth × delay: 16 MiB gives ~1.3 Gbit/s at 100 ms (quinn's 1.25 MB default caps a
    /// stream at ~0.18 Gbit/s at 50 ms). Worst-case memory is streams in flight × this.
    pub stream_receive_window: u64,

    /// Per-connection receive window (QUIC `receive_window`): all streams of a connection
    /// together. Default 32 MiB, twice the stream window so two large objects interleave.
    pub receive_window: u64,

    /// Per-connection send window (QUIC `send_window`): unacknowledged bytes the sender keeps.
    /// Default 32 MiB, matching the receive window (more cannot be used).
    pub send_window: u64,

    /// Most bidirectional streams a peer may open at once on one QUIC connection (one per
    /// object). Default 256: enough to hide latency for small objects while bounding memory;
    /// callers bound their own streams in flight below this.
    pub max_concurrent_bidi_streams: u32,

    /// QUIC congestion controller. Default Cubic; choose BBR for lossy long links.
    pub congestion: CongestionControl,

    /// Requested `SO_RCVBUF` / `SO_SNDBUF` of the UDP socket. The kernel default (~212 KB)
    /// overflows at the rates QUIC reaches: the receiver loses packets and Cubic halves its
    /// window. Default 32 MiB, the connection receive window: a peer may not send more than
    /// that ahead, so one connection cannot overflow it (smaller buffers still lost packets on
    /// loopback; figures in docs/benchmarks.md and docs/transport.md, "Measured"). The kernel
    /// caps the request at `net.core.rmem_max` / `wmem_max` unless the process has
    /// CAP_NET_ADMIN, in which case `SO_RCVBUFFORCE` is used; the effective size is logged at
    /// debug level. Memory is kernel memory, used only while the receiver lags.
    pub udp_socket_buffer: usize,

    /// Authenticated inbound connections served at once, QUIC and TCP together
    /// (`-c/--max-connections`). A connection takes its slot only once its handshake has
    /// completed (handshakes have their own budget, [`TransportConfig::max_handshakes`]), so
    /// peers that never authenticate cannot take slots. When all are taken, a new attempt is
    /// refused before its handshake (QUIC: CONNECTION_REFUSED; TCP: a TLS `internal_error`
    /// alert), and one that completes its handshake just as the last slot goes is closed with
    /// the reason "at its connection limit"; existing connections are unaffected. Default 128.
    pub max_connections: usize,

    /// Of [`TransportConfig::max_connections`], how many one certificate (one peer server or
    /// client identity) may hold at once (`--max-connections-per-identity`); one more is closed
    /// after its handshake with the reason "this identity is at its connection limit". Default
    /// 32: a peer needs one QUIC connection per link, or up to `tcp_sockets_per_peer` (8) TCP
    /// sockets; 32 leaves room for several processes sharing an identity, while four
    /// identities at most can fill the default 128.
    pub max_connections_per_identity: usize,

    /// Accept the original plaintext byte format on the TCP port ([`crate::Incoming::Legacy`]).
    /// Default false: nothing goes over the network unencrypted unless asked for.
    pub legacy_tcp: bool,

    /// TLS-over-TCP sockets one client-side TCP connection may have busy at once (the fallback
    /// has no streams, so parallel exchanges need parallel sockets). Default 8.
    pub tcp_sockets_per_peer: usize,

    /// Let quinn use UDP segmentation offload (one syscall for ~10 datagrams). Default on;
    /// off only to work around a broken driver.
    pub segmentation_offload: bool,

    /// Starting UDP payload size for connections to a loopback address, where the path MTU is
    /// 64 KiB: bigger datagrams mean fewer packets, and per-packet cost (syscalls, AES-GCM
    /// per packet, ACKs) is what limits QUIC. Capped at 6,500 because quinn sends up to 10
    /// datagrams per GSO call and the kernel refuses GSO batches over 64 KiB (8,192 made quinn
    /// detect a "black hole" and fall back to 1,200). Other paths start at 1,200 and probe up
    /// to 1,452. Default 6,500, which moved an object between two servers faster than 4,096
    /// did (docs/benchmarks.md, "Tuning, 2026-11-26"); 0 disables it.
    pub loopback_mtu: u16,

    /// Ask the peer to acknowledge only every `ack_eliciting_threshold + 1` packets (QUIC ACK
    /// frequency extension; quinn peers honour it). Fewer ACKs mean less per-packet work on
    /// the receiver, which is where QUIC stacks lose to TCP. `None` keeps the standard "ACK
    /// every other packet". Default: see [`TransportConfig::default`].
    pub ack_eliciting_threshold: Option<u32>,

    /// Fair sharing of the send window between streams (quinn's `send_fairness`). Fairness
    /// interleaves streams so no object waits behind another; turning it off sends streams more
    /// nearly one after another, which helps when many small objects are queued. Default on.
    pub send_fairness: bool,

    /// Told each inbound attempt the front door refuses or drops, by reason (see
    /// [`crate::RefusalHook`]); the server counts them in its metrics. Default none.
    pub on_refusal: Option<crate::RefusalHook>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            mode: TransportMode::Auto,
            quic_connect_timeout: Duration::from_millis(1500),
            handshake_timeout: Duration::from_secs(10),
            inbound_handshake_timeout: Duration::from_secs(3),
            max_handshakes: 64,
            max_handshakes_per_source: 16,
            quic_retry_above: 0,
            refusal_log_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            stream_receive_window: 16 * MIB,
            receive_window: 32 * MIB,
            send_window: 32 * MIB,
            max_concurrent_bidi_streams: 256,
            congestion: CongestionControl::Cubic,
            udp_socket_buffer: 32 * MIB as usize,
            max_connections: 128,
            max_connections_per_identity: 32,
            legacy_tcp: false,
            tcp_sockets_per_peer: 8,
            segmentation_offload: true,
            loopback_mtu: MAX_LOOPBACK_MTU,
            ack_eliciting_threshold: None,
            send_fairness: true,
            on_refusal: None,
        }
    }
}

impl TransportConfig {
    /// The quinn transport configuration these settings describe; `loopback` selects the larger
    /// starting datagram size.
    ///
    /// `inbound`: for connections a server accepts. What arrives on them is requests and
    /// acknowledgements (objects flow from the accepting side to the dialer), so the windows
    /// the peer may fill are small: quinn then buffers at most [`INBOUND_RECEIVE_WINDOW`]
    /// received-but-unread bytes per inbound connection, instead of `receive_window` (32 MiB,
    /// which 128 connections would turn into 4 GiB outside every budget).
    pub(crate) fn quinn_transport(
        &self,
        loopback: bool,
        inbound: bool,
    ) -> Arc<quinn::TransportConfig> {
        let (stream_window, connection_window) = if inbound {
            (
                self.stream_receive_window
                    .min(INBOUND_STREAM_RECEIVE_WINDOW),
                self.receive_window.min(INBOUND_RECEIVE_WINDOW),
            )
        } else {
            (self.stream_receive_window, self.receive_window)
        };
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(varint(self.max_concurrent_bidi_streams as u64))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(varint(stream_window))
            .receive_window(varint(connection_window))
            .send_window(self.send_window)
            .max_idle_timeout(IdleTimeout::try_from(self.idle_timeout).ok())
            .keep_alive_interval(Some(self.idle_timeout / 3))
            .initial_rtt(Duration::from_millis(100))
            .enable_segmentation_offload(self.segmentation_offload)
            .send_fairness(self.send_fairness);
        if let Some(threshold) = self.ack_eliciting_threshold {
            let mut ack_frequency = quinn::AckFrequencyConfig::default();
            ack_frequency.ack_eliciting_threshold(VarInt::from_u32(threshold));
            transport.ack_frequency_config(Some(ack_frequency));
        }
        let loopback_mtu = self.loopback_mtu.min(MAX_LOOPBACK_MTU);
        if loopback && loopback_mtu > 1200 {
            transport.initial_mtu(loopback_mtu);
            let mut discovery = quinn::MtuDiscoveryConfig::default();
            discovery.upper_bound(loopback_mtu.max(1452));
            transport.mtu_discovery_config(Some(discovery));
        }
        match self.congestion {
            CongestionControl::Cubic => {
                transport.congestion_controller_factory(Arc::new(CubicConfig::default()))
            }
            CongestionControl::NewReno => {
                transport.congestion_controller_factory(Arc::new(NewRenoConfig::default()))
            }
            CongestionControl::Bbr => {
                transport.congestion_controller_factory(Arc::new(BbrConfig::default()))
            }
        };
        Arc::new(transport)
    }
    /// The quinn settings of a connection this transport dials (`loopback`: to a loopback
    /// address), for tools that must run quinn exactly as the product does: the benchmark's
    /// bare-quinn peer measures what quinn itself costs under these settings.
    pub fn dialer_quinn_transport(&self, loopback: bool) -> Arc<quinn::TransportConfig> {
        self.quinn_transport(loopback, false)
    }

    /// The quinn endpoint configuration these settings describe.
    pub fn quinn_endpoint(&self) -> quinn::EndpointConfig {
        let mut endpoint = quinn::EndpointConfig::default();
        // Advertise that we can receive datagrams as large as the loopback MTU we may use.
        let _ = endpoint.max_udp_payload_size(self.loopback_mtu.clamp(1472, MAX_LOOPBACK_MTU));
        endpoint
    }
}

fn varint(value: u64) -> VarInt {
    VarInt::from_u64(value).unwrap_or(VarInt::MAX)
}
