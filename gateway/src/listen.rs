//! Serving HTTP with bounds, for every listener Sluice opens (gateway, connectors, metrics): a client must send
//! its request headers within a time limit (also between requests on a kept-alive connection, so idle
//! connections are closed), a body must keep arriving (a stall longer than the body timeout ends the
//! request), and connections beyond a cap are answered 503 at once and closed instead of piling up until the
//! process runs out of file descriptors.

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{io::AsyncWriteExt, net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

/// How long and how many.
#[derive(Clone, Copy, Debug)]
pub struct ListenLimits {
    /// Time to send a request's headers, counted from the connection's start or the previous response.
    pub header_timeout: Duration,
    /// Longest pause while a request body is being sent.
    pub body_timeout: Duration,
    /// Connections served at once; more are refused with a 503.
    pub max_connections: usize,
    /// How long open connections may finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ListenLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
retry-after: 1\r\ncontent-length: 50\r\n\r\n{\"error\":\"too many connections, try again shortly\"}";

/// Serves `router` on `listener` within `limits` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_timeout));
    // HTTP/1 only: sniffing for an HTTP/2 preface would wait, without a timeout, for a first byte that a
    // stalled client never sends.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, _) = match accepted {
            Ok(connection) => connection,
            Err(err) => {
                // Out of descriptors or a connection reset before it was accepted: wait a little, go on.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("sluice_connections_refused_total").increment(1);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(REFUSAL)).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the drain timeout were closed");
    }
    Ok(())
}

/// Raises this process's open-file limit to its hard limit, so the connection cap rather than the descriptor
/// limit decides how many clients are served. Returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
