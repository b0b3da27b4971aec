//! `sluice build`: makes a function image from a local executable, offline.
//!
//! The image is `FROM scratch` with the executable, the shared libraries `ldd` names for it, and
//! `sluice-watchdog` serving HTTP on 8080 and running the executable per call (the classic-watchdog contract).
//! Nothing is pulled from a registry, so any command on the host can become a container function.

mod rootfs;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bollard::{Docker, query_parameters::BuildImageOptionsBuilder};
use clap::Args;
use futures::StreamExt;

/// Where the watchdog sits in every image.
const WATCHDOG_PATH: &str = "/usr/local/bin/sluice-watchdog";

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The executable: a path, or a name found on PATH. Static, or dynamic with its libraries.
    pub executable: String,
    /// Image name and tag, e.g. `sluice/echo:latest`.
    #[arg(long, short = 't')]
    pub tag: String,
    /// Command run per call (`fprocess`); default: the executable itself.
    #[arg(long)]
    pub fprocess: Option<String>,
    /// More files for the image, as `SOURCE:DEST` (executables among them get their libraries too).
    #[arg(long = "file", value_name = "SOURCE:DEST")]
    pub files: Vec<String>,
    /// The watchdog binary; default: `sluice-watchdog` next to this `sluice`.
    #[arg(long, env = "SLUICE_WATCHDOG")]
    pub watchdog: Option<PathBuf>,
}

fn watchdog_path(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locating sluice")?;
    let beside = exe.with_file_name("sluice-watchdog");
    if beside.is_file() {
        return Ok(beside);
    }
    bail!("sluice-watchdog is not next to {}; build it (cargo build) or pass --watchdog", exe.display())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// The Dockerfile of a function image.
fn dockerfile(fprocess: &str, source: &str) -> String {
    // Quoted, and with `$` escaped: the engine expands variables in ENV and LABEL at build time.
    let quote = |text: &str| serde_json::to_string(text).expect("strings serialize").replace('$', "\\$");
    let (fprocess, source) = (quote(fprocess), quote(source));
    format!(
        "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin fprocess={fprocess}\n\
         LABEL sluice.built-from={source}\nEXPOSE 8080\nCMD [\"{WATCHDOG_PATH}\"]\n"
    )
}

pub async fn run(args: BuildArgs) -> Result<()> {
    let exe = rootfs::resolve_executable(&args.executable)?;
    let watchdog = watchdog_path(args.watchdog)?;
    let mut context = rootfs::BuildContext::new();
    context.add_executable(&exe, &exe)?;
    context.add_executable(&watchdog, Path::new(WATCHDOG_PATH))?;
    for spec in &args.files {
        let (source, dest) = spec.split_once(':').with_context(|| format!("--file {spec:?}: write SOURCE:DEST"))?;
        let source = Path::new(source);
        if is_executable(source) {
            context.add_executable(source, Path::new(dest))?;
        } else {
            context.add_file(source, Path::new(dest))?;
        }
    }
    context.add_dir("tmp", 0o1777)?;
    let fprocess = args.fprocess.unwrap_or_else(|| exe.display().to_string());
    let tar = context.finish(&dockerfile(&fprocess, &exe.display().to_string()))?;
    let size = tar.len();

    let docker = Docker::connect_with_local_defaults().context("connecting to the Docker engine")?;
    let docker = docker.negotiate_version().await.context("talking to the Docker engine (is dockerd running?)")?;
    let options = BuildImageOptionsBuilder::default().t(&args.tag).rm(true).forcerm(true).build();
    let mut progress = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut image_id = None;
    while let Some(step) = progress.next().await {
        let step = step.context("building the image")?;
        if let Some(err) = step.error_detail.and_then(|d| d.message) {
            bail!("image build failed: {err}");
        }
        if let Some(id) = step.aux.and_then(|a| a.id) {
            image_id = Some(id);
        }
    }
    let inspect = docker.inspect_image(&args.tag).await.context("the built image is not there")?;
    eprintln!(
        "built {} ({}; context {:.1} MiB, image {:.1} MiB) running {fprocess:?}",
        args.tag,
        image_id.or(inspect.id).unwrap_or_default(),
        size as f64 / 1048576.0,
        inspect.size.unwrap_or(0) as f64 / 1048576.0,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_quotes_the_command() {
        let d = dockerfile("sh -c \"echo hi\"", "/bin/sh");
        assert!(d.contains(r#"fprocess="sh -c \"echo hi\"""#), "{d}");
        assert!(d.starts_with("FROM scratch\n"));
        assert!(dockerfile("echo $HOME", "/bin/sh").contains(r#"fprocess="echo \$HOME""#));
    }
}
