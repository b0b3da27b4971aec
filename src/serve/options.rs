//! Options every server command shares: NATS, the listener's limits, the outbound URL policy and the default
//! namespace.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sluice_contracts::outbound::{OutboundPolicy, Rule};
use sluice_jetstream::topology::{self, Topology, TopologyConfig};

use crate::args;

/// How to reach NATS and how Sluice's streams are set up there.
#[derive(Args, Clone, Debug)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated for a cluster.
    #[arg(long, env = "SLUICE_NATS_URL")]
    pub nats_url: Option<String>,
    /// Replicas of every stream and bucket (3 on a 3-node cluster).
    #[arg(long, env = "SLUICE_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    /// How long call records are kept.
    #[arg(long, env = "SLUICE_CALLS_TTL", default_value = "7d", value_parser = args::duration)]
    pub calls_ttl: Duration,
    /// Most space call records may take (none by default: only `--calls-ttl`); when full, the oldest go first.
    #[arg(long, env = "SLUICE_CALLS_MAX_BYTES", value_parser = positive_byte_size)]
    pub calls_max_bytes: Option<usize>,
    /// How long calls' results are kept for `GET /system/calls/{id}/result` (and their completion events).
    #[arg(long, env = "SLUICE_RESULTS_TTL", default_value = "24h", value_parser = args::duration)]
    pub results_ttl: Duration,
    /// Most space kept results may take; when full, the oldest go first.
    #[arg(long, env = "SLUICE_RESULTS_MAX_BYTES", default_value = "1GiB", value_parser = args::byte_size)]
    pub results_max_bytes: usize,
    /// Most space stored request and response bodies may take (new large bodies get a 503 past it).
    #[arg(long, env = "SLUICE_PAYLOADS_MAX_BYTES", default_value = "8GiB", value_parser = args::byte_size)]
    pub payloads_max_bytes: usize,
}

impl NatsArgs {
    pub async fn topology(&self, url: &str, name: &str) -> anyhow::Result<Topology> {
        let client = topology::connect(url, name).await?;
        let cfg = TopologyConfig {
            replicas: self.replicas,
            calls_ttl: self.calls_ttl,
            calls_max_bytes: self.calls_max_bytes.map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
            payloads_max_bytes: i64::try_from(self.payloads_max_bytes).unwrap_or(i64::MAX),
            results_ttl: self.results_ttl,
            results_max_bytes: i64::try_from(self.results_max_bytes).unwrap_or(i64::MAX),
            ..Default::default()
        };
        Ok(topology::ensure(client, &cfg).await?)
    }

    pub fn required_url(&self) -> anyhow::Result<&str> {
        self.nats_url.as_deref().context("--nats-url (or SLUICE_NATS_URL) is required")
    }
}

/// The namespace a bare function name means (in invocation paths, deploys and `/system` queries); its secrets
/// also hold the connectors' own (`webhook-{name}`, `connector-s3-token`).
#[derive(Args, Clone, Debug)]
pub struct NamespaceArgs {
    /// The namespace a bare function name means; the connectors' secrets live there too.
    #[arg(long, env = "SLUICE_DEFAULT_NAMESPACE", default_value = sluice_contracts::names::DEFAULT_NAMESPACE,
          value_parser = dns_label)]
    pub default_namespace: String,
}

fn positive_byte_size(text: &str) -> Result<usize, String> {
    match args::byte_size(text)? {
        0 => Err("use a size above 0, or leave the option out for no limit".to_owned()),
        bytes => Ok(bytes),
    }
}

fn dns_label(name: &str) -> Result<String, String> {
    if sluice_contracts::function::is_dns_label(name) {
        Ok(name.to_owned())
    } else {
        Err("use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit".to_owned())
    }
}

/// Bounds of an HTTP listener.
#[derive(Args, Clone, Debug)]
pub struct ListenOptions {
    /// Time a client has to send a request's headers (also the idle time allowed between requests).
    #[arg(long, env = "SLUICE_HEADER_TIMEOUT", default_value = "10s", value_parser = args::duration)]
    pub header_timeout: Duration,
    /// Longest pause allowed while a request body is being sent.
    #[arg(long, env = "SLUICE_BODY_TIMEOUT", default_value = "30s", value_parser = args::duration)]
    pub body_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
}

impl ListenOptions {
    /// The listener's bounds, the connection cap kept under what the open-file limit allows.
    pub fn limits(&self) -> sluice_gateway::listen::ListenLimits {
        let open_files = sluice_gateway::listen::raise_open_files_limit();
        // Each connection is a descriptor; NATS, containers' logs and files need some too.
        let affordable = usize::try_from(open_files.saturating_sub(256) / 2).unwrap_or(usize::MAX).max(16);
        if self.max_connections > affordable {
            tracing::warn!(
                max_connections = self.max_connections,
                open_files,
                "the open-file limit allows only {affordable} connections; raise it (ulimit -n) to serve more"
            );
        }
        sluice_gateway::listen::ListenLimits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections.min(affordable),
            ..Default::default()
        }
    }
}

/// Which callback URLs are accepted (gateway) and delivered to (worker).
#[derive(Args, Clone, Debug)]
pub struct CallbackPolicyArgs {
    /// Only these hosts and networks may receive callbacks (comma-separated CIDRs, IPs, host names, *.domain).
    #[arg(long, env = "SLUICE_CALLBACK_ALLOW", value_delimiter = ',')]
    pub callback_allow: Vec<Rule>,
    /// Never these (added to the default denial of this host, link-local and cloud metadata addresses).
    #[arg(long, env = "SLUICE_CALLBACK_DENY", value_delimiter = ',')]
    pub callback_deny: Vec<Rule>,
    /// Hosts an SNS SubscribeURL may name besides https://sns.<region>.amazonaws.com (still under the
    /// callback policy).
    #[arg(long, env = "SLUICE_SNS_SUBSCRIBE_HOST", value_delimiter = ',')]
    pub sns_subscribe_host: Vec<Rule>,
}

impl CallbackPolicyArgs {
    pub fn policy(&self) -> OutboundPolicy {
        OutboundPolicy::new(self.callback_allow.clone(), self.callback_deny.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_cap_is_a_size_above_zero() {
        assert_eq!(positive_byte_size("2GiB"), Ok(2 << 30));
        assert!(positive_byte_size("0").unwrap_err().contains("above 0"));
        assert!(positive_byte_size("-1").is_err());
    }
}
