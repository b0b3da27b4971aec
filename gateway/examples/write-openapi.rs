//! Regenerates `docs/openapi.json` from the gateway's route table.

fn main() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(sluice_gateway::openapi::CHECKED_IN);
    std::fs::write(&path, sluice_gateway::openapi::document_text())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
