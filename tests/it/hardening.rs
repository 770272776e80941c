//! authgate as a security boundary: CSRF, brute force, idle sessions,
//! forwarding headers, limits and timeouts, page headers, and a list of
//! attack inputs, each over real sockets.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway_with(edit: impl Fn(String) -> String) -> (Upstream, Gateway) {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&edit(config_toml(upstream.addr, ""))).await;
    (upstream, gateway)
}

/// Sends raw bytes and answers what came back before the server closed
/// (or `wait` passed).
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_sign_in_without_the_csrf_token_is_refused_and_the_fresh_form_works() {
    let (upstream, gateway) = gateway_with(|c| c).await;
    let browser = browser();
    let _page = browser
        .get(gateway.url("/management/authorize?rd=/x"))
        .send()
        .await
        .unwrap();
    for csrf in [None, Some("forged"), Some("")] {
        let mut form = vec![("username", "alice"), ("password", PASSWORD), ("rd", "/x")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let refused = browser
            .post(gateway.url("/management/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{csrf:?}");
        assert!(refused.headers().get("location").is_none());
        let html = refused.text().await.unwrap();
        assert!(
            html.contains("has expired or did not come from this site"),
            "{html}"
        );
        assert!(!html.contains(PASSWORD));
        // The page it shows carries a fresh form: submitting it works.
        let mut retry = hidden_inputs(&html);
        retry.push(("username".into(), "alice".into()));
        retry.push(("password".into(), PASSWORD.into()));
        let ok = browser
            .post(gateway.url("/management/authorize"))
            .form(&retry)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 303);
        assert_eq!(ok.headers()["location"], "/x");
    }
    // Another browser's token does not fit this browser's cookie.
    let other = browser_page_csrf(&gateway).await;
    let thief = crate::common::browser();
    let _ = thief
        .get(gateway.url("/management/authorize"))
        .send()
        .await
        .unwrap();
    let refused = thief
        .post(gateway.url("/management/authorize"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf", other.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(upstream.hits(), 0);
}

async fn browser_page_csrf(gateway: &Gateway) -> String {
    let html = browser()
        .get(gateway.url("/management/authorize"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    hidden_value(&html, "csrf").unwrap()
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_user_and_per_address() {
    let (_upstream, gateway) = gateway_with(|c| {
        c.replace(
            "[auth]\n",
            "[auth]\nmax_failures_per_user = 3\nmax_failures_per_address = 5\n",
        )
    })
    .await;
    let browser = browser();
    for _ in 0..3 {
        assert_eq!(
            sign_in(&browser, &gateway, "alice", "wrong", "/").await.status(),
            401
        );
    }
    let throttled = sign_in(&browser, &gateway, "alice", PASSWORD, "/").await;
    assert_eq!(throttled.status(), 429, "even the right password waits");
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=601).contains(&wait), "{wait}");
    assert!(throttled
        .text()
        .await
        .unwrap()
        .contains("Too many failed sign-ins"));

    // The token endpoint counts the same failures.
    let response = api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "too_many_requests"
    );

    // Another user from the same address still signs in, and their traffic flows.
    let bob = sign_in(&crate::common::browser(), &gateway, "bob", PASSWORD, "/").await;
    assert_eq!(bob.status(), 303);
    let token = session_token(&bob);
    assert_eq!(bearer_status(&gateway, "/x", &token).await, 200);

    // Two more failures (of anyone) reach the address limit: everyone there waits.
    for _ in 0..2 {
        assert_eq!(
            sign_in(&browser, &gateway, "bob", "wrong", "/").await.status(),
            401
        );
    }
    assert_eq!(
        sign_in(&crate::common::browser(), &gateway, "carol", PASSWORD, "/")
            .await
            .status(),
        429
    );
    assert_eq!(bearer_status(&gateway, "/x", &token).await, 200);
}

#[tokio::test]
async fn failed_client_authentications_are_throttled() {
    let upstream = start_upstream().await;
    let secret_hash = authgate::hash_password("s3cret-client");
    let toml = config_toml(upstream.addr, &format!(
        "[[clients]]\nclient_id = \"machine\"\nclient_secret_hash = \"{secret_hash}\"\ngrants = [\"client_credentials\"]\n"
    ))
    .replace("[auth]\n", "[auth]\nmax_failures_per_user = 2\n");
    let gateway = Gateway::start(&toml).await;
    let attempt = |secret: &'static str| {
        api()
            .post(gateway.url("/management/token"))
            .basic_auth("machine", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(attempt("s3cret-client").await.unwrap().status(), 200);
    assert_eq!(attempt("wrong").await.unwrap().status(), 401);
    assert_eq!(attempt("wrong").await.unwrap().status(), 401);
    let throttled = attempt("s3cret-client").await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn an_idle_session_ends_and_a_used_one_goes_on() {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream.addr, "[tokens]\nidle_secs = 3\n")).await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            bearer_status(&gateway, "/x", &token).await,
            200,
            "a session in use does not go idle"
        );
    }
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(
        bearer_status(&gateway, "/x", &token).await,
        401,
        "idle longer than idle_secs"
    );
}

/// What the upstream saw of a request carrying `X-Forwarded-For`, `-Host`
/// and `-Proto` as a client set them.
async fn with_forwarding_headers(gateway: &Gateway, token: &str, [for_, host, proto]: [&str; 3]) -> Value {
    api()
        .get(gateway.url("/x"))
        .bearer_auth(token)
        .header("X-Forwarded-For", for_)
        .header("X-Forwarded-Host", host)
        .header("X-Forwarded-Proto", proto)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let (_upstream, gateway) = gateway_with(|c| c).await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let seen = with_forwarding_headers(&gateway, &token, ["6.6.6.6", "evil.example", "https"]).await;
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-host"], gateway.addr.to_string());
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    // Left out, not sent along beside the gateway's own.
    for name in ["host", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"] {
        let sent = seen["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|field| field[0] == name)
            .count();
        assert_eq!(sent, 1, "{name} in {}", seen["fields"]);
    }

    // A redirect after sign-in ignores a forged host.
    let browser = browser();
    let page = gateway.url("/management/authorize?rd=/next");
    let html = browser.get(&page).send().await.unwrap().text().await.unwrap();
    let mut form = hidden_inputs(&html);
    form.extend([
        ("username".into(), "alice".into()),
        ("password".into(), PASSWORD.into()),
    ]);
    let response = browser
        .post(gateway.url("/management/authorize"))
        .header("X-Forwarded-Host", "evil.example")
        .header("Host", "evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["location"], "/next");

    // Behind a trusted proxy, its headers are kept and the chain extended.
    let (_upstream, trusting) =
        gateway_with(|c| c.replace("[server]\n", "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n")).await;
    let token = session_token(&sign_in(&crate::common::browser(), &trusting, "alice", PASSWORD, "/").await);
    let seen = with_forwarding_headers(&trusting, &token, ["203.0.113.7", "app.example", "https"]).await;
    assert_eq!(seen["headers"]["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-host"], "app.example");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn over_limit_requests_get_their_status_and_others_are_unaffected() {
    let (_upstream, gateway) = gateway_with(|c| {
        c + "[limits]\nmax_header_bytes = 16384\nmax_headers = 32\nmax_body_bytes = 2048\nheader_read_timeout_secs = 1\n"
    })
    .await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);
    let fine = || async { bearer_status(&gateway, "/x", &token).await };

    let big = format!(
        "GET /x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert_eq!(
        status_of(&raw(gateway.addr, big.as_bytes(), Duration::from_secs(3)).await),
        431
    );
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /x HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(
        status_of(&raw(gateway.addr, many.as_bytes(), Duration::from_secs(3)).await),
        431
    );
    assert_eq!(fine().await, 200);

    let form = "username=alice&password=".to_string() + &"p".repeat(4096);
    let response = browser()
        .post(gateway.url("/management/authorize"))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = api()
        .post(gateway.url("/management/token"))
        .body("x".repeat(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(fine().await, 200);

    // Slowloris: a header that never ends gets 408 once the timeout passes,
    // while everyone else is served.
    let slow = tokio::spawn(raw(
        gateway.addr,
        b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(5),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fine().await, 200);
    let answer = slow.await.unwrap();
    assert_eq!(status_of(&answer), 408, "{answer:?}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_a_freed_slot_serves_again() {
    let (_upstream, gateway) = gateway_with(|c| c + "[limits]\nmax_connections = 2\n").await;
    let first = TcpStream::connect(gateway.addr).await.unwrap();
    let second = TcpStream::connect(gateway.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = raw(
        gateway.addr,
        b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_of(&third), 503, "{third}");
    assert!(third.contains("Retry-After"));
    drop(first);
    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = raw(
        gateway.addr,
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_of(&again), 401, "served again: {again}");
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let (_upstream, gateway) = gateway_with(|c| c).await;
    let browser = browser();
    let pages = [
        browser
            .get(gateway.url("/management/authorize"))
            .send()
            .await
            .unwrap(),
        browser
            .get(gateway.url("/management/authorize?client_id=nope"))
            .send()
            .await
            .unwrap(),
        browser
            .get(gateway.url("/management/nowhere"))
            .send()
            .await
            .unwrap(),
        browser
            .post(gateway.url("/management/authorize"))
            .form(&[("username", "a")])
            .send()
            .await
            .unwrap(),
        sign_in(&browser, &gateway, "alice", "wrong", "/").await,
    ];
    for page in pages {
        let status = page.status();
        let headers = page.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with("text/html"),
            "{status}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{status}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"),
            "{csp}"
        );
        assert!(csp.contains("default-src 'none'"), "no script can run: {csp}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{status}");
        assert_eq!(headers["cache-control"], "no-store", "{status}");
    }
}

#[tokio::test]
async fn crlf_in_state_or_redirect_uri_never_splits_a_header() {
    let (_upstream, gateway) = gateway_with(|c| c).await;
    let query = format!(
        "response_type=magic&client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}&state=a%0d%0aSet-Cookie:%20pwned=1"
    );
    let response = browser()
        .get(gateway.url(&format!("/management/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(response
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|v| !v.to_str().unwrap().contains("pwned")));
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.contains("state=a%0D%0ASet-Cookie"), "{location}");

    let response = browser()
        .get(gateway.url(&format!("/management/authorize?response_type=token&client_id={CLIENT_ID}&redirect_uri={REDIRECT_URI}%0d%0aX-Evil:%201")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        400,
        "an unregistered redirect_uri, not a split header"
    );
    assert!(response.headers().get("x-evil").is_none());
}

/// Inputs that have hurt auth proxies, each with the outcome it must get.
#[tokio::test]
async fn the_attack_list() {
    let (upstream, gateway) = gateway_with(|c| c).await;
    // (raw request line and headers, allowed statuses)
    let attacks: Vec<(String, &[u16])> = vec![
        // Path traversal and encodings around the public prefix.
        ("GET /public/../admin HTTP/1.1".into(), &[401]),
        ("GET /public/%2e%2e/admin HTTP/1.1".into(), &[401]),
        ("GET /public/%2e%2e%2fadmin HTTP/1.1".into(), &[401]),
        ("GET /public%2f..%2fadmin HTTP/1.1".into(), &[401]),
        // `..;` is `..` to Tomcat, Jetty and Spring, which strip `;params`
        // before resolving dots: it is resolved, so /admin needs a sign-in.
        ("GET /public/..;/admin HTTP/1.1".into(), &[401]),
        ("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1".into(), &[401]),
        ("GET /public/%00/../admin HTTP/1.1".into(), &[200]), // the upstream sees /public/admin
        // Absolute-form targets and odd request targets.
        ("GET http://evil.example/public/x HTTP/1.1".into(), &[200, 400]),
        ("GET http://evil.example/admin HTTP/1.1".into(), &[401, 400]),
        ("OPTIONS * HTTP/1.1".into(), &[401, 400]),
        // Open redirects into the sign-in page.
        (
            "GET /management/authorize?rd=//evil.example HTTP/1.1".into(),
            &[200],
        ),
        // Non-UTF-8 and over-long values.
        ("GET /admin?access_token=%ff%fe HTTP/1.1".into(), &[401]),
        (
            format!("GET /admin?access_token={} HTTP/1.1", "a".repeat(4000)),
            &[401],
        ),
        (
            "GET /management/authorize?state=%ff%fe%fd HTTP/1.1".into(),
            &[200],
        ),
        (
            "GET /management/token?grant_type=password&grant_type=password HTTP/1.1".into(),
            &[400],
        ),
        ("GET /management/me?access_token=%ff HTTP/1.1".into(), &[401]),
        (
            "GET /management/users/%ff/revoketokens HTTP/1.1".into(),
            &[405, 404],
        ),
        (
            "PUT /management/users/%ff%fe/revoketokens HTTP/1.1".into(),
            &[401, 404],
        ),
    ];
    for (line, allowed) in attacks {
        let request = format!("{line}\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(gateway.addr, request.as_bytes(), Duration::from_secs(3)).await;
        let status = status_of(&answer);
        assert!(
            allowed.contains(&status),
            "{line}: {status}, expected one of {allowed:?}"
        );
        if status == 200 && !line.contains("/management/") {
            assert!(
                answer.contains("\"path\":\"/public/"),
                "only public paths reach the upstream: {answer}"
            );
        }
    }
    // Headers: a bearer that is not ours, in every shape.
    for authorization in [
        "Bearer ",
        "Bearer \u{7f}",
        "Bearer a b c",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer ../../../etc/passwd",
        "bearer' OR '1'='1",
    ] {
        let request = format!(
            "GET /admin HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
        );
        let status = status_of(&raw(gateway.addr, request.as_bytes(), Duration::from_secs(3)).await);
        assert!(status == 401 || status == 400, "{authorization:?}: {status}");
    }
    // Request smuggling: conflicting lengths and obfuscated chunking are
    // refused before anything is forwarded.
    for smuggle in [
        "POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        "POST /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ] {
        let answer = raw(gateway.addr, smuggle.as_bytes(), Duration::from_secs(3)).await;
        assert!(!answer.contains("\"path\":\"/admin\""), "smuggled: {answer}");
        assert_ne!(status_of(&answer), 500, "{answer}");
    }
    let admin_hits = upstream.hits();
    assert!(
        admin_hits <= 4,
        "only public paths reached the upstream ({admin_hits})"
    );
}
