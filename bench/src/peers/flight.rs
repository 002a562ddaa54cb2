//! The Arrow Flight peer: `do_get` of the same number of bytes, plain gRPC and gRPC over TLS,
//! run by `../shared/bench/flight_bench.py` with the project's pyarrow 11 (which includes
//! Flight). Loopback only: the script binds 127.0.0.1.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::report::Sample;
use crate::BenchError;

/// How to run one Flight measurement.
#[derive(Clone, Debug)]
pub struct FlightSpec {
    pub tls: bool,
    pub total_mib: u64,
    pub batch_mib: u64,
    pub row_kib: u64,
    pub runs: u32,
    pub port: u16,
}

/// Parses one `run N: X GiB in Y s = Z GB/s` line into `(bytes, secs)`.
pub fn parse_run_line(line: &str) -> Option<(u64, f64)> {
    let rest = line.trim().strip_prefix("run ")?;
    let (_, rest) = rest.split_once(": ")?;
    let mut words = rest.split_whitespace();
    let gib: f64 = words.next()?.parse().ok()?;
    if words.next()? != "GiB" || words.next()? != "in" {
        return None;
    }
    let secs: f64 = words.next()?.parse().ok()?;
    (secs > 0.0).then_some(((gib * (1u64 << 30) as f64).round() as u64, secs))
}

/// Runs the script and returns one sample per timed run. `objects_per_mib` converts bytes
/// into the scenario's object count so objects/s compares like with like.
pub fn run(
    python: &Path,
    script: &Path,
    spec: &FlightSpec,
    object_size: u64,
) -> Result<Vec<Sample>, BenchError> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--total-mib", &spec.total_mib.to_string()])
        .args(["--batch-mib", &spec.batch_mib.to_string()])
        .args(["--row-kib", &spec.row_kib.to_string()])
        .args(["--runs", &spec.runs.to_string()])
        .args(["--port", &spec.port.to_string()])
        .stdin(Stdio::null());
    if spec.tls {
        cmd.arg("--tls");
    }
    let out = cmd
        .output()
        .map_err(|e| BenchError::Setup(format!("starting {}: {e}", python.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BenchError::Peer(format!(
            "flight_bench.py exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )));
    }
    // The script prints GiB with three decimals: take the exact byte count from the spec after
    // checking the printed one agrees with it (to the printed precision).
    let expected = spec.total_mib << 20;
    let mut samples = Vec::new();
    for (printed, secs) in stdout.lines().filter_map(parse_run_line) {
        if printed.abs_diff(expected) > (1u64 << 30) / 1000 {
            return Err(BenchError::Peer(format!(
                "flight_bench.py moved {printed} bytes, expected {expected}"
            )));
        }
        samples.push(Sample {
            bytes: expected,
            objects: expected / object_size.max(1),
            secs,
            ..Default::default()
        });
    }
    if samples.is_empty() {
        return Err(BenchError::Peer(format!(
            "flight_bench.py printed no run lines: {stdout}"
        )));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_run_lines() {
        let (bytes, secs) =
            parse_run_line("run 2: 1.000 GiB in 0.812 s = 1.322 GB/s").expect("parsed");
        assert_eq!(bytes, 1 << 30);
        assert_eq!(secs, 0.812);
        assert_eq!(
            parse_run_line("TLS batch=1MiB row=64KiB mean=0.3 GB/s"),
            None
        );
        assert_eq!(parse_run_line("run 1: x GiB in 1 s"), None);
        assert_eq!(parse_run_line("run 1: 1.0 GiB in 0 s = inf GB/s"), None);
    }

    /// The real script with pyarrow 11's Flight, TLS included (needs the openssl CLI).
    #[test]
    #[ignore = "needs pyarrow 11 in .venv and the openssl CLI (.ci/run provides it)"]
    fn flight_peer_runs_plain_and_tls() {
        let python = crate::python();
        let script = crate::shared_dir().join("bench/flight_bench.py");
        for tls in [false, true] {
            let spec = FlightSpec {
                tls,
                total_mib: 16,
                batch_mib: 1,
                row_kib: 64,
                runs: 1,
                port: crate::free_port().expect("port"),
            };
            let samples = run(&python, &script, &spec, 1 << 20).expect("flight ran");
            assert_eq!(samples.len(), 1);
            assert_eq!(samples[0].bytes, 16 << 20);
            assert_eq!(samples[0].objects, 16);
        }
    }
}
