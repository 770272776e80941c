//! authgate as an OpenID Provider, with relying parties nobody here wrote:
//! openid-client (npm) discovers it, signs a person in by the code flow
//! with PKCE and a nonce, validates the ID token, reads userinfo and
//! refreshes; jose checks the same ID token against the JWKS on its own.
//! Also: the two discovery documents agree, the keys' files and cache
//! headers, and what userinfo refuses.

use serde_json::{json, Value};

use crate::common::oidc::run_node;
use crate::common::*;

const RP: &str = "rp";
const RP_SECRET: &str = "rp-secret";
const RP_CALLBACK: &str = "http://127.0.0.1:9/callback";

fn config(upstream: std::net::SocketAddr, extra: &str) -> String {
    config_toml(
        upstream,
        &format!(
            "[[clients]]\nclient_id = \"{RP}\"\nclient_secret_hash = \"{}\"\nredirect_uris = [\"{RP_CALLBACK}\"]\ngrants = [\"authorization_code\", \"refresh_token\"]\n{extra}",
            authgate::hash_password(RP_SECRET)
        ),
    )
}

#[tokio::test]
async fn openid_client_signs_in_checks_the_id_token_reads_userinfo_and_refreshes() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(upstream.addr, "")).await;
    let issuer = gateway.url("");
    let Some(found) = run_node(
        "relying_party.mjs",
        json!({
            "issuer": issuer,
            "client_id": RP,
            "client_secret": RP_SECRET,
            "redirect_uri": RP_CALLBACK,
            "username": "alice",
            "password": PASSWORD,
            "scope": "openid profile email groups",
        }),
    )
    .await
    else {
        return;
    };
    assert!(found.get("error").is_none(), "{found}");
    let claims = &found["claims"];
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], RP);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(
        claims["email_verified"], false,
        "authgate proves no address itself"
    );
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["name"], "alice");
    assert!(claims["groups"].is_array(), "{claims}");
    for claim in ["sub", "nonce", "auth_time", "at_hash", "sid", "iat", "exp"] {
        assert!(!claims[claim].is_null(), "{claim} in {claims}");
    }
    assert!(claims["exp"].as_u64().unwrap() <= claims["iat"].as_u64().unwrap() + 3600);
    assert_eq!(found["header"]["alg"], "RS256");
    assert_eq!(found["header"]["typ"], "JWT");
    // userinfo speaks of the same person, with the same claims.
    let userinfo = &found["userinfo"];
    assert_eq!(userinfo["sub"], claims["sub"]);
    assert_eq!(userinfo["email"], "alice@example.com");
    assert!(userinfo.get("nonce").is_none(), "{userinfo}");
    // A refresh brings a new ID token for the same person and sign-in.
    let refreshed = &found["refreshed_claims"];
    assert_eq!(refreshed["sub"], claims["sub"], "{found}");
    assert_eq!(refreshed["auth_time"], claims["auth_time"]);
    assert_eq!(refreshed["sid"], claims["sid"]);
    // `sub` is stable: another sign-in, the same.
    let again = run_node(
        "relying_party.mjs",
        json!({"issuer": issuer, "client_id": RP, "client_secret": RP_SECRET, "redirect_uri": RP_CALLBACK,
               "username": "alice", "password": PASSWORD, "scope": "openid"}),
    )
    .await
    .unwrap();
    assert_eq!(again["claims"]["sub"], claims["sub"], "{again}");
    assert!(
        again["claims"].get("email").is_none(),
        "no email without the email scope: {again}"
    );
    // And another person's is another.
    let bob = run_node(
        "relying_party.mjs",
        json!({"issuer": issuer, "client_id": RP, "client_secret": RP_SECRET, "redirect_uri": RP_CALLBACK,
               "username": "bob", "password": PASSWORD, "scope": "openid"}),
    )
    .await
    .unwrap();
    assert_ne!(bob["claims"]["sub"], claims["sub"]);
}

#[tokio::test]
async fn the_discovery_documents_agree_and_the_keys_are_published_with_cache_headers() {
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let gateway = Gateway::start(&config(
        upstream.addr,
        &format!(
            "[signing]\nkeys_dir = \"{}\"\nalgorithms = [\"ES256\"]\n",
            keys.display()
        ),
    ))
    .await;
    let get = |path: &str| api().get(gateway.url(path)).send();
    let openid: Value = get("/.well-known/openid-configuration")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oauth: Value = get("/.well-known/oauth-authorization-server")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openid, oauth, "one document at both addresses");
    assert_eq!(openid["jwks_uri"], gateway.url("/.well-known/jwks.json").as_str());
    assert_eq!(
        openid["userinfo_endpoint"],
        gateway.url("/management/userinfo").as_str()
    );
    assert_eq!(
        openid["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    assert_eq!(openid["subject_types_supported"], json!(["public"]));
    assert_eq!(openid["request_uri_parameter_supported"], false);
    let scopes = openid["scopes_supported"].as_array().unwrap();
    assert!(
        scopes.contains(&json!("openid")) && scopes.contains(&json!("groups")),
        "{openid}"
    );

    let answer = get("/.well-known/jwks.json").await.unwrap();
    assert_eq!(answer.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = answer.json().await.unwrap();
    let kinds: Vec<(&str, &str)> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kty"].as_str().unwrap(), k["alg"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.len(), 2, "{jwks}");
    assert!(
        kinds.contains(&("RSA", "RS256")) && kinds.contains(&("EC", "ES256")),
        "{kinds:?}"
    );
    for key in jwks["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none(), "no private part is published: {key}");
    }
    use std::os::unix::fs::PermissionsExt;
    let files: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{file:?}"
        );
    }
    // A restart reads the same keys.
    drop(gateway);
    let again = Gateway::start(&config(
        upstream.addr,
        &format!(
            "[signing]\nkeys_dir = \"{}\"\nalgorithms = [\"ES256\"]\n",
            keys.display()
        ),
    ))
    .await;
    let after: Value = api()
        .get(again.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after, jwks);
}

#[tokio::test]
async fn userinfo_answers_only_a_bearer_token_issued_with_openid() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(upstream.addr, "")).await;
    let plain = password_grant(&gateway.url("/management/token"), "alice").await;
    let refused = bearer_get(&gateway, "/management/userinfo", &plain).await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope"),
        "{:?}",
        refused.headers()
    );
    let anonymous = api()
        .get(gateway.url("/management/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A session cookie is not a bearer token here.
    let browser = browser();
    let signed_in = sign_in(&browser, &gateway, "alice", PASSWORD, "/").await;
    let cookie = session_token(&signed_in);
    let by_cookie = api()
        .get(gateway.url("/management/userinfo"))
        .header("cookie", format!("authgate_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 401);
    // Without openid in the scope, the token endpoint issues no ID token.
    let issued: Value = api()
        .post(gateway.url("/management/token"))
        .basic_auth(RP, Some(RP_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", "profile"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(issued.get("id_token").is_none(), "{issued}");
}
