//! Driving a SYNC through the `stream` client library, as a user would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use plasma_store::ObjectId;
use stream::{Client, PeerRequest, Status, TransportMode};

use crate::procs::CpuMeter;
use crate::servers::SyncOutcome;
use crate::BenchError;

/// Asks the server at `dst` to COPY `ids` from `src` and times the `sync` call (from sending
/// the request to the report: the servers' connection to each other is included, the
/// client's own connection to `dst` is not). The client speaks `mode` (the servers'
/// transport), so it never waits for a QUIC attempt against a TCP-only server. Gives up after
/// `deadline` (the outcome then says `timed_out`). Also returns the CPU seconds each of
/// `processes` (role, pid) used over the same section.
///
/// With `events`, the SYNC asks for progress events (`sync_with_progress`, as the CLI does)
/// and the client takes each one: the row that prices them against the plain SYNC.
pub async fn sync_copy(
    dst: SocketAddr,
    src: SocketAddr,
    mode: TransportMode,
    ids: Vec<ObjectId>,
    deadline: Duration,
    processes: Vec<(String, u32)>,
    events: bool,
) -> Result<(SyncOutcome, BTreeMap<String, f64>), BenchError> {
    let requested = ids.len() as u64;
    let objects = ids.into_iter().map(|id| id.0.into()).collect();
    let request = vec![PeerRequest::Copy { from: src, objects }];
    let client = Client::builder()
        .insecure()
        .transport(mode)
        .connect(dst)
        .await
        .map_err(|e| BenchError::Server(format!("client connecting to {dst}: {e}")))?;
    let cpu = CpuMeter::start(processes);
    let start = Instant::now();
    let work = async {
        let report = if events {
            let mut seen = 0u64;
            let report = client
                .sync_with_progress(request, |_| seen += 1)
                .await
                .map(|detailed| detailed.into_plain());
            if report.is_ok() && seen == 0 {
                return Err(BenchError::Server(
                    "SYNC with events: the server sent no progress event".into(),
                ));
            }
            report
        } else {
            client.sync(request).await
        };
        report.map_err(|e| BenchError::Server(format!("SYNC: {e}")))
    };
    let result = tokio::time::timeout(deadline, work).await;
    let elapsed = start.elapsed();
    let cpu = cpu.finish();
    let outcome = match result {
        Err(_) => Ok(SyncOutcome {
            secs: deadline.as_secs_f64(),
            objects_ok: 0,
            timed_out: true,
            failure: None,
        }),
        Ok(Err(e)) => Err(e),
        Ok(Ok(report)) => {
            let secs = elapsed.as_secs_f64();
            let outcomes: Vec<_> = report
                .peer_reports
                .iter()
                .flat_map(|p| p.objects.iter())
                .collect();
            let objects_ok = outcomes
                .iter()
                .filter(|o| o.status == Status::Success)
                .count() as u64;
            let failure = report
                .peer_reports
                .iter()
                .find(|p| p.status != Status::Success)
                .map(|p| {
                    let first = p.objects.iter().find(|o| o.status != Status::Success);
                    format!(
                        "peer status {:?}, {objects_ok}/{requested} objects ok{}",
                        p.status,
                        first
                            .map(|o| format!(", first failure {} {:?}", o.id, o.status))
                            .unwrap_or_default()
                    )
                });
            Ok(SyncOutcome {
                secs,
                objects_ok,
                timed_out: false,
                failure,
            })
        }
    };
    outcome.map(|o| (o, cpu))
}
