//! The admins' list of sessions, in memory and in a real Redis: each
//! session says who, through what, from which address and user agent; an
//! admin ends one of a person's sessions (the others go on) or all of
//! them; what is listed is never a token.

use reqwest::Method;
use serde_json::Value;
use sha2::Digest;

use crate::admin_api::{call, token};
use crate::common::*;

fn config(upstream: std::net::SocketAddr, store: &str) -> String {
    config_toml(
        upstream,
        &format!(
            "[[users]]\nusername = \"root\"\npassword_hash = \"{}\"\nadmin = true\n{store}",
            password_hash()
        ),
    )
}

/// The listed sessions of `user` (everyone's with `None`).
async fn listed(gateway: &Gateway, root: &str, user: Option<&str>) -> Vec<Value> {
    let path = match user {
        Some(user) => format!("/sessions?user={user}"),
        None => "/sessions".to_owned(),
    };
    let (status, body, _) = call(gateway, Method::GET, &path, root, None).await;
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

async fn sessions_are_listed_and_ended(gateway: &Gateway) {
    let root = token(gateway, "root", PASSWORD, Some("authgate:admin")).await;
    // Alice in a browser with its user agent, and by the password grant.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Mozilla/5.0 (test) authgate-sessions/1")
        .build()
        .unwrap();
    let signed_in = sign_in(&browser, gateway, "alice", PASSWORD, "/").await;
    let in_browser = session_token(&signed_in);
    let by_api = password_grant(&gateway.url("/management/token"), "alice").await;
    let bob = password_grant(&gateway.url("/management/token"), "bob").await;

    let everyone = listed(gateway, &root, None).await;
    let names: Vec<&str> = everyone.iter().map(|s| s["username"].as_str().unwrap()).collect();
    for name in ["alice", "bob", "root"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let text = serde_json::to_string(&everyone).unwrap();
    for token in [&in_browser, &by_api, &bob, &root] {
        assert!(!text.contains(token.as_str()), "a token is listed");
    }
    let alice = listed(gateway, &root, Some("alice")).await;
    assert_eq!(alice.len(), 2, "{alice:?}");
    let browser_session = alice
        .iter()
        .find(|s| s["user_agent"] == "Mozilla/5.0 (test) authgate-sessions/1")
        .unwrap_or_else(|| panic!("the browser's user agent in {alice:?}"));
    assert_eq!(browser_session["address"], "127.0.0.1");
    assert!(browser_session["started_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(browser_session["last_seen_at"].as_u64() >= browser_session["started_at"].as_u64());

    // One ended: only that one.
    let id = browser_session["id"].as_str().unwrap();
    let (status, _, _) = call(gateway, Method::DELETE, &format!("/sessions/{id}"), &root, None).await;
    assert_eq!(status, 204);
    assert_eq!(bearer_status(gateway, "/", &in_browser).await, 401);
    assert_eq!(bearer_status(gateway, "/", &by_api).await, 200);
    let (status, problem, kind) =
        call(gateway, Method::DELETE, &format!("/sessions/{id}"), &root, None).await;
    assert_eq!(
        (status, kind.as_str()),
        (404, "application/problem+json"),
        "{problem}"
    );
    let (status, _, _) = call(gateway, Method::DELETE, "/sessions/not-hex", &root, None).await;
    assert_eq!(status, 404);
    // Not the session making the call: that one signs out instead.
    let own: String = sha2::Sha256::digest(root.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (status, problem, _) = call(gateway, Method::DELETE, &format!("/sessions/{own}"), &root, None).await;
    assert_eq!(status, 409, "{problem}");
    // All of a person's.
    let (status, ended, _) = call(gateway, Method::POST, "/users/alice/revoke-sessions", &root, None).await;
    assert_eq!((status, ended["revoked"].as_u64()), (200, Some(1)), "{ended}");
    assert!(listed(gateway, &root, Some("alice")).await.is_empty());
    assert_eq!(
        bearer_status(gateway, "/", &bob).await,
        200,
        "bob's session goes on"
    );
    let (status, _, _) = call(gateway, Method::GET, "/sessions?limit=0", &root, None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_admin_lists_and_ends_sessions_kept_in_memory() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(upstream.addr, "")).await;
    sessions_are_listed_and_ended(&gateway).await;
}

#[tokio::test]
async fn an_admin_lists_and_ends_sessions_kept_in_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let upstream = start_upstream().await;
    let store = format!(
        "[tokens]\nstore = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"ag*[x]:\"\n",
        redis.url()
    );
    let gateway = Gateway::start(&config(upstream.addr, &store)).await;
    sessions_are_listed_and_ended(&gateway).await;
}
