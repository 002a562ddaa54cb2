//! Two `plasma-stream-server`s with embedded stores: the source is filled through its Plasma
//! socket, the destination is told to SYNC (COPY) from it, and a sample of the objects is
//! verified at the destination. (Wired up once the server and client land.)

use std::time::Duration;

use crate::report::Sample;
use crate::scenarios::{Placement, Workload};
use crate::BenchError;

/// Which transport the destination server uses to pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Quic { congestion: Option<String> },
    TcpFallback,
}

/// Times one SYNC between two fresh servers.
pub fn measure_sync(
    _transport: &Transport,
    _workload: &Workload,
    _placement: Placement,
    _deadline: Duration,
) -> Result<Sample, BenchError> {
    Err(BenchError::Server(
        "plasma-stream-server is not wired into the harness yet".into(),
    ))
}

/// Times a legacy plaintext COPY straight from a server started with `--legacy-tcp`.
pub fn measure_legacy(
    _workload: &Workload,
    _placement: Placement,
    _deadline: Duration,
) -> Result<Sample, BenchError> {
    Err(BenchError::Server(
        "legacy format not wired into the harness yet".into(),
    ))
}
