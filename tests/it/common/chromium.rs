//! Headless Chromium through chromedriver (WebDriver), driven with
//! fantoccini: the browser the sign-in tests use.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::{free_port, require_tools};

pub struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_chromedriver() -> Option<Driver> {
    if !require_tools(&["chromium", "chromedriver"]) {
        return None;
    }
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver {
        child,
        port,
        profile: tempfile::tempdir().unwrap(),
    })
}

/// Waits (up to 5 s) until `script` returns `expected`: a click that
/// submits a form answers before the next page has loaded.
pub async fn until(browser: &fantoccini::Client, script: &str, expected: serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(value) = browser.execute(script, vec![]).await {
            if value == expected {
                return;
            }
            assert!(Instant::now() < deadline, "{script} is {value}, not {expected}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `text` into the field with id `id`.
pub async fn type_into(browser: &fantoccini::Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Presses the form's submit button.
pub async fn submit(browser: &fantoccini::Client) {
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

pub async fn browser_session(driver: &Driver) -> fantoccini::Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", driver.profile.path().display()),
            ]
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// A command of the WebAuthn WebDriver extension (W3C WebAuthn §11),
/// below `session/{id}/webauthn/`, which chromedriver implements.
#[derive(Debug)]
struct WebAuthnCommand {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session");
        base_url.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (self.method.clone(), self.body.as_ref().map(ToString::to_string))
    }
}

/// Gives `browser` a virtual authenticator that keeps discoverable
/// credentials and verifies its user (a platform passkey provider):
/// answers its id.
pub async fn add_virtual_authenticator(browser: &fantoccini::Client) -> String {
    let added = browser
        .issue_cmd(WebAuthnCommand {
            method: http::Method::POST,
            path: "authenticator".into(),
            body: Some(json!({
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true
            })),
        })
        .await
        .expect("chromedriver adds a virtual authenticator");
    added.as_str().expect("an authenticator id").to_owned()
}

/// The credentials the virtual authenticator `id` holds.
pub async fn authenticator_credentials(browser: &fantoccini::Client, id: &str) -> serde_json::Value {
    browser
        .issue_cmd(WebAuthnCommand {
            method: http::Method::GET,
            path: format!("authenticator/{id}/credentials"),
            body: None,
        })
        .await
        .expect("chromedriver lists the credentials")
}
