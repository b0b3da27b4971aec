//! The `process` runtime: `envProcess` run once per call with the OpenFaaS classic-watchdog contract.
//!
//! The request body goes to stdin and stdout is the response body; exit status 0 is a 200, anything else a
//! 500 carrying stderr. The request is described in `Http_*` environment variables (`Http_Method`,
//! `Http_Path`, `Http_Query`, `Http_Content_Type`, …). The command line is split into words like a shell
//! would, but no shell runs unless the command names one. Each call runs in its own process group, so a
//! timeout kills whatever the function started too.

use std::process::Stdio;

use sluice_contracts::FunctionSpec;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    process::Command,
    time::Instant,
};

use crate::{Body, FunctionResponse, Invocation, Runtime, RuntimeConfig, RuntimeError};

/// Host variables a function inherits; everything else (credentials of the worker itself) stays out.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

/// How much of stderr is kept for the error of a failed call.
const STDERR_LIMIT: u64 = 64 * 1024;

/// Runs `envProcess` per call.
#[derive(Clone, Debug)]
pub struct ProcessRuntime {
    cfg: RuntimeConfig,
}

fn invalid(message: String) -> RuntimeError {
    RuntimeError::Start(std::io::Error::new(std::io::ErrorKind::InvalidInput, message))
}

/// The command's words, split like a shell would split them.
fn argv(spec: &FunctionSpec) -> Result<Vec<String>, RuntimeError> {
    let line = spec.env_process.as_deref().unwrap_or_default();
    let words = shell_words::split(line).map_err(|e| invalid(format!("envProcess {line:?}: {e}")))?;
    if words.is_empty() {
        return Err(invalid("envProcess is empty".into()));
    }
    Ok(words)
}

/// Where the function's program is: as given when it names a path, else the first match on the `PATH` the
/// function runs with (its own `PATH` variable, or the worker's).
///
/// A full path is also what lets the standard library start the process with `posix_spawn` (a vfork) rather
/// than `fork`: with `PATH` among the variables set and a bare name, it must fork to search the new `PATH`,
/// and a fork copies the page tables of the whole worker — a cost per call that grew with every deployed
/// function the worker holds in memory.
fn program(spec: &FunctionSpec, name: &str) -> Option<std::path::PathBuf> {
    let given = std::path::Path::new(name);
    if given.components().count() > 1 {
        return given.exists().then(|| given.to_path_buf());
    }
    let path = match spec.env_vars.get("PATH") {
        Some(own) => std::ffi::OsString::from(own),
        None => std::env::var_os("PATH")?,
    };
    // As `execvp` does: the first file there that may be executed.
    let executable = |candidate: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    std::env::split_paths(&path).map(|dir| dir.join(given)).find(|candidate| executable(candidate))
}

fn not_found(name: &str) -> RuntimeError {
    RuntimeError::Start(std::io::Error::new(std::io::ErrorKind::NotFound, format!("command {name:?} not found")))
}

/// `Content-Type` → `Http_Content_Type`, as the classic watchdog names request headers.
pub fn watchdog_env_name(header: &str) -> String {
    let mut name = String::with_capacity(header.len() + 5);
    name.push_str("Http_");
    for (i, part) in header.split('-').enumerate() {
        if i > 0 {
            name.push('_');
        }
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    name
}

/// Kills the call's whole process group when the call ends in any way: finished, timed out, or abandoned
/// because its future was dropped (worker shutdown, cancellation).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: killpg only sends a signal, to the group our own child leads.
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

async fn read_limited(pipe: impl AsyncRead + Unpin, limit: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    pipe.take(limit + 1).read_to_end(&mut buf).await?;
    let over = buf.len() as u64 > limit;
    buf.truncate(limit as usize);
    Ok((buf, over))
}

impl ProcessRuntime {
    pub fn new(cfg: RuntimeConfig) -> Self {
        Self { cfg }
    }

    fn command(&self, spec: &FunctionSpec, call: &Invocation) -> Result<Command, RuntimeError> {
        let words = argv(spec)?;
        let mut cmd = Command::new(program(spec, &words[0]).ok_or_else(|| not_found(&words[0]))?);
        cmd.arg0(&words[0])
            .args(&words[1..])
            .env_clear()
            .envs(INHERITED_ENV.iter().filter_map(|k| std::env::var_os(k).map(|v| (*k, v))))
            .envs(&spec.env_vars)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (name, value) in &call.headers {
            if let Ok(value) = value.to_str() {
                cmd.env(watchdog_env_name(name.as_str()), value);
            }
        }
        // After the caller's headers: a `Method`, `Path` or `Query` header must not pass for the real request.
        cmd.env("Http_Method", call.method.as_str()).env("Http_Path", &call.path).env("Http_Query", &call.query);
        Ok(cmd)
    }
}

impl Runtime for ProcessRuntime {
    async fn deploy(&self, spec: &FunctionSpec) -> Result<(), RuntimeError> {
        let words = argv(spec)?;
        if program(spec, &words[0]).is_some() { Ok(()) } else { Err(not_found(&words[0])) }
    }

    async fn invoke(
        &self,
        spec: &FunctionSpec,
        call: Invocation,
        deadline: Instant,
    ) -> Result<FunctionResponse, RuntimeError> {
        let started = Instant::now();
        let mut child = self.command(spec, &call)?.spawn().map_err(RuntimeError::Start)?;
        let group = GroupGuard(child.id());
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let feed = async move {
            let written = match call.body {
                Body::Bytes(bytes) => stdin.write_all(&bytes).await,
                Body::Reader(mut reader) => tokio::io::copy(&mut reader, &mut stdin).await.map(drop),
            };
            // A function that exits without reading all its input is not an error.
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
        };
        let limit = self.cfg.max_response_bytes as u64;
        let run = async {
            let (fed, out, err) = tokio::join!(feed, read_limited(stdout, limit), read_limited(stderr, STDERR_LIMIT));
            (fed, out, err, child.wait().await)
        };
        let outcome = tokio::time::timeout_at(deadline, run).await;
        let Ok((fed, out, err, status)) = outcome else {
            return Err(RuntimeError::Timeout(deadline.saturating_duration_since(started)));
        };
        drop(group); // anything the function left running in its group goes with it
        fed.map_err(RuntimeError::Body)?;
        let (stdout, over) = out.map_err(|e| RuntimeError::Backend(Box::new(e)))?;
        if over {
            return Err(RuntimeError::Backend(format!("function wrote more than {limit} bytes to stdout").into()));
        }
        let stderr = bytes::Bytes::from(err.unwrap_or_default().0);
        let status = status.map_err(|e| RuntimeError::Backend(Box::new(e)))?;
        let mut headers = http::HeaderMap::new();
        let content_type = spec.env_vars.get("content_type").map(String::as_str).unwrap_or("text/plain");
        if let Ok(v) = http::HeaderValue::from_str(content_type) {
            headers.insert(http::header::CONTENT_TYPE, v);
        }
        if status.success() {
            return Ok(FunctionResponse { status: http::StatusCode::OK, headers, body: stdout.into(), stderr });
        }
        let mut message = format!("{status}");
        let text = String::from_utf8_lossy(&stderr);
        if !text.trim().is_empty() {
            message.push_str(": ");
            message.push_str(text.trim());
        }
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
        let status = http::StatusCode::INTERNAL_SERVER_ERROR;
        Ok(FunctionResponse { status, headers, body: message.into(), stderr })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(cmd: &str) -> FunctionSpec {
        FunctionSpec { service: "t".into(), env_process: Some(cmd.into()), ..Default::default() }
    }

    async fn run(cmd: &str, call: Invocation, timeout: Duration) -> Result<FunctionResponse, RuntimeError> {
        let deadline = Instant::now() + timeout;
        ProcessRuntime::new(RuntimeConfig::default()).invoke(&spec(cmd), call, deadline).await
    }

    #[test]
    fn header_names_follow_the_classic_watchdog() {
        assert_eq!(watchdog_env_name("content-type"), "Http_Content_Type");
        assert_eq!(watchdog_env_name("x-call-id"), "Http_X_Call_Id");
    }

    #[tokio::test]
    async fn stdin_to_stdout() {
        let r = run("tr a-z A-Z", Invocation::post("c", "hello"), Duration::from_secs(10)).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"HELLO");
    }

    #[tokio::test]
    async fn stderr_of_a_successful_call_is_kept_apart_from_its_body() {
        let cmd = "sh -c 'echo progress 50% >&2; echo done'";
        let r = run(cmd, Invocation::post("c", ""), Duration::from_secs(10)).await.unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..], &r.stderr[..]), (200, &b"done\n"[..], &b"progress 50%\n"[..]));
    }

    #[tokio::test]
    async fn request_is_described_in_the_environment() {
        let mut call = Invocation::post("c", "");
        call.path = "/a/b".into();
        call.query = "x=1".into();
        call.headers.insert("x-custom", "yes".parse().unwrap());
        let cmd = r#"sh -c 'printf "%s %s %s %s" "$Http_Method" "$Http_Path" "$Http_Query" "$Http_X_Custom"'"#;
        let r = run(cmd, call, Duration::from_secs(10)).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "POST /a/b x=1 yes");
    }

    #[tokio::test]
    async fn failure_is_a_500_with_stderr() {
        let r =
            run("sh -c 'echo broken >&2; exit 3'", Invocation::post("c", ""), Duration::from_secs(10)).await.unwrap();
        assert_eq!(r.status, 500);
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.contains("broken") && text.contains('3'), "{text}");
        assert_eq!(&r.stderr[..], b"broken\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let started = std::time::Instant::now();
        let err = run("sh -c 'sleep 30 & sleep 30'", Invocation::post("c", ""), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, RuntimeError::Timeout(_)), "{err}");
        // Not a timing assertion on speed: the call must not have waited for the children's 30 s.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[tokio::test]
    async fn abandoned_call_kills_what_the_function_started() {
        let dir = std::env::temp_dir().join(format!("sluice-abandon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("pid");
        let cmd = format!("sh -c 'sleep 30 & echo $! > {}; wait'", pidfile.display());
        let call = run(&cmd, Invocation::post("c", ""), Duration::from_secs(60));
        // Dropping the call's future is how a worker abandons it.
        assert!(tokio::time::timeout(Duration::from_millis(500), call).await.is_err());
        let pid: libc::pid_t = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let mut alive = true;
        for _ in 0..100 {
            // SAFETY: signal 0 only checks whether the process exists.
            alive = unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid);
            if !alive {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!alive, "grandchild {pid} outlived its abandoned call");
    }

    fn is_zombie(pid: libc::pid_t) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(true)
    }

    #[tokio::test]
    async fn missing_command_is_a_start_error() {
        let rt = ProcessRuntime::new(RuntimeConfig::default());
        assert!(rt.deploy(&spec("no-such-command-xyz")).await.is_err());
        assert!(rt.deploy(&spec("cat")).await.is_ok());
        let err = run("no-such-command-xyz", Invocation::post("c", ""), Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Start(_)), "{err}");
    }

    #[tokio::test]
    async fn a_bare_program_is_found_on_the_functions_own_path_and_keeps_its_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("own-tool");
        std::fs::write(&script, "#!/bin/sh\necho \"$0 ran\"\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A file of the same name that may not be executed, earlier on the PATH, is passed over.
        let shadow = tempfile::tempdir().unwrap();
        std::fs::write(shadow.path().join("own-tool"), "not a program").unwrap();
        let mut own = spec("own-tool");
        let path = format!("{}:{}:{}", shadow.path().display(), dir.path().display(), std::env::var("PATH").unwrap());
        own.env_vars.insert("PATH".into(), path);
        let rt = ProcessRuntime::new(RuntimeConfig::default());
        assert!(rt.deploy(&spec("own-tool")).await.is_err(), "not on the worker's PATH");
        assert!(rt.deploy(&own).await.is_ok());
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = rt.invoke(&own, Invocation::post("c", ""), deadline).await.unwrap();
        // The script sees the program's path as its $0 (the kernel passes it), and ran from the function's PATH.
        assert_eq!(String::from_utf8_lossy(&r.body), format!("{} ran\n", script.display()));
    }

    #[tokio::test]
    async fn streamed_body_reaches_stdin() {
        let data = vec![b'x'; 3 * 1024 * 1024];
        let mut call = Invocation::post("c", "");
        call.body = Body::Reader(Box::pin(std::io::Cursor::new(data)));
        let r = run("wc -c", call, Duration::from_secs(20)).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body).trim(), "3145728");
    }
}
