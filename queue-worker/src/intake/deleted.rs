//! Calls left in a deleted function's queue: each ends `failed` (status 410, "function deleted") with its
//! dead letter and failure callback, so none stays `queued` for ever. Calls waiting out a retry delay are
//! ended when they come back, until the queue is empty or the function is deployed again.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sluice_contracts::{FunctionSpec, names};
use tokio_util::sync::CancellationToken;

use crate::{Worker, consume, execute};

/// Status of a call whose function was deleted before it ran.
pub const DELETED_STATUS: u16 = 410;

/// Ends the queued calls of `spec`'s function, which was just deleted; stops at `shutdown`, when the
/// function is deployed again, or when its queue is empty.
pub async fn drain(worker: Arc<Worker>, spec: Arc<FunctionSpec>, shutdown: CancellationToken) {
    let function = spec.function_ref();
    let reason = format!("function {function:?} was deleted before the call ran");
    // An idle function has no consumer, and nothing to end: none is made for it.
    if consume::queued(&worker, &function, &names::invoke_subject(&function)).await.is_ok_and(|n| n == 0) {
        return;
    }
    let Ok(mut consumer) = consume::consumer(&worker, &function).await else { return };
    let mut ended = 0u64;
    loop {
        if shutdown.is_cancelled() || worker.specs.read().expect("spec map lock").contains_key(&function) {
            break;
        }
        let batch = consumer.fetch().max_messages(64).expires(Duration::from_secs(1)).messages().await;
        let mut got = 0;
        if let Ok(mut batch) = batch {
            while let Some(Ok(message)) = batch.next().await {
                got += 1;
                execute::fail_unrun(&worker, &spec, message, DELETED_STATUS, &reason).await;
            }
        }
        ended += got;
        if got == 0 {
            let Ok(info) = consumer.info().await else { break };
            // Calls waiting out a retry delay are still pending acknowledgement; they come back.
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                break;
            }
        }
    }
    if ended > 0 {
        tracing::info!(function = %function, calls = ended, "queued calls of a deleted function ended as failed");
    }
}
