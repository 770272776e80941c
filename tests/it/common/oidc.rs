//! The OpenID providers of `tests/oidc/`, run with Node.js: the real one
//! (oidc-provider) and the hostile one, each a child process on a free
//! port, stopped when dropped (their stdin closes).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The `node_modules` that `scripts/test` installs `tests/oidc/` into:
/// `AUTHGATE_NODE_MODULES`, else `target/test-node/node_modules`. `None`,
/// with a message, where it is missing and this is not a run of
/// `scripts/test` or CI (there, it fails).
pub fn node_modules() -> Option<PathBuf> {
    let modules = std::env::var_os("AUTHGATE_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-node/node_modules"));
    if modules.join("oidc-provider").is_dir() && modules.join("jose").is_dir() {
        return Some(modules);
    }
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os("AUTHGATE_TOOLS_INSTALLED").is_none(),
        "{} has no oidc-provider: scripts/test installs tests/oidc/package.json there",
        modules.display()
    );
    eprintln!(
        "SKIPPED: {} has no oidc-provider (scripts/test installs it; CI fails without it)",
        modules.display()
    );
    None
}

/// A provider process and its issuer URL.
pub struct NodeProvider {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
    dir: tempfile::TempDir,
}

impl NodeProvider {
    /// Starts `tests/oidc/{script}` with `config` (JSON); `None` where the
    /// packages are not installed (see [`node_modules`]).
    pub fn start(script: &str, config: serde_json::Value) -> Option<Self> {
        let modules = node_modules()?;
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("provider.log")).unwrap();
        let mut child = Command::new("node")
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/oidc")
                    .join(script),
            )
            .arg(&config_path)
            .env("AUTHGATE_NODE_MODULES", &modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let issuer = match line.trim().strip_prefix("ready ") {
            Some(issuer) => issuer.to_owned(),
            None => panic!(
                "{script} did not start: {line:?}\n{}",
                std::fs::read_to_string(dir.path().join("provider.log")).unwrap_or_default()
            ),
        };
        Some(Self {
            child,
            _stdin: stdin,
            issuer,
            dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// What the provider logged (a line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a sign-in through an outside provider came back to, not yet
/// followed: the gateway's callback, and the flow cookie the gateway set
/// when the sign-in started.
pub struct Walked {
    pub callback: url::Url,
    pub flow_cookie: Option<String>,
}

/// Walks a sign-in through an outside provider with `client` (which keeps
/// cookies), from `start` (the gateway's authorize URL with `provider=`):
/// every redirect, and the provider's login form with `login` and
/// `password`, up to the gateway's callback, which it does not request.
/// `Err` with the gateway's answer when it starts no sign-in (an error
/// page).
pub async fn to_callback(
    client: &reqwest::Client,
    start: &str,
    login: &str,
    password: &str,
) -> Result<Walked, reqwest::Response> {
    let mut url = url::Url::parse(start).unwrap();
    let mut flow_cookie = None;
    let mut posted = false;
    for _ in 0..20 {
        if url.path().starts_with("/management/callback/") {
            return Ok(Walked {
                callback: url,
                flow_cookie,
            });
        }
        let response = client.get(url.clone()).send().await.unwrap();
        if flow_cookie.is_none() {
            flow_cookie = response.headers().get_all("set-cookie").iter().find_map(|c| {
                let text = c.to_str().unwrap();
                text.starts_with("authgate_rp_")
                    .then(|| text.split(';').next().unwrap().to_owned())
            });
        }
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().unwrap();
            url = url.join(location).unwrap();
            continue;
        }
        if url.as_str() == start {
            return Err(response);
        }
        let status = response.status();
        let html = response.text().await.unwrap();
        assert!(
            url.path().starts_with("/interaction/") && !posted,
            "stuck at {url} ({status}): {html}"
        );
        posted = true;
        let action = url.join(&format!("{}/login", url.path())).unwrap();
        let answer = client
            .post(action.clone())
            .form(&[("login", login), ("password", password)])
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_redirection(),
            "the provider refused {login}: {}",
            answer.text().await.unwrap()
        );
        url = action
            .join(answer.headers()["location"].to_str().unwrap())
            .unwrap();
    }
    panic!("the sign-in never came back to the gateway");
}

/// [`to_callback`], then the callback: answers the gateway's answer to it
/// (or its answer to the start, when that started no sign-in).
pub async fn through_provider(
    client: &reqwest::Client,
    start: &str,
    login: &str,
    password: &str,
) -> reqwest::Response {
    match to_callback(client, start, login, password).await {
        Ok(walked) => client.get(walked.callback).send().await.unwrap(),
        Err(answer) => answer,
    }
}

/// The value of the cookie `name` that a response sets.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get_all("set-cookie").iter().find_map(|value| {
        let text = value.to_str().ok()?;
        let rest = text.strip_prefix(&format!("{name}="))?;
        let value = rest.split(';').next()?;
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Runs the one-shot script `tests/oidc/{script}` with `config` (JSON)
/// and answers the JSON line it prints; `None` where the packages are not
/// installed (see [`node_modules`]).
pub async fn run_node(script: &str, config: serde_json::Value) -> Option<serde_json::Value> {
    let modules = node_modules()?;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let mut command = Command::new("node");
    command
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/oidc")
                .join(script),
        )
        .arg(&config_path)
        .env("AUTHGATE_NODE_MODULES", &modules)
        .stdin(Stdio::null());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), super::run_command(command))
        .await
        .expect("the node script finishes within a minute");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    Some(serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "{script} printed no JSON: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    }))
}
