//! What a hostile client sends, byte for byte, against what the upstream
//! reads: identity headers under other spellings, `Connection` naming what
//! the gateway sets, path parameters, a percent-encoded `access_token`
//! key, repeated credentials, and connections that never send a request.
//! Each over a real socket, with a raw client where a library would
//! normalise the bytes away.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;

/// Every field the gateway sets on a request going upstream, or strips
/// from one: a client's copy, in any spelling, must never arrive.
const GATEWAY_FIELDS: [&str; 15] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-scope",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-forwarded-auth-level",
    "x-authgate-jwt",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-scope",
    "x-auth-request-groups",
    "x-auth-request-access-token",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// How a CGI-style server (Rack, WSGI, PHP) names a field: upper case,
/// `-` read as `_`. Two fields it names alike are one variable there.
fn cgi_name(field: &str) -> String {
    field.to_ascii_uppercase().replace('-', "_")
}

/// Spellings of `field` that such a server reads as `field`: underscores
/// for all, the first or the last dash, in upper and mixed case.
fn spellings(field: &str) -> Vec<String> {
    let last = field.rfind('-').unwrap();
    vec![
        field.replace('-', "_").to_ascii_uppercase(),
        field.replacen('-', "_", 1),
        format!("{}_{}", &field[..last], &field[last + 1..]),
        cgi_name(field).to_ascii_lowercase(),
    ]
}

/// One raw request carrying every spelling of every gateway field, each
/// with a value starting "forged".
fn forging_request(path: &str, credential: &str) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: gw.example\r\n{credential}");
    for (i, field) in GATEWAY_FIELDS.iter().enumerate() {
        for (j, spelling) in spellings(field).iter().enumerate() {
            request.push_str(&format!("{spelling}: forged-{i}-{j}\r\n"));
        }
    }
    request.push_str("X_Custom_Field: underscored\r\nConnection: close\r\n\r\n");
    request
}

/// The fields the echo upstream received, in order.
fn fields_of(seen: &Value) -> Vec<(String, String)> {
    seen["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Nothing forged reached the upstream under any name a CGI server would
/// take for a gateway field; what the gateway set arrived once.
fn assert_no_forgery(fields: &[(String, String)], what: &str) {
    for (name, value) in fields {
        let is_gateway_field = GATEWAY_FIELDS.iter().any(|f| cgi_name(f) == cgi_name(name));
        assert!(
            !(is_gateway_field && value.starts_with("forged")),
            "{what}: {name}: {value} reached the upstream"
        );
    }
    for field in GATEWAY_FIELDS {
        let count = fields
            .iter()
            .filter(|(n, _)| cgi_name(n) == cgi_name(field))
            .count();
        assert!(count <= 1, "{what}: {field} arrived {count} times: {fields:?}");
    }
}

/// The echo upstream behind a gateway whose config `edit` changes (its
/// `UPSTREAM` stands for the upstream's address), and alice's token.
async fn echo_gateway(edit: impl Fn(String) -> String) -> (Upstream, Gateway, String) {
    let upstream = start_upstream().await;
    let toml = edit(config_toml(upstream.addr, "")).replace("UPSTREAM", &upstream.addr.to_string());
    let gateway = Gateway::start(&toml).await;
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    (upstream, gateway, token)
}

#[tokio::test]
async fn identity_fields_under_another_spelling_never_reach_the_upstream() {
    let (_upstream, gateway, token) = echo_gateway(|c| c).await;
    for (path, credential) in [
        ("/public/page", String::new()),
        ("/private", format!("Authorization: Bearer {token}\r\n")),
    ] {
        let answer = raw_request(gateway.addr, &forging_request(path, &credential)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.head);
        let seen: Value = serde_json::from_slice(&answer.body).unwrap();
        let fields = fields_of(&seen);
        assert_no_forgery(&fields, path);
        assert!(
            fields.iter().all(|(name, _)| !name.contains('_')),
            "{path}: fields with underscores are dropped by default: {fields:?}"
        );
        if !credential.is_empty() {
            let user: Vec<&str> = fields
                .iter()
                .filter(|(n, _)| n == "x-forwarded-user")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(user, ["alice"], "the gateway's own identity arrives, once");
        }
    }
}

#[tokio::test]
async fn underscored_fields_may_be_let_through_but_never_as_a_gateway_field() {
    let (_upstream, gateway, token) = echo_gateway(|c| {
        c.replace(
            "timeout_secs = 2\n",
            "timeout_secs = 2\nunderscores_in_headers = true\n",
        )
    })
    .await;
    let answer = raw_request(
        gateway.addr,
        &forging_request("/private", &format!("Authorization: Bearer {token}\r\n")),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let fields = fields_of(&serde_json::from_slice(&answer.body).unwrap());
    assert_no_forgery(&fields, "underscores allowed");
    assert!(
        fields.contains(&("x_custom_field".to_owned(), "underscored".to_owned())),
        "{fields:?}"
    );
}

#[tokio::test]
async fn identity_fields_under_another_spelling_never_reach_the_upstream_over_http2() {
    let (_upstream, gateway, token) = echo_gateway(|c| c).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (path, bearer) in [("/public/page", None), ("/private", Some(&token))] {
        let mut request = client.get(gateway.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        for (i, field) in GATEWAY_FIELDS.iter().enumerate() {
            for (j, spelling) in spellings(field).iter().enumerate() {
                request = request.header(spelling.to_ascii_lowercase(), format!("forged-{i}-{j}"));
            }
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200, "{path}");
        let fields = fields_of(&response.json().await.unwrap());
        assert_no_forgery(&fields, path);
        assert!(fields.iter().all(|(name, _)| !name.contains('_')), "{fields:?}");
    }
}

#[tokio::test]
async fn a_connection_header_cannot_remove_what_the_gateway_sets() {
    let (_upstream, gateway, token) = echo_gateway(|c| c).await;
    // A session cookie: the gateway sets Authorization from it.
    let request = format!(
        "GET /private HTTP/1.1\r\nHost: gw.example\r\nCookie: authgate_session={token}\r\n\
         Connection: close, X-Forwarded-User, X-Forwarded-Email, Authorization, X-Forwarded-For, X-Forwarded-Proto, X-Secret\r\n\
         X-Secret: hop\r\nX_Forwarded_User: root\r\n\r\n"
    );
    let answer = raw_request(gateway.addr, &request).await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let seen: Value = serde_json::from_slice(&answer.body).unwrap();
    let headers = &seen["headers"];
    assert_eq!(headers["x-forwarded-user"], "alice", "{seen}");
    assert_eq!(headers["x-forwarded-email"], "alice@example.com", "{seen}");
    assert_eq!(headers["authorization"], format!("Bearer {token}"), "{seen}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(headers["x-forwarded-proto"], "http", "{seen}");
    assert!(
        headers.get("x-secret").is_none(),
        "a field the client named hop-by-hop is still dropped"
    );
    assert!(headers.get("connection").is_none());
    assert_no_forgery(&fields_of(&seen), "Connection");

    // On a public path too, and with the same field also under another
    // spelling: neither the client's nor a gap is what arrives.
    let request = "GET /public/x HTTP/1.1\r\nHost: gw.example\r\nConnection: X-Forwarded-User\r\n\
                   X-Forwarded-User: forged\r\nX_Forwarded_User: forged\r\nConnection: close\r\n\r\n";
    let answer = raw_request(gateway.addr, request).await;
    assert_eq!(answer.status, 200);
    let seen: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_no_forgery(&fields_of(&seen), "public Connection");
    assert!(seen["headers"].get("x-forwarded-user").is_none(), "{seen}");
}

#[tokio::test]
async fn path_parameters_never_turn_a_private_path_public() {
    let (upstream, gateway, token) = echo_gateway(|c| {
        c + r#"
[[routes]]
path_prefix = "/admin"
url = "http://UPSTREAM"
allowed_users = ["alice"]
"#
    })
    .await;
    let tricks = [
        "/public/..;/private",
        "/public/%2e%2e;/private",
        "/public/%2E%2E;x=y/private",
        "/public/..;x=y/private",
        "/public/.;/../private",
        "/public/..%3b/private",
        "/public/..%3Bjsessionid=1/private",
        "/public/x/..;/..;/private",
    ];
    for path in tricks {
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n");
        let answer = raw_request(gateway.addr, &request).await;
        assert_eq!(
            answer.status, 401,
            "{path} must not pass as public: {}",
            answer.head
        );
    }
    assert_eq!(
        upstream.hits(),
        0,
        "no trick reached the upstream unauthenticated"
    );
    for path in tricks {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(gateway.addr, &request).await;
        assert_eq!(answer.status, 200, "{path}");
        let seen: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            seen["path"], "/private",
            "{path}: the upstream sees the path that was checked"
        );
    }
    // A route is matched on its segments without their parameters, as
    // Tomcat and Jetty serve them: bob cannot reach alice's route so.
    let bob = password_grant(&gateway.url("/management/token"), "bob").await;
    for path in [
        "/admin;x=1/secret",
        "/admin;/secret",
        "/admin%3Bx/secret",
        "/admin/..;/admin/secret",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer {bob}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(gateway.addr, &request).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.head);
    }
    // Parameters on an ordinary segment still pass where they belong.
    let request = "GET /public/app.js;v=2 HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n";
    let answer = raw_request(gateway.addr, request).await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let seen: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(seen["path"], "/public/app.js;v=2");
}

#[tokio::test]
async fn the_access_token_key_is_read_in_one_form() {
    let (upstream, gateway, alice) = echo_gateway(|c| c).await;
    let bob = password_grant(&gateway.url("/management/token"), "bob").await;
    let get = |target: String| {
        let addr = gateway.addr;
        async move {
            raw_request(
                addr,
                &format!("GET {target} HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n"),
            )
            .await
        }
    };
    // Authenticated by an encoded key: and so removed.
    for (target, kept) in [
        (
            format!("/private?x=access_token=&acc%65ss_token={alice}"),
            "x=access_token=",
        ),
        (format!("/private?%61ccess_token={alice}&y=2"), "y=2"),
        (format!("/private?access%5ftoken={alice}"), ""),
    ] {
        let answer = get(target.clone()).await;
        assert_eq!(answer.status, 200, "{target}: {}", answer.head);
        let seen: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(seen["query"], kept, "{target}");
        assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
        assert_eq!(seen["headers"]["authorization"], format!("Bearer {alice}"));
        let elsewhere: Vec<_> = fields_of(&seen)
            .into_iter()
            .filter(|(name, value)| name != "authorization" && value.contains(&alice))
            .collect();
        assert!(
            elsewhere.is_empty(),
            "{target}: the token went upstream in {elsewhere:?}"
        );
    }
    // Two keys the upstream would read as access_token: refused, whichever
    // spelling and separator.
    let hits = upstream.hits();
    for target in [
        format!("/private?access_token={alice}&acc%65ss_token={bob}"),
        format!("/private?access_token={alice}&access_token={alice}"),
        format!("/private?access_token={alice}&x=1;access_token={bob}"),
        format!("/public/x?access_token={alice}&access%5Ftoken={bob}"),
    ] {
        let answer = get(target.clone()).await;
        assert_eq!(answer.status, 400, "{target}: {}", answer.head);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["error"], "invalid_request", "{target}");
    }
    assert_eq!(upstream.hits(), hits, "no ambiguous request reached the upstream");
}

#[tokio::test]
async fn a_request_with_two_authorization_fields_is_refused() {
    let (upstream, gateway, alice) = echo_gateway(|c| c).await;
    let bob = password_grant(&gateway.url("/management/token"), "bob").await;
    for (path, second) in [
        ("/private", format!("Bearer {bob}")),
        ("/private", "Basic Ym9iOnNlY3JldA==".to_owned()),
        ("/public/x", format!("Bearer {bob}")),
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer {alice}\r\n\
             Authorization: {second}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(gateway.addr, &request).await;
        assert_eq!(answer.status, 400, "{path} {second}: {}", answer.head);
    }
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(gateway.url("/private"))
        .header("authorization", format!("Bearer {alice}"))
        .header("authorization", format!("Bearer {bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 400);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn connections_that_never_send_a_request_are_closed_at_the_header_timeout() {
    let upstream = start_upstream().await;
    let toml = config_toml(
        upstream.addr,
        "[limits]\nmax_connections = 3\nheader_read_timeout_secs = 1\n",
    );
    let gateway = Gateway::start(&toml).await;
    let mut silent = RawConnection::open(gateway.addr).await;
    let mut half_preface = RawConnection::open(gateway.addr).await;
    half_preface.send(b"PRI * HTTP/2.0\r\n").await;
    let mut settings_only = RawConnection::open(gateway.addr).await;
    settings_only
        .send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = raw_request(
        gateway.addr,
        "GET /public/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(refused.status, 503, "the three hold every slot");
    let started = std::time::Instant::now();
    for (what, connection) in [
        ("a silent connection", &mut silent),
        ("half an HTTP/2 preface", &mut half_preface),
        ("a preface and SETTINGS", &mut settings_only),
    ] {
        assert!(
            connection.closed_within(Duration::from_secs(4)).await,
            "{what} is still open after {:?}",
            started.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let served = raw_request(
        gateway.addr,
        "GET /public/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(served.status, 200, "the slots are free again");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_at_the_keep_alive_timeout() {
    let upstream = start_upstream().await;
    let toml = config_toml(upstream.addr, "[limits]\nheader_read_timeout_secs = 1\n");
    let gateway = Gateway::start(&toml).await;
    let tcp = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let (mut send, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let driven = tokio::spawn(connection);
    let request = http::Request::get(gateway.url("/public/x"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(4), driven)
        .await
        .expect("the gateway closes an idle HTTP/2 connection")
        .unwrap()
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "not before the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_at_the_keep_alive_timeout() {
    let upstream = start_upstream().await;
    let toml = config_toml(upstream.addr, "[limits]\nheader_read_timeout_secs = 1\n");
    let gateway = Gateway::start(&toml).await;
    let mut connection = RawConnection::open(gateway.addr).await;
    connection
        .send(b"GET /public/x HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await;
    assert_eq!(connection.response().await.unwrap().status, 200);
    assert!(connection.closed_within(Duration::from_secs(4)).await);
}

#[tokio::test]
async fn a_stray_percent_sign_never_decodes_into_another_route() {
    let (_upstream, gateway, _alice) = echo_gateway(|c| {
        c + r#"
[[routes]]
path_prefix = "/admin"
url = "http://UPSTREAM"
allowed_users = ["alice"]
"#
    })
    .await;
    let bob = password_grant(&gateway.url("/management/token"), "bob").await;
    // Found by fuzzing the path normalization: `%6` then `%31` ("1") read
    // once as `%61` ("a"), so the upstream, decoding, saw /admin.
    for path in ["/%6%31dmin/secret", "/%%361dmin/secret", "/%6%31%64min/secret"] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer {bob}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(gateway.addr, &request).await;
        if answer.status == 200 {
            let seen: Value = serde_json::from_slice(&answer.body).unwrap();
            let forwarded = seen["path"].as_str().unwrap();
            let decoded = url::form_urlencoded::parse(format!("p={forwarded}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned();
            assert!(
                !decoded.starts_with("/admin"),
                "{path} reached the upstream as {forwarded}, which it reads as {decoded}"
            );
        } else {
            assert_eq!(answer.status, 403, "{path}: {}", answer.head);
        }
    }
}
