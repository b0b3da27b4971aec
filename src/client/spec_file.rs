//! Reading function specs from JSON or YAML files: one spec, or a list of them.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use sluice_contracts::FunctionSpec;

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Box<FunctionSpec>),
    Many(Vec<FunctionSpec>),
}

/// The specs in `path` (YAML is a superset of JSON, so one parser reads both).
pub fn read(path: &Path) -> anyhow::Result<Vec<FunctionSpec>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a function spec", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<Vec<FunctionSpec>> {
    Ok(match serde_yaml::from_str::<OneOrMany>(text)? {
        OneOrMany::One(spec) => vec![*spec],
        OneOrMany::Many(specs) => specs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_yaml_and_lists() {
        assert_eq!(parse(r#"{"service": "a", "envProcess": "cat"}"#).unwrap()[0].service, "a");
        let yaml = "- service: a\n  envProcess: cat\n- service: b\n  runtime: http\n  upstream: http://127.0.0.1:9\n";
        let specs = parse(yaml).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].upstream.as_deref(), Some("http://127.0.0.1:9"));
        assert!(parse("just text").is_err());
    }
}
