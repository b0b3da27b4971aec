//! A function's identity: its namespace and its name (both DNS labels), and the one key both make in subjects and
//! KV buckets.

use std::fmt;

/// OpenFaaS's default namespace, where everything stored before namespaces existed belongs.
pub const LEGACY_NAMESPACE: &str = "openfaas-fn";

/// Whether `name` is a DNS-1123 label: lowercase alphanumerics and `-`, alphanumeric at both ends, 1–63 chars.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && alnum(&bytes[0])
        && alnum(&bytes[bytes.len() - 1])
}

/// One function, as `(namespace, name)`. Both are DNS labels, so neither holds `.`, `_`, `*` or `>`: the key
/// `{namespace}.{name}` is two subject tokens and can never be read another way.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionRef {
    pub namespace: String,
    pub name: String,
}

impl FunctionRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }

    /// Whether both parts are DNS labels, so the key is two subject tokens (and a valid KV key).
    pub fn is_valid(&self) -> bool {
        is_dns_label(&self.namespace) && is_dns_label(&self.name)
    }

    /// `{namespace}.{name}`: the KV key of the function's spec and count, and the tail of its subjects.
    pub fn key(&self) -> String {
        // Made several times a call: `concat` allocates once, where `format!` grows the string piece by piece.
        [self.namespace.as_str(), ".", &self.name].concat()
    }

    /// Reads a [`key`](Self::key) back. A bare name is a key written before namespaces existed, and means the
    /// [`LEGACY_NAMESPACE`]. `None` for anything that is not two DNS labels (or one).
    pub fn from_key(key: &str) -> Option<Self> {
        let (namespace, name) = key.split_once('.').unwrap_or((LEGACY_NAMESPACE, key));
        (is_dns_label(namespace) && is_dns_label(name)).then(|| Self::new(namespace, name))
    }

    /// The name alone in the [`LEGACY_NAMESPACE`], `NAME.NAMESPACE` elsewhere: what event sources and derived
    /// call ids are made from, so those made before namespaces existed stay the same.
    pub fn stable_name(&self) -> String {
        if self.namespace == LEGACY_NAMESPACE { self.name.clone() } else { self.to_string() }
    }

    /// An invocation path's `NAME` or `NAME.NAMESPACE`, as faas-cli and the go-sdk send it; a bare name means
    /// `default_namespace`. Not checked: the caller looks the function up.
    pub fn from_qualified(qualified: &str, default_namespace: &str) -> Self {
        match qualified.split_once('.') {
            Some((name, namespace)) => Self::new(namespace, name),
            None => Self::new(default_namespace, qualified),
        }
    }
}

/// `NAME.NAMESPACE`, as OpenFaaS writes a function in URLs and metric labels.
impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bare_names_are_legacy() {
        let f = FunctionRef::new("team-a", "resize");
        assert_eq!(f.key(), "team-a.resize");
        assert_eq!(FunctionRef::from_key(&f.key()), Some(f.clone()));
        assert!(f.is_valid() && !FunctionRef::new("a.b", "c").is_valid() && !FunctionRef::new("a", "*").is_valid());
        assert_eq!(f.to_string(), "resize.team-a");
        assert_eq!(f.stable_name(), "resize.team-a");
        assert_eq!(FunctionRef::new(LEGACY_NAMESPACE, "resize").stable_name(), "resize");
        assert_eq!(FunctionRef::from_key("resize"), Some(FunctionRef::new(LEGACY_NAMESPACE, "resize")));
        for bad in ["", "a.b.c", "A.b", "a.", ".b", "a_b.c", "a.*", "a.>"] {
            assert_eq!(FunctionRef::from_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn qualified_names_pick_the_namespace() {
        assert_eq!(FunctionRef::from_qualified("resize", "dflt"), FunctionRef::new("dflt", "resize"));
        assert_eq!(FunctionRef::from_qualified("resize.team-a", "dflt"), FunctionRef::new("team-a", "resize"));
    }
}
