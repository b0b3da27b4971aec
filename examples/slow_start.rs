//! A function server that takes a while to become ready, as many real ones do (a model to load, a JVM to
//! warm): it listens on 8080 at once, but for `READY_AFTER` seconds (default 3) answers calls with 500 and
//! `GET /_/ready` with 503, as of-watchdog does while its upstream starts. Then it answers calls with
//! `ready:<body>`. A call to `/_/pause?seconds=N` makes it unready again for N seconds (a dependency lost,
//! a cache reloading), so a platform's readiness checks can be seen taking it out of rotation and back.
//! `slow_start --probe` checks `/_/ready` on 127.0.0.1:8080 and exits 0 when ready, for an image's HEALTHCHECK.
//!
//! Only the standard library: the image holds this one executable and its libraries.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Unix milliseconds until which a pause (`/_/pause`) keeps the server unready.
static PAUSED_UNTIL: AtomicU64 = AtomicU64::new(0);

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn probe() -> bool {
    let Ok(mut stream) = TcpStream::connect("127.0.0.1:8080") else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /_/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).is_ok() && status.split_whitespace().nth(1) == Some("200")
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) {
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(mut stream: TcpStream, ready: bool) {
    let mut reader = BufReader::new(stream.try_clone().expect("a socket clones"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0).min(1 << 20);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path.ends_with("/_/pause") {
        let seconds: u64 = query.strip_prefix("seconds=").and_then(|s| s.parse().ok()).unwrap_or(10);
        PAUSED_UNTIL.store(now_millis() + seconds.min(3600) * 1000, Ordering::Relaxed);
        return respond(&mut stream, "200 OK", b"paused");
    }
    let ready = ready && now_millis() >= PAUSED_UNTIL.load(Ordering::Relaxed);
    match (path, ready) {
        ("/_/ready", true) => respond(&mut stream, "200 OK", b"OK"),
        ("/_/ready", false) => respond(&mut stream, "503 Service Unavailable", b"starting"),
        (_, false) => respond(&mut stream, "500 Internal Server Error", b"upstream not ready"),
        (_, true) => respond(&mut stream, "200 OK", &[b"ready:".as_slice(), &body].concat()),
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--probe") {
        std::process::exit(if probe() { 0 } else { 1 });
    }
    let after = std::env::var("READY_AFTER").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let started = Instant::now();
    let listener = TcpListener::bind("0.0.0.0:8080").expect("port 8080 is free");
    for stream in listener.incoming().flatten() {
        let ready = started.elapsed() >= Duration::from_secs(after);
        std::thread::spawn(move || serve(stream, ready));
    }
}
