//! Forward-auth for a proxy that is already there: real nginx with
//! `auth_request` in front of a real upstream, authgate answering the
//! subrequests; and the Traefik-style answers directly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// nginx in front of `upstream`, asking `gateway` about each request. The
/// README carries the same configuration.
struct Nginx {
    _dir: tempfile::TempDir,
    child: Child,
}

/// Stops nginx with SIGTERM, which its master passes on to its workers; a
/// SIGKILL would stop the master only and leave the workers listening.
impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx on `port` in front of `upstream`, asking `gateway`.
fn start_nginx(port: u16, upstream: std::net::SocketAddr, gateway: std::net::SocketAddr) -> Option<Nginx> {
    if !require_tools(&["nginx"]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = format!(
        r#"
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_authgate;
            auth_request_set $user $upstream_http_x_auth_request_user;
            auth_request_set $email $upstream_http_x_auth_request_email;
            auth_request_set $token $upstream_http_x_auth_request_access_token;
            auth_request_set $sign_in $upstream_http_x_auth_request_sign_in;
            proxy_set_header X-User $user;
            proxy_set_header X-Email $email;
            proxy_set_header Authorization "Bearer $token";
            error_page 401 = @sign_in;
            proxy_pass http://{upstream};
        }}
        location = /_authgate {{
            internal;
            proxy_pass http://{gateway}/management/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
        location @sign_in {{
            return 302 $sign_in;
        }}
    }}
}}
"#
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .args(["-g", "daemon off;", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Nginx { _dir: dir, child })
}

#[tokio::test]
async fn nginx_auth_request_lets_signed_in_requests_through_and_sends_others_to_sign_in_and_back() {
    let upstream = start_upstream().await;
    let port = free_port();
    let site = format!("127.0.0.1:{port}");
    let config = config_toml(upstream.addr, "")
        .replace("[server]\n", "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n")
        .replace("[auth]\n", &format!("[auth]\nreturn_hosts = [\"{site}\"]\n"));
    let gateway = Gateway::start(&config).await;
    let Some(_nginx) = start_nginx(port, upstream.addr, gateway.addr) else {
        return;
    };
    let page = format!("http://{site}/reports?month=11&year=2026&q=a%20b");

    // Not signed in: to the gateway's sign-in page, the whole page's URL
    // escaped in rd, every parameter kept.
    let browser = browser();
    let refused = browser.get(&page).send().await.unwrap();
    assert_eq!(refused.status(), 302);
    let sign_in_url = refused.headers()["location"].to_str().unwrap().to_owned();
    let expected_rd: String = url::form_urlencoded::byte_serialize(page.as_bytes()).collect();
    assert_eq!(
        sign_in_url,
        format!("http://{}/management/authorize?rd={expected_rd}", gateway.addr)
    );
    assert_eq!(upstream.hits(), 0, "nothing unauthenticated reached the upstream");

    // Signed in there, the person lands on the very page, on the nginx site.
    let signed_in = submit_sign_in(&browser, &sign_in_url, "alice", PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], page.as_str());
    let seen: Value = browser.get(&page).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["path"], "/reports");
    assert_eq!(seen["query"], "month=11&year=2026&q=a%20b");
    assert_eq!(seen["headers"]["x-user"], "alice");
    assert_eq!(seen["headers"]["x-email"], "alice@example.com");
    let token = session_token(&signed_in);
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {token}"));

    // A host the config does not list is never where a sign-in returns.
    let elsewhere = api()
        .get(gateway.url("/management/auth"))
        .header("X-Original-URI", "/x?y=1")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);
    assert_eq!(
        elsewhere.headers()["x-auth-request-sign-in"],
        "/management/authorize?rd=%2Fx%3Fy%3D1",
        "only the path, on the gateway's own origin"
    );

    let forged = api().get(&page).bearer_auth("forged").send().await.unwrap();
    assert_eq!(forged.status(), 302);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn forward_auth_answers_traefik_and_trusts_the_original_uri_only_from_trusted_proxies() {
    let upstream = start_upstream().await;
    let config =
        config_toml(upstream.addr, "").replace("[server]\n", "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let gateway = Gateway::start(&config).await;
    let token = session_token(&sign_in(&browser(), &gateway, "bob", PASSWORD, "/").await);
    let ok = bearer_get(&gateway, "/management/auth", &token).await;
    assert_eq!(ok.status(), 202);
    assert_eq!(ok.headers()["x-auth-request-user"], "bob");
    assert_eq!(ok.headers()["x-auth-request-access-token"], token.as_str());

    // Traefik, a browser, not signed in: sent to sign in, back to the page.
    let to_sign_in = browser()
        .get(gateway.url("/management/auth"))
        .header("X-Forwarded-Uri", "/app/page?x=1")
        .header("X-Forwarded-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(to_sign_in.status(), 302);
    assert_eq!(
        to_sign_in.headers()["location"],
        "/management/authorize?rd=%2Fapp%2Fpage%3Fx%3D1"
    );
    // An API client gets a 401.
    let refused = api()
        .get(gateway.url("/management/auth"))
        .header("X-Forwarded-Uri", "/api")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // A public path passes without a credential, from a trusted proxy.
    let public = api()
        .get(gateway.url("/management/auth"))
        .header("X-Forwarded-Uri", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 202);

    // The same header from an untrusted peer changes nothing.
    let untrusting = Gateway::start(&config_toml(upstream.addr, "")).await;
    let spoofed = api()
        .get(untrusting.url("/management/auth"))
        .header("X-Forwarded-Uri", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 401);
}

#[tokio::test]
async fn forward_auth_answers_the_groups_and_checks_the_groups_asked_for() {
    let upstream = start_upstream().await;
    let toml = config_toml(upstream.addr, "").replace(
        "[[users]]\nusername = \"bob\"",
        "[[users]]\nusername = \"bob\"\ngroups = [\"ops\", \"staff\"]",
    );
    let gateway = Gateway::start(&toml).await;
    let bob = password_grant(&gateway.url("/management/token"), "bob").await;
    let check = |query: &str| {
        api()
            .get(gateway.url(&format!("/management/auth{query}")))
            .bearer_auth(&bob)
            .send()
    };
    let answer = check("").await.unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["x-auth-request-user"], "bob");
    assert_eq!(answer.headers()["x-auth-request-groups"], "ops,staff");
    assert_eq!(check("?allowed_groups=admins,ops").await.unwrap().status(), 202);
    assert_eq!(check("?allowed_groups=admins").await.unwrap().status(), 403);
    assert_eq!(check("?allowed_users=alice").await.unwrap().status(), 403);
    assert_eq!(check("?allowed_users=alice,bob").await.unwrap().status(), 202);

    // [auth] allowed_groups applies to forward-auth as to routes.
    let strict = Gateway::start(&toml.replace("[auth]\n", "[auth]\nallowed_groups = [\"admins\"]\n")).await;
    let bob = password_grant(&strict.url("/management/token"), "bob").await;
    let answer = api()
        .get(strict.url("/management/auth"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    assert_eq!(
        bearer_status(&strict, "/anything", &bob).await,
        403,
        "and at the default route"
    );
}
