//! What the load benchmarks share: processes that stop with the run,
//! pinning to CPUs, and wrk.
#![allow(dead_code)]

pub mod browser;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One measurement: throughput and latency percentiles.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A process stopped on drop: asked to stop (SIGTERM), so that nginx's
/// master stops its workers too (killed, it would leave them running,
/// still listening and holding upstream connections, into later rows and
/// runs), then killed if it has not stopped within five seconds.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let asked = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while asked && Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn taskset(cores: &str, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command
        .args(["-c", cores])
        .arg(program)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// wrk against `http://127.0.0.1:{port}/`.
pub fn wrk(port: u16, conns: u32, seconds: u32, headers: &[String], cores: &str) -> Result<Measured, String> {
    wrk_with(
        &format!("http://127.0.0.1:{port}/"),
        conns,
        seconds,
        headers,
        None,
        cores,
    )
}

/// wrk -t1 on `cores` against `url`, with extra headers and an optional
/// Lua script (for POST bodies).
pub fn wrk_with(
    url: &str,
    conns: u32,
    seconds: u32,
    headers: &[String],
    script: Option<&Path>,
    cores: &str,
) -> Result<Measured, String> {
    let text = wrk_text(url, conns, seconds, headers, script, cores)?;
    measured_by(&text, |text| {
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// What [`wrk_with`]'s run of wrk printed.
pub fn wrk_text(
    url: &str,
    conns: u32,
    seconds: u32,
    headers: &[String],
    script: Option<&Path>,
    cores: &str,
) -> Result<String, String> {
    let mut command = Command::new("taskset");
    command.args([
        "-c",
        cores,
        "wrk",
        "-t1",
        &format!("-c{conns}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let out = command.arg(url).output().map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What wrk printed (`text`) as a [`Measured`], its rate read by `rate`
/// (requests a second, or what a script counted).
pub fn measured_by(text: &str, rate: impl Fn(&str) -> Option<f64>) -> Result<Measured, String> {
    let rps = rate(text).ok_or_else(|| format!("wrk said: {text}"))?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .map(|v| parse_latency(v.trim()))
            .unwrap_or(f64::NAN)
    };
    Ok(Measured {
        rps,
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
    })
}

/// wrk's "241.00us", "1.59ms", "1.02s" in milliseconds.
pub fn parse_latency(text: &str) -> f64 {
    let (number, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (text, f64::NAN)
    };
    number.parse::<f64>().map_or(f64::NAN, |n| n * scale)
}

/// The argon2id hash `authgate hash-password` prints for `secret`.
pub fn hash_secret(authgate: &str, secret: &str) -> String {
    let out = Command::new(authgate)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{secret}\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("authgate hash-password");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts `authgate --config CONFIG` on `cores` and waits for `port`:
/// quiet, or with its default log (the access log on) appended to
/// `log`.
pub fn start_authgate(authgate: &str, config: &Path, cores: &str, port: u16, log: Option<&Path>) -> Running {
    let (level, stderr) = match log {
        Some(path) => (
            "info",
            Stdio::from(std::fs::File::create(path).expect("the log file")),
        ),
        None => ("warn", Stdio::null()),
    };
    let child = Command::new("taskset")
        .args(["-c", cores, authgate, "--config"])
        .arg(config)
        .env("RUST_LOG", level)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("authgate");
    wait_for_port(port);
    Running(child)
}
