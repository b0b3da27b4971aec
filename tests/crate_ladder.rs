//! The workspace's crates form a ladder: each depends only on crates on lower rungs, never sideways or up.
//!
//! ```text
//! contracts ← {jetstream, outbound} ← {runtime, connectors} ← {queue-worker, gateway} ← sluice (the binary)
//! ```
//!
//! Read from `cargo metadata`, so a new path dependency that breaks the ladder fails here, and a new crate
//! must be given its rung.

use std::collections::HashMap;

/// Each workspace crate's rung; a crate may depend only on crates with a smaller number.
const RUNGS: &[(&str, u32)] = &[
    ("sluice-contracts", 0),
    ("sluice-jetstream", 1),
    ("sluice-outbound", 1),
    ("sluice-runtime", 2),
    ("sluice-connectors", 2),
    ("sluice-queue-worker", 3),
    ("sluice-gateway", 3),
    ("sluice", 4),
];

/// Crates on one rung serve different sides and stay apart: the gateway never carries the AWS SDK
/// (connectors) or the container engine client (runtime); event connectors never run functions.
const APART: &[(&str, &str)] = &[
    ("sluice-gateway", "sluice-connectors"),
    ("sluice-gateway", "sluice-runtime"),
    ("sluice-queue-worker", "sluice-connectors"),
    ("sluice-connectors", "sluice-runtime"),
];

#[test]
fn workspace_crates_depend_only_downwards() {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let rungs: HashMap<&str, u32> = RUNGS.iter().copied().collect();
    let packages = metadata["packages"].as_array().expect("packages");
    let mut edges = 0;
    for package in packages {
        let name = package["name"].as_str().expect("a package name");
        let rung = *rungs.get(name).unwrap_or_else(|| panic!("crate {name} has no rung in the ladder; add it"));
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            // Path dependencies are the workspace's own crates.
            if dependency.get("path").and_then(|p| p.as_str()).is_none() {
                continue;
            }
            let on = dependency["name"].as_str().expect("a dependency name");
            let on_rung = *rungs.get(on).unwrap_or_else(|| panic!("{name} depends on {on}, which has no rung"));
            assert!(on_rung < rung, "{name} (rung {rung}) depends on {on} (rung {on_rung}): sideways or up");
            assert!(!APART.contains(&(name, on)), "{name} must not depend on {on}");
            edges += 1;
        }
    }
    assert_eq!(packages.len(), RUNGS.len(), "every rung names a workspace crate");
    assert!(edges >= 10, "only {edges} workspace edges found: is cargo metadata reporting path dependencies?");
}
