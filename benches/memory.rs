//! Resident memory, measured:
//!
//! - per live token in `MemoryStore`: the RSS growth from one million
//!   sessions, divided by a million;
//! - the gateway's, idle, at its peak and after a storm of concurrent
//!   password sign-ins (argon2id at the production parameters, 19 MiB of
//!   working memory each): the release binary on a real socket, the
//!   sign-ins from as many connections at once. Target: at most 64 MiB
//!   above the idle figure after 256 at once.
//!
//! `cargo bench --bench memory`

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate::store::{Identity, MemoryStore, Session, Token, TokenStore};
use futures_util::FutureExt;
use support::{hash_secret, start_authgate};

const AUTHGATE: &str = env!("CARGO_BIN_EXE_authgate");
const PORT: u16 = 9130;
const PASSWORD: &str = "a storm of sign-ins";

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// `VmRSS` and `VmHWM` (the peak) of process `pid`, in MiB.
fn rss_and_peak(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn tokens() {
    const N: usize = 1_000_000;
    let keys: Vec<_> = (0..N).map(|_| Token::generate().key()).collect();
    // A thousand users, each with many sessions, as the gateway issues them:
    // sessions share their user's strings.
    let users: Vec<Arc<Identity>> = (0..1000)
        .map(|i| Identity::new(&format!("user{i}"), Some(&format!("user{i}@example.com"))))
        .collect();
    let store = MemoryStore::new();
    let before = resident_bytes();
    for (i, key) in keys.iter().enumerate() {
        let session = Session::for_identity(users[i % users.len()].clone(), 3600);
        store.insert(*key, session).now_or_never().unwrap().unwrap();
    }
    let after = resident_bytes();
    let per_token = (after - before) as f64 / N as f64;
    println!(
        "{N} live tokens: {:.0} MiB resident, {per_token:.0} bytes per token",
        (after - before) as f64 / 1048576.0
    );
    assert_eq!(store.len(), N);
}

/// `count` password grants at once, each on its own connection; answers
/// how many succeeded and how long the storm took.
async fn storm(count: usize) -> (usize, Duration) {
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{PORT}/management/token");
    let grants = (0..count).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let response = client
                .post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("username", "storm"),
                    ("password", PASSWORD),
                ])
                .timeout(Duration::from_secs(300))
                .send()
                .await;
            response.is_ok_and(|r| r.status() == 200)
        })
    });
    let mut succeeded = 0;
    for grant in grants.collect::<Vec<_>>() {
        succeeded += usize::from(grant.await.unwrap_or(false));
    }
    (succeeded, started.elapsed())
}

fn sign_in_storms() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("authgate.toml");
    let hash = hash_secret(AUTHGATE, PASSWORD);
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{PORT}\"\n[upstream]\nbuiltin = \"whoami\"\n\
             [auth]\nmax_failures_per_address = 1000000\n\
             [[users]]\nusername = \"storm\"\npassword_hash = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let cores = format!(
        "0-{}",
        std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| concurrent sign-ins | succeeded | took | idle RSS | peak RSS | RSS after | after − idle | target (≤ 64 MiB over idle) |");
    println!("|---|---|---|---|---|---|---|---|");
    for count in [4, 64, 256] {
        // A fresh gateway each time: its peak is this storm's.
        let gateway = start_authgate(AUTHGATE, &config, &cores, PORT, None);
        let pid = gateway.0.id();
        std::thread::sleep(Duration::from_millis(300));
        let (idle, _) = rss_and_peak(pid);
        let (succeeded, took) = runtime.block_on(storm(count));
        std::thread::sleep(Duration::from_millis(500));
        let (after, peak) = rss_and_peak(pid);
        let over = after - idle;
        let verdict = if count != 256 {
            "—"
        } else if over <= 64.0 {
            "met"
        } else {
            "not met"
        };
        println!(
            "| {count} | {succeeded} | {:.1} s | {idle:.1} MiB | {peak:.1} MiB | {after:.1} MiB | {over:.1} MiB | {verdict} |",
            took.as_secs_f64()
        );
        drop(gateway);
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn main() {
    tokens();
    sign_in_storms();
}
