//! Upstream connections: a client connection keeps the upstream
//! connection it used for its next request, a finished client connection
//! leaves its upstream connection to the next one, and a connection the
//! upstream closed, or a response the client abandoned, never breaks a
//! later request.

use std::time::Duration;

use crate::common::*;
use futures_util::StreamExt;

async fn gateway_with_token() -> (Upstream, Gateway, String) {
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream.addr, "")).await;
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    (upstream, gateway, token)
}

async fn get_path(client: &reqwest::Client, gateway: &Gateway, token: &str, path: &str) -> (u16, String) {
    let response = client
        .get(gateway.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A new client connection's requests are served, and the upstream has
/// still seen a single connection: the earlier one was kept for them.
async fn assert_the_connection_was_kept(upstream: &Upstream, gateway: &Gateway, token: &str) {
    let client = api();
    for _ in 0..3 {
        assert_eq!(get_path(&client, gateway, token, "/next").await.0, 200);
    }
    assert_eq!(
        upstream.connections(),
        1,
        "the upstream connection was kept and reused"
    );
}

#[tokio::test]
async fn keep_alive_clients_reuse_one_upstream_connection() {
    let (upstream, gateway, token) = gateway_with_token().await;
    let client = api();
    for i in 0..20 {
        let (status, body) = get_path(&client, &gateway, &token, &format!("/n/{i}")).await;
        assert_eq!(status, 200);
        let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            seen["path"],
            format!("/n/{i}"),
            "each answer is its own request's"
        );
    }
    assert_eq!(
        upstream.connections(),
        1,
        "one client connection, one upstream connection"
    );

    // A later client connection takes over the idle upstream connection.
    drop(client);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = api();
    for _ in 0..5 {
        assert_eq!(get_path(&client, &gateway, &token, "/again").await.0, 200);
    }
    assert_eq!(upstream.connections(), 1, "the idle connection was reused");
    assert_eq!(upstream.hits(), 25);
}

#[tokio::test]
async fn bodiless_answers_hand_their_connection_back() {
    let (upstream, gateway, token) = gateway_with_token().await;
    let client = api();
    for _ in 0..5 {
        assert_eq!(
            get_path(&client, &gateway, &token, "/empty").await,
            (204, String::new())
        );
        let head = client
            .head(gateway.url("/head"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
    }
    assert_eq!(get_path(&client, &gateway, &token, "/last").await.0, 200);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced() {
    let (upstream, gateway, token) = gateway_with_token().await;
    let client = api();
    for _ in 0..3 {
        assert_eq!(
            get_path(&client, &gateway, &token, "/close").await,
            (200, "closing".to_owned())
        );
        let (status, body) = get_path(&client, &gateway, &token, "/after").await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(upstream.hits(), 6);
    assert_eq!(
        upstream.connections(),
        4,
        "a new connection after each close, the last one kept"
    );
}

#[tokio::test]
async fn an_abandoned_download_does_not_break_the_next_request() {
    let (upstream, gateway, token) = gateway_with_token().await;
    let response = bearer_get(&gateway, "/download?bytes=50000000", &token).await;
    let mut stream = response.bytes_stream();
    assert!(!stream.next().await.unwrap().unwrap().is_empty());
    drop(stream);
    for i in 0..5 {
        let (status, body) = get_path(&api(), &gateway, &token, &format!("/after/{i}")).await;
        assert_eq!(status, 200);
        let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen["path"], format!("/after/{i}"));
    }
    // The abandoned response's connection was not handed on half-read.
    assert!(upstream.connections() >= 2);
}

#[tokio::test]
async fn a_client_gone_before_the_answer_leaves_the_connection_open_for_others() {
    let (upstream, gateway, token) = gateway_with_token().await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let gone = impatient
        .get(gateway.url("/pause"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(gone.unwrap_err().is_timeout());
    // The gateway finishes that exchange in the background and keeps the
    // connection, instead of closing it mid-request.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_the_connection_was_kept(&upstream, &gateway, &token).await;
}

#[tokio::test]
async fn a_client_gone_in_the_middle_of_a_short_answer_leaves_the_connection_open() {
    let (upstream, gateway, token) = gateway_with_token().await;
    let response = bearer_get(&gateway, "/hold", &token).await;
    let mut stream = response.bytes_stream();
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"first;");
    drop(stream);
    // The gateway reads the rest of the answer itself, then keeps the
    // connection for others.
    tokio::time::sleep(Duration::from_millis(100)).await;
    upstream.release.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_the_connection_was_kept(&upstream, &gateway, &token).await;
}

#[tokio::test]
async fn concurrent_clients_each_get_their_own_answers() {
    let (upstream, gateway, token) = gateway_with_token().await;
    let gateway = std::sync::Arc::new(gateway);
    let tasks: Vec<_> = (0..16)
        .map(|c| {
            let (gateway, token) = (gateway.clone(), token.clone());
            tokio::spawn(async move {
                let client = api();
                for i in 0..20 {
                    let path = format!("/c/{c}/{i}");
                    let (status, body) = get_path(&client, &gateway, &token, &path).await;
                    assert_eq!(status, 200);
                    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(seen["path"], path);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(upstream.hits(), 320);
    assert!(
        upstream.connections() <= 16,
        "{} upstream connections for 16 clients",
        upstream.connections()
    );
}

#[tokio::test]
async fn a_client_that_shuts_its_side_after_the_request_still_gets_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_upstream, gateway, token) = gateway_with_token().await;
    let mut client = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!("GET /pause HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    // Half-closed (RFC 9112 §9.6): nothing more to send, still listening.
    client.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer))
        .await
        .expect("the gateway answers, then closes")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("paused"), "{answer}");
}
