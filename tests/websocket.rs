//! WebSockets through the gateway: checked like any request, then spliced
//! to the upstream both ways; refused before the upgrade without a
//! credential. A real WebSocket server and client (tokio-tungstenite).

#![allow(clippy::result_large_err)] // tungstenite's handshake callback returns its own response as the error

mod common;

use common::*;
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
