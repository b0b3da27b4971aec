//! A real `nats-server` for the worker's unit tests: `SLUICE_NATS_SERVER`, else the one on `PATH`, as the
//! end-to-end tests find it.

use std::{
    process::{Child, Command},
    time::Duration,
};

use async_nats::jetstream;

/// The server, killed and its store removed when dropped.
pub struct Server(Child, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// A JetStream server on a free port, and a context on it.
pub async fn server() -> (Server, jetstream::Context) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("sluice-worker-test-{}-{port}", std::process::id()));
    let binary = std::env::var_os("SLUICE_NATS_SERVER").unwrap_or_else(|| "nats-server".into());
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .spawn()
        .expect("nats-server (2.10 or newer) on PATH");
    let server = Server(child, dir);
    for _ in 0..100 {
        if let Ok(client) = async_nats::connect(format!("127.0.0.1:{port}")).await {
            return (server, jetstream::new(client));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nats-server did not start");
}
