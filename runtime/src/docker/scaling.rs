//! How many replicas a function should have: demand (calls in flight, waiting and queued) divided by the
//! per-replica target, within `scale.min`/`scale.max`. Scaling up is immediate; scaling down follows the highest
//! recommendation of the stabilisation window (as Kubernetes' HPA does), so a bursty load does not flap.
//! A function with `scale.idle` goes to zero once it has had no calls for that long.

use std::{collections::VecDeque, time::Duration};

use sluice_contracts::FunctionSpec;
use tokio::time::Instant;

/// What the scaler looks at on each tick.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Calls in flight on replicas, plus calls waiting for a replica, plus calls still in the queue.
    pub demand: u32,
    /// Time since the last call ended.
    pub idle_for: Duration,
}

/// One function's recommendation history.
#[derive(Debug)]
pub struct Scaler {
    window: Duration,
    history: VecDeque<(Instant, u32)>,
}

impl Scaler {
    pub fn new(window: Duration) -> Self {
        Self { window, history: VecDeque::new() }
    }

    /// Holds `replicas` as the floor for one window, as after a manual scale.
    pub fn pin(&mut self, now: Instant, replicas: u32) {
        self.history.clear();
        self.history.push_back((now, replicas));
    }

    /// The replica count to run now, given `current` replicas.
    pub fn desired(&mut self, spec: &FunctionSpec, now: Instant, current: u32, load: Load) -> u32 {
        let (min, max) = (spec.min_replicas(), spec.max_replicas());
        let idle_expired = spec.idle_after().is_some_and(|idle| load.demand == 0 && load.idle_for >= idle);
        if idle_expired {
            self.history.clear();
            return 0;
        }
        let mut raw = load.demand.div_ceil(spec.target_per_replica()).clamp(min, max);
        if spec.idle_after().is_some() {
            // Not idle long enough: keep the replica that is there (or start one when calls come).
            raw = raw.max(current.min(1));
        }
        while self.history.front().is_some_and(|(at, _)| now.duration_since(*at) > self.window) {
            self.history.pop_front();
        }
        self.history.push_back((now, raw));
        if raw >= current {
            return raw;
        }
        self.history.iter().map(|(_, r)| *r).max().unwrap_or(raw).min(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FunctionSpec {
        serde_json::from_str(json).unwrap()
    }

    fn load(demand: u32) -> Load {
        Load { demand, idle_for: Duration::ZERO }
    }

    #[test]
    fn scales_up_at_once_and_down_after_the_window() {
        let s = spec(r#"{"service":"f","image":"i","scale":{"min":1,"max":5,"target":2}}"#);
        let mut scaler = Scaler::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(scaler.desired(&s, t0, 1, load(7)), 4);
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(1), 4, load(50)), 5, "capped at max");
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(2), 5, load(0)), 5, "held within the window");
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(9), 5, load(1)), 5);
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(12), 5, load(0)), 1, "window passed; back to min");
    }

    #[test]
    fn idle_functions_go_to_zero_and_come_back() {
        let s = spec(r#"{"service":"f","image":"i","scale":{"idle":"30s"}}"#);
        let mut scaler = Scaler::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(scaler.desired(&s, t0, 0, load(0)), 0, "nothing asked for yet");
        assert_eq!(scaler.desired(&s, t0, 0, load(1)), 1, "a call starts one");
        let quiet = Load { demand: 0, idle_for: Duration::from_secs(10) };
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(10), 1, quiet), 1, "not idle long enough");
        let idle = Load { demand: 0, idle_for: Duration::from_secs(31) };
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(31), 1, idle), 0);
    }

    #[test]
    fn a_pinned_count_holds_for_one_window() {
        let s = spec(r#"{"service":"f","image":"i"}"#);
        let mut scaler = Scaler::new(Duration::from_secs(10));
        let t0 = Instant::now();
        scaler.pin(t0, 3);
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(5), 3, load(0)), 3);
        assert_eq!(scaler.desired(&s, t0 + Duration::from_secs(11), 3, load(0)), 1);
    }
}
