//! `plasma-stream-cli`: tell a `plasma-stream-server` to pull objects from its peers.
//!
//! Three ways to use it:
//! - one command as arguments: `plasma-stream-cli -a 127.0.0.1:2021 COPY 127.0.0.1:2022 <oid>…`;
//! - a script on stdin (one command per line, `#` comments);
//! - interactively (a REPL with line editing and history) when stdin is a terminal.
//!
//! Commands (the grammar of the protocol crate): `COPY <addr> <oid>…`, `TAKE <addr> <oid>…`,
//! and `SYNC COPY <addr> <oid>… ; TAKE <addr> <oid>…` for several peers at once.
//!
//! Exit code: 0 when every object of every command arrived; 1 when some did not (the report
//! says which and why); 2 for bad input or when the server cannot be reached.

mod report;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use plasma_stream_protocol::{parse_command, Command};
use stream::{Client, ClientBuilder, TransportMode};

/// plasma-stream-cli: ask a plasma-stream-server to COPY, TAKE or SYNC objects from its peers.
#[derive(Debug, Parser)]
#[command(name = "plasma-stream-cli", version, about, after_help = COMMANDS_HELP)]
struct Options {
    /// The server to talk to (host:port, e.g. 127.0.0.1:2021 or [::1]:2021).
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

    /// Directory of this client's certificate (servers pin its fingerprint).
    #[arg(long, value_name = "DIR")]
    identity_dir: Option<PathBuf>,

    /// auto (QUIC, TLS/TCP fallback), quic or tcp.
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<TransportMode>())]
    transport: TransportMode,

    /// Print each report as JSON (one object per line).
    #[arg(long)]
    json: bool,

    /// A command to run instead of the REPL, e.g. `COPY 127.0.0.1:2022 0102…14`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

const COMMANDS_HELP: &str = "Commands:
  COPY <addr> <oid>...                      copy objects from the peer at <addr>
  TAKE <addr> <oid>...                      take them (the peer deletes after our Ack)
  SYNC COPY <addr> <oid>... ; TAKE <addr> <oid>...   several peers at once
Exit code: 0 every object arrived, 1 some did not, 2 bad input or server unreachable.";

/// Whether every object arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    AllArrived,
    SomeFailed,
    Error,
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
    ExitCode::from(match outcome {
        Outcome::AllArrived => 0,
        Outcome::SomeFailed => 1,
        Outcome::Error => 2,
    })
}

async fn run(options: Options) -> Outcome {
    if let (Some(out), Some(ca_dir)) = (&options.issue_cert, &options.ca_dir) {
        return issue_certificate(out, ca_dir, &options.cert_names, options.days);
    }
    let client = match connect(&options).await {
        Ok(client) => client,
        Err(message) => {
            eprintln!("error: {message}");
            return Outcome::Error;
        }
    };
    if !options.command.is_empty() {
        let line = options.command.join(" ");
        return run_line(&client, &line, options.json).await;
    }
    if std::io::stdin().is_terminal() {
        repl(&client, options.json).await
    } else {
        script(&client, options.json).await
    }
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

async fn connect(options: &Options) -> Result<Client, String> {
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
    builder = builder.transport(options.transport);
    let address = options.address.as_deref().unwrap_or_default();
    builder
        .connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))
}

/// Parses and runs one line; prints the report (or the error) and says how it went.
async fn run_line(client: &Client, line: &str, json: bool) -> Outcome {
    let command: Command = match parse_command(line) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::Error;
        }
    };
    let peer_requests = command.into_peer_requests();
    match client.sync(peer_requests.clone()).await {
        Ok(report) => {
            if json {
                println!("{}", report::to_json(&peer_requests, &report));
            } else {
                print!("{}", report::to_text(&peer_requests, &report));
            }
            if report.is_success() {
                Outcome::AllArrived
            } else {
                Outcome::SomeFailed
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::Error
        }
    }
}

fn worst(a: Outcome, b: Outcome) -> Outcome {
    match (a, b) {
        (Outcome::Error, _) | (_, Outcome::Error) => Outcome::Error,
        (Outcome::SomeFailed, _) | (_, Outcome::SomeFailed) => Outcome::SomeFailed,
        _ => Outcome::AllArrived,
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// Runs every line of stdin; the exit code is the worst outcome.
async fn script(client: &Client, json: bool) -> Outcome {
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
        let outcome = run_line(client, &line, json).await;
        if outcome == Outcome::Error {
            eprintln!("(line {})", number + 1);
        }
        overall = worst(overall, outcome);
    }
    overall
}

/// The interactive loop: line editing and history (kept in ~/.config/plasma-stream/history).
async fn repl(client: &Client, json: bool) -> Outcome {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("error: cannot start line editing: {error}");
            return Outcome::Error;
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "connected to {} over {}; type COPY/TAKE/SYNC commands, `help`, or `quit`",
        client.server(),
        client.connection_kind()
    );
    let mut overall = Outcome::AllArrived;
    loop {
        match editor.readline("plasma-stream> ") {
            Ok(line) => {
                if is_blank_or_comment(&line) {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                match line.trim().to_ascii_lowercase().as_str() {
                    "quit" | "exit" => break,
                    "help" | "?" => {
                        println!("{COMMANDS_HELP}");
                        continue;
                    }
                    _ => {}
                }
                overall = worst(overall, run_line(client, &line, json).await);
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("error: {error}");
                break;
            }
        }
    }
    if let Some(path) = &history {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = editor.save_history(path);
    }
    overall
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("plasma-stream").join("history"))
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
