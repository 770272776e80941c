//! Security keys and passkeys in headless Chromium, with its virtual
//! authenticator (the WebAuthn WebDriver extension chromedriver
//! implements): a passkey added on the account page signs in alone from
//! the sign-in page; the same key is the second factor after the
//! password; a step-up route asks a one-factor session for it and lets it
//! through; a key whose counter went backwards (copied) is refused and
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
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"

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
    (
        Gateway::start(&toml).await,
        format!("http://localhost:{port}"),
        dir,
        upstream,
    )
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

async fn sign_out(browser: &Client, base: &str) {
    browser.goto(&format!("{base}/management/logout")).await.unwrap();
}

#[tokio::test]
async fn a_passkey_signs_in_alone_stands_in_for_the_code_and_once_removed_or_copied_is_refused() {
    let Some(driver) = start_chromedriver() else {
        return;
    };
    let (_gateway, base, dir, _upstream) = setup().await;
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
    until(
        &browser,
        "return !document.getElementById('passkey').hidden",
        json!(true),
    )
    .await;
    click(&browser, "passkey").await;
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
    until(
        &browser,
        "return !document.getElementById('use-key').hidden",
        json!(true),
    )
    .await;
    click(&browser, "use-key").await;
    until(&browser, "return location.pathname", json!("/")).await;
    assert!(text(&browser)
        .await
        .contains("\"x-forwarded-auth-level\":\"mfa\""));

    // A copy of the key (its counter behind the one kept): refused, recorded.
    sign_out(&browser, &base).await;
    raise_counter(&dir.path().join("authgate.db"), "alice").await;
    browser
        .goto(&format!("{base}/management/authorize?rd=%2F"))
        .await
        .unwrap();
    until(
        &browser,
        "return !document.getElementById('passkey').hidden",
        json!(true),
    )
    .await;
    click(&browser, "passkey").await;
    until(
        &browser,
        "return document.getElementById('webauthn-error').hidden",
        json!(false),
    )
    .await;
    let said = text(&browser).await;
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
    until(
        &browser,
        "return !document.getElementById('use-key').hidden",
        json!(true),
    )
    .await;
    click(&browser, "use-key").await;
    until(&browser, "return location.pathname", json!("/management/account")).await;
    click(&browser, "remove-key-1").await;
    until(&browser, "return location.search", json!("?done=key_removed")).await;
    sign_out(&browser, &base).await;
    browser
        .goto(&format!("{base}/management/authorize?rd=%2F"))
        .await
        .unwrap();
    until(
        &browser,
        "return !document.getElementById('passkey').hidden",
        json!(true),
    )
    .await;
    click(&browser, "passkey").await;
    until(
        &browser,
        "return document.getElementById('webauthn-error').hidden",
        json!(false),
    )
    .await;
    assert!(text(&browser).await.contains("no key of this gateway"));
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
    until(
        &browser,
        "return !document.getElementById('use-key').hidden",
        json!(true),
    )
    .await;
    click(&browser, "use-key").await;
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
