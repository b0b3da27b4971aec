//! The ready replicas of one function and how calls are spread over them: each call goes to the replica with
//! the fewest calls in flight, never past the per-replica limit.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU32, Ordering},
};

use tokio::{sync::Notify, time::Instant};

/// One ready container.
#[derive(Debug)]
pub struct Replica {
    pub id: String,
    /// `ip:port` calls are sent to.
    pub addr: String,
    pub spec_hash: String,
    inflight: AtomicU32,
}

impl Replica {
    pub fn new(id: String, addr: String, spec_hash: String) -> Arc<Self> {
        Arc::new(Self { id, addr, spec_hash, inflight: AtomicU32::new(0) })
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }
}

/// A call's claim on a replica; releasing it frees the slot for the next call.
pub struct Lease {
    pub replica: Arc<Replica>,
    pool: Arc<Pool>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.replica.inflight.fetch_sub(1, Ordering::Relaxed);
        *self.pool.last_used.lock().expect("pool lock") = Instant::now();
        self.pool.changed.notify_waiters();
    }
}

/// The replicas that take calls, for one function.
#[derive(Debug)]
pub struct Pool {
    replicas: Mutex<Vec<Arc<Replica>>>,
    /// Per-replica limit of calls in flight.
    max_per_replica: AtomicU32,
    /// Woken when a replica joins, leaves or frees a slot.
    pub changed: Notify,
    last_used: Mutex<Instant>,
    /// Calls waiting for a replica, so the scaler sees demand that has no container yet.
    waiting: AtomicU32,
}

impl Pool {
    pub fn new(max_per_replica: u32) -> Arc<Self> {
        Arc::new(Self {
            replicas: Mutex::new(Vec::new()),
            max_per_replica: AtomicU32::new(max_per_replica.max(1)),
            changed: Notify::new(),
            last_used: Mutex::new(Instant::now()),
            waiting: AtomicU32::new(0),
        })
    }

    pub fn set_max_per_replica(&self, max: u32) {
        self.max_per_replica.store(max.max(1), Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub fn add(&self, replica: Arc<Replica>) {
        self.replicas.lock().expect("pool lock").push(replica);
        self.changed.notify_waiters();
    }

    /// Takes the replica out of rotation; calls already on it go on.
    pub fn take_out(&self, id: &str) -> Option<Arc<Replica>> {
        let mut replicas = self.replicas.lock().expect("pool lock");
        let at = replicas.iter().position(|r| r.id == id)?;
        let replica = replicas.remove(at);
        drop(replicas);
        self.changed.notify_waiters();
        Some(replica)
    }

    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.lock().expect("pool lock").clone()
    }

    pub fn len(&self) -> usize {
        self.replicas.lock().expect("pool lock").len()
    }

    /// Calls in flight over every replica plus calls waiting for one.
    pub fn demand(&self) -> u32 {
        let running: u32 = self.replicas.lock().expect("pool lock").iter().map(|r| r.inflight()).sum();
        running + self.waiting.load(Ordering::Relaxed)
    }

    /// When a call last ended (or the pool was made).
    pub fn last_used(&self) -> Instant {
        *self.last_used.lock().expect("pool lock")
    }

    /// The least busy replica with a free slot, claimed for one call.
    pub fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let max = self.max_per_replica.load(Ordering::Relaxed);
        let replicas = self.replicas.lock().expect("pool lock");
        let replica = replicas.iter().filter(|r| r.inflight() < max).min_by_key(|r| r.inflight())?.clone();
        replica.inflight.fetch_add(1, Ordering::Relaxed);
        drop(replicas);
        Some(Lease { replica, pool: self.clone() })
    }

    /// Counts a call as waiting for a replica until the returned guard drops.
    pub fn wait_guard(self: &Arc<Self>) -> WaitGuard {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        WaitGuard(self.clone())
    }
}

/// See [`Pool::wait_guard`].
pub struct WaitGuard(Arc<Pool>);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_go_to_the_least_busy_replica_within_the_limit() {
        let pool = Pool::new(2);
        pool.add(Replica::new("a".into(), "a:8080".into(), "h".into()));
        pool.add(Replica::new("b".into(), "b:8080".into(), "h".into()));
        let l1 = pool.try_lease().unwrap();
        let l2 = pool.try_lease().unwrap();
        assert_ne!(l1.replica.id, l2.replica.id, "the second call goes to the idle replica");
        let _l3 = pool.try_lease().unwrap();
        let _l4 = pool.try_lease().unwrap();
        assert!(pool.try_lease().is_none(), "both replicas are at their limit");
        assert_eq!(pool.demand(), 4);
        drop(l1);
        assert!(pool.try_lease().is_some());
    }

    #[test]
    fn a_replica_taken_out_gets_no_more_calls() {
        let pool = Pool::new(10);
        pool.add(Replica::new("a".into(), "a:8080".into(), "h".into()));
        let lease = pool.try_lease().unwrap();
        assert!(pool.take_out("a").is_some());
        assert!(pool.try_lease().is_none());
        drop(lease);
        assert_eq!(pool.len(), 0);
    }
}
