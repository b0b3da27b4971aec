//! Cancelling running calls: the gateway publishes `sluice.cancel.{call id}` to every worker; the worker
//! running that call stops it (its process group is killed, its HTTP request dropped).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sluice_contracts::names;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, notices};

/// The calls running on this worker, by call id.
#[derive(Default)]
pub struct Running {
    calls: Mutex<HashMap<String, CancellationToken>>,
}

/// Removes its call from [`Running`] when the call ends.
pub struct Registration {
    running: Arc<Running>,
    call_id: String,
    pub token: CancellationToken,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.running.calls.lock().expect("running calls lock").remove(&self.call_id);
    }
}

impl Running {
    pub fn register(self: &Arc<Self>, call_id: &str) -> Registration {
        let token = CancellationToken::new();
        self.calls.lock().expect("running calls lock").insert(call_id.to_owned(), token.clone());
        Registration { running: self.clone(), call_id: call_id.to_owned(), token }
    }

    fn cancel(&self, call_id: &str) -> bool {
        match self.calls.lock().expect("running calls lock").get(call_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Listens for cancellations until `shutdown`.
pub async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    notices::each(&worker, names::CANCEL_PREFIX, &shutdown, |call_id, _| {
        if worker.running.cancel(&call_id) {
            tracing::info!(call_id, "cancelling running call");
        }
    })
    .await
}
