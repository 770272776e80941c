//! `X-Authgate-Jwt`: an upstream (Python, PyJWT) that trusts nothing but
//! the signed identity verifies it offline against the JWKS, across a key
//! rotation; with `send_session_token = false` it never sees a credential
//! that works at the gateway; a client's own `X-Authgate-Jwt` never
//! reaches it; the JWT is made once per session and upstream, not per
//! request.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The Python upstream of `tests/python/jwt_upstream.py`, keeping the
/// JWKS a second: the test stands in for the five minutes a rotated key
/// is published before it signs.
fn jwt_upstream(python: &std::path::Path, jwks: &str, issuer: &str, audience: &str) -> PythonServer {
    PythonServer::start(python, "jwt_upstream.py", &[jwks, issuer, audience, "1"])
}

/// What the upstream saw of a request with `headers`.
async fn seen(gateway: &Running, client: &reqwest::Client, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client.get(gateway.url("/app"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.unwrap();
    (
        answer.status().as_u16(),
        answer.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_upstream_verifies_the_identity_jwt_offline_across_a_key_rotation() {
    let Some(python) = test_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let audience = "https://app.example";
    let upstream = jwt_upstream(
        &python,
        &format!("{issuer}/.well-known/jwks.json"),
        &issuer,
        audience,
    );
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_toml(upstream.url.parse::<url::Url>().unwrap().socket_addrs(|| None).unwrap()[0], "")
            .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
            .replace(
                "timeout_secs = 2\n",
                &format!("timeout_secs = 2\nsend_session_token = false\nidentity_jwt = true\nidentity_jwt_audience = \"{audience}\"\n"),
            )
            + &format!("\n[signing]\nkeys_dir = \"{}\"\n", dir.path().join("keys").display()),
    )
    .unwrap();
    let gateway = start_binary(&config);

    // A browser session: the upstream verifies who it is, and sees neither
    // the session cookie nor an Authorization.
    let alice_browser = browser();
    let signed_in = submit_sign_in(
        &alice_browser,
        &gateway.url("/management/authorize?rd=%2F"),
        "alice",
        PASSWORD,
    )
    .await;
    assert_eq!(signed_in.status(), 303);
    let (status, first) = seen(&gateway, &alice_browser, &[]).await;
    assert_eq!(status, 200, "{first}");
    let claims = &first["claims"];
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], audience);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["preferred_username"], "alice");
    assert!(claims["groups"].is_array());
    assert_eq!(claims["acr"], "password", "how the person signed in: {claims}");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]), "{claims}");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 300, "{lifetime} s");
    assert!(first["authorization"].is_null(), "{first}");
    let cookie = first["cookie"].as_str().unwrap_or("");
    assert!(
        !cookie.contains("authgate_session"),
        "the session cookie reached the upstream: {cookie}"
    );

    // A bearer token and a forged JWT of the client's: neither passes on.
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    let bearer = format!("Bearer {token}");
    let (status, by_bearer) = seen(
        &gateway,
        &api(),
        &[
            ("authorization", &bearer),
            ("x-authgate-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0."),
            ("X_Authgate_Jwt", "forged"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{by_bearer}");
    assert!(by_bearer["authorization"].is_null(), "{by_bearer}");
    assert_eq!(by_bearer["jwt_fields"], 1, "only the gateway's: {by_bearer}");
    assert_eq!(by_bearer["claims"]["sub"], claims["sub"]);
    // Made once per session and upstream: the same JWT again.
    let (_, again) = seen(&gateway, &alice_browser, &[]).await;
    assert_eq!(again["claims"]["iat"], claims["iat"], "not signed per request");
    let old_kid = first["kid"].as_str().unwrap().to_owned();

    // A rotation: the new key is published at once and signs five
    // minutes later (here: its file says it was made five minutes ago);
    // alice's JWT, of the old key, still verifies (it stays published).
    let keys = dir.path().join("keys");
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["keys", "rotate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reload = || {
        gateway.signal("HUP");
        gateway.wait_for_log("configuration reloaded", Duration::from_secs(5));
    };
    reload();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let carol_token = password_grant(&gateway.url("/management/token"), "bob").await;
    let (_, before) = seen(
        &gateway,
        &api(),
        &[("authorization", &format!("Bearer {carol_token}"))],
    )
    .await;
    assert_eq!(
        before["kid"],
        old_kid.as_str(),
        "a new key does not sign before it could be fetched: {before}"
    );
    let newest = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let created: u64 = newest
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .1
        .parse()
        .unwrap();
    std::fs::rename(&newest, keys.join(format!("RS256-{}.pem", created - 300))).unwrap();
    reload();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let bob_token = password_grant(&gateway.url("/management/token"), "bob").await;
    let (status, bob) = seen(
        &gateway,
        &api(),
        &[("authorization", &format!("Bearer {bob_token}"))],
    )
    .await;
    assert_eq!(status, 200, "{bob}");
    assert_ne!(bob["kid"], old_kid.as_str(), "the new key signs");
    assert_eq!(bob["claims"]["preferred_username"], "bob");
    let (status, still) = seen(&gateway, &alice_browser, &[]).await;
    assert_eq!(status, 200, "{still}");
    assert_eq!(still["kid"], old_kid.as_str());
    let jwks: Value = api()
        .get(gateway.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "old and new: {jwks}");

    // Signed out: nothing reaches the upstream.
    let (status, _) = seen(&gateway, &api(), &[]).await;
    assert_eq!(status, 401);
}

#[path = "../../examples/verify_identity_jwt.rs"]
mod verify_identity_jwt;

#[tokio::test]
async fn the_rust_example_upstream_verifies_the_identity_jwt_and_refuses_a_forged_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let verifier = std::sync::Arc::new(verify_identity_jwt::Verifier::new(
        &issuer,
        &format!("http://{app_addr}"),
    ));
    tokio::spawn(async move { axum::serve(listener, verify_identity_jwt::app(verifier)).await });
    let gateway = Gateway::start(
        &config_toml(app_addr, "")
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace(
                "timeout_secs = 2\n",
                "timeout_secs = 2\nidentity_jwt = true\nsend_session_token = false\n",
            ),
    )
    .await;
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    let answer = bearer_get(&gateway, "/", &token).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["claims"]["email"], "alice@example.com", "{body}");
    assert_eq!(body["claims"]["aud"], format!("http://{app_addr}").as_str());
    // Straight to the app, a forged JWT (another key, or none) is refused.
    let forged = api()
        .get(format!("http://{app_addr}/"))
        .header(
            "x-authgate-jwt",
            "eyJhbGciOiJub25lIiwia2lkIjoieCJ9.eyJzdWIiOiJyb290In0.",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}
