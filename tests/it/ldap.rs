//! People from a real OpenLDAP directory (slapd, seeded with
//! tests/ldap/seed.ldif): the sign-in form and the password grant check
//! their passwords by binding as them, their groups decide routes, a
//! username can never widen the search, and a directory that stops
//! leaves local users signing in.

use crate::common::ldap::Slapd;
use crate::common::*;

fn gateway_toml(upstream: std::net::SocketAddr, ldap_url: &str, secret_file: &std::path::Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstream]
url = "http://{upstream}"

[auth]
max_failures_per_user = 3

[[users]]
username = "carol"
password_hash = "{hash}"

[[routes]]
path_prefix = "/admin"
url = "http://{upstream}"
allowed_groups = ["admins"]

[[providers]]
id = "ldap"
kind = "ldap"
url = "{ldap_url}"
bind_dn = "cn=authgate,dc=example,dc=com"
bind_password_file = "{secret}"
user_base_dn = "ou=people,dc=example,dc=com"
user_filter = "(uid={{username}})"
group_base_dn = "ou=groups,dc=example,dc=com"
group_filter = "(member={{dn}})"
timeout_secs = 2
"#,
        hash = password_hash(),
        secret = secret_file.display()
    )
}

struct Setup {
    slapd: Slapd,
    gateway: Gateway,
    _secret: tempfile::NamedTempFile,
}

async fn setup() -> Option<Setup> {
    let slapd = Slapd::start()?;
    let upstream = start_upstream().await;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "authgate-bind-pw\n").unwrap();
    let gateway = Gateway::start(&gateway_toml(upstream.addr, &slapd.url(), secret.path())).await;
    Some(Setup {
        slapd,
        gateway,
        _secret: secret,
    })
}

#[tokio::test]
async fn directory_people_sign_in_with_their_groups_and_wrong_passwords_are_refused_and_throttled() {
    let Some(setup) = setup().await else {
        return;
    };
    let gateway = &setup.gateway;
    let alice = browser();
    let signed_in = sign_in(&alice, gateway, "alice", "alice-ldap-pw", "/admin/x").await;
    assert_eq!(signed_in.status(), 303, "{:?}", signed_in.text().await);
    let token = session_token(&signed_in);
    let seen = bearer_json(gateway, "/admin/x", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "ldap:alice");
    assert_eq!(seen["headers"]["x-forwarded-groups"], "admins,staff");
    assert_eq!(seen["headers"]["x-forwarded-email"], "alice@example.com");
    let me = bearer_json(gateway, "/management/me", &token).await;
    assert_eq!(me["user"]["name"], "Alice Liddell");
    assert_eq!(me["user"]["provider"], "ldap");

    // Bob is staff, not admins.
    let bob = password_grant_as(gateway, "bob", "bob-ldap-pw").await;
    let bob = bob["access_token"].as_str().expect("bob's token").to_owned();
    assert_eq!(bearer_status(gateway, "/admin/x", &bob).await, 403);
    assert_eq!(bearer_status(gateway, "/else", &bob).await, 200);

    // A wrong password: refused, counted, then throttled.
    // Spellings the directory reads as one person share one budget.
    for spelling in ["dave", "Dave", "DAVE "] {
        let answer = password_grant_as(gateway, spelling, "not-daves").await;
        assert_eq!(answer["error"], "invalid_grant", "{answer}");
    }
    let answer = password_grant_as(gateway, "dave", "dave-ldap-pw").await;
    assert_eq!(answer["error"], "too_many_requests", "{answer}");
}

#[tokio::test]
async fn a_username_never_widens_the_directory_search() {
    let Some(setup) = setup().await else {
        return;
    };
    let gateway = &setup.gateway;
    for username in [
        "*",
        "al*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice\0",
        "(uid=alice)",
        "\\2a",
    ] {
        let answer = password_grant_as(gateway, username, "alice-ldap-pw").await;
        assert_eq!(answer["error"], "invalid_grant", "{username:?}: {answer}");
    }
    // An empty password would be an unauthenticated bind.
    let answer = api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let answer = password_grant_as(gateway, "alice", "alice-ldap-pw").await;
    assert!(
        answer["access_token"].is_string(),
        "and alice herself still signs in: {answer}"
    );
    // The directory matches names without case: one person, one name here.
    let answer = password_grant_as(gateway, "ALICE", "alice-ldap-pw").await;
    let token = answer["access_token"].as_str().expect("alice, typed in capitals");
    let me = bearer_json(gateway, "/management/me", token).await;
    assert_eq!(me["user"]["username"], "ldap:alice");
}

#[tokio::test]
async fn a_stopped_directory_fails_its_people_clearly_and_leaves_local_users_working() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let answer = password_grant_as(&setup.gateway, "alice", "alice-ldap-pw").await;
    assert!(answer["access_token"].is_string(), "{answer}");

    setup.slapd.stop();
    let response = api()
        .post(setup.gateway.url("/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-ldap-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let page = sign_in(&browser(), &setup.gateway, "alice", "alice-ldap-pw", "/").await;
    assert_eq!(page.status(), 503);
    assert!(page.text().await.unwrap().contains("cannot be reached"));

    // Local users never needed the directory.
    let carol = sign_in(&browser(), &setup.gateway, "carol", PASSWORD, "/").await;
    assert_eq!(carol.status(), 303);

    // Back up: its people sign in again, on new connections.
    setup.slapd.restart();
    let answer = password_grant_as(&setup.gateway, "alice", "alice-ldap-pw").await;
    assert!(answer["access_token"].is_string(), "{answer}");
}

/// The password grant's answer for `username` and `password`, as JSON.
async fn password_grant_as(gateway: &Gateway, username: &str, password: &str) -> serde_json::Value {
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
        .json()
        .await
        .unwrap()
}
