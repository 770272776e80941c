//! Shared test harness: a real upstream server and a real gateway, each on
//! an ephemeral port on 127.0.0.1, and a real HTTP client.
#![allow(dead_code)]

pub mod chromium;
pub mod github;
pub mod ldap;
pub mod oidc;
pub mod postgres;
pub mod raw;
#[allow(unused_imports)]
pub use raw::*;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

pub const PASSWORD: &str = "correct horse battery staple";
pub const CLIENT_ID: &str = "test-client";
pub const REDIRECT_URI: &str = "http://127.0.0.1:3000/callback";

/// One argon2id hash of [`PASSWORD`], made once per test binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| authgate::hash_password(PASSWORD))
}

/// A config for a gateway in front of `upstream`, with users `alice` and
/// `bob`, one client, and `/public` open; `extra` is appended.
pub fn config_toml(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstream]
url = "http://{upstream}"
timeout_secs = 2

[auth]
public_paths = ["/public"]

[[users]]
username = "alice"
password_hash = "{hash}"
email = "alice@example.com"

[[users]]
username = "bob"
password_hash = "{hash}"

[[clients]]
client_id = "{CLIENT_ID}"
redirect_uris = ["{REDIRECT_URI}", "http://127.0.0.1:3000/other"]
{extra}
"#,
        hash = password_hash()
    )
}

/// What the upstream saw, per request.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// Released by the test to let `/hold` finish its body.
    pub release: Arc<Notify>,
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Starts the test upstream:
/// - `/slow`: answers after 5 s;
/// - `/download?bytes=N`: N bytes in 64 KiB chunks;
/// - `/hold`: one chunk, then the rest when the test releases it;
/// - `/upload`: reads the body and answers its length;
/// - `/pause`: answers after 300 ms;
/// - `/close`: answers and closes the connection;
/// - `/empty`: `204`, no body;
/// - `/cached`: an answer that says how to cache it;
/// - anything else: the request as JSON (method, path, query, headers).
pub async fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (hits2, release2, connections2) = (hits.clone(), release.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            connections2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (hits, release) = (hits2.clone(), release2.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    upstream_answer(req, release.clone())
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        hits,
        connections,
        release,
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn upstream_answer(
    req: Request<Incoming>,
    release: Arc<Notify>,
) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Response::new(full("slow")))
        }
        "/download" => {
            let total: usize = query.trim_start_matches("bytes=").parse().unwrap();
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::iter((0..total).step_by(chunk.len()).map(move |at| {
                let n = chunk.len().min(total - at);
                Ok::<_, Infallible>(Frame::data(chunk.slice(..n)))
            }));
            Ok(Response::new(StreamBody::new(stream).boxed()))
        }
        "/hold" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"first;")))).await;
                release.notified().await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"second")))).await;
            });
            let stream = tokio_stream_from(rx);
            Ok(Response::new(StreamBody::new(stream).boxed()))
        }
        "/pause" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Response::new(full("paused")))
        }
        "/close" => {
            let mut response = Response::new(full("closing"));
            response
                .headers_mut()
                .insert("connection", "close".parse().unwrap());
            Ok(response)
        }
        "/cached" => {
            let mut response = Response::new(full("cacheable"));
            response
                .headers_mut()
                .insert("cache-control", "public, max-age=60".parse().unwrap());
            Ok(response)
        }
        "/empty" => {
            let mut response = Response::new(full(""));
            *response.status_mut() = hyper::StatusCode::NO_CONTENT;
            Ok(response)
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut length = 0usize;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    length += data.len();
                }
            }
            Ok(Response::new(full(&length.to_string())))
        }
        _ => {
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(String::from_utf8_lossy(v.as_bytes()))))
                .collect();
            // Every field as it came, in order: `headers` keeps only the
            // last of a repeated name.
            let fields: Vec<Value> = req
                .headers()
                .iter()
                .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                .collect();
            let body = json!({
                "method": req.method().as_str(),
                "path": path,
                "query": query,
                "version": format!("{:?}", req.version()),
                "headers": headers,
                "fields": fields,
            });
            let mut response = Response::new(full(&body.to_string()));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            Ok(response)
        }
    }
}

fn full(text: &str) -> UpBody {
    Full::new(Bytes::from(text.to_owned())).boxed()
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A gateway running in this process on a real socket; stopped on drop.
pub struct Gateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Gateway {
    pub async fn start(toml: &str) -> Self {
        let config = authgate::Config::from_toml_str(toml).expect("test config is valid");
        let gateway = authgate::gateway::Gateway::bind(config).await.unwrap();
        let addr = gateway.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(gateway.serve(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A client like a browser: cookies kept, redirects not followed (so each
/// step can be checked), HTML asked for.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(
                "accept",
                "text/html,application/xhtml+xml,*/*;q=0.8".parse().unwrap(),
            );
            h
        })
        .build()
        .unwrap()
}

/// A client like an API client: no cookies, no redirects, JSON.
pub fn api() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `username` in to the gateway itself with `client` (which keeps
/// cookies): opens the sign-in page as a browser would, then posts its form.
pub async fn sign_in(
    client: &reqwest::Client,
    gateway: &Gateway,
    username: &str,
    password: &str,
    rd: &str,
) -> reqwest::Response {
    let page = gateway.url(&format!(
        "/management/authorize?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", rd)
            .finish()
    ));
    submit_sign_in(client, &page, username, password).await
}

/// Opens the sign-in page at `page_url` with `client` and posts its form,
/// every hidden input included, with `username` and `password`.
pub async fn submit_sign_in(
    client: &reqwest::Client,
    page_url: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let page = client.get(page_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the sign-in page at {page_url}");
    let html = page.text().await.unwrap();
    let mut form = hidden_inputs(&html);
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    let action = page_url.split('?').next().unwrap();
    client.post(action).form(&form).send().await.unwrap()
}

/// Every hidden input of a page, entities decoded.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split('"').next()?;
            Some((name.to_owned(), hidden_value(html, name)?))
        })
        .collect()
}

/// `GET path` at `gateway` with `token` as a bearer token, from a fresh
/// API client.
pub async fn bearer_get(gateway: &Gateway, path: &str, token: &str) -> reqwest::Response {
    api()
        .get(gateway.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The status of `GET path` at `gateway` with `token` as a bearer token.
pub async fn bearer_status(gateway: &Gateway, path: &str, token: &str) -> reqwest::StatusCode {
    bearer_get(gateway, path, token).await.status()
}

/// What `GET path` at `gateway` with `token` as a bearer token answers, as
/// JSON (the test upstream's echo of what it received).
pub async fn bearer_json(gateway: &Gateway, path: &str, token: &str) -> serde_json::Value {
    bearer_get(gateway, path, token).await.json().await.unwrap()
}

/// An access token for `username` from the password grant at `token_url`
/// (no client, as App Services clients ask).
pub async fn password_grant(token_url: &str, username: &str) -> String {
    let body: serde_json::Value = api()
        .post(token_url)
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {body}"))
        .to_owned()
}

/// The session token in a sign-in response's `Set-Cookie`.
pub fn session_token(response: &reqwest::Response) -> String {
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap();
    cookie
        .strip_prefix("authgate_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The value of the hidden input `name` in a page, HTML entities decoded.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(unescape_html(&html[start..end]))
}

/// Decodes the entities minijinja's HTML escaping produces.
pub fn unescape_html(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The real binary, its address read from its log; killed on drop.
pub struct Running {
    pub child: std::process::Child,
    pub addr: String,
    log: std::sync::mpsc::Receiver<String>,
    /// Lines read while waiting for the address.
    early: std::sync::Mutex<Vec<String>>,
}

/// Starts `authgate --config CONFIG` and waits until it listens.
pub fn start_binary(config: &std::path::Path) -> Running {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut early = Vec::new();
    let addr = loop {
        let line = log.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the gateway never said where it listens; it logged {early:#?}")
        });
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        early.push(line);
    };
    Running {
        child,
        addr,
        log,
        early: std::sync::Mutex::new(early),
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `signal` (TERM, HUP, KILL) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Waits for a log line containing `text`, up to `within`.
    pub fn wait_for_log(&self, text: &str, within: Duration) -> String {
        let mut early = self.early.lock().unwrap();
        if let Some(at) = early.iter().position(|l| l.contains(text)) {
            return early.remove(at);
        }
        drop(early);
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => self.early.lock().unwrap().push(line),
                Err(_) => panic!("no log line with {text:?} within {within:?}"),
            }
        }
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *self.early.lock().unwrap());
        lines.extend(self.log.try_iter());
        lines
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether every one of `tools` is on the PATH. Where one is not, the test
/// is skipped with a message, except in CI, where it fails.
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    // scripts/test installs the tools and says so with this variable, so a
    // run through it (as CI's) fails here instead of skipping.
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os("AUTHGATE_TOOLS_INSTALLED").is_none(),
        "{missing:?} not installed: scripts/test installs them"
    );
    eprintln!("SKIPPED: {missing:?} not installed here (scripts/test installs them; CI fails without them)");
    false
}

/// The Python that has the tests' client libraries
/// (`tests/python/requirements.txt`): the one `scripts/test` prepares
/// (`AUTHGATE_TEST_PYTHON`), else `target/test-python` if an earlier run
/// left it. `None`, with a message, where there is none and this is not a
/// run of `scripts/test` or CI, where it fails.
pub fn test_python() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("AUTHGATE_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-python/bin/python")
        });
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os("AUTHGATE_TOOLS_INSTALLED").is_none(),
        "{} is missing: scripts/test makes it",
        python.display()
    );
    eprintln!(
        "SKIPPED: no test Python at {} (scripts/test makes it)",
        python.display()
    );
    None
}

/// A server of `tests/python/`, run by the test Python: it prints
/// `ready URL` and lives until its stdin closes (or it is dropped).
pub struct PythonServer {
    child: std::process::Child,
    pub url: String,
}

impl PythonServer {
    pub fn start(python: &std::path::Path, script: &str, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(python)
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/python")
                    .join(script),
            )
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("python runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"))
            .to_owned();
        Self { child, url }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/python/{script}` with `args` (off the async threads, so
/// that a gateway in this process goes on serving it): what it printed on
/// standard output, or its exit status and standard error.
pub async fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> Result<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut command = std::process::Command::new(python);
    command.arg(&path).args(args);
    let output = run_command(command).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    match output.status.success() {
        true => Ok(stdout),
        false => Err(format!(
            "{script} exited {}: {}{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// Runs `command` to its end off the async threads (a gateway in this
/// process serves it meanwhile), and answers what it printed.
pub async fn run_command(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("the command runs"))
        .await
        .unwrap()
}

/// A real `redis-server` on a free port, stopped on drop. Its data
/// survives [`RedisServer::restart`] (append-only file in its own folder).
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one; `None` (with a message) where redis-server is not
    /// installed and this is not CI. In CI a missing redis-server fails.
    pub fn start() -> Option<Self> {
        if !require_tools(&["redis-server"]) {
            return None;
        }
        let port = free_port();
        let mut server = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .args(["--appendfsync", "always", "--dir"])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM, waiting for it).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
    }
}

/// Stops a server the test started: SIGTERM, then waits for it to end.
pub fn terminate(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Kills a server the test started, and reaps it.
pub fn kill(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}
