//! `AuthLayer` inside someone else's server: the axum example, served on a
//! real socket, and a hand-built tower stack.

#[path = "../../examples/axum_app.rs"]
mod axum_app;
#[path = "../../examples/hyper_server.rs"]
mod hyper_server;

use crate::common::*;

#[tokio::test]
async fn the_layer_guards_an_axum_app() {
    let toml = format!(
        "[upstream]\nbuiltin = \"whoami\"\n[auth]\npublic_paths = [\"/health\"]\n[[users]]\nusername = \"carol\"\npassword_hash = \"{}\"\n",
        password_hash()
    );
    let config = authgate::Config::from_toml_str(&toml).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum_app::app(config).unwrap()).await });
    let url = |path: &str| format!("http://{addr}{path}");

    let client = api();
    assert_eq!(
        client
            .get(url("/health"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let refused = client.get(url("/")).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    let browser = browser();
    let asked = browser.get(url("/")).send().await.unwrap();
    assert_eq!(asked.status(), 302);
    let signed_in = submit_sign_in(&browser, &url("/management/authorize?rd=/"), "carol", PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    let hello = browser.get(url("/")).send().await.unwrap().text().await.unwrap();
    assert!(hello.starts_with("hello, carol!"), "{hello}");
    assert!(hello.contains("Authorization header present: true"), "{hello}");
}

#[tokio::test]
async fn the_layer_guards_a_plain_hyper_server() {
    let toml = format!(
        "[upstream]\nbuiltin = \"whoami\"\n[[users]]\nusername = \"dora\"\npassword_hash = \"{}\"\n",
        password_hash()
    );
    let config = authgate::Config::from_toml_str(&toml).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_server::serve(listener, config));
    let url = |path: &str| format!("http://{addr}{path}");
    assert_eq!(api().get(url("/")).send().await.unwrap().status(), 401);
    let browser = browser();
    let signed_in = submit_sign_in(&browser, &url("/management/authorize?rd=/"), "dora", PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    let hello = browser.get(url("/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(hello, "hello from hyper, dora\n");
}

/// An axum app with its own `/metrics`, `/healthz` and `/readyz`, behind
/// `layer`, on a real socket; its address.
async fn app_with_its_own_operations_paths(layer: authgate::AuthLayer) -> std::net::SocketAddr {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(|| async { "the app's metrics" }))
        .route("/healthz", get(|| async { "the app's health" }))
        .route("/readyz", get(|| async { "the app's readiness" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn the_layer_never_shadows_the_apps_own_operations_paths_unless_asked() {
    let config = authgate::Config::builder()
        .user("erin", password_hash())
        .build()
        .unwrap();
    let addr = app_with_its_own_operations_paths(authgate::AuthLayer::new(config.clone()).unwrap()).await;
    let token = password_grant(&format!("http://{addr}/management/token"), "erin").await;
    for (path, body) in [
        ("/metrics", "the app's metrics"),
        ("/healthz", "the app's health"),
        ("/readyz", "the app's readiness"),
    ] {
        let url = format!("http://{addr}{path}");
        assert_eq!(
            api().get(&url).send().await.unwrap().status(),
            401,
            "{path}: the app's, so signed in"
        );
        let answer = api().get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), body, "{path}");
    }

    // Turned on, the layer answers them itself, without sign-in.
    let layer = authgate::AuthLayer::new(config)
        .unwrap()
        .with_operations_endpoints();
    let addr = app_with_its_own_operations_paths(layer).await;
    let metrics = api().get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("# TYPE authgate_requests counter"), "{text}");
    let ready: serde_json::Value = api()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn a_layer_may_require_a_second_factor_for_the_part_of_an_app_it_wraps() {
    let plain = authgate::Config::from_toml_str(&format!(
        "[upstream]\nbuiltin = \"whoami\"\n[[users]]\nusername = \"carol\"\npassword_hash = \"{}\"\n",
        password_hash()
    ))
    .unwrap();
    let refused = authgate::AuthLayer::new(plain).unwrap().requiring_second_factor();
    assert!(
        refused.err().unwrap().to_string().contains("second_factor"),
        "no one could pass without second factors"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secret"),
        "embedding-tests-secret-0123456789abcdef",
    )
    .unwrap();
    let config = authgate::Config::from_toml_str(&format!(
        "[upstream]\nbuiltin = \"whoami\"\n[database]\nurl = \"sqlite://{}\"\n[auth]\nsecret_file = \"{}\"\nsecond_factor = \"optional\"\n\
         [[users]]\nusername = \"carol\"\npassword_hash = \"{}\"\n",
        dir.path().join("authgate.db").display(),
        dir.path().join("secret").display(),
        password_hash()
    ))
    .unwrap();
    let layer = authgate::AuthLayer::new(config)
        .unwrap()
        .requiring_second_factor()
        .unwrap();
    let app = axum::Router::new()
        .route("/admin", axum::routing::get(|| async { "the admin page" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let token = password_grant(&format!("http://{addr}/management/token"), "carol").await;
    let answer = api()
        .get(format!("http://{addr}/admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401, "a token of one factor");
    let challenge = answer.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("insufficient_user_authentication") && challenge.contains("acr_values=\"mfa\""),
        "{challenge}"
    );
}
