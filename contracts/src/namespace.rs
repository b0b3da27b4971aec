//! A namespace as `/system/namespace` takes and shows it (OpenFaaS `FunctionNamespace`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ValidationError, function::is_dns_label};

/// Most labels, and most annotations, one namespace may carry.
pub const MAX_NAMESPACE_TAGS: usize = 64;

/// A namespace functions and secrets live in. Two functions of one name in two namespaces are two functions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Namespace {
    /// A DNS label, as function names are.
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Namespace {
    /// Checks the name and bounds what is stored with it.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !is_dns_label(&self.name) {
            return Err(ValidationError::new(
                "name",
                format!(
                    "{:?} is not a valid namespace name: use 1-63 lowercase letters, digits and '-', starting and \
                     ending with a letter or digit",
                    self.name
                ),
            ));
        }
        for (field, tags) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            if tags.len() > MAX_NAMESPACE_TAGS {
                return Err(ValidationError::new(field, format!("at most {MAX_NAMESPACE_TAGS} entries")));
            }
            if let Some((key, _)) = tags.iter().find(|(k, v)| k.is_empty() || k.len() > 253 || v.len() > 4096) {
                return Err(ValidationError::new(
                    field,
                    format!("{key:?}: keys are 1-253 characters and values at most 4096"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_and_tags_are_bounded() {
        let ok = Namespace { name: "team-a".into(), ..Default::default() };
        ok.validate().unwrap();
        for bad in ["", "Team", "a.b", "a_b"] {
            let err = Namespace { name: bad.into(), ..Default::default() }.validate().unwrap_err();
            assert_eq!(err.field, "name");
        }
        let many = (0..=MAX_NAMESPACE_TAGS).map(|i| (i.to_string(), String::new())).collect();
        let err = Namespace { labels: many, ..ok }.validate().unwrap_err();
        assert_eq!(err.field, "labels");
    }
}
