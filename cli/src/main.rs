//! `plasma-stream-cli`: tell a `plasma-stream-server` to pull objects from its peers.
//!
//! Three ways to use it:
//! - one command as arguments: `plasma-stream-cli -a 127.0.0.1:2021 COPY 127.0.0.1:2022 <oid>…`;
//! - a script on stdin (one command per line, `#` comments);
//! - interactively (a REPL with line editing, completion and history) when stdin is a terminal.
//!
//! Commands (the grammar of the protocol crate): `COPY <addr> <oid>…`, `TAKE <addr> <oid>…`,
//! and `SYNC COPY <addr> <oid>… ; TAKE <addr> <oid>…` for several peers at once; and about the
//! server's own store (the `store` module): `ls`, `info <oid>`, `stats`, `put FILE [--id
//! <oid>]`, `get <oid> FILE`.
//!
//! Exit codes: the end of `--help` ([`AFTER_HELP`]) and docs/operations.md.

mod address;
mod progress;
mod repl;
mod report;
mod store;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use plasma_stream_protocol::{parse_command, Command};
use stream::{Client, ClientBuilder, DetailedReport, PeerRequest, ProgressEvent, TransportMode};

use address::ServerAddress;
use tokio::sync::watch;

/// plasma-stream-cli: ask a plasma-stream-server to COPY, TAKE or SYNC objects from its peers.
#[derive(Debug, Parser)]
#[command(name = "plasma-stream-cli", version, about, after_help = AFTER_HELP)]
struct Options {
    /// The server to talk to: host[:port] (port 2021 if left out), e.g. 127.0.0.1,
    /// localhost:2021, [::1]:2021.
    #[arg(short = 'a', long, required_unless_present = "issue_cert")]
    address: Option<String>,

    /// Development mode: accept any server certificate (traffic is still encrypted).
    #[arg(long, conflicts_with_all = ["trust", "trust_file", "ca"])]
    insecure: bool,

    /// Trust the server with this SHA-256 certificate fingerprint (repeatable).
    #[arg(long = "trust", value_name = "FINGERPRINT")]
    trust: Vec<String>,

    /// File of trusted server fingerprints, one per line.
    #[arg(long, value_name = "FILE")]
    trust_file: Option<PathBuf>,

    /// Cluster CA mode: the CA certificate (PEM) that issued the server's certificate and
    /// this client's (in --identity-dir).
    #[arg(long, value_name = "CA_PEM")]
    ca: Option<PathBuf>,

    /// Certificate helper: issue a certificate signed by the cluster CA in --ca-dir (created
    /// there if absent) into this directory (cert.pem, key.pem), print its fingerprint, exit.
    /// For servers (--cert-dir) and clients (--identity-dir) in --ca mode.
    #[arg(long, value_name = "OUT_DIR", requires = "ca_dir")]
    issue_cert: Option<PathBuf>,

    /// The cluster CA's directory (ca.pem, ca-key.pem) for --issue-cert.
    #[arg(long, value_name = "CA_DIR")]
    ca_dir: Option<PathBuf>,

    /// Days an issued certificate is valid, and the CA if --issue-cert creates it.
    #[arg(long, value_name = "N", requires = "issue_cert", default_value_t = plasma_stream_certs::DEFAULT_VALIDITY_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(plasma_stream_certs::MAX_VALIDITY_DAYS)))]
    days: u32,

    /// DNS names or IPs to put in an issued certificate (repeatable).
    #[arg(long = "cert-name", value_name = "NAME")]
    cert_names: Vec<String>,

    /// Directory of this client's certificate (servers pin its fingerprint). Default:
    /// $PLASMA_STREAM_IDENTITY_DIR, else ~/.config/plasma-stream/client.
    #[arg(long, value_name = "DIR")]
    identity_dir: Option<PathBuf>,

    /// auto (QUIC, TLS/TCP fallback), quic or tcp.
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<TransportMode>())]
    transport: TransportMode,

    /// Print JSON, one object per line: each progress event of a command, then its report
    /// (per object: status code and name, reason, bytes, duration, attempts).
    #[arg(long)]
    json: bool,

    /// Print only errors and the objects that failed (with their reason), on stderr.
    #[arg(short = 'q', long, conflicts_with = "json")]
    quiet: bool,

    /// Exit 1 when an object was already in the destination store (0x81) instead of counting
    /// it as success.
    #[arg(long)]
    strict: bool,

    /// A command to run instead of the REPL, e.g. `COPY 127.0.0.1:2022 0102…14`. Options may
    /// come before or after it.
    // Not `trailing_var_arg`: with it, `COPY peer oid --json` made `--json` an object ID.
    // Addresses and object IDs never start with `-`, so clap can tell options apart.
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
}

const AFTER_HELP: &str = "Commands:
  COPY <addr> <oid>...                      copy objects from the peer at <addr>
  TAKE <addr> <oid>...                      take them (the peer deletes after our Ack)
  SYNC COPY <addr> <oid>... ; TAKE <addr> <oid>...   several peers at once (quote the ;)
  ls | info <oid> | stats                   what the server's store holds; what it did
  put FILE [--id <oid>] | get <oid> FILE    a file into the server's store, or out of it
                                            (one-command mode: `-- put FILE --id <oid>`)
Without a command: a script on stdin, or the REPL when stdin is a terminal (`help` there).

Exit code:
  0    every object arrived, or was already in the destination store (0x81; with --strict: 1)
  1    some object did not arrive (the report lists each with its status, e.g. 0x71)
  2    bad usage or input, or the server cannot be reached or trusted
  130  interrupted by Ctrl-C: the first asks the server to cancel the SYNC (it aborts the
       objects not yet sealed) and prints its report; a second leaves without waiting";

/// How a command (or a run) went; the exit code is the worst of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    AllArrived,
    SomeFailed,
    Error,
    /// The SYNC was cancelled on Ctrl-C and its report printed.
    Cancelled,
    /// Left without a report (a second Ctrl-C, or Ctrl-C outside a SYNC).
    Interrupted,
}

impl Outcome {
    fn exit_code(self) -> u8 {
        match self {
            Outcome::AllArrived => 0,
            Outcome::SomeFailed => 1,
            Outcome::Error => 2,
            Outcome::Cancelled | Outcome::Interrupted => 130,
        }
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(run(options));
    ExitCode::from(outcome.exit_code())
}

async fn run(options: Options) -> Outcome {
    if let (Some(out), Some(ca_dir)) = (&options.issue_cert, &options.ca_dir) {
        return issue_certificate(out, ca_dir, &options.cert_names, options.days);
    }
    // `put FILE --id <oid>` has an option of its own (given after `--`).
    let store_command = store::parse(&options.command.join(" ")).is_some();
    if let Some(token) = options
        .command
        .iter()
        .find(|t| t.starts_with('-') && !store_command)
    {
        // Only reachable after `--`: clap reads every other `-x` as an option.
        eprintln!(
            "error: `{token}` after the command looks like an option: put options before `--` \
             (object IDs and addresses never start with `-`)"
        );
        return Outcome::Error;
    }
    // `plasma-stream-cli -a X help COPY`: answered here, without a server.
    match repl::builtin(&options.command.join(" ")) {
        Some(repl::Builtin::Help(text)) => {
            println!("{text}");
            return Outcome::AllArrived;
        }
        Some(repl::Builtin::Quit) => return Outcome::AllArrived,
        None => {}
    }
    let mut session = match Session::start(&options).await {
        Ok(session) => session,
        Err(message) => {
            eprintln!("error: {message}");
            return Outcome::Error;
        }
    };
    let interactive = options.command.is_empty() && std::io::stdin().is_terminal();
    let print = Printing {
        json: options.json,
        quiet: options.quiet,
        strict: options.strict,
        // Animated bars only for a person watching a terminal.
        bars: !options.json && !options.quiet && std::io::stdout().is_terminal(),
    };
    if !interactive {
        // One command or a script: Ctrl-C between commands ends the run (exit 130); during
        // a SYNC, `run_line` cancels it first.
        tokio::spawn(async {
            loop {
                ctrl_c().await;
                if !SYNC_RUNNING.load(Ordering::SeqCst) {
                    eprintln!("\ninterrupted");
                    std::process::exit(i32::from(Outcome::Interrupted.exit_code()));
                }
            }
        });
    }
    let outcome = if !options.command.is_empty() {
        let line = options.command.join(" ");
        run_line(&mut session, &line, print).await
    } else if interactive {
        repl::run(&mut session, print).await
    } else {
        script(&mut session, print).await
    };
    if let Some(client) = &session.client {
        client.close().await;
    }
    outcome
}

/// `--issue-cert`: a member certificate of the cluster CA (creating the CA on first use).
fn issue_certificate(
    out: &std::path::Path,
    ca_dir: &std::path::Path,
    names: &[String],
    days: u32,
) -> Outcome {
    use plasma_stream_certs::{CertificateAuthority, CA_CERT_FILE};
    let result = CertificateAuthority::load_or_generate_valid_for(ca_dir, days).and_then(|ca| {
        let issued = ca.issue_valid_for(names.iter().cloned(), days)?;
        issued.write_to(out)?;
        Ok(issued)
    });
    match result {
        Ok(issued) => {
            println!("{}", issued.identity.fingerprint());
            eprintln!(
                "issued {} (CA certificate for --ca: {})",
                out.display(),
                ca_dir.join(CA_CERT_FILE).display()
            );
            Outcome::AllArrived
        }
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::Error
        }
    }
}

/// How reports are printed and judged.
#[derive(Debug, Clone, Copy)]
pub struct Printing {
    json: bool,
    quiet: bool,
    /// Live progress bars (stdout is a terminal, neither --json nor --quiet).
    bars: bool,
    strict: bool,
}

/// The connection to the server, and what it takes to make it again after the server
/// restarted.
pub struct Session {
    builder: ClientBuilder,
    address: ServerAddress,
    client: Option<Client>,
}

impl Session {
    async fn start(options: &Options) -> Result<Session, String> {
        let address: ServerAddress = options.address.as_deref().unwrap_or_default().parse()?;
        let builder = builder(options)?;
        let mut session = Session {
            builder,
            address,
            client: None,
        };
        session.connect().await?;
        Ok(session)
    }

    async fn connect(&mut self) -> Result<&Client, String> {
        let resolved = self.address.resolve().await?;
        let client = self
            .builder
            .clone()
            .connect(resolved.as_slice())
            .await
            .map_err(|error| match error {
                stream::Error::NoTrust => no_trust_message(&self.address),
                // The transport's own message names the address it dialled; say it once.
                other if other.to_string().contains(&self.address.to_string()) => other.to_string(),
                other => format!("cannot connect to {}: {other}", self.address),
            })?;
        Ok(self.client.insert(client))
    }

    fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    /// Runs one SYNC. If the connection to the server fails (typically: the server restarted
    /// since the last command), reconnects once and sends the command again. That is safe:
    /// the server answers 0x81 for objects that arrived the first time (counted as "already
    /// there"), and 0x80 for objects a first attempt still being completed is receiving.
    ///
    /// Once `cancel` holds `true`, the server is asked to cancel the SYNC (and a failed one is
    /// not sent again).
    async fn sync(
        &mut self,
        peer_requests: &[PeerRequest],
        on_event: &mut dyn FnMut(ProgressEvent),
        cancel: &watch::Receiver<bool>,
    ) -> Result<DetailedReport, String> {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => self.connect().await?.clone(),
        };
        let error = match client
            .sync_with_progress_until(peer_requests.to_vec(), &mut *on_event, cancelled(cancel))
            .await
        {
            Ok(report) => return Ok(report),
            Err(error) if is_connection_error(&error) && !*cancel.borrow() => error,
            Err(error) => return Err(error.to_string()),
        };
        self.client = None;
        eprintln!(
            "warning: the connection to {} failed ({error}); reconnecting and sending the \
             command once more",
            self.address
        );
        let client = self.connect().await?.clone();
        match client
            .sync_with_progress_until(peer_requests.to_vec(), &mut *on_event, cancelled(cancel))
            .await
        {
            Ok(report) => Ok(report),
            Err(error) => {
                if is_connection_error(&error) {
                    // Leave no broken connection behind: the next command dials afresh.
                    self.client = None;
                }
                Err(error.to_string())
            }
        }
    }
}

/// Resolves once `cancel` holds `true`.
async fn cancelled(cancel: &watch::Receiver<bool>) {
    let mut cancel = cancel.clone();
    if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
        // The sender is gone: no cancel will come.
        std::future::pending::<()>().await;
    }
}

/// Whether a SYNC is running: the first Ctrl-C then cancels it rather than ending the run.
static SYNC_RUNNING: AtomicBool = AtomicBool::new(false);

/// Marks a SYNC as running while it lives.
struct SyncRunning;

impl SyncRunning {
    fn enter() -> SyncRunning {
        SYNC_RUNNING.store(true, Ordering::SeqCst);
        SyncRunning
    }
}

impl Drop for SyncRunning {
    fn drop(&mut self) {
        SYNC_RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Failures of the connection itself (as opposed to a refused request), which a new
/// connection may cure.
fn is_connection_error(error: &stream::Error) -> bool {
    matches!(
        error,
        stream::Error::Transport(_) | stream::Error::Truncated | stream::Error::Io(_)
    )
}

/// The library's no-trust error names environment variables and `Client::builder()`; a CLI
/// user needs the CLI's own options.
fn no_trust_message(address: &ServerAddress) -> String {
    format!(
        "no trust configured for the server at {address}: pass --trust FINGERPRINT (the server \
         prints its fingerprint at startup; on its host `plasma-stream-server --cert-dir DIR \
         --print-fingerprint`), --trust-file FILE, --ca CA_PEM (cluster CA), or --insecure \
         (development: any server is accepted)"
    )
}

fn builder(options: &Options) -> Result<ClientBuilder, String> {
    let mut builder = ClientBuilder::from_env().map_err(|e| e.to_string())?;
    if options.insecure {
        eprintln!("warning: --insecure: the server's certificate is not checked");
        builder = builder.insecure();
    }
    for text in &options.trust {
        let fingerprint = text.parse().map_err(|e| format!("--trust `{text}`: {e}"))?;
        builder = builder.trust_fingerprint(fingerprint);
    }
    if let Some(path) = &options.trust_file {
        builder = builder.trust_file(path).map_err(|e| e.to_string())?;
    }
    if let Some(ca) = &options.ca {
        builder = builder.ca(ca).map_err(|e| e.to_string())?;
    }
    if let Some(dir) = &options.identity_dir {
        builder = builder.identity_dir(dir);
    }
    Ok(builder.transport(options.transport))
}

/// Parses and runs one line; prints the report (or the error) and says how it went. The
/// first Ctrl-C while it runs asks the server to cancel the SYNC and still prints the report;
/// a second stops waiting for it (the caller decides what comes next).
async fn run_line(session: &mut Session, line: &str, print: Printing) -> Outcome {
    match store::parse(line) {
        Some(Ok(command)) => return store::run(session, command, print).await,
        Some(Err(error)) => {
            eprintln!("error: {error}");
            return Outcome::Error;
        }
        None => {}
    }
    if let Some(token) = line.split_whitespace().find(|t| t.starts_with('-')) {
        // The grammar would call it a bad object ID or address; say what it really is.
        eprintln!(
            "error: `{token}` is an option, not part of a command: give options when starting \
             plasma-stream-cli (e.g. plasma-stream-cli -a ADDR {token})"
        );
        return Outcome::Error;
    }
    let command: Command = match parse_command(line) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::Error;
        }
    };
    let peer_requests = command.into_peer_requests();
    let started = Instant::now();
    let mut shown = progress::Shown::new(&peer_requests, print.json, print.bars, started);
    let mut on_event = |event| shown.event(event);
    let (cancel, cancel_seen) = watch::channel(false);
    let interrupts = async {
        ctrl_c().await;
        cancel.send_replace(true);
        eprintln!(
            "\ncancelling: asked the server to cancel the SYNC (it aborts the objects not yet \
             sealed); waiting for its report. Ctrl-C again to leave without it"
        );
        ctrl_c().await;
    };
    let running = SyncRunning::enter();
    let result = tokio::select! {
        result = session.sync(&peer_requests, &mut on_event, &cancel_seen) => result,
        () = interrupts => {
            drop(running);
            shown.finish();
            eprintln!("\ninterrupted: left without the report; {SERVER_MAY_CONTINUE}");
            return Outcome::Interrupted;
        }
    };
    drop(running);
    shown.finish();
    let elapsed = started.elapsed();
    let outcome = match result {
        Ok(report) => print_report(&peer_requests, &report, elapsed, print),
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::Error
        }
    };
    if *cancel_seen.borrow() && outcome != Outcome::Error {
        eprintln!("cancelled: the report above says what arrived before the cancel");
        return Outcome::Cancelled;
    }
    outcome
}

/// What a second Ctrl-C leaves undone.
const SERVER_MAY_CONTINUE: &str = "the server is cancelling the SYNC (objects already \
     sealed stay); run the same command again to see what arrived (objects already there count \
     as success)";

/// Resolves on Ctrl-C (SIGINT); never if the handler cannot be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn print_report(
    peer_requests: &[PeerRequest],
    detailed: &DetailedReport,
    elapsed: Duration,
    print: Printing,
) -> Outcome {
    let report = &detailed.to_plain();
    if print.json {
        println!(
            "{}",
            report::to_json(peer_requests, report, Some(detailed), elapsed, print.strict)
        );
    } else if print.quiet {
        eprint!("{}", report::failures_text(peer_requests, detailed));
    } else {
        print!(
            "{}",
            report::to_text(peer_requests, report, Some(detailed), elapsed, print.strict)
        );
    }
    if report::Tally::of(peer_requests, report).is_ok(print.strict) {
        Outcome::AllArrived
    } else {
        Outcome::SomeFailed
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// Runs every line of stdin; the exit code is the worst outcome. `help …` lines print help
/// and `quit` stops, as in the REPL, so a piped session behaves like a typed one.
async fn script(session: &mut Session, print: Printing) -> Outcome {
    let mut overall = Outcome::AllArrived;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                eprintln!("error: reading stdin: {error}");
                return Outcome::Error;
            }
        };
        if is_blank_or_comment(&line) {
            continue;
        }
        let outcome = match repl::builtin(&line) {
            Some(repl::Builtin::Quit) => break,
            Some(repl::Builtin::Help(text)) => {
                println!("{text}");
                continue;
            }
            None => run_line(session, &line, print).await,
        };
        if outcome == Outcome::Error {
            eprintln!("(line {})", number + 1);
        }
        overall = overall.max(outcome);
    }
    overall
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_conflicts_with_every_trust_option() {
        let fp = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        for extra in [
            &["--trust", fp][..],
            &["--trust-file", "trusted"],
            &["--ca", "ca.pem"],
        ] {
            let mut args = vec!["plasma-stream-cli", "-a", "127.0.0.1:2021", "--insecure"];
            args.extend_from_slice(extra);
            let err = Options::try_parse_from(&args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
        let options =
            Options::try_parse_from(["plasma-stream-cli", "-a", "127.0.0.1:2021", "--insecure"])
                .unwrap();
        assert!(options.insecure);
    }

    #[test]
    fn days_default_to_a_year_and_are_bounded() {
        let issue = ["plasma-stream-cli", "--issue-cert", "out", "--ca-dir", "ca"];
        let options = Options::try_parse_from(issue).unwrap();
        assert_eq!(options.days, 365);
        let mut args = issue.to_vec();
        args.extend(["--days", "30"]);
        assert_eq!(Options::try_parse_from(&args).unwrap().days, 30);
        for bad in ["0", "36526", "-1", "lots"] {
            let mut args = issue.to_vec();
            args.extend(["--days", bad]);
            assert!(Options::try_parse_from(&args).is_err(), "--days {bad}");
        }
    }
}
