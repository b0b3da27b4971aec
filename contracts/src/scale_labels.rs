//! OpenFaaS's scaling labels (`com.openfaas.scale.*`, as stack files set them) read as Sluice's `scale` block.
//! A field set in `scale` wins over its label.
//!
//! | label | `scale` field |
//! | --- | --- |
//! | `com.openfaas.scale.min` | `min` |
//! | `com.openfaas.scale.max` | `max` |
//! | `com.openfaas.scale.zero: true` | `idle`: `com.openfaas.scale.zero-duration`, else 15m (OpenFaaS's default) |
//! | `com.openfaas.scale.target` × `.target-proportion` (default 0.9) | `target` (in-flight calls per replica) |
//! | `com.openfaas.scale.type` | only `capacity` (in-flight calls), OpenFaaS's default; `rps` and `cpu` are refused |

use std::{collections::BTreeMap, time::Duration};

use crate::{HumanDuration, ScaleConfig, ValidationError};

const PREFIX: &str = "com.openfaas.scale.";
/// Idle time before scaling to zero when `zero-duration` is not given (OpenFaaS's default).
const DEFAULT_ZERO_DURATION: Duration = Duration::from_secs(15 * 60);

fn label<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> Option<(String, &'a str)> {
    let key = format!("{PREFIX}{name}");
    labels.get(&key).map(|value| (key, value.trim()))
}

fn count(labels: &BTreeMap<String, String>, name: &str) -> Result<Option<u32>, ValidationError> {
    label(labels, name)
        .map(|(key, value)| {
            value
                .parse::<u32>()
                .map_err(|_| ValidationError::new(&format!("labels.{key}"), format!("{value:?} is not a count")))
        })
        .transpose()
}

/// The scaling the labels ask for, with `explicit`'s fields taking precedence.
pub fn effective(
    labels: &BTreeMap<String, String>,
    explicit: Option<&ScaleConfig>,
) -> Result<ScaleConfig, ValidationError> {
    let explicit = explicit.cloned().unwrap_or_default();
    if let Some((key, kind)) = label(labels, "type")
        && !kind.eq_ignore_ascii_case("capacity")
    {
        return Err(ValidationError::new(
            &format!("labels.{key}"),
            format!("{kind:?} is not supported; Sluice scales on in-flight calls (capacity)"),
        ));
    }
    let zero = match label(labels, "zero") {
        Some((_, value)) if value.eq_ignore_ascii_case("true") => true,
        Some((_, value)) if value.eq_ignore_ascii_case("false") => false,
        Some((key, value)) => {
            return Err(ValidationError::new(&format!("labels.{key}"), format!("{value:?} is not true or false")));
        }
        None => false,
    };
    let idle = match (zero, label(labels, "zero-duration")) {
        (false, _) => None,
        (true, None) => Some(HumanDuration(DEFAULT_ZERO_DURATION)),
        (true, Some((key, value))) => Some(
            value
                .parse::<HumanDuration>()
                .map_err(|e| ValidationError::new(&format!("labels.{key}"), e.to_string()))?,
        ),
    };
    let proportion = match label(labels, "target-proportion") {
        None => 0.9,
        Some((key, value)) => match value.parse::<f64>() {
            Ok(p) if p > 0.0 && p <= 1.0 => p,
            _ => {
                return Err(ValidationError::new(
                    &format!("labels.{key}"),
                    format!("{value:?} is not a number in (0, 1]"),
                ));
            }
        },
    };
    let target = count(labels, "target")?.map(|t| ((f64::from(t) * proportion).floor() as u32).max(1));
    Ok(ScaleConfig {
        min: explicit.min.or(count(labels, "min")?),
        max: explicit.max.or(count(labels, "max")?),
        idle: explicit.idle.or(idle),
        target: explicit.target.or(target),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned())).collect()
    }

    #[test]
    fn labels_map_onto_scale_and_explicit_fields_win() {
        let stack = labels(&[("min", "2"), ("max", "3"), ("target", "10"), ("target-proportion", "0.5")]);
        let scale = effective(&stack, None).unwrap();
        assert_eq!((scale.min, scale.max, scale.target, scale.idle), (Some(2), Some(3), Some(5), None));
        let explicit = ScaleConfig { max: Some(7), ..Default::default() };
        assert_eq!(effective(&stack, Some(&explicit)).unwrap().max, Some(7));
        let zero = effective(&labels(&[("zero", "true"), ("zero-duration", "5m")]), None).unwrap();
        assert_eq!(zero.idle.map(HumanDuration::get), Some(Duration::from_secs(300)));
        let default_zero = effective(&labels(&[("zero", "TRUE")]), None).unwrap();
        assert_eq!(default_zero.idle.map(HumanDuration::get), Some(DEFAULT_ZERO_DURATION));
        assert_eq!(effective(&labels(&[("target", "1")]), None).unwrap().target, Some(1), "never below one");
    }

    #[test]
    fn bad_labels_are_named() {
        for (pairs, field) in [
            (vec![("min", "two")], "labels.com.openfaas.scale.min"),
            (vec![("type", "rps")], "labels.com.openfaas.scale.type"),
            (vec![("zero", "maybe")], "labels.com.openfaas.scale.zero"),
            (vec![("zero", "true"), ("zero-duration", "soon")], "labels.com.openfaas.scale.zero-duration"),
            (vec![("target-proportion", "2")], "labels.com.openfaas.scale.target-proportion"),
        ] {
            assert_eq!(effective(&labels(&pairs), None).unwrap_err().field, field);
        }
    }
}
