//! Secret files for container functions: each function gets a private directory holding only the secrets its
//! spec names from its own namespace (mounted read-only at `/var/openfaas/secrets/`), written from KV
//! `sluice_secrets` (keys `{namespace}.{secret}`) before its containers start and rewritten when a secret
//! changes.

use std::{
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_nats::jetstream::kv;
use futures::StreamExt;
use sluice_contracts::{FunctionSpec, names};
use tokio_util::sync::CancellationToken;

use crate::Worker;

fn function_dir(worker: &Worker, function: &str) -> Option<PathBuf> {
    worker.runtimes.containers().map(|d| d.config().secrets_dir.join(function))
}

/// Writes `value` to `dir/name` readable by its owner only, replacing the file atomically.
fn write_secret(dir: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let staging = dir.join(format!(".{name}.new"));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o400).open(&staging)?;
    file.write_all(value)?;
    file.sync_all()?;
    std::fs::rename(&staging, dir.join(name))
}

/// Writes every secret `spec` names into its directory; names the first one that cannot be had.
pub async fn materialize(worker: &Worker, spec: &FunctionSpec) -> Result<(), String> {
    let Some(dir) = function_dir(worker, &spec.function_ref().key()) else { return Ok(()) };
    let namespace = spec.function_ref().namespace;
    if spec.secrets.is_empty() {
        return Ok(());
    }
    for name in &spec.secrets {
        let value = worker
            .topology
            .secrets
            .get(names::secret_key(&namespace, name))
            .await
            .map_err(|e| format!("reading secret {name:?}: {e}"))?
            .ok_or_else(|| format!("secret {name:?} does not exist"))?;
        write_secret(&dir, name, &value).map_err(|e| format!("writing secret {name:?}: {e}"))?;
    }
    Ok(())
}

/// Removes a function's secret directory (after the function is gone); `function` is its key.
pub fn forget(worker: &Worker, function: &str) {
    if let Some(dir) = function_dir(worker, function) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Keeps the files current as secrets change, until `shutdown`.
pub async fn follow(worker: Arc<Worker>, shutdown: CancellationToken) {
    if worker.runtimes.containers().is_none() {
        return;
    }
    while !shutdown.is_cancelled() {
        let mut watch = match worker.topology.secrets.watch(">").await {
            Ok(w) => w,
            Err(err) => {
                tracing::warn!(%err, "cannot watch secrets; retrying");
                tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
            }
        };
        loop {
            let entry = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = watch.next() => e,
            };
            let Some(Ok(entry)) = entry else { break };
            let Some((namespace, secret)) = entry.key.split_once('.') else { continue };
            let users: Vec<Arc<FunctionSpec>> = worker
                .specs
                .read()
                .expect("spec map lock")
                .values()
                .filter(|s| s.function_ref().namespace == namespace && s.secrets.iter().any(|n| n == secret))
                .cloned()
                .collect();
            for spec in users {
                let Some(dir) = function_dir(&worker, &spec.function_ref().key()) else { continue };
                let result = match entry.operation {
                    kv::Operation::Put => write_secret(&dir, secret, &entry.value),
                    _ => std::fs::remove_file(dir.join(secret)),
                };
                match result {
                    Ok(()) => tracing::info!(secret, function = %spec.function_ref(), "secret file refreshed"),
                    Err(err) => tracing::warn!(secret = %entry.key, %err, "secret file not refreshed"),
                }
            }
        }
    }
}
