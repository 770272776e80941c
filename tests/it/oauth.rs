//! The OAuth 2.0 API, driven by a client library nobody here wrote (the
//! `oauth2` crate) against a gateway on a real socket, and by hand-built
//! requests for what a library will not send.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::common::*;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl, PkceCodeChallenge,
    RedirectUrl, RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername, RevocationUrl, Scope,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;

const WEB_SECRET: &str = "web-secret-value";
const WEB_CALLBACK: &str = "http://127.0.0.1:3000/callback";
const SPA_CALLBACK: &str = "http://127.0.0.1:3000/spa";

fn web_secret_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| authgate::hash_password(WEB_SECRET))
}

async fn setup() -> (Upstream, Gateway) {
    let upstream = start_upstream().await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[upstream]
url = "http://{upstream}"
[tokens]
ttl_secs = 3600
[[users]]
username = "alice"
password_hash = "{hash}"
email = "alice@example.com"
name = "Alice Liddell"
admin = true
[[users]]
username = "bob"
password_hash = "{hash}"
[[clients]]
client_id = "web"
client_secret_hash = "{secret}"
redirect_uris = ["{WEB_CALLBACK}"]
scopes = ["read", "write"]
cors_origins = ["http://127.0.0.1:3000"]
[[clients]]
client_id = "spa"
redirect_uris = ["{SPA_CALLBACK}"]
[[clients]]
client_id = "legacy"
redirect_uris = ["{SPA_CALLBACK}"]
allow_plain_pkce = true
[[clients]]
client_id = "resource"
client_secret_hash = "{secret}"
grants = ["client_credentials"]
"#,
        upstream = upstream.addr,
        hash = password_hash(),
        secret = web_secret_hash(),
    );
    let gateway = Gateway::start(&toml).await;
    (upstream, gateway)
}

type Client = oauth2::basic::BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
>;

fn oauth_client(gateway: &Gateway, id: &str, secret: Option<&str>, redirect: &str) -> Client {
    let mut client = BasicClient::new(ClientId::new(id.into()))
        .set_auth_uri(AuthUrl::new(gateway.url("/management/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(gateway.url("/management/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap())
        .set_revocation_url(RevocationUrl::new(gateway.url("/management/revoke")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(gateway.url("/management/introspect")).unwrap());
    if let Some(secret) = secret {
        client = client.set_client_secret(ClientSecret::new(secret.into()));
    }
    client
}

/// A token for `username` by the password grant, through the library.
async fn password_token(
    client: &Client,
    username: &str,
    scope: Option<&str>,
) -> oauth2::basic::BasicTokenResponse {
    let (username, password) = (
        ResourceOwnerUsername::new(username.into()),
        ResourceOwnerPassword::new(PASSWORD.into()),
    );
    let mut request = client.exchange_password(&username, &password);
    if let Some(scope) = scope {
        request = request.add_scope(Scope::new(scope.into()));
    }
    request.request_async(&http()).await.unwrap()
}

/// The HTTP client the library uses (redirects off, as oauth2 requires).
fn http() -> reqwest::Client {
    api()
}

/// Opens `auth_url` in a "browser", signs in as `username` on the page,
/// and answers where the gateway sent the browser.
async fn sign_in_at(auth_url: &str, username: &str) -> url::Url {
    let response = submit_sign_in(&browser(), auth_url, username, PASSWORD).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// What the upstream sees for a request with `token`, or the status.
async fn through_proxy(gateway: &Gateway, token: &str) -> Result<Value, u16> {
    let response = api()
        .get(gateway.url("/resource"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => Ok(response.json().await.unwrap()),
        status => Err(status),
    }
}

/// A code for `client` (with PKCE S256), and the verifier.
async fn code_for(
    client: &Client,
    username: &str,
    scope: Option<&str>,
) -> (String, oauth2::PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    if let Some(scope) = scope {
        request = request.add_scope(Scope::new(scope.into()));
    }
    let (url, csrf) = request.url();
    let back = sign_in_at(url.as_str(), username).await;
    let query = query(&back);
    assert_eq!(&query["state"], csrf.secret());
    (query["code"].clone(), verifier)
}

#[tokio::test]
async fn code_flow_with_pkce_for_a_confidential_client() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "web", Some(WEB_SECRET), WEB_CALLBACK);
    let (code, verifier) = code_for(&client, "alice", Some("read")).await;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .unwrap();
    assert_eq!(token.token_type(), &oauth2::basic::BasicTokenType::Bearer);
    assert!(token.refresh_token().is_some());
    let scopes: Vec<String> = token.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, ["read"]);
    let expires = token.expires_in().unwrap().as_secs();
    assert!((3590..=3600).contains(&expires), "{expires}");

    let seen = through_proxy(&gateway, token.access_token().secret())
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
    assert_eq!(seen["headers"]["x-forwarded-scope"], "read");
}

#[tokio::test]
async fn code_flow_for_a_public_client_needs_pkce() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "spa", None, SPA_CALLBACK);
    let (code, verifier) = code_for(&client, "bob", None).await;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .unwrap();
    assert!(through_proxy(&gateway, token.access_token().secret())
        .await
        .is_ok());

    // Without a challenge the authorization request goes back with an error.
    let (url, _) = client.authorize_url(CsrfToken::new_random).url();
    let response = browser().get(url.as_str()).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(SPA_CALLBACK));
    assert_eq!(query(&back)["error"], "invalid_request");

    // plain is refused unless the client allows it.
    let plain = "a".repeat(43);
    let url = gateway.url(&format!(
        "/management/authorize?response_type=code&client_id=spa&code_challenge={plain}&code_challenge_method=plain&state=s"
    ));
    let response = browser().get(&url).send().await.unwrap();
    let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back)["error"], "invalid_request");
    assert_eq!(query(&back)["state"], "s");
    let url = url.replace("client_id=spa", "client_id=legacy");
    assert_eq!(browser().get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn password_grant_and_client_credentials_through_the_library() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "web", Some(WEB_SECRET), WEB_CALLBACK);
    let token = password_token(&client, "alice", Some("write")).await;
    assert!(token.refresh_token().is_some());
    assert_eq!(
        through_proxy(&gateway, token.access_token().secret())
            .await
            .unwrap()["headers"]["x-forwarded-scope"],
        "write"
    );

    let machine = oauth_client(&gateway, "resource", Some(WEB_SECRET), WEB_CALLBACK);
    let token = machine
        .exchange_client_credentials()
        .request_async(&http())
        .await
        .unwrap();
    assert!(
        token.refresh_token().is_none(),
        "no refresh token for client credentials"
    );
    let seen = through_proxy(&gateway, token.access_token().secret())
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "resource");

    // A client may not ask for a scope it is not configured with.
    let web_cc = client
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&http())
        .await
        .unwrap_err();
    match web_cc {
        oauth2::RequestTokenError::ServerResponse(err) => {
            assert_eq!(err.error(), &oauth2::basic::BasicErrorResponseType::InvalidScope)
        }
        other => panic!("expected invalid_scope, got {other:?}"),
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_retired_refresh_token_revokes_its_family() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "web", Some(WEB_SECRET), WEB_CALLBACK);
    let (code, verifier) = code_for(&client, "alice", None).await;
    let first = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .unwrap();
    assert_eq!(
        first.scopes().unwrap().len(),
        2,
        "no scope asked: the client's configured scopes"
    );
    let refresh1 = first.refresh_token().unwrap().clone();
    let second = client
        .exchange_refresh_token(&refresh1)
        .request_async(&http())
        .await
        .unwrap();
    let refresh2 = second.refresh_token().unwrap().clone();
    assert_ne!(refresh1.secret(), refresh2.secret(), "rotated");
    assert!(through_proxy(&gateway, second.access_token().secret())
        .await
        .is_ok());

    // The retired token again: refused, and the whole family goes.
    let replay = client
        .exchange_refresh_token(&refresh1)
        .request_async(&http())
        .await
        .unwrap_err();
    assert!(
        matches!(replay, oauth2::RequestTokenError::ServerResponse(ref e)
        if e.error() == &oauth2::basic::BasicErrorResponseType::InvalidGrant),
        "{replay:?}"
    );
    assert_eq!(
        through_proxy(&gateway, second.access_token().secret()).await,
        Err(401)
    );
    assert_eq!(
        through_proxy(&gateway, first.access_token().secret()).await,
        Err(401)
    );
    assert!(client
        .exchange_refresh_token(&refresh2)
        .request_async(&http())
        .await
        .is_err());
}

#[tokio::test]
async fn two_concurrent_refreshes_do_not_both_succeed() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "web", Some(WEB_SECRET), WEB_CALLBACK);
    for _ in 0..3 {
        let token = password_token(&client, "bob", None).await;
        let refresh = RefreshToken::new(token.refresh_token().unwrap().secret().clone());
        let (one, two) = (http(), http());
        let (a, b) = tokio::join!(
            client.exchange_refresh_token(&refresh).request_async(&one),
            client.exchange_refresh_token(&refresh).request_async(&two),
        );
        assert!(!(a.is_ok() && b.is_ok()), "both concurrent refreshes succeeded");
    }
}

#[tokio::test]
async fn revoke_and_introspect_through_the_library() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "web", Some(WEB_SECRET), WEB_CALLBACK);
    let resource = oauth_client(&gateway, "resource", Some(WEB_SECRET), WEB_CALLBACK);
    let token = password_token(&client, "alice", Some("read")).await;
    let access = token.access_token().clone();

    let info = resource.introspect(&access).request_async(&http()).await.unwrap();
    assert!(info.active());
    assert_eq!(info.username(), Some("alice"));
    assert_eq!(info.client_id().map(|c| c.as_str()), Some("web"));
    assert_eq!(info.scopes().unwrap()[0].as_str(), "read");
    assert!(info.exp().is_some());

    // The library refuses to revoke over plain http (InsecureUrl), so the
    // RFC 7009 request is built by hand, as the library would send it.
    assert!(client
        .revoke_token(StandardRevocableToken::AccessToken(access.clone()))
        .is_err());
    let revoked = api()
        .post(gateway.url("/management/revoke"))
        .basic_auth("web", Some(WEB_SECRET))
        .form(&[
            ("token", access.secret().as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        through_proxy(&gateway, access.secret()).await,
        Err(401),
        "revoked at once, through the proxy"
    );
    let info = resource.introspect(&access).request_async(&http()).await.unwrap();
    assert!(!info.active());

    // RFC 7009: an unknown token is still a 200; a wrong secret is not.
    let unknown = api()
        .post(gateway.url("/management/revoke"))
        .basic_auth("web", Some(WEB_SECRET))
        .form(&[("token", "nothing")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 200);
    let wrong = api()
        .post(gateway.url("/management/revoke"))
        .basic_auth("web", Some("wrong"))
        .form(&[("token", "nothing")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // A token issued to a client cannot be revoked by another one.
    let other = password_token(&client, "bob", None).await;
    let refused = api()
        .post(gateway.url("/management/revoke"))
        .form(&[
            ("token", other.access_token().secret().as_str()),
            ("client_id", "spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    assert!(through_proxy(&gateway, other.access_token().secret())
        .await
        .is_ok());
}

#[tokio::test]
async fn discovery_lists_what_really_works() {
    let (_upstream, gateway) = setup().await;
    let meta: Value = api()
        .get(gateway.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = format!("http://{}", gateway.addr);
    assert_eq!(meta["issuer"], issuer);
    assert_eq!(meta["token_endpoint"], format!("{issuer}/management/token"));
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{issuer}/management/authorize")
    );
    assert_eq!(meta["revocation_endpoint"], format!("{issuer}/management/revoke"));
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{issuer}/management/introspect")
    );
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256", "plain"])
    );
    for grant in [
        "authorization_code",
        "password",
        "client_credentials",
        "refresh_token",
    ] {
        assert!(
            meta["grant_types_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == grant),
            "{grant}"
        );
    }
    // The clients' scopes, and OpenID Connect's, which any client may ask.
    assert_eq!(
        meta["scopes_supported"],
        serde_json::json!(["read", "write", "openid", "profile", "email", "groups"])
    );
}

// ---- hand-built requests: what a library will not send ----

async fn post_token(gateway: &Gateway, form: &[(&str, &str)]) -> (u16, Value) {
    let response = api()
        .post(gateway.url("/management/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "spa", None, SPA_CALLBACK);
    let (code, verifier) = code_for(&client, "bob", None).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code.as_str()),
        ("redirect_uri", SPA_CALLBACK),
        ("code_verifier", verifier.secret().as_str()),
    ];
    let (status, first) = post_token(&gateway, &form).await;
    assert_eq!(status, 200, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert!(through_proxy(&gateway, access).await.is_ok());
    let (status, again) = post_token(&gateway, &form).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        through_proxy(&gateway, access).await,
        Err(401),
        "tokens from a replayed code are revoked"
    );
    let refreshed = post_token(
        &gateway,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refreshed.0, 400, "the refresh token went too");
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_redirect_uri_and_verifier() {
    let (_upstream, gateway) = setup().await;
    let spa = oauth_client(&gateway, "spa", None, SPA_CALLBACK);
    // (what differs from the authorization request, client, redirect_uri, a wrong verifier?)
    let cases = [
        ("another client", "legacy", SPA_CALLBACK, false),
        (
            "another redirect_uri",
            "spa",
            "http://127.0.0.1:3000/elsewhere",
            false,
        ),
        ("a wrong verifier", "spa", SPA_CALLBACK, true),
    ];
    for (what, client_id, redirect_uri, wrong_verifier) in cases {
        let (code, verifier) = code_for(&spa, "bob", None).await;
        let verifier = if wrong_verifier {
            PkceCodeChallenge::new_random_sha256().1
        } else {
            verifier
        };
        let (status, body) = post_token(
            &gateway,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("code", &code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier.secret()),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{what}"
        );
        if wrong_verifier {
            assert!(body["error_description"]
                .as_str()
                .unwrap()
                .contains("code_verifier"));
        }
    }
}

#[tokio::test]
async fn app_services_clients_keep_working() {
    let (_upstream, gateway) = setup().await;
    // A JSON body with no Content-Type, as the App Services SDKs sent it.
    let response = api()
        .post(gateway.url("/management/token"))
        .body(format!(
            r#"{{"grant_type":"password","username":"alice","password":"{PASSWORD}","ttl":86400000}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86400);
    let user = &body["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["name"], "Alice Liddell");
    assert_eq!(user["activated"], true);
    assert_eq!(user["disabled"], false);
    let uuid = user["uuid"].as_str().unwrap().to_owned();
    assert_eq!(uuid.len(), 36);
    let token = body["access_token"].as_str().unwrap().to_owned();

    // GET with the query string, as App Services allowed.
    let body: Value = api()
        .get(gateway.url(&format!(
            "/management/token?grant_type=password&username=alice&password={}",
            PASSWORD.replace(' ', "+")
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["uuid"], uuid.as_str(), "the uuid is stable");

    // /management/me with the token in the query, as App Services clients send it.
    let me: Value = api()
        .get(gateway.url(&format!("/management/me?access_token={token}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["access_token"], token.as_str());
    assert_eq!(me["user"]["uuid"], uuid.as_str());
    let left = me["expires_in"].as_u64().unwrap();
    assert!((86390..=86400).contains(&left), "{left}");

    // ttl: 0 means the maximum; above the maximum is refused with the maximum.
    let (status, body) = post_token(
        &gateway,
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", PASSWORD),
            ("ttl", "0"),
        ],
    )
    .await;
    assert_eq!((status, body["expires_in"].as_u64()), (200, Some(7 * 86400)));
    let (status, body) = post_token(
        &gateway,
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", PASSWORD),
            ("ttl", "604800001"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    assert!(
        body["error_description"].as_str().unwrap().contains("604800000"),
        "{body}"
    );

    // Same uuid from another gateway process on the same config.
    let (_u2, other) = setup().await;
    let (_, body) = post_token(
        &other,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(body["user"]["uuid"], uuid.as_str());
}

#[tokio::test]
async fn client_authentication_errors_have_their_rfc_codes() {
    let (_upstream, gateway) = setup().await;
    let response = api()
        .post(gateway.url("/management/token"))
        .basic_auth("web", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_client");

    type Form<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Form, u16, &str); 7] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "x"),
            ],
            401,
            "invalid_client",
        ),
        (
            &[("grant_type", "client_credentials"), ("client_id", "web")],
            401,
            "invalid_client",
        ),
        (
            &[("grant_type", "client_credentials"), ("client_id", "spa")],
            401,
            "invalid_client",
        ),
        (&[("grant_type", "magic")], 400, "unsupported_grant_type"),
        (&[], 400, "invalid_request"),
        (
            &[
                ("grant_type", "password"),
                ("grant_type", "password"),
                ("username", "bob"),
                ("password", PASSWORD),
            ],
            400,
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "password"),
                ("username", "bob"),
                ("password", "wrong"),
            ],
            400,
            "invalid_grant",
        ),
    ];
    for (form, status, error) in cases {
        let (got, body) = post_token(&gateway, form).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{form:?}: {body}"
        );
        assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // A client limited to client_credentials may not use the password grant.
    let response = api()
        .post(gateway.url("/management/token"))
        .basic_auth("resource", Some(WEB_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    // Broken JSON is a 400, not a 500.
    let response = api()
        .post(gateway.url("/management/token"))
        .header("content-type", "application/json")
        .body("{\"grant_type\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn users_revoke_their_own_tokens_and_admins_anyones() {
    let (_upstream, gateway) = setup().await;
    let token_url = gateway.url("/management/token");
    let alice = password_grant(&token_url, "alice").await;
    let bob = password_grant(&token_url, "bob").await;
    let bob2 = password_grant(&token_url, "bob").await;

    let response = api()
        .put(gateway.url("/management/users/alice/revoketokens"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "bob may not revoke alice's tokens");
    assert!(through_proxy(&gateway, &alice).await.is_ok());

    let response = api()
        .post(gateway.url(&format!("/management/users/bob/revoketoken?token={bob2}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(through_proxy(&gateway, &bob2).await, Err(401));
    assert!(through_proxy(&gateway, &bob).await.is_ok());

    let response = api()
        .put(gateway.url("/management/users/bob/revoketokens"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "alice is an administrator");
    assert_eq!(through_proxy(&gateway, &bob).await, Err(401));
    assert!(through_proxy(&gateway, &alice).await.is_ok());

    let response = api()
        .put(gateway.url("/management/users/bob/revoketokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let (_upstream, gateway) = setup().await;
    let preflight = |origin: &'static str| {
        api()
            .request(reqwest::Method::OPTIONS, gateway.url("/management/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("http://127.0.0.1:3000").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://127.0.0.1:3000"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let response = api()
        .post(gateway.url("/management/token"))
        .header("origin", "http://127.0.0.1:3000")
        .form(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://127.0.0.1:3000"
    );
}

#[tokio::test]
async fn refresh_and_code_tokens_never_authenticate_a_request() {
    let (_upstream, gateway) = setup().await;
    let client = oauth_client(&gateway, "web", Some(WEB_SECRET), WEB_CALLBACK);
    let (code, _verifier) = code_for(&client, "alice", None).await;
    assert_eq!(
        through_proxy(&gateway, &code).await,
        Err(401),
        "a code is not an access token"
    );
    let token = password_token(&client, "alice", None).await;
    let refresh = token.refresh_token().unwrap().secret();
    assert_eq!(
        through_proxy(&gateway, refresh).await,
        Err(401),
        "a refresh token is not an access token"
    );
    // And presenting an access token as a refresh token does not disturb it.
    let (status, _) = post_token(
        &gateway,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token.access_token().secret()),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(through_proxy(&gateway, token.access_token().secret())
        .await
        .is_ok());
}

#[tokio::test]
async fn the_app_services_one_liner_works_as_curl_sends_it() {
    let (_upstream, gateway) = setup().await;
    let json = format!(r#"{{"grant_type":"password","username":"alice","password":"{PASSWORD}"}}"#);
    // curl -d labels any body a form.
    let response = api()
        .post(gateway.url("/management/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(json.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice", "{body}");
    // And curl itself, as the README writes it.
    if require_tools(&["curl"]) {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-s", &gateway.url("/management/token"), "-d", &json]);
        let output = run_command(curl).await;
        let body: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(body["token_type"], "Bearer", "{body}");
        assert_eq!(body["user"]["username"], "alice");
    }
    // A form that only starts with a brace is still a form.
    let (status, body) = post_token(
        &gateway,
        &[
            ("{x", "1"),
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(
        (status, body["token_type"].as_str()),
        (200, Some("Bearer")),
        "{body}"
    );
}

/// A secret with the characters some clients send unencoded in HTTP
/// Basic.
const PLUS_SECRET: &str = "a+b%c/d=e+";

#[tokio::test]
async fn a_secret_with_a_plus_works_from_clients_that_do_not_form_encode_basic() {
    let upstream = start_upstream().await;
    let hash = authgate::hash_password(PLUS_SECRET);
    let toml = config_toml(
        upstream.addr,
        &format!("[[clients]]\nclient_id = \"plus\"\nclient_secret_hash = \"{hash}\"\ngrants = [\"client_credentials\"]\n"),
    )
    .replace("[auth]\n", "[auth]\nmax_failures_per_user = 3\n");
    let gateway = Gateway::start(&toml).await;
    let token_url = gateway.url("/management/token");
    let grant = |credentials: String| {
        let url = token_url.clone();
        async move {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
            let response = api()
                .post(url)
                .header("authorization", format!("Basic {basic}"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    // As RFC 6749 §2.3.1 says (form-encoded), and as sent raw.
    let encoded: String = url::form_urlencoded::byte_serialize(PLUS_SECRET.as_bytes()).collect();
    assert_eq!(grant(format!("plus:{encoded}")).await, 200);
    assert_eq!(grant(format!("plus:{PLUS_SECRET}")).await, 200);
    // Two real libraries that send it raw.
    if let Some(python) = test_python() {
        let printed = run_python(
            &python,
            "client_credentials.py",
            &[&token_url, "plus", PLUS_SECRET],
        )
        .await
        .unwrap();
        let tokens: Value = serde_json::from_str(&printed).unwrap();
        for library in ["authlib", "requests_oauthlib"] {
            let token = tokens[library]["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("{library}: {tokens}"));
            let seen = bearer_json(&gateway, "/seen", token).await;
            assert_eq!(
                seen["headers"]["authorization"],
                format!("Bearer {token}"),
                "{library}"
            );
        }
    }
    // A wrong secret is still wrong, and counts.
    for _ in 0..3 {
        assert_eq!(grant("plus:a b%c/d=e ".to_owned()).await, 401);
    }
    assert_eq!(
        grant(format!("plus:{PLUS_SECRET}")).await,
        429,
        "throttled like any client"
    );
}
