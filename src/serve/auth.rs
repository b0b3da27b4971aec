//! Admin credentials of server commands: given (basic auth, token files) or generated on first start and kept
//! in the data directory, and the loud `--insecure-no-auth` opt-out.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use clap::Args;
use sluice_contracts::credentials::{self, Credentials};
use sluice_gateway::Access;

/// File in the data directory holding the generated admin password (user `admin`, also a bearer token).
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// Who may use the admin API (`/system/*`, `/metrics`, `/events`).
#[derive(Args, Clone, Debug)]
pub struct AuthOptions {
    /// Basic-auth user required on the admin API (with --basic-auth-password-file).
    #[arg(long, env = "SLUICE_BASIC_AUTH_USER")]
    pub basic_auth_user: Option<String>,
    /// File holding the basic-auth password (at least 12 characters).
    #[arg(long, env = "SLUICE_BASIC_AUTH_PASSWORD_FILE")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// File holding bearer tokens accepted on the admin API, one per line (each at least 12 characters).
    #[arg(long, env = "SLUICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// File holding bearer tokens accepted on /metrics besides the admin credentials (for Prometheus).
    #[arg(long, env = "SLUICE_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// File holding bearer tokens accepted on /events besides the admin credentials (for event producers).
    #[arg(long, env = "SLUICE_EVENTS_TOKEN_FILE")]
    pub events_token_file: Option<PathBuf>,
    /// DANGEROUS: serve the admin API without credentials. Anyone who reaches the listener can deploy
    /// functions, which run commands as this process's user.
    #[arg(long, env = "SLUICE_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// DANGEROUS: take CloudEvents on /events from anyone.
    #[arg(long, env = "SLUICE_INSECURE_OPEN_EVENTS")]
    pub insecure_open_events: bool,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Tokens of a token file, one per line; each must be strong enough.
pub fn token_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let tokens: Vec<String> = read(path)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    anyhow::ensure!(!tokens.is_empty(), "token file {} holds no token", path.display());
    for (i, token) in tokens.iter().enumerate() {
        credentials::check_strength(&format!("token {} of {}", i + 1, path.display()), token)?;
    }
    Ok(tokens)
}

impl AuthOptions {
    /// The configured credentials; without any, the generated admin password of `data_dir` (made on first
    /// start). `--insecure-no-auth` opens the admin API, loudly.
    pub fn access(&self, data_dir: &Path) -> anyhow::Result<Access> {
        let mut admin = Credentials::default();
        if let Some(user) = &self.basic_auth_user {
            let file =
                self.basic_auth_password_file.as_ref().context("--basic-auth-user needs --basic-auth-password-file")?;
            let password = read(file)?.trim_end_matches(['\r', '\n']).to_owned();
            credentials::check_strength(&format!("the password in {}", file.display()), &password)?;
            admin.basic = Some((user.clone(), password));
        } else if self.basic_auth_password_file.is_some() {
            bail!("--basic-auth-password-file needs --basic-auth-user");
        }
        if let Some(file) = &self.token_file {
            admin.tokens = token_file(file)?;
        }
        let optional =
            |file: &Option<PathBuf>| file.as_deref().map(token_file).transpose().map(Option::unwrap_or_default);
        let mut access = Access {
            admin: None,
            metrics_tokens: optional(&self.metrics_token_file)?,
            events_tokens: optional(&self.events_token_file)?,
            open_events: self.insecure_open_events,
        };
        if self.insecure_open_events {
            tracing::warn!("--insecure-open-events: anyone who reaches /events can publish events");
        }
        if self.insecure_no_auth {
            anyhow::ensure!(admin.is_empty(), "--insecure-no-auth contradicts the credentials given");
            tracing::warn!(
                "--insecure-no-auth: the admin API takes requests from anyone; whoever reaches this listener can \
                 deploy functions and run commands as this process's user"
            );
            return Ok(access);
        }
        access.admin = Some(if admin.is_empty() { Credentials::admin(&generated_password(data_dir)?) } else { admin });
        Ok(access)
    }
}

/// The admin password in `data_dir`, made (owner-only) when missing.
fn generated_password(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(ADMIN_PASSWORD_FILE);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                bail!("{} is readable by other users; chmod 600 it (or delete it to make a new one)", path.display());
            }
            let password = read(&path)?.trim().to_owned();
            credentials::check_strength(&format!("the password in {}", path.display()), &password)?;
            tracing::info!(file = %path.display(), user = credentials::ADMIN_USER, "admin API credentials from the data directory");
            Ok(password)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
            let password = random_secret()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{password}").with_context(|| format!("writing {}", path.display()))?;
            tracing::warn!(
                file = %path.display(),
                user = credentials::ADMIN_USER,
                "no credentials were configured: generated an admin password (basic auth as admin, or a bearer token); \
                 the sluice CLI on this machine uses it by itself"
            );
            Ok(password)
        }
        Err(err) => Err(anyhow::Error::new(err).context(format!("reading {}", path.display()))),
    }
}

/// 32 characters from the kernel's random source.
fn random_secret() -> anyhow::Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?, &mut bytes)
        .context("reading /dev/urandom")?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The generated admin password for a client on this machine, when the gateway is local and the file readable.
pub fn local_admin_password(gateway: &str, data_dir: &Path) -> Option<String> {
    let url = reqwest::Url::parse(gateway).ok()?;
    let local = match url.host()? {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    if !local {
        return None;
    }
    std::fs::read_to_string(data_dir.join(ADMIN_PASSWORD_FILE))
        .ok()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> AuthOptions {
        AuthOptions {
            basic_auth_user: None,
            basic_auth_password_file: None,
            token_file: None,
            metrics_token_file: None,
            events_token_file: None,
            insecure_no_auth: false,
            insecure_open_events: false,
        }
    }

    #[test]
    fn generated_once_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = options().access(dir.path()).unwrap().admin.unwrap();
        let path = dir.path().join(ADMIN_PASSWORD_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = options().access(dir.path()).unwrap().admin.unwrap();
        assert_eq!(first.tokens, again.tokens);
        assert!(first.tokens[0].len() >= 32);
        assert_eq!(local_admin_password("http://127.0.0.1:8080", dir.path()).as_ref(), Some(&first.tokens[0]));
        assert_eq!(local_admin_password("https://sluice.example.com", dir.path()), None, "never sent elsewhere");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(options().access(dir.path()).unwrap_err().to_string().contains("chmod 600"));
    }

    #[test]
    fn weak_or_missing_passwords_refuse_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        let mut opts = options();
        opts.basic_auth_user = Some("admin".into());
        opts.basic_auth_password_file = Some(file.clone());
        std::fs::write(&file, "\n").unwrap();
        assert!(format!("{:#}", opts.access(dir.path()).unwrap_err()).contains("is empty"));
        std::fs::write(&file, "short\n").unwrap();
        assert!(format!("{:#}", opts.access(dir.path()).unwrap_err()).contains("at least 12"));
        std::fs::write(&file, "long enough password\n").unwrap();
        assert!(opts.access(dir.path()).is_ok());
        assert!(!dir.path().join(ADMIN_PASSWORD_FILE).exists(), "nothing generated when credentials are given");
    }

    #[test]
    fn insecure_is_explicit() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options();
        opts.insecure_no_auth = true;
        assert!(opts.access(dir.path()).unwrap().admin.is_none());
        assert!(!dir.path().join(ADMIN_PASSWORD_FILE).exists());
    }
}
