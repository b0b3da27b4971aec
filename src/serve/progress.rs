//! The worker's progress endpoint: where running functions report how far they got. It listens on loopback
//! for processes on this host and, with Docker, on the function network's gateway address, which is where
//! containers on that bridge reach the host. Each call's URL carries a secret for that attempt alone.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use clap::Args;
use sluice_gateway::listen::{ListenLimits, serve};
use sluice_queue_worker::{ProgressEndpoint, ProgressUrls};
use sluice_runtime::Runtimes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where the progress endpoint listens and how functions are told to reach it.
#[derive(Args, Clone, Debug)]
pub struct ProgressOptions {
    /// Address of the progress endpoint for processes on this host (port 0: any free port).
    #[arg(long, env = "SLUICE_PROGRESS_LISTEN", default_value = "127.0.0.1:0")]
    pub progress_listen: SocketAddr,
    /// Base URL every function is given for its progress reports instead of the listeners' own addresses
    /// (a worker behind a proxy or in a container).
    #[arg(long, env = "SLUICE_PROGRESS_URL")]
    pub progress_url: Option<String>,
}

/// A report is small and quick: a client slower than this is cut off.
fn limits() -> ListenLimits {
    use std::time::Duration;
    ListenLimits {
        header_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        max_connections: 1024,
        drain_timeout: Duration::from_secs(2),
    }
}

/// Binds the endpoint's listeners and serves them until `stop`; returns the URLs functions are given.
pub async fn start(
    options: &ProgressOptions,
    runtimes: &Runtimes,
    endpoint: &ProgressEndpoint,
    stop: &CancellationToken,
) -> anyhow::Result<ProgressUrls> {
    let host = TcpListener::bind(options.progress_listen)
        .await
        .with_context(|| format!("progress endpoint: listening on {}", options.progress_listen))?;
    let host_addr = host.local_addr()?;
    let mut urls = ProgressUrls { host: Some(base_url(host_addr)), containers: None };
    let mut listeners = vec![host];
    if let Some(docker) = runtimes.containers() {
        match docker.host_address().await {
            Ok(Some(gateway)) if !host_addr.ip().is_unspecified() => {
                let listener = bind_beside(gateway, host_addr.port()).await?;
                urls.containers = Some(base_url(listener.local_addr()?));
                listeners.push(listener);
            }
            // A wildcard listener is reachable on the gateway address already.
            Ok(Some(gateway)) => urls.containers = Some(base_url(SocketAddr::new(gateway, host_addr.port()))),
            Ok(None) => tracing::warn!("the function network has no gateway address: containers get no progress URL"),
            Err(err) => tracing::warn!(%err, "cannot inspect the function network: containers get no progress URL"),
        }
    }
    if let Some(url) = &options.progress_url {
        let url = url.trim_end_matches('/').to_owned();
        urls = ProgressUrls { host: Some(url.clone()), containers: Some(url) };
    }
    for listener in listeners {
        tracing::info!(listen = %listener.local_addr()?, "progress endpoint listening");
        tokio::spawn(serve(listener, endpoint.router(), limits(), stop.clone()));
    }
    Ok(urls)
}

/// Binds `ip` on `port` when it is free there too (one port to remember), else on any port.
async fn bind_beside(ip: IpAddr, port: u16) -> anyhow::Result<TcpListener> {
    if let Ok(listener) = TcpListener::bind(SocketAddr::new(ip, port)).await {
        return Ok(listener);
    }
    TcpListener::bind(SocketAddr::new(ip, 0)).await.with_context(|| format!("progress endpoint: listening on {ip}"))
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
