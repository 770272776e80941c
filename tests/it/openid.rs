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
const RP_BYE: &str = "http://127.0.0.1:9/bye";

fn config(upstream: std::net::SocketAddr, extra: &str) -> String {
    config_toml(
        upstream,
        &format!(
            "[[clients]]\nclient_id = \"{RP}\"\nclient_secret_hash = \"{}\"\nredirect_uris = [\"{RP_CALLBACK}\"]\n\
             grants = [\"authorization_code\", \"refresh_token\"]\npost_logout_redirect_uris = [\"{RP_BYE}\"]\n{extra}",
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
            "post_logout_redirect_uri": RP_BYE,
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
    assert_eq!(claims["acr"], "password");
    assert_eq!(claims["amr"], json!(["pwd"]), "signed in with a password here");
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
    // Signed out by the app (RP-initiated logout): back to its registered
    // address with its state, and the sign-in's tokens no longer work.
    let ended = &found["ended"];
    assert_eq!(ended["status"], 303, "{ended}");
    assert_eq!(ended["location"], format!("{RP_BYE}?state=bye-state").as_str());
    assert_eq!(ended["refreshAfter"], "invalid_grant", "{ended}");
    assert_eq!(ended["userinfoAfter"], 401, "{ended}");
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
    assert_eq!(openid["subject_types_supported"], json!(["public", "pairwise"]));
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

/// A client's back-channel logout URI that answers `503` to the first
/// `refused` posts (a client restarting), then takes every logout token.
async fn logout_receiver(refused: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (sent, received) = tokio::sync::mpsc::unbounded_channel();
    let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(move |body: String| {
            let (sent, posts) = (sent.clone(), posts.clone());
            async move {
                if posts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < refused {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "restarting");
                }
                let token = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let _ = sent.send(token);
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/backchannel"), received)
}

#[tokio::test]
async fn a_client_is_told_by_back_channel_logout_when_an_admin_ends_the_persons_sessions() {
    let Some(python) = test_python() else {
        return;
    };
    // The client refuses the first try: the gateway tries again.
    let (backchannel, mut received) = logout_receiver(1).await;
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(
        upstream.addr,
        &format!(
            "backchannel_logout_uri = \"{backchannel}\"\n[[users]]\nusername = \"root\"\npassword_hash = \"{}\"\nadmin = true\n\
             [database]\nurl = \"sqlite://{}\"\n",
            password_hash(),
            dir.path().join("authgate.db").display()
        ),
    ))
    .await;
    let issuer = gateway.url("");
    let Some(found) = run_node(
        "relying_party.mjs",
        json!({"issuer": issuer, "client_id": RP, "client_secret": RP_SECRET, "redirect_uri": RP_CALLBACK,
               "username": "alice", "password": PASSWORD, "scope": "openid"}),
    )
    .await
    else {
        return;
    };
    assert!(found.get("error").is_none(), "{found}");
    let root = crate::admin_api::token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, revoked, _) = crate::admin_api::call(
        &gateway,
        reqwest::Method::POST,
        "/users/alice/revoke-sessions",
        &root,
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let token = tokio::time::timeout(std::time::Duration::from_secs(5), received.recv())
        .await
        .expect("a logout token within five seconds")
        .unwrap();
    // Checked by PyJWT against the JWKS, as the client would.
    let out = run_python(
        &python,
        "verify_jwt.py",
        &[
            &gateway.url("/.well-known/jwks.json"),
            &token,
            RP,
            &issuer,
            "logout+jwt",
        ],
    )
    .await
    .unwrap();
    let claims: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(claims["sub"], found["claims"]["sub"], "{claims}");
    assert_eq!(claims["sid"], found["claims"]["sid"], "the sign-in that ended");
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    // Delivered on the second try, and so recorded in the audit log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, audit, _) = crate::admin_api::call(
            &gateway,
            reqwest::Method::GET,
            "/audit?event=logout.backchannel",
            &root,
            None,
        )
        .await;
        let events = audit["events"].as_array().cloned().unwrap_or_default();
        if let Some(sent) = events.iter().find(|e| e["event"] == "logout.backchannel_sent") {
            assert_eq!(sent["client_id"], RP);
            assert_eq!(sent["subject"], "alice");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no logout.backchannel_sent: {audit}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The discovery document says it is supported.
    let meta: Value = api()
        .get(gateway.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(
        meta["end_session_endpoint"],
        gateway.url("/management/end_session").as_str()
    );
}

#[tokio::test]
async fn end_session_never_sends_the_browser_to_an_address_nobody_registered() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(upstream.addr, "")).await;
    let end = |query: String| {
        let url = gateway.url(&format!("/management/end_session?{query}"));
        async move { api().get(url).header("accept", "text/html").send().await.unwrap() }
    };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    // Without a hint or a client, an address is refused.
    let answer = end(format!("post_logout_redirect_uri={}", enc(RP_BYE))).await;
    assert_eq!(answer.status(), 400);
    assert!(answer.headers().get("location").is_none());
    // A client's own, unregistered address: refused.
    let answer = end(format!(
        "client_id={RP}&post_logout_redirect_uri={}",
        enc("https://evil.example/")
    ))
    .await;
    assert_eq!(answer.status(), 400);
    // A hint this gateway did not sign (alg none, another issuer's key).
    let forged = "eyJhbGciOiJub25lIiwia2lkIjoieCJ9.eyJpc3MiOiJ4IiwiYXVkIjoicnAifQ.";
    let answer = end(format!(
        "id_token_hint={forged}&post_logout_redirect_uri={}",
        enc(RP_BYE)
    ))
    .await;
    assert_eq!(answer.status(), 400);
    // The registered address with the client's id: back there, with state.
    let answer = end(format!(
        "client_id={RP}&post_logout_redirect_uri={}&state=s1",
        enc(RP_BYE)
    ))
    .await;
    assert_eq!(answer.status(), 303);
    assert_eq!(
        answer.headers()["location"],
        format!("{RP_BYE}?state=s1").as_str()
    );
    // Nothing asked: the signed-out page, the cookie cleared.
    let answer = end(String::new()).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("authgate_session=;"));
}

#[tokio::test]
async fn a_client_may_have_its_id_tokens_signed_with_es256_or_eddsa() {
    let upstream = start_upstream().await;
    let clients = ["ES256", "EdDSA"]
        .iter()
        .map(|alg| {
            format!(
                "[[clients]]\nclient_id = \"rp-{alg}\"\nclient_secret_hash = \"{}\"\nredirect_uris = [\"{RP_CALLBACK}\"]\n\
                 grants = [\"authorization_code\", \"refresh_token\"]\nid_token_signed_response_alg = \"{alg}\"\n",
                authgate::hash_password(RP_SECRET)
            )
        })
        .collect::<String>();
    let gateway = Gateway::start(&config(
        upstream.addr,
        &format!("{clients}[signing]\nalgorithms = [\"ES256\", \"EdDSA\"]\n"),
    ))
    .await;
    for alg in ["ES256", "EdDSA"] {
        let Some(found) = run_node(
            "relying_party.mjs",
            json!({"issuer": gateway.url(""), "client_id": format!("rp-{alg}"), "client_secret": RP_SECRET,
                   "redirect_uri": RP_CALLBACK, "username": "alice", "password": PASSWORD, "scope": "openid email"}),
        )
        .await
        else {
            return;
        };
        assert!(found.get("error").is_none(), "{alg}: {found}");
        assert_eq!(found["header"]["alg"], alg, "checked by jose against the JWKS");
        assert_eq!(found["claims"]["email"], "alice@example.com");
    }
    // A client whose algorithm [signing] does not offer is refused at start.
    let err = authgate::Config::from_toml_str(&config(
        upstream.addr,
        "[[clients]]\nclient_id = \"x\"\nredirect_uris = [\"https://x.example/cb\"]\nid_token_signed_response_alg = \"ES256\"\n",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("[signing] algorithms"), "{err}");
}

#[tokio::test]
async fn prompt_none_signs_in_silently_from_the_gateway_session_or_answers_login_required() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(upstream.addr, "")).await;
    let authorize = |extra: &str| {
        gateway.url(&format!(
            "/management/authorize?response_type=code&client_id={RP}&redirect_uri={}&scope=openid&state=st&prompt=none\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256{extra}",
            url::form_urlencoded::byte_serialize(RP_CALLBACK.as_bytes()).collect::<String>()
        ))
    };
    let location = |answer: &reqwest::Response| -> url::Url {
        answer.headers()["location"].to_str().unwrap().parse().unwrap()
    };
    let pairs = |url: &url::Url| -> std::collections::HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    };
    // Not signed in here: back to the client, no page.
    let stranger = browser();
    let answer = stranger.get(authorize("")).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    let back = location(&answer);
    assert_eq!(back.as_str().split('?').next().unwrap(), RP_CALLBACK);
    assert_eq!(pairs(&back)["error"], "login_required");
    assert_eq!(pairs(&back)["state"], "st");
    // Signed in at the gateway: a code at once, for that person.
    let alice = browser();
    let signed_in = sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    assert_eq!(signed_in.status(), 303);
    let signed_in_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let answer = alice.get(authorize("&nonce=n1")).send().await.unwrap();
    assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
    let back = location(&answer);
    let code = pairs(&back)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("{back}"));
    let issued: Value = api()
        .post(gateway.url("/management/token"))
        .basic_auth(RP, Some(RP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", RP_CALLBACK),
            ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = issued["id_token"].as_str().unwrap_or_else(|| panic!("{issued}"));
    use base64::Engine;
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nonce"], "n1");
    let auth_time = claims["auth_time"].as_u64().unwrap();
    assert!(
        auth_time <= signed_in_at,
        "auth_time is the first sign-in's, not now: {auth_time} > {signed_in_at}"
    );
    // Older than max_age: login_required.
    let answer = alice.get(authorize("&max_age=0")).send().await.unwrap();
    assert_eq!(pairs(&location(&answer))["error"], "login_required");
    let answer = alice.get(authorize("&max_age=soon")).send().await.unwrap();
    assert_eq!(pairs(&location(&answer))["error"], "invalid_request");
}

#[tokio::test]
async fn a_person_signed_in_here_goes_back_to_an_application_without_a_page_unless_it_asks_for_one() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(upstream.addr, "")).await;
    let authorize = |extra: &str| {
        gateway.url(&format!(
            "/management/authorize?response_type=code&client_id={RP}&redirect_uri={}&scope=openid&state=st\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256{extra}",
            url::form_urlencoded::byte_serialize(RP_CALLBACK.as_bytes()).collect::<String>()
        ))
    };
    // Not signed in: the sign-in page.
    let alice = browser();
    let page = alice.get(authorize("")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"password\""));
    // Signed in at the gateway: straight back to the client with a code.
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    let answer = alice.get(authorize("")).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    let back: url::Url = answer.headers()["location"].to_str().unwrap().parse().unwrap();
    assert_eq!(back.as_str().split('?').next().unwrap(), RP_CALLBACK);
    let pairs: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert!(pairs.contains_key("code"), "{back}");
    assert_eq!(pairs["state"], "st");
    // prompt=login, select_account, or a session older than max_age: the page again.
    for extra in ["&prompt=login", "&prompt=select_account", "&max_age=0"] {
        if extra == "&max_age=0" {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let page = alice.get(authorize(extra)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{extra}");
        assert!(
            page.text().await.unwrap().contains("name=\"password\""),
            "{extra}"
        );
    }
}

#[tokio::test]
async fn a_client_may_get_jwt_access_tokens_for_the_resources_it_may_ask_for() {
    let Some(python) = test_python() else {
        return;
    };
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(
        upstream.addr,
        &format!(
            "[[clients]]\nclient_id = \"api-client\"\nclient_secret_hash = \"{}\"\ngrants = [\"client_credentials\", \"password\"]\n\
             access_token_format = \"jwt\"\nresources = [\"https://api.example\", \"https://reports.example\"]\n",
            authgate::hash_password("api-secret")
        ),
    ))
    .await;
    let token_for = |form: Vec<(&'static str, &'static str)>| {
        let url = gateway.url("/management/token");
        async move {
            let answer = api()
                .post(url)
                .basic_auth("api-client", Some("api-secret"))
                .form(&form)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap())
        }
    };
    let (status, issued) = token_for(vec![
        ("grant_type", "client_credentials"),
        ("resource", "https://api.example"),
    ])
    .await;
    assert_eq!(status, 200, "{issued}");
    let jwt = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt.split('.').count(), 3, "a JWT: {jwt}");
    let verify = |token: String, audience: &'static str| {
        let (python, jwks, issuer) = (
            python.clone(),
            gateway.url("/.well-known/jwks.json"),
            gateway.url(""),
        );
        async move {
            let out = run_python(
                &python,
                "verify_jwt.py",
                &[&jwks, &token, audience, &issuer, "at+jwt"],
            )
            .await;
            out.map(|o| serde_json::from_str::<Value>(o.trim()).unwrap())
        }
    };
    let claims = verify(jwt.clone(), "https://api.example").await.unwrap();
    assert_eq!(claims["client_id"], "api-client");
    assert_eq!(claims["sub"], "api-client");
    assert!(claims["exp"].as_u64() > claims["iat"].as_u64());
    // Another audience's resource server refuses it.
    assert!(verify(jwt.clone(), "https://reports.example").await.is_err());
    // The gateway itself takes it as any token, and refuses it once revoked.
    assert_eq!(bearer_status(&gateway, "/x", &jwt).await, 200);
    let introspected: Value = api()
        .post(gateway.url("/management/introspect"))
        .basic_auth("api-client", Some("api-secret"))
        .form(&[("token", jwt.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    let revoked = api()
        .post(gateway.url("/management/revoke"))
        .basic_auth("api-client", Some("api-secret"))
        .form(&[("token", jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        bearer_status(&gateway, "/x", &jwt).await,
        401,
        "revoked: refused at once"
    );
    // A resource it may not ask for.
    let (status, refused) = token_for(vec![
        ("grant_type", "client_credentials"),
        ("resource", "https://evil.example"),
    ])
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_target")),
        "{refused}"
    );
    // For a person: their stable id, and several audiences.
    let (status, issued) = token_for(vec![
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
        ("resource", "https://api.example"),
        ("resource", "https://reports.example"),
    ])
    .await;
    assert_eq!(status, 200, "{issued}");
    let claims = verify(
        issued["access_token"].as_str().unwrap().to_owned(),
        "https://reports.example",
    )
    .await
    .unwrap();
    assert_eq!(
        claims["aud"],
        json!(["https://api.example", "https://reports.example"])
    );
    assert_ne!(claims["sub"], "alice", "a stable id, not the name");
    // A client with opaque tokens gets no JWT.
    let opaque = password_grant(&gateway.url("/management/token"), "alice").await;
    assert_eq!(opaque.split('.').count(), 1);
}

#[tokio::test]
async fn a_pairwise_client_knows_a_person_by_a_sub_of_its_own_host() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a-secret-of-at-least-thirty-two-characters\n").unwrap();
    let upstream = start_upstream().await;
    let pairwise = |id: &str, host: &str| {
        format!(
            "[[clients]]\nclient_id = \"{id}\"\nclient_secret_hash = \"{}\"\nredirect_uris = [\"http://{host}:9/cb\"]\n\
             grants = [\"authorization_code\", \"refresh_token\"]\nsubject_type = \"pairwise\"\n",
            authgate::hash_password(RP_SECRET)
        )
    };
    let toml = config(
        upstream.addr,
        &format!(
            "{}{}{}",
            pairwise("pw-a", "127.0.0.1"),
            pairwise("pw-b", "127.0.0.1"),
            pairwise("pw-c", "localhost")
        ),
    )
    .replace(
        "[auth]\n",
        &format!("[auth]\nsecret_file = \"{}\"\n", secret.display()),
    );
    let gateway = Gateway::start(&toml).await;
    let sub_at = |client: &'static str, callback: &'static str| {
        let issuer = gateway.url("");
        async move {
            let found = run_node(
                "relying_party.mjs",
                json!({"issuer": issuer, "client_id": client, "client_secret": RP_SECRET, "redirect_uri": callback,
                       "username": "alice", "password": PASSWORD, "scope": "openid"}),
            )
            .await?;
            assert!(found.get("error").is_none(), "{client}: {found}");
            // openid-client checked userinfo's sub against the ID token's.
            assert_eq!(found["userinfo"]["sub"], found["claims"]["sub"]);
            Some(found["claims"]["sub"].as_str().unwrap().to_owned())
        }
    };
    let Some(public) = sub_at(RP, RP_CALLBACK).await else {
        return;
    };
    let a = sub_at("pw-a", "http://127.0.0.1:9/cb").await.unwrap();
    let b = sub_at("pw-b", "http://127.0.0.1:9/cb").await.unwrap();
    let c = sub_at("pw-c", "http://localhost:9/cb").await.unwrap();
    assert_ne!(a, public, "not the public sub");
    assert_eq!(a, b, "one sector, one sub");
    assert_ne!(a, c, "another host, another sub");
    assert_eq!(
        sub_at("pw-a", "http://127.0.0.1:9/cb").await.unwrap(),
        a,
        "stable"
    );
    // Without auth.secret_file, pairwise clients are refused at start.
    let err =
        authgate::Config::from_toml_str(&config(upstream.addr, &pairwise("pw", "127.0.0.1"))).unwrap_err();
    assert!(err.to_string().contains("secret_file"), "{err}");
}

#[tokio::test]
async fn the_implicit_flow_gives_an_id_token_in_the_fragment_with_its_nonce() {
    let Some(python) = test_python() else {
        return;
    };
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config(
        upstream.addr,
        "[[clients]]\nclient_id = \"spa\"\nredirect_uris = [\"http://127.0.0.1:9/spa\"]\ngrants = [\"implicit\"]\n",
    ))
    .await;
    let sign_in_for = |response_type: &'static str, nonce: &'static str| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", response_type)
            .append_pair("client_id", "spa")
            .append_pair("redirect_uri", "http://127.0.0.1:9/spa")
            .append_pair("scope", "openid email")
            .append_pair("state", "st");
        query.append_pair("nonce", nonce);
        let page = gateway.url(&format!("/management/authorize?{}", query.finish()));
        async move {
            let answer = submit_sign_in(&browser(), &page, "alice", PASSWORD).await;
            let location = answer.headers()["location"].to_str().unwrap().to_owned();
            let fragment = location
                .split_once('#')
                .map_or(String::new(), |(_, f)| f.to_owned());
            url::form_urlencoded::parse(fragment.as_bytes())
                .into_owned()
                .collect::<std::collections::HashMap<String, String>>()
        }
    };
    let verify = |token: String| {
        let (python, jwks, issuer) = (
            python.clone(),
            gateway.url("/.well-known/jwks.json"),
            gateway.url(""),
        );
        async move {
            let out = run_python(&python, "verify_jwt.py", &[&jwks, &token, "spa", &issuer, "JWT"])
                .await
                .unwrap();
            serde_json::from_str::<Value>(out.trim()).unwrap()
        }
    };
    // An ID token alone: no access token, and no at_hash.
    let got = sign_in_for("id_token", "n-1").await;
    assert!(!got.contains_key("access_token"), "{got:?}");
    assert_eq!(got["state"], "st");
    let claims = verify(got["id_token"].clone()).await;
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims.get("at_hash").is_none(), "{claims}");
    // With the token: at_hash binds the two.
    let got = sign_in_for("id_token token", "n-2").await;
    let claims = verify(got["id_token"].clone()).await;
    assert_eq!(claims["nonce"], "n-2");
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(got["access_token"].as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    assert_eq!(claims["at_hash"], expected.as_str());
    assert_eq!(bearer_status(&gateway, "/", &got["access_token"]).await, 200);
    // Without a nonce: refused before any page, at the client, in the
    // fragment.
    let answer = browser()
        .get(gateway.url("/management/authorize?response_type=id_token&client_id=spa&scope=openid&state=st"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let location = answer.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/spa#error=invalid_request"),
        "{location}"
    );
}
