//! `[[routes]]`: several upstreams at once, by host and path prefix, each
//! with its own policy; first match wins; `[upstream]` is the default.

use crate::common::*;
use serde_json::Value;

async fn get(gateway: &Gateway, path: &str, host: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let mut request = api().get(gateway.url(path));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn routes_pick_the_upstream_and_the_policy_first_match_wins() {
    let (default, docs, admin) = (
        start_upstream().await,
        start_upstream().await,
        start_upstream().await,
    );
    let routes = format!(
        r#"
[[routes]]
path_prefix = "/docs"
url = "http://{docs}"
policy = "public"

[[routes]]
host = "admin.example"
url = "http://{admin}"
allowed_users = ["alice"]

[[routes]]
path_prefix = "/api/v2"
url = "http://{admin}"
strip_prefix = true

[[routes]]
path_prefix = "/api"
url = "http://{docs}"
"#,
        docs = docs.addr,
        admin = admin.addr
    );
    let gateway = Gateway::start(&config_toml(default.addr, &routes)).await;
    let alice = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let bob = session_token(&sign_in(&browser(), &gateway, "bob", PASSWORD, "/").await);

    // Public route: no sign-in, its own upstream, the path as asked.
    let (status, seen) = get(&gateway, "/docs/intro", None, None).await;
    assert_eq!((status, seen["path"].as_str()), (200, Some("/docs/intro")));
    assert_eq!(docs.hits(), 1);
    // Not a segment boundary: the default route, which needs sign-in.
    assert_eq!(get(&gateway, "/docsx", None, None).await.0, 401);

    // A host route open to alice only.
    let (status, seen) = get(&gateway, "/panel", Some("admin.example:8443"), Some(&alice)).await;
    assert_eq!(
        (status, seen["headers"]["x-forwarded-user"].as_str()),
        (200, Some("alice"))
    );
    assert_eq!(admin.hits(), 1);
    assert_eq!(
        get(&gateway, "/panel", Some("ADMIN.example"), Some(&bob)).await.0,
        403,
        "bob is not allowed"
    );
    assert_eq!(get(&gateway, "/panel", Some("admin.example"), None).await.0, 401);
    assert_eq!(admin.hits(), 1, "refused requests never reach it");

    // A prefix stripped before forwarding; the longer prefix listed first wins.
    let (status, seen) = get(&gateway, "/api/v2/items?page=2", None, Some(&bob)).await;
    assert_eq!(
        (status, seen["path"].as_str(), seen["query"].as_str()),
        (200, Some("/items"), Some("page=2"))
    );
    let (_, seen) = get(&gateway, "/api/v1/items", None, Some(&bob)).await;
    assert_eq!(seen["path"], "/api/v1/items", "not stripped where not configured");
    assert_eq!(docs.hits(), 2);

    // Everything else: the default upstream.
    let (status, _) = get(&gateway, "/elsewhere", None, Some(&bob)).await;
    assert_eq!(status, 200);
    assert_eq!(default.hits(), 1);
}

#[test]
fn a_route_naming_an_unknown_user_is_refused_with_its_line() {
    let toml = format!(
        "[upstream]\nbuiltin = \"whoami\"\n[[users]]\nusername = \"alice\"\npassword_hash = \"{}\"\n\n[[routes]]\nurl = \"http://127.0.0.1:9\"\nallowed_users = [\"mallory\"]\n",
        password_hash()
    );
    let err = authgate::Config::from_toml_str(&toml).unwrap_err();
    assert_eq!(err.location().unwrap().line, 9, "{err}");
    assert!(err.message().contains("mallory"), "{err}");
}
