//! The scenarios of issue 6, the systems each one compares, and the runner.
//!
//! Runs are interleaved (round 1 runs every system once, then round 2, ...) so that the noise
//! of this shared machine spreads over all systems instead of favouring one.

use std::net::SocketAddr;
use std::time::Duration;

use crate::memory::PeakSampler;
use crate::netns::{NetnsPair, Wan};
use crate::peers::copy::{read_line_with_prefix, CopySpec, PullResult};
use crate::peers::flight::{self, FlightSpec};
use crate::procs::{command_in, this_exe, ChildGuard, CpuMeter};
use crate::report::{Row, Sample, ScenarioResult, Side};
use crate::servers::{self, Setup, Transport};
use crate::{netns, BenchError};

/// Where the two ends run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Both on 127.0.0.1.
    Loopback,
    /// Source in namespace `ta`, destination in `tb`, joined by veth.
    Namespaces,
}

impl Placement {
    /// (namespace, address) of the source (holder) side.
    pub fn source(self) -> (Option<&'static str>, &'static str) {
        match self {
            Placement::Loopback => (None, "127.0.0.1"),
            Placement::Namespaces => (Some(netns::NS_SRC), netns::ADDR_SRC),
        }
    }

    /// (namespace, address) of the destination (puller) side.
    pub fn destination(self) -> (Option<&'static str>, &'static str) {
        match self {
            Placement::Loopback => (None, "127.0.0.1"),
            Placement::Namespaces => (Some(netns::NS_DST), netns::ADDR_DST),
        }
    }
}

/// What moves: `objects` objects of `object_size` bytes each, in one COPY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub objects: u64,
    pub object_size: u64,
}

impl Workload {
    pub fn total_bytes(&self) -> u64 {
        self.objects * self.object_size
    }

    /// e.g. `64 × 16 MiB`, `1 × 1 GiB`, `65536 × 4 KiB`.
    pub fn label(&self) -> String {
        format!("{} × {}", self.objects, size_label(self.object_size))
    }
}

/// A byte count in the largest binary unit that divides it: `4 KiB`, `16 MiB`, `8 GiB`.
pub fn size_label(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes & ((1 << shift) - 1) == 0 {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

/// One system measured in a scenario.
#[derive(Clone, Debug, PartialEq)]
pub enum System {
    /// Two Plasma Stream servers, the destination pulling over this transport (the bench's
    /// tuned set-up, [`Setup::Bench`]).
    Ours(Transport),
    /// Two Plasma Stream servers as deployed: at their defaults, with embedded stores or
    /// beside pyarrow's `plasma_store` (issue 14).
    Deployed { transport: Transport, setup: Setup },
    /// [`System::Ours`], the client asking for progress events (as the CLI does): the
    /// events' cost beside the plain SYNC of the same run.
    OursWithEvents(Transport),
    /// The legacy plaintext format, straight from a server started with `--legacy-tcp`.
    Legacy,
    /// One plain TCP connection (the copy limit), with the sender's congestion controller.
    TcpCopy { congestion: Option<String> },
    /// One rustls connection, TLS 1.3 AES-128-GCM (the encryption limit). With
    /// `fresh_destination`, into memory never touched before (no pre-faulting), as a cold
    /// store's is: the limit for the rows beside a fresh `plasma_store`.
    TlsCopy { fresh_destination: bool },
    /// One bare quinn connection with the product's QUIC settings (what quinn itself can do).
    QuicCopy,
    /// Arrow Flight `do_get` (loopback only).
    Flight { tls: bool },
}

impl System {
    pub fn name(&self) -> String {
        match self {
            System::Ours(Transport::Quic { congestion: None }) => "plasma-stream QUIC".into(),
            System::Ours(Transport::Quic {
                congestion: Some(c),
            }) => format!("plasma-stream QUIC {c}"),
            System::Ours(Transport::TcpFallback) => "plasma-stream TLS/TCP fallback".into(),
            System::Deployed { transport, setup } => {
                format!(
                    "{}{}",
                    System::Ours(transport.clone()).name(),
                    setup.label()
                )
            }
            System::OursWithEvents(transport) => {
                format!(
                    "{}, progress events",
                    System::Ours(transport.clone()).name()
                )
            }
            System::Legacy => "legacy plaintext TCP".into(),
            System::TcpCopy { congestion: None } => "peer: TCP copy".into(),
            System::TcpCopy {
                congestion: Some(c),
            } => format!("peer: TCP copy {c}"),
            System::TlsCopy {
                fresh_destination: false,
            } => "peer: rustls TCP copy".into(),
            System::TlsCopy {
                fresh_destination: true,
            } => "peer: rustls TCP copy, fresh memory".into(),
            System::QuicCopy => "peer: quinn QUIC copy".into(),
            System::Flight { tls: false } => "peer: Arrow Flight".into(),
            System::Flight { tls: true } => "peer: Arrow Flight TLS".into(),
        }
    }

    pub fn side(&self) -> Side {
        match self {
            System::Ours(_) | System::OursWithEvents(_) | System::Deployed { .. } => Side::Ours,
            _ => Side::Peer,
        }
    }
}

/// One scenario: a workload, where it runs, and the systems compared.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub workload: Workload,
    pub placement: Placement,
    pub wan: Option<Wan>,
    pub systems: Vec<System>,
    pub runs: u32,
    /// A transfer still running after this is cut off and reported as partial.
    pub deadline: Duration,
}

/// Knobs from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub quick: bool,
    /// Overrides each scenario's number of runs.
    pub runs: Option<u32>,
    /// Rate of the emulated WAN link (`None`: no limit).
    pub wan_rate: Option<String>,
    /// Deadline of one S4 transfer.
    pub wan_deadline: Duration,
}

/// The rows of issue 14 for a loopback scenario: both transports, servers at their defaults,
/// beside pyarrow's `plasma_store` (cold and warm) and with the embedded store.
fn deployed() -> Vec<System> {
    let setups = [
        Setup::PlasmaStore { warm: false },
        Setup::PlasmaStore { warm: true },
        Setup::EmbeddedDefaults,
    ];
    setups
        .into_iter()
        .flat_map(|setup| {
            [Transport::Quic { congestion: None }, Transport::TcpFallback]
                .map(|transport| System::Deployed { transport, setup })
        })
        .collect()
}

/// `systems` with, after the bench's own two rows of ours, QUIC with progress events (what
/// the CLI asks for, priced against the plain SYNC) and the rows of [`deployed`].
fn with_deployed(mut systems: Vec<System>) -> Vec<System> {
    let at = systems
        .iter()
        .position(|s| !matches!(s, System::Ours(_)))
        .unwrap_or(systems.len());
    let events = System::OursWithEvents(Transport::Quic { congestion: None });
    systems.splice(at..at, std::iter::once(events).chain(deployed()));
    // The cold rows write into fresh store memory; this peer is their copy-and-encrypt limit.
    systems.push(System::TlsCopy {
        fresh_destination: true,
    });
    systems
}

fn ours_and_copy_peers(flight: bool, legacy: bool) -> Vec<System> {
    let mut s = vec![
        System::Ours(Transport::Quic { congestion: None }),
        System::Ours(Transport::TcpFallback),
    ];
    if legacy {
        s.push(System::Legacy);
    }
    s.push(System::TcpCopy { congestion: None });
    s.push(System::TlsCopy {
        fresh_destination: false,
    });
    s.push(System::QuicCopy);
    if flight {
        s.push(System::Flight { tls: false });
        s.push(System::Flight { tls: true });
    }
    s
}

/// Every scenario, sized for a full run or for `--quick` (about a minute in all).
pub fn all(opts: &Options) -> Vec<Scenario> {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    let q = opts.quick;
    let runs = |full: u32| opts.runs.unwrap_or(if q { 1 } else { full });
    let local_deadline = Duration::from_secs(if q { 30 } else { 120 });
    let mut out = Vec::new();

    let s1 = Workload {
        objects: 1,
        object_size: if q { 256 * MIB } else { GIB },
    };
    out.push(Scenario {
        id: "S1-loopback".into(),
        title: format!("bulk, {}, loopback", s1.label()),
        workload: s1.clone(),
        placement: Placement::Loopback,
        wan: None,
        systems: with_deployed(ours_and_copy_peers(true, true)),
        runs: runs(3),
        deadline: local_deadline,
    });
    out.push(Scenario {
        id: "S1-veth".into(),
        title: format!(
            "bulk, {}, namespaces ta → tb over veth (MTU 1500)",
            s1.label()
        ),
        workload: s1,
        placement: Placement::Namespaces,
        wan: None,
        systems: ours_and_copy_peers(false, true),
        runs: runs(3),
        deadline: local_deadline,
    });
    let s2 = Workload {
        objects: 64,
        object_size: if q { 2 * MIB } else { 16 * MIB },
    };
    out.push(Scenario {
        id: "S2".into(),
        title: format!("parallel, {} in one COPY, loopback", s2.label()),
        workload: s2.clone(),
        placement: Placement::Loopback,
        wan: None,
        systems: with_deployed(ours_and_copy_peers(true, true)),
        runs: runs(3),
        deadline: local_deadline,
    });
    let s3 = Workload {
        objects: if q { 8192 } else { 65_536 },
        object_size: 4 * KIB,
    };
    out.push(Scenario {
        id: "S3".into(),
        title: format!("small, {} in one COPY, loopback", s3.label()),
        workload: s3,
        placement: Placement::Loopback,
        wan: None,
        systems: with_deployed(ours_and_copy_peers(true, true)),
        runs: runs(3),
        deadline: local_deadline,
    });
    let s4 = Workload {
        objects: 64,
        object_size: if q { 256 * KIB } else { 16 * MIB },
    };
    let losses: &[f64] = if q { &[0.01] } else { &[0.0, 0.001, 0.01] };
    for &loss in losses {
        let wan = Wan {
            rate: opts.wan_rate.clone(),
            delay_ms: 50.0,
            loss,
        };
        let mut systems: Vec<System> = ["bbr", "cubic", "newreno"]
            .iter()
            .filter(|cc| !q || **cc != "newreno")
            .map(|cc| {
                System::Ours(Transport::Quic {
                    congestion: Some(cc.to_string()),
                })
            })
            .collect();
        systems.push(System::Ours(Transport::TcpFallback));
        systems.push(System::TcpCopy {
            congestion: Some("bbr".into()),
        });
        systems.push(System::TcpCopy {
            congestion: Some("cubic".into()),
        });
        out.push(Scenario {
            id: format!("S4-loss{}", loss * 100.0),
            title: format!("WAN, {}, {}", s4.label(), wan.label()),
            workload: s4.clone(),
            placement: Placement::Namespaces,
            wan: Some(wan),
            systems,
            runs: runs(1),
            deadline: opts.wan_deadline,
        });
    }
    out.push(Scenario {
        id: "S5".into(),
        title: format!(
            "memory, {} (peak RssAnon of both servers), loopback",
            size_label(if q { GIB } else { 8 * GIB })
        ),
        workload: Workload {
            objects: 1,
            object_size: if q { GIB } else { 8 * GIB },
        },
        placement: Placement::Loopback,
        wan: None,
        systems: vec![
            System::Ours(Transport::Quic { congestion: None }),
            System::Ours(Transport::TcpFallback),
        ],
        runs: runs(1),
        deadline: Duration::from_secs(300),
    });
    out
}

/// The scenarios whose id equals or starts with one of `filter` (`S1` selects both S1 runs);
/// all of them for an empty filter. With `--quick` and no filter, S5 (GiB-sized) is left out.
pub fn select(all: Vec<Scenario>, filter: &[String], quick: bool) -> Vec<Scenario> {
    all.into_iter()
        .filter(|s| {
            if filter.is_empty() {
                return !(quick && s.id == "S5");
            }
            filter.iter().any(|f| {
                let f = f.trim();
                s.id.eq_ignore_ascii_case(f)
                    || s.id
                        .to_ascii_lowercase()
                        .starts_with(&format!("{}-", f.to_ascii_lowercase()))
            })
        })
        .collect()
}

/// Runs one scenario: every system, `runs` rounds, interleaved. Failures become row errors.
pub fn run(sc: &Scenario, pair: Option<&mut NetnsPair>) -> ScenarioResult {
    let mut title = sc.title.clone();
    if sc.placement == Placement::Namespaces && pair.is_none() {
        return failed(
            sc,
            "network namespaces ta/tb could not be set up (root needed)",
        );
    }
    if let Some(pair) = pair.filter(|_| sc.placement == Placement::Namespaces) {
        let wan = sc.wan.clone().unwrap_or(Wan {
            rate: None,
            delay_ms: 0.0,
            loss: 0.0,
        });
        match pair.set_wan(&wan).and_then(|()| pair.ping_ms()) {
            Ok(rtt) => title.push_str(&format!(" (measured RTT {rtt:.2} ms)")),
            Err(e) => {
                return failed(sc, &format!("WAN emulation: {e}"));
            }
        }
    }
    let mut rows: Vec<Row> = sc
        .systems
        .iter()
        .map(|s| Row::new(s.name(), s.side()))
        .collect();
    for round in 0..sc.runs {
        for (system, row) in sc.systems.iter().zip(rows.iter_mut()) {
            if crate::interrupted() {
                row.errors.push("interrupted".into());
                continue;
            }
            eprintln!(
                "[{}] {} round {}/{} ...",
                sc.id,
                system.name(),
                round + 1,
                sc.runs
            );
            match measure(system, sc) {
                Ok(samples) => {
                    for s in &samples {
                        eprintln!(
                            "[{}]   {:.3} GB/s, {:.0} objects/s{}",
                            sc.id,
                            s.gbytes_per_sec(),
                            s.objects_per_sec(),
                            s.note
                                .as_ref()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        );
                    }
                    row.samples.extend(samples);
                }
                Err(e) => {
                    eprintln!("[{}]   failed: {e}", sc.id);
                    row.errors.push(e.to_string());
                }
            }
        }
    }
    ScenarioResult {
        id: sc.id.clone(),
        title,
        rows,
    }
}

fn failed(sc: &Scenario, why: &str) -> ScenarioResult {
    ScenarioResult {
        id: sc.id.clone(),
        title: sc.title.clone(),
        rows: sc
            .systems
            .iter()
            .map(|s| {
                let mut r = Row::new(s.name(), s.side());
                r.errors.push(why.to_string());
                r
            })
            .collect(),
    }
}

/// Bytes received so far on tb's veth end (wire level: headers and retransmissions included).
fn dst_rx_bytes() -> Option<u64> {
    netns::run_in(
        netns::NS_DST,
        "cat",
        &["/sys/class/net/vB/statistics/rx_bytes"],
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

fn measure(system: &System, sc: &Scenario) -> Result<Vec<Sample>, BenchError> {
    let in_namespaces = sc.placement == Placement::Namespaces;
    let rx_before = in_namespaces.then(dst_rx_bytes).flatten();
    let mut samples = measure_system(system, sc)?;
    // A transfer cut off at its deadline: say what the link carried meanwhile, since whole
    // objects alone can read as zero.
    if let (Some(before), Some(after)) = (rx_before, in_namespaces.then(dst_rx_bytes).flatten()) {
        for s in samples.iter_mut().filter(|s| s.note.is_some()) {
            let gbit = (after.saturating_sub(before)) as f64 * 8.0 / s.secs.max(1e-9) / 1e9;
            if let Some(note) = s.note.as_mut() {
                note.push_str(&format!(
                    "; link carried {gbit:.3} Gbit/s into tb meanwhile"
                ));
            }
        }
    }
    Ok(samples)
}

fn measure_system(system: &System, sc: &Scenario) -> Result<Vec<Sample>, BenchError> {
    match system {
        System::Ours(t) => Ok(vec![servers::measure_sync(
            t,
            Setup::Bench,
            &sc.workload,
            sc.placement,
            sc.deadline,
            false,
        )?]),
        System::OursWithEvents(t) => Ok(vec![servers::measure_sync(
            t,
            Setup::Bench,
            &sc.workload,
            sc.placement,
            sc.deadline,
            true,
        )?]),
        System::Deployed { transport, setup } => Ok(vec![servers::measure_sync(
            transport,
            *setup,
            &sc.workload,
            sc.placement,
            sc.deadline,
            false,
        )?]),
        System::Legacy => Ok(vec![servers::measure_legacy(
            &sc.workload,
            sc.placement,
            sc.deadline,
        )?]),
        System::TcpCopy { congestion } => Ok(vec![run_copy_pair(
            &CopySpec {
                objects: sc.workload.objects,
                object_size: sc.workload.object_size,
                tls: false,
                quic: false,
                congestion: congestion.clone(),
                fresh_destination: false,
            },
            sc.placement,
            sc.deadline,
        )?]),
        System::TlsCopy { fresh_destination } => Ok(vec![run_copy_pair(
            &CopySpec {
                objects: sc.workload.objects,
                object_size: sc.workload.object_size,
                tls: true,
                quic: false,
                congestion: None,
                fresh_destination: *fresh_destination,
            },
            sc.placement,
            sc.deadline,
        )?]),
        System::QuicCopy => Ok(vec![run_copy_pair(
            &CopySpec {
                objects: sc.workload.objects,
                object_size: sc.workload.object_size,
                tls: false,
                quic: true,
                congestion: None,
                fresh_destination: false,
            },
            sc.placement,
            sc.deadline,
        )?]),
        System::Flight { tls } => {
            if sc.placement != Placement::Loopback {
                return Err(BenchError::Setup("Flight runs on loopback only".into()));
            }
            let total_mib = (sc.workload.total_bytes() >> 20).max(1);
            let row_kib = (sc.workload.object_size >> 10).clamp(1, 64);
            flight::run(
                &crate::python(),
                &FlightSpec {
                    tls: *tls,
                    total_mib,
                    batch_mib: 1,
                    row_kib,
                    runs: 1,
                    // The scenario's transfer deadline, plus the interpreter's start-up and
                    // the untimed warm-up call.
                    deadline: sc.deadline + Duration::from_secs(30),
                },
                sc.workload.object_size,
            )
        }
    }
}

/// Runs a holder and a puller of this binary (in `ta` and `tb` for [`Placement::Namespaces`])
/// and samples both processes' memory.
pub fn run_copy_pair(
    spec: &CopySpec,
    placement: Placement,
    deadline: Duration,
) -> Result<Sample, BenchError> {
    let exe = this_exe()?;
    let (src_ns, src_addr) = placement.source();
    let (dst_ns, _) = placement.destination();
    let mut hold = command_in(src_ns, &exe);
    hold.args(["peer", "hold", "--listen", &format!("{src_addr}:0")]);
    hold.args(copy_args(spec));
    if let Some(cc) = &spec.congestion {
        hold.args(["--congestion", cc]);
    }
    let mut holder = ChildGuard::spawn("peer holder", hold, None)?;
    let mut holder_out = holder
        .take_stdout()
        .ok_or_else(|| BenchError::Peer("holder has no stdout".into()))?;
    let ready = read_line_with_prefix(&mut holder_out, "ready ")?;
    let mut fields = ready.split_whitespace().skip(1);
    let addr: SocketAddr = fields
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BenchError::Protocol(format!("bad ready line: {ready}")))?;
    let cert = fields.next().unwrap_or("-").to_string();
    // The holder's set-up (its source filled, its certificate made) is done once it is ready;
    // from here to the puller's result it only serves the transfer.
    let holder_cpu = CpuMeter::start(vec![("src".into(), holder.pid())]);

    let mut pull = command_in(dst_ns, &exe);
    pull.args(["peer", "pull", "--connect", &addr.to_string()]);
    pull.args(copy_args(spec));
    pull.args(["--deadline-secs", &deadline.as_secs_f64().to_string()]);
    if spec.tls || spec.quic {
        pull.args(["--cert", &cert]);
    }
    let mut puller = ChildGuard::spawn("peer puller", pull, None)?;
    let sampler = PeakSampler::start(
        vec![("src".into(), holder.pid()), ("dst".into(), puller.pid())],
        Duration::from_millis(10),
    );
    let mut puller_out = puller
        .take_stdout()
        .ok_or_else(|| BenchError::Peer("puller has no stdout".into()))?;
    let line = read_line_with_prefix(&mut puller_out, "result ");
    let mut cpu = holder_cpu.finish();
    let peaks = sampler.finish();
    let line = line?;
    let status = puller.wait_timeout(Duration::from_secs(10))?;
    if !status.is_some_and(|s| s.success()) {
        return Err(BenchError::Peer(format!("puller ended with {status:?}")));
    }
    let _ = holder.wait_timeout(Duration::from_secs(5));
    let r = PullResult::parse_line(&line)
        .ok_or_else(|| BenchError::Protocol(format!("bad result line: {line}")))?;
    if let Some(c) = r.cpu_secs {
        cpu.insert("dst".into(), c);
    }
    Ok(Sample {
        bytes: r.bytes,
        objects: r.objects,
        secs: r.secs,
        half_secs: r.half_secs,
        peaks,
        cpu,
        note: r.timed_out.then(|| {
            format!(
                "cut off at {:.0} s: {}/{} objects whole, {:.1} MiB of payload",
                r.secs,
                r.objects,
                spec.objects,
                r.bytes as f64 / (1u64 << 20) as f64
            )
        }),
    })
}

fn copy_args(spec: &CopySpec) -> Vec<String> {
    let mut v = vec![
        "--objects".to_string(),
        spec.objects.to_string(),
        "--size".to_string(),
        spec.object_size.to_string(),
    ];
    if spec.tls {
        v.push("--tls".into());
    }
    if spec.quic {
        v.push("--quic".into());
    }
    if spec.fresh_destination {
        v.push("--fresh-destination".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(quick: bool) -> Options {
        Options {
            quick,
            runs: None,
            wan_rate: Some("1gbit".into()),
            wan_deadline: Duration::from_secs(30),
        }
    }

    #[test]
    fn full_scenarios_match_the_issue() {
        let all = all(&opts(false));
        let by_id = |id: &str| all.iter().find(|s| s.id == id).expect(id);
        assert_eq!(by_id("S1-loopback").workload.total_bytes(), 1 << 30);
        assert_eq!(by_id("S1-veth").placement, Placement::Namespaces);
        assert_eq!(by_id("S2").workload.label(), "64 × 16 MiB");
        assert_eq!(by_id("S3").workload.label(), "65536 × 4 KiB");
        assert_eq!(by_id("S5").workload.label(), "1 × 8 GiB");
        let s4: Vec<&Scenario> = all.iter().filter(|s| s.id.starts_with("S4")).collect();
        assert_eq!(s4.len(), 3);
        let losses: Vec<f64> = s4
            .iter()
            .filter_map(|s| s.wan.as_ref())
            .map(|w| w.loss)
            .collect();
        assert_eq!(losses, [0.0, 0.001, 0.01]);
        for s in &s4 {
            assert_eq!(s.wan.as_ref().map(|w| w.delay_ms), Some(50.0));
            for cc in ["bbr", "cubic", "newreno"] {
                assert!(s.systems.contains(&System::Ours(Transport::Quic {
                    congestion: Some(cc.into())
                })));
            }
            assert!(s.systems.contains(&System::Ours(Transport::TcpFallback)));
        }
        assert_eq!(by_id("S1-loopback").runs, 3);
        // Issue 14: beside pyarrow's plasma_store (cold, warm) and the embedded store at its
        // defaults, over both transports, in S1, S2 and S3, beside the existing rows.
        for id in ["S1-loopback", "S2", "S3"] {
            let sc = by_id(id);
            let deployed = sc
                .systems
                .iter()
                .filter(|s| matches!(s, System::Deployed { .. }))
                .count();
            assert_eq!(deployed, 6, "{id}");
            assert!(sc.systems.contains(&System::Ours(Transport::TcpFallback)));
            assert!(sc.systems.contains(&System::Flight { tls: true }), "{id}");
        }
        assert!(!by_id("S1-veth")
            .systems
            .iter()
            .any(|s| matches!(s, System::Deployed { .. })));
    }

    #[test]
    fn selection_by_prefix_and_quick_default() {
        let names = |v: Vec<Scenario>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        let picked = select(all(&opts(false)), &["S1".into(), "s4-loss1".into()], false);
        assert_eq!(names(picked), ["S1-loopback", "S1-veth", "S4-loss1"]);
        let quick = names(select(all(&opts(true)), &[], true));
        assert!(!quick.contains(&"S5".to_string()));
        assert!(quick.contains(&"S3".to_string()));
        let s5 = names(select(all(&opts(true)), &["S5".into()], true));
        assert_eq!(s5, ["S5"]);
    }

    /// The peer processes for real (the `plasma-stream-bench` binary beside the tests).
    #[test]
    fn copy_peer_processes_move_every_byte() {
        for (tls, quic, fresh_destination) in [
            (false, false, false),
            (true, false, false),
            (true, false, true),
            (false, true, false),
        ] {
            let spec = CopySpec {
                objects: 10,
                object_size: 1 << 20,
                tls,
                quic,
                congestion: (!quic).then(|| "cubic".into()),
                fresh_destination,
            };
            let s = run_copy_pair(&spec, Placement::Loopback, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("tls={tls} quic={quic} fresh={fresh_destination}: {e}"));
            assert_eq!((s.objects, s.bytes), (10, 10 << 20));
            assert!(s.note.is_none());
            assert!(s.peaks.contains_key("src") && s.peaks.contains_key("dst"));
            assert!(
                s.cpu.contains_key("src") && s.cpu.contains_key("dst"),
                "{s:?}"
            );
        }
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(8 << 30), "8 GiB");
        assert_eq!(size_label(1000), "1000 B");
        assert_eq!(
            System::Ours(Transport::Quic {
                congestion: Some("bbr".into())
            })
            .name(),
            "plasma-stream QUIC bbr"
        );
        assert_eq!(
            System::TlsCopy {
                fresh_destination: false
            }
            .side(),
            Side::Peer
        );
        let warm = System::Deployed {
            transport: Transport::TcpFallback,
            setup: Setup::PlasmaStore { warm: true },
        };
        assert_eq!(
            warm.name(),
            "plasma-stream TLS/TCP fallback, defaults, beside plasma_store (warm)"
        );
        assert_eq!(warm.side(), Side::Ours);
        assert_eq!(
            System::Deployed {
                transport: Transport::Quic { congestion: None },
                setup: Setup::EmbeddedDefaults
            }
            .name(),
            "plasma-stream QUIC, defaults, embedded store"
        );
    }
}
