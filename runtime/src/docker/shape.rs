//! What a function's containers look like: the Docker create request built from its spec, and the labels that
//! let a worker find its containers again after a restart.

use std::{collections::HashMap, path::Path};

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_contracts::{FunctionSpec, quantity};

/// Label naming the function a container serves.
pub const LABEL_FUNCTION: &str = "sluice.function";
/// Label naming the namespace of the function a container serves.
pub const LABEL_NAMESPACE: &str = "sluice.namespace";
/// Label naming the worker that owns a container; each worker adopts only its own.
pub const LABEL_WORKER: &str = "sluice.worker";
/// Label holding [`spec_hash`] of the spec the container was made from.
pub const LABEL_SPEC: &str = "sluice.spec";
/// Where OpenFaaS functions read their secrets; Sluice mounts them at the same path.
pub const SECRETS_PATH: &str = "/var/openfaas/secrets";
/// The port a function container serves HTTP on (the OpenFaaS watchdog convention).
pub const FUNCTION_PORT: u16 = 8080;

/// The part of a spec that shapes its containers. Scaling and retry settings are left out on purpose:
/// changing them must not replace running containers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerFields<'a> {
    image: &'a Option<String>,
    env_process: &'a Option<String>,
    env_vars: &'a std::collections::BTreeMap<String, String>,
    labels: &'a std::collections::BTreeMap<String, String>,
    limits: &'a Option<sluice_contracts::Resources>,
    secrets: &'a Vec<String>,
    read_only_root_filesystem: bool,
}

/// A short, stable digest of the container-shaping fields of `spec`.
pub fn spec_hash(spec: &FunctionSpec) -> String {
    let fields = ContainerFields {
        image: &spec.image,
        env_process: &spec.env_process,
        env_vars: &spec.env_vars,
        labels: &spec.labels,
        limits: &spec.limits,
        secrets: &spec.secrets,
        read_only_root_filesystem: spec.read_only_root_filesystem,
    };
    let json = serde_json::to_vec(&fields).expect("spec fields serialize");
    hex::encode(&Sha256::digest(&json)[..8])
}

/// The create request for one replica of `spec`. `secrets_dir` holds this function's secret files.
pub fn create_body(
    spec: &FunctionSpec,
    worker: &str,
    network: &str,
    secrets_dir: Option<&Path>,
) -> ContainerCreateBody {
    let mut labels: HashMap<String, String> = spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    labels.insert(LABEL_FUNCTION.into(), spec.service.clone());
    labels.insert(LABEL_NAMESPACE.into(), spec.function_ref().namespace);
    labels.insert(LABEL_WORKER.into(), worker.into());
    labels.insert(LABEL_SPEC.into(), spec_hash(spec));

    let mut env: Vec<String> = spec.env_vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(fprocess) = &spec.env_process {
        env.push(format!("fprocess={fprocess}"));
    }

    let limits = spec.limits.as_ref();
    // Validation already accepted these quantities; an unparsable one here means no limit rather than no function.
    let memory = limits.and_then(|l| l.memory.as_deref()).and_then(|m| quantity::memory_bytes(m).ok());
    let nano_cpus = limits.and_then(|l| l.cpu.as_deref()).and_then(|c| quantity::nano_cpus(c).ok());
    let binds = secrets_dir.map(|dir| vec![format!("{}:{SECRETS_PATH}:ro", dir.display())]);
    let mut tmpfs = HashMap::new();
    if spec.read_only_root_filesystem {
        // Functions still need somewhere to write scratch files, as on OpenFaaS.
        tmpfs.insert("/tmp".to_owned(), "rw,size=64m".to_owned());
    }

    ContainerCreateBody {
        image: spec.image.clone(),
        env: Some(env),
        labels: Some(labels),
        host_config: Some(HostConfig {
            memory: memory.map(|m| m as i64),
            // No swap beyond the limit, so the limit means what it says.
            memory_swap: memory.map(|m| m as i64),
            nano_cpus: nano_cpus.map(|n| n as i64),
            readonly_rootfs: Some(spec.read_only_root_filesystem),
            binds,
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            network_mode: Some(network.to_owned()),
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FunctionSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn scaling_changes_do_not_change_the_hash() {
        let a = spec(r#"{"service":"f","image":"i:1"}"#);
        let b = spec(r#"{"service":"f","image":"i:1","scale":{"min":3},"async":{"timeout":"5s"}}"#);
        let c = spec(r#"{"service":"f","image":"i:2"}"#);
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_ne!(spec_hash(&a), spec_hash(&c));
    }

    #[test]
    fn create_body_carries_labels_env_limits_and_secrets() {
        let s = spec(
            r#"{"service":"f","image":"i:1","envProcess":"cat","envVars":{"A":"1"},"labels":{"team":"x"},
                "limits":{"memory":"64Mi","cpu":"500m"},"secrets":["k"],"readOnlyRootFilesystem":true}"#,
        );
        let body = create_body(&s, "w1", "sluice", Some(Path::new("/s/f")));
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_FUNCTION], "f");
        assert_eq!(labels[LABEL_NAMESPACE], "openfaas-fn");
        assert_eq!(labels[LABEL_WORKER], "w1");
        assert_eq!(labels["team"], "x");
        let env = body.env.unwrap();
        assert!(env.contains(&"A=1".to_owned()) && env.contains(&"fprocess=cat".to_owned()));
        let host = body.host_config.unwrap();
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.binds.unwrap(), vec!["/s/f:/var/openfaas/secrets:ro".to_owned()]);
        assert_eq!(host.network_mode.as_deref(), Some("sluice"));
    }
}
