//! When a container replica may take calls, judged as OpenFaaS judges it: the image's `HEALTHCHECK` when it has
//! one (healthy), otherwise the watchdogs' `GET /_/ready` (a 2xx), falling back to a TCP connect when the
//! image answers that path with 404 or 405 (a server with no readiness endpoint). Until then no call is routed
//! to it; a call that finds no ready replica waits for one within its own timeout.

use std::time::Duration;

use bollard::models::HealthStatusEnum;

/// The watchdogs' readiness path.
pub const READY_PATH: &str = "/_/ready";
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Ready,
    /// Not yet; the reason, for the error when the readiness timeout passes.
    NotYet(String),
}

/// The image's own health check, when it has one: `None` when it has none.
pub fn from_health(status: Option<HealthStatusEnum>) -> Option<Probe> {
    match status? {
        HealthStatusEnum::HEALTHY => Some(Probe::Ready),
        HealthStatusEnum::STARTING => Some(Probe::NotYet("its HEALTHCHECK is still starting".into())),
        HealthStatusEnum::UNHEALTHY => Some(Probe::NotYet("its HEALTHCHECK reports unhealthy".into())),
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
    }
}

/// A pooled client for readiness probes: short timeouts, no proxy, never a redirect.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .expect("the probe client's settings are valid")
}

/// Asks the replica at `addr` (`ip:port`) whether it is ready.
pub async fn probe_http(client: &reqwest::Client, addr: &str) -> Probe {
    match client.get(format!("http://{addr}{READY_PATH}")).send().await {
        Ok(response) => judge(response.status().as_u16()),
        Err(err) if err.is_connect() => Probe::NotYet("it does not accept connections yet".into()),
        Err(err) => Probe::NotYet(format!("{READY_PATH} did not answer: {err}")),
    }
}

/// What an answer to `GET /_/ready` means.
fn judge(status: u16) -> Probe {
    match status {
        200..=299 => Probe::Ready,
        // No readiness endpoint: accepting the connection is all it can say.
        404 | 405 => Probe::Ready,
        other => Probe::NotYet(format!("{READY_PATH} answers {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_wins_and_ready_answers_are_judged() {
        assert_eq!(from_health(Some(HealthStatusEnum::HEALTHY)), Some(Probe::Ready));
        assert!(matches!(from_health(Some(HealthStatusEnum::STARTING)), Some(Probe::NotYet(_))));
        assert_eq!(from_health(Some(HealthStatusEnum::NONE)), None);
        assert_eq!(from_health(None), None);
        assert_eq!(judge(200), Probe::Ready);
        assert_eq!(judge(404), Probe::Ready, "no readiness endpoint: the TCP connect decides");
        assert!(matches!(judge(503), Probe::NotYet(reason) if reason.contains("503")));
        assert!(matches!(judge(500), Probe::NotYet(_)), "a watchdog whose upstream is not up yet");
    }

    #[tokio::test]
    async fn probes_a_real_server_as_it_comes_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let client = client();
        assert!(matches!(probe_http(&client, &addr).await, Probe::NotYet(_)), "nothing listens yet");
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready.clone();
        let app = axum::Router::new().route(
            READY_PATH,
            axum::routing::get(move || {
                let ready = flag.load(std::sync::atomic::Ordering::Relaxed);
                async move { if ready { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE } }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        assert!(matches!(probe_http(&client, &addr).await, Probe::NotYet(reason) if reason.contains("503")));
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(probe_http(&client, &addr).await, Probe::Ready);
    }
}
