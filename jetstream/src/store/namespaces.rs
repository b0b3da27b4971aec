//! Namespaces in KV `sluice_namespaces`, keyed by name. The default namespace always exists and is not stored.

use async_nats::jetstream::kv;
use sluice_contracts::{Namespace, function::is_dns_label};

use super::StoreError;

/// The namespaces functions and secrets live in.
#[derive(Clone)]
pub struct NamespaceStore {
    kv: kv::Store,
    default: String,
}

impl NamespaceStore {
    pub fn new(kv: kv::Store, default_namespace: impl Into<String>) -> Self {
        Self { kv, default: default_namespace.into() }
    }

    /// The namespace a bare function name means.
    pub fn default_namespace(&self) -> &str {
        &self.default
    }

    pub async fn get(&self, name: &str) -> Result<Option<Namespace>, StoreError> {
        if name == self.default {
            return Ok(Some(Namespace { name: name.to_owned(), ..Default::default() }));
        }
        if !is_dns_label(name) {
            return Ok(None); // not a key that can exist
        }
        let Some(value) = self.kv.get(name).await.map_err(StoreError::unavailable)? else { return Ok(None) };
        serde_json::from_slice(&value).map(Some).map_err(|source| StoreError::Corrupt {
            what: "namespace",
            key: name.to_owned(),
            source,
        })
    }

    pub async fn exists(&self, name: &str) -> Result<bool, StoreError> {
        if name == self.default {
            return Ok(true);
        }
        Ok(is_dns_label(name) && self.kv.get(name).await.map_err(StoreError::unavailable)?.is_some())
    }

    /// Every namespace's name, the default one first.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = super::latest_under(&self.kv, None, false)
            .await?
            .into_iter()
            .map(|entry| entry.key)
            .filter(|key| is_dns_label(key) && *key != self.default)
            .collect();
        names.sort();
        names.insert(0, self.default.clone());
        Ok(names)
    }

    /// Creates `namespace`; false when it exists already.
    pub async fn create(&self, namespace: &Namespace) -> Result<bool, StoreError> {
        if namespace.name == self.default {
            return Ok(false);
        }
        match self.kv.create(&namespace.name, encode(namespace)).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(StoreError::unavailable(err)),
        }
    }

    /// Replaces the labels and annotations of an existing namespace; false when there is none.
    pub async fn update(&self, namespace: &Namespace) -> Result<bool, StoreError> {
        if namespace.name == self.default || !self.exists(&namespace.name).await? {
            return Ok(false);
        }
        self.kv.put(&namespace.name, encode(namespace)).await.map_err(StoreError::unavailable)?;
        Ok(true)
    }

    /// Removes a namespace; false when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        if name == self.default || !self.exists(name).await? {
            return Ok(false);
        }
        self.kv.purge(name).await.map_err(StoreError::unavailable)?;
        Ok(true)
    }
}

fn encode(namespace: &Namespace) -> bytes::Bytes {
    serde_json::to_vec(namespace).expect("a namespace always serialises").into()
}
