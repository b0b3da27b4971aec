//! The function spec (OpenFaaS `FunctionDeployment` plus Sluice's fields) and its validation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{HumanDuration, chain::Leg, quantity, schedule::Schedule};

/// How a function is run by workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// A container serving HTTP on port 8080.
    Docker,
    /// `envProcess` run once per call, body on stdin, response on stdout.
    Process,
    /// An existing HTTP service at `upstream`.
    Http,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Process => "process",
            Self::Http => "http",
        }
    }
}

/// Resource limits or requests, OpenFaaS style (`"128Mi"`, `"0.5"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
}

/// When and how a failed call is tried again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Function status codes that are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_wait: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<HumanDuration>,
}

/// Settings of asynchronous calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AsyncConfig {
    /// Calls of this function running at once on one worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<u32>,
    /// How long one attempt may run before it is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Calls older than this are not started any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<HumanDuration>,
    /// A running call that sends no progress report for this long is stopped as hung and retried per its
    /// retry policy; without it, only `timeout` ends a silent call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<HumanDuration>,
    /// The function a succeeded call goes on to, its response the next call's input, and/or the URL its result
    /// is POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<crate::chain::Destination>,
    /// The function a call that failed for good goes on to, its last response the next call's input, and/or the
    /// URL its result is POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<crate::chain::Destination>,
}

/// Replica bounds and autoscaling target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Idle time after which a function scales to zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<HumanDuration>,
    /// In-flight calls per replica the autoscaler aims for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
}

/// S3 object notification filter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct S3Trigger {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// Exact match on CloudEvent attributes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventTrigger {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One way a function is invoked by an event rather than by a direct call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Cron expression (5 or 6 fields, or a descriptor such as `@hourly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone of `cron`; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Ticks of `cron` missed while no connector ran that are fired on start (the latest ones); 0 skips them.
    #[serde(rename = "catchUp", default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Trigger>,
    /// Name of the webhook (`POST /hooks/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventTrigger>,
    /// Where the outcome of each call this trigger makes is POSTed (the callback contract of async calls).
    #[serde(rename = "callbackUrl", default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// A function as deployed: OpenFaaS `FunctionDeployment` fields plus Sluice's own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    /// Function name: a DNS-1123 label of at most 63 characters.
    pub service: String,
    /// OpenFaaS namespace; the gateway's default namespace (`openfaas-fn` unless configured) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Container image (docker runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Command run per call (process runtime), or `fprocess` of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_process: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Resources>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_root_filesystem: bool,
    /// `docker`, `process` or `http`; defaults to `docker` when `image` is set, else `process`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeKind>,
    /// Base URL of the service that serves calls (http runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    #[serde(rename = "async", default, skip_serializing_if = "Option::is_none")]
    pub async_config: Option<AsyncConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleConfig>,
}

/// A function spec as reported by the API: the spec plus live figures (OpenFaaS `FunctionStatus`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    /// The function's name (OpenFaaS's field; `service` says the same).
    pub name: String,
    #[serde(flatten)]
    pub spec: FunctionSpec,
    pub replicas: u64,
    pub available_replicas: u64,
    /// Finished calls, synchronous and queued (counted by the workers, added up every few seconds).
    pub invocation_count: u64,
    /// When the function was last deployed or updated.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// CPU and memory its container replicas use (container functions, once measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::Usage>,
}

/// A spec that cannot be deployed; names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// JSON field name, as in the request body (`service`, `async.maxInflight`, …).
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }
}

pub use crate::function_ref::is_dns_label;

/// Whether `name` can name a secret: it becomes a file name, so letters, digits, `-`, `_` and `.`, not starting
/// with `.`, at most 253 characters.
pub fn is_secret_name(name: &str) -> bool {
    crate::names::is_key_safe(name, 253) && !name.contains('=')
}

impl FunctionSpec {
    /// Who the function is: its namespace (as deployed; a spec stored before namespaces existed has none and
    /// lives in the [legacy namespace](crate::function_ref::LEGACY_NAMESPACE)) and its name.
    pub fn function_ref(&self) -> crate::FunctionRef {
        let namespace = self.namespace.as_deref().unwrap_or(crate::function_ref::LEGACY_NAMESPACE);
        crate::FunctionRef::new(namespace, self.service.as_str())
    }

    /// The runtime calls go through: explicit, else `docker` with an image, else `process`.
    pub fn runtime_kind(&self) -> RuntimeKind {
        self.runtime.unwrap_or(if self.image.is_some() { RuntimeKind::Docker } else { RuntimeKind::Process })
    }

    /// Calls of this function one worker runs at once, if limited.
    pub fn max_inflight(&self) -> Option<u32> {
        self.async_config.as_ref().and_then(|a| a.max_inflight)
    }

    /// How long one attempt may run, if the spec says.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.async_config.as_ref().and_then(|a| a.timeout).map(HumanDuration::get)
    }

    /// How long a running call may go without a progress report, if the spec says.
    pub fn heartbeat_timeout(&self) -> Option<std::time::Duration> {
        self.async_config.as_ref().and_then(|a| a.heartbeat_timeout).map(HumanDuration::get)
    }

    /// The functions this one's finished calls go on to, by leg.
    pub fn destinations(&self) -> Vec<(crate::chain::Leg, crate::FunctionRef)> {
        let namespace = self.function_ref().namespace;
        let Some(cfg) = &self.async_config else { return Vec::new() };
        [(crate::chain::Leg::OnSuccess, &cfg.on_success), (crate::chain::Leg::OnFailure, &cfg.on_failure)]
            .into_iter()
            .filter_map(|(leg, destination)| Some((leg, destination.as_ref()?.target(&namespace)?)))
            .collect()
    }

    /// The URL a call that ended on `leg` is POSTed to, if the spec names one.
    pub fn destination_url(&self, leg: crate::chain::Leg) -> Option<&str> {
        let cfg = self.async_config.as_ref()?;
        let destination = match leg {
            crate::chain::Leg::OnSuccess => cfg.on_success.as_ref(),
            crate::chain::Leg::OnFailure => cfg.on_failure.as_ref(),
        };
        destination?.url.as_deref()
    }

    /// Checks that the spec can be deployed as it is.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_name()?;
        self.validate_runtime()?;
        self.validate_environment()?;
        self.validate_async()?;
        self.validate_resources()?;
        self.validate_scale()?;
        self.validate_triggers()
    }
}

impl FunctionSpec {
    /// `service`: a DNS label, as container and subject names need.
    fn validate_name(&self) -> Result<(), ValidationError> {
        if !is_dns_label(&self.service) {
            return Err(ValidationError::new(
                "service",
                format!(
                    "{:?} is not a valid function name: use 1-63 lowercase letters, digits and '-', \
                     starting and ending with a letter or digit",
                    self.service
                ),
            ));
        }
        if let Some(namespace) = self.namespace.as_deref()
            && !is_dns_label(namespace)
        {
            return Err(ValidationError::new(
                "namespace",
                format!("{namespace:?} is not a valid namespace name: use 1-63 lowercase letters, digits and '-'"),
            ));
        }
        Ok(())
    }

    /// What the runtime needs (image, command or upstream), and nothing another runtime uses.
    fn validate_runtime(&self) -> Result<(), ValidationError> {
        match self.runtime_kind() {
            RuntimeKind::Docker => {
                if self.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
                    return Err(ValidationError::new("image", "the docker runtime needs an image"));
                }
            }
            RuntimeKind::Process => {
                let command = self.env_process.as_deref().unwrap_or("").trim();
                if command.is_empty() {
                    return Err(ValidationError::new(
                        "envProcess",
                        "the process runtime needs a command in envProcess",
                    ));
                }
                if self.image.is_some() {
                    return Err(ValidationError::new("image", "an image is only used by the docker runtime"));
                }
                shell_words::split(command)
                    .map_err(|e| ValidationError::new("envProcess", format!("cannot be split into words: {e}")))?;
            }
            RuntimeKind::Http => {
                let upstream = self.upstream.as_deref().unwrap_or("");
                let scheme_ok = upstream.starts_with("http://") || upstream.starts_with("https://");
                if !scheme_ok || upstream.parse::<http::Uri>().is_err() {
                    return Err(ValidationError::new(
                        "upstream",
                        format!("the http runtime needs an http:// or https:// URL, got {upstream:?}"),
                    ));
                }
            }
        }
        if self.runtime_kind() != RuntimeKind::Http && self.upstream.is_some() {
            return Err(ValidationError::new("upstream", "upstream is only used by the http runtime"));
        }
        Ok(())
    }

    /// Variable names and values a process environment can hold.
    fn validate_environment(&self) -> Result<(), ValidationError> {
        for (key, value) in &self.env_vars {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(ValidationError::new("envVars", format!("invalid variable name {key:?}")));
            }
            if value.contains('\0') {
                return Err(ValidationError::new(&format!("envVars.{key}"), "a value cannot hold a NUL character"));
            }
        }
        if self.env_process.as_deref().is_some_and(|p| p.contains('\0')) {
            return Err(ValidationError::new("envProcess", "cannot hold a NUL character"));
        }
        Ok(())
    }

    /// `async`: limits that can be met, waits in order, real status codes.
    fn validate_async(&self) -> Result<(), ValidationError> {
        if let Some(cfg) = &self.async_config {
            if cfg.max_inflight == Some(0) {
                return Err(ValidationError::new("async.maxInflight", "must be at least 1"));
            }
            if cfg.timeout.is_some_and(|t| t.get().is_zero()) {
                return Err(ValidationError::new("async.timeout", "must be longer than zero"));
            }
            if cfg.max_age.is_some_and(|t| t.get().is_zero()) {
                return Err(ValidationError::new("async.maxAge", "must be longer than zero"));
            }
            if cfg.heartbeat_timeout.is_some_and(|t| t.get() < std::time::Duration::from_secs(1)) {
                return Err(ValidationError::new("async.heartbeatTimeout", "must be at least 1s"));
            }
            for (leg, destination) in [(Leg::OnSuccess, &cfg.on_success), (Leg::OnFailure, &cfg.on_failure)] {
                if destination.as_ref().is_some_and(|d| d.function.is_none() && d.url.is_none()) {
                    return Err(ValidationError::new(leg.field(), "names neither a function nor a url"));
                }
            }
            for (leg, target) in self.destinations() {
                if !target.is_valid() {
                    return Err(ValidationError::new(
                        &format!("{}.function", leg.field()),
                        format!("{:?} is not a function name: NAME or NAME.NAMESPACE, DNS labels", target.to_string()),
                    ));
                }
                if target == self.function_ref() {
                    return Err(ValidationError::new(leg.field(), "a function cannot go on to itself: a loop"));
                }
            }
            if let Some(retry) = &cfg.retry {
                if retry.attempts == Some(0) {
                    return Err(ValidationError::new("async.retry.attempts", "must be at least 1"));
                }
                if let (Some(min), Some(max)) = (retry.min_wait, retry.max_wait)
                    && min > max
                {
                    return Err(ValidationError::new("async.retry.minWait", "must not be longer than maxWait"));
                }
                if let Some(code) = retry.codes.iter().flatten().find(|c| !(100..=599).contains(*c)) {
                    return Err(ValidationError::new(
                        "async.retry.codes",
                        format!("{code} is not an HTTP status code"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each trigger is one kind with a valid definition; the `schedule` annotation parses.
    fn validate_triggers(&self) -> Result<(), ValidationError> {
        for (i, trigger) in self.triggers.iter().enumerate() {
            let kinds =
                [trigger.cron.is_some(), trigger.s3.is_some(), trigger.webhook.is_some(), trigger.event.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(ValidationError::new(
                    &format!("triggers[{i}]"),
                    "a trigger has exactly one of cron, s3, webhook or event",
                ));
            }
            if let Some(cron) = &trigger.cron {
                Schedule::parse(cron, trigger.timezone.as_deref())
                    .map_err(|e| ValidationError::new(&format!("triggers[{i}].cron"), e))?;
            }
            if trigger.catch_up.is_some_and(|n| n > 100) {
                return Err(ValidationError::new(&format!("triggers[{i}].catchUp"), "at most 100 missed ticks"));
            }
            if let Some(event) = &trigger.event
                && event.event_type.is_none()
                && event.source.is_none()
            {
                return Err(ValidationError::new(&format!("triggers[{i}].event"), "give type, source or both"));
            }
            if trigger.timezone.is_some() && trigger.cron.is_none() {
                return Err(ValidationError::new(&format!("triggers[{i}].timezone"), "a time zone needs cron"));
            }
        }
        if let Some(schedule) = self.annotations.get("schedule") {
            Schedule::parse(schedule, None).map_err(|e| ValidationError::new("annotations.schedule", e))?;
        }
        Ok(())
    }
    fn validate_resources(&self) -> Result<(), ValidationError> {
        for (field, resources) in [("limits", &self.limits), ("requests", &self.requests)] {
            let Some(resources) = resources else { continue };
            if let Some(memory) = &resources.memory {
                quantity::memory_bytes(memory).map_err(|e| ValidationError::new(&format!("{field}.memory"), e))?;
            }
            if let Some(cpu) = &resources.cpu {
                quantity::nano_cpus(cpu).map_err(|e| ValidationError::new(&format!("{field}.cpu"), e))?;
            }
        }
        for secret in &self.secrets {
            if !is_secret_name(secret) {
                return Err(ValidationError::new("secrets", format!("{secret:?} is not a secret name")));
            }
        }
        Ok(())
    }

    fn validate_scale(&self) -> Result<(), ValidationError> {
        let scale = &crate::scale_labels::effective(&self.labels, self.scale.as_ref())?;
        if let (Some(min), Some(max)) = (scale.min, scale.max)
            && min > max
        {
            return Err(ValidationError::new("scale.min", "must not be greater than scale.max"));
        }
        if scale.max == Some(0) {
            return Err(ValidationError::new("scale.max", "must be at least 1"));
        }
        if scale.target == Some(0) {
            return Err(ValidationError::new("scale.target", "must be at least 1"));
        }
        if scale.idle.is_some() && scale.min.is_some_and(|m| m > 0) {
            return Err(ValidationError::new("scale.idle", "scaling to zero when idle needs scale.min 0 or unset"));
        }
        Ok(())
    }

    /// The `scale` block with OpenFaaS's `com.openfaas.scale.*` labels filling what it leaves unset (see
    /// [`scale_labels`](crate::scale_labels)); a deployed spec's labels were checked by [`FunctionSpec::validate`].
    pub fn scale_config(&self) -> ScaleConfig {
        crate::scale_labels::effective(&self.labels, self.scale.as_ref())
            .unwrap_or_else(|_| self.scale.clone().unwrap_or_default())
    }

    /// Replicas kept when the function is busy or was deployed: `scale.min`, else 1 — or 0 when the
    /// function scales to zero (`scale.idle`) and sets no minimum.
    pub fn min_replicas(&self) -> u32 {
        match self.scale_config() {
            ScaleConfig { min: Some(min), .. } => min,
            ScaleConfig { idle: Some(_), .. } => 0,
            _ => 1,
        }
    }

    /// Most replicas autoscaling starts (default 20, as OpenFaaS).
    pub fn max_replicas(&self) -> u32 {
        self.scale_config().max.unwrap_or(20).max(self.min_replicas()).max(1)
    }

    /// How long a function that scales to zero may stay idle first.
    pub fn idle_after(&self) -> Option<std::time::Duration> {
        self.scale_config().idle.map(HumanDuration::get)
    }

    /// In-flight calls per replica autoscaling aims for: `scale.target`, else `async.maxInflight`, else 10.
    pub fn target_per_replica(&self) -> u32 {
        self.scale_config().target.or(self.max_inflight()).unwrap_or(10).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FunctionSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn dns_labels() {
        for ok in ["a", "upper", "my-fn-2", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "Upper", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn runtime_defaults_follow_the_image() {
        assert_eq!(spec(r#"{"service":"a","image":"x"}"#).runtime_kind(), RuntimeKind::Docker);
        assert_eq!(spec(r#"{"service":"a","envProcess":"cat"}"#).runtime_kind(), RuntimeKind::Process);
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (r#"{"service":"Bad_Name","envProcess":"cat"}"#, "service"),
            (r#"{"service":"a"}"#, "envProcess"),
            (r#"{"service":"a","runtime":"http","upstream":"ftp://x"}"#, "upstream"),
            (r#"{"service":"a","runtime":"docker"}"#, "image"),
            (r#"{"service":"a","namespace":"Team.A","envProcess":"cat"}"#, "namespace"),
            (r#"{"service":"a","envProcess":"cat","async":{"maxInflight":0}}"#, "async.maxInflight"),
            (r#"{"service":"a","envProcess":"cat","triggers":[{}]}"#, "triggers[0]"),
            (r#"{"service":"a","image":"x","limits":{"memory":"12Qi"}}"#, "limits.memory"),
            (r#"{"service":"a","image":"x","limits":{"cpu":"lots"}}"#, "limits.cpu"),
            (r#"{"service":"a","image":"x","scale":{"min":1,"idle":"1m"}}"#, "scale.idle"),
            (r#"{"service":"a","envProcess":"cat","triggers":[{"cron":"* * *"}]}"#, "triggers[0].cron"),
            (r#"{"service":"a","envProcess":"cat","annotations":{"schedule":"bad"}}"#, "annotations.schedule"),
        ];
        for (json, field) in cases {
            let err = spec(json).validate().unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        spec(r#"{"service":"a","runtime":"http","upstream":"http://127.0.0.1:9/x"}"#).validate().unwrap();
    }

    #[test]
    fn openfaas_field_names_round_trip() {
        let json = r#"{"service":"a","envProcess":"cat","envVars":{"k":"v"},"readOnlyRootFilesystem":true,
            "async":{"maxInflight":2,"timeout":"30s","retry":{"attempts":3,"minWait":"1s"}}}"#;
        let s = spec(json);
        assert_eq!(s.max_inflight(), Some(2));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["envVars"]["k"], "v");
        assert_eq!(back["async"]["retry"]["minWait"], "1s");
        assert_eq!(back["readOnlyRootFilesystem"], true);
    }
}
