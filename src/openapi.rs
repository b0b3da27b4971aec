//! `sluice openapi`: prints the OpenAPI 3.1 document of the HTTP API as `sluice up` and `sluice gateway` serve
//! it (the gateway's routes and the connectors' beside them), the one checked in as `docs/openapi.json`.

use std::io::Write;

/// The document, as served at `GET /openapi.json`.
pub fn document_text() -> String {
    sluice_gateway::openapi::document_text(crate::serve::connector::document_http_routes)
}

pub fn run() -> anyhow::Result<()> {
    std::io::stdout().write_all(document_text().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Fails when a route, or a type one reads or answers, changed without `sluice openapi > docs/openapi.json`.
    #[test]
    fn the_checked_in_document_is_up_to_date() {
        aide::generate::on_error(|err| panic!("OpenAPI generation: {err}"));
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == super::document_text(),
            "docs/openapi.json is stale; regenerate it with `cargo run -q -- openapi > docs/openapi.json`"
        );
    }
}
