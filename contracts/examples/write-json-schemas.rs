//! Regenerates `contracts/json/` from the wire types.

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    sluice_contracts::json_schema::write_all(&dir)?;
    eprintln!("wrote JSON schemas to {}", dir.display());
    Ok(())
}
