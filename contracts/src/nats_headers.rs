//! Setting and reading NATS headers whose names are Sluice's constants, without parsing the name each time.
//!
//! async-nats turns a `&str` name into a header name on every insert and lookup: it validates it, classifies
//! it and copies it to the heap. A `&'static str` name needs none of that (`HeaderName::from_static`), and a
//! call's messages carry a dozen such headers each way.

use async_nats::{HeaderMap, HeaderName, header::IntoHeaderValue};

/// Headers named by `&'static str` constants.
pub trait NamedHeaders {
    /// Sets `name` to `value`, replacing what it held.
    fn put(&mut self, name: &'static str, value: impl IntoHeaderValue);
    /// The first value of `name`.
    fn named(&self, name: &'static str) -> Option<&str>;
}

impl NamedHeaders for HeaderMap {
    fn put(&mut self, name: &'static str, value: impl IntoHeaderValue) {
        self.insert(HeaderName::from_static(name), value);
    }

    fn named(&self, name: &'static str) -> Option<&str> {
        self.get(HeaderName::from_static(name)).map(|v| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_set_by_constant_read_back_as_by_string() {
        let mut headers = HeaderMap::new();
        headers.put("Nats-Msg-Id", "a");
        headers.put("ce-id", "b");
        headers.insert("Sluice-Path", "c");
        assert_eq!(headers.get("Nats-Msg-Id").unwrap().as_str(), "a");
        assert_eq!(headers.get("ce-id").unwrap().as_str(), "b");
        assert_eq!(headers.named("Sluice-Path"), Some("c"));
        assert_eq!(headers.named("ce-type"), None);
        headers.put("ce-id", "d");
        assert_eq!(headers.get_all("ce-id").count(), 1, "put replaces");
    }
}
