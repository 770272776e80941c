//! A Flask app using authlib's OpenID Connect client, driven end to end in
//! headless Chromium: the person signs in at the app through authgate, the
//! app shows the ID token's claims (checked by authlib), and signing out
//! at the app reaches authgate's end_session and the app's back-channel
//! logout URI (the logout token checked by authlib against the JWKS).

use fantoccini::Locator;
use serde_json::{json, Value};

use crate::common::chromium::*;
use crate::common::*;

#[tokio::test]
async fn a_flask_app_signs_a_person_in_through_authgate_and_out_again_in_chromium() {
    let Some(python) = test_python() else {
        return;
    };
    let Some(driver) = start_chromedriver() else {
        return;
    };
    let upstream = start_upstream().await;
    let (gateway_port, app_port) = (free_port(), free_port());
    let app = format!("http://127.0.0.1:{app_port}");
    let gateway = Gateway::start(
        &config_toml(
            upstream.addr,
            &format!(
                "[[clients]]\nclient_id = \"flask\"\nclient_secret_hash = \"{}\"\nredirect_uris = [\"{app}/callback\"]\n\
                 grants = [\"authorization_code\", \"refresh_token\"]\npost_logout_redirect_uris = [\"{app}/bye\"]\n\
                 backchannel_logout_uri = \"{app}/backchannel\"\n",
                authgate::hash_password("flask-secret")
            ),
        )
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{gateway_port}\"")),
    )
    .await;
    let flask = PythonServer::start(
        &python,
        "flask_rp.py",
        &[&gateway.url(""), "flask", "flask-secret", &app_port.to_string()],
    );
    assert_eq!(flask.url, app);

    let browser = browser_session(&driver).await;
    browser.goto(&format!("{app}/")).await.unwrap();
    browser
        .find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &browser,
        "return location.pathname",
        json!("/management/authorize"),
    )
    .await;
    type_into(&browser, "username", "alice").await;
    type_into(&browser, "password", PASSWORD).await;
    submit(&browser).await;
    until(
        &browser,
        "return document.getElementById('claims') !== null",
        json!(true),
    )
    .await;
    let claim = |name: &'static str| {
        let browser = browser.clone();
        async move {
            let text = browser
                .find(Locator::Id(&format!("claim-{name}")))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    assert_eq!(claim("email").await, "alice@example.com");
    assert_eq!(claim("iss").await, gateway.url("").as_str());
    assert_eq!(claim("aud").await, "flask");
    let sid = claim("sid").await;
    assert!(sid.is_string(), "{sid}");

    // Signing out at the app: through authgate, back to the app.
    browser
        .find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&browser, "return location.pathname", json!("/bye")).await;
    let bye = browser
        .find(Locator::Id("bye"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(bye.contains("flask"), "the state came back: {bye}");
    // And the app's back-channel URI was told, for that sign-in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let logouts: Value = api()
            .get(format!("{app}/logouts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if logouts.as_array().unwrap().iter().any(|l| l["sid"] == sid) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no back-channel logout for {sid}: {logouts}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Signed out at the app too: the home page asks to sign in again.
    browser.goto(&format!("{app}/")).await.unwrap();
    assert!(browser.find(Locator::Id("anonymous")).await.is_ok());
}
