//! Signing in through outside OpenID Connect providers: the real
//! oidc-provider (in headless Chromium and with a plain HTTP client), two
//! providers and local users on one page, and a hostile provider whose
//! every trick must end without a session.

use fantoccini::Locator;
use serde_json::json;

use crate::common::chromium::*;
use crate::common::github::{self, GithubStandIn};
use crate::common::oidc::{set_cookie, through_provider, to_callback, NodeProvider};
use crate::common::*;

/// A real provider with people of its own, registered for a gateway on
/// `gateway_port` as provider `id`.
fn real_provider(id: &str, gateway_port: u16, people: serde_json::Value) -> Option<NodeProvider> {
    let base = format!("http://127.0.0.1:{gateway_port}");
    NodeProvider::start(
        "provider.mjs",
        json!({
            "port": 0,
            "clients": [{
                "client_id": "authgate",
                "client_secret": format!("{id}-secret"),
                "redirect_uris": [format!("{base}/management/callback/{id}")],
                "post_logout_redirect_uris": [format!("{base}/")],
                "backchannel_logout_uri": format!("{base}/management/backchannel-logout/{id}"),
                "backchannel_logout_session_required": true,
                "token_endpoint_auth_method": "client_secret_basic"
            }],
            "users": people
        }),
    )
}

fn alice_and_bob() -> serde_json::Value {
    json!([
        {"sub": "u-alice", "password": "alice-pw", "email": "alice@corp.example", "email_verified": true,
         "preferred_username": "alice", "name": "Alice Liddell", "groups": ["staff", "admins"]},
        {"sub": "u-bob", "password": "bob-pw", "email": "bob@corp.example", "email_verified": true,
         "preferred_username": "bob", "name": "Bob", "groups": ["staff"]},
        {"sub": "u-mal", "password": "mal-pw", "email": "bob@corp.example", "email_verified": false,
         "preferred_username": "mal", "groups": []}
    ])
}

/// A `[[providers]]` entry for an oidc-provider started by [`real_provider`].
fn provider_toml(id: &str, display_name: &str, issuer: &str, extra: &str) -> String {
    format!(
        r#"
[[providers]]
id = "{id}"
kind = "oidc"
display_name = "{display_name}"
issuer = "{issuer}"
client_id = "authgate"
client_secret = "{id}-secret"
scopes = ["openid", "email", "profile", "groups"]
username_claim = "preferred_username"
groups_claim = "groups"
{extra}
"#
    )
}

/// A gateway on `port` in front of `upstream`, with a local user `carol`,
/// `/admin` open to the group `admins` only, and `providers`.
fn gateway_toml(port: u16, upstream: std::net::SocketAddr, providers: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[upstream]
url = "http://{upstream}"
timeout_secs = 5

[[users]]
username = "carol"
password_hash = "{hash}"
groups = ["admins"]

[[routes]]
path_prefix = "/admin"
url = "http://{upstream}"
allowed_groups = ["admins"]

[[clients]]
client_id = "app"
redirect_uris = ["http://127.0.0.1:3000/callback"]
{providers}
"#,
        hash = password_hash()
    )
}

/// A real provider `corp` with alice and bob, and a gateway in front of
/// the test upstream that offers it as `display_name`.
async fn corp_and_gateway(display_name: &str) -> Option<(NodeProvider, Gateway)> {
    let port = free_port();
    let corp = real_provider("corp", port, alice_and_bob())?;
    let upstream = start_upstream().await;
    let providers = provider_toml("corp", display_name, &corp.issuer, "");
    let gateway = Gateway::start(&gateway_toml(port, upstream.addr, &providers)).await;
    Some((corp, gateway))
}

#[tokio::test]
async fn a_person_signs_in_through_a_real_openid_provider_in_chromium() {
    let Some(driver) = start_chromedriver() else {
        return;
    };
    let Some((corp, gateway)) = corp_and_gateway("Corp SSO").await else {
        return;
    };
    let browser = browser_session(&driver).await;

    browser.goto(&gateway.url("/admin/reports?q=1")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/management/authorize", "{url}");
    // The local form and one button per provider, on one page.
    browser
        .find(Locator::Id("password"))
        .await
        .expect("the password form");
    let button = browser
        .find(Locator::LinkText("Sign in with Corp SSO"))
        .await
        .expect("the provider's button");
    button.click().await.unwrap();

    // The provider's own login page.
    until(
        &browser,
        "return location.pathname.startsWith('/interaction/')",
        json!(true),
    )
    .await;
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&corp.issuer));
    type_into(&browser, "login", "alice").await;
    type_into(&browser, "password", "alice-pw").await;
    submit(&browser).await;

    // Back at the page first asked for, through the upstream.
    until(&browser, "return location.pathname", json!("/admin/reports")).await;
    let seen: serde_json::Value = serde_json::from_str(
        &browser
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(seen["path"], "/admin/reports");
    assert_eq!(seen["headers"]["x-forwarded-user"], "corp:alice");
    assert_eq!(seen["headers"]["x-forwarded-preferred-username"], "alice");
    assert_eq!(seen["headers"]["x-forwarded-email"], "alice@corp.example");
    assert_eq!(seen["headers"]["x-forwarded-groups"], "admins,staff");
    drop(browser);
    assert!(
        corp.log().contains("/token"),
        "the code was redeemed at the provider"
    );
}

#[tokio::test]
async fn two_providers_and_local_users_sign_in_different_people_on_one_page() {
    let port = free_port();
    let Some(corp) = real_provider("corp", port, alice_and_bob()) else {
        return;
    };
    let partner_people = json!([{"sub": "p-dora", "password": "dora-pw", "email": "dora@partner.example",
        "email_verified": true, "preferred_username": "dora", "groups": ["partners"]}]);
    let partner = real_provider("partner", port, partner_people).unwrap();
    let upstream = start_upstream().await;
    let providers = provider_toml("corp", "Corp SSO", &corp.issuer, "")
        + &provider_toml("partner", "Partner ID", &partner.issuer, "");
    let gateway = Gateway::start(&gateway_toml(port, upstream.addr, &providers)).await;

    let page = browser()
        .get(gateway.url("/management/authorize?rd=%2Fadmin"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    let corp_at = html.find("Sign in with Corp SSO").expect("corp's button");
    let partner_at = html.find("Sign in with Partner ID").expect("partner's button");
    assert!(corp_at < partner_at, "buttons in config order");
    assert!(
        html.contains("autocomplete=\"current-password\""),
        "and the local form"
    );

    // Each signs a different person in, with their own groups.
    let start = |id: &str| gateway.url(&format!("/management/authorize?provider={id}&rd=%2Fadmin%2Fx"));
    let alice = browser();
    let back = through_provider(&alice, &start("corp"), "alice", "alice-pw").await;
    assert_eq!(back.status(), 303, "{:?}", back.text().await);
    assert_eq!(back.headers()["location"], "/admin/x");
    let alice_token = set_cookie(&back, "authgate_session").expect("a session");
    let seen = bearer_json(&gateway, "/admin/x", &alice_token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "corp:alice");

    let dora = browser();
    let back = through_provider(&dora, &start("partner"), "dora", "dora-pw").await;
    let dora_token = set_cookie(&back, "authgate_session").expect("a session");
    let seen = bearer_json(&gateway, "/anything", &dora_token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "partner:dora");
    assert_eq!(seen["headers"]["x-forwarded-groups"], "partners");
    assert_eq!(
        bearer_status(&gateway, "/admin/x", &dora_token).await,
        403,
        "/admin is for the group admins"
    );

    // Bob is staff only: signed in, but not let into /admin.
    let bob = browser();
    let back = through_provider(&bob, &start("corp"), "bob", "bob-pw").await;
    let bob_token = set_cookie(&back, "authgate_session").expect("a session");
    assert_eq!(bearer_status(&gateway, "/admin/x", &bob_token).await, 403);
    assert_eq!(bearer_status(&gateway, "/elsewhere", &bob_token).await, 200);

    // And a local user, by password, on the same gateway.
    let carol = browser();
    let signed_in = sign_in(&carol, &gateway, "carol", PASSWORD, "/admin").await;
    let carol_token = session_token(&signed_in);
    let seen = bearer_json(&gateway, "/admin/y", &carol_token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "carol");
    assert_eq!(seen["headers"]["x-forwarded-groups"], "admins");

    // /management/me and introspection report the provider and groups.
    let me = bearer_json(&gateway, "/management/me", &alice_token).await;
    assert_eq!(me["user"]["username"], "corp:alice");
    assert_eq!(me["user"]["provider"], "corp");
    assert_eq!(me["user"]["groups"], json!(["admins", "staff"]));
    assert_eq!(me["user"]["name"], "Alice Liddell");

    // A client cannot claim groups of its own.
    let forged = api()
        .get(gateway.url("/admin/z"))
        .bearer_auth(&bob_token)
        .header("X-Forwarded-Groups", "admins")
        .header("X_Forwarded_Preferred_Username", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let seen: serde_json::Value = api()
        .get(gateway.url("/z"))
        .bearer_auth(&bob_token)
        .header("X-Forwarded-Groups", "admins")
        .header("X-Forwarded-Preferred-Username", "root")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-groups"], "staff");
    assert_eq!(seen["headers"]["x-forwarded-preferred-username"], "bob");
}

#[tokio::test]
async fn a_callback_is_single_use_bound_to_its_browser_and_its_state() {
    let Some((_corp, gateway)) = corp_and_gateway("Corp").await else {
        return;
    };
    let start = gateway.url("/management/authorize?provider=corp&rd=%2F");

    // The callback URL, not followed, and the flow cookie the gateway set
    // at the start.
    let alice = browser();
    let walked = to_callback(&alice, &start, "alice", "alice-pw").await.unwrap();
    let (callback, flow_cookie) = (walked.callback, walked.flow_cookie);

    // A parameter sent twice has two readings: refused, and the sign-in
    // is still there for the browser that started it.
    let doubled = format!("{callback}&iss=http%3A%2F%2Fevil.example");
    let answer = alice.get(&doubled).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("more than once"));

    // Another browser (an attacker handed the URL) has no flow cookie.
    let other = browser().get(callback.clone()).send().await.unwrap();
    assert_eq!(other.status(), 400);
    assert!(set_cookie(&other, "authgate_session").is_none());
    assert!(other.text().await.unwrap().contains("expired"));

    // A tampered state is not this browser's sign-in.
    let mut tampered = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let value = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), value)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(&pairs);
    let answer = alice.get(tampered).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(set_cookie(&answer, "authgate_session").is_none());

    // The browser that started it signs in, once.
    let first = alice.get(callback.clone()).send().await.unwrap();
    assert_eq!(first.status(), 303);
    assert!(set_cookie(&first, "authgate_session").is_some());
    let cleared = first.headers().get_all("set-cookie").iter().any(|c| {
        c.to_str().unwrap().starts_with("authgate_rp_") && c.to_str().unwrap().contains("Max-Age=0")
    });
    assert!(cleared, "the flow cookie is cleared");

    // Replayed with the flow cookie put back: refused, no second session.
    let replay = api()
        .get(callback.clone())
        .header("cookie", flow_cookie.expect("the start set a flow cookie"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert!(set_cookie(&replay, "authgate_session").is_none());
    assert!(replay.text().await.unwrap().contains("already used"));
}

/// A gateway whose only provider is the GitHub stand-in, for members of
/// the org `github`.
async fn github_gateway(github: &GithubStandIn, upstream: std::net::SocketAddr) -> Gateway {
    let port = free_port();
    // Read when the config loads, so it may go once the gateway runs.
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), format!("{}\n", github::CLIENT_SECRET)).unwrap();
    let secret = secret_file.path();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[upstream]
url = "http://{upstream}"

[auth]
auto_redirect = true

[[providers]]
id = "github"
kind = "github"
client_id = "{id}"
client_secret_file = "{secret}"
allowed_orgs = ["GitHub"]
api_url = "{api}"
"#,
        id = github::CLIENT_ID,
        secret = secret.display(),
        api = github.api_url()
    );
    Gateway::start(&toml).await
}

#[tokio::test]
async fn github_people_sign_in_with_their_orgs_and_teams_as_groups() {
    let github = GithubStandIn::start().await;
    let upstream = start_upstream().await;
    let gateway = github_gateway(&github, upstream.addr).await;

    // auto_redirect: the only way in is GitHub, so the page is skipped.
    let octocat = browser();
    let first = octocat
        .get(gateway.url("/management/authorize?rd=%2Frepos"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 302);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("http://{}/login/oauth/authorize?", github.addr)),
        "{location}"
    );
    assert!(location.contains("code_challenge_method=S256"), "{location}");
    assert!(
        location.contains("scope=read%3Auser+user%3Aemail+read%3Aorg"),
        "{location}"
    );

    github.next_person(github::Person::octocat());
    let back = through_provider(
        &octocat,
        &gateway.url("/management/authorize?provider=github&rd=%2Frepos"),
        "",
        "",
    )
    .await;
    assert_eq!(back.status(), 303, "{:?}", back.text().await);
    let token = set_cookie(&back, "authgate_session").expect("a session");
    let seen = bearer_json(&gateway, "/repos", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "github:octocat");
    assert_eq!(
        seen["headers"]["x-forwarded-email"], "octocat@github.com",
        "the verified primary email"
    );
    assert_eq!(
        seen["headers"]["x-forwarded-groups"],
        "github,github/justice-league"
    );
    let me = bearer_json(&gateway, "/management/me", &token).await;
    assert_eq!(me["user"]["name"], "monalisa octocat");

    // Someone in no allowed org: refused, no session.
    github.next_person(github::Person::loner("hubot", 42));
    let back = through_provider(
        &browser(),
        &gateway.url("/management/authorize?provider=github"),
        "",
        "",
    )
    .await;
    assert_eq!(back.status(), 403);
    assert!(set_cookie(&back, "authgate_session").is_none());
    assert!(back
        .text()
        .await
        .unwrap()
        .contains("Only members of the GitHub organisation github"));
}

#[tokio::test]
async fn a_code_github_refuses_ends_in_a_clear_error_and_no_session() {
    let github = GithubStandIn::start().await;
    let upstream = start_upstream().await;
    let gateway = github_gateway(&github, upstream.addr).await;
    // Take the code to GitHub first, as an attacker who intercepted it
    // would: then the gateway's exchange is refused.
    let client = browser();
    let start = client
        .get(gateway.url("/management/authorize?provider=github"))
        .send()
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let approved = client.get(&authorize).send().await.unwrap();
    let callback = approved.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let stolen = api()
        .post(format!("http://{}/login/oauth/access_token", github.addr))
        .header("accept", "application/json")
        .form(&[
            ("client_id", github::CLIENT_ID),
            ("client_secret", github::CLIENT_SECRET),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        stolen["error"], "bad_verification_code",
        "without the PKCE verifier the code is worthless: {stolen}"
    );
    let back = client.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), 401);
    assert!(set_cookie(&back, "authgate_session").is_none());
    let page = back.text().await.unwrap();
    assert!(
        page.contains("GitHub did not sign you in") && page.contains("bad_verification_code"),
        "{page}"
    );
}

/// A gateway whose provider `hostile` is the hostile stand-in at `issuer`.
async fn hostile_gateway(issuer: &str, upstream: std::net::SocketAddr) -> Gateway {
    let port = free_port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[upstream]
url = "http://{upstream}"
{provider}
"#,
        provider = provider_toml("hostile", "Hostile", issuer, "")
    );
    Gateway::start(&toml).await
}

async fn hostile_mode(hostile: &NodeProvider, mode: &str) {
    let answer = api()
        .post(hostile.url("/mode"))
        .json(&json!({ "mode": mode }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "mode {mode}");
}

async fn hostile_stats(hostile: &NodeProvider) -> serde_json::Value {
    api()
        .get(hostile.url("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_trick_of_a_hostile_provider_ends_without_a_session() {
    let Some(hostile) = NodeProvider::start(
        "hostile.mjs",
        json!({"port": 0, "client_id": "authgate", "mode": "valid"}),
    ) else {
        return;
    };
    let upstream = start_upstream().await;
    // What each trick must be refused for, as the error page says it.
    let tricks = [
        ("wrong-aud", 401, "audience"),
        ("wrong-nonce", 401, "nonce"),
        ("wrong-iss", 401, "issuer"),
        ("expired", 401, "expired"),
        ("alg-none", 401, "no signature"),
        ("hmac-key-confusion", 401, "HS256"),
        ("unknown-kid", 401, "a key the provider does not publish"),
        ("jwks-without-key", 401, "a key the provider does not publish"),
        ("azp-mismatch", 401, "audience"),
        ("mix-up", 401, "mix-up"),
        ("error", 401, "The user said no"),
    ];
    for (mode, status, says) in tricks {
        hostile_mode(&hostile, mode).await;
        // A gateway of its own: nothing cached from an earlier trick.
        let gateway = hostile_gateway(&hostile.issuer, upstream.addr).await;
        let back = through_provider(
            &browser(),
            &gateway.url("/management/authorize?provider=hostile"),
            "",
            "",
        )
        .await;
        assert_eq!(back.status(), status, "{mode}");
        assert!(
            set_cookie(&back, "authgate_session").is_none(),
            "{mode}: no session"
        );
        let page = unescape_html(&back.text().await.unwrap());
        assert!(
            page.to_lowercase().contains(&says.to_lowercase()),
            "{mode}: {page}"
        );
    }

    // An unknown kid fetches the keys once more, and only once.
    hostile_mode(&hostile, "unknown-kid").await;
    let gateway = hostile_gateway(&hostile.issuer, upstream.addr).await;
    let before = hostile_stats(&hostile).await["jwks"].as_u64().unwrap();
    let back = through_provider(
        &browser(),
        &gateway.url("/management/authorize?provider=hostile"),
        "",
        "",
    )
    .await;
    assert_eq!(back.status(), 401);
    let after = hostile_stats(&hostile).await["jwks"].as_u64().unwrap();
    assert_eq!(
        after - before,
        2,
        "discovery's fetch and one more for the unknown kid"
    );

    // The same provider, honest: a session, as hostile:mallory.
    hostile_mode(&hostile, "valid").await;
    let gateway = hostile_gateway(&hostile.issuer, upstream.addr).await;
    let back = through_provider(
        &browser(),
        &gateway.url("/management/authorize?provider=hostile&rd=%2Fok"),
        "",
        "",
    )
    .await;
    assert_eq!(back.status(), 303, "{:?}", back.text().await);
    let token = set_cookie(&back, "authgate_session").expect("a session");
    let seen = bearer_json(&gateway, "/ok", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "hostile:mallory");
    // Discovery and keys are cached: a second sign-in fetches neither.
    let before = hostile_stats(&hostile).await;
    let back = through_provider(
        &browser(),
        &gateway.url("/management/authorize?provider=hostile"),
        "",
        "",
    )
    .await;
    assert_eq!(back.status(), 303);
    let after = hostile_stats(&hostile).await;
    assert_eq!(after["discovery"], before["discovery"]);
    assert_eq!(after["jwks"], before["jwks"]);
}

/// A real provider whose client (for a gateway on `port`) registers no
/// back-channel logout, with access tokens that live `access_ttl` seconds.
fn short_lived_provider(port: u16, access_ttl: u64) -> Option<NodeProvider> {
    let base = format!("http://127.0.0.1:{port}");
    NodeProvider::start(
        "provider.mjs",
        json!({
            "port": 0,
            "access_token_ttl": access_ttl,
            "clients": [{
                "client_id": "authgate",
                "client_secret": "corp-secret",
                "redirect_uris": [format!("{base}/management/callback/corp")],
                "post_logout_redirect_uris": [format!("{base}/management/signed-out")]
            }],
            "users": alice_and_bob()
        }),
    )
}

/// The provider's answer at its userinfo endpoint for `access_token`.
async fn userinfo(provider: &NodeProvider, access_token: &str) -> reqwest::Response {
    api()
        .get(provider.url("/me"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_providers_access_token_goes_upstream_is_refreshed_in_time_and_a_refused_refresh_ends_the_session(
) {
    let port = free_port();
    let Some(corp) = short_lived_provider(port, 4) else {
        return;
    };
    let upstream = start_upstream().await;
    let providers = provider_toml("corp", "Corp", &corp.issuer, "pass_access_token = true");
    let gateway = Gateway::start(&gateway_toml(port, upstream.addr, &providers)).await;
    let back = through_provider(
        &browser(),
        &gateway.url("/management/authorize?provider=corp"),
        "alice",
        "alice-pw",
    )
    .await;
    let token = set_cookie(&back, "authgate_session").expect("a session");

    // The upstream gets the provider's own access token, which works there.
    let seen = bearer_json(&gateway, "/x", &token).await;
    let first = seen["headers"]["x-forwarded-access-token"]
        .as_str()
        .expect("the provider's token")
        .to_owned();
    let me: serde_json::Value = userinfo(&corp, &first).await.json().await.unwrap();
    assert_eq!(me["sub"], "u-alice");

    // Three quarters into its four seconds, a request starts a refresh;
    // soon after, the upstream gets a new token that works.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let _ = bearer_json(&gateway, "/x", &token).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let second = loop {
        let seen = bearer_json(&gateway, "/x", &token).await;
        let now = seen["headers"]["x-forwarded-access-token"]
            .as_str()
            .unwrap()
            .to_owned();
        if now != first {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the provider token was never refreshed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        userinfo(&corp, &second).await.status(),
        200,
        "the refreshed token works"
    );
    assert!(
        corp.log().contains("POST /token"),
        "refreshed at the provider's token endpoint"
    );

    // The provider ends alice's grant (no back-channel logout registered):
    // the next refresh is refused, and the session here ends with it.
    let ended: serde_json::Value = api()
        .post(corp.url("/test/backchannel-logout"))
        .json(&json!({"sub": "u-alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["sent"], 0, "no back-channel logout: {ended}");
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while bearer_status(&gateway, "/x", &token).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the session outlived a refused refresh"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn signing_out_signs_out_at_the_provider_too_when_configured() {
    let port = free_port();
    let Some(corp) = short_lived_provider(port, 600) else {
        return;
    };
    let upstream = start_upstream().await;
    let providers = provider_toml("corp", "Corp", &corp.issuer, "logout = \"provider\"");
    let gateway = Gateway::start(&gateway_toml(port, upstream.addr, &providers)).await;
    let alice = browser();
    let back = through_provider(
        &alice,
        &gateway.url("/management/authorize?provider=corp"),
        "alice",
        "alice-pw",
    )
    .await;
    let token = set_cookie(&back, "authgate_session").expect("a session");

    let out = alice.get(gateway.url("/management/logout")).send().await.unwrap();
    assert_eq!(out.status(), 303);
    let location = url::Url::parse(out.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location.as_str().starts_with(&corp.url("/session/end")),
        "{location}"
    );
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert!(
        query["id_token_hint"].split('.').count() == 3,
        "the ID token as the hint"
    );
    assert_eq!(
        query["post_logout_redirect_uri"],
        gateway.url("/management/signed-out")
    );
    assert_eq!(
        bearer_status(&gateway, "/x", &token).await,
        401,
        "signed out here at once"
    );

    // The provider asks to confirm, then sends the browser back.
    let page = alice.get(location).send().await.unwrap().text().await.unwrap();
    let xsrf = page
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the provider's confirmation form");
    let confirmed = alice
        .post(corp.url("/session/end/confirm"))
        .form(&[("xsrf", xsrf), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert!(confirmed.status().is_redirection());
    let back_to = confirmed.headers()["location"].to_str().unwrap();
    assert!(
        back_to.starts_with(&gateway.url("/management/signed-out")),
        "{back_to}"
    );
    let landed = alice.get(back_to).send().await.unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.text().await.unwrap().contains("Signed out"));

    // Signed out there too: signing in again asks for the password.
    let again = alice
        .get(gateway.url("/management/authorize?provider=corp"))
        .send()
        .await
        .unwrap();
    let mut url = url::Url::parse(again.headers()["location"].to_str().unwrap()).unwrap();
    loop {
        let step = alice.get(url.clone()).send().await.unwrap();
        if !step.status().is_redirection() {
            assert!(url.path().starts_with("/interaction/"), "{url}");
            assert!(
                step.text().await.unwrap().contains("id=\"password\""),
                "the provider asks again"
            );
            break;
        }
        let next = url.join(step.headers()["location"].to_str().unwrap()).unwrap();
        assert!(
            !next.path().starts_with("/management/callback/"),
            "signed straight back in: the provider kept its session"
        );
        url = next;
    }
}

#[tokio::test]
async fn an_oauth_clients_user_signs_in_through_a_provider_and_the_client_gets_authgates_tokens() {
    let Some((_corp, gateway)) = corp_and_gateway("Corp").await else {
        return;
    };
    let verifier = "a-verifier-long-enough-for-rfc-7636-which-wants-43-characters";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let start = gateway.url(&format!(
        "/management/authorize?provider=corp&client_id=app&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback&state=xyz&code_challenge={challenge}&code_challenge_method=S256"
    ));
    // The page offers the provider for the client's request too.
    let page = browser()
        .get(gateway.url(&format!(
            "/management/authorize?client_id=app&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback&state=xyz&code_challenge={challenge}&code_challenge_method=S256"
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        unescape_html(&page).contains("/management/authorize?provider=corp&response_type=code&client_id=app"),
        "{page}"
    );

    let back = through_provider(&browser(), &start, "alice", "alice-pw").await;
    assert_eq!(back.status(), 303, "{:?}", back.text().await);
    assert!(
        set_cookie(&back, "authgate_session").is_none(),
        "a client's sign-in sets no gateway cookie"
    );
    let location = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        location.as_str().split('?').next().unwrap(),
        "http://127.0.0.1:3000/callback"
    );
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "xyz");
    let tokens: serde_json::Value = api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", query["code"].as_str()),
            ("redirect_uri", "http://127.0.0.1:3000/callback"),
            ("client_id", "app"),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"));
    assert_eq!(tokens["user"]["username"], "corp:alice", "{tokens}");
    let me = bearer_json(&gateway, "/management/me", access).await;
    assert_eq!(me["client_id"], "app");
    assert_eq!(me["user"]["provider"], "corp");
    let seen = bearer_json(&gateway, "/admin/z", access).await;
    assert_eq!(seen["headers"]["x-forwarded-groups"], "admins,staff");
}

#[tokio::test]
async fn a_provider_that_is_down_or_silent_fails_clearly_and_holds_up_no_other_sign_in() {
    let upstream = start_upstream().await;
    // One provider on a closed port; one that takes the connection and
    // never answers.
    let closed = free_port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let port = free_port();
    let providers = provider_toml("down", "Down", &format!("http://127.0.0.1:{closed}"), "")
        + &provider_toml(
            "silent",
            "Silent",
            &format!("http://127.0.0.1:{silent_port}"),
            "timeout_secs = 2",
        );
    let gateway = Gateway::start(&gateway_toml(port, upstream.addr, &providers)).await;

    let down = browser()
        .get(gateway.url("/management/authorize?provider=down"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 502);
    assert!(set_cookie(&down, "authgate_rp_").is_none());
    assert!(down.text().await.unwrap().contains("Down cannot be reached"));
    let down = api()
        .get(gateway.url("/management/authorize?provider=down"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 502);
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body["error"], "access_denied", "an API client gets JSON: {body}");

    // The silent one takes its timeout; a local sign-in meanwhile does not wait.
    let waiting = tokio::spawn({
        let url = gateway.url("/management/authorize?provider=silent");
        async move {
            let began = std::time::Instant::now();
            let answer = browser().get(url).send().await.unwrap();
            (answer.status(), began.elapsed())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let began = std::time::Instant::now();
    let carol = sign_in(&browser(), &gateway, "carol", PASSWORD, "/").await;
    assert_eq!(carol.status(), 303);
    let local = began.elapsed();
    let (status, took) = waiting.await.unwrap();
    assert_eq!(status, 502);
    assert!(
        took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    // Tried again only after a while: meanwhile, no one waits for it.
    let began = std::time::Instant::now();
    let again = browser()
        .get(gateway.url("/management/authorize?provider=silent"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 502);
    assert!(
        began.elapsed() < std::time::Duration::from_millis(500),
        "{:?}",
        began.elapsed()
    );
    assert!(
        local < std::time::Duration::from_secs(2),
        "the local sign-in waited for the silent provider: {local:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn outside_people_are_linked_to_users_only_as_the_config_says() {
    let port = free_port();
    let Some(corp) = real_provider("corp", port, alice_and_bob()) else {
        return;
    };
    let upstream = start_upstream().await;
    let links = format!(
        r#"
[[users]]
username = "alice-local"
password_hash = "{hash}"
groups = ["local-ops"]
links = ["corp:u-alice"]

[[users]]
username = "robert"
password_hash = "{hash}"
email = "BOB@corp.example"
"#,
        hash = password_hash()
    );
    let providers = provider_toml("corp", "Corp", &corp.issuer, "link_by_verified_email = true") + &links;
    let gateway = Gateway::start(&gateway_toml(port, upstream.addr, &providers)).await;
    let start = gateway.url("/management/authorize?provider=corp");

    // links: corp's u-alice is alice-local, with the groups of both.
    let back = through_provider(&browser(), &start, "alice", "alice-pw").await;
    let token = set_cookie(&back, "authgate_session").expect("a session");
    let seen = bearer_json(&gateway, "/x", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice-local");
    assert_eq!(seen["headers"]["x-forwarded-groups"], "admins,local-ops,staff");
    assert_eq!(seen["headers"]["x-forwarded-preferred-username"], "alice");

    // An address the provider never verified links no one, and is not
    // passed on: mal typed bob's.
    let back = through_provider(&browser(), &start, "mal", "mal-pw").await;
    let token = set_cookie(&back, "authgate_session").expect("a session");
    let seen = bearer_json(&gateway, "/x", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "corp:mal");
    assert!(seen["headers"].get("x-forwarded-email").is_none(), "{seen}");

    // link_by_verified_email: bob's verified address is robert's.
    let back = through_provider(&browser(), &start, "bob", "bob-pw").await;
    let token = set_cookie(&back, "authgate_session").expect("a session");
    let seen = bearer_json(&gateway, "/x", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "robert");
}

#[tokio::test]
async fn a_providers_own_second_factor_counts_only_where_its_config_trusts_it() {
    let port = free_port();
    let people = json!([{"sub": "u-erin", "password": "erin-pw", "email": "erin@corp.example", "email_verified": true,
        "preferred_username": "erin", "groups": [], "amr": ["pwd", "otp"], "acr": "mfa"}]);
    let Some(trusted) = real_provider("trusted", port, people.clone()) else {
        return;
    };
    let untrusted = real_provider("untrusted", port, people).unwrap();
    let upstream = start_upstream().await;
    let providers = provider_toml("trusted", "Trusted", &trusted.issuer, "trust_amr = true")
        + &provider_toml("untrusted", "Untrusted", &untrusted.issuer, "");
    let gateway = Gateway::start(&gateway_toml(port, upstream.addr, &providers)).await;
    let start = |id: &str| gateway.url(&format!("/management/authorize?provider={id}&rd=%2F"));
    let erin = browser();
    let back = through_provider(&erin, &start("trusted"), "erin", "erin-pw").await;
    let token = set_cookie(&back, "authgate_session").expect("a session");
    let me = bearer_json(&gateway, "/management/me", &token).await;
    assert_eq!(me["acr"], "mfa", "{me}");
    assert_eq!(me["amr"], json!(["pwd", "otp", "mfa"]), "{me}");
    let seen = bearer_json(&gateway, "/x", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-auth-level"], "mfa");
    // The same ID token claims from a provider not trusted to say them.
    let other = browser();
    let back = through_provider(&other, &start("untrusted"), "erin", "erin-pw").await;
    let token = set_cookie(&back, "authgate_session").expect("a session");
    let me = bearer_json(&gateway, "/management/me", &token).await;
    assert_eq!(me["acr"], "password", "{me}");
    assert!(me.get("amr").is_none(), "nothing known of how: {me}");
    let seen = bearer_json(&gateway, "/x", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-auth-level"], "password");
}
