//! JSON Schema files for the wire types, kept in `contracts/json/` for other languages' clients.

use schemars::schema_for;

/// Every published schema: file name and pretty JSON text.
pub fn all() -> Vec<(&'static str, String)> {
    let pretty = |schema: schemars::Schema| serde_json::to_string_pretty(&schema).expect("schemas serialise") + "\n";
    vec![
        ("function-spec.json", pretty(schema_for!(crate::FunctionSpec))),
        ("function-status.json", pretty(schema_for!(crate::FunctionStatus))),
        ("call-record.json", pretty(schema_for!(crate::CallRecord))),
        ("dead-letter.json", pretty(schema_for!(crate::DeadLetter))),
        ("fan-out.json", pretty(schema_for!(crate::fanout::FanOut))),
        ("fan-out-group.json", pretty(schema_for!(crate::fanout::Group))),
        ("replica-report.json", pretty(schema_for!(crate::ReplicaReport))),
        ("scale-request.json", pretty(schema_for!(crate::ScaleRequest))),
    ]
}

/// Writes every schema into `dir`.
pub fn write_all(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in all() {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Fails when a wire type changed without `cargo run -p sluice-contracts --example write-json-schemas`.
    #[test]
    fn json_schemas_are_up_to_date() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
        for (name, text) in super::all() {
            let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            assert!(
                on_disk == text,
                "contracts/json/{name} is stale; regenerate with \
                 `cargo run -p sluice-contracts --example write-json-schemas`"
            );
        }
    }
}
