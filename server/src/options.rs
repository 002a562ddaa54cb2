//! Command-line options of `plasma-stream-server`, with their documented defaults.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use plasma_stream_transport::{CongestionControl, TransportMode};

/// plasma-stream-server: runs beside a Plasma store; serves COPY/TAKE to peers and executes
/// SYNC requests from clients, over QUIC (UDP port P) and TLS over TCP (TCP port P).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "plasma-stream-server",
    version,
    about,
    args_override_self = true
)]
pub struct Options {
    /// Authenticated inbound connections served at once (QUIC and TCP together); one more is
    /// refused cleanly. A connection counts only once its handshake completed.
    #[arg(short = 'c', long, default_value_t = 128)]
    pub max_connections: usize,

    /// Of -c, how many connections one certificate (one peer's or client's identity) may hold
    /// at once; one more is closed after its handshake, saying why. A peer needs one QUIC
    /// connection, or up to 8 sockets on the TCP fallback.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_identity: u32,

    /// Inbound handshakes in progress at once (QUIC and TCP together): the budget for peers not
    /// yet authenticated, apart from -c. One more is refused at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_handshakes: u32,

    /// Of --max-handshakes, how many one source (an IPv4 address, an IPv6 /64) may have in
    /// progress at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_handshakes_per_source: u32,

    /// Seconds an inbound connection may take to complete its TLS handshake (TCP: from accept,
    /// first byte included; QUIC: from its first packet); fractions allowed (e.g. 0.5).
    #[arg(long, value_name = "SECONDS", default_value = "3", value_parser = parse_seconds)]
    pub handshake_timeout: Duration,

    /// Answer QUIC Initials from unvalidated addresses with a Retry (address validation, one
    /// extra round trip) once this many handshakes are in progress; 0: always.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub quic_retry_above: usize,

    /// Unix socket of the Plasma store (with --embedded-store: where the embedded store serves).
    #[arg(short = 's', long, default_value = "/tmp/plasma")]
    pub plasma_socket: PathBuf,

    /// How long (milliseconds) a Get waits for an object to be sealed before it counts as missing.
    #[arg(short = 't', long, default_value_t = 10)]
    pub plasma_timeout: u64,

    /// Port: QUIC on UDP, TLS (and --legacy-tcp) on TCP.
    #[arg(short = 'p', long, default_value_t = 2021)]
    pub port: u16,

    /// Address to listen on. Default: all interfaces, IPv4 and IPv6 (`::`, dual stack).
    #[arg(long, default_value_t = IpAddr::V6(Ipv6Addr::UNSPECIFIED))]
    pub bind: IpAddr,

    /// Run the embedded Plasma-compatible store of this size (e.g. 4GiB, 512MiB, 1000000)
    /// inside the server, serving on --plasma-socket.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub embedded_store: Option<u64>,

    /// With --embedded-store: commit the store's memory at start (allocated, zeroed and mapped:
    /// a start-up cost per GiB) and keep freed pages. Receiving then never waits for page
    /// faults, which otherwise bound a fast link's throughput (the kernel zeroes each fresh
    /// page on first write); the store holds its whole size in RAM from the start.
    #[arg(long, requires = "embedded_store")]
    pub populate: bool,

    /// Development mode: accept any peer or client, no certificate checks. Never in production.
    #[arg(long, conflicts_with_all = ["trust", "trust_file", "ca", "revoked"])]
    pub insecure: bool,

    /// Trust the peer or client with this SHA-256 certificate fingerprint (repeatable).
    #[arg(long = "trust", value_name = "FINGERPRINT")]
    pub trust: Vec<String>,

    /// File of trusted fingerprints, one per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub trust_file: Option<PathBuf>,

    /// Cluster CA mode: trust peers and clients whose certificate the CA at this PEM file
    /// issued (mutual TLS). This server's own certificate must be CA-issued too: put it in
    /// --cert-dir (`plasma-stream-cli --issue-cert DIR --ca-dir CA_DIR` makes one).
    #[arg(long, value_name = "CA_PEM", conflicts_with_all = ["insecure", "trust", "trust_file"])]
    pub ca: Option<PathBuf>,

    /// File of revoked certificates, refused even if pinned or CA-issued: SHA-256
    /// fingerprints and/or `serial:HEX`, one per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub revoked: Option<PathBuf>,

    /// Directory holding this server's certificate (cert.pem, key.pem); generated there on
    /// first start so the fingerprint stays stable. Without it: a fresh certificate per start.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// What to listen on and dial: auto (QUIC, TLS/TCP fallback), quic, or tcp.
    #[arg(long, default_value = "auto", value_parser = parse_transport)]
    pub transport: TransportMode,

    /// QUIC congestion controller: cubic, newreno or bbr (for long lossy links).
    #[arg(long, default_value = "cubic", value_parser = parse_congestion)]
    pub congestion: CongestionControl,

    /// Accept the original plaintext byte format on the TCP port (trusted networks only): no
    /// encryption, no identity; its requests act as `anonymous` in the access policy.
    #[arg(long)]
    pub legacy_tcp: bool,

    /// With --legacy-tcp: networks allowed to connect in the plaintext format (repeatable,
    /// e.g. 10.0.0.0/8). Default: loopback only (127.0.0.0/8 and ::1).
    #[arg(long = "legacy-allow", value_name = "CIDR", requires = "legacy_tcp")]
    pub legacy_allow: Vec<ipnet::IpNet>,

    /// Networks of peers this server may dial to pull from (repeatable, e.g. 10.0.0.0/8).
    /// A SYNC's peer request naming an address outside every one fails with 0x63 (not
    /// permitted) before any dial, and the log says why: a client must not be able to point
    /// this server at arbitrary hosts. Default: any address.
    #[arg(long = "peer-allow", value_name = "CIDR")]
    pub peer_allow: Vec<ipnet::IpNet>,

    /// Dials to peers in progress at once, all SYNCs together (each SYNC also has at most
    /// 16). A SYNC naming 1,024 unreachable peers then waits its turn instead of opening
    /// 1,024 dials; a dial to a peer already connected takes no time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_dials: u32,

    /// Access policy: which identity may SYNC, COPY, TAKE or serve objects here (format in
    /// docs/security.md). Reloaded on SIGHUP. Without it every trusted identity may do
    /// anything, and `anonymous` (legacy) may copy and sync.
    #[arg(long, value_name = "FILE")]
    pub access: Option<PathBuf>,

    /// Let an incoming object evict sealed objects that did not arrive by TAKE when the store
    /// is full. Off by default: an object that does not fit fails with 0x64 (store full), and
    /// nothing already here is lost to make room.
    #[arg(long)]
    pub evict_for_incoming: bool,

    /// Share the QUIC send window between object streams round-robin (quinn's send fairness).
    /// Off by default: objects then complete one after another instead of all near the end,
    /// while a loss on one stream still does not stall the others.
    #[arg(long)]
    pub send_fairness: bool,

    /// How a received object's pages are mapped before its bytes are written (see the
    /// `prefault` module): `window` maps each 4 MiB window in one call just before filling
    /// it (the default: one call instead of 1,024 page faults, on the receiving thread);
    /// `background` maps the whole object on a helper thread while it arrives (for idle
    /// cores; `--prefault` alone means this); `off` lets every page fault on first write.
    #[arg(
        long,
        value_enum,
        default_value_t = Prefault::Window,
        num_args = 0..=1,
        default_missing_value = "background"
    )]
    pub prefault: Prefault,

    /// Object streams in flight per peer request.
    #[arg(long, default_value_t = 32)]
    pub streams_per_peer: usize,

    /// Seconds without progress after which a stream is abandoned.
    #[arg(long, default_value_t = 30)]
    pub stream_timeout: u64,

    /// Retries of an object after a transient failure (connection failed, reset or stalled,
    /// peer restarted or draining). A retry resumes from the bytes already received.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,

    /// Milliseconds before the first retry; doubled for each next one (at most 10 s), with
    /// ±50 % jitter.
    #[arg(long, default_value_t = 250)]
    pub retry_backoff: u64,

    /// Seconds SIGINT/SIGTERM waits for transfers in flight before aborting them.
    #[arg(long, default_value_t = 10)]
    pub drain_timeout: u64,

    /// Once listening, write `ADDRESS FINGERPRINT` (one line) to this file: how scripts and
    /// tests learn the port chosen for `-p 0`, and what to pin. With --metrics the line ends
    /// with `metrics=ADDRESS` (the port chosen for a metrics port of 0).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,

    /// Serve Prometheus metrics (OpenMetrics text) at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9100 (port 0: any free port, written to --ready-file). Plain HTTP: bind it to
    /// loopback or a monitoring network, not to the peers' interface. Default: off.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Print the fingerprint of the certificate in --cert-dir (generating it if needed) and
    /// exit: what to give peers' and clients' --trust before the first start.
    #[arg(long, requires = "cert_dir")]
    pub print_fingerprint: bool,

    /// Threads running transfers (the async runtime's workers). Default: one per CPU core.
    /// Where several servers share a machine's cores, give each about its share: two workers
    /// each on 2 shared cores kept handing one transfer's work between cores (measured in
    /// docs/benchmarks.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive). Env RUST_LOG wins.
    #[arg(long, default_value = "info")]
    pub log: String,

    /// Log lines on stderr as human-readable text, or as one JSON object per line (for log
    /// collectors: `timestamp`, `level`, `target`, `message`, the event's fields and its
    /// `spans`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (ANSI colours on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

impl Options {
    /// Networks that may use the plaintext legacy format (`--legacy-allow`, or loopback).
    pub fn legacy_networks(&self) -> Vec<ipnet::IpNet> {
        if !self.legacy_allow.is_empty() {
            return self.legacy_allow.clone();
        }
        ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect()
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
    pub fn store_timeout(&self) -> Duration {
        Duration::from_millis(self.plasma_timeout)
    }
}

fn parse_transport(text: &str) -> Result<TransportMode, String> {
    text.parse()
}

fn parse_congestion(text: &str) -> Result<CongestionControl, String> {
    text.parse()
}

/// Parses a positive number of seconds, fractions allowed (`3`, `0.5`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("`{text}` is not a positive number of seconds"))
}

/// Parses `4GiB`, `512MiB`, `64KiB`, `2GB`, `1000` (bytes); case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a size: expected a number with an optional unit, e.g. 4GiB")
    })?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "`{other}` in `{text}` is not a size unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("`{text}` is not a usable size (zero or too large)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_option_overrides_an_earlier_one_and_lists_still_gather() {
        // A wrapper script (or the bench) appends its own flags to a fixed command line.
        let options = Options::parse_from([
            "plasma-stream-server",
            "--log",
            "warn",
            "-p",
            "2022",
            "--peer-allow",
            "10.0.0.0/8",
            "--log",
            "debug",
            "--peer-allow",
            "192.168.0.0/16",
            "-p",
            "2023",
        ]);
        assert_eq!(options.log, "debug");
        assert_eq!(options.port, 2023);
        assert_eq!(options.peer_allow.len(), 2);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let options = Options::parse_from(["plasma-stream-server"]);
        assert_eq!(options.max_connections, 128);
        assert_eq!(options.plasma_socket, PathBuf::from("/tmp/plasma"));
        assert_eq!(options.plasma_timeout, 10);
        assert_eq!(options.port, 2021);
        assert!(options.bind.is_unspecified());
        assert!(!options.insecure && !options.legacy_tcp);
        assert_eq!(options.transport, TransportMode::Auto);
        // The front door's defaults are the transport's (documented there, field by field).
        let transport = plasma_stream_transport::TransportConfig::default();
        assert_eq!(options.max_handshakes as usize, transport.max_handshakes);
        assert_eq!(
            options.max_handshakes_per_source as usize,
            transport.max_handshakes_per_source
        );
        assert_eq!(
            options.handshake_timeout,
            transport.inbound_handshake_timeout
        );
        assert_eq!(options.quic_retry_above, transport.quic_retry_above);
        assert_eq!(options.metrics, None);
        assert_eq!(options.log_format, LogFormat::Text);
        let json = Options::parse_from(["s", "--log-format", "json", "--metrics", "127.0.0.1:0"]);
        assert_eq!(json.log_format, LogFormat::Json);
        assert_eq!(json.metrics, Some(SocketAddr::from(([127, 0, 0, 1], 0))));
        assert!(Options::try_parse_from(["s", "--log-format", "xml"]).is_err());
        assert!(Options::try_parse_from(["s", "--handshake-timeout", "0"]).is_err());
        let half = Options::parse_from(["s", "--handshake-timeout", "0.5"]);
        assert_eq!(half.handshake_timeout, Duration::from_millis(500));
    }

    #[test]
    fn insecure_conflicts_with_every_trust_option() {
        let fp = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        for extra in [
            &["--trust", fp][..],
            &["--trust-file", "trusted"],
            &["--ca", "ca.pem"],
            &["--revoked", "revoked"],
        ] {
            let mut args = vec!["plasma-stream-server", "--insecure"];
            args.extend_from_slice(extra);
            let err = Options::try_parse_from(&args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
        assert!(
            Options::try_parse_from(["plasma-stream-server", "--insecure"])
                .unwrap()
                .insecure
        );
        let options =
            Options::try_parse_from(["plasma-stream-server", "--trust", fp, "--revoked", "r"])
                .unwrap();
        assert_eq!(options.revoked, Some(PathBuf::from("r")));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512mib"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert!(parse_size("lots").unwrap_err().contains("lots"));
        assert!(parse_size("4XB").unwrap_err().contains("XB"));
        assert!(parse_size("0").is_err());
    }
}

/// How a received object's pages are mapped ahead of its bytes (`--prefault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Prefault {
    /// Each window mapped with one `MADV_POPULATE_WRITE` just before it is filled.
    Window,
    /// The whole object mapped on a blocking thread beside the copy.
    Background,
    /// No mapping ahead: one page fault per 4 KiB written.
    Off,
}
