//! The sign-in page in a real browser: headless Chromium, driven through
//! chromedriver (WebDriver) with fantoccini. Also writes the README's
//! screenshots (docs/sign-in-*.png) when AUTHGATE_SCREENSHOTS is set.

use crate::common::chromium::*;
use crate::common::*;
use fantoccini::Locator;
use serde_json::json;

/// The failed sign-ins the gateway counted (`/metrics`).
async fn failed_sign_ins(gateway: &Gateway) -> u64 {
    let metrics = api()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("authgate_sign_ins_total{outcome=\"failed\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_person_signs_in_and_out_in_chromium() {
    let Some(driver) = start_chromedriver() else {
        return;
    };
    let upstream = start_upstream().await;
    let toml = config_toml(
        upstream.addr,
        "[pages]\ntitle = \"Sign in to Acme\"\naccent_color = \"#0a7c4a\"\n",
    );
    let gateway = Gateway::start(&toml).await;
    let browser = browser_session(&driver).await;

    // A protected page sends the browser to the sign-in page.
    browser.goto(&gateway.url("/reports/q3")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/management/authorize", "{url}");
    assert_eq!(
        browser
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Sign in to Acme"
    );

    // Accessible: labelled fields, autocomplete, focus on the first field,
    // the error region announced.
    let focused = browser
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("username"));
    for (id, autocomplete) in [("username", "username"), ("password", "current-password")] {
        let field = browser.find(Locator::Id(id)).await.unwrap();
        assert_eq!(
            field.attr("autocomplete").await.unwrap().as_deref(),
            Some(autocomplete)
        );
        let label = browser
            .find(Locator::Css(&format!("label[for={id}]")))
            .await
            .unwrap();
        assert!(!label.text().await.unwrap().is_empty());
    }
    let live = browser.find(Locator::Id("error")).await.unwrap();
    assert_eq!(
        live.attr("aria-live").await.unwrap().as_deref(),
        Some("assertive")
    );

    // A wrong password shows the message and keeps the username.
    type_into(&browser, "username", "alice").await;
    type_into(&browser, "password", "not it").await;
    submit(&browser).await;
    until(
        &browser,
        "const e = document.getElementById('error'); return e ? e.textContent : null",
        json!("Username or password do not match"),
    )
    .await;
    let error = browser
        .find(Locator::Id("error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(error, "Username or password do not match");
    let kept = browser
        .find(Locator::Id("username"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("alice"));
    let focused = browser
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(
        focused,
        json!("password"),
        "focus goes where the person types next"
    );

    // The failure came back by GET (Post/Redirect/Get): reloading posts
    // nothing again, and shows the page without the old message.
    assert_eq!(failed_sign_ins(&gateway).await, 1);
    assert_eq!(
        browser.current_url().await.unwrap().query(),
        Some("rd=%2Freports%2Fq3"),
        "the page's own address, by GET"
    );
    browser.refresh().await.unwrap();
    until(
        &browser,
        "return document.getElementById('error').textContent",
        json!(""),
    )
    .await;
    assert_eq!(failed_sign_ins(&gateway).await, 1, "the reload posted nothing");

    // The right one lands on the page first asked for, with the upstream's answer.
    type_into(&browser, "username", "alice").await;
    type_into(&browser, "password", PASSWORD).await;
    submit(&browser).await;
    until(&browser, "return location.pathname", json!("/reports/q3")).await;
    let body = browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"x-forwarded-user\":\"alice\""), "{body}");

    // Signing out returns to the sign-in page, and the page is closed again.
    browser.goto(&gateway.url("/management/logout")).await.unwrap();
    until(
        &browser,
        "return location.pathname",
        json!("/management/authorize"),
    )
    .await;
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/management/authorize"
    );
    browser.goto(&gateway.url("/reports/q3")).await.unwrap();
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/management/authorize"
    );
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_page_fits_a_phone_and_a_desktop_and_works_without_javascript() {
    let Some(driver) = start_chromedriver() else {
        return;
    };
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream.addr, "")).await;
    let browser = browser_session(&driver).await;
    for (name, width, height) in [("phone", 390, 844), ("desktop", 1280, 800)] {
        browser.set_window_size(width, height).await.unwrap();
        browser.goto(&gateway.url("/management/authorize")).await.unwrap();
        let fits = browser
            .execute(
                "const r = document.querySelector('main').getBoundingClientRect();
                 return [r.left >= 0, r.right <= document.documentElement.clientWidth,
                         document.documentElement.scrollWidth <= document.documentElement.clientWidth]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            fits,
            json!([true, true, true]),
            "{name}: the form fits with no sideways scrolling"
        );
        let png = browser.screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{name}: a real screenshot"
        );
        if std::env::var_os("AUTHGATE_SCREENSHOTS").is_some() {
            std::fs::write(
                format!("{}/docs/sign-in-{name}.png", env!("CARGO_MANIFEST_DIR")),
                &png,
            )
            .unwrap();
        }
    }
    // The page runs no script at all: its CSP allows none, and it has none.
    let scripts = browser
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, json!(0));
    browser.close().await.unwrap();
}
