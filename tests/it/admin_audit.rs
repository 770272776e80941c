//! The admin API's audit log: tokens issued, refreshed and revoked are in
//! it (never a token), and it is filtered by time.

use serde_json::{json, Value};

use crate::admin_api::{call, setup, token, Setup};
use crate::common::*;

#[tokio::test]
async fn tokens_issued_refreshed_and_revoked_are_in_the_audit_log_without_the_tokens() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, _, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/clients",
        &root,
        Some(json!({"client_id": "cli", "confidential": false, "grants": ["password", "refresh_token"]})),
    )
    .await;
    assert_eq!(status, 201);
    let issued: Value = api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "cli"),
            ("username", "carol"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = issued["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{issued}"));
    let refreshed: Value = api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "cli"),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = refreshed["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{refreshed}"));
    let revoked = api()
        .post(gateway.url("/management/revoke"))
        .form(&[("token", access), ("client_id", "cli")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let wanted = ["token.issued", "token.refreshed", "token.revoked"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, audit, _) = call(
            &gateway,
            reqwest::Method::GET,
            "/audit?user=carol&event=token.",
            &root,
            None,
        )
        .await;
        let events = audit["events"].as_array().unwrap().clone();
        let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
        if wanted.iter().all(|w| kinds.contains(w)) {
            let text = serde_json::to_string(&events).unwrap();
            for secret in [issued["access_token"].as_str().unwrap(), refresh, access] {
                assert!(!text.contains(secret), "a token in the audit log: {text}");
            }
            let issued_event = events.iter().find(|e| e["event"] == "token.issued").unwrap();
            assert_eq!(
                (
                    issued_event["client_id"].as_str(),
                    issued_event["detail"].as_str()
                ),
                (Some("cli"), Some("password"))
            );
            assert_eq!(issued_event["address"], "127.0.0.1");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{wanted:?} not all in {kinds:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_audit_log_is_filtered_by_time() {
    let Setup { gateway, _dir } = setup().await;
    let before_it: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 1;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let events = |query: String| {
        let root = root.clone();
        let gateway = &gateway;
        async move {
            let (status, body, _) = call(
                gateway,
                reqwest::Method::GET,
                &format!("/audit?{query}"),
                &root,
                None,
            )
            .await;
            (status, body["events"].as_array().map_or(0, Vec::len))
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let stamp = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let before_it = stamp(before_it);
    while events(format!("user=root&after={before_it}")).await.1 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "root's sign-in never reached the audit log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(events(format!("user=root&before={before_it}")).await, (200, 0));
    assert_eq!(
        events("user=root&after=2099-01-01T00:00:00Z".into()).await,
        (200, 0)
    );
    assert_eq!(
        events("user=root&event=sign_in&before=2099-01-01T00:00:00Z".into())
            .await
            .1,
        1
    );
    assert_eq!(events("after=last%20tuesday".into()).await.0, 400);
}
