//! The operations view: `/metrics` checked against the traffic sent,
//! `/healthz` and `/readyz`, request ids, and JSON logs carrying them.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

/// `name{labels} value` lines of a Prometheus text exposition.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn metrics(gateway: &Gateway) -> HashMap<String, f64> {
    let response = api().get(gateway.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    samples(&response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_the_traffic_sent() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream.addr, "")).await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    assert_eq!(
        sign_in(&browser(), &gateway, "alice", "wrong", "/")
            .await
            .status(),
        401
    );
    for _ in 0..3 {
        assert_eq!(bearer_status(&gateway, "/x", &token).await, 200);
    }
    assert_eq!(api().get(gateway.url("/x")).send().await.unwrap().status(), 401);
    assert_eq!(
        api().get(gateway.url("/public/a")).send().await.unwrap().status(),
        200
    );
    assert_eq!(bearer_status(&gateway, "/slow", &token).await, 504);
    let out = api()
        .post(gateway.url("/management/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);

    let m = metrics(&gateway).await;
    let get = |k: &str| m.get(k).copied().unwrap_or_else(|| panic!("no {k} in {m:#?}"));
    assert_eq!(
        get(r#"authgate_requests_total{route="authenticated",status="200"}"#),
        3.0
    );
    assert_eq!(
        get(r#"authgate_requests_total{route="authenticated",status="504"}"#),
        1.0
    );
    assert_eq!(
        get(r#"authgate_requests_total{route="refused",status="401"}"#),
        1.0
    );
    assert_eq!(
        get(r#"authgate_requests_total{route="public",status="200"}"#),
        1.0
    );
    assert_eq!(get(r#"authgate_sign_ins_total{outcome="succeeded"}"#), 1.0);
    assert_eq!(get(r#"authgate_sign_ins_total{outcome="failed"}"#), 1.0);
    assert_eq!(get(r#"authgate_upstream_errors_total{kind="timeout"}"#), 1.0);
    assert_eq!(get("authgate_tokens_issued_total"), 1.0);
    assert_eq!(get("authgate_tokens_revoked_total"), 1.0);
    assert_eq!(get("authgate_tokens_live"), 0.0);
    assert_eq!(get("authgate_store_errors_total"), 0.0);
    assert_eq!(
        get(r#"authgate_request_duration_seconds_count{route="authenticated"}"#),
        4.0
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream.addr, "")).await;
    let health: Value = api()
        .get(gateway.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = api().get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(upstream.hits(), 0, "answered by the gateway, not the upstream");
}

#[tokio::test]
async fn every_request_has_an_id_forwarded_upstream_and_kept_from_trusted_proxies_only() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream.addr, "")).await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let response = api()
        .get(gateway.url("/x"))
        .bearer_auth(&token)
        .header("X-Request-Id", "forged-by-client")
        .send()
        .await
        .unwrap();
    let echoed = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let seen: Value = response.json().await.unwrap();
    let forwarded = seen["headers"]["x-request-id"].as_str().unwrap();
    assert_eq!(forwarded, echoed, "the upstream and the client see the same id");
    assert_ne!(forwarded, "forged-by-client");
    let other = bearer_json(&gateway, "/x", &token).await;
    assert_ne!(other["headers"]["x-request-id"], forwarded, "ids are unique");

    let trusting = Gateway::start(
        &config_toml(upstream.addr, "")
            .replace("[server]\n", "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n"),
    )
    .await;
    let token = session_token(&sign_in(&browser(), &trusting, "alice", PASSWORD, "/").await);
    let seen: Value = api()
        .get(trusting.url("/x"))
        .bearer_auth(&token)
        .header("X-Request-Id", "from-the-edge-42")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-request-id"], "from-the-edge-42");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_on_every_line() {
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authgate.toml");
    let text = config_toml(upstream.addr, "[log]\nformat = \"json\"\n")
        .replace("[server]\n", "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    std::fs::write(&config, text).unwrap();
    let running = start_binary(&config);
    let response = api()
        .post(running.url("/management/token"))
        .header("X-Request-Id", "trace-me-7")
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<Value> = running
        .log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["request_id"] == "trace-me-7")
        .collect();
    assert!(lines.len() >= 2, "the failure and the access line: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "authgate::access" && l["status"] == 400),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("wrong username"))),
        "{lines:#?}"
    );
    let every_value =
        running.log_lines().join("\n") + &lines.iter().map(Value::to_string).collect::<String>();
    assert!(!every_value.contains("\"wrong\""), "no password in the log");
}
