//! The outbound URL policy: which URLs Sluice makes requests to on a caller's behalf (callbacks, SNS
//! subscription confirmations). http(s) only; never loopback, unspecified, link-local, multicast or cloud
//! metadata addresses unless allowed; plus configurable allow and deny lists of CIDRs and host names.
//!
//! Addresses are canonicalised first (IPv4-mapped and IPv4-compatible IPv6 and the NAT64 prefix `64:ff9b::/96`
//! are checked as the IPv4 address they carry), URLs are parsed the way the HTTP client parses them (so
//! `http://0/` or `http://2130706433/` are the addresses they denote), and the `sluice-outbound` crate builds an HTTP
//! client whose name resolution applies the policy to every address it connects to. The check at enqueue
//! time is for a fast 400; the check at connect time is the one that counts, so DNS rebinding between the two
//! reaches nothing denied. Every request carries [`OUTBOUND_MARKER`](crate::credentials::OUTBOUND_MARKER),
//! which Sluice's admin routes refuse.

use std::net::{IpAddr, Ipv4Addr};

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
    /// Whether a host name matches this rule.
    pub fn matches_host(&self, host: &str) -> bool {
        match self {
            Self::Host(pattern) => match pattern.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == pattern,
            },
            Self::Net(_) => false,
        }
    }

    /// Whether an address (canonicalised by the caller) lies in this rule's network.
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        matches!(self, Self::Net(net) if net.contains(&ip))
    }

    /// Whether the two rules cover some address or name in common.
    fn overlaps(&self, other: &Rule) -> bool {
        match (self, other) {
            (Self::Net(a), Self::Net(b)) => a.contains(b) || b.contains(a),
            (Self::Host(a), Self::Host(b)) => a == b,
            _ => false,
        }
    }
}

/// Denied unless an allow entry overlaps them: this host (loopback and the unspecified address, which
/// connects to it), link-local ranges (where cloud metadata services live), multicast, broadcast and
/// reserved ranges, and the metadata services' names and addresses. Private ranges (RFC 1918, IPv6 ULA,
/// the Docker bridge) are allowed: callback receivers usually live there. Deny them with `--callback-deny`.
pub const DEFAULT_DENY: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "::/128",
    "::1/128",
    "169.254.0.0/16",
    "fe80::/10",
    "224.0.0.0/4",
    "ff00::/8",
    "240.0.0.0/4",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "metadata.google.internal",
    "metadata.azure.com",
    "localhost",
    "*.localhost",
];

/// The address an IPv6 address stands for when it carries an IPv4 one (mapped, compatible or NAT64).
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let segments = v6.segments();
    let embedded = Ipv4Addr::from((u32::from(segments[6]) << 16) | u32::from(segments[7]));
    let compatible = segments[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback();
    let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if compatible || nat64 { IpAddr::V4(embedded) } else { ip }
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// The outbound URL policy.
#[derive(Clone, Debug)]
pub struct OutboundPolicy {
    /// When not empty, only these hosts and networks may be reached.
    pub allow: Vec<Rule>,
    /// Never these; checked on the name and on every address it resolves to.
    pub deny: Vec<Rule>,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

/// A URL the policy accepted, as the HTTP client will read it.
#[derive(Clone, Debug)]
pub struct CheckedUrl {
    pub url: url::Url,
}

impl OutboundPolicy {
    /// The default denials plus `deny`; an allow entry that overlaps a default denial lifts it.
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>) -> Self {
        let mut all_deny: Vec<Rule> = DEFAULT_DENY
            .iter()
            .map(|r| r.parse().expect("default rules parse"))
            .filter(|rule: &Rule| !allow.iter().any(|a| a.overlaps(rule)))
            .collect();
        all_deny.extend(deny);
        Self { allow, deny: all_deny }
    }

    /// Whether `host` (a name) may be reached, before resolving it.
    pub fn check_name(&self, host: &str) -> Result<(), PolicyError> {
        if self.deny.iter().any(|r| r.matches_host(host)) {
            return Err(PolicyError(format!("host {host:?} is denied by the outbound URL policy")));
        }
        Ok(())
    }

    /// Whether `addresses` (what `name` resolved to, or an address literal) may all be reached.
    pub fn check_addresses(&self, name: Option<&str>, addresses: &[IpAddr]) -> Result<(), PolicyError> {
        if addresses.is_empty() {
            return Err(PolicyError(format!("host {:?} resolves to no address", name.unwrap_or_default())));
        }
        for ip in addresses.iter().map(|ip| canonical(*ip)) {
            if self.deny.iter().any(|r| r.matches_ip(ip)) {
                return Err(PolicyError(format!("address {ip} is denied by the outbound URL policy")));
            }
        }
        if !self.allow.is_empty() {
            let allowed_name = name.is_some_and(|n| self.allow.iter().any(|r| r.matches_host(n)));
            let allowed_ips = addresses.iter().all(|ip| self.allow.iter().any(|r| r.matches_ip(canonical(*ip))));
            if !(allowed_name || allowed_ips) {
                let shown = name.map(str::to_owned).unwrap_or_else(|| addresses[0].to_string());
                return Err(PolicyError(format!("host {shown:?} is not in the outbound allow list")));
            }
        }
        Ok(())
    }

    /// Parses and checks `url` without resolving names: scheme, port, and any address literal.
    pub fn check_syntax(&self, url: &str) -> Result<CheckedUrl, PolicyError> {
        let parsed = url::Url::parse(url).map_err(|e| PolicyError(format!("not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PolicyError("only http:// and https:// URLs are supported".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(PolicyError("URLs with user names or passwords are not accepted".into()));
        }
        match parsed.host() {
            None => return Err(PolicyError("the URL has no host".into())),
            Some(url::Host::Domain(name)) => self.check_name(&name.to_ascii_lowercase())?,
            Some(url::Host::Ipv4(ip)) => self.check_addresses(None, &[IpAddr::V4(ip)])?,
            Some(url::Host::Ipv6(ip)) => self.check_addresses(None, &[IpAddr::V6(ip)])?,
        }
        if parsed.port_or_known_default().is_none_or(|p| p == 0) {
            return Err(PolicyError("the URL's port must be 1-65535".into()));
        }
        Ok(CheckedUrl { url: parsed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let c = |s: &str| canonical(s.parse().unwrap()).to_string();
        assert_eq!(c("::ffff:127.0.0.1"), "127.0.0.1");
        assert_eq!(c("::7f00:1"), "127.0.0.1");
        assert_eq!(c("64:ff9b::a9fe:a9fe"), "169.254.169.254");
        assert_eq!(c("::1"), "::1");
        assert_eq!(c("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn rules_parse() {
        assert_eq!("10.0.0.1".parse::<Rule>().unwrap(), Rule::Net("10.0.0.1/32".parse().unwrap()));
        assert!("not a host!".parse::<Rule>().is_err());
    }
}
