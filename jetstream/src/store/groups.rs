//! Fan-out groups in KV `sluice_groups`, keyed by the id of the call that fanned out. Children settle their
//! place in the group by compare-and-set, so concurrent endings on several workers each count once. Beside
//! them, under `pipeline/{root call id}` (a key no call id can be), the number of calls fanned out in each
//! pipeline, which bounds how far fan-outs of fan-outs can multiply.

use async_nats::jetstream::kv;

use super::StoreError;
use sluice_contracts::{call::is_valid_call_id, fanout::Group};

/// Compare-and-set rounds of one [`GroupStore::reserve`] or [`GroupStore::reopen`].
const RESERVE_TRIES: usize = 32;

/// A group as it was before [`GroupStore::reopen`] wrote it again, and as it is now.
#[derive(Clone, Debug)]
pub struct Reopened {
    pub before: Group,
    pub after: Group,
    /// The revision the reopened group was written at, for [`GroupStore::restore`].
    pub revision: u64,
}

impl Reopened {
    /// The join of the round the reopening started, when it started one (the group had completed).
    pub fn new_join(&self) -> Option<&str> {
        let join = self.after.join.as_ref()?;
        (self.after.round != self.before.round).then_some(join.call_id.as_str())
    }
}

/// Fan-out groups. They expire with the bucket's TTL, like call records.
#[derive(Clone)]
pub struct GroupStore {
    kv: kv::Store,
}

impl GroupStore {
    pub fn new(kv: kv::Store) -> Self {
        Self { kv }
    }

    /// The group and its revision, for a later [`GroupStore::update`].
    pub async fn entry(&self, group_id: &str) -> Result<Option<(Group, u64)>, StoreError> {
        if !is_valid_call_id(group_id) {
            return Ok(None);
        }
        match self.kv.entry(group_id).await.map_err(StoreError::unavailable)? {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let group = serde_json::from_slice(&entry.value).map_err(|source| StoreError::Corrupt {
                    what: "group",
                    key: group_id.to_owned(),
                    source,
                })?;
                Ok(Some((group, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Writes a new group unless one exists under its id; returns whether it was written.
    pub async fn create(&self, group: &Group) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(group).expect("a group always serialises");
        match self.kv.create(&group.group_id, bytes.into()).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(StoreError::unavailable(err)),
        }
    }

    /// Counts `calls` more fanned-out calls in the pipeline from `root` unless that takes it over `max`:
    /// `Ok(Ok(count))` with the new count, or `Ok(Err(count))` with the count that stands.
    pub async fn reserve(&self, root: &str, calls: u64, max: u64) -> Result<Result<u64, u64>, StoreError> {
        let key = format!("pipeline/{root}");
        for _ in 0..RESERVE_TRIES {
            let entry = self.kv.entry(&key).await.map_err(StoreError::unavailable)?;
            let (count, revision) = match &entry {
                Some(entry) if entry.operation == kv::Operation::Put => (
                    std::str::from_utf8(&entry.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0u64),
                    entry.revision,
                ),
                _ => (0, 0),
            };
            let wanted = count.saturating_add(calls);
            if wanted > max {
                return Ok(Err(count));
            }
            let value = wanted.to_string().into_bytes().into();
            let written = match revision {
                0 => self
                    .kv
                    .create(&key, value)
                    .await
                    .map(drop)
                    .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
                _ => self
                    .kv
                    .update(&key, value, revision)
                    .await
                    .map(drop)
                    .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
            };
            match written {
                Ok(()) => return Ok(Ok(wanted)),
                Err(true) => continue,
                Err(false) => {
                    return Err(StoreError::Unavailable(format!("pipeline count of {root} not written").into()));
                }
            }
        }
        Err(StoreError::Unavailable(format!("pipeline count of {root} keeps changing").into()))
    }

    /// Reopens the places `places` (each a child's index and call id) of the group `group_id` for replays of
    /// them ([`Group::reopen`]), all in one write, by compare-and-set against children settling meanwhile: a
    /// group completed before starts one new round however many of its children are replayed together.
    /// `Ok(None)` when there is no such group (it expired) or none of the places has ended.
    pub async fn reopen(&self, group_id: &str, places: &[(usize, &str)]) -> Result<Option<Reopened>, StoreError> {
        for _ in 0..RESERVE_TRIES {
            let Some((before, revision)) = self.entry(group_id).await? else { return Ok(None) };
            let mut after = before.clone();
            let reopened = places.iter().filter(|(index, call_id)| after.reopen(*index, call_id)).count();
            if reopened == 0 {
                return Ok(None);
            }
            if let Some(revision) = self.update(&after, revision).await? {
                return Ok(Some(Reopened { before, after, revision }));
            }
        }
        Err(StoreError::Unavailable(format!("fan-out group {group_id} keeps changing").into()))
    }

    /// Puts a reopened group back as it was, unless a child settled in it since.
    pub async fn restore(&self, reopened: &Reopened) -> Result<bool, StoreError> {
        Ok(self.update(&reopened.before, reopened.revision).await?.is_some())
    }

    /// Writes `group` only if it is still at `revision`; `Ok(None)` when another writer got there first.
    pub async fn update(&self, group: &Group, revision: u64) -> Result<Option<u64>, StoreError> {
        let bytes = serde_json::to_vec(group).expect("a group always serialises");
        match self.kv.update(&group.group_id, bytes.into(), revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(err) => Err(StoreError::unavailable(err)),
        }
    }
}
