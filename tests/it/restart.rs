//! Restarts lose nothing: the real binary, signed into, restarted
//! gracefully, reloaded with SIGHUP, and killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    snapshot: PathBuf,
    upstream: Upstream,
}

async fn setup(extra: &str) -> Setup {
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("sessions.jsonl");
    let config = dir.path().join("authgate.toml");
    let text = config_toml(
        upstream.addr,
        &format!("[tokens]\npersist_path = \"sessions.jsonl\"\n{extra}"),
    )
    .replace("timeout_secs = 2", "timeout_secs = 10");
    std::fs::write(&config, text).unwrap();
    Setup {
        _dir: dir,
        config,
        snapshot,
        upstream,
    }
}

async fn status_with(running: &Running, token: &str) -> u16 {
    api()
        .get(running.url("/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sign_in_at(running: &Running, username: &str) -> String {
    let response = submit_sign_in(
        &browser(),
        &running.url("/management/authorize"),
        username,
        PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 303);
    session_token(&response)
}

fn stop(mut running: Running) {
    running.signal("TERM");
    let status = running.wait();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_graceful_restart_keeps_every_session() {
    let setup = setup("").await;
    let first = start_binary(&setup.config);
    let cookie_session = sign_in_at(&first, "alice").await;
    let api_token = password_grant(&first.url("/management/token"), "bob").await;
    stop(first);
    assert!(setup.snapshot.exists(), "the sessions were saved on shutdown");

    let second = start_binary(&setup.config);
    second.wait_for_log("sessions restored", Duration::from_secs(5));
    assert_eq!(status_with(&second, &cookie_session).await, 200);
    assert_eq!(status_with(&second, &api_token).await, 200);
    assert_eq!(status_with(&second, "not-a-token").await, 401);
    stop(second);
}

fn rewrite(config: &Path, edit: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, edit(text)).unwrap();
}

#[tokio::test]
async fn sighup_reloads_users_without_dropping_sessions_or_requests() {
    let setup = setup("").await;
    let running = start_binary(&setup.config);
    let alice = sign_in_at(&running, "alice").await;
    let slow = tokio::spawn({
        let (url, alice) = (running.url("/slow"), alice.clone());
        async move { api().get(url).bearer_auth(alice).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // bob goes, carol comes.
    let hash = password_hash();
    rewrite(&setup.config, |text| {
        text.replace("username = \"bob\"", "username = \"carol\"")
    });
    running.signal("HUP");
    running.wait_for_log("configuration reloaded", Duration::from_secs(5));
    let carol = sign_in_at(&running, "carol").await;
    assert_eq!(status_with(&running, &carol).await, 200);
    let bob = submit_sign_in(&browser(), &running.url("/management/authorize"), "bob", PASSWORD).await;
    assert_eq!(bob.status(), 401, "bob is gone");
    assert_eq!(
        status_with(&running, &alice).await,
        200,
        "sessions survive a reload"
    );

    // A config that fails its check is refused; the one in force stays.
    rewrite(&setup.config, |text| text.replace(hash, "not-a-hash"));
    running.signal("HUP");
    let refused = running.wait_for_log("reload refused", Duration::from_secs(5));
    assert!(
        refused.contains("authgate.toml:") && refused.contains("password_hash"),
        "{refused}"
    );
    assert_eq!(
        sign_in_at(&running, "carol").await.len(),
        43,
        "carol still signs in"
    );

    let response = slow
        .await
        .unwrap()
        .expect("the request in flight survived both reloads");
    assert_eq!(response.text().await.unwrap(), "slow");
    stop(running);
    let _ = setup.upstream.hits();
}

#[tokio::test]
async fn sigkill_loses_at_most_the_last_snapshot_interval_and_a_torn_snapshot_does_not_stop_the_start() {
    let setup = setup("persist_interval_secs = 1\n").await;
    let first = start_binary(&setup.config);
    let early = sign_in_at(&first, "alice").await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // at least one snapshot since
    drop(first); // SIGKILL

    let second = start_binary(&setup.config);
    second.wait_for_log("sessions restored", Duration::from_secs(5));
    assert_eq!(
        status_with(&second, &early).await,
        200,
        "a session older than the interval survives SIGKILL"
    );
    drop(second); // SIGKILL

    // A torn snapshot is set aside and reported; the gateway starts anyway.
    let text = std::fs::read_to_string(&setup.snapshot).unwrap();
    std::fs::write(&setup.snapshot, &text[..text.len() / 2]).unwrap();
    let third = start_binary(&setup.config);
    let line = third.wait_for_log("unreadable", Duration::from_secs(5));
    assert!(line.contains("set aside"), "{line}");
    assert_eq!(
        status_with(&third, &early).await,
        401,
        "that session was in the torn file"
    );
    let fresh = sign_in_at(&third, "bob").await;
    assert_eq!(status_with(&third, &fresh).await, 200);
    let set_aside = std::fs::read_dir(setup.snapshot.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(set_aside, "the torn file was kept for inspection");
    stop(third);
}

#[tokio::test]
async fn a_client_secret_changed_by_reload_stops_working_at_once() {
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authgate.toml");
    let (old, new) = (
        authgate::hash_password("old-secret"),
        authgate::hash_password("new-secret"),
    );
    let client = |hash: &str| {
        format!("[[clients]]\nclient_id = \"machine\"\nclient_secret_hash = \"{hash}\"\ngrants = [\"client_credentials\"]\n")
    };
    std::fs::write(&config, config_toml(upstream.addr, &client(&old))).unwrap();
    let running = start_binary(&config);
    let issue = |secret: &'static str| {
        api()
            .post(running.url("/management/token"))
            .basic_auth("machine", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            issue("old-secret").await.unwrap().status(),
            200,
            "remembered after the first argon2"
        );
    }
    std::fs::write(&config, config_toml(upstream.addr, &client(&new))).unwrap();
    running.signal("HUP");
    running.wait_for_log("configuration reloaded", Duration::from_secs(5));
    assert_eq!(
        issue("old-secret").await.unwrap().status(),
        401,
        "the old secret stops at once"
    );
    assert_eq!(issue("new-secret").await.unwrap().status(), 200);
}
