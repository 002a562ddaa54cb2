//! `plasma-stream-bench`: runs the benchmark scenarios beside their peers and prints the
//! table; see `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p plasma-stream-bench -- [--quick] [--scenario S1,S4-loss1] [--runs N]
//! ```
//! Needs root for the namespace scenarios (S1-veth, S4). The `peer` and `netns` subcommands
//! are the harness's own plumbing (peer processes, and manual clean-up).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use plasma_stream_bench::netns::{self, NetnsPair};
use plasma_stream_bench::peers::copy::{self, CopySpec};
use plasma_stream_bench::peers::quic_copy;
use plasma_stream_bench::report::{render_markdown, render_text, ScenarioResult};
use plasma_stream_bench::scenarios::{self, Options, Placement};
use plasma_stream_bench::wan_delay::{self, DelaySpec};
use plasma_stream_bench::{utc_now, workspace_root, BenchError};

#[derive(Parser, Debug)]
#[command(
    name = "plasma-stream-bench",
    about = "Plasma Stream beside its peers: throughput, objects/s, peak RssAnon, ratios"
)]
struct Cli {
    /// A pass of about a minute: smaller objects, one run each, S4 at 1 % loss only, no S5.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run, comma-separated ids or prefixes (S1, S1-veth, S2, S3, S4, S4-loss1, S5).
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Only the systems whose name contains one of these (case-insensitive), e.g. `QUIC,fallback`.
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Runs per scenario (default: 3, S4 and S5 once; 1 with --quick).
    #[arg(long)]
    runs: Option<u32>,
    /// Rate of the emulated WAN link in S4 (`none` for no limit).
    #[arg(long, default_value = "1gbit")]
    wan_rate: String,
    /// Seconds after which an S4 transfer is cut off and reported as partial.
    #[arg(long)]
    wan_deadline: Option<u64>,
    /// Append the results to this Markdown file (default docs/benchmarks.md).
    #[arg(long)]
    doc: Option<PathBuf>,
    /// Do not append to docs/benchmarks.md (results still go to bench/results/).
    #[arg(long)]
    no_doc: bool,
    /// Start the servers' stores without `--populate`, so page faults on store memory are
    /// inside the measurement (the copy peers' memory is always faulted in first).
    #[arg(long)]
    lazy_store: bool,
    /// Runtime workers per Plasma Stream server (0: one per core, the server's default). The
    /// two servers of a measurement share this machine's cores, so 1 gives each one core.
    #[arg(long, default_value_t = 1)]
    server_workers: u16,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Plumbing: one side of a copy peer (used by the harness itself).
    #[command(hide = true)]
    Peer {
        #[command(subcommand)]
        role: PeerRole,
    },
    /// Create (`up`) or remove (`down`) the namespaces ta/tb by hand.
    Netns { action: String },
    /// Plumbing: the WAN delayer, holding the packets of an iptables NFQUEUE rule (run by the
    /// harness inside the receiving namespace; needs root).
    #[command(hide = true)]
    WanDelay {
        /// The NFQUEUE number the rule sends packets to.
        #[arg(long, default_value_t = 0)]
        queue: u16,
        /// How long each packet is held, in milliseconds.
        #[arg(long)]
        delay_ms: f64,
        /// Fraction of packets dropped on arrival (0.01 = 1 %).
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Keep GSO packets whole (less work; a loss then drops a whole burst).
        #[arg(long)]
        gso: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct CopyArgs {
    #[arg(long)]
    objects: u64,
    #[arg(long)]
    size: u64,
    #[arg(long)]
    tls: bool,
    #[arg(long)]
    quic: bool,
    /// Receive into memory never touched before instead of pre-faulted memory.
    #[arg(long)]
    fresh_destination: bool,
}

#[derive(Subcommand, Debug)]
enum PeerRole {
    Hold {
        #[arg(long)]
        listen: SocketAddr,
        #[command(flatten)]
        copy: CopyArgs,
        #[arg(long)]
        congestion: Option<String>,
    },
    Pull {
        #[arg(long)]
        connect: SocketAddr,
        #[command(flatten)]
        copy: CopyArgs,
        #[arg(long)]
        cert: Option<String>,
        #[arg(long, default_value_t = 600.0)]
        deadline_secs: f64,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("plasma-stream-bench: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn spec(c: &CopyArgs, congestion: Option<String>) -> CopySpec {
    CopySpec {
        objects: c.objects,
        object_size: c.size,
        tls: c.tls,
        quic: c.quic,
        congestion,
        fresh_destination: c.fresh_destination,
    }
}

fn run(cli: Cli) -> Result<(), BenchError> {
    match cli.command {
        Some(Command::Peer {
            role: PeerRole::Hold { listen, copy, .. },
        }) if copy.quic => quic_copy::hold(listen, &spec(&copy, None)),
        Some(Command::Peer {
            role:
                PeerRole::Hold {
                    listen,
                    copy,
                    congestion,
                },
        }) => copy::hold(listen, &spec(&copy, congestion)),
        Some(Command::Peer {
            role:
                PeerRole::Pull {
                    connect,
                    copy,
                    cert,
                    deadline_secs,
                },
        }) => {
            let pull = if copy.quic {
                quic_copy::pull
            } else {
                copy::pull
            };
            let r = pull(
                connect,
                &spec(&copy, None),
                cert.as_deref(),
                Duration::from_secs_f64(deadline_secs),
            )?;
            println!("{}", r.to_line());
            Ok(())
        }
        Some(Command::WanDelay {
            queue,
            delay_ms,
            loss,
            gso,
        }) => {
            let spec = DelaySpec::new(queue, delay_ms, loss, gso)?;
            let c = wan_delay::run(&spec, || {
                // The harness adds the NFQUEUE rule only after this line.
                println!("ready");
                let _ = std::io::stdout().flush();
            })?;
            eprintln!(
                "wan-delay: packets={} dropped={} passed-when-full={} socket-overruns={}",
                c.packets, c.dropped, c.passed_full, c.overruns
            );
            Ok(())
        }
        Some(Command::Netns { action }) => match action.as_str() {
            "up" => {
                let pair = NetnsPair::up()?;
                println!("RTT ta → tb: {:.2} ms", pair.ping_ms()?);
                std::mem::forget(pair); // keep them up until `netns down`
                Ok(())
            }
            "down" => {
                netns::down();
                Ok(())
            }
            other => Err(BenchError::Setup(format!(
                "netns action must be up or down, not {other}"
            ))),
        },
        None => run_benchmarks(&cli),
    }
}

fn run_benchmarks(cli: &Cli) -> Result<(), BenchError> {
    plasma_stream_bench::servers::set_populate_stores(!cli.lazy_store);
    plasma_stream_bench::servers::set_server_workers(cli.server_workers);
    let opts = Options {
        quick: cli.quick,
        runs: cli.runs,
        wan_rate: (cli.wan_rate != "none").then(|| cli.wan_rate.clone()),
        wan_deadline: Duration::from_secs(cli.wan_deadline.unwrap_or(if cli.quick {
            10
        } else {
            30
        })),
    };
    let mut selected = scenarios::select(scenarios::all(&opts), &cli.scenario, cli.quick);
    if !cli.systems.is_empty() {
        for sc in &mut selected {
            sc.systems.retain(|s| {
                let name = s.name().to_ascii_lowercase();
                cli.systems
                    .iter()
                    .any(|f| name.contains(&f.trim().to_ascii_lowercase()))
            });
        }
        selected.retain(|sc| !sc.systems.is_empty());
    }
    if selected.is_empty() {
        return Err(BenchError::Setup(format!(
            "no scenario matches {:?}",
            cli.scenario
        )));
    }
    // Quote arguments with spaces so the recorded command can be pasted back into a shell.
    let command = std::env::args()
        .skip(1)
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    let command = format!(
        "cargo run --release -p plasma-stream-bench --{}{command}",
        if command.is_empty() { "" } else { " " }
    );
    plasma_stream_bench::catch_interrupts();
    let started = utc_now();
    eprintln!(
        "plasma-stream-bench: {} scenario(s), started {started}",
        selected.len()
    );

    let needs_netns = selected
        .iter()
        .any(|s| s.placement == Placement::Namespaces);
    let mut pair = if needs_netns {
        match NetnsPair::up() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("plasma-stream-bench: namespace scenarios will fail: {e}");
                None
            }
        }
    } else {
        None
    };

    let mut results: Vec<ScenarioResult> = Vec::new();
    for sc in &selected {
        if plasma_stream_bench::interrupted() {
            eprintln!("plasma-stream-bench: interrupted; cleaning up");
            break;
        }
        let result = scenarios::run(sc, pair.as_mut());
        print!("{}", render_text(&result));
        let _ = std::io::stdout().flush();
        results.push(result);
    }
    drop(pair); // tear the namespaces down before writing files
    let goals = plasma_stream_bench::goals::render(&plasma_stream_bench::goals::check(&results));
    print!("\n{goals}");

    let mut md = format!(
        "### {started}{}\n\nCommand: `{command}`\n\n{}\n\n",
        if cli.quick { " (quick)" } else { "" },
        machine_line()
    );
    for r in &results {
        md.push_str(&render_markdown(r));
    }
    md.push_str(&goals);
    let results_dir = workspace_root().join("bench/results");
    std::fs::create_dir_all(&results_dir)?;
    let stamp: String = started
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let file = results_dir.join(format!("{stamp}.md"));
    std::fs::write(&file, &md)?;
    eprintln!("plasma-stream-bench: results written to {}", file.display());
    if !cli.no_doc {
        let doc = cli
            .doc
            .clone()
            .unwrap_or_else(|| workspace_root().join("docs/benchmarks.md"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&doc)?;
        f.write_all(md.as_bytes())?;
        eprintln!("plasma-stream-bench: appended to {}", doc.display());
    }
    Ok(())
}

/// One line describing the code (git commit) and the machine: CPUs, kernel, profile.
fn machine_line() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let extra = std::env::var("PLASMA_STREAM_BENCH_SERVER_ARGS")
        .map(|a| format!(" Extra server options: `{a}`."))
        .unwrap_or_default();
    let store = if plasma_stream_bench::servers::populate_stores() {
        " Stores: `--populate` (memory faulted in at start, like the copy peers')."
    } else {
        " Stores: lazy (`--lazy-store`: page faults inside the measurement)."
    };
    let workers = match plasma_stream_bench::servers::server_workers() {
        0 => " Server workers: one per core.".to_string(),
        n => format!(" Server workers: `--worker-threads {n}` each."),
    };
    format!(
        "Code: commit `{commit}`.{extra}{store}{workers} Machine: {cpus} vCPU, Linux {}, release profile; shared with \
         other builds (noisy: compare ratios within this run).",
        kernel.trim()
    )
}
