//! OAuth clients kept in the database, through the admin API: a new
//! client's secret is shown once and works at the token endpoint at once;
//! a rotated secret ends the old one; changed redirect URIs are what
//! authorize accepts; a deleted client's tokens stop working; clients of
//! config.toml are listed read-only; what the rules of `[[clients]]`
//! refuse is a problem JSON, and nothing is written.

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin_api::{call, setup, token, Setup};
use crate::common::*;

/// A client-credentials grant: the status and the body.
async fn client_token(gateway: &Gateway, id: &str, secret: &str, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let answer = api()
        .post(gateway.url("/management/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_client_made_in_the_api_works_at_once_and_its_secret_rotates() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, made, _) = call(
        &gateway,
        Method::POST,
        "/clients",
        &root,
        Some(json!({"client_id": "reports", "grants": ["client_credentials"], "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["client"]["source"], "database");
    assert_eq!(made["client"]["confidential"], true);
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "{secret}");

    // The secret is never shown again, nor its hash.
    let (_, listed, _) = call(&gateway, Method::GET, "/clients", &root, None).await;
    let text = listed.to_string();
    assert!(!text.contains(&secret) && !text.contains("argon2"), "{text}");
    let sources: Vec<(String, String)> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["client_id"].as_str().unwrap().to_owned(),
                c["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        sources.contains(&("ops-bot".into(), "config".into())),
        "{sources:?}"
    );
    assert!(
        sources.contains(&("reports".into(), "database".into())),
        "{sources:?}"
    );

    let (status, issued) = client_token(&gateway, "reports", &secret, Some("read")).await;
    assert_eq!(status, 200, "{issued}");
    let first = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_status(&gateway, "/", &first).await, 200);
    // Only the scopes it was given.
    let (status, refused) = client_token(&gateway, "reports", &secret, Some("write")).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_scope")));
    let (status, _) = client_token(&gateway, "reports", "not-the-secret", None).await;
    assert_eq!(status, 401);

    // Rotated: the old secret (already verified once, so remembered) is
    // refused; the new one works; the token issued before still works.
    let (status, rotated, _) = call(
        &gateway,
        Method::POST,
        "/clients/reports/rotate-secret",
        &root,
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let (status, _) = client_token(&gateway, "reports", &secret, None).await;
    assert_eq!(status, 401, "the old secret still works after a rotation");
    let (status, _) = client_token(&gateway, "reports", &new_secret, None).await;
    assert_eq!(status, 200);
    assert_eq!(bearer_status(&gateway, "/", &first).await, 200);

    // A client that may ask for any scope is not an admin client.
    let (status, issued) = client_token(&gateway, "reports", &new_secret, Some("authgate:admin")).await;
    assert_eq!(status, 400, "{issued}");
    let (status, open, _) = call(
        &gateway,
        Method::POST,
        "/clients",
        &root,
        Some(json!({"client_id": "any-scope", "grants": ["client_credentials"]})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, issued) = client_token(
        &gateway,
        "any-scope",
        open["client_secret"].as_str().unwrap(),
        Some("authgate:admin"),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let (status, problem, _) = call(
        &gateway,
        Method::GET,
        "/users",
        issued["access_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(status, 403, "{problem}");

    // Deleted: its tokens end at once, and it can no longer get one.
    let (status, _, _) = call(&gateway, Method::DELETE, "/clients/reports", &root, None).await;
    assert_eq!(status, 204);
    assert_eq!(bearer_status(&gateway, "/", &first).await, 401);
    let (status, _) = client_token(&gateway, "reports", &new_secret, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = call(&gateway, Method::GET, "/clients/reports", &root, None).await;
    assert_eq!(status, 404);

    // A client named like a person: deleting it ends its tokens, never
    // the person's sessions.
    let (_, carol_client, _) = call(
        &gateway,
        Method::POST,
        "/clients",
        &root,
        Some(json!({"client_id": "carol", "grants": ["client_credentials"]})),
    )
    .await;
    let (_, issued) = client_token(
        &gateway,
        "carol",
        carol_client["client_secret"].as_str().unwrap(),
        None,
    )
    .await;
    let carol_client_token = issued["access_token"].as_str().unwrap().to_owned();
    let carol = token(&gateway, "carol", PASSWORD, None).await;
    let (status, _, _) = call(&gateway, Method::DELETE, "/clients/carol", &root, None).await;
    assert_eq!(status, 204);
    assert_eq!(bearer_status(&gateway, "/", &carol_client_token).await, 401);
    assert_eq!(
        bearer_status(&gateway, "/", &carol).await,
        200,
        "the person's session goes on"
    );

    // The audit log is written in batches: wait for the last one.
    let wanted = [
        "admin.client_added",
        "admin.client_secret_rotated",
        "admin.client_deleted",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, audit, _) = call(&gateway, Method::GET, "/audit?event=admin.client", &root, None).await;
        let events: Vec<String> = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect();
        if wanted.iter().all(|w| events.iter().any(|e| e == w)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{wanted:?} not all in {events:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redirect_uris_changed_in_the_api_are_what_authorize_accepts() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, made, _) = call(
        &gateway,
        Method::POST,
        "/clients",
        &root,
        Some(json!({"client_id": "spa", "confidential": false, "redirect_uris": ["https://old.example/cb"], "grants": ["authorization_code"]})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert!(made["client_secret"].is_null());
    let authorize = |uri: &str| {
        let url = gateway.url(&format!(
            "/management/authorize?response_type=code&client_id=spa&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&redirect_uri={}",
            form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
        ));
        async move { browser().get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(authorize("https://old.example/cb").await, 200);
    assert_eq!(authorize("https://new.example/cb").await, 400);
    let (status, changed, _) = call(
        &gateway,
        Method::PATCH,
        "/clients/spa",
        &root,
        Some(json!({"redirect_uris": ["https://new.example/cb"]})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["redirect_uris"], json!(["https://new.example/cb"]));
    assert_eq!(authorize("https://new.example/cb").await, 200);
    assert_eq!(authorize("https://old.example/cb").await, 400);
    // A public client has no secret to rotate.
    let (status, problem, _) = call(&gateway, Method::POST, "/clients/spa/rotate-secret", &root, None).await;
    assert_eq!(status, 409, "{problem}");
}

#[tokio::test]
async fn what_the_rules_of_clients_refuse_is_a_problem_and_nothing_is_written() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let refused = [
        (
            json!({"client_id": "a", "redirect_uris": ["not a url"]}),
            422,
            "redirect URI",
        ),
        (
            json!({"client_id": "b", "redirect_uris": ["https://x.example/cb#frag"]}),
            422,
            "fragment",
        ),
        (
            json!({"client_id": "c", "grants": ["telepathy"]}),
            422,
            "not a grant",
        ),
        (
            json!({"client_id": "d", "confidential": false, "grants": ["client_credentials"]}),
            422,
            "client_credentials",
        ),
        (
            json!({"client_id": "e", "grants": ["authorization_code"]}),
            422,
            "redirect_uris",
        ),
        (
            json!({"client_id": "f g", "grants": ["client_credentials"]}),
            422,
            "visible ASCII",
        ),
        (
            json!({"client_id": "h", "grants": ["client_credentials"], "scopes": ["a b"]}),
            422,
            "scope",
        ),
        (
            json!({"client_id": "i", "grants": ["client_credentials"], "cors_origins": ["https://x.example/"]}),
            422,
            "origin",
        ),
        (
            json!({"client_id": "ops-bot", "grants": ["client_credentials"]}),
            409,
            "config.toml",
        ),
        (json!({"client_id": "j", "secret": "mine"}), 400, "secret"),
    ];
    for (body, want, words) in refused {
        let (status, problem, kind) =
            call(&gateway, Method::POST, "/clients", &root, Some(body.clone())).await;
        assert_eq!(status, want, "{body} → {problem}");
        assert_eq!(kind, "application/problem+json");
        assert!(
            problem["detail"].as_str().unwrap().contains(words),
            "{body} → {problem}"
        );
    }
    let (_, listed, _) = call(&gateway, Method::GET, "/clients", &root, None).await;
    assert_eq!(listed["clients"].as_array().unwrap().len(), 1, "{listed}");

    let made = json!({"client_id": "twice", "grants": ["client_credentials"]});
    let (status, answer, _) = call(&gateway, Method::POST, "/clients", &root, Some(made.clone())).await;
    assert_eq!(status, 201, "{answer}");
    let (status, problem, _) = call(&gateway, Method::POST, "/clients", &root, Some(made)).await;
    assert_eq!(status, 409, "{problem}");
    // A change that breaks the rules leaves the client as it was.
    let (status, problem, _) = call(
        &gateway,
        Method::PATCH,
        "/clients/twice",
        &root,
        Some(json!({"grants": ["authorization_code"]})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (_, kept, _) = call(&gateway, Method::GET, "/clients/twice", &root, None).await;
    assert_eq!(kept["grants"], json!(["client_credentials"]));
    let (status, problem, _) = call(
        &gateway,
        Method::PATCH,
        "/clients/ops-bot",
        &root,
        Some(json!({"scopes": null})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _, _) = call(&gateway, Method::DELETE, "/clients/ops-bot", &root, None).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_client_of_the_database_may_have_jwt_access_tokens_and_oidc_settings() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, made, _) = call(
        &gateway,
        Method::POST,
        "/clients",
        &root,
        Some(json!({
            "client_id": "resource-client",
            "grants": ["client_credentials"],
            "access_token_format": "jwt",
            "resources": ["https://api.example"],
            "id_token_signed_response_alg": "RS256",
            "post_logout_redirect_uris": ["https://app.example/bye"],
            "backchannel_logout_uri": "https://app.example/backchannel",
        })),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["client"]["access_token_format"], "jwt");
    assert_eq!(made["client"]["resources"], json!(["https://api.example"]));
    assert_eq!(
        made["client"]["backchannel_logout_uri"],
        "https://app.example/backchannel"
    );
    let secret = made["client_secret"].as_str().unwrap();
    let answer = api()
        .post(gateway.url("/management/token"))
        .basic_auth("resource-client", Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", "https://api.example"),
        ])
        .send()
        .await
        .unwrap();
    let issued: Value = answer.json().await.unwrap();
    let jwt = issued["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{issued}"));
    assert_eq!(jwt.split('.').count(), 3, "a JWT");
    assert_eq!(bearer_status(&gateway, "/", jwt).await, 200);
    // What cannot work is refused: an http back-channel off loopback,
    // pairwise subjects without auth.secret_file, an unknown format.
    for (body, words) in [
        (
            json!({"client_id": "x1", "grants": ["client_credentials"], "backchannel_logout_uri": "http://app.example/bc"}),
            "https",
        ),
        (
            json!({"client_id": "x2", "redirect_uris": ["https://a.example/cb"], "subject_type": "pairwise"}),
            "secret_file",
        ),
        (
            json!({"client_id": "x3", "grants": ["client_credentials"], "access_token_format": "paseto"}),
            "opaque",
        ),
    ] {
        let (status, problem, _) = call(&gateway, Method::POST, "/clients", &root, Some(body.clone())).await;
        assert_eq!(status, 422, "{body} → {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(words),
            "{body} → {problem}"
        );
    }
}
