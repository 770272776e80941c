//! OpenID Connect Back-Channel Logout from the real provider: a person
//! signs out at the provider, and their sessions end at two gateways
//! sharing Redis within a second; the logout token cannot be replayed,
//! tampered with, or sent for another provider.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

use crate::common::oidc::{set_cookie, through_provider, to_callback, NodeProvider};
use crate::common::*;

/// Passes every POST on to `target` and keeps its body: the logout tokens
/// the provider sends, for the test to replay.
async fn recording_relay(target: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/relay", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (target, kept) = (target.clone(), kept.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (target, kept) = (target.clone(), kept.clone());
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            kept.lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            let answer = api()
                                .post(&target)
                                .header("content-type", "application/x-www-form-urlencoded")
                                .body(body)
                                .send()
                                .await
                                .unwrap();
                            let mut response =
                                hyper::Response::new(Full::new(answer.bytes().await.unwrap_or_default()));
                            *response.status_mut() = hyper::StatusCode::from_u16(200).unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

fn gateway_toml(port: u16, upstream: std::net::SocketAddr, redis: &str, issuer: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[upstream]
url = "http://{upstream}"

[tokens]
store = "redis"
redis_url = "{redis}"

[[providers]]
id = "corp"
kind = "oidc"
issuer = "{issuer}"
client_id = "authgate"
client_secret = "corp-secret"
username_claim = "preferred_username"
"#
    )
}

async fn post_logout_token(gateway: &Gateway, provider: &str, form_body: &str) -> (u16, serde_json::Value) {
    let answer = api()
        .post(gateway.url(&format!("/management/backchannel-logout/{provider}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body.to_owned())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn a_logout_at_the_provider_ends_the_sessions_at_two_gateways_within_a_second() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    let (relay, tokens) = recording_relay(format!(
        "http://127.0.0.1:{port_a}/management/backchannel-logout/corp"
    ))
    .await;
    let Some(corp) = NodeProvider::start(
        "provider.mjs",
        json!({
            "port": 0,
            "clients": [{
                "client_id": "authgate",
                "client_secret": "corp-secret",
                "redirect_uris": [format!("http://127.0.0.1:{port_a}/management/callback/corp")],
                "backchannel_logout_uri": relay,
                "backchannel_logout_session_required": true
            }],
            "users": [{"sub": "u-alice", "password": "alice-pw", "email": "alice@corp.example",
                       "email_verified": true, "preferred_username": "alice"}]
        }),
    ) else {
        return;
    };
    let upstream = start_upstream().await;
    let a = Gateway::start(&gateway_toml(port_a, upstream.addr, &redis.url(), &corp.issuer)).await;
    let b = Gateway::start(&gateway_toml(port_b, upstream.addr, &redis.url(), &corp.issuer)).await;

    let back = through_provider(
        &browser(),
        &a.url("/management/authorize?provider=corp"),
        "alice",
        "alice-pw",
    )
    .await;
    let token = set_cookie(&back, "authgate_session").expect("a session");
    assert_eq!(bearer_status(&a, "/x", &token).await, 200);
    assert_eq!(
        bearer_status(&b, "/x", &token).await,
        200,
        "the other gateway knows (and caches) the session"
    );

    // Alice tries to keep her sessions from the provider's logout by
    // revoking the gateway's record of whose they are: a key anyone can
    // compute, which revocation does not touch.
    for record in [
        "authgate outside subject\0corp\0u-alice",
        "authgate outside session\0corp\0x",
    ] {
        let answer = api()
            .post(a.url("/management/revoke"))
            .form(&[("token", record)])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "RFC 7009: an unknown token is no error");
    }

    // Alice signs out at the provider; it tells the gateway.
    let sent: serde_json::Value = api()
        .post(corp.url("/test/backchannel-logout"))
        .json(&json!({"sub": "u-alice", "keep_session": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["sent"], 1, "{sent}");
    let logged_out = Instant::now();
    while bearer_status(&b, "/x", &token).await != 401 {
        assert!(
            logged_out.elapsed() < Duration::from_secs(1),
            "still signed in at the other gateway after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bearer_status(&a, "/x", &token).await, 401);

    // The token the provider sent: once only, at either gateway.
    let body = tokens
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the relay saw the logout token");
    for gateway in [&a, &b] {
        let (status, answer) = post_logout_token(gateway, "corp", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error_description"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{answer}"
        );
    }

    // Tampered, or for a provider it is not from: refused.
    let token_text: String = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .unwrap()
        .1
        .into_owned();
    let mut pieces: Vec<String> = token_text.split('.').map(str::to_owned).collect();
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &pieces[1]).unwrap(),
    )
    .unwrap();
    assert!(
        payload["sid"].is_string() && payload["events"].is_object(),
        "{payload}"
    );
    payload["jti"] = json!("another-jti");
    payload["sub"] = json!("u-bob");
    pieces[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload.to_string(),
    );
    let forged = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &pieces.join("."))
        .finish();
    let (status, answer) = post_logout_token(&a, "corp", &forged).await;
    assert_eq!(status, 400);
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("not signed by this provider"),
        "{answer}"
    );
    let (status, _) = post_logout_token(&a, "nobody", &body).await;
    assert_eq!(status, 404);
    let (status, answer) = post_logout_token(&a, "corp", "logout_token=not.a.jwt").await;
    assert_eq!(status, 400, "{answer}");
}

/// A gateway on `port` sharing `redis`, with `corp` and a local user, and
/// `[auth] secret_file` when given.
fn shared_toml(
    port: u16,
    upstream: std::net::SocketAddr,
    redis: &str,
    issuer: &str,
    secret: Option<&std::path::Path>,
) -> String {
    let mut toml = gateway_toml(port, upstream, redis, issuer);
    toml.push_str(&format!(
        "\n[[users]]\nusername = \"carol\"\npassword_hash = \"{}\"\n",
        password_hash()
    ));
    if let Some(secret) = secret {
        toml.push_str(&format!("\n[auth]\nsecret_file = \"{}\"\n", secret.display()));
    }
    toml
}

#[tokio::test]
async fn gateways_with_one_secret_file_finish_each_others_sign_ins() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    let Some(corp) = NodeProvider::start(
        "provider.mjs",
        json!({
            "port": 0,
            "clients": [{
                "client_id": "authgate",
                "client_secret": "corp-secret",
                "redirect_uris": [format!("http://127.0.0.1:{port_a}/management/callback/corp")]
            }],
            "users": [{"sub": "u-alice", "password": "alice-pw", "preferred_username": "alice"}]
        }),
    ) else {
        return;
    };
    let upstream = start_upstream().await;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "Ks3cAq0Vt6pBm1uYw8xNz4eRh7jLf2gD\n").unwrap();
    let a = Gateway::start(&shared_toml(
        port_a,
        upstream.addr,
        &redis.url(),
        &corp.issuer,
        Some(secret.path()),
    ))
    .await;
    // One public address for both, as behind a load balancer.
    let b_toml = shared_toml(
        port_b,
        upstream.addr,
        &redis.url(),
        &corp.issuer,
        Some(secret.path()),
    )
    .replace(
        &format!("public_url = \"http://127.0.0.1:{port_b}\""),
        &format!("public_url = \"http://127.0.0.1:{port_a}\""),
    );
    let b = Gateway::start(&b_toml).await;

    // The sign-in starts at A, and the provider's answer comes back to B.
    let walked = to_callback(
        &browser(),
        &a.url("/management/authorize?provider=corp"),
        "alice",
        "alice-pw",
    )
    .await
    .unwrap();
    let (callback, flow_cookie) = (walked.callback, walked.flow_cookie.expect("a flow cookie"));
    let at_b = format!("{}?{}", b.url(callback.path()), callback.query().unwrap());
    let back = api()
        .get(&at_b)
        .header("cookie", &flow_cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 303, "{:?}", back.text().await);
    let token = set_cookie(&back, "authgate_session").expect("a session from B");
    assert_eq!(bearer_status(&a, "/x", &token).await, 200);

    // The sign-in form of one, posted to the other.
    let carol = browser();
    let page = carol
        .get(a.url("/management/authorize"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_inputs(&page);
    form.push(("username".into(), "carol".into()));
    form.push(("password".into(), PASSWORD.into()));
    let posted = carol
        .post(b.url("/management/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303, "the form of A is good at B");

    // Without the shared file, each gateway's key is its own: refused.
    // (Any port: it takes no part in a provider's flow.)
    let c = Gateway::start(&shared_toml(0, upstream.addr, &redis.url(), &corp.issuer, None)).await;
    let posted = carol
        .post(c.url("/management/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 403, "a form signed by another key");
}
