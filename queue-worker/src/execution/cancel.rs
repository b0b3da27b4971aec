//! Cancelling running calls: the gateway publishes `sluice.cancel.{call id}` to every worker; the worker
//! running that call stops it (its process group is killed, its HTTP request dropped).

use std::sync::Arc;

use sluice_contracts::names;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, notices};

/// Listens for cancellations until `shutdown`.
pub async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    notices::each(&worker, names::CANCEL_PREFIX, &shutdown, |call_id, _| {
        if worker.running.cancel(&call_id) {
            tracing::info!(call_id, "cancelling running call");
        }
    })
    .await
}
