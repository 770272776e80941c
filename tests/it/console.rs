//! The admin console in headless Chromium: an admin signs in, adds a
//! user with a temporary password and another with an invitation link,
//! makes a group a route requires and
//! puts the user in it; the user signs in and the route lets them in; the
//! admin ends their sessions and their next request is refused; the audit
//! log shows each step. On a phone's width as on a desktop's. Also
//! writes the README's pictures (docs/console-*.png) when
//! AUTHGATE_SCREENSHOTS is set.

use fantoccini::Locator;
use serde_json::json;
use sha2::Digest;

use crate::common::chromium::*;
use crate::common::*;

/// Clicks the button `css` of a form and waits for the page it leads to
/// (not the one it was on, which may say "Done." already).
async fn click(browser: &fantoccini::Client, css: &str) {
    browser.execute("window.__before = true", vec![]).await.unwrap();
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        browser,
        "return window.__before === undefined && document.readyState === 'complete'",
        json!(true),
    )
    .await;
}

async fn text_of(browser: &fantoccini::Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_runs_the_console_in_chromium() {
    let Some(driver) = start_chromedriver() else {
        return;
    };
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
username = "root"
password_hash = "{hash}"
admin = true

[[users]]
username = "carol"
password_hash = "{hash}"

[[routes]]
path_prefix = "/ops"
url = "http://{upstream}"
allowed_groups = ["ops"]
"#,
        upstream = upstream.addr,
        db = dir.path().join("authgate.db").display(),
        hash = password_hash()
    );
    let gateway = Gateway::start(&toml).await;
    let browser = browser_session(&driver).await;

    // Signed out: the console sends the browser to sign in, and back.
    browser.goto(&gateway.url("/management/admin/")).await.unwrap();
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/management/authorize"
    );
    type_into(&browser, "username", "root").await;
    type_into(&browser, "password", PASSWORD).await;
    submit(&browser).await;
    until(&browser, "return location.pathname", json!("/management/admin/")).await;
    assert_eq!(text_of(&browser, "h1").await, "Dashboard");
    // Root's own sign-in, once the audit log's batch is written.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while text_of(&browser, "#sign-ins").await != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard never counted root's sign-in"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        browser.refresh().await.unwrap();
    }

    // A user, with a temporary password.
    browser
        .goto(&gateway.url("/management/admin/users"))
        .await
        .unwrap();
    type_into(&browser, "new-username", "dora").await;
    type_into(&browser, "new-email", "dora@example.com").await;
    type_into(&browser, "new-password", "temporary-pw").await;
    click(&browser, "#add-user").await;
    assert!(browser.find(Locator::Css(".notice")).await.is_ok(), "done");
    let table = text_of(&browser, "table").await;
    assert!(
        table.contains("dora") && table.contains("must change password"),
        "{table}"
    );

    // A group the route requires, with dora in it.
    browser
        .goto(&gateway.url("/management/admin/groups"))
        .await
        .unwrap();
    type_into(&browser, "group-name", "ops").await;
    click(&browser, "#add-group").await;
    assert!(browser.find(Locator::Css(".notice")).await.is_ok(), "done");
    type_into(&browser, "member-group", "ops").await;
    type_into(&browser, "member-username", "dora").await;
    click(&browser, "#add-member").await;
    assert!(browser.find(Locator::Css(".notice")).await.is_ok(), "done");
    assert!(text_of(&browser, "table").await.contains("ops 1"));
    click(&browser, "a[href='/management/admin/groups?group=ops']").await;
    let members = text_of(&browser, "#members").await;
    assert!(
        members.contains("dora") && members.contains("database"),
        "{members}"
    );

    // Dora signs in with the temporary password: nothing passes until she
    // has chosen her own, on her account page; then the route lets her in.
    let temporary = password_grant_as(&gateway, "dora", "temporary-pw").await;
    let held: serde_json::Value = bearer_get(&gateway, "/ops/reports", &temporary)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held["error"], "password_change_required", "{held}");
    let her = crate::common::browser();
    let landed = sign_in(&her, &gateway, "dora", "temporary-pw", "/ops/reports").await;
    assert_eq!(
        landed.headers()["location"],
        "/management/account?done=must_change"
    );
    let dora = session_token(&landed);
    let page = her
        .get(gateway.url("/management/account?done=must_change"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("choose your own"), "{page}");
    let csrf = hidden_value(&page, "csrf").unwrap();
    let changed = her
        .post(gateway.url("/management/account/password"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current", "temporary-pw"),
            ("new", "doras-own-pw"),
            ("again", "doras-own-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(changed.headers()["location"], "/management/account?done=password");
    assert_eq!(bearer_status(&gateway, "/ops/reports", &dora).await, 200);
    assert_eq!(
        bearer_status(&gateway, "/ops/reports", &temporary).await,
        401,
        "the other session ended with the temporary password"
    );

    // Erin is invited instead: no password made up by the admin; the link,
    // shown once, lets her choose her own and signs her in; then it is
    // used up.
    browser
        .goto(&gateway.url("/management/admin/users"))
        .await
        .unwrap();
    type_into(&browser, "new-username", "erin").await;
    click(&browser, "#add-user").await;
    let link = browser
        .find(Locator::Id("invitation-url"))
        .await
        .expect("the invitation link is shown")
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        link.starts_with(&gateway.url("/management/invitation?token=")),
        "{link}"
    );
    browser.refresh().await.unwrap();
    assert!(
        !browser.source().await.unwrap().contains(&link),
        "the link is shown once"
    );
    let erin = crate::common::browser();
    let page = erin.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.unwrap();
    assert!(page.contains("Welcome, erin"), "{page}");
    let fields = hidden_inputs(&page);
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let mismatched = erin
        .post(gateway.url("/management/invitation"))
        .form(&[
            ("csrf", field("csrf").as_str()),
            ("token", field("token").as_str()),
            ("new", "erins-own-pw"),
            ("again", "erins-other-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(mismatched.status(), 400);
    assert!(mismatched.text().await.unwrap().contains("differ"));
    let accepted = erin
        .post(gateway.url("/management/invitation"))
        .form(&[
            ("csrf", field("csrf").as_str()),
            ("token", field("token").as_str()),
            ("new", "erins-own-pw"),
            ("again", "erins-own-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 303);
    let erin_session = session_token(&accepted);
    assert_eq!(bearer_status(&gateway, "/", &erin_session).await, 200);
    let used = erin.get(&link).send().await.unwrap();
    assert_eq!(used.status(), 400, "an invitation works once");
    assert_eq!(
        password_grant_status(&gateway, "erin", "erins-own-pw").await,
        200,
        "she signs in with the password she chose"
    );

    // The admin ends her sessions; her next request is refused.
    // Her sessions, on the sessions page: where from, and ended there.
    browser
        .goto(&gateway.url("/management/admin/sessions?user=dora"))
        .await
        .unwrap();
    let table = text_of(&browser, "table").await;
    assert!(table.contains("dora") && table.contains("127.0.0.1"), "{table}");
    click(&browser, "#end-all").await;
    assert!(browser.find(Locator::Css(".notice")).await.is_ok(), "done");
    assert_eq!(bearer_status(&gateway, "/ops/reports", &dora).await, 401);
    assert!(text_of(&browser, "table").await.contains("No live sessions"));
    // One session of another person, ended alone.
    let erin_api = password_grant_as(&gateway, "erin", "erins-own-pw").await;
    browser
        .goto(&gateway.url("/management/admin/sessions?user=erin"))
        .await
        .unwrap();
    let rows = browser.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(
        rows.len(),
        3,
        "erin's session of the invitation, of her first grant, and of this one"
    );
    // A session's id is the SHA-256 of its token: end exactly this one.
    let id: String = sha2::Sha256::digest(erin_api.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    click(
        &browser,
        &format!("form[action='/management/admin/sessions/{id}/end'] button"),
    )
    .await;
    assert!(browser.find(Locator::Css(".notice")).await.is_ok(), "done");
    assert_eq!(
        bearer_status(&gateway, "/", &erin_api).await,
        401,
        "that one ended"
    );
    assert_eq!(
        bearer_status(&gateway, "/", &erin_session).await,
        200,
        "the others go on"
    );
    assert_eq!(browser.find_all(Locator::Css("tbody tr")).await.unwrap().len(), 2);

    // The audit log shows each step.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    browser
        .goto(&gateway.url("/management/admin/audit?user=dora"))
        .await
        .unwrap();
    let log = text_of(&browser, "table").await;
    for step in [
        "admin.user_added",
        "admin.member_added:ops",
        "sign_in.succeeded",
        "admin.sessions_revoked",
    ] {
        assert!(log.contains(step), "{step} in {log}");
    }
    browser
        .goto(&gateway.url("/management/admin/audit?user=erin"))
        .await
        .unwrap();
    let log = text_of(&browser, "table").await;
    for step in ["admin.invitation_created", "invitation.accepted"] {
        assert!(log.contains(step), "{step} in {log}");
    }
    let export = browser
        .execute(
            "return document.querySelector('a[href^=\"/management/admin/audit.jsonl\"]') !== null",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(export, json!(true));

    // The README's pictures (with AUTHGATE_SCREENSHOTS set).
    browser.set_window_size(1280, 800).await.unwrap();
    for (path, name) in [
        ("/management/admin/", "dashboard"),
        ("/management/admin/users", "users"),
        ("/management/admin/sessions", "sessions"),
    ] {
        browser.goto(&gateway.url(path)).await.unwrap();
        let png = browser.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot of {path}");
        if std::env::var_os("AUTHGATE_SCREENSHOTS").is_some() {
            std::fs::write(
                format!("{}/docs/console-{name}.png", env!("CARGO_MANIFEST_DIR")),
                &png,
            )
            .unwrap();
        }
    }

    // A phone's width: nothing wider than the screen.
    browser.set_window_size(390, 844).await.unwrap();
    for path in [
        "/management/admin/",
        "/management/admin/users",
        "/management/admin/sessions",
        "/management/admin/clients",
        "/management/admin/audit",
    ] {
        browser.goto(&gateway.url(path)).await.unwrap();
        let fits = browser
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(fits, json!(true), "{path} fits a phone");
    }

    // Carol is no admin.
    let carol = browser_client_signed_in(&gateway, "carol").await;
    let refused = carol
        .get(gateway.url("/management/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // And a form without its CSRF field changes nothing.
    let forged = carol
        .post(gateway.url("/management/admin/groups"))
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "not an admin");
}

async fn password_grant_status(gateway: &Gateway, username: &str, password: &str) -> u16 {
    api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn password_grant_as(gateway: &Gateway, username: &str, password: &str) -> String {
    let body: serde_json::Value = api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

async fn browser_client_signed_in(gateway: &Gateway, username: &str) -> reqwest::Client {
    let client = browser();
    assert_eq!(
        sign_in(&client, gateway, username, PASSWORD, "/").await.status(),
        303
    );
    client
}

#[tokio::test]
async fn an_admin_makes_an_oauth_client_in_the_console_and_sees_its_secret_once() {
    let Some(driver) = start_chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{}\"\n[database]\nurl = \"sqlite://{}\"\n\
         [[users]]\nusername = \"root\"\npassword_hash = \"{}\"\nadmin = true\n\
         [[clients]]\nclient_id = \"from-config\"\nredirect_uris = [\"https://app.example/cb\"]\n",
        upstream.addr,
        dir.path().join("authgate.db").display(),
        password_hash()
    );
    let gateway = Gateway::start(&toml).await;
    let browser = browser_session(&driver).await;
    browser
        .goto(&gateway.url("/management/admin/clients"))
        .await
        .unwrap();
    type_into(&browser, "username", "root").await;
    type_into(&browser, "password", PASSWORD).await;
    submit(&browser).await;
    until(
        &browser,
        "return location.pathname",
        json!("/management/admin/clients"),
    )
    .await;
    let table = text_of(&browser, "table").await;
    assert!(
        table.contains("from-config") && table.contains("read-only"),
        "{table}"
    );

    // A confidential client for a service: client credentials only.
    type_into(&browser, "client-id", "nightly-job").await;
    for grant in ["authorization_code", "refresh_token", "client_credentials"] {
        browser
            .find(Locator::Css(&format!("input[name=grant][value={grant}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    type_into(&browser, "client-scopes", "reports:read").await;
    click(&browser, "#add-client").await;
    let secret = browser
        .find(Locator::Id("client-secret"))
        .await
        .expect("the new secret is shown")
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(secret.len() >= 43, "{secret}");
    let issued = api()
        .post(gateway.url("/management/token"))
        .basic_auth("nightly-job", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "reports:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 200, "the console's secret works at once");
    // Shown once: the page again has no secret on it.
    browser
        .goto(&gateway.url("/management/admin/clients"))
        .await
        .unwrap();
    assert!(browser.find(Locator::Id("client-secret")).await.is_err());
    let source = browser.source().await.unwrap();
    assert!(!source.contains(&secret), "the secret is shown only once");
    assert!(text_of(&browser, "table").await.contains("nightly-job"));

    // A rule broken: said on the page, nothing made.
    type_into(&browser, "client-id", "broken").await;
    type_into(&browser, "client-redirects", "https://x.example/cb#fragment").await;
    click(&browser, "#add-client").await;
    let error = text_of(&browser, ".error").await;
    assert!(error.contains("fragment"), "{error}");
    assert!(!text_of(&browser, "table").await.contains("broken"));

    // Changed on its own page: another scope it may ask for.
    browser
        .goto(&gateway.url("/management/admin/clients"))
        .await
        .unwrap();
    click(&browser, "a[href='/management/admin/clients/nightly-job']").await;
    assert_eq!(text_of(&browser, "h1").await, "Client nightly-job");
    let scopes = browser.find(Locator::Id("edit-scopes")).await.unwrap();
    assert_eq!(
        scopes.prop("value").await.unwrap().as_deref(),
        Some("reports:read")
    );
    scopes.clear().await.unwrap();
    scopes.send_keys("reports:read reports:write").await.unwrap();
    click(&browser, "#save-client").await;
    assert!(browser.find(Locator::Css(".notice")).await.is_ok(), "saved");
    let wider = api()
        .post(gateway.url("/management/token"))
        .basic_auth("nightly-job", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "reports:write")])
        .send()
        .await
        .unwrap();
    assert_eq!(wider.status(), 200, "the new scope is asked for at once");
    browser
        .goto(&gateway.url("/management/admin/clients/from-config"))
        .await
        .unwrap();
    assert!(text_of(&browser, "main").await.contains("change it there"));

    // A new secret; the old one stops working.
    browser
        .goto(&gateway.url("/management/admin/clients"))
        .await
        .unwrap();
    click(&browser, "form[action$='/nightly-job/rotate'] button").await;
    let rotated = browser
        .find(Locator::Id("client-secret"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(rotated, secret);
    let old = api()
        .post(gateway.url("/management/token"))
        .basic_auth("nightly-job", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);

    // Deleted, and gone from the table.
    click(&browser, "form[action$='/nightly-job/delete'] button").await;
    assert!(browser.find(Locator::Css(".notice")).await.is_ok(), "done");
    assert!(!text_of(&browser, "table").await.contains("nightly-job"));
    // A phone's width: nothing wider than the screen.
    browser.set_window_size(390, 844).await.unwrap();
    browser
        .goto(&gateway.url("/management/admin/clients"))
        .await
        .unwrap();
    let fits = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true));
}
