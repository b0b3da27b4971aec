//! Stamps the gateway with the commit it was built from, for `GET /system/info`: `SLUICE_GIT_SHA` when the
//! build sets it (a build without a Git checkout), else `git rev-parse`, else `unknown`.

fn main() {
    println!("cargo:rerun-if-env-changed=SLUICE_GIT_SHA");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    let from_git = || {
        let output = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        let sha = String::from_utf8(output.stdout).ok()?.trim().to_owned();
        (output.status.success() && !sha.is_empty()).then_some(sha)
    };
    let sha = std::env::var("SLUICE_GIT_SHA").ok().filter(|s| !s.is_empty()).or_else(from_git);
    println!("cargo:rustc-env=SLUICE_GIT_SHA={}", sha.as_deref().unwrap_or("unknown"));
}
