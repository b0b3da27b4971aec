//! Which callback URLs Sluice will POST to: http(s) only, never link-local or cloud metadata addresses
//! unless allowed, plus configurable allow and deny lists of CIDRs and host names.
//!
//! The gateway checks a URL when the call is queued (a denied URL is a 400, never a request) and the worker
//! checks it again before each delivery, because a name may resolve elsewhere by then.

use std::net::IpAddr;

/// One allow- or deny-list entry: a network, or a host name (`*.example.com` matches subdomains).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Net(ipnet::IpNet),
    Host(String),
}

impl std::str::FromStr for Rule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(Self::Net(net));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Net(ip.into()));
        }
        let host = text.strip_prefix("*.").unwrap_or(text);
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(format!("{text:?} is neither a CIDR, an IP address nor a host name"));
        }
        Ok(Self::Host(text.to_ascii_lowercase()))
    }
}

impl Rule {
    fn matches_host(&self, host: &str) -> bool {
        match self {
            Self::Host(pattern) => match pattern.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == pattern,
            },
            Self::Net(_) => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        matches!(self, Self::Net(net) if net.contains(&ip))
    }
}

/// Addresses denied unless explicitly allowed: link-local ranges (where cloud metadata services live) and
/// the metadata services' names and addresses.
pub const DEFAULT_DENY: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "metadata.google.internal",
    "metadata.azure.com",
];

/// The callback URL policy.
#[derive(Clone, Debug)]
pub struct CallbackPolicy {
    /// When not empty, only these hosts and networks may receive callbacks.
    pub allow: Vec<Rule>,
    /// Never these; checked on the name and on every address it resolves to.
    pub deny: Vec<Rule>,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

/// Why a callback URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl CallbackPolicy {
    /// The default denials plus `deny`; an entry in `allow` that is also a default denial lifts it.
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>) -> Self {
        let mut all_deny: Vec<Rule> = DEFAULT_DENY
            .iter()
            .map(|r| r.parse().expect("default rules parse"))
            .filter(|rule| !allow.contains(rule))
            .collect();
        all_deny.extend(deny);
        Self { allow, deny: all_deny }
    }

    /// Checks `url`, resolving its host name, so every address it points at is checked.
    pub async fn check(&self, url: &str) -> Result<(), PolicyError> {
        let uri: http::Uri = url.parse().map_err(|_| PolicyError("not a URL".into()))?;
        let port = match uri.scheme_str() {
            Some("http") => uri.port_u16().unwrap_or(80),
            Some("https") => uri.port_u16().unwrap_or(443),
            _ => return Err(PolicyError("only http:// and https:// callbacks are supported".into())),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| PolicyError("the URL has no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if self.deny.iter().any(|r| r.matches_host(&host)) {
            return Err(PolicyError(format!("host {host:?} is denied by the callback policy")));
        }
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| PolicyError(format!("host {host:?} does not resolve: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        if let Some(ip) = addresses.iter().find(|ip| self.deny.iter().any(|r| r.matches_ip(**ip))) {
            return Err(PolicyError(format!("address {ip} is denied by the callback policy")));
        }
        if !self.allow.is_empty() {
            let allowed_name = self.allow.iter().any(|r| r.matches_host(&host));
            let allowed_ips =
                !addresses.is_empty() && addresses.iter().all(|ip| self.allow.iter().any(|r| r.matches_ip(*ip)));
            if !(allowed_name || allowed_ips) {
                return Err(PolicyError(format!("host {host:?} is not in the callback allow list")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<Rule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn metadata_and_link_local_are_denied_by_default() {
        let policy = CallbackPolicy::default();
        assert!(policy.check("http://127.0.0.1:9000/cb").await.is_ok());
        for bad in ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", "http://metadata.google.internal/"]
        {
            let err = policy.check(bad).await.unwrap_err();
            assert!(err.0.contains("denied"), "{bad}: {err}");
        }
        assert!(policy.check("ftp://127.0.0.1/x").await.is_err());
    }

    #[tokio::test]
    async fn allow_and_deny_lists() {
        let policy = CallbackPolicy::new(rules(&["10.0.0.0/8", "*.example.com", "localhost"]), rules(&["10.9.0.0/16"]));
        assert!(policy.check("http://10.1.2.3/cb").await.is_ok());
        assert!(policy.check("http://10.9.1.1/cb").await.is_err(), "deny wins over allow");
        assert!(policy.check("http://127.0.0.1/cb").await.is_err(), "not in the allow list");
        assert!(policy.check("http://localhost:8080/cb").await.is_ok());
        let lifted = CallbackPolicy::new(rules(&["169.254.0.0/16"]), vec![]);
        assert!(lifted.check("http://169.254.10.10/cb").await.is_ok(), "an allow entry lifts a default denial");
        let deny_loopback = CallbackPolicy::new(vec![], rules(&["127.0.0.0/8"]));
        assert!(deny_loopback.check("http://localhost/cb").await.is_err(), "names are checked by what they resolve to");
    }

    #[test]
    fn rules_parse() {
        assert_eq!("10.0.0.1".parse::<Rule>().unwrap(), Rule::Net("10.0.0.1/32".parse().unwrap()));
        assert!("not a host!".parse::<Rule>().is_err());
    }
}
