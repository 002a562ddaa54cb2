//! The Arrow Flight peer: `do_get` of the same number of bytes, plain gRPC and gRPC over TLS,
//! with the project's pyarrow 11 (which includes Flight).
//!
//! The Python side is `bench/peers/flight_peer.py`, compiled into this crate with
//! `include_str!` and written to a temporary directory for each measurement, so the harness
//! binary needs nothing beside it but a Python with pyarrow 11. The harness runs the script
//! twice: a `serve` process (the side holding the data, `src`) and a `get` process (the side
//! receiving, `dst`), samples both processes' memory, and reads the client's `run` lines.
//! For TLS it issues a self-signed certificate for `localhost` with rcgen, so no `openssl` CLI
//! is needed. Loopback only: the script's server binds 127.0.0.1.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::memory::PeakSampler;
use crate::peers::copy::read_line_with_prefix;
use crate::procs::ChildGuard;
use crate::report::Sample;
use crate::BenchError;

/// The Flight peer script (see the module docs for why it is embedded).
pub const SCRIPT: &str = include_str!("../../peers/flight_peer.py");

/// How to run one Flight measurement.
#[derive(Clone, Debug)]
pub struct FlightSpec {
    pub tls: bool,
    pub total_mib: u64,
    pub batch_mib: u64,
    pub row_kib: u64,
    pub runs: u32,
    /// How long the client may take for all its runs before the measurement is abandoned.
    pub deadline: Duration,
}

impl FlightSpec {
    /// Batches per `do_get`: enough to carry `total_mib` (rounded up to whole batches).
    pub fn batches(&self) -> u64 {
        self.total_mib.div_ceil(self.batch_mib.max(1))
    }

    /// The payload bytes one `do_get` must deliver: the script's batch holds as many whole
    /// rows as fit in `batch_mib` (at least one), and is sent `batches()` times.
    pub fn expected_bytes(&self) -> u64 {
        let (batch, row) = (self.batch_mib.max(1) << 20, self.row_kib.max(1) << 10);
        (batch / row).max(1) * row * self.batches()
    }
}

/// One timed `do_get` as the script reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunLine {
    pub bytes: u64,
    pub secs: f64,
    /// CPU seconds of the client (`dst`) and the server (`src`) during the call, by role.
    pub cpu: BTreeMap<String, f64>,
}

/// Parses one `run N bytes=B secs=S [cpu_dst=C] [cpu_src=C]` line of the script.
pub fn parse_run_line(line: &str) -> Option<RunLine> {
    let mut words = line.split_whitespace();
    if words.next()? != "run" {
        return None;
    }
    words.next()?.parse::<u32>().ok()?;
    let bytes: u64 = words.next()?.strip_prefix("bytes=")?.parse().ok()?;
    let secs: f64 = words.next()?.strip_prefix("secs=")?.parse().ok()?;
    if !(secs.is_finite() && secs > 0.0) {
        return None;
    }
    let mut cpu = BTreeMap::new();
    for word in words {
        let (key, value) = word.split_once('=')?;
        let role = match key {
            "cpu_dst" => "dst",
            "cpu_src" => "src",
            _ => return None,
        };
        cpu.insert(role.to_string(), value.parse().ok()?);
    }
    Some(RunLine { bytes, secs, cpu })
}

/// A self-signed certificate for `localhost` and its key, as PEM (certificate, key).
fn localhost_cert() -> Result<(String, String), BenchError> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(|e| BenchError::Tls(e.to_string()))?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}

/// The last line a child wrote to its stderr file, for error messages.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(String::from)
        })
        .unwrap_or_default()
}

/// Runs the script's server and client once and returns one sample per timed run.
/// `object_size` converts bytes into the scenario's object count so objects/s compares like
/// with like.
pub fn run(python: &Path, spec: &FlightSpec, object_size: u64) -> Result<Vec<Sample>, BenchError> {
    let dir = tempfile::Builder::new()
        .prefix("plasma-stream-flight-")
        .tempdir()?;
    let script = dir.path().join("flight_peer.py");
    std::fs::write(&script, SCRIPT)?;
    let file = |name: &str| -> PathBuf { dir.path().join(name) };

    let mut serve = Command::new(python);
    serve
        .arg(&script)
        .arg("serve")
        .args(["--batch-bytes", &(spec.batch_mib.max(1) << 20).to_string()])
        .args(["--row-bytes", &(spec.row_kib.max(1) << 10).to_string()]);
    let mut get = Command::new(python);
    get.arg(&script)
        .arg("get")
        .args(["--batches", &spec.batches().to_string()])
        .args(["--runs", &spec.runs.max(1).to_string()]);
    if spec.tls {
        let (cert, key) = localhost_cert()?;
        std::fs::write(file("cert.pem"), cert)?;
        std::fs::write(file("key.pem"), key)?;
        serve.arg("--cert").arg(file("cert.pem"));
        serve.arg("--key").arg(file("key.pem"));
        get.arg("--ca").arg(file("cert.pem"));
    }

    let server_err = file("serve.err");
    let mut server = ChildGuard::spawn(
        "flight server",
        serve,
        Some(std::fs::File::create(&server_err)?),
    )?;
    let mut server_out = server
        .take_stdout()
        .ok_or_else(|| BenchError::Peer("flight server has no stdout".into()))?;
    let listening = read_line_with_prefix(&mut server_out, "listening ")
        .map_err(|e| BenchError::Peer(format!("flight server: {e}: {}", last_line(&server_err))))?;
    let port: u16 = listening
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| BenchError::Protocol(format!("bad listening line: {listening}")))?;

    let client_err = file("get.err");
    get.args(["--port", &port.to_string()]);
    get.args(["--server-pid", &server.pid().to_string()]);
    let mut client = ChildGuard::spawn(
        "flight client",
        get,
        Some(std::fs::File::create(&client_err)?),
    )?;
    let sampler = PeakSampler::start(
        vec![("src".into(), server.pid()), ("dst".into(), client.pid())],
        Duration::from_millis(10),
    );
    let client_out = client
        .take_stdout()
        .ok_or_else(|| BenchError::Peer("flight client has no stdout".into()))?;
    // Read on a thread so that a client that hangs is cut off at the deadline below instead
    // of blocking the whole benchmark.
    let reader = std::thread::spawn(move || -> Vec<String> {
        client_out.lines().map_while(Result::ok).collect()
    });
    let status = client.wait_timeout(spec.deadline)?;
    let peaks = sampler.finish();
    let Some(status) = status else {
        client.stop(Duration::from_secs(3));
        return Err(BenchError::Peer(format!(
            "flight client did not finish within {:?}",
            spec.deadline
        )));
    };
    let lines = reader
        .join()
        .map_err(|_| BenchError::Peer("flight client reader panicked".into()))?;
    server.stop(Duration::from_secs(3));
    if !status.success() {
        return Err(BenchError::Peer(format!(
            "flight client exited with {status}: {}",
            last_line(&client_err)
        )));
    }
    samples_from(&lines, spec, object_size, &peaks)
}

/// One sample per `run` line, after checking every run delivered exactly the expected bytes
/// and that there is one line per requested run.
fn samples_from(
    lines: &[String],
    spec: &FlightSpec,
    object_size: u64,
    peaks: &std::collections::BTreeMap<String, u64>,
) -> Result<Vec<Sample>, BenchError> {
    let expected = spec.expected_bytes();
    let mut samples = Vec::new();
    for RunLine { bytes, secs, cpu } in lines.iter().filter_map(|l| parse_run_line(l)) {
        if bytes != expected {
            return Err(BenchError::Peer(format!(
                "flight client received {bytes} bytes, expected {expected}"
            )));
        }
        samples.push(Sample {
            bytes,
            objects: bytes / object_size.max(1),
            secs,
            peaks: peaks.clone(),
            cpu,
            ..Default::default()
        });
    }
    if samples.len() != spec.runs.max(1) as usize {
        return Err(BenchError::Peer(format!(
            "flight client printed {} run lines, expected {}: {}",
            samples.len(),
            spec.runs.max(1),
            lines.join(" | ")
        )));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tls: bool) -> FlightSpec {
        FlightSpec {
            tls,
            total_mib: 16,
            batch_mib: 1,
            row_kib: 64,
            runs: 1,
            deadline: Duration::from_secs(60),
        }
    }

    #[test]
    fn parses_the_scripts_run_lines() {
        let plain = parse_run_line("run 2 bytes=1073741824 secs=0.812000").expect("parses");
        assert_eq!((plain.bytes, plain.secs), (1 << 30, 0.812));
        assert!(plain.cpu.is_empty());
        let with_cpu =
            parse_run_line("run 1 bytes=10 secs=1 cpu_dst=0.5 cpu_src=0.25").expect("parses");
        assert_eq!((with_cpu.cpu["dst"], with_cpu.cpu["src"]), (0.5, 0.25));
        assert_eq!(parse_run_line("run 1 bytes=10 secs=1 cpu_dst=x"), None);
        assert_eq!(parse_run_line("listening 4242"), None);
        assert_eq!(parse_run_line("run 1 bytes=x secs=1"), None);
        assert_eq!(parse_run_line("run 1 bytes=10 secs=0"), None);
        assert_eq!(parse_run_line("run 1 bytes=10 secs=inf"), None);
        assert_eq!(parse_run_line("run 1 bytes=10"), None);
        assert_eq!(parse_run_line("run 1 bytes=10 secs=1 extra"), None);
    }

    #[test]
    fn expected_bytes_are_whole_rows_of_whole_batches() {
        assert_eq!(spec(false).batches(), 16);
        assert_eq!(spec(false).expected_bytes(), 16 << 20);
        // 3 KiB rows: 682 fit in a 2 MiB batch; 3 MiB rounds up to 2 batches.
        let odd = FlightSpec {
            total_mib: 3,
            batch_mib: 2,
            row_kib: 3,
            ..spec(false)
        };
        assert_eq!(odd.batches(), 2);
        assert_eq!(odd.expected_bytes(), 2 * 682 * 3072);
    }

    #[test]
    fn samples_need_every_run_with_the_exact_bytes() {
        let sp = FlightSpec {
            runs: 2,
            ..spec(false)
        };
        let peaks = [("dst".to_string(), 7u64)].into_iter().collect();
        let good = [
            "run 1 bytes=16777216 secs=0.5".to_string(),
            "noise".to_string(),
            "run 2 bytes=16777216 secs=0.25".to_string(),
        ];
        let s = samples_from(&good, &sp, 1 << 20, &peaks).expect("samples");
        assert_eq!(s.len(), 2);
        assert_eq!((s[1].bytes, s[1].objects, s[1].secs), (16 << 20, 16, 0.25));
        assert_eq!(s[0].peaks["dst"], 7);
        assert!(samples_from(&good[..1], &sp, 1 << 20, &peaks).is_err());
        let short = ["run 1 bytes=16777215 secs=0.5".to_string()];
        assert!(samples_from(&short, &spec(false), 1 << 20, &peaks).is_err());
    }

    /// The real script with pyarrow 11's Flight, plain and TLS (rcgen's certificate).
    #[test]
    #[ignore = "needs pyarrow 11 in .venv or $PLASMA_STREAM_PYTHON (.ci/run provides it)"]
    fn flight_peer_runs_plain_and_tls() {
        let python = crate::python();
        for tls in [false, true] {
            let samples = run(&python, &spec(tls), 1 << 20).expect("flight ran");
            assert_eq!(samples.len(), 1);
            assert_eq!(samples[0].bytes, 16 << 20);
            assert_eq!(samples[0].objects, 16);
            assert!(samples[0].secs > 0.0);
            // Both processes were alive while the client ran, so both were sampled.
            for side in ["src", "dst"] {
                assert!(samples[0].peaks.get(side).is_some_and(|&b| b > 0), "{side}");
                assert!(samples[0].cpu.contains_key(side), "{side}");
            }
        }
    }
}
