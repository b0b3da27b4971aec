//! Option groups shared by several commands, and small parsers for their values.

use std::time::Duration;

use clap::Args;

/// Where the gateway is and how to authenticate, for client commands.
#[derive(Args, Clone, Debug)]
pub struct GatewayClientArgs {
    /// Gateway base URL.
    #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8080", global = true)]
    pub gateway: String,
    /// Bearer token for /system/* routes.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Basic-auth user (with SLUICE_PASSWORD).
    #[arg(long, env = "SLUICE_USER", global = true)]
    pub user: Option<String>,
    #[arg(long, env = "SLUICE_PASSWORD", hide_env_values = true, global = true)]
    pub password: Option<String>,
    /// Namespace of the functions, calls, dead letters and secrets a command names (the gateway's default one
    /// when absent).
    #[arg(long, env = "SLUICE_NAMESPACE", global = true)]
    pub namespace: Option<String>,
    /// Data directory of a local `sluice up`/`gateway`, whose generated admin password is used when no
    /// credentials are given and the gateway is on this machine.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = default_data_dir(), global = true, hide = true)]
    pub data_dir: std::path::PathBuf,
}

/// Where server state lives by default (`sluice up`'s nats-server store, the generated admin password).
pub fn default_data_dir() -> std::path::PathBuf {
    std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
        .join(".local/share/sluice")
}

/// Logging of server commands.
#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// `human` or `json`.
    #[arg(long, env = "SLUICE_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    /// Export trace spans over OTLP/HTTP (JSON) to this collector (`http://collector:4318`; `/v1/traces` is
    /// added). Unset, nothing is exported and an incoming `traceparent` passes through to functions unchanged.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// `30s`, `5m`, `200ms`.
pub fn duration(text: &str) -> Result<Duration, String> {
    text.parse::<sluice_contracts::HumanDuration>()
        .map(|d| d.get())
        .map_err(|e| format!("{e}; write it like 30s, 5m or 200ms"))
}

/// `1048576`, `512KiB`, `128MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of ten).
pub fn byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| format!("{text:?} is not a size such as 64MiB"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

/// An error chain as one line: `outer: inner: root`.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(byte_size("1024").unwrap(), 1024);
        assert_eq!(byte_size("128MiB").unwrap(), 128 << 20);
        assert_eq!(byte_size("2 GiB").unwrap(), 2 << 30);
        assert!(byte_size("lots").is_err());
        assert!(byte_size("5 parsecs").is_err());
    }

    #[test]
    fn error_chain_is_one_line_without_repeats() {
        let err = anyhow::anyhow!("root cause").context("loading spec").context("deploy failed");
        assert_eq!(one_line(&err), "deploy failed: loading spec: root cause");
    }
}
