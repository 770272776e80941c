//! The account page in a real browser's stead: who one is, one's
//! sessions and signing out the others, and a database user changing
//! their own password; forms with CSRF, answers by redirect.

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_authgate");

async fn setup() -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstream]
url = "http://{upstream}"

[database]
url = "sqlite://{db}"

[[users]]
username = "carol"
password_hash = "{hash}"
"#,
        upstream = upstream.addr,
        db = dir.path().join("authgate.db").display(),
        hash = password_hash()
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &toml).unwrap();
    let mut command = std::process::Command::new(BIN);
    command
        .args(["user", "add", "dora", "--name", "Dora", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = command.stdout(std::process::Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"dora-password\n").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    (Gateway::start(&toml).await, dir)
}

/// The account page's CSRF field.
async fn csrf_of(client: &reqwest::Client, gateway: &Gateway) -> (String, String) {
    let page = client
        .get(gateway.url("/management/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    (hidden_value(&html, "csrf").expect("a CSRF field"), html)
}

async fn post(client: &reqwest::Client, gateway: &Gateway, path: &str, form: &[(&str, &str)]) -> String {
    let answer = client.post(gateway.url(path)).form(form).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_person_sees_their_sessions_signs_out_the_others_and_changes_their_password() {
    let (gateway, _dir) = setup().await;
    // Not signed in: off to sign in, and back here.
    let stranger = browser()
        .get(gateway.url("/management/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 302);
    assert_eq!(
        stranger.headers()["location"],
        "/management/authorize?rd=%2Fmanagement%2Faccount"
    );

    let here = browser();
    let there = browser();
    assert_eq!(
        sign_in(&here, &gateway, "dora", "dora-password", "/")
            .await
            .status(),
        303
    );
    let elsewhere = sign_in(&there, &gateway, "dora", "dora-password", "/").await;
    let elsewhere = session_token(&elsewhere);
    let (csrf, html) = csrf_of(&here, &gateway).await;
    let html = unescape_html(&html);
    assert!(html.contains("<dd id=\"username\">dora</dd>"), "{html}");
    assert!(
        html.contains("this browser") && html.contains("another browser"),
        "both sessions listed: {html}"
    );
    assert!(
        html.contains("id=\"change-password\""),
        "a database user may change their password"
    );

    // Without the CSRF field: nothing happens.
    let location = post(&here, &gateway, "/management/account/sign-out-others", &[]).await;
    assert!(location.ends_with("done=expired"));
    assert_eq!(bearer_status(&gateway, "/x", &elsewhere).await, 200);
    let location = post(
        &here,
        &gateway,
        "/management/account/sign-out-others",
        &[("csrf", &csrf)],
    )
    .await;
    assert!(location.ends_with("done=others"));
    assert_eq!(
        bearer_status(&gateway, "/x", &elsewhere).await,
        401,
        "the other session ended"
    );
    let page = here
        .get(gateway.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Your other sessions are signed out."));

    // The password: the current one must be right, the new ones agree.
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        let csrf = csrf.clone();
        let (here, gateway) = (&here, &gateway);
        async move {
            post(
                here,
                gateway,
                "/management/account/password",
                &[
                    ("csrf", &csrf),
                    ("current", current),
                    ("new", new),
                    ("again", again),
                ],
            )
            .await
        }
    };
    assert!(change("wrong", "a-new-password", "a-new-password")
        .await
        .ends_with("done=current"));
    assert!(change("dora-password", "a-new-password", "another-one")
        .await
        .ends_with("done=mismatch"));
    assert!(change("dora-password", "short", "short")
        .await
        .ends_with("done=short"));
    let other = sign_in(&browser(), &gateway, "dora", "dora-password", "/").await;
    let other = session_token(&other);
    assert!(change("dora-password", "a-new-password", "a-new-password")
        .await
        .ends_with("done=password"));
    assert_eq!(
        bearer_status(&gateway, "/x", &other).await,
        401,
        "other sessions end with the old password"
    );
    assert_eq!(
        here.get(gateway.url("/management/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "this one stays"
    );
    assert_eq!(
        sign_in(&browser(), &gateway, "dora", "dora-password", "/")
            .await
            .status(),
        401,
        "the old password no longer works"
    );
    let fresh = sign_in(&browser(), &gateway, "dora", "a-new-password", "/").await;
    assert_eq!(fresh.headers()["location"], "/");
}

#[tokio::test]
async fn a_config_user_sees_their_account_without_a_password_form() {
    let (gateway, _dir) = setup().await;
    let carol = browser();
    assert_eq!(
        sign_in(&carol, &gateway, "carol", PASSWORD, "/").await.status(),
        303
    );
    let (_, html) = csrf_of(&carol, &gateway).await;
    assert!(html.contains("a password"), "{html}");
    assert!(
        !html.contains("id=\"change-password\""),
        "config users' passwords are in config.toml"
    );
    let (csrf, _) = csrf_of(&carol, &gateway).await;
    let location = post(
        &carol,
        &gateway,
        "/management/account/password",
        &[
            ("csrf", &csrf),
            ("current", PASSWORD),
            ("new", "x-new-password"),
            ("again", "x-new-password"),
        ],
    )
    .await;
    assert!(location.ends_with("done=unavailable"), "{location}");
}
