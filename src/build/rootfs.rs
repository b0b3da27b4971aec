//! The files of a function image: executables at their own paths plus every shared library `ldd` names for
//! them, packed with a Dockerfile into the tar build context the engine takes.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// Shared libraries (and the dynamic loader) `exe` needs, as absolute paths; empty for a static executable.
pub fn libraries_of(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(exe).output().context("running ldd (install libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {}: {}", exe.display(), err.trim());
    }
    if text.contains("statically linked") {
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("=> not found") {
            bail!("{} needs a library that is not installed: {line}", exe.display());
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        let path = match line.split_once("=>") {
            Some((_, target)) => target.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Finds `name` on `PATH` unless it is already a path.
pub fn resolve_executable(name: &str) -> Result<PathBuf> {
    let path = Path::new(name);
    if name.contains('/') {
        return path.canonicalize().with_context(|| format!("executable {name}"));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not on PATH"))
}

/// A build context: `Dockerfile` plus `rootfs/` holding files at their paths inside the image.
pub struct BuildContext {
    builder: tar::Builder<Vec<u8>>,
    added: BTreeSet<PathBuf>,
}

impl BuildContext {
    pub fn new() -> Self {
        Self { builder: tar::Builder::new(Vec::new()), added: BTreeSet::new() }
    }

    /// Adds the file at `source` (following symlinks) as `dest` in the image.
    pub fn add_file(&mut self, source: &Path, dest: &Path) -> Result<()> {
        if !self.added.insert(dest.to_owned()) {
            return Ok(());
        }
        let inside = Path::new("rootfs").join(dest.strip_prefix("/").unwrap_or(dest));
        use std::os::unix::fs::PermissionsExt;
        let bytes = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        let mode = std::fs::metadata(source)?.permissions().mode();
        // A plain header of our own: `append_file` may write GNU sparse entries, which the engine refuses.
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode & 0o7777);
        self.builder
            .append_data(&mut header, &inside, bytes.as_slice())
            .with_context(|| format!("packing {}", source.display()))
    }

    /// Adds an executable at `dest` with the libraries it needs at their own paths.
    pub fn add_executable(&mut self, source: &Path, dest: &Path) -> Result<()> {
        self.add_file(source, dest)?;
        for lib in libraries_of(source)? {
            self.add_file(&lib, &lib)?;
        }
        Ok(())
    }

    /// An empty directory with `mode`.
    pub fn add_dir(&mut self, dest: &str, mode: u32) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(mode);
        header.set_size(0);
        let path = format!("rootfs/{}/", dest.trim_matches('/'));
        self.builder.append_data(&mut header, path, std::io::empty()).context("packing a directory")
    }

    /// Finishes the context with `dockerfile`; returns the tar bytes.
    pub fn finish(mut self, dockerfile: &str) -> Result<Vec<u8>> {
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        self.builder.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).context("packing the Dockerfile")?;
        self.builder.into_inner().context("finishing the build context")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_needs_libc_and_the_loader() {
        let libs = libraries_of(&resolve_executable("cat").unwrap()).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "{libs:?}");
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("ld-linux")), "{libs:?}");
    }

    #[test]
    fn unknown_executables_are_named() {
        let err = resolve_executable("no-such-program-anywhere").unwrap_err();
        assert!(err.to_string().contains("no-such-program-anywhere"));
    }
}
