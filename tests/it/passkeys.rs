//! Security keys and passkeys in headless Chromium, with its virtual
//! authenticator (the WebAuthn WebDriver extension chromedriver
//! implements): a passkey added on the account page signs in alone from
//! the sign-in page; the same key is the second factor after the
//! password; a step-up route asks a one-factor session for it and lets it
//! through; an answer made for another origin, and a key whose counter
//! went backwards (copied), are refused and
//! recorded; a removed key no longer signs in.

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::common::chromium::*;
use crate::common::*;

/// A gateway on `localhost` (browsers refuse WebAuthn on an IP address)
/// with passkeys on, alice and bob, and `/admin` at `auth_level = "mfa"`.
async fn setup() -> (Gateway, String, tempfile::TempDir, Upstream) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    std::fs::write(dir.path().join("secret"), "passkey-tests-secret-0123456789abcdef").unwrap();
    let port = free_port();
    let gateway = gateway_in(&dir, &upstream, port, port).await;
    (gateway, format!("http://localhost:{port}"), dir, upstream)
}

/// A gateway on the database of `dir`, listening on `port` and saying its
/// origin is `http://localhost:{origin_port}`.
async fn gateway_in(dir: &tempfile::TempDir, upstream: &Upstream, port: u16, origin_port: u16) -> Gateway {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{origin_port}"

[upstream]
url = "http://{upstream}"

[database]
url = "sqlite://{db}"

[audit]
file = "{audit}"

[auth]
secret_file = "{secret}"
second_factor = "optional"
passkeys = true

[[users]]
username = "alice"
password_hash = "{hash}"

[[users]]
username = "bob"
password_hash = "{hash}"

[[routes]]
path_prefix = "/admin"
url = "http://{upstream}"
auth_level = "mfa"
"#,
        upstream = upstream.addr,
        db = dir.path().join("authgate.db").display(),
        audit = dir.path().join("audit.jsonl").display(),
        secret = dir.path().join("secret").display(),
        hash = password_hash()
    );
    Gateway::start(&toml).await
}

async fn text(browser: &Client) -> String {
    browser
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn click(browser: &Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Signs in with the password on the sign-in page for `rd`.
async fn password(browser: &Client, base: &str, username: &str, rd: &str) {
    let rd = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>();
    browser
        .goto(&format!("{base}/management/authorize?rd={rd}"))
        .await
        .unwrap();
    type_into(browser, "username", username).await;
    type_into(browser, "password", PASSWORD).await;
    submit(browser).await;
}

/// Adds a key named `name` on the account page.
async fn add_key(browser: &Client, base: &str, name: &str) {
    browser.goto(&format!("{base}/management/account")).await.unwrap();
    until(
        browser,
        "return !document.getElementById('add-key').hidden",
        json!(true),
    )
    .await;
    type_into(browser, "key-name", name).await;
    click(browser, "add-key").await;
    until(browser, "return location.search", json!("?done=key_added")).await;
    assert!(text(browser).await.contains(name));
}

/// Clicks the WebAuthn button `id` once the script has shown it.
async fn press(browser: &Client, id: &str) {
    until(
        browser,
        &format!("return !document.getElementById('{id}').hidden"),
        json!(true),
    )
    .await;
    click(browser, id).await;
}

/// A sign-in with a passkey alone that is refused: what the page says.
async fn passkey_refused(browser: &Client, base: &str) -> String {
    browser
        .goto(&format!("{base}/management/authorize?rd=%2F"))
        .await
        .unwrap();
    press(browser, "passkey").await;
    until(
        browser,
        "return document.getElementById('webauthn-error').hidden",
        json!(false),
    )
    .await;
    text(browser).await
}

async fn sign_out(browser: &Client, base: &str) {
    browser.goto(&format!("{base}/management/logout")).await.unwrap();
}

#[tokio::test]
async fn a_passkey_signs_in_alone_stands_in_for_the_code_and_once_removed_or_copied_is_refused() {
    let Some(driver) = start_chromedriver() else {
        return;
    };
    let (_gateway, base, dir, upstream) = setup().await;
    let browser = browser_session(&driver).await;
    let authenticator = add_virtual_authenticator(&browser).await;

    // alice signs in with her password, and adds a passkey.
    password(&browser, &base, "alice", "/management/account").await;
    until(&browser, "return location.pathname", json!("/management/account")).await;
    add_key(&browser, &base, "Laptop").await;
    let held = authenticator_credentials(&browser, &authenticator).await;
    assert_eq!(
        held[0]["isResidentCredential"], true,
        "a discoverable credential: {held}"
    );
    assert_eq!(held[0]["rpId"], "localhost");

    // Signed out, the passkey alone signs her in, with two factors.
    sign_out(&browser, &base).await;
    browser
        .goto(&format!("{base}/management/authorize?rd=%2Fadmin%2Fx"))
        .await
        .unwrap();
    press(&browser, "passkey").await;
    until(&browser, "return location.pathname", json!("/admin/x")).await;
    let seen = text(&browser).await;
    assert!(seen.contains("\"x-forwarded-user\":\"alice\""), "{seen}");
    assert!(seen.contains("\"x-forwarded-auth-level\":\"mfa\""), "{seen}");

    // The password alone is no longer enough: the key is asked for.
    sign_out(&browser, &base).await;
    password(&browser, &base, "alice", "/").await;
    until(
        &browser,
        "return location.pathname",
        json!("/management/second-factor"),
    )
    .await;
    press(&browser, "use-key").await;
    until(&browser, "return location.pathname", json!("/")).await;
    assert!(text(&browser)
        .await
        .contains("\"x-forwarded-auth-level\":\"mfa\""));

    // An answer made for another origin (a gateway that says it is at
    // another address than the page the browser shows): refused.
    let port = free_port();
    let elsewhere = gateway_in(&dir, &upstream, port, free_port()).await;
    let said = passkey_refused(&browser, &format!("http://localhost:{port}")).await;
    assert!(said.contains("relying party origin does not match"), "{said}");
    drop(elsewhere);

    // A copy of the key (its counter behind the one kept): refused, recorded.
    sign_out(&browser, &base).await;
    raise_counter(&dir.path().join("authgate.db"), "alice").await;
    let said = passkey_refused(&browser, &base).await;
    assert!(said.contains("counter went backwards"), "{said}");
    assert_eq!(
        browser.execute("return location.pathname", vec![]).await.unwrap(),
        json!("/management/authorize"),
        "not signed in"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("security_key_cloned"), "{audit}");

    // Removed on the account page (from a session with two factors), the
    // passkey signs in no more, though the authenticator still has it.
    lower_counter(&dir.path().join("authgate.db"), "alice").await;
    password(&browser, &base, "alice", "/management/account").await;
    until(
        &browser,
        "return location.pathname",
        json!("/management/second-factor"),
    )
    .await;
    press(&browser, "use-key").await;
    until(&browser, "return location.pathname", json!("/management/account")).await;
    click(&browser, "remove-key-1").await;
    until(&browser, "return location.search", json!("?done=key_removed")).await;
    sign_out(&browser, &base).await;
    let said = passkey_refused(&browser, &base).await;
    assert!(said.contains("no key of this gateway"), "{said}");
    browser.close().await.unwrap();

    // bob, in another browser: a key added after his password; the step-up
    // route asks his one-factor session for it, then lets him through.
    let browser = browser_session(&driver).await;
    add_virtual_authenticator(&browser).await;
    password(&browser, &base, "bob", "/management/account").await;
    until(&browser, "return location.pathname", json!("/management/account")).await;
    add_key(&browser, &base, "Security key").await;
    browser.goto(&format!("{base}/admin/y")).await.unwrap();
    until(
        &browser,
        "return location.pathname",
        json!("/management/second-factor"),
    )
    .await;
    press(&browser, "use-key").await;
    until(&browser, "return location.pathname", json!("/admin/y")).await;
    let seen = text(&browser).await;
    assert!(seen.contains("\"x-forwarded-user\":\"bob\""), "{seen}");
    assert!(seen.contains("\"x-forwarded-auth-level\":\"mfa\""), "{seen}");
    browser.close().await.unwrap();
}

/// Sets the stored counter of `username`'s key to `to`.
async fn set_counter(db: &std::path::Path, username: &str, to: u32) {
    use sqlx::Row;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let row = sqlx::query("SELECT id, secret FROM second_factors WHERE username = ? AND kind = 'webauthn'")
        .bind(username)
        .fetch_one(&pool)
        .await
        .unwrap();
    let (id, secret): (String, String) = (row.get("id"), row.get("secret"));
    let mut key: serde_json::Value = serde_json::from_str(&secret).unwrap();
    assert!(key["cred"]["counter"].is_number(), "{key}");
    key["cred"]["counter"] = json!(to);
    sqlx::query("UPDATE second_factors SET secret = ? WHERE id = ?")
        .bind(key.to_string())
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// A copy of the key signed since: the gateway's counter ahead of it.
async fn raise_counter(db: &std::path::Path, username: &str) {
    set_counter(db, username, 1_000_000).await;
}

/// The counter back behind the key's.
async fn lower_counter(db: &std::path::Path, username: &str) {
    set_counter(db, username, 1).await;
}

/// `POST /management/webauthn/{step}` with `body` (and the page's CSRF
/// cookie, kept by `client`): status and JSON.
async fn post_step(
    client: &reqwest::Client,
    base: &str,
    step: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let answer = client
        .post(format!("{base}/management/webauthn/{step}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_ceremony_answer_that_is_forged_replayed_expired_or_for_another_step_is_refused_clearly() {
    let (gateway, base, dir, _upstream) = setup().await;
    let base = base.replace("localhost", "127.0.0.1");
    let alice = browser();
    let answer = alice
        .get(format!("{base}/management/authorize?rd=%2F"))
        .send()
        .await
        .unwrap();
    // The sign-in page offers the passkey button, its script allowed by
    // its hash (never 'unsafe-inline'), and its calls to this origin only.
    let policy = answer.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let scripts = policy
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap_or("");
    assert!(
        scripts.contains("'sha256-") && !scripts.contains("unsafe"),
        "{policy}"
    );
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let page = answer.text().await.unwrap();
    assert!(page.contains("id=\"passkey\""), "{page}");
    let csrf = hidden_value(&page, "csrf").unwrap();
    // No CSRF field: refused.
    let (status, body) = post_step(&alice, &base, "passkey/begin", json!({"csrf": "forged"})).await;
    assert_eq!(status, 403, "{body}");
    // A ceremony begun, answered with something that is no authenticator's.
    let (status, begun) = post_step(&alice, &base, "passkey/begin", json!({"csrf": csrf})).await;
    assert_eq!(status, 200, "{begun}");
    assert!(begun["publicKey"]["challenge"].is_string(), "{begun}");
    assert_eq!(begun["publicKey"]["userVerification"], "required", "{begun}");
    let ceremony = begun["ceremony"].as_str().unwrap().to_owned();
    let forged = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA", "userHandle": null}});
    let (status, body) = post_step(
        &alice,
        &base,
        "passkey/finish",
        json!({"csrf": csrf, "ceremony": ceremony, "credential": forged, "request": "rd=%2F"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "access_denied", "{body}");
    // The ceremony was used: the same answer again finds none.
    let (status, body) = post_step(
        &alice,
        &base,
        "passkey/finish",
        json!({"csrf": csrf, "ceremony": ceremony, "credential": forged, "request": "rd=%2F"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // A passkey ceremony is not a registration's (nor anyone's session).
    let (_, begun) = post_step(&alice, &base, "passkey/begin", json!({"csrf": csrf})).await;
    let (status, body) = post_step(
        &alice,
        &base,
        "register/finish",
        json!({"csrf": csrf, "ceremony": begun["ceremony"], "credential": forged}),
    )
    .await;
    assert_eq!(status, 401, "signed in first: {body}");
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    let (status, body) = post_step(
        &alice,
        &base,
        "register/finish",
        json!({"csrf": csrf, "ceremony": begun["ceremony"], "credential": forged}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // No such step.
    let (status, _) = post_step(&alice, &base, "nothing/begin", json!({"csrf": csrf})).await;
    assert_eq!(status, 404);
    // Forged answers, which name no one, count against the address: within
    // its budget (50 by default), the next is throttled.
    let mut throttled = None;
    for attempt in 0..60 {
        let (_, begun) = post_step(&alice, &base, "passkey/begin", json!({"csrf": csrf})).await;
        let (status, body) = post_step(
            &alice,
            &base,
            "passkey/finish",
            json!({"csrf": csrf, "ceremony": begun["ceremony"], "credential": forged, "request": "rd=%2F"}),
        )
        .await;
        if status == 429 {
            throttled = Some((attempt, body));
            break;
        }
        assert_eq!(status, 400, "{body}");
    }
    let (attempt, body) = throttled.expect("throttled within 60 forged answers");
    assert!(attempt <= 50, "after {attempt}");
    assert_eq!(body["error"], "slow_down", "{body}");
    // The forged answer is in the audit log.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("security_key_refused"), "{audit}");
}
