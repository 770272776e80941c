//! Sign-ins through a real OpenID provider, end to end: the release
//! gateway in front of oidc-provider (tests/oidc/provider.mjs), people
//! signing in with a plain HTTP client through every step (the gateway's
//! start, the provider's authorize, login form and resume, the gateway's
//! callback, which redeems the code and checks the ID token).
//!
//! ```text
//! scripts/bench-sign-in                        # installs Node.js and the packages if missing, then this
//! cargo bench --bench provider_sign_in
//! cargo bench --bench provider_sign_in -- --quick
//! ```
//!
//! It prints sign-ins per second (one person at a time, and eight at
//! once), and the time authgate itself adds to one: its two answers (the
//! start and the callback) less the provider's token endpoint, which the
//! callback waits for, measured on its own the same way (a code redeemed
//! directly, with the same client, PKCE and secret) in the same run.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{wait_for_port, Running};

const AUTHGATE: &str = env!("CARGO_BIN_EXE_authgate");
const GATEWAY: u16 = 9130;
const PEOPLE: usize = 8;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, seconds) = if quick { (50, 3) } else { (300, 10) };
    let modules = std::env::var("AUTHGATE_NODE_MODULES")
        .unwrap_or_else(|_| format!("{}/target/test-node/node_modules", env!("CARGO_MANIFEST_DIR")));
    if !std::path::Path::new(&modules).join("oidc-provider").is_dir() {
        eprintln!("{modules} has no oidc-provider: run scripts/bench-sign-in, which installs it");
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().unwrap();
    let provider = start_provider(dir.path(), &modules);
    let issuer = provider.1.clone();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{GATEWAY}"
public_url = "http://127.0.0.1:{GATEWAY}"
workers = 1

[upstream]
builtin = "whoami"

[[providers]]
id = "corp"
kind = "oidc"
issuer = "{issuer}"
client_id = "authgate"
client_secret = "bench-secret"
scopes = ["openid", "email", "profile", "groups"]
username_claim = "preferred_username"
groups_claim = "groups"
"#
        ),
    )
    .unwrap();
    let gateway = Command::new("taskset")
        .args(["-c", "0", AUTHGATE, "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Running)
        .expect("authgate");
    wait_for_port(GATEWAY);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Warm up: discovery and the keys are fetched once.
        for _ in 0..5 {
            sign_in(0).await;
        }
        let mut gateway_ms = Vec::with_capacity(rounds);
        let mut total_ms = Vec::with_capacity(rounds);
        let mut token_ms = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let steps = sign_in(round % PEOPLE).await;
            gateway_ms.push(steps.gateway);
            total_ms.push(steps.total);
            token_ms.push(redeem_directly(&issuer, round % PEOPLE).await);
        }
        let started = Instant::now();
        let mut done = 0usize;
        while started.elapsed() < Duration::from_secs(seconds) {
            let batch: Vec<_> = (0..PEOPLE).map(|i| tokio::spawn(sign_in_owned(i))).collect();
            for task in batch {
                task.await.unwrap();
                done += 1;
            }
        }
        let concurrent = done as f64 / started.elapsed().as_secs_f64();
        let (gateway, total, token) = (
            median(&mut gateway_ms),
            median(&mut total_ms),
            median(&mut token_ms),
        );
        println!("| sign-ins through oidc-provider 9 (authgate on 1 core) | value |");
        println!("|---|---|");
        println!("| one person at a time: sign-ins/s | {:.0} |", 1000.0 / total);
        println!("| one sign-in, every step (median ms) | {total:.2} |");
        println!("| eight at once: sign-ins/s | {concurrent:.0} |");
        println!("| authgate's two answers (median ms) | {gateway:.2} |");
        println!("| of which the provider's token endpoint (median ms) | {token:.2} |");
        println!(
            "| **time authgate adds to a sign-in (ms; target < 2)** | **{:.2}** |",
            (gateway - token).max(0.0)
        );
    });
    drop(gateway);
    drop(provider);
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn start_provider(dir: &std::path::Path, modules: &str) -> (Running, String) {
    let users: Vec<serde_json::Value> = (0..PEOPLE)
        .map(|i| {
            serde_json::json!({"sub": format!("u-{i}"), "password": format!("pw-{i}"), "email": format!("p{i}@corp.example"),
                "email_verified": true, "preferred_username": format!("p{i}"), "groups": ["staff"]})
        })
        .collect();
    let config = serde_json::json!({
        "port": 0,
        "clients": [{
            "client_id": "authgate",
            "client_secret": "bench-secret",
            "redirect_uris": [format!("http://127.0.0.1:{GATEWAY}/management/callback/corp"), "http://127.0.0.1:1/direct"]
        }],
        "users": users,
        "refresh": false
    });
    let path = dir.join("provider.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut child = Command::new("taskset")
        .args(["-c", "1", "node"])
        .arg(format!("{}/tests/oidc/provider.mjs", env!("CARGO_MANIFEST_DIR")))
        .arg(&path)
        .env("AUTHGATE_NODE_MODULES", modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let issuer = line
        .trim()
        .strip_prefix("ready ")
        .expect("the provider started")
        .to_owned();
    // stdin stays open with the child: its end stops the provider.
    (Running(child), issuer)
}

struct Steps {
    /// The gateway's two answers.
    gateway: f64,
    /// Every step.
    total: f64,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in_owned(person: usize) {
    sign_in(person).await;
}

/// One sign-in of person `person`, every step timed.
async fn sign_in(person: usize) -> Steps {
    let http = client();
    let began = Instant::now();
    let start = Instant::now();
    let answer = http
        .get(format!(
            "http://127.0.0.1:{GATEWAY}/management/authorize?provider=corp&rd=%2F"
        ))
        .send()
        .await
        .unwrap();
    let mut gateway = start.elapsed();
    let url = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let callback = walk(&http, url, person, |url| {
        url.path().starts_with("/management/callback/")
    })
    .await;
    let at = Instant::now();
    let back = http.get(callback).send().await.unwrap();
    gateway += at.elapsed();
    assert_eq!(back.status(), 303, "the sign-in failed");
    Steps {
        gateway: gateway.as_secs_f64() * 1000.0,
        total: began.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Follows the provider's pages from `url` for `person` (every redirect,
/// and the login form once) until `stop` says a URL is where they lead;
/// answers that URL, not requested.
async fn walk(
    http: &reqwest::Client,
    mut url: url::Url,
    person: usize,
    stop: impl Fn(&url::Url) -> bool,
) -> url::Url {
    let mut logged_in = false;
    while !stop(&url) {
        let answer = http.get(url.clone()).send().await.unwrap();
        if answer.status().is_redirection() {
            url = url.join(answer.headers()["location"].to_str().unwrap()).unwrap();
            continue;
        }
        assert!(
            !logged_in && url.path().starts_with("/interaction/"),
            "stuck at {url}"
        );
        logged_in = true;
        let action = url.join(&format!("{}/login", url.path())).unwrap();
        let posted = http
            .post(action.clone())
            .form(&[
                ("login", format!("p{person}")),
                ("password", format!("pw-{person}")),
            ])
            .send()
            .await
            .unwrap();
        url = action
            .join(posted.headers()["location"].to_str().unwrap())
            .unwrap();
    }
    url
}

/// The provider's token endpoint alone: a code for `person` with PKCE,
/// redeemed directly with the gateway's client and secret; answers the
/// redemption's time in milliseconds.
async fn redeem_directly(issuer: &str, person: usize) -> f64 {
    use base64::Engine;
    use sha2::Digest;
    let http = client();
    let verifier = format!("{:0>64}", person);
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut url = url::Url::parse(&format!("{issuer}/auth")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "authgate")
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", "http://127.0.0.1:1/direct")
        .append_pair("scope", "openid email profile groups")
        .append_pair("state", "s")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let redirected = walk(&http, url, person, |url| url.path() == "/direct").await;
    let code = redirected
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let at = Instant::now();
    let answer = http
        .post(format!("{issuer}/token"))
        .basic_auth("authgate", Some("bench-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/direct"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "the direct redemption failed");
    let _ = answer.bytes().await;
    at.elapsed().as_secs_f64() * 1000.0
}
