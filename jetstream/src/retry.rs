//! Retrying a JetStream write that failed for a passing reason (a leader election, a slow or restarting
//! server): a few tries with doubling waits. Writes that must not be lost (a completion event, a dead letter,
//! a cron tick) go through here; what a conflict of revisions means is the caller's business
//! ([`CallStore::modify`](crate::store::CallStore::modify)).

use std::{fmt::Display, time::Duration};

/// How many tries, and the wait after the first failure (doubling after each next one).
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub tries: u32,
    pub first_wait: Duration,
}

/// For a write a call's outcome waits on: five tries within about 1.5 s.
pub const STORE: Backoff = Backoff { tries: 5, first_wait: Duration::from_millis(100) };

/// Runs `write` until it succeeds or `backoff.tries` are spent; the last error comes back as
/// `"{what}: {error}"`. Each failed try but the last is logged.
pub async fn persist<T, E, Fut>(what: &str, backoff: Backoff, mut write: impl FnMut() -> Fut) -> Result<T, String>
where
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut wait = backoff.first_wait;
    for attempt in 1..backoff.tries.max(1) {
        match write().await {
            Ok(value) => return Ok(value),
            Err(err) => tracing::warn!(%err, attempt, "{what} not stored; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
    write().await.map_err(|err| format!("{what}: {err}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tries_until_it_works_and_names_what_failed() {
        let tries = AtomicU32::new(0);
        let quick = Backoff { tries: 3, first_wait: Duration::from_millis(10) };
        let third_time = persist("event", quick, || async {
            if tries.fetch_add(1, Ordering::Relaxed) < 2 { Err("down") } else { Ok(7) }
        })
        .await;
        assert_eq!(third_time, Ok(7));
        assert_eq!(tries.load(Ordering::Relaxed), 3);
        let never: Result<(), String> = persist("dead letter", quick, || async { Err("down") }).await;
        assert_eq!(never, Err("dead letter: down".to_owned()));
    }
}
