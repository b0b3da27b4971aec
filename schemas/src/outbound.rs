//! The outbound URL policy: which URLs Sluice makes requests to on a caller's behalf (callbacks, SNS
//! subscription confirmations). http(s) only; never loopback, unspecified, link-local, multicast or cloud
//! metadata addresses unless allowed; plus configurable allow and deny lists of CIDRs and host names.
//!
//! Addresses are canonicalised first (IPv4-mapped and IPv4-compatible IPv6 and the NAT64 prefix `64:ff9b::/96`
//! are checked as the IPv4 address they carry), URLs are parsed the way the HTTP client parses them (so
//! `http://0/` or `http://2130706433/` are the addresses they denote), and [`OutboundPolicy::client`] builds an
//! HTTP client whose name resolution applies the policy to every address it connects to. The check at enqueue
//! time is for a fast 400; the check at connect time is the one that counts, so DNS rebinding between the two
//! reaches nothing denied. Every request carries [`OUTBOUND_MARKER`](crate::credentials::OUTBOUND_MARKER),
//! which Sluice's admin routes refuse.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

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
    fn check_name(&self, host: &str) -> Result<(), PolicyError> {
        if self.deny.iter().any(|r| r.matches_host(host)) {
            return Err(PolicyError(format!("host {host:?} is denied by the outbound URL policy")));
        }
        Ok(())
    }

    /// Whether `addresses` (what `name` resolved to, or an address literal) may all be reached.
    fn check_addresses(&self, name: Option<&str>, addresses: &[IpAddr]) -> Result<(), PolicyError> {
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

    /// Checks `url`, resolving its host name, so every address it points at is checked.
    pub async fn check(&self, url: &str) -> Result<CheckedUrl, PolicyError> {
        let checked = self.check_syntax(url)?;
        if let Some(url::Host::Domain(name)) = checked.url.host() {
            self.resolve(&name.to_ascii_lowercase()).await?;
        }
        Ok(checked)
    }

    /// Resolves `name`, refusing it when any address it resolves to is denied.
    async fn resolve(&self, name: &str) -> Result<Vec<SocketAddr>, PolicyError> {
        self.check_name(name)?;
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
            .await
            .map_err(|e| PolicyError(format!("host {name:?} does not resolve: {e}")))?
            .collect();
        let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
        self.check_addresses(Some(name), &ips)?;
        Ok(addresses)
    }

    /// An HTTP client for requests under this policy: names resolve only to addresses the policy accepts
    /// (checked at connect time), no redirects are followed, and every request is marked as Sluice's own.
    /// Address literals are checked by [`OutboundPolicy::check_syntax`] before each request.
    pub fn client(&self, timeout: Duration) -> reqwest::ClientBuilder {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(crate::credentials::OUTBOUND_MARKER, reqwest::header::HeaderValue::from_static("1"));
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .default_headers(headers)
            .dns_resolver(Arc::new(PolicyResolver(self.clone())))
    }
}

/// Name resolution that applies the policy to what it resolves, so the client connects only to checked
/// addresses.
struct PolicyResolver(OutboundPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let name = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let addresses = policy.resolve(&name).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<Rule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn this_host_metadata_and_link_local_are_denied_by_default() {
        let policy = OutboundPolicy::default();
        assert!(policy.check("http://10.1.2.3:9000/cb").await.is_ok(), "private ranges are allowed");
        assert!(policy.check("http://172.17.0.2:9000/cb").await.is_ok(), "the Docker bridge is allowed");
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/x",
            "http://metadata.google.internal/",
            "http://127.0.0.1:9000/cb",
            "http://localhost:9000/cb",
            "http://[::1]/x",
            "http://0:8080/",
            "http://0.0.0.0:8080/",
            "http://[::]:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://224.0.0.1/",
        ] {
            let err = policy.check(bad).await.unwrap_err();
            assert!(err.0.contains("denied"), "{bad}: {err}");
        }
        assert!(policy.check("ftp://10.0.0.1/x").await.is_err());
        assert!(policy.check("http://10.0.0.1:99999/x").await.unwrap_err().0.contains("valid URL"));
        assert!(policy.check("http://user:pw@10.0.0.1/x").await.is_err());
    }

    #[tokio::test]
    async fn allow_and_deny_lists() {
        let policy = OutboundPolicy::new(
            rules(&["10.0.0.0/8", "*.example.com", "localhost", "127.0.0.0/8"]),
            rules(&["10.9.0.0/16"]),
        );
        assert!(policy.check("http://10.1.2.3/cb").await.is_ok());
        assert!(policy.check("http://10.9.1.1/cb").await.is_err(), "deny wins over allow");
        assert!(policy.check("http://[::ffff:10.9.1.1]/cb").await.is_err(), "mapped addresses are what they carry");
        assert!(policy.check("http://172.16.0.1/cb").await.is_err(), "not in the allow list");
        assert!(policy.check("http://localhost:8080/cb").await.is_ok(), "allowed entries lift default denials");
        let name_only = OutboundPolicy::new(rules(&["localhost"]), vec![]);
        assert!(name_only.check("http://localhost/cb").await.is_err(), "the addresses stay denied");
        let lifted = OutboundPolicy::new(rules(&["169.254.0.0/16"]), vec![]);
        assert!(lifted.check("http://169.254.10.10/cb").await.is_ok(), "an allow entry lifts a default denial");
        let loopback = OutboundPolicy::new(rules(&["127.0.0.1"]), vec![]);
        assert!(loopback.check("http://127.0.0.1:9/cb").await.is_ok());
        let deny_private = OutboundPolicy::new(vec![], rules(&["10.0.0.0/8"]));
        assert!(deny_private.check("http://[::ffff:a01:203]/cb").await.is_err());
    }

    #[tokio::test]
    async fn the_client_refuses_names_that_resolve_to_denied_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // No rule names `localhost`, but it resolves to a denied address: refused when connecting.
        let by_address = OutboundPolicy { allow: vec![], deny: rules(&["127.0.0.0/8", "::1/128"]) };
        let client = by_address.client(Duration::from_secs(2)).build().unwrap();
        let err = client.get(format!("http://localhost:{port}/")).send().await.unwrap_err();
        assert!(format!("{err:?}").contains("denied by the outbound URL policy"), "{err:?}");
        let allowed = OutboundPolicy::new(rules(&["127.0.0.0/8", "::1/128", "localhost"]), vec![]);
        let allowed = allowed.client(Duration::from_secs(2)).build().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            assert!(String::from_utf8_lossy(&buf).to_ascii_lowercase().contains("x-sluice-outbound: 1"));
            socket.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        let ok = allowed.get(format!("http://localhost:{port}/")).send().await.unwrap();
        assert_eq!(ok.status(), 204);
    }

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
