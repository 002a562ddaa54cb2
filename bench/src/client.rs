//! Driving a SYNC through the `stream` client library, as a user would.

use std::net::SocketAddr;
use std::time::Duration;

use plasma_store::ObjectId;

use crate::servers::SyncOutcome;
use crate::BenchError;

/// Asks the server at `dst` to COPY `ids` from `src`, timing the whole call; gives up after
/// `deadline` (the outcome then says `timed_out`).
pub async fn sync_copy(
    _dst: SocketAddr,
    _src: SocketAddr,
    _ids: Vec<ObjectId>,
    _deadline: Duration,
) -> Result<SyncOutcome, BenchError> {
    Err(BenchError::Server(
        "the stream client library has not landed yet".into(),
    ))
}
