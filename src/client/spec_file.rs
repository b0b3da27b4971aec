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

/// `specs` in an order the gateway accepts: a function after those its `async.onSuccess`/`onFailure` go on to
/// (the gateway wants them deployed first). Specs that lead round in a loop keep their order; the gateway
/// refuses them with the loop named.
pub fn in_deploy_order(specs: Vec<FunctionSpec>) -> Vec<FunctionSpec> {
    let mut waiting = specs;
    let mut ordered: Vec<FunctionSpec> = Vec::with_capacity(waiting.len());
    while !waiting.is_empty() {
        // Ready: every destination it names within the file is placed already.
        let ready = |spec: &FunctionSpec, waiting: &[FunctionSpec]| {
            spec.destinations().iter().all(|(_, target)| {
                *target == spec.function_ref() || !waiting.iter().any(|other| other.function_ref() == *target)
            })
        };
        let next = (0..waiting.len()).find(|&i| ready(&waiting[i], &waiting)).unwrap_or(0);
        ordered.push(waiting.remove(next));
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_deploy_from_their_end() {
        let specs = parse(
            r#"[{"service": "a", "envProcess": "cat", "async": {"onSuccess": {"function": "b"}}},
                {"service": "b", "envProcess": "cat", "async": {"onFailure": {"function": "c"}}},
                {"service": "c", "envProcess": "cat"},
                {"service": "d", "envProcess": "cat"}]"#,
        )
        .unwrap();
        let order: Vec<String> = in_deploy_order(specs).into_iter().map(|s| s.service).collect();
        assert_eq!(order, ["c", "b", "a", "d"]);
    }

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
