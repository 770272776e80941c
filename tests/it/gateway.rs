//! The gateway end to end, over real sockets: a real upstream, the real
//! gateway, a real HTTP client.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;

async fn setup(extra: &str) -> (Upstream, Gateway) {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream.addr, extra)).await;
    (upstream, gateway)
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn browser_flow_signs_in_and_upstream_sees_bearer_and_user() {
    let (upstream, gateway) = setup("").await;
    let browser = browser();

    // 1. The page asked for sends the browser to sign in, remembering it.
    let asked = browser
        .get(gateway.url("/reports/q3?year=2026"))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 302);
    let sign_in_url = gateway.url(location(&asked));
    assert!(sign_in_url.contains("/management/authorize?rd="), "{sign_in_url}");
    assert_eq!(upstream.hits(), 0, "nothing reaches the upstream before sign-in");

    // 2. The sign-in page carries the remembered path in a hidden input.
    let page = browser.get(&sign_in_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert_eq!(
        hidden_value(&html, "rd").as_deref(),
        Some("/reports/q3?year=2026"),
        "{html}"
    );
    assert!(html.contains(r#"autocomplete="current-password""#));

    // 3. Posting the form sets the cookie and goes back to that page.
    let posted = sign_in(&browser, &gateway, "alice", PASSWORD, "/reports/q3?year=2026").await;
    assert_eq!(posted.status(), 303);
    assert_eq!(location(&posted), "/reports/q3?year=2026");
    let cookie = posted.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "no Secure flag on plain http: {cookie}"
    );
    assert!(
        !cookie.contains("alice"),
        "the cookie holds no user data: {cookie}"
    );
    let token = session_token(&posted);

    // 4. The upstream sees the bearer token and the user.
    let seen: Value = browser
        .get(gateway.url("/reports/q3?year=2026"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["path"], "/reports/q3");
    assert_eq!(seen["query"], "year=2026");
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {token}"));
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
    assert_eq!(seen["headers"]["x-forwarded-email"], "alice@example.com");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-host"], gateway.addr.to_string());
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn the_same_token_works_as_bearer_header_and_as_access_token_query() {
    let (_upstream, gateway) = setup("").await;
    let token = session_token(&sign_in(&browser(), &gateway, "bob", PASSWORD, "/").await);
    let api = api();
    let seen: Value = api
        .get(gateway.url("/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "bob");
    assert!(
        seen["headers"].get("x-forwarded-email").is_none(),
        "bob has no email"
    );

    let seen: Value = api
        .get(gateway.url(&format!("/data?a=1&access_token={token}&b=2")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        seen["query"], "a=1&b=2",
        "access_token never reaches the upstream"
    );
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {token}"));
}

#[tokio::test]
async fn api_clients_get_401_json_and_browsers_get_a_redirect() {
    let (upstream, gateway) = setup("").await;
    let response = api().get(gateway.url("/data")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"authgate\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(body["error_description"].as_str().unwrap().contains("Bearer"));

    let response = bearer_get(&gateway, "/data", "not-a-real-token").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_token");

    // A browser's POST (a form, not a navigation) is not redirected either.
    let response = browser()
        .post(gateway.url("/data"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let response = browser().get(gateway.url("/data")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn wrong_password_shows_the_page_again_with_the_message() {
    let (upstream, gateway) = setup("").await;
    let browser = browser();
    for (user, password) in [("alice", "wrong"), ("nobody", PASSWORD), ("alice", "")] {
        let response = sign_in(&browser, &gateway, user, password, "/x").await;
        assert_eq!(response.status(), 401, "{user}");
        assert!(response.headers().get("set-cookie").is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains("Username or password do not match"), "{html}");
        assert!(
            html.contains(&format!(r#"value="{user}""#)),
            "the username is kept"
        );
        assert_eq!(
            hidden_value(&html, "rd").as_deref(),
            Some("/x"),
            "the other fields are kept"
        );
        if !password.is_empty() {
            assert!(!html.contains(password), "the password is never echoed");
        }
    }
    let response = browser.get(gateway.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 302, "still not signed in");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn implicit_grant_puts_the_token_in_the_fragment() {
    let (_upstream, gateway) = setup("").await;
    let browser = browser();
    let query =
        format!("response_type=token&client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}&state=xyz%20123");
    let page = browser
        .get(gateway.url(&format!("/management/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for (name, value) in [
        ("response_type", "token"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("state", "xyz 123"),
    ] {
        assert_eq!(
            hidden_value(&html, name).as_deref(),
            Some(value),
            "{name} in {html}"
        );
    }
    let response = submit_sign_in(
        &browser,
        &gateway.url(&format!("/management/authorize?{query}")),
        "alice",
        PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 303);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "a client sign-in sets no gateway cookie"
    );
    let target = url::Url::parse(location(&response)).unwrap();
    assert_eq!(&target.as_str()[..REDIRECT_URI.len()], REDIRECT_URI);
    let fragment: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(target.fragment().unwrap().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(fragment["token_type"], "Bearer");
    assert_eq!(fragment["state"], "xyz 123");
    let expires_in: u64 = fragment["expires_in"].parse().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");

    let seen: Value = api()
        .get(gateway.url("/x"))
        .bearer_auth(&fragment["access_token"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
}

#[tokio::test]
async fn unknown_client_and_unregistered_redirect_get_an_error_page_never_a_redirect() {
    let (_upstream, gateway) = setup("").await;
    let browser = browser();
    let cases = [
        (
            format!("response_type=token&client_id=nope&redirect_uri={REDIRECT_URI}"),
            "Unknown application",
        ),
        (
            format!("response_type=token&client_id={CLIENT_ID}&redirect_uri=https://evil.example/cb"),
            "Invalid return address",
        ),
        (
            format!("response_type=token&client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}/extra"),
            "Invalid return address",
        ),
        (
            format!("response_type=token&client_id={CLIENT_ID}"),
            "Invalid return address",
        ),
    ];
    for (query, title) in cases {
        let url = gateway.url(&format!("/management/authorize?{query}"));
        let response = browser.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert!(response.headers().get("location").is_none(), "{query}");
        assert!(response.text().await.unwrap().contains(title), "{query}");

        // The POST is refused the same way, even with the right password.
        let mut form: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        form.push(("username".into(), "alice".into()));
        form.push(("password".into(), PASSWORD.into()));
        let response = browser
            .post(gateway.url("/management/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "POST {query}");
        assert!(response.headers().get("location").is_none(), "POST {query}");
    }
}

#[tokio::test]
async fn unsupported_response_type_goes_back_to_the_client_with_state() {
    let (_upstream, gateway) = setup("").await;
    let url = gateway.url(&format!(
        "/management/authorize?response_type=magic&client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}&state=s1"
    ));
    let response = browser().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let target = url::Url::parse(location(&response)).unwrap();
    assert!(target.as_str().starts_with(REDIRECT_URI));
    let query: std::collections::HashMap<String, String> = target.query_pairs().into_owned().collect();
    assert_eq!(query["error"], "unsupported_response_type");
    assert_eq!(query["state"], "s1");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (_upstream, gateway) = setup("[tokens]\nttl_secs = 2\n").await;
    let browser = browser();
    let token = session_token(&sign_in(&browser, &gateway, "alice", PASSWORD, "/").await);
    assert_eq!(bearer_status(&gateway, "/x", &token).await, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(bearer_status(&gateway, "/x", &token).await, 401);
    assert_eq!(browser.get(gateway.url("/x")).send().await.unwrap().status(), 302);
}

#[tokio::test]
async fn logout_revokes_the_token_and_clears_the_cookie() {
    let (_upstream, gateway) = setup("").await;
    let browser = browser();
    let token = session_token(&sign_in(&browser, &gateway, "alice", PASSWORD, "/").await);
    assert_eq!(browser.get(gateway.url("/x")).send().await.unwrap().status(), 200);

    let out = browser
        .post(gateway.url("/management/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/management/authorize");
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    assert_eq!(browser.get(gateway.url("/x")).send().await.unwrap().status(), 302);
    assert_eq!(
        bearer_status(&gateway, "/x", &token).await,
        401,
        "the token itself is revoked, not just the cookie"
    );

    // An API client logs out with its bearer token and gets JSON.
    let token = session_token(&sign_in(&browser, &gateway, "bob", PASSWORD, "/").await);
    let out = bearer_json(&gateway, "/management/logout", &token).await;
    assert_eq!(out["signed_out"], true);
    assert_eq!(bearer_status(&gateway, "/x", &token).await, 401);
}

#[tokio::test]
async fn signing_in_again_replaces_and_revokes_the_old_session() {
    let (_upstream, gateway) = setup("").await;
    let browser = browser();
    let first = session_token(&sign_in(&browser, &gateway, "alice", PASSWORD, "/").await);
    let second = session_token(&sign_in(&browser, &gateway, "alice", PASSWORD, "/").await);
    assert_ne!(first, second);
    assert_eq!(bearer_status(&gateway, "/x", &first).await, 401);
    assert_eq!(bearer_status(&gateway, "/x", &second).await, 200);
}

#[tokio::test]
async fn identity_headers_from_a_client_never_reach_the_upstream() {
    let (upstream, gateway) = setup("").await;
    let token = session_token(&sign_in(&browser(), &gateway, "bob", PASSWORD, "/").await);
    let seen: Value = api()
        .get(gateway.url("/x"))
        .bearer_auth(&token)
        .header("X-Forwarded-User", "admin")
        .header("X-Forwarded-Email", "admin@example.com")
        .header("X-Auth-Request-User", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "bob");
    assert!(seen["headers"].get("x-forwarded-email").is_none());
    assert!(seen["headers"].get("x-auth-request-user").is_none());

    // Nor on a public path, where nobody is signed in.
    let seen: Value = api()
        .get(gateway.url("/public/x"))
        .header("X-Forwarded-User", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen["headers"].get("x-forwarded-user").is_none());
    // And a spoofed header alone authenticates nothing.
    let response = api()
        .get(gateway.url("/x"))
        .header("X-Forwarded-User", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn reflected_input_comes_back_escaped() {
    let (_upstream, gateway) = setup("").await;
    let payload = "\"><script>alert(1)</script>";
    let page = browser()
        .get(gateway.url("/management/authorize"))
        .query(&[("state", payload), ("rd", payload), ("scope", payload)])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)</script>"), "{html}");
    for name in ["state", "rd", "scope"] {
        assert_eq!(
            hidden_value(&html, name).as_deref(),
            Some(payload),
            "{name} comes back intact, escaped"
        );
    }

    // An unknown client_id with markup gets the error page, unreflected or escaped.
    let page = browser()
        .get(gateway.url("/management/authorize"))
        .query(&[
            ("client_id", "<img src=x onerror=alert(1)>"),
            ("response_type", "token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert!(!page.text().await.unwrap().contains("<img src=x"));

    // A wrong password keeps the username, escaped.
    let response = sign_in(&browser(), &gateway, payload, "x", "/").await;
    assert_eq!(response.status(), 401);
    assert!(!response
        .text()
        .await
        .unwrap()
        .contains("<script>alert(1)</script>"));
}

#[tokio::test]
async fn open_redirects_after_sign_in_land_on_our_own_origin() {
    let (_upstream, gateway) = setup("").await;
    for rd in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "http:evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "/%09/evil.example",
        "\t//evil.example",
        "/\r\nLocation: https://evil.example",
        "javascript:alert(1)",
    ] {
        let response = sign_in(&browser(), &gateway, "alice", PASSWORD, rd).await;
        assert_eq!(response.status(), 303, "{rd:?}");
        assert_eq!(location(&response), "/", "{rd:?} must land on our own origin");
    }
    let response = sign_in(&browser(), &gateway, "alice", PASSWORD, "/ok/path?x=%2F").await;
    assert_eq!(location(&response), "/ok/path?x=%2F");
}

#[tokio::test]
async fn public_paths_pass_and_traversal_does_not_slip_through() {
    let (upstream, gateway) = setup("").await;
    let client = api();
    for path in ["/public", "/public/", "/public/app.css", "/public/a/../b"] {
        let response = client.get(gateway.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let seen: Value = response.json().await.unwrap();
        assert!(seen["path"].as_str().unwrap().starts_with("/public"), "{path}");
        assert!(seen["headers"].get("authorization").is_none());
    }
    let hits = upstream.hits();
    for path in [
        "/public/../private",
        "/public/%2e%2e/private",
        "/public/%2E%2E/private",
        "/public/.%2e/private",
        "/public//../private",
        "/public/..%2fprivate",
        "/public/%2e%2e%2fprivate",
        "/public%2f..%2fprivate",
        "/public/%252e%252e/private",
        "/public\\..\\private",
        "/publicity",
        "/PUBLIC/x",
    ] {
        // Sent raw: reqwest would normalize dot segments itself.
        let status = raw_get(gateway.addr, path).await;
        assert!(status == 401 || status == 400, "{path} answered {status}");
    }
    assert_eq!(upstream.hits(), hits, "no traversal attempt reached the upstream");
}

/// Sends `GET path` byte for byte and answers the status code.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_upstream_sees_the_normalized_path_it_was_checked_on() {
    let (_upstream, gateway) = setup("").await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!(
        "GET /public/%2e%2e/private/./x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""path":"/private/x""#), "{response}");
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504_and_the_gateway_goes_on() {
    // A port that nothing listens on: bind, note it, close.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = Gateway::start(&config_toml(free, "")).await;
    let token = session_token(&sign_in(&browser(), &down, "alice", PASSWORD, "/").await);
    let response = bearer_get(&down, "/x", &token).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "upstream_unavailable"
    );

    let (_upstream, gateway) = setup("").await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let started = std::time::Instant::now();
    assert_eq!(bearer_status(&gateway, "/slow", &token).await, 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "timed out at timeout_secs = 2"
    );
    assert_eq!(
        bearer_status(&gateway, "/fine", &token).await,
        200,
        "the gateway keeps serving"
    );
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let (upstream, gateway) = setup("").await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let client = api();

    let size = 48 * 1024 * 1024;
    let body = client
        .get(gateway.url(&format!("/download?bytes={size}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), size);

    let chunks = futures_util::stream::iter(
        (0..768).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 64 * 1024]))),
    );
    let answer = client
        .post(gateway.url("/upload"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, (768 * 64 * 1024).to_string());

    // Streamed, not buffered: the first chunk arrives while the upstream
    // still holds the rest.
    let mut response = client
        .get(gateway.url("/hold"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the first chunk arrives before the body is complete")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    upstream.release.notify_one();
    let rest = response.chunk().await.unwrap().unwrap();
    assert_eq!(&rest[..], b"second");
}

#[tokio::test]
async fn http2_clients_work_against_an_http1upstream() {
    let (upstream, gateway) = setup("").await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .get(gateway.url("/over/h2"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(seen["path"], "/over/h2");
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
    assert_eq!(seen["headers"]["host"], upstream.addr.to_string());
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped() {
    let (_upstream, gateway) = setup("").await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let seen: Value = api()
        .get(gateway.url("/x"))
        .bearer_auth(&token)
        .header("Connection", "keep-alive, X-Secret-Hop")
        .header("X-Secret-Hop", "1")
        .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
        .header("X-Kept", "yes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen["headers"].get("x-secret-hop").is_none());
    assert!(seen["headers"].get("proxy-authorization").is_none());
    assert_eq!(seen["headers"]["x-kept"], "yes");
}

#[tokio::test]
async fn own_endpoints_answer_bad_methods_and_unknown_paths_cleanly() {
    let (upstream, gateway) = setup("").await;
    let response = api()
        .delete(gateway.url("/management/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
    let response = api()
        .get(gateway.url("/management/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "not_found");
    let response = browser()
        .get(gateway.url("/management/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // Duplicate parameters are refused, not guessed at.
    let response = browser()
        .get(gateway.url(&format!(
            "/management/authorize?client_id={CLIENT_ID}&client_id=other"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_public_url_is_https() {
    let upstream = start_upstream().await;
    let toml = config_toml(upstream.addr, "").replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\npublic_url = \"https://gate.example\"",
    );
    let gateway = Gateway::start(&toml).await;
    let response = sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let token = session_token(&response);
    let seen: Value = bearer_json(&gateway, "/x", &token).await;
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn a_failed_sign_in_from_a_browser_comes_back_to_the_page_by_get() {
    let (upstream, gateway) = setup("").await;
    let browser = browser();
    let page_url = gateway.url("/management/authorize?rd=%2Freports%3Fm%3D11%26y%3D2026");
    let page = browser
        .get(&page_url)
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), "wrong horse".into()));
    let posted = browser
        .post(gateway.url("/management/authorize"))
        .header("sec-fetch-mode", "navigate")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303, "Post/Redirect/Get");
    let back = location(&posted).to_owned();
    assert_eq!(back, "/management/authorize?rd=%2Freports%3Fm%3D11%26y%3D2026");
    let cookies: Vec<&str> = posted
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("authgate_flash=")),
        "{cookies:?}"
    );
    assert!(
        !cookies.iter().any(|c| c.starts_with("authgate_session=")),
        "{cookies:?}"
    );
    assert!(!cookies.concat().contains("wrong horse"), "never the password");

    let shown = browser
        .get(gateway.url(&back))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let clears = shown
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("authgate_flash=;"));
    assert!(clears, "the message is shown once");
    let html = shown.text().await.unwrap();
    assert!(html.contains("Username or password do not match"), "{html}");
    assert!(html.contains(r#"value="alice""#), "the username is kept");
    assert!(!html.contains("wrong horse"));
    assert_eq!(hidden_value(&html, "rd").as_deref(), Some("/reports?m=11&y=2026"));

    // Reloading shows the page without the old message, and posts nothing.
    let again = browser
        .get(gateway.url(&back))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains("Username or password do not match"));

    // The right password from the page it came back to goes on as asked.
    let mut form = hidden_inputs(&html);
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), PASSWORD.into()));
    let signed_in = browser
        .post(gateway.url("/management/authorize"))
        .header("sec-fetch-mode", "navigate")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/reports?m=11&y=2026");

    // A client of the form that is not a browser navigating (no
    // Sec-Fetch-Mode) keeps the status, with the page.
    let scripted = sign_in(&crate::common::browser(), &gateway, "alice", "wrong", "/x").await;
    assert_eq!(scripted.status(), 401);
    assert!(scripted
        .text()
        .await
        .unwrap()
        .contains("Username or password do not match"));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn every_page_comes_back_as_it_was_asked_for_after_sign_in() {
    let (_upstream, gateway) = setup("").await;
    for target in [
        "/app/reports?tab=2&q=a%20b",
        "/caf%C3%A9?x=%22y%22&z=%3Cb%3E",
        "/a/%7Euser/b?q=%7e&r=1;s=2",
        "/public/../reports?month=11&year=2026",
        "/search?q=a+b&q=c%2Bd&empty=&flag",
        "/x?next=%2F%2Fevil.example",
    ] {
        let browser = browser();
        // Sent raw where reqwest would normalise the target itself.
        let mut raw = RawConnection::open(gateway.addr).await;
        raw.send(
            format!(
                "GET {target} HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
                gateway.addr
            )
            .as_bytes(),
        )
        .await;
        let refused = raw.response().await.unwrap();
        assert_eq!(refused.status, 302, "{target}");
        let sign_in_page = gateway.url(refused.header("location").unwrap());
        let signed_in = submit_sign_in(&browser, &sign_in_page, "alice", PASSWORD).await;
        assert_eq!(signed_in.status(), 303, "{target}");
        assert_eq!(location(&signed_in), target, "{target} comes back byte for byte");
    }
}

#[tokio::test]
async fn authenticated_answers_are_private_to_caches_and_whoami_is_not_kept() {
    let (_upstream, gateway) = setup("").await;
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    let private = bearer_get(&gateway, "/page", &token).await;
    assert_eq!(private.headers()["cache-control"], "private");
    let cached = bearer_get(&gateway, "/cached", &token).await;
    assert_eq!(
        cached.headers()["cache-control"],
        "public, max-age=60",
        "the upstream's own directive stands"
    );
    let public = api().get(gateway.url("/public/x")).send().await.unwrap();
    assert!(
        public.headers().get("cache-control").is_none(),
        "a public answer is the upstream's"
    );

    let whoami = Gateway::start(
        &config_toml("127.0.0.1:1".parse().unwrap(), "")
            .replace("url = \"http://127.0.0.1:1\"", "builtin = \"whoami\""),
    )
    .await;
    let token = password_grant(&whoami.url("/management/token"), "alice").await;
    let echo = bearer_get(&whoami, "/", &token).await;
    assert_eq!(echo.headers()["cache-control"], "no-store");
    assert!(
        echo.text().await.unwrap().contains(&token),
        "it shows the token: so never kept"
    );
}

#[tokio::test]
async fn with_a_cookie_domain_the_session_cookie_is_set_and_cleared_for_it() {
    let upstream = start_upstream().await;
    let toml =
        config_toml(upstream.addr, "").replace("[auth]\n", "[auth]\ncookie_domain = \"example.test\"\n");
    let gateway = Gateway::start(&toml).await;
    let response = sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Domain=example.test"), "{cookie}");
    assert!(cookie.contains("; HttpOnly; SameSite=Lax"), "{cookie}");
    let token = session_token(&response);
    let out = api()
        .post(gateway.url("/management/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("authgate_session=; Max-Age=0") && cleared.contains("; Domain=example.test"),
        "the cookie is cleared where it was set: {cleared}"
    );
}
