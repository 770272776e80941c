//! A sign-in storm with the audit log on: 64 people signing in at once
//! (the password grant, each argon2id-checked, each repeated for a few
//! rounds) while a steady stream of proxied requests goes on. It checks
//! that the audit log loses no event (every sign-in is in the database's
//! `audit_events` and in `[audit] file`) and that the proxied requests'
//! 99th percentile during the storm stays within twice that of a quiet
//! gateway. The gateway runs in this process, on SQLite, in front of the
//! built-in `whoami` upstream.
//!
//! ```text
//! cargo bench --bench sign_in_storm
//! cargo bench --bench sign_in_storm -- --quick     # 500 quiet requests, 2 rounds of sign-ins
//! ```
//!
//! A lost event panics; the latency ratio is only reported (PASS/FAIL),
//! as it depends on what else the machine is doing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;

/// People signing in at once: `user0` … `user63`.
const PEOPLE: usize = 64;
const PASSWORD: &str = "storm-password";
/// Keep-alive connections the proxied stream is sent over, one request
/// at a time on each.
const CONNECTIONS: usize = 4;
/// The most the storm's proxied p99 may be, as a multiple of the quiet one.
const TARGET_RATIO: f64 = 2.0;
/// How long the audit log may take to write the storm down.
const AUDIT_DEADLINE: Duration = Duration::from_secs(10);

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Proxied requests measured while quiet, and sign-ins per person.
    let (quiet_requests, rounds) = if quick { (500, 2) } else { (2000, 4) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quiet_requests, rounds));
}

async fn run(quiet_requests: usize, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("authgate.db");
    let audit_file = dir.path().join("audit.jsonl");
    let addr = start_gateway(&db, &audit_file).await;

    let http = reqwest::Client::new();
    let token = sign_in(&http, addr, 0)
        .await
        .unwrap_or_else(|e| panic!("the first sign-in: {e}"));
    let stream = Proxied::new(addr, &token);

    // Connections opened and the upstream warm before anything counts.
    stream.measure(Until::Sent(200)).await;
    let quiet = stream.measure(Until::Sent(quiet_requests)).await;

    // The storm: the same stream, measured only while the sign-ins run.
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn({
        let stream = stream.clone();
        let stop = stop.clone();
        async move { stream.measure(Until::Stopped(stop)).await }
    });
    let started = Instant::now();
    let storm = storm(&http, addr, rounds).await;
    let storm_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = during.await.unwrap();

    // Every successful sign-in, the first one included, must be written down.
    let expected = storm.succeeded + 1;
    let (in_db, in_file) = audited(&db, &audit_file, expected).await;
    let lost = expected.saturating_sub(in_db.min(in_file));

    let (quiet_p50, quiet_p99) = (percentile(&quiet, 0.5), percentile(&quiet, 0.99));
    let (storm_p50, storm_p99) = (percentile(&during, 0.5), percentile(&during, 0.99));
    let ratio = storm_p99.as_secs_f64() / quiet_p99.as_secs_f64();
    let verdict = if ratio <= TARGET_RATIO { "PASS" } else { "FAIL" };
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| proxied GET / (whoami, SQLite, audit on, {CONNECTIONS} keep-alive connections) | requests | p50 | p99 | storm/quiet p99 | target |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| quiet | {} | {} | {} | | |",
        quiet.len(),
        ms(quiet_p50),
        ms(quiet_p99)
    );
    println!(
        "| during {} sign-ins ({PEOPLE} at once, {rounds} rounds) | {} | {} | {} | {ratio:.2} | ≤ {TARGET_RATIO:.1} {verdict} |",
        storm.attempted,
        during.len(),
        ms(storm_p50),
        ms(storm_p99)
    );
    println!();
    println!(
        "sign-ins: {} of {} succeeded in {:.2} s ({:.0}/s)",
        storm.succeeded,
        storm.attempted,
        storm_time.as_secs_f64(),
        storm.attempted as f64 / storm_time.as_secs_f64()
    );
    for refused in &storm.refused {
        println!("  refused: {refused}");
    }
    println!("audit events sign_in.succeeded: database {in_db}, file {in_file}, expected {expected}");
    println!("lost events: {lost}");
    assert!(
        in_db == expected && in_file == expected,
        "the audit log holds {in_db} (database) and {in_file} (file) of {expected} sign-ins"
    );
}

/// Starts the gateway on a free port, with `PEOPLE` config users sharing
/// one password, the audit log to `db` and `audit_file`, and failure
/// limits no storm reaches (only failures count against them, but a slow
/// or refused sign-in must not be mistaken for a throttled one).
async fn start_gateway(db: &Path, audit_file: &Path) -> SocketAddr {
    let hash = authgate::hash_password(PASSWORD);
    let users: String = (0..PEOPLE)
        .map(|i| format!("[[users]]\nusername = \"user{i}\"\npassword_hash = \"{hash}\"\n"))
        .collect();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstream]
builtin = "whoami"

[database]
url = "sqlite://{db}"

[audit]
file = "{audit_file}"

[auth]
max_failures_per_user = 1000000
max_failures_per_address = 1000000

{users}"#,
        db = db.display(),
        audit_file = audit_file.display(),
    );
    let gateway = authgate::gateway::Gateway::bind(authgate::Config::from_toml_str(&toml).unwrap())
        .await
        .unwrap();
    let addr = gateway.local_addr();
    tokio::spawn(gateway.serve(std::future::pending()));
    addr
}

/// Signs `user{person}` in with the password grant: its access token, or
/// the status and body of the refusal.
async fn sign_in(http: &reqwest::Client, addr: SocketAddr, person: usize) -> Result<String, String> {
    let username = format!("user{person}");
    let answer = http
        .post(format!("http://{addr}/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", &username),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .map_err(|e| format!("{username}: {e}"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    if status != 200 {
        return Err(format!("{username}: {status} {body}"));
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{username}: {e}: {body}"))?;
    json["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{username}: no access_token in {body}"))
}

/// What a storm did.
struct Storm {
    attempted: usize,
    succeeded: usize,
    /// Why each refused sign-in was refused.
    refused: Vec<String>,
}

/// `PEOPLE` people at once, each signing in `rounds` times in a row.
async fn storm(http: &reqwest::Client, addr: SocketAddr, rounds: usize) -> Storm {
    let people: Vec<_> = (0..PEOPLE)
        .map(|person| {
            let http = http.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::with_capacity(rounds);
                for _ in 0..rounds {
                    outcomes.push(sign_in(&http, addr, person).await);
                }
                outcomes
            })
        })
        .collect();
    let mut storm = Storm {
        attempted: 0,
        succeeded: 0,
        refused: Vec::new(),
    };
    for person in people {
        for outcome in person.await.unwrap() {
            storm.attempted += 1;
            match outcome {
                Ok(_) => storm.succeeded += 1,
                Err(why) => storm.refused.push(why),
            }
        }
    }
    storm
}

/// When a measurement ends.
#[derive(Clone)]
enum Until {
    /// After this many requests, over all connections.
    Sent(usize),
    /// When the flag is raised; a request in flight then still counts.
    Stopped(Arc<AtomicBool>),
}

/// The proxied stream: `GET /` with the bearer token, one request at a
/// time on each of `CONNECTIONS` clients (so each keeps one keep-alive
/// connection, reused from one measurement to the next).
#[derive(Clone)]
struct Proxied {
    clients: Vec<reqwest::Client>,
    url: String,
    token: String,
}

impl Proxied {
    fn new(addr: SocketAddr, token: &str) -> Self {
        Self {
            clients: (0..CONNECTIONS).map(|_| reqwest::Client::new()).collect(),
            url: format!("http://{addr}/"),
            token: token.to_owned(),
        }
    }

    /// The latency of every request sent until `until`, each to its whole
    /// body.
    async fn measure(&self, until: Until) -> Vec<Duration> {
        let sent = Arc::new(AtomicUsize::new(0));
        let connections: Vec<_> = self
            .clients
            .iter()
            .map(|client| {
                let (client, url, token) = (client.clone(), self.url.clone(), self.token.clone());
                let (until, sent) = (until.clone(), sent.clone());
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    loop {
                        let more = match &until {
                            Until::Sent(n) => sent.fetch_add(1, Ordering::Relaxed) < *n,
                            Until::Stopped(stop) => !stop.load(Ordering::Relaxed),
                        };
                        if !more {
                            return times;
                        }
                        let at = Instant::now();
                        let answer = client.get(&url).bearer_auth(&token).send().await.unwrap();
                        assert_eq!(answer.status(), 200, "a proxied request");
                        let _ = answer.bytes().await.unwrap();
                        times.push(at.elapsed());
                    }
                })
            })
            .collect();
        let mut times = Vec::new();
        for connection in connections {
            times.extend(connection.await.unwrap());
        }
        times.sort();
        times
    }
}

/// The `q` quantile of sorted `times`.
fn percentile(times: &[Duration], q: f64) -> Duration {
    assert!(!times.is_empty(), "no request was measured");
    times[((times.len() as f64 * q) as usize).min(times.len() - 1)]
}

/// The `sign_in.succeeded` events in the database and in the file, once
/// both hold `expected` or `AUDIT_DEADLINE` has passed.
async fn audited(db: &Path, file: &Path, expected: usize) -> (usize, usize) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let deadline = Instant::now() + AUDIT_DEADLINE;
    loop {
        let in_db: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE event = 'sign_in.succeeded'")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get("n");
        let in_file = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("sign_in.succeeded"))
            .count();
        let in_db = in_db as usize;
        if (in_db >= expected && in_file >= expected) || Instant::now() >= deadline {
            return (in_db, in_file);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
