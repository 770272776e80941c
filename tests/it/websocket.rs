//! WebSockets through the gateway: checked like any request, then spliced
//! to the upstream both ways; refused before the upgrade without a
//! credential. A real WebSocket server and client (tokio-tungstenite).

#![allow(clippy::result_large_err)] // tungstenite's handshake callback returns its own response as the error

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server that answers each text message with "echo: …", and
/// first says who it was told the user is.
async fn start_ws_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut user = String::new();
                let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, res| {
                    user = req
                        .headers()
                        .get("x-forwarded-user")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    Ok(res)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                ws.send(Message::text(format!("hello {user}"))).await.unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message {
                        ws.send(Message::text(format!("echo: {text}"))).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_websocket_is_checked_then_spliced_both_ways() {
    let upstream = start_ws_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream, "")).await;
    let token = session_token(&sign_in(&browser(), &gateway, "alice", PASSWORD, "/").await);

    let mut request = format!("ws://{}/ws", gateway.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello alice"));
    for text in ["one", "two", "three"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(format!("echo: {text}"))
        );
    }
    ws.close(None).await.unwrap();

    // Without a credential, the upgrade never happens.
    let request = format!("ws://{}/ws", gateway.addr).into_client_request().unwrap();
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn an_open_websocket_counts_against_max_connections() {
    let upstream = start_ws_upstream().await;
    let gateway = Gateway::start(&config_toml(upstream, "[limits]\nmax_connections = 2\n")).await;
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    let mut request = format!("ws://{}/ws", gateway.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello alice"));
    // Any answer but 503 means the request had a slot (the WebSocket
    // upstream answers other requests with a 502 of the gateway's).
    const PROBE: &str = "GET /public/x HTTP/1.1\r\nHost: gw\r\n\r\n";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // The tunnel holds one slot; a kept-alive connection the other (once
    // the token request's connection has let its own go).
    let _kept = loop {
        let mut kept = RawConnection::open(gateway.addr).await;
        kept.send(PROBE.as_bytes()).await;
        if kept.response().await.unwrap().status != 503 {
            break kept;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no slot for a second connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let refused = raw_request(gateway.addr, PROBE).await;
    assert_eq!(refused.status, 503, "the tunnel is a connection too");
    ws.close(None).await.unwrap();
    drop(ws);
    loop {
        let answer = raw_request(gateway.addr, PROBE).await;
        if answer.status != 503 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed tunnel's slot is never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
