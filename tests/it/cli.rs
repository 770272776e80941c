//! The `authgate` binary itself: config checks, password hashing, logs and
//! graceful shutdown.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_authgate");

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bad_config_is_refused_with_file_line_and_reason_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[server]\nlisten = \"127.0.0.1:1\"\n\n[upstream]\nurl = \"http://127.0.0.1:9\"\nretries = 3\n",
            6,
            "unknown field `retries`",
        ),
        (
            "[upstream]\nurl = \"http://127.0.0.1:9\"\n[[users]]\nusername = \"a\"\npassword_hash = \"x\"\n",
            5,
            "not a PHC hash",
        ),
        (
            "[server]\nlisten = \"localhost\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n",
            2,
            "is not an address",
        ),
        ("[upstream\nurl = 1\n", 1, ""),
    ];
    for (text, line, reason) in cases {
        let path = write_config(&dir, text);
        for args in [vec!["--config"], vec!["check-config", "--config"]] {
            let output = Command::new(BIN).args(&args).arg(&path).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?} {stderr}");
            let at = format!("{}:{line}:", path.display());
            assert!(stderr.contains(&at), "expected {at} in {stderr}");
            assert!(stderr.contains(reason), "expected {reason:?} in {stderr}");
            assert!(!stderr.contains("listening"), "{stderr}");
        }
    }
}

#[test]
fn the_shipped_config_checks_ok() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let output = Command::new(BIN)
        .args(["check-config", "--config", shipped])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_published_demo_password_is_refused_off_loopback() {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    let exposed = shipped.replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:8080\"");
    assert_ne!(shipped, exposed, "the shipped config listens on 127.0.0.1:8080");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &exposed);
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("demo password") && stderr.contains("authgate hash-password"),
        "{stderr}"
    );
}

#[tokio::test]
async fn hash_password_reads_stdin_and_prints_a_hash_that_signs_in() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hunter2 is long\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");

    let upstream = start_upstream().await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{}\"\n[[users]]\nusername = \"dave\"\npassword_hash = \"{hash}\"\n",
        upstream.addr
    );
    let gateway = Gateway::start(&toml).await;
    assert_eq!(
        sign_in(&browser(), &gateway, "dave", "hunter2 is long", "/")
            .await
            .status(),
        303
    );
    assert_eq!(
        sign_in(&browser(), &gateway, "dave", "hunter2 is long\n", "/")
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_logs_never_hold_secrets() {
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = config_toml(upstream.addr, "").replace("timeout_secs = 2", "timeout_secs = 10");
    let mut running = start_binary(&write_config(&dir, &toml));
    let base = format!("http://{}", running.addr);

    let signed_in = submit_sign_in(
        &browser(),
        &format!("{base}/management/authorize?rd=/"),
        "alice",
        PASSWORD,
    )
    .await;
    assert_eq!(signed_in.status(), 303);
    let token = session_token(&signed_in);
    let via_query = api()
        .get(format!("{base}/q?access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(via_query.status(), 200);

    let slow = tokio::spawn({
        let (base, token) = (base.clone(), token.clone());
        async move { api().get(format!("{base}/slow")).bearer_auth(token).send().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = running.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        api().get(format!("{base}/x")).send().await.is_err(),
        "no new connections once shutting down"
    );

    let response = slow.await.unwrap().expect("the request in flight completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slow");
    let status = running.wait();
    assert!(status.success(), "{status}");

    let log: Vec<String> = running.log_lines();
    let log = log.join("\n");
    assert!(!log.contains(&token), "a token leaked into the log:\n{log}");
    assert!(!log.contains(PASSWORD), "a password leaked into the log:\n{log}");
    let access: Vec<&str> = log.lines().filter(|l| l.contains("authgate::access")).collect();
    assert_eq!(access.len(), 4, "one line per request:\n{log}");
    let slow_line = access
        .iter()
        .find(|l| l.contains("path=\"/slow\""))
        .expect("the slow request is logged");
    for field in ["method=GET", "status=200", "latency_us=", "user=\"alice\""] {
        assert!(slow_line.contains(field), "{field} in {slow_line}");
    }
    // In the format of the other lines: timestamp, level, target, the
    // request's id.
    let (timestamp, rest) = slow_line
        .split_once("  INFO authgate::access: request_id=")
        .expect(slow_line);
    assert!(timestamp.len() == 27 && timestamp.ends_with('Z'), "{slow_line}");
    let (id, fields) = rest.split_once(' ').expect(slow_line);
    assert_eq!(id.len(), 21, "{slow_line}");
    assert!(fields.starts_with("method=GET path=\"/slow\""), "{slow_line}");
    let shutting_down = log.lines().find(|l| l.contains("shutting down")).expect(&log);
    assert_eq!(shutting_down.find("  INFO "), Some(27), "{shutting_down}");
}

#[test]
fn hash_password_notes_the_characters_some_clients_mangle_in_basic() {
    let hash_of = |secret: &str| {
        let mut child = Command::new(BIN)
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{secret}\n").as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{secret}");
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (hash, note) = hash_of("a+b%c");
    assert!(
        hash.trim().starts_with("$argon2id$"),
        "the hash alone on stdout: {hash}"
    );
    assert!(note.contains("'+'") && note.contains("'%'"), "{note}");
    assert!(note.contains("requests-oauthlib"), "{note}");
    let (_, quiet) = hash_of("plain-secret-42");
    assert!(quiet.is_empty(), "no note for a secret nothing mangles: {quiet}");
}

#[tokio::test]
async fn the_shipped_config_runs_and_its_demo_user_has_the_console() {
    // A copy, in a folder of its own (the database is made next to it), on
    // a free port.
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    let port = free_port();
    let copy = shipped
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            "public_url = \"http://127.0.0.1:8080\"",
            &format!("public_url = \"http://127.0.0.1:{port}\""),
        );
    assert_ne!(copy, shipped);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &copy);
    let gateway = start_binary(&path);
    let client = browser();
    let page = gateway.url("/management/authorize?rd=%2Fmanagement%2Fadmin%2F");
    let signed_in = submit_sign_in(&client, &page, "demo", "authgate-demo").await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/management/admin/");
    let console = client
        .get(gateway.url("/management/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);
    let html = console.text().await.unwrap();
    assert!(
        html.contains("Users of config.toml") && html.contains("demo"),
        "{html}"
    );
    assert!(
        dir.path().join("authgate.db").exists(),
        "the database is made next to the config"
    );
    let upstream = client.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(upstream.status(), 200, "the whoami upstream answers");
}
